"""Template context for the admin's login page."""

from django.conf import settings


def sign_in(request) -> dict:
    return {"gp_sso_enabled": bool(settings.OIDC_ISSUER), "gp_local_login": settings.LOCAL_LOGIN}
