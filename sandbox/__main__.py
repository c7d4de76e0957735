"""`python -m sandbox [--host H] [--port P] [--config FILE] [--set key.path=value ...]`.

Prints `SANDBOX_URL=http://host:port` on stdout once the gateway accepts connections (port 0 picks
a free port); `start_process` waits for that line.
"""

from __future__ import annotations

import argparse
import sys

from sandbox.config import SandboxConfig, SandboxConfigError, merge_flags, parse_assignment
from sandbox.server import READY_PREFIX, serve


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags of `python -m sandbox`."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port; 0 picks a free one")
    parser.add_argument("--config", help="YAML (or JSON) sandbox config file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set latency.fixed_ms=50 --set limits.rpm=10",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, load the config and serve until interrupted."""
    args = build_parser().parse_args(argv)
    try:
        config = SandboxConfig.from_file(args.config) if args.config else SandboxConfig()
        config = merge_flags(config, dict(parse_assignment(item) for item in args.set))
    except SandboxConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    serve(config, args.host, args.port, on_ready=lambda url: print(READY_PREFIX + url, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
