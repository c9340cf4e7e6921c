"""Pure checks of an uploaded kubeconfig: which context is used, and whether the portal can use it.

The portal runs headless, so anything that needs a local program (exec plugins, auth providers)
or a local file (tokenFile, certificate paths) cannot work and is refused with a message naming it.
The kubernetes library itself loads the accepted kubeconfig (see `clusters.kube`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from gatewayportal import yamlsafe


class KubeconfigError(ValueError):
    """The kubeconfig cannot be used; the message says what and what is accepted."""


@dataclass(frozen=True)
class KubeconfigSummary:
    context: str
    cluster: str
    user: str
    server: str
    auth: str  # "token" or "client-certificate"


_REFUSED_USER_KEYS = {
    "exec": "exec plugins are not supported (the portal cannot run local programs); "
    "use a bearer token or a client certificate",
    "auth-provider": "auth-provider plugins are not supported; use a bearer token or a client certificate",
    "tokenFile": "tokenFile is not supported (files on this machine are not visible to the portal); "
    "put the token inline as `token`",
    "client-certificate": "client-certificate file paths are not supported; use client-certificate-data",
    "client-key": "client-key file paths are not supported; use client-key-data",
    "username": "basic authentication is not supported; use a bearer token or a client certificate",
}


def load(text: str) -> dict[str, Any]:
    """Parse the YAML into a dict, or say why it is not a kubeconfig."""
    try:
        config = yamlsafe.load(text)
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig is not valid YAML: {exc}")
    if not isinstance(config, dict) or config.get("kind", "Config") != "Config":
        raise KubeconfigError("kubeconfig must be a YAML mapping of kind Config (as written by kubectl).")
    return config


def summarize(text: str) -> KubeconfigSummary:
    """Resolve the current context and refuse what the portal cannot use."""
    config = load(text)
    context_name = config.get("current-context") or ""
    contexts = _named(config, "contexts")
    if not context_name:
        if len(contexts) != 1:
            raise KubeconfigError("kubeconfig has no current-context; set current-context to one of its contexts.")
        context_name = next(iter(contexts))
    if context_name not in contexts:
        raise KubeconfigError(f"kubeconfig current-context {context_name!r} is not among its contexts.")
    context = contexts[context_name].get("context") or {}
    cluster_name, user_name = context.get("cluster", ""), context.get("user", "")
    cluster = (_named(config, "clusters").get(cluster_name) or {}).get("cluster")
    if not cluster:
        raise KubeconfigError(
            f"kubeconfig context {context_name!r} names cluster {cluster_name!r}, which is not defined."
        )
    user = (_named(config, "users").get(user_name) or {}).get("user")
    if user is None:
        raise KubeconfigError(f"kubeconfig context {context_name!r} names user {user_name!r}, which is not defined.")
    server = cluster.get("server") or ""
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"kubeconfig cluster {cluster_name!r} needs a server URL starting with https://.")
    if cluster.get("certificate-authority"):
        raise KubeconfigError(
            f"kubeconfig cluster {cluster_name!r}: certificate-authority file paths are not supported; "
            "use certificate-authority-data."
        )
    for key, why in _REFUSED_USER_KEYS.items():
        if user.get(key):
            raise KubeconfigError(f"kubeconfig user {user_name!r}: {why}.")
    if user.get("token"):
        auth = "token"
    elif user.get("client-certificate-data") and user.get("client-key-data"):
        auth = "client-certificate"
    else:
        raise KubeconfigError(
            f"kubeconfig user {user_name!r} has no usable credentials; "
            "give a bearer `token` or client-certificate-data with client-key-data."
        )
    return KubeconfigSummary(context=context_name, cluster=cluster_name, user=user_name, server=server, auth=auth)


INSECURE_HINT = "(a platform may allow it for test clusters with ALLOW_INSECURE_CLUSTERS=true)"


def api_server_problem(url: str, *, allow_insecure: bool) -> str | None:
    """Why an API server URL is refused, or None: https only (unless allowed), a host, no query, fragment or user."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError when the port is not a number in range)
    except ValueError as exc:
        return f"not a usable URL ({exc}); give e.g. 'https://10.0.0.1:6443'"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "give the API server URL, e.g. 'https://10.0.0.1:6443'"
    if parts.query or parts.fragment or url.endswith(("?", "#")) or parts.username or parts.password:
        return "the API server URL takes no query, fragment or user; give e.g. 'https://10.0.0.1:6443'"
    if parts.scheme == "http" and not allow_insecure:
        return f"plain http:// is refused, give an https:// URL {INSECURE_HINT}"
    return None


def insecure_problems(text: str, *, allow_insecure: bool) -> list[str]:
    """What in a kubeconfig's clusters weakens TLS or sends traffic elsewhere (server, verification, proxy)."""
    problems = []
    for name, entry in _named(load(text), "clusters").items():
        cluster = entry.get("cluster") or {}
        if not isinstance(cluster, dict):
            continue
        server_problem = api_server_problem(str(cluster.get("server") or ""), allow_insecure=allow_insecure)
        if server_problem:
            problems.append(f"kubeconfig cluster {name!r}: server: {server_problem}")
        if allow_insecure:
            continue
        if cluster.get("insecure-skip-tls-verify"):
            problems.append(f"kubeconfig cluster {name!r}: insecure-skip-tls-verify is refused {INSECURE_HINT}")
        if cluster.get("proxy-url"):
            problems.append(f"kubeconfig cluster {name!r}: proxy-url is refused {INSECURE_HINT}")
    return problems


def _named(config: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    entries = config.get(key) or []
    if not isinstance(entries, list):
        raise KubeconfigError(f"kubeconfig {key} must be a list of named entries.")
    return {entry.get("name", ""): entry for entry in entries if isinstance(entry, dict)}
