"""Profile the pipeline flow in this process under pyinstrument (zero-latency sandbox, one step).

A one-row run first starts Prefect's ephemeral server, so the profile shows the steady state of a
`rows`-row run, not Prefect's start-up. pyinstrument is a profiling aid, not a project
dependency: `pip install pyinstrument` into your own venv first.

    python -m benchmarks.profile_flow [--rows 20000] [--concurrency 64] [--out benchmarks/results]

Writes `profile.txt` (call tree) and `profile.html` in `--out`; see `benchmarks/PROFILE.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from benchmarks.harness import child_env, prefect_home, workdir, write_prompts, write_spec
from sandbox import SandboxConfig, start_process

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    """Run a warm-up flow, then the profiled one; write the reports."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_flow", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.001, help="sampling interval, seconds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    from pyinstrument import Profiler

    # Before Prefect is imported: the private home, no PREFECT_API_URL, the keys in the environment.
    env = child_env(prefect_home())
    for name in [k for k in os.environ if k.startswith("PREFECT_")]:
        del os.environ[name]
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "BYOKFLOW_"))})
    from flows.pipeline import pipeline

    with workdir("profile") as wd, start_process(SandboxConfig()) as sandbox:
        warm_dir, main_dir = wd / "warm", wd / "main"
        warm_dir.mkdir()
        main_dir.mkdir()
        warm = write_spec(warm_dir, sandbox.url, write_prompts(warm_dir / "p.parquet", 1), concurrency=8)
        asyncio.run(pipeline(str(warm)))
        prompts = write_prompts(main_dir / "prompts.parquet", args.rows)
        spec = write_spec(main_dir, sandbox.url, prompts, concurrency=args.concurrency)
        profiler = Profiler(interval=args.interval, async_mode="disabled")
        started = time.perf_counter()
        profiler.start()
        summary = asyncio.run(pipeline(str(spec)))
        profiler.stop()
        wall = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile.txt").write_text(
        profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8"
    )
    (args.out / "profile.html").write_text(profiler.output_html(), encoding="utf-8")
    print(
        f"{args.rows} rows: flow {wall:.1f} s, run elapsed {summary.elapsed_s:.1f} s "
        f"({args.rows / summary.elapsed_s:,.0f} rows/s); wrote {args.out}/profile.txt and profile.html"
    )


if __name__ == "__main__":
    main()
