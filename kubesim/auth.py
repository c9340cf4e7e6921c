"""Bearer-token authentication and a small RBAC-like authorizer."""

from __future__ import annotations

import threading
from dataclasses import dataclass

DEFAULT_USER = "system:serviceaccount:gatewayportal:gatewayportal"


@dataclass(frozen=True)
class Rule:
    """Allows `verbs` on `resources` of `groups` in `namespaces`; "*" matches anything, "" in groups = core."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    namespaces: frozenset[str] = frozenset({"*"})

    @classmethod
    def of(cls, verbs: str, group: str, resources: str, namespaces: str = "*") -> Rule:
        """Build a rule from comma-separated strings, e.g. `Rule.of("get,list", "networking.istio.io", "gateways")`."""

        def split(text: str) -> frozenset[str]:
            return frozenset(part.strip() for part in text.split(","))

        return cls(split(verbs), split(group), split(resources), split(namespaces))

    def allows(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        return (
            _matches(self.verbs, verb)
            and _matches(self.groups, group)
            and _matches(self.resources, resource)
            and _matches(self.namespaces, namespace)
        )


ALLOW_ALL = (Rule.of("*", "*", "*"),)


def _matches(allowed: frozenset[str], value: str) -> bool:
    return "*" in allowed or value in allowed


@dataclass(frozen=True)
class Principal:
    user: str
    rules: tuple[Rule, ...]

    def allowed(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        # Cluster-scoped requests (namespace "") are only allowed by rules for every namespace, as with ClusterRoles.
        return any(rule.allows(verb, group, resource, namespace or "*") for rule in self.rules)


class Tokens:
    """token -> Principal; thread-safe so tests can change permissions while a worker talks to the sim."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._principals: dict[str, Principal] = {}

    def set(self, token: str, rules: tuple[Rule, ...] | list[Rule] = ALLOW_ALL, user: str = DEFAULT_USER) -> None:
        with self._lock:
            self._principals[token] = Principal(user, tuple(rules))

    def remove(self, token: str) -> None:
        with self._lock:
            self._principals.pop(token, None)

    def authenticate(self, header: str | None) -> Principal | None:
        if not header or not header.startswith("Bearer "):
            return None
        with self._lock:
            return self._principals.get(header.removeprefix("Bearer ").strip())
