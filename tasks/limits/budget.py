"""A hard budget for a run: a request is sent only if it cannot push spending over the limit.

Before each request the worst case of its cost (the prompt's estimated tokens plus `max_tokens`
of output) is reserved; when the reservation would exceed `max_cost_usd`, the row is not sent and
gets a `budget_exhausted` record. When the answer arrives, the reservation becomes the real cost —
of every call that was paid for, including answers that end as error records (invalid output, a
runner loop that failed after calls). So spending never passes the budget, as long as the
provider honours `max_tokens`. A runner step reserves before each of its calls, from the
conversation as it has grown.
"""

from __future__ import annotations

import threading
from typing import Any


class BudgetGuard:
    """Spending of one run (in this process) against its `max_cost_usd` (None: no limit)."""

    def __init__(self, max_cost_usd: float | None) -> None:
        self.max_cost_usd = max_cost_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.refused = 0
        self._lock = threading.Lock()

    def reserve(self, worst_case_usd: float) -> bool:
        """Hold `worst_case_usd` for one request; False when that could exceed the budget."""
        with self._lock:
            if self.max_cost_usd is not None and not self._fits(worst_case_usd):
                self.refused += 1
                return False
            self.reserved += worst_case_usd
            return True

    def give_back(self) -> None:
        """Return what this process holds but has not reserved (only a cluster share holds any)."""

    def _fits(self, worst_case_usd: float) -> bool:
        """Whether one more reservation stays within the budget; lock held."""
        assert self.max_cost_usd is not None
        return self.spent + self.reserved + worst_case_usd <= self.max_cost_usd

    def settle(self, worst_case_usd: float, actual_usd: float) -> None:
        """Replace a reservation by what the request really cost (0 if it failed unbilled)."""
        with self._lock:
            self.reserved -= worst_case_usd
            self.spent += actual_usd

    @property
    def exhausted(self) -> bool:
        """Whether some request was refused for lack of budget."""
        return self.refused > 0



# A worker draws budget from the cluster in chunks of this fraction of it (or one request's worst
# case, if larger): one round trip per chunk, and little left idle on workers with no work.
CHUNK = 0.02


class ClusterBudget(BudgetGuard):
    """A Dask worker's part of the run's budget, drawn in chunks from the cluster's pacer.

    The pacer holds the run's `max_cost_usd`; a worker asks for a chunk when its allowance cannot
    hold the next reservation, and gives back what it has not reserved when a shard task ends, so
    an idle worker never sits on budget a busy one needs.
    """

    def __init__(self, max_cost_usd: float, pacer: Any) -> None:
        super().__init__(max_cost_usd)
        self._pacer = pacer
        self.allowance = 0.0

    def _fits(self, worst_case_usd: float) -> bool:
        needed = self.spent + self.reserved + worst_case_usd - self.allowance
        if needed <= 0:
            return True
        assert self.max_cost_usd is not None
        asked = max(needed, CHUNK * self.max_cost_usd)
        # A blocking round trip, once per chunk (the budget's whole point is to wait for its answer).
        self.allowance += float(self._pacer.grant_budget(self.max_cost_usd, asked).result())
        return self.spent + self.reserved + worst_case_usd <= self.allowance

    def give_back(self) -> None:
        """Return the allowance not reserved or spent to the cluster."""
        with self._lock:
            unused = self.allowance - self.spent - self.reserved
            if unused <= 0:
                return
            self.allowance -= unused
        self._pacer.return_budget(unused)
