"""Pure validation, split by concern; every function takes and returns plain data (no ORM, no network).

- `istio`: Istio's rules for a Gateway manifest (istio-gateway-rules.md), findings as `list[Issue]`.
- `spec`: the portal's own rules on a service spec, DRF-shaped error dicts.
- `tenancy`: a team's namespaces and domains, DRF-shaped error dicts.
- `hosts`: Istio's host syntax and host overlap.

The §7 merge rules and host normalization are `services.listeners`; the vocabulary is `services.choices`.
This package re-exports the public names so `from services.validation import validate_spec` keeps working.
"""

# Re-exports only: the same names as the submodules import (the import lists look alike on purpose).
from services.choices import (
    PORTAL_HTTP_FAMILY,
    PORTAL_PLAINTEXT,
    PORTAL_PROTOCOLS,
    PORTAL_TLS_MODES,
    TLS_VERSIONS,
    TRAFFIC_TYPES,
)
from services.listeners import HTTP_FAMILY, ISTIO_PROTOCOLS, TLS_BEARING, parse_protocol
from services.validation.hosts import (
    HostIndex,
    dns_name_problem,
    hosts_overlap,
    is_dns1123_label,
    istio_host_problem,
    stored_overlap_keys,
)
from services.validation.istio import (
    ISTIO_API_VERSIONS,
    ISTIO_TLS_MODES,
    UINT32_MAX,
    VALID_CIPHER_SUITES,
    Issue,
    Severity,
    merge_clashes,
    tls_version_greater,
    validate_gateway,
    validate_server,
    validate_tls,
)
from services.validation.spec import TLS_SOURCES, portal_host_problem, validate_spec
from services.validation.tenancy import host_in_domains, secret_reference_errors, validate_tenancy

__all__ = [
    "HTTP_FAMILY",
    "HostIndex",
    "ISTIO_API_VERSIONS",
    "ISTIO_PROTOCOLS",
    "ISTIO_TLS_MODES",
    "PORTAL_HTTP_FAMILY",
    "PORTAL_PLAINTEXT",
    "PORTAL_PROTOCOLS",
    "PORTAL_TLS_MODES",
    "TLS_BEARING",
    "TLS_SOURCES",
    "TLS_VERSIONS",
    "TRAFFIC_TYPES",
    "UINT32_MAX",
    "VALID_CIPHER_SUITES",
    "Issue",
    "Severity",
    "dns_name_problem",
    "host_in_domains",
    "hosts_overlap",
    "stored_overlap_keys",
    "is_dns1123_label",
    "istio_host_problem",
    "merge_clashes",
    "parse_protocol",
    "portal_host_problem",
    "secret_reference_errors",
    "tls_version_greater",
    "validate_gateway",
    "validate_server",
    "validate_spec",
    "validate_tenancy",
    "validate_tls",
]
