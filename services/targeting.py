"""Pure: which clusters a service spec lands on."""

from __future__ import annotations

from typing import Any


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
