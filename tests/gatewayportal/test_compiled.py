"""Reads compiled once (gatewayportal.compiled): the same rows as the queryset, whatever the values."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from gatewayportal.compiled import CompiledRead
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def by_name(username: str):
    return get_user_model().objects.filter(username=username).values_list("id", "is_staff", "date_joined")


def test_each_run_reads_with_its_own_values_and_the_orms_converters():
    alice, pat = make_user("alice"), make_user("pat", platform=True)
    read = CompiledRead(by_name, username=str)
    assert read.rows(username="alice") == list(by_name("alice")) == [(alice.pk, False, alice.date_joined)]
    assert read.rows(username="pat") == [(pat.pk, True, pat.date_joined)]
    assert read.rows(username="nobody") == []


def test_a_parameter_the_orm_does_not_send_as_it_is_is_refused():
    read = CompiledRead(lambda username: by_name(username.upper()), username=str)
    with pytest.raises(ValueError, match="one SQL parameter"):
        read.rows(username="alice")


def by_prefix(prefix: str, excluded):
    """A parameter used twice (once as a `startswith` pattern), and a UUID."""
    from services.models import GatewayServiceHost

    return (
        GatewayServiceHost.objects.filter(reversed_host__startswith=prefix)
        .exclude(service_id=excluded)
        .exclude(host=prefix)
        .order_by("host")
        .values_list("host", flat=False)
    )


def test_a_startswith_pattern_is_escaped_as_the_orm_escapes_it_and_a_uuid_is_a_parameter():
    import uuid

    from services.models import GatewayService, GatewayServiceHost
    from tests.factories import make_team

    team = make_team("payments")
    first, second = (
        GatewayService.objects.create(name=name, team=team, namespace="payments", traffic_type="ingress")
        for name in ("first", "second")
    )
    GatewayServiceHost.objects.all().delete()
    for service, host in ((first, "moc.elpmaxe.a"), (second, "moc.elpmaxe.b"), (second, "moc.elp_axe.c")):
        GatewayServiceHost.objects.create(service=service, host=host, reversed_host=host)
    read = CompiledRead(by_prefix, prefix=str, excluded=uuid.UUID)
    nobody = uuid.uuid4()
    runs = (("moc.elpmaxe.", nobody), ("moc.elpmaxe.", first.pk), ("moc.elp_", nobody), ("%", nobody))
    for prefix, excluded in runs:
        assert read.rows(prefix=prefix, excluded=excluded) == list(by_prefix(prefix, excluded)), prefix
    assert read.rows(prefix="moc.elp_", excluded=nobody) == [("moc.elp_axe.c",)]  # `_` is no wildcard
    assert read.rows(prefix="%", excluded=nobody) == []


def test_model_instances_are_made_as_the_orm_makes_them_with_the_fields_not_read_deferred():
    from gatewayportal.compiled import CompiledModelRead
    from services.models import Team
    from services.selectors import teams_by_slug, teams_for_user
    from tests.factories import make_team

    alice, pat, nobody = make_user("alice"), make_user("pat", platform=True), make_user("nobody")
    shop, payments = make_team("shop", members=[alice]), make_team("payments", members=[alice])
    make_team("other")
    read = CompiledModelRead(Team, ("id", "slug", "namespaces"), lambda slug: Team.objects.filter(slug=slug), slug=str)
    [found] = read.instances(slug="shop")
    assert found == shop and found.namespaces == ["shop"] and not found._state.adding
    assert found.get_deferred_fields() == {f.attname for f in Team._meta.concrete_fields} - {"id", "slug", "namespaces"}
    assert found.allowed_domains == ["shop.example.com"]  # a deferred field is read when asked for, as with `only`
    assert read.instances(slug="nobody") == []
    # A create's team look-up: the member's teams, every team for the platform, in slug order.
    for user in (alice, pat, nobody):
        teams = teams_by_slug(user)
        assert teams == list(teams_for_user(user).order_by("slug"))
        assert [t.allowed_domains for t in teams] == [t.allowed_domains for t in teams_for_user(user).order_by("slug")]
    assert teams_by_slug(alice) == [payments, shop]


def test_model_fields_are_read_in_the_models_order_whatever_the_callers():
    from gatewayportal.compiled import CompiledModelRead
    from services.models import Team
    from tests.factories import make_team

    make_team("payments")
    read = CompiledModelRead(Team, ("max_services", "slug", "id"), lambda: Team.objects.all())
    [team] = read.instances()
    assert (team.slug, team.max_services) == ("payments", Team.objects.get().max_services)
    with pytest.raises(ValueError, match="primary key"):
        CompiledModelRead(Team, ("slug",), lambda: Team.objects.all())
    with pytest.raises(ValueError, match="nickname"):
        CompiledModelRead(Team, ("id", "nickname"), lambda: Team.objects.all())


@pytest.mark.django_db(transaction=True)
def test_a_locking_read_compiled_in_a_transaction_is_refused_outside_one_as_the_orm_refuses_it():
    from django.db import transaction

    from gatewayportal.compiled import CompiledModelRead
    from services.models import Team
    from tests.factories import make_team

    team = make_team("payments")
    read = CompiledModelRead(Team, ("id", "slug"), lambda pk: Team.objects.select_for_update().filter(pk=pk), pk=int)
    with transaction.atomic():
        assert read.instances(pk=team.pk) == [team]
    with pytest.raises(transaction.TransactionManagementError, match="outside of a transaction"):
        read.instances(pk=team.pk)
