"""kubesim: a small Kubernetes API server emulator (Namespaces, Secrets, Istio Gateways, access reviews).

Start one with `KubeSim(token=...).start()`, from pytest with the `kubesim`/`kubesim_factory` fixtures
(kubesim.testing), or from a shell with `python -m kubesim --port P --token T [--tls] [--demo]`.
"""

from kubesim.auth import Rule
from kubesim.errors import ApiError
from kubesim.server import KubeSim

__all__ = ["ApiError", "KubeSim", "Rule"]
