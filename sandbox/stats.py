"""Request counters and per-key arrival logs of the sandbox gateway (`/sandbox/stats`, `/arrivals`).

Only chat completion requests are counted. Statuses are HTTP codes; a dropped connection is recorded
as status 0. Keys appear only as `key_hash(key)` (the provider key under BYOK, else the gateway key;
`anonymous` when the request had none). Arrival times are `time.monotonic()` seconds of the sandbox
process: compare them with each other, not with the client's clock.

Each arrival entry is `{t, status, retry_after_s, prompt, model}`; `retry_after_s` is the exact
wait a 429 asked for (`retry-after-ms` in seconds; `Retry-After` is that rounded up), else None.
So "no retry came sooner than Retry-After" reads: for consecutive arrivals a, b of one key and
prompt, `b.t >= a.t + a.retry_after_s` whenever `a.status == 429`.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from typing import Any

from sandbox.responder import canonical_messages
from schemas.wire import ChatMessage

ANONYMOUS = "anonymous"
DROPPED = 0


def hash_canonical(canonical: str) -> str:
    """The prompt hash of an already canonicalised message list."""
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def prompt_hash(messages: list[ChatMessage]) -> str:
    """sha256 hex (first 16 chars) of the canonical JSON of `messages`: how stats name a prompt."""
    return hash_canonical(canonical_messages(messages))


class Stats:
    """Cheap in-memory counters; one instance per app, reset by `POST /sandbox/reset`."""

    def __init__(self, *, max_arrivals_per_key: int = 100_000) -> None:
        self._max_arrivals = max_arrivals_per_key
        self.reset()

    def reset(self) -> None:
        """Forget everything counted so far."""
        self.requests = 0
        self.by_status: Counter[int] = Counter()
        self.by_model: Counter[str] = Counter()
        self.by_prompt: Counter[str] = Counter()
        self.by_key: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self._arrivals: dict[str, deque[dict[str, Any]]] = {}

    def record(
        self,
        *,
        arrived: float,
        status: int,
        key_id: str | None,
        model: str | None,
        prompt: str | None,
        retry_after_s: float | None = None,
    ) -> None:
        """Count one finished chat completion request."""
        self.requests += 1
        self.by_status[status] += 1
        key = key_id or ANONYMOUS
        self.by_key[key] += 1
        if model is not None:
            self.by_model[model] += 1
        if prompt is not None:
            self.by_prompt[prompt] += 1
        log = self._arrivals.get(key)
        if log is None:
            # A bounded log per key keeps a long benchmark from growing memory without limit.
            log = self._arrivals[key] = deque(maxlen=self._max_arrivals)
        log.append(
            {
                "t": arrived,
                "status": status,
                "retry_after_s": retry_after_s,
                "prompt": prompt,
                "model": model,
            }
        )

    def record_fault(self, name: str) -> None:
        """Count one injected fault or directive (`error_500`, `drop`, `directive:status`, ...)."""
        self.faults[name] += 1

    def snapshot(self) -> dict[str, Any]:
        """The JSON body of `GET /sandbox/stats`."""
        return {
            "requests": self.requests,
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
            "by_model": dict(self.by_model),
            "by_prompt": dict(self.by_prompt),
            "by_key": dict(self.by_key),
            "rate_limited": self.by_status.get(429, 0),
            "faults": dict(self.faults),
        }

    def arrivals(self, key_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """The JSON body of `GET /sandbox/arrivals`: per key hash, arrivals ordered by time."""
        logs = self._arrivals
        if key_id is not None:
            logs = {key_id: logs[key_id]} if key_id in logs else {}
        return {key: sorted(log, key=lambda e: e["t"]) for key, log in logs.items()}
