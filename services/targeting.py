"""Pure: which clusters a service spec lands on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

C = TypeVar("C")


def targets(spec: dict[str, Any], *, cluster_name: str, labels: dict[str, str], enabled: bool) -> bool:
    """True when the spec names the cluster, or its selector matches the cluster's labels.

    Disabled clusters are never targeted: nothing is pushed to them until they are enabled again.
    """
    if not enabled:
        return False
    if cluster_name in (spec.get("clusters") or []):
        return True
    selector = spec.get("cluster_selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def landing(spec: dict[str, Any], clusters: Iterable[C]) -> list[C]:
    """The clusters (anything with `name`, `labels`, `enabled`) the spec lands on, in the given order."""
    return [c for c in clusters if targets(spec, cluster_name=c.name, labels=c.labels, enabled=c.enabled)]


def allowed(
    cluster_name: str, labels: dict[str, str], *, names: list[str] | None, selector: dict[str, str] | None
) -> bool:
    """True when a team whose allowed clusters are `names` (None = all) and `selector` (None = any labels) may
    use the cluster: both limits apply."""
    if names is not None and cluster_name not in names:
        return False
    return selector is None or all(labels.get(k) == v for k, v in selector.items())


def allowed_for(clusters: Iterable[C], *, names: list[str] | None, selector: dict[str, str] | None) -> list[C]:
    """The clusters (anything with `name` and `labels`) a team with these limits may use, in the given order."""
    return [c for c in clusters if allowed(c.name, c.labels, names=names, selector=selector)]
