"""The worker's action: converge one (cluster, traffic type) Gateway to the database.

Reads the desired state, reads the live Gateway (and only the secrets it must), plans with the pure
`clusters.reconcile`, writes secrets, then the Gateway with its resourceVersion precondition, then
deletes secrets no longer used, and finally records statuses, state and audit events in one transaction.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import re
import time
from collections.abc import Iterator
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import FilteredRelation, Q
from django.utils import timezone

from audit.actions import audit_event, audit_record_many
from audit.models import AuditEvent
from clusters import kube
from clusters.desired import Desired, collect_desired, desired_digest, gateway_settings, load_material, read_facts
from clusters.models import Cluster, GatewayState, gateway_lock_key
from clusters.reconcile import DesiredService, Facts, Outcome, Plan, SecretOp, plan_gateway
from gatewayportal import metrics
from gatewayportal.locks import try_advisory_lock
from gatewayportal.redis import redis_client
from services.actions import remove_finished_services
from services.choices import State
from services.models import GatewayServiceStatus
from services.rendering import GatewaySettings, port_name

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
    with collector_paused(), gateway_lock(cluster_id, traffic_type):
        cluster, state = _cluster_and_state(cluster_id, traffic_type)
        if cluster is None or not cluster.enabled:
            return None
        with _timed(cluster.name, traffic_type):
            return _converge(cluster, traffic_type, state, verify_all=verify_all, record_conflicts=record_conflicts)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for one reconcile.

    Planning a big gateway allocates hundreds of thousands of short-lived objects that hold no cycles (blocks,
    outcomes, rows), and each full collection they trigger walks the whole heap: about half the wall time of a
    5,000-service first reconcile. Reference counting still frees them as they go; cycles made meanwhile are
    collected once the collector resumes.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _cluster_and_state(cluster_id: int, traffic_type: str) -> tuple[Cluster | None, GatewayState]:
    """The cluster and its gateway's state in one query (a LEFT JOIN: a gateway never reconciled has no state row
    yet; it gets an unsaved one, saved with its first record)."""
    cluster = (
        Cluster.objects.annotate(
            state=FilteredRelation("gateway_states", condition=Q(gateway_states__traffic_type=traffic_type))
        )
        .select_related("state")
        .filter(pk=cluster_id)
        .order_by()
        .first()
    )
    state = getattr(cluster, "state", None) if cluster is not None else None
    if state is None:
        state = GatewayState(cluster=cluster, traffic_type=traffic_type)
    else:
        state.cluster = cluster
    return cluster, state


def _converge(
    cluster: Cluster, traffic_type: str, state: GatewayState, *, verify_all: bool, record_conflicts: bool
) -> Plan | None:
    # A gateway that cannot be idle is planned: its specs and stored blocks are read with the rest.
    desired = collect_desired(cluster, traffic_type, planned=verify_all or not _converged(state))
    if not (
        desired.runs or desired.preset or state.managed_servers or state.secrets or _has_statuses(cluster, traffic_type)
    ):
        return None  # the portal has never had anything on this gateway: nothing to converge
    settings_ = gateway_settings(cluster, traffic_type)
    wanted = desired_digest(desired, settings_)
    try:
        plan, live = _plan_and_write(cluster, traffic_type, state, desired, settings_, wanted, verify_all=verify_all)
    except kube.KubeError as exc:
        if isinstance(exc, ConflictStorm) and not record_conflicts:
            raise
        metrics.count_apply_failure(type(exc).__name__)
        _record_failure(cluster, traffic_type, state, desired, exc.message)
        if isinstance(exc, kube.PermanentError):
            return None
        raise
    if plan is None:
        GatewayState.objects.filter(pk=state.pk).update(last_reconciled_at=timezone.now())
        return idle_plan(state)
    _record_success(cluster, traffic_type, state, desired, plan, live, wanted)
    return plan


def idle_plan(state: GatewayState) -> Plan:
    """An idle reconcile's answer: the live Gateway is what the portal last wrote, and the database wants the same
    (its outcomes are the statuses recorded then)."""
    return Plan(
        gateway=None,
        servers=[],
        managed_names=list(state.managed_servers),
        managed_digest=state.managed_digest,
        added=[],
        removed=[],
        changed=[],
        secret_ops=[],
        secrets_record=dict(state.secrets),
        outcomes={},
        drift=False,
    )


@contextlib.contextmanager
def _timed(cluster: str, traffic_type: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        metrics.observe_reconcile(cluster, traffic_type, time.monotonic() - started)


def _has_statuses(cluster: Cluster, traffic_type: str) -> bool:
    return GatewayServiceStatus.objects.filter(cluster=cluster, traffic_type=traffic_type).exists()


def _converged(state: GatewayState) -> bool:
    """The last reconcile converged (what an idle one needs first)."""
    return state.pk is not None and state.last_result == "ok" and bool(state.resource_version)


def _looks_idle(state: GatewayState, wanted: str) -> bool:
    """The last reconcile converged and the database wants what it wanted then: idle unless someone has written
    the Gateway since (its resourceVersion is no longer the one the portal wrote or read)."""
    return _converged(state) and state.desired_digest == wanted


def _plan_and_write(
    cluster: Cluster,
    traffic_type: str,
    state: GatewayState,
    desired: Desired,
    settings_: GatewaySettings,
    wanted: str,
    *,
    verify_all: bool,
) -> tuple[Plan | None, dict[str, Any]]:
    """Plan and carry out; (None, live) when idle."""
    client = kube.client_for(cluster)
    client.remember_istio_api_version(cluster.istio_api_version)
    namespace, name = cluster.gateway_ref(traffic_type)
    excluded: dict[str, Outcome] = dict(desired.preset)
    items: list[DesiredService] | None = None  # decoded only once there is something to plan
    for attempt in range(MAX_CONFLICT_ROUNDS):
        try:
            if attempt == 0 and not verify_all and _looks_idle(state, wanted):
                # The Gateway's metadata alone decides: its servers are neither sent nor parsed.
                metadata = client.gateway_metadata(namespace, name)
                if metadata.get("resourceVersion") == state.resource_version:
                    return None, {"metadata": metadata}
            live = client.get_gateway(namespace, name)
        except kube.NotFoundError:
            raise kube.PermanentError(f"Gateway {namespace}/{name} does not exist on cluster {cluster.name}")
        items = load_material(desired.items if items is None else items, set(), settings_)  # without stored digests
        facts = read_facts(client, items, settings_, state, verify_all=verify_all)
        items = load_material(items, set(facts.secrets), settings_)
        plan = plan_gateway(live=live, desired=items, settings=settings_, facts=facts, excluded=excluded)
        try:
            failed = _write_secrets(client, plan.secret_ops)
            _remember_secrets(state, facts, plan.secret_ops, failed)
            if failed:
                excluded.update(failed)
                continue
            if plan.gateway is not None:
                try:
                    live = client.replace_gateway(plan.gateway)
                except kube.PermanentError as exc:
                    if not _is_refusal(exc):
                        raise
                    plan, live = _isolate_refusal(client, exc, live, items, settings_, facts, excluded)
            _delete_secrets(client, plan.secret_ops)
            return plan, live
        except kube.ConflictError:
            logger.info("conflict writing %s/%s on %s; re-reading", namespace, name, cluster.name)
            continue
    raise ConflictStorm(f"gave up after {MAX_CONFLICT_ROUNDS} rounds of conflicting writes; will retry")


def _remember_secrets(state: GatewayState, facts: Facts, ops: list[SecretOp], failed: dict[str, Outcome]) -> None:
    """Record every Secret written before the Gateway write can fail: none is ever orphaned on the cluster.

    A Secret recorded here and wanted by no block is deleted by a later plan (`plan_gateway`).
    """
    written = {
        op.key: {"digest": op.digest, "service": op.service_id}
        for op in ops
        if op.action in ("create", "update") and op.service_id not in failed
    }
    if not written:
        return
    facts.recorded_secrets.update(written)
    state.secrets = {**state.secrets, **written}
    if state.pk is None:
        state.save()
    else:
        GatewayState.objects.filter(pk=state.pk).update(secrets=state.secrets)


# --- Refusals -------------------------------------------------------------------------------------------------------


def _is_refusal(exc: kube.PermanentError) -> bool:
    """The API server or an admission webhook refused the Gateway's content (not our credentials)."""
    return exc.status in (400, 422) or (exc.status == 403 and "admission webhook" in exc.message)


def _isolate_refusal(
    client: kube.KubeClient,
    refusal: kube.PermanentError,
    live: dict[str, Any],
    items: list[DesiredService],
    settings_: GatewaySettings,
    facts: Facts,
    excluded: dict[str, Outcome],
) -> tuple[Plan, dict[str, Any]]:
    """Find the blocks the server refuses, leave them out with its message, and write everything else.

    A 422 naming `spec.servers[i]` points at its blocks. Otherwise the suspects are the blocks that changed
    since the live Gateway (the last one accepted), bisected: each attempt writes a subset, and a subset that
    passes stays written. When the live Gateway itself no longer passes, every managed block is a suspect.
    At most `4 * ceil(log2(n + 1)) + 4` writes; suspects still untested then are left out together. The
    refused blocks' statuses carry the server's message. Raises the refusal when no block of the portal is the
    cause.
    """
    original = live
    by_id = {item.service_id: item for item in items}
    current: dict[str, Any] = {"live": live, "writes": 0, "wrote": False}
    budget = 4 * math.ceil(math.log2(len(items) + 1)) + 4
    out_of_budget = kube.PermanentError("out of budget")

    def attempt(held: set[str], *, proof: bool = True) -> kube.PermanentError | None:
        """Write the plan without `held` (and without the culprits found so far); None when accepted."""
        plan = plan_gateway(
            live=current["live"],
            desired=items,
            settings=settings_,
            facts=facts,
            excluded={**excluded, **{sid: Outcome(State.REJECTED) for sid in held}},
        )
        # Nothing to change is no proof the server accepts it (its rules may have changed since the live Gateway
        # was written): the unchanged Gateway is written again, which admission reviews like any update.
        if plan.gateway is None and not proof:
            return None
        body = plan.gateway if plan.gateway is not None else current["live"]
        if current["writes"] >= budget:
            return out_of_budget
        current["writes"] += 1
        try:
            current["live"] = client.replace_gateway(body)
        except kube.PermanentError as exc:
            if not _is_refusal(exc):
                raise
            return exc
        current["wrote"] = current["wrote"] or plan.gateway is not None
        return None

    def reject(suspects: list[str], exc: kube.PermanentError) -> None:
        for sid in suspects:
            if exc is out_of_budget:
                message = (
                    f"the cluster refused the Gateway ({_refusal_text(refusal)}); this block was left out with "
                    f"{len(suspects) - 1} other(s) once {budget} writes had not isolated the cause"
                )
            else:
                message = f"the cluster refused the block: {_refusal_text(exc)}"
            excluded[sid] = Outcome(State.REJECTED, message, by_id[sid].revision)

    def bisect(suspects: list[str], exc: kube.PermanentError, rest: set[str]) -> None:
        """With `suspects` (and without `rest`) the Gateway is refused by `exc`; without them it passes."""
        if len(suspects) == 1 or exc is out_of_budget:
            reject(suspects, exc)
            return
        half = len(suspects) // 2
        left, right = suspects[:half], suspects[half:]
        failed = attempt(set(right) | rest)
        if failed is None:
            bisect(right, exc, rest)
            return
        bisect(left, failed, set(right) | rest)
        failed = attempt(rest)
        if failed is not None:
            bisect(right, failed, rest)

    plan = plan_gateway(live=original, desired=items, settings=settings_, facts=facts, excluded=excluded)
    pointed = _rejected_by_apiserver(refusal, plan, items)
    if pointed:
        excluded.update(pointed)
    else:
        applied = [sid for sid, outcome in plan.outcomes.items() if outcome.state == State.APPLIED]
        changed_names = set(plan.added) | set(plan.changed)
        changed = [sid for sid in applied if port_name(by_id[sid].spec) in changed_names]
        suspects = changed
        if not changed or attempt(set(changed)) is not None:
            suspects = applied  # the live Gateway itself is refused now: every block is a suspect
            if not applied or attempt(set(applied)) is not None:
                raise refusal  # refused without any block of the portal: not ours to fix
        bisect(suspects, refusal, set())
    if attempt(set(), proof=False) is not None:
        raise refusal
    final = plan_gateway(live=original, desired=items, settings=settings_, facts=facts, excluded=excluded)
    if not current["wrote"]:
        final.gateway = None
    return final, current["live"]


def _refusal_text(exc: kube.PermanentError) -> str:
    return exc.message


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


def _rejected_by_apiserver(exc: kube.PermanentError, plan: Plan, items: list[DesiredService]) -> dict[str, Outcome]:
    """A 422 naming managed servers: the blocks those causes point at."""
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
    cluster: Cluster,
    traffic_type: str,
    state: GatewayState,
    desired: Desired,
    plan: Plan,
    live: dict[str, Any],
    wanted: str,
) -> None:
    outcomes = dict(plan.outcomes)
    for sid, waiting in desired.awaiting.items():
        if outcomes.get(sid, Outcome("")).state == State.APPLIED:
            outcomes[sid] = waiting
    with transaction.atomic():
        _write_statuses(cluster, traffic_type, desired, outcomes, remove_others=True)
        _audit_changes(cluster, traffic_type, state, desired, plan)
        state.managed_servers = plan.managed_names
        state.managed_digest = plan.managed_digest
        state.secrets = plan.secrets_record
        # A block left out for a passing reason (a secret write that failed, a referenced Secret or a namespace
        # missing) is checked again by the next reconcile.
        passing = any(outcome.state == State.FAILED or outcome.recheck for outcome in outcomes.values())
        state.desired_digest = "" if passing else wanted
        state.resource_version = (live.get("metadata") or {}).get("resourceVersion", "")
        state.last_reconciled_at = timezone.now()
        state.last_result = "ok"
        state.last_message = ""
        state.save()


def _record_failure(cluster: Cluster, traffic_type: str, state: GatewayState, desired: Desired, message: str) -> None:
    """A cluster error: services not yet converged here show it; the gateway keeps what it had."""
    outcomes = dict(desired.preset)
    for item in desired.items:
        outcomes.setdefault(item.service_id, Outcome(State.FAILED, message, item.revision))
    with transaction.atomic():
        _write_statuses(cluster, traffic_type, desired, outcomes, remove_others=False, keep_applied=True)
        if state.last_result != "failed" or state.last_message != message:
            _audit_gateway(cluster, traffic_type, "apply.failed", message=message)
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
    # Plain values, not model instances: a gateway holds thousands of statuses and few of them change.
    existing = {
        str(row[1]): row
        for row in GatewayServiceStatus.objects.filter(cluster=cluster, traffic_type=traffic_type).values_list(
            "id", "service_id", "state", "revision", "message"
        )
    }
    to_create: list[tuple[str, Outcome]] = []
    to_update: list[tuple[int, Outcome]] = []
    for sid, outcome in outcomes.items():
        row = existing.get(sid)
        if row is None:
            to_create.append((sid, outcome))
            continue
        pk, _, state, revision, message = row
        if keep_applied and state == State.APPLIED and revision == outcome.revision:
            continue
        if (state, revision, message) != (outcome.state, outcome.revision, outcome.message):
            to_update.append((pk, outcome))
    _insert_statuses(cluster, traffic_type, to_create)
    _update_statuses(to_update)
    if remove_others:
        gone = [sid for sid in existing if sid not in outcomes]
        if gone:
            GatewayServiceStatus.objects.filter(cluster=cluster, service_id__in=gone).delete()
            remove_finished_services(gone)


# Thousands of statuses in one statement each, without a model instance per row: on Postgres from one JSON
# document of rows (json.dumps writes it in C; one parameter, where a list per column costs psycopg2 an ARRAY[...]
# of thousands of quoted literals and Postgres as many to parse), elsewhere (SQLite, the embedded demo) through
# the ORM. An item is [service id (insert) or status id (update), state, revision, message].
_STATUS_TABLE = GatewayServiceStatus._meta.db_table
_STATUS_VALUES = "item->>1, (item->>2)::integer, item->>3, %s"  # state, revision, message, updated_at


def _insert_statuses(cluster: Cluster, traffic_type: str, rows: list[tuple[str, Outcome]]) -> None:
    if not rows:
        return
    if connection.vendor != "postgresql":
        GatewayServiceStatus.objects.bulk_create(
            GatewayServiceStatus(
                service_id=sid,
                cluster=cluster,
                traffic_type=traffic_type,
                state=o.state,
                revision=o.revision,
                message=o.message,
            )
            for sid, o in rows
        )
        return
    document = json.dumps([[sid, o.state, o.revision, o.message] for sid, o in rows])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_STATUS_TABLE} (service_id, cluster_id, traffic_type, state, revision, message, updated_at) "
            f"SELECT (item->>0)::uuid, %s, %s, {_STATUS_VALUES} FROM json_array_elements(%s::json) AS item",
            [cluster.pk, traffic_type, timezone.now(), document],
        )


def _update_statuses(rows: list[tuple[int, Outcome]]) -> None:
    if not rows:
        return
    now = timezone.now()
    if connection.vendor != "postgresql":
        GatewayServiceStatus.objects.bulk_update(
            [
                GatewayServiceStatus(id=pk, state=o.state, revision=o.revision, message=o.message, updated_at=now)
                for pk, o in rows
            ],
            ["state", "revision", "message", "updated_at"],
        )
        return
    document = json.dumps([[pk, o.state, o.revision, o.message] for pk, o in rows])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_STATUS_TABLE} AS t SET (state, revision, message, updated_at) = ({_STATUS_VALUES}) "
            "FROM json_array_elements(%s::json) AS item WHERE t.id = (item->>0)::bigint",
            [now, document],
        )


def _audit_changes(cluster: Cluster, traffic_type: str, state: GatewayState, desired: Desired, plan: Plan) -> None:
    """The reconcile's audit events in one INSERT, however many Secrets it wrote."""
    events = []
    if plan.gateway is not None:
        for action in ("gateway.applied", "drift.healed") if plan.drift else ("gateway.applied",):
            events.append(_gateway_event(cluster, traffic_type, action, servers=plan.servers_diff))
    teams = {item.service_id: item.team for item in desired.items}
    for op in plan.secret_ops:
        if op.action in ("create", "update", "delete"):
            events.append(
                audit_event(
                    action=f"secret.{op.action}d",
                    object_type="secret",
                    object_id=op.key,
                    object_repr=op.key,
                    team=teams.get(op.service_id),
                    cluster=cluster.name,
                    data={"traffic_type": traffic_type, "service": op.service_id},
                )
            )
    audit_record_many(events)


def _audit_gateway(cluster: Cluster, traffic_type: str, action: str, **data: Any) -> None:
    audit_record_many([_gateway_event(cluster, traffic_type, action, **data)])


def _gateway_event(cluster: Cluster, traffic_type: str, action: str, **data: Any) -> AuditEvent:
    """An audit event about one of the cluster's gateways (applied, drift healed, apply failed)."""
    namespace, name = cluster.gateway_ref(traffic_type)
    return audit_event(
        action=action,
        object_type="gateway",
        object_id=f"{cluster.name}/{traffic_type}",
        object_repr=f"{cluster.name}:{namespace}/{name}",
        cluster=cluster.name,
        data={"traffic_type": traffic_type, **data},
    )
