"""Outbound HTTPS: verified against the system's CA store, or the file named by REQUESTS_CA_BUNDLE / SSL_CERT_FILE.

`requests` would otherwise trust only its own certifi bundle, and ignores SSL_CERT_FILE; one rule here keeps every
outbound call (identity issuers, their keys) on the same trust store, internal CAs included.
"""

from __future__ import annotations

import os
import ssl

DEBIAN_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def ca_bundle() -> str | bool:
    """What to pass as `requests`' `verify`: a CA file or directory, or True (the library's default)."""
    for variable in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(variable):
            return os.environ[variable]
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, DEBIAN_BUNDLE, paths.capath):
        if candidate and os.path.exists(candidate):
            return candidate
    return True


def ssl_context() -> ssl.SSLContext:
    """The same trust as ca_bundle(), for clients built on the standard library (urllib)."""
    bundle = ca_bundle()
    if isinstance(bundle, str) and os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    if isinstance(bundle, str):
        return ssl.create_default_context(cafile=bundle)
    return ssl.create_default_context()
