"""A background writer that keeps changing one Gateway, so clients holding a stale resourceVersion get 409s."""

from __future__ import annotations

import threading

from kubesim.errors import ApiError
from kubesim.resources import GATEWAYS
from kubesim.store import Object, Store

WRITER_ANNOTATION = "kubesim.io/concurrent-writes"
WRITER_PORT_NAME = "kubesim-writer"
MODES = ("annotation", "server")


class ConcurrentWriter:
    """Every `interval_ms`, bump an annotation ("annotation") or rewrite an unmanaged server block ("server")."""

    def __init__(
        self, store: Store, namespace: str, name: str, interval_ms: int = 50, mode: str = "annotation"
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.store, self.namespace, self.name = store, namespace, name
        self.interval = interval_ms / 1000
        self.mode = mode
        self.writes = 0
        self._wrote = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubesim-writer-{name}", daemon=True)

    def start(self) -> ConcurrentWriter:
        self._thread.start()
        return self

    def wait(self, writes: int = 1, timeout: float = 5.0) -> bool:
        """Block until the writer has made `writes` changes; False if that did not happen within `timeout`."""
        with self._wrote:
            return self._wrote.wait_for(lambda: self.writes >= writes, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.store.modify(GATEWAYS, self.namespace, self.name, self._change)
            except ApiError:
                continue  # the Gateway may be deleted and recreated by the test; keep trying
            with self._wrote:
                self.writes += 1
                self._wrote.notify_all()

    def _change(self, gateway: Object) -> None:
        counter = self.writes + 1
        if self.mode == "annotation":
            annotations = gateway["metadata"].setdefault("annotations", {})
            annotations[WRITER_ANNOTATION] = str(counter)
            return
        servers = [s for s in gateway["spec"].get("servers", []) if s.get("port", {}).get("name") != WRITER_PORT_NAME]
        servers.append(
            {
                "port": {"number": 15999, "name": WRITER_PORT_NAME, "protocol": "HTTP"},
                "hosts": [f"w{counter}.writer.kubesim.local"],
            }
        )
        gateway["spec"]["servers"] = servers
