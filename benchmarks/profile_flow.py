"""Profile the pipeline flow in this process under pyinstrument (zero-latency sandbox).

A one-row run first starts Prefect's ephemeral server, so the profile shows the steady state of a
`rows`-row run, not Prefect's start-up. pyinstrument is a profiling aid, not a project
dependency: `pip install pyinstrument` into your own venv first.

    python -m benchmarks.profile_flow [--rows 20000] [--concurrency 64] [--out benchmarks/results]
    python -m benchmarks.profile_flow --rows 100000 --chained --resumed   # a run with nothing to send

`--chained` adds a second step that reads the first's output (as the memory benchmark does);
`--resumed` runs the pipeline once unprofiled, then profiles the same run again, when every
record is already in the output directory. Writes `profile.txt` (call tree) and `profile.html`
in `--out`; see `benchmarks/PROFILE.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import yaml

from benchmarks.harness import child_env, prefect_home, workdir, write_prompts, write_spec
from sandbox import SandboxConfig, start_process

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    """Run a warm-up flow, then the profiled one; write the reports."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_flow", description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--interval", type=float, default=0.001, help="sampling interval, seconds")
    parser.add_argument("--chained", action="store_true", help="a second step reading the first")
    parser.add_argument("--resumed", action="store_true", help="profile a second run: nothing to send")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="work directory kept between calls (a resumed profile reuses its output)",
    )
    args = parser.parse_args(argv)
    from pyinstrument import Profiler

    # Before Prefect is imported: the private home, no PREFECT_API_URL, the keys in the environment.
    env = child_env(prefect_home())
    for name in [k for k in os.environ if k.startswith("PREFECT_")]:
        del os.environ[name]
    os.environ.update({k: v for k, v in env.items() if k.startswith(("PREFECT_", "BYOKFLOW_"))})
    from flows.pipeline import pipeline

    with _workdir(args.dir) as wd, start_process(SandboxConfig()) as sandbox:
        warm_dir, main_dir = wd / "warm", wd / f"main-{args.rows}"
        shutil.rmtree(warm_dir, ignore_errors=True)
        warm_dir.mkdir()
        done_before = (main_dir / "out" / "manifest.json").exists()
        main_dir.mkdir(exist_ok=True)
        warm = write_spec(warm_dir, sandbox.url, write_prompts(warm_dir / "p.parquet", 1), concurrency=8)
        asyncio.run(pipeline(str(warm)))
        prompts = main_dir / "prompts.parquet"
        if not done_before:
            write_prompts(prompts, args.rows)
        # The sandbox's port changes per call; the URL is no part of any request hash.
        spec = write_spec(main_dir, sandbox.url, prompts, concurrency=args.concurrency)
        if args.chained:
            chain(spec)
        if args.resumed and not done_before:
            began = time.perf_counter()
            asyncio.run(pipeline(str(spec)))
            print(f"unprofiled first run: {time.perf_counter() - began:.1f} s", flush=True)
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


def _workdir(directory: Path | None) -> AbstractContextManager[Path]:
    """A kept directory when given (created if need be), else a scratch one removed afterwards."""
    if directory is None:
        return workdir("profile")
    directory.mkdir(parents=True, exist_ok=True)
    return nullcontext(directory)


def chain(spec: Path) -> None:
    """Add a second step to a one-step benchmark spec that reads the first step's output."""
    loaded = yaml.safe_load(spec.read_text(encoding="utf-8"))
    first = loaded["steps"][0]
    loaded["steps"].append({**first, "name": "review", "input": "Review: {{ steps.answer.output }}"})
    spec.write_text(yaml.safe_dump(loaded, sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    main()
