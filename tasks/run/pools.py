"""One gateway client and one concurrency bound per (step, model), shared by its shard tasks.

Shard tasks awaited on the flow's event loop share the pool created by the first of them, so a
step has one connection pool sized to its concurrency however many shards run at once. Tasks on
other loops (thread or Dask runners) get a pool of their own and close it when they end: an httpx
client must not cross event loops. Keys are loaded here, inside the task, and live only in the
client.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gateway import GatewayClient
from schemas.spec import GatewaySpec, RateLimits, StepSpec
from tasks.limits.cluster import ClusterLease
from tasks.limits.governor import GovernorRegistry, RateGovernor
from tasks.limits.slots import InFlightSlots
from tasks.limits.window import ConcurrencyWindow
from tasks.run.credentials import load_key


@dataclass
class StepPool:
    """What every request of a (step, model) shares: its client and its in-flight bound."""

    client: GatewayClient
    # A fixed number, or the window `concurrency: auto` finds (`slots.window`).
    slots: InFlightSlots
    # Shared with every other step that uses the same key.
    governor: RateGovernor
    # On a Dask worker: the key's cluster-wide pace (None in one process: the governor paces).
    lease: ClusterLease | None = None


_PoolKey = tuple[int, str, str]


class StepPools:
    """The pools of one run, per event loop and (step, model); opened on first use."""

    def __init__(
        self,
        gateway: GatewaySpec,
        governors: GovernorRegistry,
        processes: int = 1,
        pacer: Any | None = None,
    ) -> None:
        self._gateway, self._governors, self._processes = gateway, governors, processes
        self._pools: dict[_PoolKey, asyncio.Task[StepPool]] = {}
        # A Dask actor handle (`ClusterPacer`): the cluster's pace per key, drawn as leases.
        self._pacer = pacer
        self._leases: dict[str, ClusterLease] = {}

    async def pool(self, step: StepSpec, model: str) -> StepPool:
        """The pool of `step`'s `model` on the running loop, created (keys loaded) on first use."""
        key = (id(asyncio.get_running_loop()), step.name, model)
        pending = self._pools.get(key)
        if pending is None:
            pending = self._pools[key] = asyncio.ensure_future(self._open(step, model))
        try:
            return await asyncio.shield(pending)
        except BaseException:
            # A failed creation (a missing secret, say) must not be cached for the next shard.
            if pending.done():
                self._pools.pop(key, None)
            raise

    async def close_loop_pools(self) -> None:
        """Close the pools created on the running event loop."""
        loop_id = id(asyncio.get_running_loop())
        for key in [k for k in self._pools if k[0] == loop_id]:
            pending = self._pools.pop(key)
            if pending.done() and not pending.cancelled() and pending.exception() is None:
                await pending.result().client.aclose()

    async def _open(self, step: StepSpec, model: str) -> StepPool:
        gateway = self._gateway
        api_key = await load_key(gateway.api_key)
        credentials = step.credentials_for(model)
        provider_key = await load_key(credentials) if credentials else None
        client = GatewayClient(
            api_key=api_key,
            base_url=gateway.base_url,
            provider=credentials.provider if credentials else None,
            provider_key=provider_key,
            provider_model=credentials.provider_model if credentials else None,
            timeout=step.timeout,
            max_connections=step.max_in_flight(),
            # The spec is the single source of truth: no DEDALUS_* fallbacks inside a run.
            environ={},
        )
        limits = share_of(step.limits, self._processes)
        governor = self._governors.governor_for(provider_key or api_key, limits)
        if step.concurrency == "auto":
            slots = InFlightSlots(window=ConcurrencyWindow(maximum=step.max_in_flight()))
        else:
            slots = InFlightSlots(fixed=step.max_in_flight())
        return StepPool(client=client, slots=slots, governor=governor, lease=self._lease_for(governor))

    def _lease_for(self, governor: RateGovernor) -> ClusterLease | None:
        """One cluster lease per key in this process (keyed by the governor's HMAC id)."""
        if self._pacer is None:
            return None
        lease = self._leases.get(governor.key_id)
        if lease is None:
            lease = self._leases[governor.key_id] = ClusterLease(self._pacer, governor.key_id)
        return lease


def share_of(limits: RateLimits, processes: int) -> RateLimits:
    """This process's share of a key's concurrency when `processes` processes use the key at once.

    Rates are not shared out: on a cluster, `ClusterPacer` paces the key for all processes.
    """
    if processes <= 1:
        return limits

    def part(value: int | None) -> int | None:
        return None if value is None else max(1, value // processes)

    return limits.model_copy(update={"max_concurrency": part(limits.max_concurrency)})
