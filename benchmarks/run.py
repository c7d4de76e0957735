"""Run the benchmark suite and write `latest.json` and `latest.md`.

    python -m benchmarks.run [--quick] [--only NAME ...] [--out benchmarks/results]

The full size writes `benchmarks/results/latest.{json,md}`; `--quick` writes
`benchmarks/results/quick/latest.{json,md}` unless `--out` says otherwise.

`--quick` is the CI smoke size: it proves every benchmark still runs and exits 0 whether or not
targets are met (missed targets are reported, not fatal). A benchmark that crashes is reported
and makes the exit code 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    auto_capacity,
    auto_latency,
    deep,
    latency,
    memory,
    multi_model,
    rate_limit,
    report,
    sandbox_capacity,
    scale_out,
    startup,
    throughput,
)
from benchmarks.harness import REPO_ROOT, Result, Sizes, log

BENCHMARKS: dict[str, Callable[[Sizes], list[Result]]] = {
    "sandbox_capacity": sandbox_capacity.run,
    "throughput": throughput.run,
    "latency": latency.run,
    "rate_limit": rate_limit.run,
    "memory": memory.run,
    "multi_model": multi_model.run,
    "scale_out": scale_out.run,
    "auto_latency": auto_latency.run,
    "auto_capacity": auto_capacity.run,
    "deep": deep.run,
    "startup": startup.run,
}
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke size (~1.5-2 min on 2 cores)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME", help="run these")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"directory for latest.json/.md (default {DEFAULT_OUT}, with --quick {DEFAULT_OUT}/quick)",
    )
    args = parser.parse_args(argv)
    if args.out is None:
        # A local smoke run must not overwrite the committed full-size report.
        args.out = DEFAULT_OUT / "quick" if args.quick else DEFAULT_OUT
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks one after another; write the report; return the exit code."""
    args = parse_args(argv)
    sizes = Sizes.quick_sizes() if args.quick else Sizes.full()
    names = args.only or list(BENCHMARKS)
    results: list[Result] = []
    errors: dict[str, str] = {}
    load: dict[str, list[float]] = {}
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "size": "quick" if args.quick else "full",
        "date": report.now(),
        "machine": report.machine(),
        "commit": report.engine_version(REPO_ROOT),
        "benchmarks": names,
        "total_s": 0.0,
        "errors": errors,
        "load_average": load,
    }
    for name in names:
        # The machine is shared: the 1-minute load average says how busy it was besides us.
        load[name] = [round(os.getloadavg()[0], 2)]
        log(f"{name}: start (load average {load[name][0]})")
        began = time.perf_counter()
        try:
            results.extend(BENCHMARKS[name](sizes))
        except Exception as exc:
            traceback.print_exc()
            errors[name] = f"{type(exc).__name__}: {exc}"
        load[name].append(round(os.getloadavg()[0], 2))
        log(f"{name}: done in {time.perf_counter() - began:.1f} s")
        # Written after every benchmark, so a long run that dies keeps what it measured.
        meta["total_s"] = time.perf_counter() - started
        report.write(results, args.out, meta)
    json_path, md_path = report.write(results, args.out, meta)
    print(report.markdown(results, meta))
    print(f"wrote {json_path} and {md_path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
