"""The worker's action: converge one (cluster, traffic type) Gateway to the database.

Reads the desired state, reads the live Gateway (and only the secrets it must), plans with the pure
`clusters.reconcile`, writes secrets, then the Gateway with its resourceVersion precondition, then
deletes secrets no longer used, and finally records statuses, state and audit events in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.actions import audit_record
from clusters import kube
from clusters.desired import Desired, collect_desired, gateway_settings, read_facts
from clusters.models import Cluster, GatewayState, gateway_lock_key
from clusters.reconcile import DesiredService, Outcome, Plan, SecretOp, plan_gateway
from gatewayportal import metrics
from gatewayportal.locks import try_advisory_lock
from gatewayportal.redis import redis_client
from services.actions import remove_finished_services
from services.choices import State
from services.models import GatewayServiceStatus
from services.rendering import port_name

logger = logging.getLogger(__name__)

MAX_CONFLICT_ROUNDS = 5
LOCK_TTL_SECONDS = 300
_CAUSE_SERVER = re.compile(r"spec\.servers\[(\d+)\]")


class GatewayBusy(Exception):
    """Another worker holds this gateway's lock; try again shortly."""


class ConflictStorm(kube.TransientError):
    """Every round of re-reading met a newer write by someone else; the task retries after a backoff."""


@contextlib.contextmanager
def gateway_lock(cluster_id: int, traffic_type: str) -> Iterator[None]:
    """One worker at a time per gateway, across every worker process and host.

    On Postgres a session advisory lock: it goes with the worker's connection, so a worker killed mid-reconcile
    (SIGKILL, OOM) frees its gateway at once. A Redis lock would stay held until its TTL ran out, so Redis
    serves only where there is no Postgres.
    """
    name = gateway_lock_key(cluster_id, traffic_type)
    if settings.REDIS_URL and connection.vendor != "postgresql":
        lock = redis_client().lock(name, timeout=LOCK_TTL_SECONDS, blocking_timeout=5)
        if not lock.acquire():
            raise GatewayBusy(name)
        try:
            yield
        finally:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
        return
    # Postgres. (SQLite without Redis: the embedded demo runs tasks in-process, one at a time; it is always taken.)
    with try_advisory_lock(name) as taken:
        if not taken:
            raise GatewayBusy(name)
        yield


def gateway_converge(
    *, cluster_id: int, traffic_type: str, verify_all: bool = False, record_conflicts: bool = True
) -> Plan | None:
    """Converge one gateway. Raises kube.TransientError (retry later) after recording it; None when skipped.

    With `record_conflicts=False` a ConflictStorm is raised without being recorded: another writer being busy
    is not a failure of the gateway while retries remain.
    """
    cluster = Cluster.objects.filter(pk=cluster_id).first()
    if cluster is None or not cluster.enabled:
        return None
    with gateway_lock(cluster_id, traffic_type), _timed(cluster.name, traffic_type):
        state, _ = GatewayState.objects.get_or_create(cluster=cluster, traffic_type=traffic_type)
        desired = collect_desired(cluster, traffic_type)
        if not (
            desired.items
            or desired.preset
            or state.managed_servers
            or state.secrets
            or _has_statuses(cluster, traffic_type)
        ):
            return None  # the portal has never had anything on this gateway: nothing to converge
        try:
            plan, live = _plan_and_write(cluster, traffic_type, state, desired, verify_all=verify_all)
        except kube.KubeError as exc:
            if isinstance(exc, ConflictStorm) and not record_conflicts:
                raise
            metrics.count_apply_failure(type(exc).__name__)
            _record_failure(cluster, traffic_type, state, desired, exc.message)
            if isinstance(exc, kube.PermanentError):
                return None
            raise
        _record_success(cluster, traffic_type, state, desired, plan, live)
        return plan


@contextlib.contextmanager
def _timed(cluster: str, traffic_type: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        metrics.observe_reconcile(cluster, traffic_type, time.monotonic() - started)


def _has_statuses(cluster: Cluster, traffic_type: str) -> bool:
    return GatewayServiceStatus.objects.filter(cluster=cluster, traffic_type=traffic_type).exists()


def _plan_and_write(
    cluster: Cluster, traffic_type: str, state: GatewayState, desired: Desired, *, verify_all: bool
) -> tuple[Plan, dict[str, Any]]:
    client = kube.client_for(cluster)
    client.remember_istio_api_version(cluster.istio_api_version)
    settings_ = gateway_settings(cluster, traffic_type)
    namespace, name = cluster.gateway_ref(traffic_type)
    excluded: dict[str, Outcome] = dict(desired.preset)
    for _ in range(MAX_CONFLICT_ROUNDS):
        try:
            live = client.get_gateway(namespace, name)
        except kube.NotFoundError:
            raise kube.PermanentError(f"Gateway {namespace}/{name} does not exist on cluster {cluster.name}")
        facts = read_facts(client, desired.items, settings_, state, verify_all=verify_all)
        plan = plan_gateway(live=live, desired=desired.items, settings=settings_, facts=facts, excluded=excluded)
        try:
            failed = _write_secrets(client, plan.secret_ops)
            if failed:
                excluded.update(failed)
                continue
            if plan.gateway is not None:
                written = client.replace_gateway(plan.gateway)
                live = written
            _delete_secrets(client, plan.secret_ops)
            return plan, live
        except kube.ConflictError:
            logger.info("conflict writing %s/%s on %s; re-reading", namespace, name, cluster.name)
            continue
        except kube.PermanentError as exc:
            rejected = _rejected_by_apiserver(exc, plan, live, desired.items)
            if not rejected:
                raise
            excluded.update(rejected)
    raise ConflictStorm(f"gave up after {MAX_CONFLICT_ROUNDS} rounds of conflicting writes; will retry")


def _write_secrets(client: kube.KubeClient, ops: list[SecretOp]) -> dict[str, Outcome]:
    """Create/update secrets before the Gateway refers to them; a refused one leaves its block out."""
    failed: dict[str, Outcome] = {}
    for op in ops:
        try:
            if op.action == "create":
                client.create_secret(op.body)
            elif op.action == "update":
                client.replace_secret(op.body)
        except kube.PermanentError as exc:
            failed[op.service_id] = Outcome(State.FAILED, f"secret {op.key}: {exc.message}")
    return failed


def _delete_secrets(client: kube.KubeClient, ops: list[SecretOp]) -> None:
    for op in ops:
        if op.action == "delete":
            client.delete_secret(op.namespace, op.name)


def _rejected_by_apiserver(
    exc: kube.PermanentError, plan: Plan, live: dict[str, Any], items: list[DesiredService]
) -> dict[str, Outcome]:
    """A 422 naming managed servers: leave those blocks out and try again; anything else is not ours to fix."""
    if exc.status != 422 or plan.gateway is None:
        return {}
    servers = plan.gateway["spec"]["servers"]
    managed = set(plan.managed_names)
    by_port = {port_name(item.spec): item for item in items if port_name(item.spec) in managed}
    rejected: dict[str, Outcome] = {}
    for cause in exc.causes:
        match = _CAUSE_SERVER.search(cause.get("field", ""))
        if not match or int(match.group(1)) >= len(servers):
            continue
        item = by_port.get(servers[int(match.group(1))].get("port", {}).get("name"))
        if item:
            rejected[item.service_id] = Outcome(
                State.REJECTED, f"the API server refused the block: {cause['field']}: {cause['message']}", item.revision
            )
    return rejected


# --- Recording --------------------------------------------------------------------------------------------------------


def _record_success(
    cluster: Cluster, traffic_type: str, state: GatewayState, desired: Desired, plan: Plan, live: dict[str, Any]
) -> None:
    outcomes = dict(plan.outcomes)
    for sid, waiting in desired.awaiting.items():
        if outcomes.get(sid, Outcome("")).state == State.APPLIED:
            outcomes[sid] = waiting
    refused = bool(plan.refused)
    with transaction.atomic():
        _write_statuses(cluster, traffic_type, desired, outcomes, remove_others=not refused)
        _audit_changes(cluster, traffic_type, state, desired, plan)
        if not refused:
            state.managed_servers = plan.managed_names
            state.managed_digest = plan.managed_digest
            state.secrets = plan.secrets_record
        state.resource_version = (live.get("metadata") or {}).get("resourceVersion", "")
        state.last_reconciled_at = timezone.now()
        state.last_result = "refused" if refused else "ok"
        state.last_message = plan.refused
        state.save()


def _record_failure(cluster: Cluster, traffic_type: str, state: GatewayState, desired: Desired, message: str) -> None:
    """A cluster error: services not yet converged here show it; the gateway keeps what it had."""
    outcomes = dict(desired.preset)
    for item in desired.items:
        outcomes.setdefault(item.service_id, Outcome(State.FAILED, message, item.revision))
    with transaction.atomic():
        _write_statuses(cluster, traffic_type, desired, outcomes, remove_others=False, keep_applied=True)
        if state.last_result != "failed" or state.last_message != message:
            audit_record(
                action="apply.failed",
                object_type="gateway",
                object_id=f"{cluster.name}/{traffic_type}",
                object_repr=_gateway_repr(cluster, traffic_type),
                cluster=cluster.name,
                data={"traffic_type": traffic_type, "message": message},
            )
        state.last_reconciled_at = timezone.now()
        state.last_result = "failed"
        state.last_message = message
        state.save()


def _write_statuses(
    cluster: Cluster,
    traffic_type: str,
    desired: Desired,
    outcomes: dict[str, Outcome],
    *,
    remove_others: bool,
    keep_applied: bool = False,
) -> None:
    existing = {
        str(s.service_id): s for s in GatewayServiceStatus.objects.filter(cluster=cluster, traffic_type=traffic_type)
    }
    to_create, to_update = [], []
    for sid, outcome in outcomes.items():
        status = existing.get(sid)
        if status is None:
            to_create.append(
                GatewayServiceStatus(
                    service_id=sid,
                    cluster=cluster,
                    traffic_type=traffic_type,
                    state=outcome.state,
                    revision=outcome.revision,
                    message=outcome.message,
                )
            )
            continue
        if keep_applied and status.state == State.APPLIED and status.revision == outcome.revision:
            continue
        if (status.state, status.revision, status.message) != (outcome.state, outcome.revision, outcome.message):
            status.state, status.revision, status.message = outcome.state, outcome.revision, outcome.message
            status.updated_at = timezone.now()
            to_update.append(status)
    GatewayServiceStatus.objects.bulk_create(to_create)
    GatewayServiceStatus.objects.bulk_update(to_update, ["state", "revision", "message", "updated_at"])
    if remove_others:
        gone = [sid for sid in existing if sid not in outcomes]
        if gone:
            GatewayServiceStatus.objects.filter(cluster=cluster, service_id__in=gone).delete()
            remove_finished_services(gone)


def _audit_changes(cluster: Cluster, traffic_type: str, state: GatewayState, desired: Desired, plan: Plan) -> None:
    if plan.gateway is not None:
        audit_record(
            action="gateway.applied",
            object_type="gateway",
            object_id=f"{cluster.name}/{traffic_type}",
            object_repr=_gateway_repr(cluster, traffic_type),
            cluster=cluster.name,
            data={"traffic_type": traffic_type, "servers": plan.servers_diff},
        )
        if plan.drift:
            audit_record(
                action="drift.healed",
                object_type="gateway",
                object_id=f"{cluster.name}/{traffic_type}",
                object_repr=_gateway_repr(cluster, traffic_type),
                cluster=cluster.name,
                data={"traffic_type": traffic_type, "servers": plan.servers_diff},
            )
    teams = {item.service_id: item.team for item in desired.items}
    for op in plan.secret_ops:
        if op.action in ("create", "update", "delete"):
            audit_record(
                action=f"secret.{op.action}d",
                object_type="secret",
                object_id=op.key,
                object_repr=op.key,
                team=teams.get(op.service_id),
                cluster=cluster.name,
                data={"traffic_type": traffic_type, "service": op.service_id},
            )


def _gateway_repr(cluster: Cluster, traffic_type: str) -> str:
    namespace, name = cluster.gateway_ref(traffic_type)
    return f"{cluster.name}:{namespace}/{name}"
