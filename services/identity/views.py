"""The OpenID Connect login views (mozilla-django-oidc), configured from the issuer's discovery document."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpResponse
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from services.identity import discovery
from services.identity.backends import oidc_setting


class _NeedsIssuer:
    def dispatch(self, request, *args, **kwargs):
        if not settings.OIDC_ISSUER:
            raise Http404("Single sign-on is not configured.")
        try:
            discovery.document(settings.OIDC_ISSUER)
        except discovery.DiscoveryError:
            return HttpResponse("The identity provider cannot be reached; try again later.", status=503)
        return super().dispatch(request, *args, **kwargs)


class AuthenticationRequestView(_NeedsIssuer, OIDCAuthenticationRequestView):
    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)  # endpoints read lazily below

    @property
    def OIDC_OP_AUTH_ENDPOINT(self) -> str:  # noqa: N802 (mozilla-django-oidc's name)
        return oidc_setting("OIDC_OP_AUTHORIZATION_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:  # noqa: N802
        return settings.OIDC_CLIENT_ID


class CallbackView(_NeedsIssuer, OIDCAuthenticationCallbackView):
    get_settings = staticmethod(oidc_setting)

    def login_success(self):
        response = super().login_success()
        # After auth.login (which may flush the session): the IdP identity the audit trail shows for this session.
        self.request.session["gp_identity"] = getattr(self.user, "_gp_identity", None)
        return response
