"""Pure planner: desired services + the live Gateway (+ the secrets read) -> merged Gateway, secret plan, outcomes.

No ORM, no network. The worker (`clusters.converge`) gathers the inputs, calls `plan_gateway`, and carries
the plan out. The rules:

- The portal owns only the servers whose port name is listed in the managed-servers annotation (or that it
  recorded writing). Every other server is preserved as it is, in its order.
- A desired block that Istio could not merge with a server already accepted (same port name; a TLS-bearing
  server on the same port and bind with the same host; protocols that cannot share a port) is left out and
  its service is rejected there. Unmanaged servers and older services are accepted first.
- Secrets referenced by a block must be usable on that cluster, else the block is left out.
- The merged Gateway is validated as a whole, only when it is about to be written; a managed block with an
  error is left out. Over 1 MiB, the newest blocks (by revision creation) are left out until it fits.
- A Gateway is never written without servers (Istio's webhook refuses it): while no other server would
  remain, the cluster's placeholder server stands in, managed by the portal like its other blocks.
- Blocks come rendered from their revisions (`DesiredService.block`, rendered once when the revision was
  written); a missing one is rendered here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from services import certificates
from services.choices import State
from services.listeners import Clash, Listener, ListenerIndex, is_mapping, read_listener
from services.rendering import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MANAGED_SERVERS_ANNOTATION,
    GatewaySettings,
    digest,
    placeholder_server,
    render_secret,
    render_server,
    scoped_server,
    secret_digest,
    secret_name,
    secret_target_namespace,
)
from services.validation.istio import validate_server

MAX_GATEWAY_BYTES = 1024 * 1024

SecretKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class DesiredService:
    """One service's revision that should run on this gateway. Order of a list of them = precedence."""

    service_id: str
    team: str
    revision: int
    spec: dict[str, Any]
    material: dict[str, Any] | None = field(default=None, repr=False)  # the private key: never in a repr or a log
    # The revision's stored rendering (`services.rendering.render_revision`): its block with plain hosts, that
    # block's digest and its Secret's digest. Empty when the revision predates them: rendered here instead.
    block: dict[str, Any] | None = field(default=None, compare=False)
    block_digest: str = ""
    secret_digest: str = ""
    # When the service was created (seconds since the epoch): the newest services give way first to the size
    # limit, so a team changing a service it has long had keeps its place.
    created: float = 0.0
    revision_pk: int | None = None
    # The block brings its own certificate and key: the portal writes its Secret.
    owns_secret: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Asked several times per block while planning: worked out once (`dataclasses.replace` makes a new one).
        owns = "tls_secret" in (self.spec.get("tls_options") or {}) and bool(self.material or self.secret_digest)
        object.__setattr__(self, "owns_secret", owns)

    def server(self, settings: GatewaySettings) -> dict[str, Any]:
        if self.block is None:
            return render_server(self.spec, settings)
        return scoped_server(self.block, self.spec, settings)


@dataclass(frozen=True)
class Outcome:
    state: str
    message: str = ""
    revision: int | None = None
    # Depends on objects of the cluster other than the Gateway (a Secret or namespace that may appear any time):
    # worth checking again on the next reconcile, which therefore is never idle.
    recheck: bool = field(default=False, compare=False)


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

    @property
    def servers_diff(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


def managed_names(gateway: Mapping[str, Any]) -> list[str]:
    """Port names listed in the managed-servers annotation (comma-separated)."""
    raw = ((gateway.get("metadata") or {}).get("annotations") or {}).get(MANAGED_SERVERS_ANNOTATION, "")
    return [name.strip() for name in raw.split(",") if name.strip()]


def server_name(server: Mapping[str, Any]) -> str:
    port = server.get("port") if is_mapping(server) else None
    return str(port.get("name", "")) if is_mapping(port) else ""


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


def managed_digest(managed: Mapping[str, dict[str, Any]]) -> str:
    return digest(sorted(managed.items()))


class PortIndex:
    """The servers accepted so far: port names, and their listeners for the §7 merge rules (`services.listeners`)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._listeners = ListenerIndex()
        self._who: list[str] = []
        self._last: tuple[Mapping[str, Any], int, Listener | None] | None = None

    def clash(self, server: Mapping[str, Any]) -> str | None:
        """Why this server cannot be merged with those accepted, or None."""
        name = server_name(server)
        if name in self.names:
            return f"port name {name!r} is already used by {self.names[name]}"
        current = self._read(server)
        if current is None:
            return None
        earlier, clash = next(self._listeners.clashes(current), (None, None))
        if earlier is None or clash is None:
            return None
        return _clash_message(earlier, current, clash, self._who[earlier.index])

    def _read(self, server: Mapping[str, Any]) -> Listener | None:
        """The server's listener at the next index (read once for `clash` and `add` of the same server)."""
        if self._last is None or self._last[0] is not server or self._last[1] != len(self._who):
            self._last = (server, len(self._who), read_listener(server, len(self._who)))
        return self._last[2]

    def add(self, server: Mapping[str, Any], who: str) -> None:
        self.names[server_name(server)] = who
        listener = self._read(server)
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
        server = item.server(settings)
        reason = index.clash(server) or _secret_claimed(item, settings, claimed)
        problem = None if reason else _secret_problem(item, settings, facts)
        if reason or problem:
            outcomes[item.service_id] = Outcome(State.REJECTED, reason or problem, item.revision, recheck=bool(problem))
            continue
        index.add(server, _describe_service(item.spec))
        if item.owns_secret:
            claimed[_secret_key(item, settings)] = _describe_service(item.spec)
        accepted.append((item, server))

    live_servers = (live.get("spec") or {}).get("servers") or []
    placeholder = placeholder_server(settings)
    converged = live_servers == _with_placeholder(unmanaged + [server for _, server in accepted], placeholder)
    if not converged:
        # Only a Gateway about to be written needs validating; an unchanged one is never rewritten.
        accepted = _drop_invalid(live_managed, unmanaged, accepted, outcomes)
        accepted = _fit_size(live, unmanaged, accepted, placeholder, outcomes)
    servers = _with_placeholder(unmanaged + [server for _, server in accepted], placeholder)
    managed = {server_name(server): server for _, server in accepted}
    if not unmanaged and not accepted:
        managed[server_name(placeholder)] = placeholder
    names = sorted(managed)
    merged = _merged_gateway(live, servers, names)

    applied: dict[int, Outcome] = {}  # one per revision number: an Outcome is immutable, thousands share a few
    for item, _ in accepted:
        op = _secret_op(item, settings, facts)
        if op:
            secret_ops.append(op)
        outcome = applied.get(item.revision)
        if outcome is None:
            outcome = applied[item.revision] = Outcome(State.APPLIED, "", item.revision)
        outcomes[item.service_id] = outcome

    wanted_secrets = {_secret_key_str(item, settings) for item, _ in accepted if item.owns_secret}
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
    # A copy of the live Gateway but for its servers, which are replaced: they are never copied only to be dropped.
    merged = {
        key: (
            {name: None if name == "servers" else copy.deepcopy(part) for name, part in value.items()}
            if key == "spec" and isinstance(value, dict)
            else copy.deepcopy(value)
        )
        for key, value in live.items()
    }
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
    live_managed: Mapping[str, dict[str, Any]],
    unmanaged: list[dict[str, Any]],
    accepted: list[tuple[DesiredService, dict[str, Any]]],
    outcomes: dict[str, Outcome],
) -> list[tuple[DesiredService, dict[str, Any]]]:
    """Validate the merged Gateway before it is written; managed blocks with an error are left out.

    Of Istio's errors for a whole Gateway (`validate_gateway`), those of one server on its own are checked
    here, for every block that is not already live exactly as it is; duplicate port names and §7 merges were
    checked by `PortIndex` while the blocks were accepted (the rest of `validate_gateway` is warnings). Leaving
    servers out never gives another server an error, so one pass is enough.
    """
    kept = []
    for item, server in accepted:
        if live_managed.get(server_name(server)) == server:
            kept.append((item, server))
            continue
        position = len(unmanaged) + len(kept)
        errors = [i for i in validate_server(server, f"spec.servers[{position}]") if i.severity == "error"]
        if errors:
            message = f"{errors[0].path}: {errors[0].message}"
            outcomes[item.service_id] = Outcome(
                State.REJECTED, f"the merged Gateway would be invalid: {message}", item.revision
            )
            continue
        kept.append((item, server))
    return kept


def _with_placeholder(servers: list[dict[str, Any]], placeholder: dict[str, Any]) -> list[dict[str, Any]]:
    """Istio refuses a Gateway without servers: the placeholder stands in while nothing else would remain."""
    return servers or [placeholder]


def gateway_size(gateway: Mapping[str, Any]) -> int:
    return len(json.dumps(gateway, separators=(",", ":")).encode())


def _fit_size(
    live: dict[str, Any],
    unmanaged: list[dict[str, Any]],
    accepted: list[tuple[DesiredService, dict[str, Any]]],
    placeholder: dict[str, Any],
    outcomes: dict[str, Outcome],
) -> list[tuple[DesiredService, dict[str, Any]]]:
    """Over the object limit, leave out the newest blocks (by revision creation) until the Gateway fits.

    The byte budget's first line of defence is at request time; this is the last one: older blocks keep
    running and the rest of the Gateway is still written.
    """
    servers = unmanaged + [server for _, server in accepted]
    names = [server_name(server) for _, server in accepted]
    size = gateway_size(_merged_gateway(live, _with_placeholder(servers, placeholder), names))
    if size <= MAX_GATEWAY_BYTES:
        return accepted
    whole = size
    newest_first = sorted(range(len(accepted)), key=lambda i: (accepted[i][0].created, i), reverse=True)
    dropped: set[int] = set()
    for position in newest_first:
        if size <= MAX_GATEWAY_BYTES:
            break
        server = accepted[position][1]
        # The server, the comma before it, and its name and comma in the managed-servers annotation.
        size -= gateway_size(server) + 1 + len(server_name(server)) + 1
        dropped.add(position)
    for position in dropped:
        item = accepted[position][0]
        outcomes[item.service_id] = Outcome(
            State.REJECTED,
            f"left out: with every block the merged Gateway would be {whole} bytes, over Kubernetes' 1 MiB object "
            f"limit ({MAX_GATEWAY_BYTES} bytes), so the {len(dropped)} newest blocks wait until there is room; "
            "older blocks and the rest of the Gateway run",
            item.revision,
        )
    return [pair for position, pair in enumerate(accepted) if position not in dropped]


# --- Secrets --------------------------------------------------------------------------------------------------------


def wants_material(item: DesiredService) -> bool:
    """A `tls_secret` block whose private key was not loaded and whose Secret digest is not stored either."""
    return "tls_secret" in (item.spec.get("tls_options") or {}) and not item.material and not item.secret_digest


def _wanted_secret_digest(item: DesiredService, settings: GatewaySettings) -> str:
    if item.secret_digest:
        return item.secret_digest
    body = desired_secret(item, settings)
    return secret_digest(body) if body else ""


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
        elif item.owns_secret:
            key = _secret_key(item, settings)
            recorded = recorded_secrets.get(f"{key[0]}/{key[1]}", {})
            if verify_all or recorded.get("digest") != _wanted_secret_digest(item, settings):
                secrets.append(key)
                if item.spec.get("mode") == "PASSTHROUGH":
                    namespaces.append(key[0])
    return secrets, sorted(set(namespaces))


def _secret_claimed(item: DesiredService, settings: GatewaySettings, claimed: Mapping[SecretKey, str]) -> str | None:
    if not item.owns_secret:
        return None
    key = _secret_key(item, settings)
    if key in claimed:
        return f"secret {key[0]}/{key[1]} is already used by {claimed[key]}; rename this service"
    return None


def _secret_problem(item: DesiredService, settings: GatewaySettings, facts: Facts) -> str | None:
    tls_options = item.spec.get("tls_options") or {}
    if "tls_secret_ref" in tls_options:
        return _referenced_secret_problem(tls_options["tls_secret_ref"]["secret_name"], settings, facts)
    if not item.owns_secret:
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
    if not item.owns_secret:
        return None
    namespace, name = _secret_key(item, settings)
    if (namespace, name) not in facts.secrets:
        # Not read: trusted to be as recorded (reads_needed reads it whenever the record differs).
        return None
    body = desired_secret(item, settings)  # the worker loads the private key of every secret it reads
    if body is None:
        return None
    wanted = secret_digest(body)
    live = facts.secrets[(namespace, name)]
    if live is None:
        return SecretOp("create", namespace, name, item.service_id, body, wanted)
    if secret_digest(live) == wanted:
        return SecretOp("keep", namespace, name, item.service_id, None, wanted)
    body = copy.deepcopy(body)
    body["metadata"]["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion")
    return SecretOp("update", namespace, name, item.service_id, body, wanted)
