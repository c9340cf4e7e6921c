"""The HTTP(S) front of kubesim: routing, authentication, authorization, faults and the admin endpoint."""

from __future__ import annotations

import base64
import json
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubesim import discovery, labels
from kubesim.auth import ALLOW_ALL, DEFAULT_USER, Principal, Rule, Tokens
from kubesim.errors import (
    ApiError,
    Target,
    bad_request,
    forbidden,
    method_not_allowed,
    server_error,
    unauthorized,
    unsupported_media_type,
)
from kubesim.faults import Faults, RequestLog, RequestRecord
from kubesim.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from kubesim.resources import (
    GATEWAYS,
    ISTIO_GROUP,
    ISTIO_VERSIONS,
    NAMESPACES,
    OPERATOR_KINDS,
    OPERATOR_VERSION,
    SECRETS,
    Kind,
)
from kubesim.store import Object, Store
from kubesim.tls import ServerTLS, generate
from kubesim.webhook import IstioWebhook
from kubesim.writer import ConcurrentWriter

ADMIN_PREFIX = "/_kubesim/"
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
_NOT_FOUND = ApiError(404, "NotFound", "the server could not find the requested resource", {})
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Route:
    """A resource request: which kind, at which version, in which namespace, which object (if any)."""

    kind: Kind
    version: str
    namespace: str = ""
    name: str = ""

    def verb(self, method: str) -> str:
        return "list" if method == "GET" and not self.name else _VERBS[method]


class KubeSim:
    """One simulated cluster: store, tokens, faults and request log behind an HTTP(S) server on loopback."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        tls: bool = False,
        istio_versions: tuple[str, ...] = ISTIO_VERSIONS,
        istio_webhook: bool = True,
    ) -> None:
        unknown = set(istio_versions) - set(ISTIO_VERSIONS)
        if unknown:
            raise ValueError(f"unknown Istio versions {sorted(unknown)}; accepted: {', '.join(ISTIO_VERSIONS)}")
        self.store = Store()
        self.tokens = Tokens()
        self.faults = Faults()
        self.requests = RequestLog()
        # Istio's validating webhook reviews Gateway writes made through the API (seeding bypasses it).
        self.webhook: IstioWebhook | None = IstioWebhook(self.faults.denied_hosts) if istio_webhook else None
        self.istio_versions = tuple(v for v in ISTIO_VERSIONS if v in istio_versions)
        self.token = token
        if token:
            self.tokens.set(token)
        self.tls: ServerTLS | None = generate() if tls else None
        self._writers: list[ConcurrentWriter] = []
        self._server = _Server((host, port), _Handler)
        self._server.sim = self  # type: ignore[attr-defined]
        if self.tls:
            self._server.socket = self.tls.context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def ca_pem(self) -> str | None:
        return self.tls.ca_pem if self.tls else None

    @property
    def ca_file(self) -> str | None:
        return str(self.tls.ca_file) if self.tls else None

    def start(self) -> KubeSim:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="kubesim", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self.stop_writers()
        if self._thread:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def shutdown(self) -> None:
        """Stop a `serve_forever()` running in another thread (signal handlers)."""
        self._server.shutdown()

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests and the demo ------------------------------------------------------------------------

    def set_token(self, token: str, rules: list[Rule] | tuple[Rule, ...] = ALLOW_ALL, user: str = DEFAULT_USER) -> None:
        self.tokens.set(token, rules, user)

    def start_writer(
        self, namespace: str, name: str, interval_ms: int = 50, mode: str = "annotation"
    ) -> ConcurrentWriter:
        writer = ConcurrentWriter(self.store, namespace, name, interval_ms, mode).start()
        self._writers.append(writer)
        return writer

    def stop_writers(self) -> None:
        while self._writers:
            self._writers.pop().stop()

    def seed_demo(self, team_namespaces: tuple[str, ...] = ("demo",)) -> None:
        """istio-system with ingress-gateway (one platform HTTP server) and egress-gateway, plus team namespaces."""
        self.store.add_namespace("istio-system")
        for namespace in team_namespaces:
            self.store.add_namespace(namespace)
        platform_server = {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}
        self.store.add_gateway(
            "istio-system", "ingress-gateway", [platform_server], selector={"istio": "ingressgateway"}
        )
        self.store.add_gateway("istio-system", "egress-gateway", [], selector={"istio": "egressgateway"})

    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig document (as a dict) pointing at this sim with its token and CA."""
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_pem:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_pem.encode()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kubesim", "cluster": cluster}],
            "users": [{"name": "kubesim", "user": {"token": self.token or ""}}],
            "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim"}}],
            "current-context": "kubesim",
        }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up or refuse the certificate are normal here; anything else is a kubesim bug."""
        if not isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class _Dropped(Exception):
    """Close the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubesim"
    # TCP_NODELAY, as Go's net/http (the real API server) sets on every connection: otherwise the body written after
    # the headers waits for the client's delayed ACK, 40 ms on Linux, on every request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        """Requests are recorded in the sim's RequestLog instead of stderr."""

    @property
    def sim(self) -> KubeSim:
        return self.server.sim  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    # -- request plumbing --------------------------------------------------------------------------------------

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = parts.path.rstrip("/") or "/", parts.query
        body = self._read_body()
        if path.startswith(ADMIN_PREFIX.rstrip("/")):
            self._admin(method, path, body)
            return
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            status, payload = self._api(method, path, parse_qs(query), content_type, body)
        except _Dropped:
            self.sim.requests.add(RequestRecord(method, path, query, 0, content_type))
            self.close_connection = True
            return
        except ApiError as error:
            status, payload = error.code, error.status()
        self.sim.requests.add(RequestRecord(method, path, query, status, content_type))
        self._send(status, payload)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: Any) -> None:
        if isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _api(
        self, method: str, path: str, query: dict[str, list[str]], content_type: str, body: bytes
    ) -> tuple[int, Any]:
        faults = self.sim.faults
        if faults.take_drop(method, path):
            raise _Dropped
        if faults.latency:
            time.sleep(faults.latency)
        failure = faults.take_failure(method, path)
        if failure:
            raise server_error(failure)
        if path in PUBLIC_PATHS:
            return 200, "ok"
        principal = self.sim.tokens.authenticate(self.headers.get("Authorization"))
        if principal is None:
            raise unauthorized()
        return _Api(self.sim, principal, self.headers.get("Accept") or "").handle(
            method, path, query, content_type, body
        )

    # -- admin endpoint ----------------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> None:
        try:
            self._send(200, _admin(self.sim, method, path.removeprefix(ADMIN_PREFIX), body))
        except (ValueError, TypeError, KeyError) as error:
            self._send(400, {"error": str(error)})


def _admin(sim: KubeSim, method: str, action: str, body: bytes) -> Any:
    """/_kubesim/{requests,faults,writer,ca.pem}: control a sim from another process; bypasses auth and faults."""
    settings = json.loads(body) if body else {}
    if action == "requests":
        if method == "DELETE":
            sim.requests.reset()
        return {"items": [record.as_dict() for record in sim.requests.all()]}
    if action == "faults":
        if method == "DELETE":
            sim.faults.clear()
        elif method == "POST":
            sim.faults.configure(settings)
        return sim.faults.describe()
    if action == "writer":
        if method == "DELETE":
            sim.stop_writers()
            return {}
        writer = sim.start_writer(
            settings["namespace"], settings["name"], settings.get("interval_ms", 50), settings.get("mode", "annotation")
        )
        return {"namespace": writer.namespace, "name": writer.name, "mode": writer.mode}
    if action == "ca.pem" and sim.ca_pem:
        return sim.ca_pem
    raise KeyError(f"unknown admin action {action!r}; accepted: requests, faults, writer, ca.pem")


class _Api:
    """One authenticated request against the Kubernetes API."""

    def __init__(self, sim: KubeSim, principal: Principal, accept: str = "") -> None:
        self.sim, self.store, self.principal = sim, sim.store, principal
        # `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`: a GET answers the metadata only.
        self.metadata_only = "as=PartialObjectMetadata" in accept

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], content_type: str, body: bytes
    ) -> tuple[int, Any]:
        document = self._discovery(path)
        if document is not None:
            if method != "GET":
                raise method_not_allowed()
            return 200, document
        if path == f"/apis/{discovery.AUTHORIZATION_GROUP}/v1/selfsubjectaccessreviews":
            if method != "POST":
                raise method_not_allowed()
            return 201, self._access_review(_json(body))
        route = self._route(path)
        if method not in _VERBS or (method in ("PUT", "PATCH", "DELETE") and not route.name):
            raise method_not_allowed()
        if method == "POST" and route.name:
            raise method_not_allowed()
        self._authorize(route, method)
        return self._dispatch(route, method, query, content_type, body)

    def _discovery(self, path: str) -> Any:
        served = self.sim.istio_versions
        if path == "/version":
            return discovery.VERSION_INFO
        if path == "/api":
            return discovery.api_versions(urlsplit(self.sim.url).netloc)
        if path == "/api/v1":
            return discovery.core_resources()
        if path == "/apis":
            return discovery.group_list(served)
        parts = path.strip("/").split("/")
        if parts[0] != "apis" or len(parts) not in (2, 3):
            return None
        group = discovery.groups(served).get(parts[1])
        if group is None:
            raise _NOT_FOUND
        if len(parts) == 2:
            return {"kind": "APIGroup", "apiVersion": "v1", **group}
        if parts[2] not in [v["version"] for v in group["versions"]]:
            raise _NOT_FOUND
        return discovery.group_resources(parts[1], parts[2])

    def _route(self, path: str) -> Route:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            kind, version, rest = None, "v1", parts[2:]
        elif parts[:2] == ["apis", ISTIO_GROUP] and len(parts) > 2 and parts[2] in self.sim.istio_versions:
            kind, version, rest = GATEWAYS, parts[2], parts[3:]
        elif len(parts) > 2 and parts[0] == "apis" and parts[1] in OPERATOR_KINDS and parts[2] == OPERATOR_VERSION:
            kind, version, rest = OPERATOR_KINDS[parts[1]], parts[2], parts[3:]
        else:
            raise _NOT_FOUND
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in ("secrets", "gateways", "gatewayservices"):
            namespace, rest = rest[1], rest[2:]
        resource, name = rest[0] if rest else "", rest[1] if len(rest) > 1 else ""
        if len(rest) > 2:
            raise _NOT_FOUND
        expected = kind.resource if kind else None
        found = {"namespaces": NAMESPACES, "secrets": SECRETS} if kind is None else {kind.resource: kind}
        if resource not in found or (expected and resource != expected):
            raise _NOT_FOUND
        return Route(found[resource], version, namespace, name)

    def _authorize(self, route: Route, method: str) -> None:
        kind, verb = route.kind, route.verb(method)
        # Like RBAC, a request on the namespace object itself is attributed to that namespace.
        namespace = route.name if kind is NAMESPACES else route.namespace
        if not self.principal.allowed(verb, kind.group, kind.resource, namespace):
            target = Target(kind.resource, kind.group, route.name, kind.kind)
            raise forbidden(target, self.principal.user, verb, namespace)

    def _dispatch(
        self, route: Route, method: str, query: dict[str, list[str]], content_type: str, body: bytes
    ) -> tuple[int, Any]:
        kind, ns, name, version = route.kind, route.namespace, route.name, route.version
        review = self.sim.webhook.review if self.sim.webhook and kind is GATEWAYS else None
        if method == "GET" and not name:
            selector = labels.parse(query["labelSelector"][0]) if "labelSelector" in query else None
            return 200, self._list(route, self.store.list(kind, ns, selector))
        if method == "GET" and self.metadata_only:
            metadata = self.store.metadata(kind, ns, name)
            return 200, {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
        if method == "GET":
            return 200, self._out(route, self.store.get(kind, ns, name))
        if method == "DELETE":
            return 200, self._deleted(route, self.store.delete(kind, ns, name))
        if method == "PATCH":
            if content_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH) or (
                kind.custom and content_type == STRATEGIC_MERGE_PATCH
            ):
                raise unsupported_media_type(content_type)
            patched = self.store.patch(kind, ns, name, content_type, _json(body), version, review)
            return 200, self._out(route, patched)
        if content_type and "json" not in content_type:
            raise unsupported_media_type(content_type)
        if method == "PUT":
            return 200, self._out(route, self.store.update(kind, ns, name, _json(body), version, review))
        return 201, self._out(route, self.store.create(kind, ns, _json(body), version, review))

    def _out(self, route: Route, obj: Object) -> Object:
        if route.kind.custom:
            obj["apiVersion"] = route.kind.api_version(route.version)
        return obj

    def _list(self, route: Route, items: list[Object]) -> Object:
        kind = route.kind
        metadata = {"resourceVersion": self.store.resource_version}
        if kind.custom:
            metadata["continue"] = ""
            items = [self._out(route, item) for item in items]
        else:
            # Built-in list items carry no kind/apiVersion, like the real apiserver's.
            items = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version(route.version),
            "metadata": metadata,
            "items": items,
        }

    def _deleted(self, route: Route, obj: Object) -> Object:
        if route.kind is NAMESPACES:
            obj["metadata"]["deletionTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            obj["status"] = {"phase": "Terminating"}
            return obj
        details = {
            "name": route.name,
            "group": route.kind.group,
            "kind": route.kind.resource,
            "uid": obj["metadata"]["uid"],
        }
        if not route.kind.group:
            del details["group"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _access_review(self, review: Any) -> Object:
        if not isinstance(review, dict) or not isinstance(review.get("spec"), dict):
            raise bad_request("a SelfSubjectAccessReview needs a spec")
        spec = review["spec"]
        attributes = spec.get("resourceAttributes")
        if isinstance(attributes, dict):
            allowed = self.principal.allowed(
                attributes.get("verb", ""),
                attributes.get("group", ""),
                attributes.get("resource", ""),
                attributes.get("namespace", ""),
            )
        else:
            allowed = self.principal.rules == ALLOW_ALL
        status: dict[str, Any] = {"allowed": allowed}
        if allowed:
            status["reason"] = f'kubesim: allowed by the rules of User "{self.principal.user}"'
        return {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": f"{discovery.AUTHORIZATION_GROUP}/v1",
            "metadata": {},
            "spec": spec,
            "status": status,
        }


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError as error:
        raise bad_request(f"the body of the request is not valid JSON: {error}")
