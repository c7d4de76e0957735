"""Shared pieces of the benchmark suite: sizes, datasets, specs, child runs and measurements.

CPU time is measured where it is spent: `time.process_time` for loops run in this process, and the
`rusage` that `os.wait4` returns for a child process (the child plus every descendant it reaped,
e.g. Prefect's ephemeral server). The sandbox gateway always runs in a child process of its own
that is not reaped during a measurement, so its CPU is never counted against a contender.
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from sandbox.config import DEFAULT_GATEWAY_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
GATEWAY_ENV = "BYOKFLOW_BENCH_GATEWAY_KEY"
PROVIDER_ENV = "BYOKFLOW_BENCH_PROVIDER_KEY"
PROVIDER_KEY = "sk-bench-provider-key-0000"
MODEL = "openai/gpt-4o-mini"
# Rows per request-body warm-up of in-process loops (opens the pool, warms caches).
WARMUP_REQUESTS = 200


@dataclass(frozen=True)
class Sizes:
    """Every size knob of the suite; `quick()` is the CI smoke size, `full()` the issue's."""

    throughput_rows: int = 20_000
    naive_prefect_rows: int = 2_000
    concurrency: int = 64
    latency_rows: int = 20_000
    latency_concurrency: int = 1_000
    latency_s: float = 1.0
    rate_rpm: int = 6_000
    rate_work_s: float = 60.0
    rate_warmup_s: float = 60.0
    memory_rows: tuple[int, ...] = (100_000, 1_000_000)
    capacity_requests: int = 20_000
    # Input rows of the multi-model step (each goes to 3 models): 24 s of steady state at the ideal.
    multi_model_rows: int = 1_920
    multi_model_concurrency: int = 16
    multi_model_latency_s: float = 0.2
    # concurrency auto, latency-bound: 5 s answers, a key limited to 30,000 rpm (500/s). 75,000
    # rows are ~150 s at the limit; the first 60 s (ramp-up) are left out of the steady state.
    auto_rows: int = 75_000
    auto_latency_s: float = 5.0
    auto_rpm: int = 30_000
    auto_ramp_s: float = 60.0
    auto_contrast_rows: int = 640
    # concurrency auto, capacity-bound: the sandbox serves N at once, 1 s each (~200 rows/s).
    auto_capacity_n: int = 200
    auto_capacity_latency_s: float = 1.0
    auto_capacity_rows: int = 5_000
    # The auto run's rows: ~75 s at N ÷ latency, several of the window's grow/back-off cycles.
    auto_capacity_auto_rows: int = 15_000
    auto_capacity_sweep: tuple[int, ...] = (50, 100, 200, 400)
    auto_capacity_ramp_s: float = 10.0
    deep_rows: int = 50_000
    deep_concurrency: int = 5_000
    deep_latency_s: float = 5.0
    startup_later_runs: int = 3
    startup_rows: int = 20_000
    quick: bool = False

    @classmethod
    def full(cls) -> Sizes:
        """The sizes the issue asks for."""
        return cls()

    @classmethod
    def quick_sizes(cls) -> Sizes:
        """A smoke-test size: proves every benchmark still runs, judges nothing."""
        return cls(
            throughput_rows=2_000,
            naive_prefect_rows=100,
            latency_rows=1_000,
            latency_concurrency=200,
            latency_s=0.2,
            # 5 s of work at the limit; the sandbox's window stays 60 s, so it is not pre-filled.
            rate_rpm=1_200,
            rate_work_s=4.0,
            rate_warmup_s=0.0,
            memory_rows=(1_000, 3_000),
            capacity_requests=3_000,
            multi_model_rows=192,
            auto_rows=1_500,
            auto_latency_s=0.2,
            auto_rpm=12_000,
            auto_ramp_s=2.0,
            auto_contrast_rows=100,
            auto_capacity_n=20,
            auto_capacity_latency_s=0.2,
            auto_capacity_rows=600,
            auto_capacity_auto_rows=600,
            auto_capacity_sweep=(40,),
            auto_capacity_ramp_s=1.0,
            deep_rows=1_000,
            deep_concurrency=500,
            deep_latency_s=0.5,
            startup_later_runs=1,
            startup_rows=500,
            quick=True,
        )


@dataclass
class Result:
    """One row of the report: a contender's measurement within a benchmark."""

    benchmark: str
    contender: str
    rows: int
    seconds: float
    rows_per_s: float | None = None
    cpu_us_per_request: float | None = None
    ratio: float | None = None
    ratio_to: str | None = None
    target: str | None = None
    met: bool | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rows_per_s is None and self.seconds > 0:
            self.rows_per_s = self.rows / self.seconds

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def prompt_text(index: int, width: int = 0, tag: str = "row") -> str:
    """A unique prompt; padded with filler words to about `width` characters when given."""
    text = f"Summarise {tag} {index} in one line."
    if width > len(text):
        filler = " lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"
        text = (text + filler * (width // len(filler) + 1))[:width]
    return text


def write_prompts(path: Path, rows: int, width: int = 0, tag: str = "row", chunk: int = 50_000) -> Path:
    """A Parquet file of `rows` rows with `id` and `question` columns, written chunk by chunk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("id", pa.string()), ("question", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            stop = min(rows, start + chunk)
            ids = [f"r{i:07d}" for i in range(start, stop)]
            questions = [prompt_text(i, width, tag) for i in range(start, stop)]
            writer.write_table(pa.table({"id": ids, "question": questions}, schema=schema))
    return path


def read_prompts(path: Path) -> list[str]:
    """The `question` column of a prompts file."""
    return [str(q) for q in pq.read_table(path, columns=["question"]).column("question").to_pylist()]


def chat_body(prompt: str) -> dict[str, Any]:
    """The request body every contender sends for one row (the same one byokflow renders)."""
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}]}


def write_spec(
    directory: Path,
    base_url: str,
    prompts: Path,
    *,
    concurrency: int | None,
    shard_size: int = 1000,
    limits: dict[str, Any] | None = None,
    byok: bool = False,
    **step_fields: Any,
) -> Path:
    """A one-step `pipeline.yaml` reading `prompts` and writing `directory/out`.

    `concurrency=None` leaves it out (`auto`, the default); `byok` adds credentials from an
    environment variable (so the sandbox limits the provider key); `step_fields` are further step
    keys (`retry`, ...).
    """
    step: dict[str, Any] = {"name": "answer", "model": MODEL, "input": "{{ question }}"}
    if concurrency is not None:
        step["concurrency"] = concurrency
    step["timeout"] = 60
    if byok:
        step["credentials"] = {"env": PROVIDER_ENV}
    if limits:
        step["limits"] = limits
    step.update(step_fields)
    spec = {
        "name": "benchmark",
        "input": {"path": str(prompts)},
        "output": {"path": str(directory / "out")},
        "gateway": {"base_url": base_url, "api_key": {"env": GATEWAY_ENV}},
        "shard_size": shard_size,
        "steps": [step],
    }
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class ChildRun:
    """What a finished child process cost: wall time, CPU (with reaped descendants), peak RSS."""

    returncode: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    main_hwm_mb: float | None
    stdout: str
    stderr: str


def child_env(prefect_home: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment for a child: keys set, repo importable, Prefect private."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env[GATEWAY_ENV] = DEFAULT_GATEWAY_KEY
    env[PROVIDER_ENV] = PROVIDER_KEY
    if prefect_home is not None:
        # Without PREFECT_API_URL, Prefect starts its ephemeral server on this private home.
        env["PREFECT_HOME"] = str(prefect_home)
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env["PREFECT_LOGGING_LEVEL"] = "WARNING"
    # Each child with Prefect's temporary server, as the engine has always been measured; the startup
    # benchmark measures the shared local server itself (and stops it).
    env["BYOKFLOW_SHARED_SERVER"] = "0"
    env.update(extra)
    return env


def hwm_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MB (Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_child(command: list[str], env: dict[str, str], cwd: Path, timeout: float) -> ChildRun:
    """Run `command`, reap it with `os.wait4` for its own rusage, poll its VmHWM meanwhile."""
    out_path, err_path = cwd / "child.stdout", cwd / "child.stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        hwm: list[float] = []
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.2):
                value = hwm_mb(process.pid)
                if value is not None:
                    hwm.append(value)

        poller = threading.Thread(target=poll, name="hwm-poll", daemon=True)
        poller.start()
        try:
            status, usage = _wait4(process, timeout)
        finally:
            done.set()
            poller.join()
        wall = time.perf_counter() - started
    return ChildRun(
        returncode=os.waitstatus_to_exitcode(status),
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        # Linux reports ru_maxrss in KiB: the largest of the child and its reaped descendants.
        max_rss_mb=usage.ru_maxrss / 1024,
        main_hwm_mb=max(hwm) if hwm else None,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def _wait4(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, resource.struct_rusage]:
    """Reap `process` (killing it after `timeout` s) and return its wait status and rusage."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return status, usage
        if time.monotonic() > deadline:
            process.kill()
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return status, usage
        time.sleep(0.05)


@dataclass
class FlowRun:
    """A `byokflow run` child: its cost, and the run's own steady-state time from the manifest."""

    child: ChildRun
    elapsed_s: float | None
    records: int | None
    ok: int | None
    errors: dict[str, int]

    @property
    def startup_s(self) -> float | None:
        """Prefect start-up and everything outside the run proper (wall − elapsed)."""
        return None if self.elapsed_s is None else self.child.wall_s - self.elapsed_s


_PREFECT_HOME: list[Path] = []


def prefect_home() -> Path:
    """This invocation's private PREFECT_HOME, its database migrated once (removed at exit).

    Every Prefect child of the suite shares it, so no measured run pays for the migrations
    (~7 s here) and every run's start-up is the same ephemeral-server start-up.
    """
    if not _PREFECT_HOME:
        home = Path(tempfile.mkdtemp(prefix="byokflow-bench-prefect-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        command = [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"]
        subprocess.run(command, env=child_env(home), check=True, capture_output=True, cwd=home)
        _PREFECT_HOME.append(home)
    return _PREFECT_HOME[0]


def run_byokflow(
    spec: Path,
    workdir: Path,
    *args: str,
    out: Path | None = None,
    timeout: float = 3600,
    home: Path | None = None,
    **env: str,
) -> FlowRun:
    """`byokflow run spec [args]` in a child process on `home` (default: the private PREFECT_HOME)."""
    command = [sys.executable, "-c", "from flows.cli import main; main()", "run", str(spec), *args]
    if out is not None:
        command += ["--out", str(out)]
    child = run_child(command, child_env(home or prefect_home(), **env), workdir, timeout)
    manifest_path = (out or spec.parent / "out") / "manifest.json"
    elapsed = records = ok = None
    errors: dict[str, int] = {}
    if manifest_path.exists():
        run = json.loads(manifest_path.read_text(encoding="utf-8"))["run"]
        elapsed = float(run["elapsed_s"])
        steps = run.get("steps", [])
        ok = sum(int(s.get("ok", 0)) for s in steps)
        records = ok + sum(int(s.get("errors", 0)) for s in steps)
        for s in steps:
            for kind, count in (s.get("error_types") or {}).items():
                errors[kind] = errors.get(kind, 0) + int(count)
    return FlowRun(child=child, elapsed_s=elapsed, records=records, ok=ok, errors=errors)


def describe_failure(child: ChildRun) -> str:
    """A short note for a child that did not exit 0."""
    tail = (child.stderr.strip().splitlines() or child.stdout.strip().splitlines() or [""])[-1]
    return f"exit {child.returncode}: {tail[:200]}"


@contextmanager
def workdir(name: str) -> Iterator[Path]:
    """A scratch directory for one benchmark, removed afterwards (BENCH_KEEP=1 keeps it)."""
    path = Path(tempfile.mkdtemp(prefix=f"byokflow-bench-{name}-"))
    try:
        yield path
    finally:
        if os.environ.get("BENCH_KEEP"):
            print(f"  kept {path}", flush=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class Measured:
    """Wall and CPU seconds of a block run in this process."""

    wall_s: float = 0.0
    cpu_s: float = 0.0


@contextmanager
def measure() -> Iterator[Measured]:
    """Time a block: wall clock and this process's CPU (`time.process_time`)."""
    measured = Measured()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield measured
    finally:
        measured.wall_s = time.perf_counter() - wall
        measured.cpu_s = time.process_time() - cpu


def per_request_us(cpu_s: float | None, requests: int) -> float | None:
    """CPU microseconds per request."""
    return None if cpu_s is None or requests <= 0 else cpu_s / requests * 1e6


def log(message: str) -> None:
    """Progress line on stderr (stdout stays free for the summary)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
