"""One run's state, built once by the flow and passed down to every shard task.

`RunPlan` is the run's description: picklable, key-free, what a Dask worker receives. `RunContext`
is the live state built from it: where the records already done are (each shard reads its own),
the budget, the prices, the local tools, the progress board and stop signal, and the (step, model)
pools with their keys' governors. The flow builds one per run; each Dask worker process builds
its own from the plan (see `tasks.run.worker_plugin`). Two runs in one process have two contexts
and share nothing but their keys' governors, because a provider counts a key's requests
whoever sends them.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

from schemas.prices import PriceTable, load_prices
from schemas.spec import GatewaySpec, StepSpec, StorageOptions
from tasks.limits.budget import BudgetGuard, ClusterBudget
from tasks.limits.governor import PROCESS_GOVERNORS, GovernorRegistry
from tasks.rows.local_tools import LocalTool, load_tool
from tasks.run.control import RunControl
from tasks.run.pools import StepPools
from tasks.store.catalog import RecordCatalog, load_catalog
from tasks.store.done_index import DoneIndex, shard_done_index
from tasks.store.location import StoreLocation, store_location


@dataclass(frozen=True)
class RunPlan:
    """What every shard task of a run needs to know; picklable, holds no keys."""

    run_id: str
    # A local directory or an s3:// URI; each process opens its own filesystem on it.
    output_dir: str
    id_column: str
    gateway: GatewaySpec
    # None: a normal run; a set: `retry-errors` (empty set: every error type).
    retry_types: frozenset[str] | None = None
    view_steps: frozenset[str] = frozenset()
    prices: str | None = None
    max_cost_usd: float | None = None
    # Processes that run shard tasks at once (Dask workers): each takes its share of concurrency.
    processes: int = 1
    # The output directory held no record when the run started (nothing there can be superseded).
    fresh_output: bool = False
    output_options: StorageOptions | None = None
    flush_records: int = 1000
    flush_seconds: float = 60.0
    # The run's secret for naming keys on Dask workers (HMAC; not a key, and no key can be read back
    # from it): the same key is the same key on every worker.
    key_secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)


class RunContext:
    """The live state of one run in one process (a plain object: Prefect never walks into it)."""

    def __init__(
        self,
        plan: RunPlan,
        control: RunControl | None = None,
        *,
        governors: GovernorRegistry = PROCESS_GOVERNORS,
        catalog: RecordCatalog | None = None,
        prices: PriceTable | None = None,
        pacer: Any | None = None,
    ) -> None:
        self.plan = plan
        self.control = control or RunControl()
        self.location: StoreLocation = store_location(plan.output_dir, plan.output_options)
        # On a Dask worker the budget is drawn from the cluster's pacer, in chunks.
        self.budget: BudgetGuard = (
            ClusterBudget(plan.max_cost_usd, pacer)
            if pacer is not None and plan.max_cost_usd is not None
            else BudgetGuard(plan.max_cost_usd)
        )
        self.prices = prices if prices is not None else load_prices(plan.prices)
        # `pacer`: on a Dask worker, the cluster's `ClusterPacer` actor, which paces every key.
        self.pools = StepPools(plan.gateway, governors, plan.processes, pacer)
        self._catalog = catalog
        self._tools: dict[str, dict[str, LocalTool]] = {}
        self._lock = threading.Lock()

    @property
    def catalog(self) -> RecordCatalog:
        """Where the output directory's records are (footers only), read on first use."""
        with self._lock:
            if self._catalog is None:
                self._catalog = load_catalog(self.location)
            return self._catalog

    def shard_index(self, row_ids: list[str], step: str) -> DoneIndex:
        """What is already recorded for these rows of `step`: read per shard, never for the whole run."""
        with_views = step in self.plan.view_steps
        return shard_done_index(self.catalog, row_ids, step, with_views, self.plan.retry_types)

    def tools_for(self, step: StepSpec) -> dict[str, LocalTool]:
        """The local tools of a runner step by name, imported once per run."""
        with self._lock:
            tools = self._tools.get(step.name)
            if tools is None:
                paths = step.runner.tools if step.runner else []
                tools = self._tools[step.name] = {tool.name: tool for tool in map(load_tool, paths)}
            return tools

    def __repr__(self) -> str:
        return f"RunContext(run_id={self.plan.run_id!r})"
