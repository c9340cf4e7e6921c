"""`python -m kubesim --port P --token T [--tls] [--demo]`: run one simulated cluster until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from kubesim.resources import ISTIO_VERSIONS
from kubesim.server import KubeSim


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kubesim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--token", required=True, help="bearer token allowed to do everything")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a generated CA (its PEM is printed)")
    parser.add_argument("--demo", action="store_true", help="pre-create istio-system, demo and the two Gateways")
    parser.add_argument(
        "--istio-versions",
        default=",".join(ISTIO_VERSIONS),
        help=f"comma-separated networking.istio.io versions to serve (default {','.join(ISTIO_VERSIONS)})",
    )
    parser.add_argument(
        "--no-istio-webhook",
        action="store_true",
        help="accept every Gateway the CRD schema accepts (a cluster without Istio's validating webhook)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    versions = tuple(v.strip() for v in args.istio_versions.split(",") if v.strip())
    sim = KubeSim(
        host=args.host,
        port=args.port,
        token=args.token,
        tls=args.tls,
        istio_versions=versions,
        istio_webhook=not args.no_istio_webhook,
    )
    if args.demo:
        sim.seed_demo()

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, so it must not run on the serving (main) thread.
        threading.Thread(target=sim.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if sim.ca_file:
        print(f"kubesim CA certificate: {sim.ca_file}", flush=True)
    print(f"kubesim listening on {sim.url}", flush=True)
    sim.serve_forever()
    sim.stop()
    print("kubesim stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
