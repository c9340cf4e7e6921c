"""What should run on one gateway (read from the database) and the cluster facts the planner needs.

Read by the worker (`clusters.converge`) and by the read-only views of a gateway (`clusters.selectors`).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import operator
import uuid
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Q, TextField
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast

from clusters import kube
from clusters.models import Cluster, GatewayState
from clusters.reconcile import DesiredService, Facts, Outcome, reads_needed, wants_material
from services.choices import Approval, State
from services.models import GatewayService, GatewayServiceRevision, GatewayServiceStatus
from services.rendering import GatewaySettings, digest, render_server, secret_name, secret_target_namespace
from services.targeting import allowed, targets
from services.validation.istio import validate_server


class Run(NamedTuple):
    """One revision that should run on the gateway, as read: what the desired digest needs. The rest (`Texts`) is
    read only when the gateway is planned: an idle reconcile reads no spec, no stored block."""

    service_id: str
    revision: int
    revision_pk: int
    block_digest: str
    secret_digest: str
    secret_ref: str  # tls_options.tls_secret_ref.secret_name ("" when none)

    def item(self, texts: Texts, spec: dict[str, Any], block: dict[str, Any] | None) -> DesiredService:
        """The run for the planner, with its spec and stored block decoded (`decode_texts`)."""
        return DesiredService(
            self.service_id,
            texts.team,
            self.revision,
            spec,
            block=block,
            block_digest=self.block_digest,
            secret_digest=self.secret_digest,
            created=texts.created.timestamp(),
            revision_pk=self.revision_pk,
        )


class Texts(NamedTuple):
    """What planning needs of a run beyond `Run`: its spec and stored block as JSON text, its service's team and
    creation time."""

    spec_json: str
    block_json: str | None
    team: str
    created: datetime.datetime


@dataclass
class Desired:
    runs: list[Run] = field(default_factory=list)
    # Outcomes decided before looking at the cluster (approval gates).
    preset: dict[str, Outcome] = field(default_factory=dict)
    # Outcomes to show instead of "applied" when the block runs (an older approved revision).
    awaiting: dict[str, Outcome] = field(default_factory=dict)

    @functools.cached_property
    def texts(self) -> dict[int, Texts]:
        """Each run's `Texts`, by revision pk: one query, the first time they are needed. A revision never changes
        once written, so they are the ones the runs were read with; one gone since (its service deleted) is left
        out of the plan, and the next reconcile sees a different digest."""
        return _revision_texts([run.revision_pk for run in self.runs])

    @functools.cached_property
    def items(self) -> list[DesiredService]:
        """The runs for the planner, specs decoded (once)."""
        texts = self.texts
        runs = [(run, texts[run.revision_pk]) for run in self.runs if run.revision_pk in texts]
        decoded = decode_texts([part for _, text in runs for part in (text.spec_json, text.block_json)])
        return [run.item(text, decoded[2 * i], decoded[2 * i + 1]) for i, (run, text) in enumerate(runs)]


def decode_texts(texts: list[str | None]) -> list[Any]:
    """JSON texts as read from the database (None for SQL NULL, and "" as before for no value), decoded in one
    call: one array of them all is parsed in C, where a call per text costs as much again in Python (thousands of
    specs and blocks). Each text holds one JSON value (the databases store only valid JSON); should one ever hold
    more, the values would no longer line up with their texts, so that is refused rather than decoded."""
    decoded = json.loads("[" + ",".join(text or "null" for text in texts) + "]")
    if len(decoded) != len(texts):
        raise ValueError(f"{len(texts)} JSON texts decoded as {len(decoded)} values; a text holds more than one")
    return decoded


def _revision_texts(pks: list[int]) -> dict[int, Texts]:
    if not pks:
        return {}
    rows = (
        GatewayServiceRevision.objects.annotate(
            spec_text=Cast("spec", TextField()), block_text=Cast("rendered_block", TextField())
        )
        .order_by()
        .values_list("pk", "spec_text", "block_text", "service__team__slug", "service__created_at")
    )
    texts: dict[int, Texts] = {}
    # One query on Postgres; on SQLite (the embedded demo), which caps a statement's parameters, batches.
    batch = len(pks) if connection.vendor == "postgresql" else 500
    for start in range(0, len(pks), batch):
        texts.update((row[0], Texts._make(row[1:])) for row in rows.filter(pk__in=pks[start : start + batch]))
    return texts


def gateway_settings(cluster: Cluster, traffic_type: str) -> GatewaySettings:
    placeholder = cluster.placeholder_server
    if not isinstance(placeholder, dict) or not placeholder or validate_server(placeholder):
        placeholder = None  # unset or not a server Istio accepts: the default one
    return GatewaySettings(
        namespace_scoped_hosts=cluster.namespace_scoped_hosts,
        secret_namespace=cluster.secret_namespace(traffic_type),
        placeholder=placeholder,
    )


def desired_digest(desired: Desired, settings_: GatewaySettings) -> str:
    """One digest of everything the gateway's managed part and its statuses are computed from.

    From the stored digests of each revision: no spec is decoded, no block rendered (unless a revision predates
    stored renderings)."""
    # Per run: service id, revision, block digest, Secret digest, Secret reference (a tuple encodes as a list).
    items = [
        _digested(run)
        if run.block_digest
        else (run.service_id, run.revision, _rendered_digest(desired, run), run.secret_digest, run.secret_ref)
        for run in desired.runs
    ]
    outcomes = {
        kind: sorted([sid, o.state, o.message, o.revision] for sid, o in found.items())
        for kind, found in (("preset", desired.preset), ("awaiting", desired.awaiting))
    }
    setting = [settings_.namespace_scoped_hosts, settings_.secret_namespace, settings_.placeholder]
    return digest([setting, items, outcomes])


# What of a `Run` goes into the digest, picked by name.
_digested = operator.itemgetter(
    *(Run._fields.index(name) for name in ("service_id", "revision", "block_digest", "secret_digest", "secret_ref"))
)


def _rendered_digest(desired: Desired, run: Run) -> str:
    """The digest of a block rendered from the spec: a revision written before blocks were stored."""
    if run.revision_pk not in desired.texts:
        return ""  # gone since it was read (its service deleted): left out of the plan
    spec_json = desired.texts[run.revision_pk].spec_json
    return digest(render_server(json.loads(spec_json), GatewaySettings(namespace_scoped_hosts=False)))


# Per revision kind: its id, number, approval, stored digests, then (as text) the spec's targeting keys and its Secret
# reference: plain strings, so that reading thousands of rows decodes no JSON (and no spec or block is read).
_REVISION_FIELDS = ("id", "number", "approval", "block_digest", "secret_digest")
_REVISION_TEXTS = {"clusters": "clusters", "selector": "cluster_selector"}  # keys of the revision's spec


class _Revision(NamedTuple):
    id: int
    number: int
    approval: str
    block_digest: str
    secret_digest: str
    clusters: str | None
    selector: str | None
    secret_ref: str | None

    def target(self) -> dict[str, Any]:
        """The part of the spec `services.targeting.targets` reads."""
        return {"clusters": _decoded(self.clusters), "cluster_selector": _decoded(self.selector)}

    @staticmethod
    def places(at: dict[str, int], kind: str, index: int) -> list[int]:
        """Where the fields of the `kind` revision (current_revision, approved_revision: the `index`th kind read)
        stand in a `collect_desired` row, in field order (its id first), found by name through `at`: worked out
        once per query, not once per row."""
        names = [f"{kind}__{name}" for name in _REVISION_FIELDS]
        names += [f"r{index}_{name}" for name in (*_REVISION_TEXTS, "secret_ref")]
        return [at[name] for name in names]


@functools.lru_cache(maxsize=1024)
def _decoded(text: str | None) -> Any:
    """JSON text as read (a team's limits, a spec's cluster list or selector), decoded once per distinct value."""
    return None if text is None else json.loads(text)


def collect_desired(cluster: Cluster, traffic_type: str, *, planned: bool = False) -> Desired:
    """Every live revision that should run on this gateway, oldest service first (older blocks win clashes).

    One query of plain values: no model instances, no private keys (`load_material` reads those only for the
    secrets about to be written), no spec or stored block (read by `Desired.texts` only if the gateway is
    planned), every JSON value as text: the targeting keys and the teams' limits are decoded once per distinct
    value. When the caller knows the gateway will be `planned` (it cannot be idle), the same query reads the
    `Texts` too.
    """
    desired = Desired()
    gated = cluster.requires_approval
    kinds = ("current_revision", "approved_revision") if gated else ("current_revision",)
    columns: list[str] = []
    annotations: dict[str, Any] = {
        "sid": Cast("id", TextField()),
        "allowed_names": Cast("team__allowed_clusters", TextField()),
        "allowed_selector": Cast("team__allowed_cluster_selector", TextField()),
    }
    if planned:
        columns += ["team__slug", "created_at"]
    for index, kind in enumerate(kinds):
        columns += [f"{kind}__{name}" for name in _REVISION_FIELDS]
        if planned:
            annotations[f"r{index}_spec"] = Cast(f"{kind}__spec", TextField())
            annotations[f"r{index}_block"] = Cast(f"{kind}__rendered_block", TextField())
        # JSON keys as transforms, never as `spec__key` paths: Django resolves such a path by first trying it as
        # fields, and the exception it keeps from that try ties this call's frames into a reference cycle, which
        # would keep everything the reconcile holds alive until the cyclic collector runs.
        for name, key in _REVISION_TEXTS.items():
            annotations[f"r{index}_{name}"] = Cast(KeyTransform(key, f"{kind}__spec"), TextField())
        annotations[f"r{index}_secret_ref"] = KeyTextTransform(
            "secret_name", KeyTransform("tls_secret_ref", KeyTransform("tls_options", f"{kind}__spec"))
        )
    # Tuples, not dicts (thousands of rows), read by name: `at` gives each named value's place in a row.
    fields = [*columns, *annotations]
    at = {field: place for place, field in enumerate(fields)}
    # Per kind: the place of its revision's id (null when the service has none), and a picker of its fields.
    revision_places = [
        (places[0], operator.itemgetter(*places))
        for places in (_Revision.places(at, kind, index) for index, kind in enumerate(kinds))
    ]
    make_revision = _Revision._make
    sid_at = at["sid"]
    texts: dict[int, Texts] = {}
    if planned:
        running = len(kinds) - 1  # the kind whose revision runs: the approved one when gated
        texts_pick = operator.itemgetter(
            at[f"r{running}_spec"], at[f"r{running}_block"], at["team__slug"], at["created_at"]
        )
    names_at, selector_at = at["allowed_names"], at["allowed_selector"]
    rows = (
        GatewayService.objects.filter(traffic_type=traffic_type, deleting_at__isnull=True)
        .filter(_may_target(cluster, kinds))
        .annotate(**annotations)
        .order_by("created_at", "id")
        .values_list(*fields)
    )
    landed: set[str] | None = None  # services with a status here; read only when a team's limits exclude one
    # Verdicts by the JSON text they are decided from: thousands of services share a few targets and teams.
    targeted: dict[tuple[str | None, str | None], bool] = {}
    permitted: dict[tuple[str | None, str | None], bool] = {}

    def lands(revision: _Revision, sid: str, names: str | None, selector: str | None) -> bool:
        nonlocal landed
        target = (revision.clusters, revision.selector)
        if target not in targeted:
            targeted[target] = _targets(revision.target(), cluster)
        if not targeted[target]:
            return False
        limits = (names, selector)
        if limits not in permitted:
            permitted[limits] = allowed(
                cluster.name, cluster.labels, names=_decoded(names), selector=_decoded(selector)
            )
        if permitted[limits]:
            return True
        if landed is None:
            statuses = GatewayServiceStatus.objects.filter(cluster=cluster).values_list("service_id", flat=True)
            landed = {str(service_id) for service_id in statuses}
        return sid in landed

    postgres = connection.vendor == "postgresql"
    for row in rows:
        sid, allowed_names, selector = row[sid_at], row[names_at], row[selector_at]
        if not postgres:
            sid = str(uuid.UUID(sid))  # SQLite keeps a UUID as 32 hex digits
        revisions = [None if row[first] is None else make_revision(pick(row)) for first, pick in revision_places]
        current = revisions[0]
        runs = revisions[1] if gated else current
        pending = gated and current is not None and current.approval == Approval.PENDING
        waiting = pending and lands(current, sid, allowed_names, selector)
        if runs is not None and lands(runs, sid, allowed_names, selector):
            desired.runs.append(
                Run(sid, runs.number, runs.id, runs.block_digest, runs.secret_digest, runs.secret_ref or "")
            )
            if planned:
                texts[runs.id] = Texts._make(texts_pick(row))
            if pending:
                what = "" if waiting else " (its removal from this cluster)"
                desired.awaiting[sid] = Outcome(
                    State.AWAITING_APPROVAL,
                    f"revision {runs.number} runs here; revision {current.number}{what} awaits approval",
                    runs.number,
                )
        elif waiting:
            desired.preset[sid] = Outcome(
                State.AWAITING_APPROVAL, f"revision {current.number} awaits approval before it runs on this cluster"
            )
        elif (
            gated and current and current.approval == Approval.REJECTED and lands(current, sid, allowed_names, selector)
        ):
            desired.preset[sid] = Outcome(
                State.REJECTED, f"revision {current.number} was rejected and no approved revision runs on this cluster"
            )
    if planned:
        desired.__dict__["texts"] = texts  # read already: `Desired.texts` makes no query
    return desired


def _may_target(cluster: Cluster, kinds: tuple[str, ...]) -> Q:
    """On Postgres, the services whose revision names the cluster or has a selector its labels satisfy (JSON
    containment, evaluated by the database): a gateway reads its own services, not every service of every cluster.
    A superset of what lands (an empty selector passes here); `_targets` decides. Elsewhere (SQLite, the embedded
    demo) every service is read and `_targets` alone decides."""
    if connection.vendor != "postgresql":
        return Q()
    condition = Q()
    for kind in kinds:
        condition |= Q(**{f"{kind}__spec__clusters__contains": [cluster.name]})
        condition |= Q(**{f"{kind}__spec__cluster_selector__contained_by": cluster.labels or {}})
    return condition


def _targets(spec: dict[str, Any], cluster: Cluster) -> bool:
    return targets(spec, cluster_name=cluster.name, labels=cluster.labels, enabled=cluster.enabled)


def load_material(
    items: list[DesiredService], read: set[tuple[str, str]], settings_: GatewaySettings
) -> list[DesiredService]:
    """Load (decrypt) the TLS material of the blocks whose Secrets were `read`, and of any without stored digests."""
    needed = {
        item.revision_pk
        for item in items
        if item.material is None
        and item.revision_pk is not None
        and "tls_secret" in (item.spec.get("tls_options") or {})
        and (wants_material(item) or (secret_target_namespace(item.spec, settings_), secret_name(item.spec)) in read)
    }
    if not needed:
        return items
    materials = dict(GatewayServiceRevision.objects.filter(pk__in=needed).values_list("pk", "tls_material"))
    return [
        dataclasses.replace(item, material=materials.get(item.revision_pk)) if item.revision_pk in needed else item
        for item in items
    ]


def read_facts(
    client: kube.KubeClient,
    items: list[DesiredService],
    settings_: GatewaySettings,
    state: GatewayState,
    *,
    verify_all: bool,
) -> Facts:
    secret_keys, namespaces = reads_needed(items, settings_, state.secrets, verify_all=verify_all)
    return Facts(
        secrets={key: client.get_secret(*key) for key in secret_keys},
        namespaces={ns: client.namespace_exists(ns) for ns in namespaces},
        recorded_secrets=dict(state.secrets),
        recorded_servers=frozenset(state.managed_servers),
        recorded_digest=state.managed_digest,
        adopted_servers=frozenset(state.adopted_servers),
    )
