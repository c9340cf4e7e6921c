"""Schemathesis over every operation of `/api/schema/`, in process through the WSGI app, on real Postgres.

Used two ways: `tests/hostile/test_schemathesis.py` runs a bounded number of examples per operation in `make test`;
`python -m tests.hostile.fuzz --examples 150` is the big run behind the figures in `docs/reliability.md` (it creates
and drops its own database, like the test runner, and queues reconciles on its own Redis database, never run).

Each operation is exercised with schema-valid (positive) and schema-invalid (negative) requests, with generated
path parameters and with the ids of real objects (the caller's own and another team's), as a team member and as
a platform engineer. A third variant, "wrong types", takes schema-valid bodies and replaces one field (nested
ones included) with a value of another JSON type: a list, an object, a number, a boolean, null or a string.
Checks: no 5xx, responses match their documented schema, status codes are documented.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase
from hypothesis.errors import HypothesisException

CHECK_NAMES = ("not_a_server_error", "response_schema_conformance", "status_code_conformance")


@dataclass
class Report:
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    per_operation: Counter = field(default_factory=Counter)
    # (operation, check title, status) -> one reproduction
    failures: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def summary(self) -> str:
        codes = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        lines = [f"{self.requests} requests over {len(self.per_operation)} operations; statuses {codes}"]
        lines += [f"FAIL {op} [{status}] {title}\n{repro}" for (op, title, status), repro in self.failures.items()]
        return "\n".join(lines)


def load_schema():
    import schemathesis

    from gatewayportal.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


def checks() -> list[Callable]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

    return [not_a_server_error, response_schema_conformance, status_code_conformance]


def known_path_parameters(world) -> list[dict[str, Any]]:
    """Real objects to aim at, besides generated ids: the caller's own and another team's."""
    return [
        {
            "id": world.own_service,
            "slug": world.own_team,
            "name": world.cluster,
            "source": world.ticketing_source,
            "traffic_type": "ingress",
        },
        {"id": world.other_service, "slug": world.other_team},
    ]


@contextmanager
def connection_kept() -> Iterator[None]:
    """What Django's test client does: otherwise the WSGI handler closes the connection after every response,
    and with it the transaction a test runs in."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def fuzz(schema, world, *, examples: int, tokens: list[str], report: Report | None = None) -> Report:
    """Every operation x identity x (positive, negative) x (generated, known) path parameters."""
    from schemathesis import GenerationMode

    report = report or Report()
    for operation in _operations(schema):
        needs_path = len(operation.path_parameters) > 0
        targets = [None, *known_path_parameters(world)] if needs_path else [None]
        for token in tokens:
            headers = {"Authorization": f"Token {token}"}
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE, WRONG_TYPES):
                for path_parameters in targets:
                    _exercise(operation, mode, headers, path_parameters, examples, report)
    return report


WRONG_TYPES = "wrong types"


def _wrong_types(strategy):
    """Schema-valid cases with one body field (at any depth) replaced by a value of another JSON type."""
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)
    )
    wrong = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=3))

    def paths(body: Any, prefix: tuple = ()) -> list[tuple]:
        found = []
        if isinstance(body, dict):
            for key, value in body.items():
                found += [(*prefix, key), *paths(value, (*prefix, key))]
        return found

    def replaced(case, path: tuple, value: Any):
        body = json.loads(json.dumps(case.body))
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        case.body = body
        return case

    def mutate(case):
        candidates = paths(case.body) if isinstance(case.body, dict) else []
        if not candidates:
            return st.just(case)
        return st.tuples(st.sampled_from(candidates), wrong).map(lambda pv: replaced(case, *pv))

    return strategy.flatmap(mutate)


def _operations(schema) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


def _exercise(operation, mode, headers, path_parameters, examples: int, report: Report) -> None:
    from schemathesis import GenerationMode
    from schemathesis.core.failures import FailureGroup

    wanted = _path_subset(operation, path_parameters)
    if path_parameters is not None and wanted is None:
        return
    if mode == WRONG_TYPES:
        strategy = _wrong_types(operation.as_strategy(generation_mode=GenerationMode.POSITIVE, path_parameters=wanted))
    else:
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=wanted)

    @hypothesis.settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    )
    @hypothesis.given(case=strategy)
    def run(case) -> None:
        report.requests += 1
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # noqa: BLE001 -- an error escaping the app (e.g. mid-stream) is a 500 too
            key = (operation.label, f"{type(exc).__name__} escaped the application", 500)
            report.failures.setdefault(key, f"{exc}\n{case.as_curl_command(headers=headers)}")
            return
        report.statuses[response.status_code] += 1
        report.per_operation[operation.label] += 1
        try:
            case.validate_response(response, checks=checks(), headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = (operation.label, failure.title, response.status_code)
                report.failures.setdefault(key, f"{failure.message}\n{case.as_curl_command(headers=headers)}")

    try:
        run()
    except HypothesisException:
        # e.g. no negative example exists for an operation without inputs: nothing to send.
        pass


def _path_subset(operation, known: dict[str, Any] | None) -> dict[str, Any] | None:
    if known is None:
        return None
    names = [p.name for p in operation.path_parameters]
    if not all(name in known for name in names):
        return None
    return {name: known[name] for name in names}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=150, help="Hypothesis examples per operation and variant.")
    args = parser.parse_args(argv)
    _configure_environment()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    started = time.monotonic()
    try:
        from tests.hostile.world import build_world

        world = build_world()
        schema = load_schema()
        report = fuzz(schema, world, examples=args.examples, tokens=[world.member_token, world.platform_token])
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()
        _flush_queue()
    print(report.summary())
    print(f"{time.monotonic() - started:.0f} s, {len(report.failures)} distinct failures")
    return 1 if report.failures else 0


def _configure_environment() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("TEST_DATABASE_NAME", "test_gp_fuzz")
    # Writes queue reconciles on a Redis database of our own that no worker reads; flushed at the end.
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/13")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "false")
    os.environ.setdefault("CELERY_QUEUE", "q_fuzz")
    os.environ.setdefault("KUBE_REQUEST_TIMEOUT_SECONDS", "1")
    os.environ.setdefault("TICKETING_RATE_LIMIT", "100000/min")
    os.environ.setdefault("LOG_LEVEL", "CRITICAL")


def _flush_queue() -> None:
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


if __name__ == "__main__":
    sys.exit(main())
