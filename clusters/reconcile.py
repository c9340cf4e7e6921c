"""Pure planner: desired services + the live Gateway (+ the secrets read) -> merged Gateway, secret plan, outcomes.

No ORM, no network. The worker (`clusters.converge`) gathers the inputs, calls `plan_gateway`, and carries
the plan out. The rules:

- The portal owns only the servers whose port name is listed in the managed-servers annotation (or that it
  recorded writing). Every other server is preserved as it is, in its order.
- A desired block that Istio could not merge with a server already accepted (same port name; a TLS-bearing
  server on the same port and bind with the same host; protocols that cannot share a port) is left out and
  its service is rejected there. Unmanaged servers and older services are accepted first.
- Secrets referenced by a block must be usable on that cluster, else the block is left out.
- The merged Gateway is validated as a whole; a managed block with an error is left out. Over 1 MiB,
  nothing is written at all.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services import certificates
from services.choices import State
from services.listeners import Clash, Listener, ListenerIndex, read_listener
from services.rendering import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MANAGED_SERVERS_ANNOTATION,
    GatewaySettings,
    render_secret,
    render_server,
    secret_name,
    secret_target_namespace,
)
from services.validation.istio import validate_gateway

MAX_GATEWAY_BYTES = 1024 * 1024
_SERVER_PATH = re.compile(r"^spec\.servers\[(\d+)\]")

SecretKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class DesiredService:
    """One service's revision that should run on this gateway. Order of a list of them = precedence."""

    service_id: str
    team: str
    revision: int
    spec: dict[str, Any]
    material: dict[str, Any] | None = None


@dataclass(frozen=True)
class Outcome:
    state: str
    message: str = ""
    revision: int | None = None


@dataclass(frozen=True)
class SecretOp:
    action: str  # create | update | delete | keep (already right; only recorded)
    namespace: str
    name: str
    service_id: str
    body: dict[str, Any] | None = None
    digest: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Facts:
    """What the worker read from the cluster besides the Gateway.

    `secrets` holds every secret it read ((namespace, name) -> object, or None when missing); a secret not in
    it was not read and is trusted to match `recorded_secrets` (what the portal wrote before: key -> record).
    """

    secrets: dict[SecretKey, dict[str, Any] | None] = field(default_factory=dict)
    namespaces: dict[str, bool] = field(default_factory=dict)
    recorded_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    recorded_servers: frozenset[str] = frozenset()
    recorded_digest: str = ""
    # Adopted servers (already right on the Gateway) that the annotation need not list until the next write.
    adopted_servers: frozenset[str] = frozenset()


@dataclass
class Plan:
    gateway: dict[str, Any] | None  # the body to PUT, or None when the live Gateway is already right
    servers: list[dict[str, Any]]
    managed_names: list[str]
    managed_digest: str
    added: list[str]
    removed: list[str]
    changed: list[str]
    secret_ops: list[SecretOp]
    secrets_record: dict[str, dict[str, str]]
    outcomes: dict[str, Outcome]
    drift: bool
    refused: str = ""

    @property
    def servers_diff(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


def managed_names(gateway: Mapping[str, Any]) -> list[str]:
    """Port names listed in the managed-servers annotation (comma-separated)."""
    raw = ((gateway.get("metadata") or {}).get("annotations") or {}).get(MANAGED_SERVERS_ANNOTATION, "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def server_name(server: Mapping[str, Any]) -> str:
    port = server.get("port") if isinstance(server, Mapping) else None
    return str(port.get("name", "")) if isinstance(port, Mapping) else ""


def split_servers(
    gateway: Mapping[str, Any], also_managed: Iterable[str] = ()
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(unmanaged servers in order, managed servers by port name)."""
    owned = set(managed_names(gateway)) | set(also_managed)
    unmanaged: list[dict[str, Any]] = []
    managed: dict[str, dict[str, Any]] = {}
    for server in (gateway.get("spec") or {}).get("servers") or []:
        name = server_name(server)
        if name and name in owned:
            managed[name] = server
        else:
            unmanaged.append(server)
    return unmanaged, managed


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def managed_digest(managed: Mapping[str, dict[str, Any]]) -> str:
    return digest(sorted(managed.items()))


def secret_digest(secret: Mapping[str, Any]) -> str:
    """What the portal compares to decide whether a secret it owns must be rewritten."""
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return digest({"type": secret.get("type"), "data": secret.get("data") or {}, "labels": labels})


class PortIndex:
    """The servers accepted so far: port names, and their listeners for the §7 merge rules (`services.listeners`)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._listeners = ListenerIndex()
        self._who: list[str] = []

    def clash(self, server: Mapping[str, Any]) -> str | None:
        """Why this server cannot be merged with those accepted, or None."""
        name = server_name(server)
        if name in self.names:
            return f"port name {name!r} is already used by {self.names[name]}"
        current = read_listener(server, len(self._who))
        if current is None:
            return None
        earlier, clash = next(self._listeners.clashes(current), (None, None))
        if earlier is None or clash is None:
            return None
        return _clash_message(earlier, current, clash, self._who[earlier.index])

    def add(self, server: Mapping[str, Any], who: str) -> None:
        self.names[server_name(server)] = who
        listener = read_listener(server, len(self._who))
        self._who.append(who)
        if listener is not None:
            self._listeners.add(listener)


def _clash_message(earlier: Listener, current: Listener, clash: Clash, who: str) -> str:
    port = current.number
    if clash.reason == "shared_tls_host":
        return f"host {clash.host!r} on TLS port {port} is already served by {who}"
    if earlier.kind == "tcp" and current.kind == "tcp":
        return f"plain-text {current.protocol} cannot share port {port} with {earlier.protocol} ({who})"
    return (
        f"{current.protocol} cannot share port {port} with {earlier.protocol} ({who}); "
        "only HTTP-family servers merge on one plain-text port, and plain text cannot share with TLS"
    )


def _describe_unmanaged(server: Mapping[str, Any]) -> str:
    port = server.get("port") or {}
    return f"unmanaged server {server_name(server)!r} (port {port.get('number')})"


def _describe_service(spec: Mapping[str, Any]) -> str:
    return f"service {spec['namespace']}/{spec['name']}"


def plan_gateway(
    *,
    live: dict[str, Any],
    desired: list[DesiredService],
    settings: GatewaySettings,
    facts: Facts,
    excluded: Mapping[str, Outcome] | None = None,
) -> Plan:
    """The whole managed part of one Gateway, computed from scratch (desired state, not commands)."""
    excluded = excluded or {}
    unmanaged, live_managed = split_servers(live, facts.recorded_servers)
    index = PortIndex()
    for server in unmanaged:
        index.add(server, _describe_unmanaged(server))

    outcomes: dict[str, Outcome] = dict(excluded)
    accepted: list[tuple[DesiredService, dict[str, Any]]] = []
    secret_ops: list[SecretOp] = []
    # Secret names join name and namespace with '-' (a-b/c and a/b-c meet): the first service keeps the Secret.
    claimed: dict[SecretKey, str] = {}
    for item in desired:
        if item.service_id in excluded:
            continue
        server = render_server(item.spec, settings)
        reason = (
            index.clash(server) or _secret_claimed(item, settings, claimed) or _secret_problem(item, settings, facts)
        )
        if reason:
            outcomes[item.service_id] = Outcome(State.REJECTED, reason, item.revision)
            continue
        index.add(server, _describe_service(item.spec))
        if _owns_secret(item):
            claimed[_secret_key(item, settings)] = _describe_service(item.spec)
        accepted.append((item, server))

    live_servers = (live.get("spec") or {}).get("servers") or []
    converged = live_servers == unmanaged + [server for _, server in accepted]
    if not converged:
        # Only a Gateway about to be written needs validating; an unchanged one is never rewritten.
        accepted = _drop_invalid(live, unmanaged, accepted, outcomes)
    servers = unmanaged + [server for _, server in accepted]
    managed = {server_name(server): server for _, server in accepted}
    names = sorted(managed)
    merged = _merged_gateway(live, servers, names)

    size = len(json.dumps(merged, separators=(",", ":")).encode())
    if size > MAX_GATEWAY_BYTES:
        refusal = (
            f"the merged Gateway would be {size} bytes, over Kubernetes' 1 MiB object limit; nothing was written. "
            "Move some services to another gateway or cluster."
        )
        return _refused_plan(live, desired, excluded, facts, refusal)

    for item, _ in accepted:
        op = _secret_op(item, settings, facts)
        if op:
            secret_ops.append(op)
        outcomes[item.service_id] = Outcome(State.APPLIED, "", item.revision)

    wanted_secrets = {_secret_key_str(item, settings) for item, _ in accepted if _owns_secret(item)}
    record = {key: value for key, value in facts.recorded_secrets.items() if key in wanted_secrets}
    for op in secret_ops:
        record[op.key] = {"digest": op.digest, "service": op.service_id}
    for key, value in sorted(facts.recorded_secrets.items()):
        if key not in wanted_secrets:
            namespace, name = key.split("/", 1)
            secret_ops.append(SecretOp("delete", namespace, name, value.get("service", "")))

    # An adopted server is managed without being listed in the annotation: a Gateway whose servers are already
    # right is not written just to list it (the annotation catches up with the next write). A dropped annotation
    # is still healed for every other server.
    listed = set(managed_names(live))
    unchanged = live_servers == servers and listed <= set(names) <= listed | facts.adopted_servers
    return Plan(
        gateway=None if unchanged else merged,
        servers=servers,
        managed_names=names,
        managed_digest=managed_digest(managed),
        added=sorted(set(managed) - set(live_managed)),
        removed=sorted(set(live_managed) - set(managed)),
        changed=sorted(n for n in set(managed) & set(live_managed) if managed[n] != live_managed[n]),
        secret_ops=secret_ops,
        secrets_record=record,
        outcomes=outcomes,
        drift=bool(facts.recorded_digest) and facts.recorded_digest != managed_digest(live_managed),
    )


def _merged_gateway(live: dict[str, Any], servers: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    merged = copy.deepcopy(live)
    metadata = merged.setdefault("metadata", {})
    annotations = metadata.get("annotations") or {}
    if names:
        annotations[MANAGED_SERVERS_ANNOTATION] = ",".join(names)
    else:
        annotations.pop(MANAGED_SERVERS_ANNOTATION, None)
    metadata["annotations"] = annotations
    merged.setdefault("spec", {})["servers"] = servers
    return merged


def _drop_invalid(
    live: dict[str, Any],
    unmanaged: list[dict[str, Any]],
    accepted: list[tuple[DesiredService, dict[str, Any]]],
    outcomes: dict[str, Outcome],
) -> list[tuple[DesiredService, dict[str, Any]]]:
    """Validate the merged Gateway; managed blocks with an error are left out (unmanaged ones are not ours).

    One pass is enough: every error is about one server on its own, or a later duplicate port name, and leaving
    servers out never gives another server an error.
    """
    servers = unmanaged + [server for _, server in accepted]
    bad: dict[int, str] = {}
    for issue in validate_gateway(_merged_gateway(live, servers, [])):
        match = _SERVER_PATH.match(issue.path)
        if issue.severity == "error" and match and int(match.group(1)) >= len(unmanaged):
            bad.setdefault(int(match.group(1)) - len(unmanaged), f"{issue.path}: {issue.message}")
    for position, message in bad.items():
        item = accepted[position][0]
        outcomes[item.service_id] = Outcome(
            State.REJECTED, f"the merged Gateway would be invalid: {message}", item.revision
        )
    return [pair for position, pair in enumerate(accepted) if position not in bad]


def _refused_plan(
    live: dict[str, Any],
    desired: list[DesiredService],
    excluded: Mapping[str, Outcome],
    facts: Facts,
    refusal: str,
) -> Plan:
    unmanaged, live_managed = split_servers(live, facts.recorded_servers)
    outcomes = dict(excluded)
    for item in desired:
        outcomes.setdefault(item.service_id, Outcome(State.FAILED, refusal, item.revision))
    return Plan(
        gateway=None,
        servers=(live.get("spec") or {}).get("servers") or [],
        managed_names=sorted(live_managed),
        managed_digest=managed_digest(live_managed),
        added=[],
        removed=[],
        changed=[],
        secret_ops=[],
        secrets_record=dict(facts.recorded_secrets),
        outcomes=outcomes,
        drift=False,
        refused=refusal,
    )


# --- Secrets --------------------------------------------------------------------------------------------------------


def _owns_secret(item: DesiredService) -> bool:
    return "tls_secret" in (item.spec.get("tls_options") or {}) and bool(item.material)


def _secret_key(item: DesiredService, settings: GatewaySettings) -> SecretKey:
    return secret_target_namespace(item.spec, settings), secret_name(item.spec)


def _secret_key_str(item: DesiredService, settings: GatewaySettings) -> str:
    namespace, name = _secret_key(item, settings)
    return f"{namespace}/{name}"


def desired_secret(item: DesiredService, settings: GatewaySettings) -> dict[str, Any] | None:
    return render_secret(item.spec, item.material, settings, service_id=item.service_id, team=item.team)


def reads_needed(
    desired: list[DesiredService],
    settings: GatewaySettings,
    recorded_secrets: Mapping[str, Mapping[str, str]],
    *,
    verify_all: bool,
) -> tuple[list[SecretKey], list[str]]:
    """Which secrets and namespaces the worker must read before planning.

    Secrets the portal wrote and whose content is unchanged since are trusted (an idle reconcile reads only
    the Gateway) unless `verify_all` (the periodic sweep). Referenced secrets are always read.
    """
    secrets: list[SecretKey] = []
    namespaces: list[str] = []
    for item in desired:
        tls_options = item.spec.get("tls_options") or {}
        if "tls_secret_ref" in tls_options:
            secrets.append((settings.secret_namespace, tls_options["tls_secret_ref"]["secret_name"]))
        elif _owns_secret(item):
            key = _secret_key(item, settings)
            body = desired_secret(item, settings)
            recorded = recorded_secrets.get(f"{key[0]}/{key[1]}", {})
            if verify_all or body is None or recorded.get("digest") != secret_digest(body):
                secrets.append(key)
                if item.spec.get("mode") == "PASSTHROUGH":
                    namespaces.append(key[0])
    return secrets, sorted(set(namespaces))


def _secret_claimed(item: DesiredService, settings: GatewaySettings, claimed: Mapping[SecretKey, str]) -> str | None:
    key = _secret_key(item, settings)
    if _owns_secret(item) and key in claimed:
        return f"secret {key[0]}/{key[1]} is already used by {claimed[key]}; rename this service"
    return None


def _secret_problem(item: DesiredService, settings: GatewaySettings, facts: Facts) -> str | None:
    tls_options = item.spec.get("tls_options") or {}
    if "tls_secret_ref" in tls_options:
        return _referenced_secret_problem(tls_options["tls_secret_ref"]["secret_name"], settings, facts)
    if not _owns_secret(item):
        return None
    namespace, name = _secret_key(item, settings)
    if facts.namespaces.get(namespace) is False:
        return (
            f"namespace {namespace!r} does not exist on this cluster; "
            "PASSTHROUGH secrets go to the service's own namespace"
        )
    live = facts.secrets.get((namespace, name))
    if live is not None and ((live.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
        return f"secret {namespace}/{name} already exists and was not created by the portal; it is left untouched"
    return None


def _referenced_secret_problem(name: str, settings: GatewaySettings, facts: Facts) -> str | None:
    namespace = settings.secret_namespace
    secret = facts.secrets.get((namespace, name))
    if secret is None:
        return f"tls_secret_ref: secret {namespace}/{name} does not exist on this cluster"
    data = secret.get("data") or {}
    if "tls.crt" not in data or "tls.key" not in data:
        return f"tls_secret_ref: secret {namespace}/{name} has no tls.crt and tls.key"
    problem = certificates.inspect_secret_data(data["tls.crt"], data["tls.key"])
    return f"tls_secret_ref: secret {namespace}/{name}: {problem}" if problem else None


def _secret_op(item: DesiredService, settings: GatewaySettings, facts: Facts) -> SecretOp | None:
    body = desired_secret(item, settings) if _owns_secret(item) else None
    if body is None:
        return None
    namespace, name = _secret_key(item, settings)
    wanted = secret_digest(body)
    if (namespace, name) not in facts.secrets:
        # Not read: trusted to be as recorded (reads_needed reads it whenever the record differs).
        return None
    live = facts.secrets[(namespace, name)]
    if live is None:
        return SecretOp("create", namespace, name, item.service_id, body, wanted)
    if secret_digest(live) == wanted:
        return SecretOp("keep", namespace, name, item.service_id, None, wanted)
    body = copy.deepcopy(body)
    body["metadata"]["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion")
    return SecretOp("update", namespace, name, item.service_id, body, wanted)
