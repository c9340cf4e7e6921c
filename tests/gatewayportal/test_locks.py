"""The one advisory-lock helper: a named key is taken by one database session at a time."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from gatewayportal.locks import advisory_xact_lock, lock_number, try_advisory_lock

pytestmark = pytest.mark.django_db(transaction=True)


def test_names_hash_to_a_stable_signed_64_bit_number_and_numbers_are_kept():
    assert lock_number("gateway-port:ingress:443") == lock_number("gateway-port:ingress:443")
    assert lock_number("a") != lock_number("b")
    assert -(2**63) <= lock_number("a") < 2**63
    assert lock_number(7_402_113_551) == 7_402_113_551


def test_a_key_another_session_holds_is_not_taken_and_is_free_again_once_released():
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are a Postgres feature")
    other = connection.copy()
    try:
        with try_advisory_lock("gateway:1:ingress") as taken:
            assert taken
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_number("gateway:1:ingress")])
                assert cursor.fetchone()[0] is False
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_number("gateway:1:ingress")])
            assert cursor.fetchone()[0] is True
            with try_advisory_lock("gateway:1:ingress") as taken:
                assert not taken
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_number("gateway:1:ingress")])
    finally:
        other.close()


def test_a_transaction_lock_is_held_until_the_transaction_ends():
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are a Postgres feature")
    other = connection.copy()
    try:
        with transaction.atomic():
            advisory_xact_lock("audit-chain")
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_number("audit-chain")])
                assert cursor.fetchone()[0] is False
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_number("audit-chain")])
            assert cursor.fetchone()[0] is True
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_number("audit-chain")])
    finally:
        other.close()
