"""DRF authentication that also names the actor for audit events and log lines."""

from rest_framework import authentication

from gatewayportal.context import set_actor_name


class _NamesActor:
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            set_actor_name(result[0].get_username())
        return result


class TokenAuthentication(_NamesActor, authentication.TokenAuthentication):
    pass


class SessionAuthentication(_NamesActor, authentication.SessionAuthentication):
    pass
