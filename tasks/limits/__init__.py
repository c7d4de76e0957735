"""What a run may spend and how fast it may send.

`BudgetGuard` holds a run's `max_cost_usd`: each call reserves its worst case before it is sent.
`RateGovernor` paces one provider key (requests and tokens per minute, concurrency, pauses after
a 429 and what `x-ratelimit-*` headers say); a `GovernorRegistry` finds the governor of a key by
an HMAC of it, shared by every run in the process that uses the key.
"""

from tasks.limits.budget import BudgetGuard
from tasks.limits.governor import PROCESS_GOVERNORS, GovernorRegistry, Permit, RateGovernor

__all__ = ["PROCESS_GOVERNORS", "BudgetGuard", "GovernorRegistry", "Permit", "RateGovernor"]
