"""Django authentication backends: password login (refused with LOCAL_LOGIN=false) and OpenID Connect login."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from gatewayportal.outbound import ca_bundle
from services.identity import discovery, sync
from services.identity.tokens import TokenRefused, verify

logger = logging.getLogger(__name__)

# mozilla-django-oidc's settings that come from the environment's names or the issuer's discovery document.
_FROM_DISCOVERY = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_LOGOUT_ENDPOINT": "end_session_endpoint",
}


def oidc_setting(attr: str, *default: Any) -> Any:
    """mozilla-django-oidc's `get_settings`, answered from OIDC_* settings and the discovery document."""
    if attr in _FROM_DISCOVERY:
        return discovery.endpoint(settings.OIDC_ISSUER, _FROM_DISCOVERY[attr])
    if attr == "OIDC_RP_CLIENT_ID":
        return settings.OIDC_CLIENT_ID
    if attr == "OIDC_RP_CLIENT_SECRET":
        return settings.OIDC_CLIENT_SECRET
    if attr == "OIDC_RP_SCOPES":
        return settings.OIDC_SCOPES
    if attr == "OIDC_VERIFY_SSL":
        return ca_bundle()
    if attr == "OIDC_TIMEOUT":
        return settings.OIDC_HTTP_TIMEOUT_SECONDS
    return import_from_settings(attr, *default)


class LocalLoginBackend(ModelBackend):
    """Username and password. With LOCAL_LOGIN=false only superusers may use it (break-glass)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and not settings.LOCAL_LOGIN and not user.is_superuser:
            logger.info("password login refused for %s: LOCAL_LOGIN is false", user.get_username())
            return None
        return user


class OIDCBackend(OIDCAuthenticationBackend):
    """Authorization code flow with PKCE (mozilla-django-oidc); the ID token is verified like API tokens are."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        # Endpoints are read lazily: Django builds backends for every session lookup, which must not need the IdP.
        self.UserModel = get_user_model()

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("OIDC_OP_", "OIDC_RP_")):
            return oidc_setting(name, None)
        raise AttributeError(name)

    def authenticate(self, request, **kwargs):
        if not settings.OIDC_ISSUER:
            return None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        try:
            claims = verify(token, issuer=settings.OIDC_ISSUER, audience=settings.OIDC_CLIENT_ID)
        except TokenRefused as exc:
            raise SuspiciousOperation(f"ID token refused: {exc}")
        if claims.get("nonce") != kwargs.get("nonce"):
            raise SuspiciousOperation("ID token refused: nonce mismatch.")
        return claims

    def get_userinfo(self, access_token, id_token, payload):
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            if userinfo.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("userinfo describes another subject than the ID token.")
            claims.update(userinfo)
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        claims = self.get_userinfo(access_token, id_token, payload)
        user = sync.person(issuer=settings.OIDC_ISSUER, claims=claims)
        return user if user.is_active else None
