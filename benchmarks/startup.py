"""Benchmark 10: start-up — the wall time of a 1-row `byokflow run`, first and later runs.

As a new user meets it: a fresh, empty `PREFECT_HOME` for the first run (Prefect creates and
migrates its database), then `startup_later_runs` more runs on the same, now warm, home. Each is
a whole `byokflow run` process against a zero-latency sandbox, timed from spawn to exit.

Beside it, on the warm home, a 20,000-row zero-latency run: its whole-process rows/s (start-up
and shutdown included) over its steady-state rows/s (rows ÷ the run's own `elapsed_s`).

Targets: later runs ≤ 3 s (median); whole-process ≥ 0.75 × steady state. The import time of
`flows.cli` alone (`python -X importtime`, in a child) goes to the notes: the part of start-up
that is Python importing modules.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.harness import (
    REPO_ROOT,
    ChildRun,
    Result,
    Sizes,
    child_env,
    describe_failure,
    log,
    run_byokflow,
    run_child,
    workdir,
    write_prompts,
    write_spec,
)
from benchmarks.traces import WIDE
from sandbox import SandboxConfig, start_process

NAME = "startup"
TARGET_LATER_S = 3.0
TARGET_WHOLE = 0.75
COMMAND = [sys.executable, "-c", "from flows.cli import main; main()", "run"]


def import_seconds(modules: str = "flows.cli, flows.pipeline") -> dict[str, float]:
    """Import time (s) of `modules` (what a run imports), and of the heaviest packages among them."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {modules}"],
        env=child_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    total, packages = 0.0, dict[str, float]()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if not match:
            continue
        seconds = int(match[1]) / 1e6
        if len(match[2]) <= 1:  # imported by the -c line itself
            total += seconds
        if "." not in match[3]:  # a package's first import: its cumulative time (nested ones overlap)
            packages.setdefault(match[3], seconds)
    heaviest = dict(sorted(packages.items(), key=lambda kv: -kv[1])[:6])
    return {"total": total, **heaviest}


def _one_row_runs(url: str, wd: Path, home: Path, later: int) -> list[ChildRun]:
    """The first run on a fresh PREFECT_HOME, then `later` runs on the same home."""
    prompts = write_prompts(wd / "one.parquet", 1)
    spec = write_spec(wd, url, prompts, concurrency=None)
    runs = []
    for index in range(later + 1):
        log(f"{NAME}: 1-row run {index + 1} of {later + 1}" + (" (fresh PREFECT_HOME)" if not index else ""))
        shutil.rmtree(wd / "out", ignore_errors=True)
        # As a user's runs are: the first starts the shared local Prefect server, later ones reuse it.
        env = child_env(home, BYOKFLOW_SHARED_SERVER="1")
        runs.append(run_child([*COMMAND, str(spec)], env, wd, 600))
    return runs


@contextmanager
def warm_home() -> Iterator[Path]:
    """A fresh PREFECT_HOME whose shared local server is stopped (and the home removed) at the end."""
    home = Path(tempfile.mkdtemp(prefix="byokflow-bench-startup-prefect-"))
    try:
        yield home
    finally:
        stop = [*COMMAND[:-1], "server", "stop"]  # COMMAND ends with the `run` subcommand
        run_child(stop, child_env(home, BYOKFLOW_SHARED_SERVER="1"), Path(home), 60)
        shutil.rmtree(home, ignore_errors=True)


def run(sizes: Sizes) -> list[Result]:
    """1-row runs (first, later) and the whole-process share of a zero-latency run."""
    results: list[Result] = []
    imports = import_seconds()
    import_note = "import flows.cli, flows.pipeline: " + ", ".join(
        f"{k} {v:.2f} s" for k, v in imports.items()
    )
    with workdir(NAME) as wd, start_process(SandboxConfig()) as sandbox, warm_home() as home:
        runs = _one_row_runs(sandbox.url, wd, home, sizes.startup_later_runs)
        failed = [r for r in runs if r.returncode != 0]
        first, later = runs[0], runs[1:]
        results.append(
            Result(
                NAME,
                f"1-row byokflow run, first (fresh home, starts the server): {first.wall_s:.1f} s wall",
                1,
                first.wall_s,
                notes=f"wall {first.wall_s:.1f} s, CPU {first.cpu_s:.1f} s"
                + (f"; {describe_failure(first)}" if first.returncode else ""),
                extra={"wall_s": first.wall_s, "cpu_s": first.cpu_s},
            )
        )
        walls = [r.wall_s for r in later]
        median = statistics.median(walls)
        results.append(
            Result(
                NAME,
                f"1-row byokflow run, later (shared server): {median:.1f} s wall, median of {len(walls)}",
                1,
                median,
                ratio=median / TARGET_LATER_S,
                ratio_to="s ÷ 3 s",
                target=f"≤ {TARGET_LATER_S:g} s wall",
                met=median <= TARGET_LATER_S and not failed,
                notes=f"walls {', '.join(f'{w:.1f}' for w in walls)} s; CPU "
                f"{', '.join(f'{r.cpu_s:.1f}' for r in later)} s; {import_note}"
                + (f"; {describe_failure(failed[0])}" if failed else ""),
                extra={"walls_s": walls, "cpu_s": [r.cpu_s for r in later], "imports_s": imports},
            )
        )
        results.append(_whole_vs_steady(wd, sandbox.url, home, sizes.startup_rows))
    return results


def _whole_vs_steady(wd: Path, url: str, home: Path, rows: int) -> Result:
    """A zero-latency run of `rows` rows on the warm home: whole-process ÷ steady-state rows/s."""
    label = f"{rows:,}-row zero-latency run, whole process"
    prompts = write_prompts(wd / "many.parquet", rows)
    (wd / "many").mkdir()
    spec = write_spec(wd / "many", url, prompts, concurrency=None)
    log(f"{NAME}: {label}")
    # On the warm home, with its shared server, as a user's later runs are.
    flow = run_byokflow(spec, wd / "many", home=home, COLUMNS=WIDE, BYOKFLOW_SHARED_SERVER="1")
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))
    whole, steady = rows / child.wall_s, (flow.ok or 0) / flow.elapsed_s
    return Result(
        NAME,
        label,
        rows,
        child.wall_s,
        rows_per_s=whole,
        ratio=whole / steady,
        ratio_to="÷ steady state",
        target=f"≥ {TARGET_WHOLE:g} × steady state",
        met=whole >= TARGET_WHOLE * steady,
        notes=f"steady state {steady:,.0f} rows/s over elapsed {flow.elapsed_s:.1f} s; outside it "
        f"{flow.startup_s:.1f} s of the {child.wall_s:.1f} s; concurrency auto; rows ok {flow.ok}",
        extra={"steady_rows_per_s": steady, "elapsed_s": flow.elapsed_s, "startup_s": flow.startup_s},
    )
