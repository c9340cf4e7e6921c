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
