"""`Authorization: Bearer <JWT>` on the API, for people (OIDC_ISSUER) and for pipelines (teams' trusted identities)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import User
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from gatewayportal.context import set_actor_name
from services.identity import sync
from services.identity.tokens import TokenRefused, audiences, claims_match, unverified_claims, verify
from services.models import Team

logger = logging.getLogger(__name__)


def user_for_token(token: str) -> tuple[User, str]:
    """The user a bearer JWT stands for and the audit actor name; TokenRefused otherwise.

    The token's unverified `iss` and `aud` only choose which issuer must verify it: an issuer the portal does not
    trust is refused here, before any network call.
    """
    _, unverified = unverified_claims(token)
    issuer = unverified["iss"]
    auds = audiences(unverified)

    if settings.OIDC_ISSUER and settings.OIDC_API_AUDIENCE and issuer == settings.OIDC_ISSUER:
        if settings.OIDC_API_AUDIENCE in auds:
            claims = verify(token, issuer=issuer, audience=settings.OIDC_API_AUDIENCE)
            user = sync.person(issuer=issuer, claims=claims)
            return user, user.get_username()

    entries = [
        (team, entry)
        for team in Team.objects.exclude(trusted_identities=[]).only("pk", "slug", "trusted_identities")
        for entry in team.trusted_identities
        if entry.get("issuer") == issuer and entry.get("audience") in auds
    ]
    if not entries:
        raise TokenRefused("The token's issuer and audience are not trusted by this portal.")
    claims = verify(token, issuer=issuer, audience=sorted({entry["audience"] for _, entry in entries}))
    verified_auds = set(audiences(claims))
    teams = {
        team.pk: team
        for team, entry in entries
        if entry["audience"] in verified_auds and claims_match(entry.get("claims") or {}, claims)
    }
    if not teams:
        raise TokenRefused("The token's claims match no trusted identity.")
    subject = str(claims["sub"])
    user = sync.workload(issuer=issuer, subject=subject, teams=list(teams.values()))
    return user, f"ci:{issuer}:{subject}"[:150]


class JWTAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid Bearer header: give exactly one token after 'Bearer'.")
        try:
            token = parts[1].decode("ascii")
            user, actor = user_for_token(token)
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The bearer token is not a well-formed JWT.")
        except TokenRefused as exc:
            logger.info("bearer token refused: %s", exc)
            raise exceptions.AuthenticationFailed(str(exc))
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        set_actor_name(actor, identity=getattr(user, "_gp_identity", None))
        return user, token

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "services.identity.authentication.JWTAuthentication"
    name = "bearerJWT"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token of OIDC_ISSUER for OIDC_API_AUDIENCE, or a pipeline's identity token "
            "that a team's trusted_identities accept.",
        }
