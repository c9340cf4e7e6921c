"""Local users for identity-provider subjects, with teams and the platform role that follow the IdP's groups.

Called at every SSO login and every bearer-token API call, so a group removed at the IdP takes the team away at
the next one. Teams with `idp_groups` are managed here; a team without them keeps its hand-made member list.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actions import audit_record
from gatewayportal.roles import PLATFORM_GROUP
from services.models import ExternalIdentity, Team

# The admin's permissions platform engineers hold through the platform group.
PLATFORM_APPS = ("services", "clusters", "audit", "ticketing")
# An identity's last_seen is written at most this often (bearer calls would otherwise write on every request).
LAST_SEEN_RESOLUTION_SECONDS = 300


def groups_from(claims: dict[str, Any]) -> set[str]:
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        return {value}
    if isinstance(value, list):
        return {g for g in value if isinstance(g, str)}
    return set()


def person(*, issuer: str, claims: dict[str, Any]) -> User:
    """The user for a person's verified claims, created at first sight, roles and teams synced."""
    try:
        return _person(issuer=issuer, claims=claims)
    except IntegrityError:  # a concurrent first request created the same subject: it exists now
        return _person(issuer=issuer, claims=claims)


def _person(*, issuer: str, claims: dict[str, Any]) -> User:
    subject = str(claims["sub"])
    email = claims.get("email") if isinstance(claims.get("email"), str) else ""
    with transaction.atomic():
        identity = _locked_identity(ExternalIdentity.Kind.PERSON, issuer, subject)
        if identity is None:
            preferred = email or claims.get("preferred_username") or subject
            user = _new_user(_free_username(str(preferred)), email=email)
            identity = ExternalIdentity.objects.create(
                user=user, kind=ExternalIdentity.Kind.PERSON, issuer=issuer, subject=subject, email=email
            )
        else:
            user = identity.user
            if email and identity.email != email:
                identity.email = email
                identity.save()
            else:
                _touch(identity)
        sync_roles(user, groups_from(claims), identity=identity.as_audit())
    user._gp_identity = identity.as_audit()
    return user


def workload(*, issuer: str, subject: str, teams: list[Team]) -> User:
    """The user a pipeline acts as: member of exactly the teams whose trusted identities it matched."""
    try:
        return _workload(issuer=issuer, subject=subject, teams=teams)
    except IntegrityError:  # a concurrent first request created the same subject: it exists now
        return _workload(issuer=issuer, subject=subject, teams=teams)


def _workload(*, issuer: str, subject: str, teams: list[Team]) -> User:
    with transaction.atomic():
        identity = _locked_identity(ExternalIdentity.Kind.WORKLOAD, issuer, subject)
        if identity is None:
            digest = hashlib.sha256(f"{issuer}\0{subject}".encode()).hexdigest()[:20]
            user = _new_user(f"ci-{digest}")
            identity = ExternalIdentity.objects.create(
                user=user, kind=ExternalIdentity.Kind.WORKLOAD, issuer=issuer, subject=subject
            )
        else:
            _touch(identity)
        user = identity.user
        wanted = {t.pk for t in teams}
        if set(user.teams.values_list("pk", flat=True)) != wanted:
            user.teams.set(teams)
    user._gp_identity = identity.as_audit()
    return user


def sync_roles(user: User, groups: set[str], *, identity: dict[str, str]) -> None:
    """Platform role and managed teams from the IdP's groups; every change is audited, as the user, with the
    identity and the groups that decided it."""
    platform = bool(groups & set(settings.OIDC_PLATFORM_GROUPS))
    staff = platform or user.is_superuser
    was_platform = user.is_staff or user.groups.filter(name=PLATFORM_GROUP).exists()
    if user.is_staff != staff:
        user.is_staff = staff
        user.save(update_fields=["is_staff"])
    in_platform_group = user.groups.filter(name=PLATFORM_GROUP).exists()
    if platform and not in_platform_group:
        user.groups.add(_platform_group())
    elif not platform and in_platform_group:
        user.groups.remove(Group.objects.get(name=PLATFORM_GROUP))
    if platform:
        _platform_group()  # keeps its admin permissions complete as apps add models
    user._gp_is_platform = platform or user.is_superuser

    managed = list(Team.objects.exclude(idp_groups=[]).only("pk", "slug", "idp_groups"))
    wanted = {t.pk for t in managed if groups & set(t.idp_groups)}
    current = set(user.teams.filter(pk__in=[t.pk for t in managed]).values_list("pk", flat=True))
    if wanted - current:
        user.teams.add(*(wanted - current))
    if current - wanted:
        user.teams.remove(*(current - wanted))

    username = user.get_username()
    evidence = {"identity": identity, "groups": sorted(groups)}
    if was_platform != staff:
        audit_record(
            action="user.platform_role_synced",
            object_type="user",
            object_id=username,
            object_repr=username,
            changes={"platform": [was_platform, staff]},
            data=evidence,
            actor=username,
        )
    for team in managed:
        if team.pk in wanted ^ current:
            added = team.pk in wanted
            audit_record(
                action="team.members_synced",
                object_type="team",
                object_id=team.slug,
                object_repr=team.slug,
                team=team.slug,
                changes={"members": {"added" if added else "removed": [username]}},
                data=evidence,
                actor=username,
            )


def _locked_identity(kind: str, issuer: str, subject: str) -> ExternalIdentity | None:
    """The subject's identity, row-locked until the transaction ends, with its user; None at first sight."""
    return (
        ExternalIdentity.objects.select_for_update()
        .select_related("user")
        .filter(kind=kind, issuer=issuer, subject=subject)
        .first()
    )


def _new_user(username: str, *, email: str = "") -> User:
    """A user who signs in only through the identity provider (no password of the portal's)."""
    user = User(username=username, email=email)
    user.set_unusable_password()
    user.save()
    return user


def _touch(identity: ExternalIdentity) -> None:
    if (timezone.now() - identity.last_seen).total_seconds() > LAST_SEEN_RESOLUTION_SECONDS:
        identity.save(update_fields=["last_seen"])


def _platform_group() -> Group:
    group, _ = Group.objects.get_or_create(name=PLATFORM_GROUP)
    perms = Permission.objects.filter(content_type__app_label__in=PLATFORM_APPS)
    if group.permissions.count() != perms.count():
        group.permissions.set(perms)
    return group


def _free_username(preferred: str) -> str:
    """A username never shared with an existing account: SSO never signs anyone in as a local user."""
    base = preferred[:140] or "user"
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        candidate = f"{base}-{n}"
    return candidate
