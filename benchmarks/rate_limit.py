"""Benchmark 3: a provider key limited to 6,000 requests per minute; 60 s of work at that rate.

Two `byokflow run`s with BYOK credentials on the limited key: the step told the limit
(`limits: {rpm: 6000}`) and the step not told it (adaptive, the engine's default).

The sandbox limits with a sliding 60 s window, so a key idle for a minute admits a whole minute's
worth of requests at once: 60 s of work sent in a burst would "beat" the limit without pacing at
all. To measure pacing, a filler first uses the key at exactly the limit for `rate_warmup_s`
(60 s: the window is full, as for a key that has been busy) and keeps going until the engine's
first request arrives; from then on only what leaves the window can be admitted, at the limit's
rate. The filler uses another model, so the engine's requests are told apart in the sandbox's
arrival log (`/sandbox/arrivals`), from which everything is computed:

- achieved rate: the engine's admitted requests over the span of its arrivals, ÷ the limit;
- 429 share: the engine's requests answered 429 ÷ all its requests;
- early retries: per prompt, an arrival that follows a 429 sooner than that 429's exact wait.

Targets: configured ≥ 0.97 × limit with ≤ 0.5 % 429s; adaptive ≥ 0.9 × limit with ≤ 5 % 429s;
no early retry in either. With `rate_warmup_s = 0` (the quick size) the window starts empty and
the limit may never bind: then the rate is reported but not judged.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.harness import (
    MODEL,
    PROVIDER_KEY,
    Result,
    Sizes,
    describe_failure,
    log,
    per_request_us,
    run_byokflow,
    workdir,
    write_prompts,
    write_spec,
)
from sandbox import SandboxConfig, start_process
from sandbox.config import DEFAULT_GATEWAY_KEY, LimitsConfig
from sandbox.limits import key_hash
from sandbox.server import SandboxProcess

NAME = "rate_limit"
FILLER_MODEL = "openai/gpt-4o"
# Retry policy of both runs: enough attempts that rows end as results, not rate_limited errors.
RETRY = {"max_attempts": 10, "initial_backoff": 0.5, "max_backoff": 30, "deadline": 600}
# Above this share of the limit, the limit did not bind and the run cannot be judged.
UNBOUND = 1.02


@dataclass(frozen=True)
class Mode:
    """One of the two runs: its label, the step's `limits`, and its targets."""

    label: str
    limits: dict[str, Any] | None
    min_ratio: float
    max_429_share: float


@dataclass
class Filler:
    """Uses the key at exactly `rpm` from a thread of its own until `stop` is set."""

    url: str
    rpm: int
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: Counter[int] = field(default_factory=Counter)
    thread: threading.Thread | None = None

    def start(self) -> Filler:
        """Start sending."""
        self.thread = threading.Thread(target=lambda: asyncio.run(self._send()), name="filler", daemon=True)
        self.thread.start()
        return self

    def finish(self) -> None:
        """Stop sending and wait for the thread."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)

    async def _send(self) -> None:
        headers = {"Authorization": f"Bearer {DEFAULT_GATEWAY_KEY}", "X-Provider-Key": PROVIDER_KEY}
        interval, started, pending = 60.0 / self.rpm, time.monotonic(), set()
        async with aiohttp.ClientSession(self.url, headers=headers) as session:

            async def one(i: int) -> None:
                body = {"model": FILLER_MODEL, "messages": [{"role": "user", "content": f"filler {i}"}]}
                async with session.post("/v1/chat/completions", json=body) as response:
                    await response.read()
                    self.statuses[response.status] += 1

            i = 0
            while not self.stop.is_set():
                delay = started + i * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.ensure_future(one(i))
                pending.add(task)
                task.add_done_callback(pending.discard)
                i += 1
            if pending:
                await asyncio.wait(pending)


def _stop_on_first_arrival(sandbox: SandboxProcess, filler: Filler, done: threading.Event) -> None:
    """Stop the filler as soon as the sandbox has seen a request of the engine's model."""
    while not done.wait(0.1):
        if sandbox.stats().get("by_model", {}).get(MODEL):
            break
    filler.finish()


@contextmanager
def filled_window(sandbox: SandboxProcess, rpm: int, warmup_s: float, name: str) -> Iterator[Filler | None]:
    """Fill the key's 60 s window at `rpm` for `warmup_s` (0: not at all) until the engine's first request."""
    if warmup_s <= 0:
        yield None
        return
    log(f"{name}: filling the key's 60 s window at {rpm} rpm for {warmup_s:g} s")
    filler, done = Filler(sandbox.url, rpm).start(), threading.Event()
    time.sleep(warmup_s)
    watcher = threading.Thread(target=_stop_on_first_arrival, args=(sandbox, filler, done), daemon=True)
    watcher.start()
    try:
        yield filler
    finally:
        done.set()
        watcher.join()


@dataclass
class Arrivals:
    """What the sandbox saw of the engine's requests on the key."""

    requests: int
    ok: int
    rate_limited: int
    span_s: float
    retries: int
    early_retries: int
    min_margin_s: float | None
    # 429s within the first second of the engine's arrivals (an initial burst into a full window).
    first_second_429s: int

    @classmethod
    def of(cls, entries: list[dict[str, Any]]) -> Arrivals:
        """Summarise the engine's arrivals (the filler's model excluded)."""
        mine = [e for e in entries if e.get("model") != FILLER_MODEL]
        by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in mine:
            by_prompt[str(entry.get("prompt"))].append(entry)
        retries = early = 0
        margin: float | None = None
        for log_ in by_prompt.values():
            log_.sort(key=lambda e: e["t"])
            retries += len(log_) - 1
            for before, after in itertools.pairwise(log_):
                if before["status"] == 429 and before.get("retry_after_s") is not None:
                    gap = after["t"] - before["t"] - float(before["retry_after_s"])
                    margin = gap if margin is None else min(margin, gap)
                    early += gap < 0
        times = [e["t"] for e in mine]
        first = min(times) if times else 0.0
        return cls(
            requests=len(mine),
            ok=sum(e["status"] == 200 for e in mine),
            rate_limited=sum(e["status"] == 429 for e in mine),
            span_s=(max(times) - min(times)) if times else 0.0,
            retries=retries,
            early_retries=early,
            min_margin_s=margin,
            first_second_429s=sum(e["status"] == 429 and e["t"] < first + 1.0 for e in mine),
        )


def run(sizes: Sizes) -> list[Result]:
    """The configured and the adaptive run, each after the key's window was filled."""
    rpm = sizes.rate_rpm
    rows = max(1, round(rpm * sizes.rate_work_s / 60))
    modes = [
        Mode(f"byokflow, step configured (limits.rpm {rpm})", {"rpm": rpm}, 0.97, 0.005),
        Mode("byokflow, adaptive (step not told the limit)", None, 0.9, 0.05),
    ]
    config = SandboxConfig(limits=LimitsConfig(rpm=rpm))
    results: list[Result] = []
    with workdir(NAME) as wd, start_process(config) as sandbox:
        prompts = write_prompts(wd / "prompts.parquet", rows)
        for index, mode in enumerate(modes):
            sandbox.reset()
            directory = wd / f"run-{index}"
            directory.mkdir()
            results.append(_one_run(sandbox, directory, prompts, rows, rpm, mode, sizes.rate_warmup_s))
    return results


def _one_run(
    sandbox: SandboxProcess, wd: Path, prompts: Path, rows: int, rpm: int, mode: Mode, warmup_s: float
) -> Result:
    """Fill the window (if asked), run byokflow, read the arrival log."""
    spec = write_spec(wd, sandbox.url, prompts, concurrency=64, byok=True, limits=mode.limits, retry=RETRY)
    with filled_window(sandbox, rpm, warmup_s, NAME) as filler:
        log(f"{NAME}: {mode.label}: byokflow run, {rows} rows")
        flow = run_byokflow(spec, wd)
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, mode.label, rows, child.wall_s, notes=describe_failure(child))
    seen = Arrivals.of(sandbox.arrivals(key_hash(PROVIDER_KEY)).get(key_hash(PROVIDER_KEY), []))
    limit_rps = rpm / 60
    rate = seen.ok / seen.span_s if seen.span_s > 0 else float(seen.ok)
    ratio = rate / limit_rps
    share = seen.rate_limited / seen.requests if seen.requests else 0.0
    bound = ratio <= UNBOUND
    met = None
    if bound:
        met = ratio >= mode.min_ratio and share <= mode.max_429_share and seen.early_retries == 0
    notes = [
        f"{seen.requests} requests, {seen.rate_limited} answered 429 ({share:.2%}), {seen.retries} retries, "
        f"{seen.first_second_429s} of the 429s in the first second, "
        f"{seen.early_retries} retries sooner than Retry-After"
        + (f" (closest {seen.min_margin_s * 1000:+.0f} ms)" if seen.min_margin_s is not None else ""),
        f"admitted {seen.ok} over {seen.span_s:.1f} s of arrivals; run elapsed {flow.elapsed_s:.1f} s, "
        f"start-up {flow.startup_s:.1f} s",
        f"rows ok {flow.ok}" + (f", errors {flow.errors}" if flow.errors else ""),
    ]
    if filler is not None:
        notes.append(f"filler statuses {dict(filler.statuses)}")
    if not bound:
        notes.append(
            f"the limit did not bind ({ratio:.1f} × the limit: the window was not full), so not judged"
        )
    return Result(
        NAME,
        mode.label,
        rows,
        seen.span_s,
        rows_per_s=rate,
        cpu_us_per_request=per_request_us(child.cpu_s, rows),
        ratio=ratio,
        ratio_to="÷ limit",
        target=f"≥ {mode.min_ratio:g} × limit, ≤ {mode.max_429_share:.1%} 429, no early retry",
        met=met,
        notes="; ".join(notes),
        extra={
            "arrivals": seen.__dict__,
            "limit_rps": limit_rps,
            "elapsed_s": flow.elapsed_s,
            "startup_s": flow.startup_s,
            "wall_s": child.wall_s,
            "errors": flow.errors,
            "filler_statuses": dict(filler.statuses) if filler else None,
        },
    )
