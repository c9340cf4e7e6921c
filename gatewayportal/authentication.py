"""DRF authentication that also names the actor for audit events and log lines."""

from rest_framework import authentication, exceptions

from gatewayportal.context import set_actor_name


class _NamesActor:
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            set_actor_name(result[0].get_username())
        return result


class TokenAuthentication(_NamesActor, authentication.TokenAuthentication):
    """`Authorization: Token <key>`, checked against the hashed, expiring API tokens (`gatewayportal.apitokens`)."""

    def authenticate_credentials(self, key):
        from gatewayportal import apitokens  # models are not ready when settings import this module

        token = apitokens.check(key)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return (token.user, token)


class SessionAuthentication(_NamesActor, authentication.SessionAuthentication):
    pass
