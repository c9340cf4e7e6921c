"""The one thin adapter to the Kubernetes API: the only module that imports `kubernetes`.

Every call has a timeout, and every failure becomes one of a few typed exceptions so callers
decide between retrying (TransientError), re-reading (ConflictError) and recording (PermanentError).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import marshal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3
from django.conf import settings
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import KubeConfigLoader

from clusters import kubeconfig

if TYPE_CHECKING:
    from clusters.models import Cluster

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")  # most preferred first
GATEWAY_PLURAL = "gateways"
# The operator the portal descends from: its GatewayService resources, under both API groups it used.
OPERATOR_GROUPS = ("gatewayservice.xunholy.github.com", "crd.xunholy.github.com")
OPERATOR_VERSION = "v1alpha1"
OPERATOR_PLURAL = "gatewayservices"
# An object's metadata only (served for every resource, custom ones included, since Kubernetes 1.15).
PARTIAL_OBJECT_METADATA = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json"


class KubeError(Exception):
    """A Kubernetes API call failed; `message` is safe to show and to record."""

    def __init__(self, message: str, *, status: int | None = None, causes: list[dict[str, str]] | None = None):
        self.message = message
        self.status = status
        self.causes = causes or []
        super().__init__(message)


class TransientError(KubeError):
    """Worth retrying later: timeouts, connection errors, 429 and 5xx."""


class ConflictError(KubeError):
    """409: someone else wrote first (stale resourceVersion or already exists); re-read and recompute."""


class PermanentError(KubeError):
    """Retrying will not help until someone fixes credentials, permissions or the object: 4xx."""


class NotFoundError(PermanentError):
    """404."""


@dataclass(frozen=True)
class Credentials:
    api_server: str = ""
    ca_cert: str = ""
    token: str = ""
    kubeconfig: str = ""

    @classmethod
    def from_cluster(cls, cluster: Cluster) -> Credentials:
        return cls(
            api_server=cluster.api_server, ca_cert=cluster.ca_cert, token=cluster.token, kubeconfig=cluster.kubeconfig
        )

    def fingerprint(self) -> str:
        raw = json.dumps([self.api_server, self.ca_cert, self.token, self.kubeconfig])
        return hashlib.sha256(raw.encode()).hexdigest()


def configuration_for(credentials: Credentials) -> k8s.Configuration:
    """A client Configuration; a kubeconfig is loaded by the kubernetes library after our own checks."""
    configuration = k8s.Configuration()
    if credentials.kubeconfig:
        kubeconfig.summarize(credentials.kubeconfig)
        try:
            KubeConfigLoader(config_dict=kubeconfig.load(credentials.kubeconfig)).load_and_set(configuration)
        except (ConfigException, ValueError, KeyError, TypeError) as exc:
            raise kubeconfig.KubeconfigError(f"kubeconfig could not be loaded: {exc}")
    else:
        configuration.host = credentials.api_server.rstrip("/")
        if credentials.ca_cert:
            configuration.ca_cert_data = credentials.ca_cert
        if credentials.token:
            configuration.api_key = {"authorization": credentials.token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
    # Retries are the task's business (with backoff); the HTTP layer must fail fast.
    configuration.retries = 0
    return configuration


def validate_kubeconfig(text: str) -> kubeconfig.KubeconfigSummary:
    """Refuse a kubeconfig the portal cannot use, before it is stored."""
    summary = kubeconfig.summarize(text)
    configuration_for(Credentials(kubeconfig=text))
    return summary


class _ApiClient(k8s.ApiClient):
    """The client's ApiClient, sending a body of plain JSON values as it is.

    Before serializing a body, the client walks it recursively to turn its model objects into dicts: 20 ms for a
    Gateway of 5,000 servers, which are already dicts. A body `marshal` can write holds nothing but the builtin
    containers and scalars (it refuses subclasses, such as enums, and every other object) and needs no walk;
    anything else is walked as before.
    """

    def sanitize_for_serialization(self, obj: Any) -> Any:
        if isinstance(obj, dict | list):
            try:
                marshal.dumps(obj)
            except ValueError:
                pass
            else:
                return obj
        return super().sanitize_for_serialization(obj)


class KubeClient:
    """Calls against one cluster. Obtain it with `client_for(cluster)`."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float):
        self.api_client = api_client
        self.timeout = timeout
        self.custom = k8s.CustomObjectsApi(api_client)
        self._istio_version: str | None = None

    @functools.cached_property
    def core(self) -> k8s.CoreV1Api:
        """The core API (Secrets, Namespaces), built on first use: importing the client's CoreV1Api and its models
        takes 0.4 s, which a process that only ever writes Gateways of plain-text servers never pays."""
        return k8s.CoreV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    def server_version(self) -> str:
        with _translated("reading the server version"):
            return k8s.VersionApi(self.api_client).get_code(_request_timeout=self.timeout).git_version

    def istio_api_version(self) -> str:
        """`networking.istio.io/<version>`, preferring v1, then v1beta1, then v1alpha3 (cached per client)."""
        if self._istio_version is None:
            with _translated("discovering API groups"):
                groups = k8s.ApisApi(self.api_client).get_api_versions(_request_timeout=self.timeout).groups
            served = {v.version for g in groups if g.name == ISTIO_GROUP for v in g.versions}
            version = next((v for v in ISTIO_VERSIONS if v in served), None)
            if version is None:
                raise PermanentError(
                    f"the cluster serves no {ISTIO_GROUP} API (v1, v1beta1 or v1alpha3); is Istio installed?"
                )
            self._istio_version = version
        return f"{ISTIO_GROUP}/{self._istio_version}"

    def remember_istio_api_version(self, api_version: str) -> None:
        """Seed discovery from what the last check found, so a routine reconcile costs one GET."""
        group, _, version = api_version.partition("/")
        if self._istio_version is None and group == ISTIO_GROUP and version in ISTIO_VERSIONS:
            self._istio_version = version

    def get_gateway(self, namespace: str, name: str) -> dict[str, Any]:
        version = self.istio_api_version().rsplit("/", 1)[1]
        with _translated(f"reading Gateway {namespace}/{name}"):
            return self.custom.get_namespaced_custom_object(
                ISTIO_GROUP, version, namespace, GATEWAY_PLURAL, name, _request_timeout=self.timeout
            )

    def gateway_metadata(self, namespace: str, name: str) -> dict[str, Any]:
        """The Gateway's metadata without its servers (a PartialObjectMetadata answer), for an idle reconcile that
        only compares resourceVersions. An API server that does not answer that way sends the whole object
        (the Accept header lists plain JSON after it, as Kubernetes clients do)."""
        version = self.istio_api_version().rsplit("/", 1)[1]
        with _translated(f"reading Gateway {namespace}/{name}"):
            answer = self.custom.get_namespaced_custom_object(
                ISTIO_GROUP,
                version,
                namespace,
                GATEWAY_PLURAL,
                name,
                _request_timeout=self.timeout,
                _headers={"Accept": PARTIAL_OBJECT_METADATA},
            )
        return answer.get("metadata") or {}

    def replace_gateway(self, body: dict[str, Any]) -> dict[str, Any]:
        """PUT the whole Gateway; its metadata.resourceVersion is the precondition (409 when stale)."""
        version = self.istio_api_version().rsplit("/", 1)[1]
        meta = body["metadata"]
        with _translated(f"writing Gateway {meta['namespace']}/{meta['name']}"):
            return self.custom.replace_namespaced_custom_object(
                ISTIO_GROUP,
                version,
                meta["namespace"],
                GATEWAY_PLURAL,
                meta["name"],
                body,
                _request_timeout=self.timeout,
            )

    def list_operator_services(self) -> list[dict[str, Any]]:
        """Every GatewayService of the operator, in every namespace, from each API group the cluster serves."""
        found: list[dict[str, Any]] = []
        for group in OPERATOR_GROUPS:
            try:
                with _translated(f"listing {OPERATOR_PLURAL}.{group}"):
                    answer = self.custom.list_cluster_custom_object(
                        group, OPERATOR_VERSION, OPERATOR_PLURAL, _request_timeout=self.timeout
                    )
            except NotFoundError:
                continue  # this group is not served here
            for item in answer.get("items") or []:
                item.setdefault("apiVersion", f"{group}/{OPERATOR_VERSION}")
                item.setdefault("kind", "GatewayService")
                found.append(item)
        return found

    def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            with _translated(f"reading Secret {namespace}/{name}"):
                secret = self.core.read_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except NotFoundError:
            return None
        return self.api_client.sanitize_for_serialization(secret)

    def create_secret(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        with _translated(f"creating Secret {meta['namespace']}/{meta['name']}"):
            self.core.create_namespaced_secret(meta["namespace"], body, _request_timeout=self.timeout)

    def replace_secret(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        with _translated(f"updating Secret {meta['namespace']}/{meta['name']}"):
            self.core.replace_namespaced_secret(meta["name"], meta["namespace"], body, _request_timeout=self.timeout)

    def delete_secret(self, namespace: str, name: str) -> bool:
        """False when it was already gone."""
        try:
            with _translated(f"deleting Secret {namespace}/{name}"):
                self.core.delete_namespaced_secret(name, namespace, _request_timeout=self.timeout)
        except NotFoundError:
            return False
        return True

    def namespace_exists(self, name: str) -> bool:
        try:
            with _translated(f"reading Namespace {name}"):
                self.core.read_namespace(name, _request_timeout=self.timeout)
        except NotFoundError:
            return False
        return True

    def can_i(self, *, verb: str, group: str, resource: str, namespace: str | None) -> tuple[bool, str]:
        """SelfSubjectAccessReview: (allowed, reason) for the credentials in use."""
        review = k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    verb=verb, group=group, resource=resource, namespace=namespace
                )
            )
        )
        with _translated(f"reviewing access to {verb} {resource}"):
            answer = k8s.AuthorizationV1Api(self.api_client).create_self_subject_access_review(
                review, _request_timeout=self.timeout
            )
        return bool(answer.status.allowed), answer.status.reason or ""


_cache_lock = threading.Lock()
_clients: dict[int, tuple[str, KubeClient]] = {}


def client_for(cluster: Cluster) -> KubeClient:
    """The cached client of this cluster, rebuilt when its credentials change."""
    credentials = Credentials.from_cluster(cluster)
    key = f"{cluster.credentials_updated_at}:{credentials.fingerprint()}"
    with _cache_lock:
        cached = _clients.get(cluster.pk)
        if cached and cached[0] == key:
            return cached[1]
        if cached:
            cached[1].close()
        kube = build_client(credentials)
        _clients[cluster.pk] = (key, kube)
        return kube


def build_client(credentials: Credentials) -> KubeClient:
    """An uncached client (for checking credentials before they are saved)."""
    try:
        configuration = configuration_for(credentials)
    except kubeconfig.KubeconfigError as exc:
        raise PermanentError(str(exc))
    except ValueError as exc:  # e.g. an api_server URL urllib cannot parse
        raise PermanentError(f"the api_server address cannot be used: {exc}")
    if not configuration.host:
        raise PermanentError("the cluster has no api_server and no kubeconfig.")
    return KubeClient(_ApiClient(configuration), timeout=settings.KUBE_REQUEST_TIMEOUT_SECONDS)


@contextlib.contextmanager
def _translated(doing: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        raise _from_api_exception(exc, doing)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransientError(f"{doing}: cannot reach the API server: {_root_cause(exc)}")
    except (ValueError, TypeError) as exc:  # the answer could not be read as the Kubernetes API's (pydantic, JSON)
        raise PermanentError(f"{doing}: the answer is not a Kubernetes API answer ({type(exc).__name__})")


def _from_api_exception(exc: ApiException, doing: str) -> KubeError:
    status = exc.status or 0
    body = _status_body(exc.body)
    causes = [
        {"field": c.get("field", ""), "message": c.get("message", "")}
        for c in (body.get("details") or {}).get("causes") or []
    ]
    detail = body.get("message") or exc.reason or "no details"
    message = f"{doing}: {status} {body.get('reason') or exc.reason or ''}: {detail}".replace("  ", " ")
    if status == 409:
        return ConflictError(message, status=status)
    if status == 404:
        return NotFoundError(message, status=status)
    if status == 429 or status >= 500 or status == 0:
        return TransientError(message, status=status)
    return PermanentError(message, status=status, causes=causes)


def _status_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _root_cause(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
