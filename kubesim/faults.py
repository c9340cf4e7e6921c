"""Fault injection and the request log, shared by the HTTP handler, tests and the admin endpoint."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: str
    status: int
    content_type: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Every API request served (admin requests excluded), in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def all(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def reset(self) -> None:
        with self._lock:
            self._records.clear()

    def count(self, method: str | None = None, path_prefix: str = "") -> int:
        return sum(1 for r in self.all() if (method is None or r.method == method) and r.path.startswith(path_prefix))

    def writes(
        self, resource: str = "gateways", namespace: str | None = None, name: str | None = None
    ) -> list[RequestRecord]:
        """Write requests (POST/PUT/PATCH/DELETE) addressed to a resource, optionally one object."""
        return [r for r in self.all() if r.method in WRITE_METHODS and _addresses(r.path, resource, namespace, name)]

    def gateway_writes(self, namespace: str, name: str) -> int:
        return len(self.writes("gateways", namespace, name))


def _addresses(path: str, resource: str, namespace: str | None, name: str | None) -> bool:
    parts = path.strip("/").split("/")
    if resource not in parts:
        return False
    index = parts.index(resource)
    if namespace is not None and (index < 2 or parts[index - 2] != "namespaces" or parts[index - 1] != namespace):
        return False
    return name is None or parts[index + 1 : index + 2] == [name]


@dataclass
class _Budget:
    """A number of upcoming requests to hit, optionally only those with a method and path prefix."""

    remaining: int
    method: str | None = None
    path_prefix: str = ""
    status: int = 500

    def take(self, method: str, path: str) -> bool:
        if self.remaining <= 0 or (self.method and self.method != method) or not path.startswith(self.path_prefix):
            return False
        self.remaining -= 1
        return True


class Faults:
    """What the handler consults before serving each request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latency = 0.0
        self.down = False
        self._failures: list[_Budget] = []
        self._drops: list[_Budget] = []
        self._denied_hosts: set[str] = set()

    def deny_host(self, host: str) -> None:
        """The Istio webhook denies, from now on, every Gateway write with a server carrying `host`."""
        with self._lock:
            self._denied_hosts.add(host.lower())

    def denied_hosts(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._denied_hosts)

    def fail_next(self, count: int = 1, status: int = 500, method: str | None = None, path_prefix: str = "") -> None:
        if status not in (500, 503):
            raise ValueError(f"status must be 500 or 503, not {status}")
        with self._lock:
            self._failures.append(_Budget(count, method, path_prefix, status))

    def drop_next(self, count: int = 1, method: str | None = None, path_prefix: str = "") -> None:
        with self._lock:
            self._drops.append(_Budget(count, method, path_prefix))

    def clear(self) -> None:
        with self._lock:
            self.latency, self.down = 0.0, False
            self._failures.clear()
            self._drops.clear()
            self._denied_hosts.clear()

    def take_drop(self, method: str, path: str) -> bool:
        with self._lock:
            return self.down or any(budget.take(method, path) for budget in self._drops)

    def take_failure(self, method: str, path: str) -> int | None:
        with self._lock:
            for budget in self._failures:
                if budget.take(method, path):
                    return budget.status
            return None

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply the admin endpoint's JSON: {latency, down, fail: {count, status, method, path_prefix}, drop: {...},
        deny_hosts: [host, ...]}."""
        unknown = set(settings) - {"latency", "down", "fail", "drop", "deny_hosts"}
        if unknown:
            raise ValueError(
                f"unknown fault settings {sorted(unknown)}; accepted: latency, down, fail, drop, deny_hosts"
            )
        if "latency" in settings:
            self.latency = float(settings["latency"])
        if "down" in settings:
            self.down = bool(settings["down"])
        if "fail" in settings:
            self.fail_next(**settings["fail"])
        if "drop" in settings:
            self.drop_next(**settings["drop"])
        if "deny_hosts" in settings:
            if not isinstance(settings["deny_hosts"], list):
                raise ValueError("deny_hosts must be a list of host names")
            for host in settings["deny_hosts"]:
                self.deny_host(str(host))

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": self.latency,
                "down": self.down,
                "fail": [asdict(b) for b in self._failures if b.remaining],
                "drop": [asdict(b) for b in self._drops if b.remaining],
                "deny_hosts": sorted(self._denied_hosts),
            }
