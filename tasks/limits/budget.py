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
            if (
                self.max_cost_usd is not None
                and self.spent + self.reserved + worst_case_usd > self.max_cost_usd
            ):
                self.refused += 1
                return False
            self.reserved += worst_case_usd
            return True

    def settle(self, worst_case_usd: float, actual_usd: float) -> None:
        """Replace a reservation by what the request really cost (0 if it failed unbilled)."""
        with self._lock:
            self.reserved -= worst_case_usd
            self.spent += actual_usd

    @property
    def exhausted(self) -> bool:
        """Whether some request was refused for lack of budget."""
        return self.refused > 0

