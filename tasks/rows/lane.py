"""A lane: what every row of one (step, model) in one shard task shares.

The shard task builds one lane per model of its step from the run's context; the stages of a
row (prepare, send, record) read only their lane, so they can be tested without Prefect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway import GatewayClient
from schemas.prices import PriceTable
from schemas.records import ErrorRecord, ResultRecord
from schemas.spec import StepSpec
from tasks.limits.budget import BudgetGuard
from tasks.limits.cluster import ClusterLease
from tasks.limits.governor import RateGovernor
from tasks.limits.slots import InFlightSlots
from tasks.rows.fingerprint import RequestHasher
from tasks.rows.local_tools import LocalTool
from tasks.rows.render import StepRenderer
from tasks.rows.structured import OutputValidator
from tasks.rows.tally import StepShardOutcome
from tasks.store.done_index import DoneIndex


class Journal(Protocol):
    """Where a row's record goes the moment it is complete."""

    def append(self, record: ResultRecord | ErrorRecord) -> None:
        """Persist one record."""


class StopFlag(Protocol):
    """The run's stop signal, as a row reads it."""

    def is_set(self) -> bool:
        """Whether the run is stopping."""


class Pool(Protocol):
    """A (step, model)'s client, in-flight bound and key governor."""

    client: GatewayClient
    slots: InFlightSlots
    governor: RateGovernor
    lease: ClusterLease | None


@dataclass
class Lane:
    """One (step, model) of one shard task: its renderer, limits, pool, index and journal."""

    run_id: str
    step: StepSpec
    model: str
    renderer: StepRenderer
    validator: OutputValidator
    tools: Mapping[str, LocalTool]
    prices: PriceTable
    budget: BudgetGuard
    pool: Pool
    index: DoneIndex
    journal: Journal
    stop: StopFlag
    upstream: Mapping[str, StepShardOutcome] = field(default_factory=dict)
    # Constant per lane, so worked out once here rather than per row.
    provider: str = field(init=False)
    provider_model: str | None = field(init=False)
    depends_on: list[str] = field(init=False)
    # The input columns the templates read (where an empty value means an empty prompt).
    columns: list[str] = field(init=False)
    # Hashes a request from its template texts alone, when the renderer can give them (plain templates).
    hasher: RequestHasher | None = field(init=False)
    _runner: dict[str, Any] | None = field(init=False)

    def __post_init__(self) -> None:
        self.provider = self.step.provider_for(self.model)
        credentials = self.step.credentials_for(self.model)
        self.provider_model = credentials.provider_model if credentials else None
        self.depends_on = sorted(self.renderer.referenced_steps())
        self.columns = sorted(self.renderer.referenced_columns())
        runner = self.step.runner
        self._runner = runner.model_dump() if runner else None
        self.hasher = None
        if self.renderer.plain:
            slots = len(self.renderer.roles)
            try:
                self.hasher = RequestHasher(
                    self.definition_of_contents, slots, self.provider, self.provider_model
                )
            except ValueError:  # a definition that does not place each text once: hashed the long way
                self.hasher = None

    def body_of(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """The request body sent for these messages: model, messages, params, response format."""
        body = self.renderer.body(messages, self.model)
        if self.validator.response_format is not None:
            body["response_format"] = self.validator.response_format
        return body

    def definition_of(self, body: dict[str, Any]) -> dict[str, Any]:
        """What defines a request with this body, and so its record: never the key or the stream flag."""
        return {**body, "runner": self._runner}

    def definition_of_contents(self, contents: list[str]) -> dict[str, Any]:
        """The definition of the request whose template texts are `contents`."""
        return self.definition_of(self.body_of(self.renderer.messages_of(contents)))
