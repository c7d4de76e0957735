"""`byokflow validate SPEC --estimate`: tokens and cost before anything is spent.

Every row's prompts are rendered (earlier steps' outputs stand in at their `max_tokens`), so the
prompt side is an estimate (about 4 characters a token) and the answer side an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.preflight import CheckedPipeline
from schemas.prices import load_prices
from tasks.inputs.dataset import iter_shards
from tasks.rows.render import StepRenderer
from tasks.rows.row_call import estimate_tokens

DEFAULT_ANSWER_TOKENS = 256


@dataclass
class StepEstimate:
    """Estimated usage and cost of one (step, model) over the whole dataset."""

    step: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    max_completion_tokens: int = 0
    cost_usd: float | None = 0.0


def estimate_run(checked: CheckedPipeline) -> list[StepEstimate]:
    """Estimate every (step, model) of the pipeline over every row of its input."""
    spec = checked.spec
    prices = load_prices(spec.prices)
    renderers = {step.name: StepRenderer(step) for step in spec.steps}
    answer_cap = {s.name: s.params.max_tokens or DEFAULT_ANSWER_TOKENS for s in spec.steps}
    estimates = {(s.name, m): StepEstimate(s.name, m) for s in spec.steps for m in s.model_names}
    for shard in iter_shards(checked.dataset, checked.columns, 5000):
        for row in shard.to_pylist():
            for name in checked.order:
                step, renderer = spec.step(name), renderers[name]
                upstream = {dep: {"output": "", "parsed": {}} for dep in checked.depends_on[name]}
                messages = renderer.messages(row, upstream) if not _has_empty(row, renderer) else []
                prompt = estimate_tokens({"messages": messages, "max_tokens": 0})
                prompt += sum(answer_cap[dep] for dep in checked.depends_on[name])
                calls = step.runner.max_steps if step.runner else 1
                for model in step.model_names:
                    estimate = estimates[(name, model)]
                    estimate.requests += calls
                    estimate.prompt_tokens += prompt * calls
                    estimate.max_completion_tokens += answer_cap[name] * calls
    for estimate in estimates.values():
        estimate.cost_usd = prices.cost(
            estimate.model, estimate.prompt_tokens, estimate.max_completion_tokens
        )
    return list(estimates.values())


def _has_empty(row: dict[str, object], renderer: StepRenderer) -> bool:
    return any(row.get(column) in (None, "") for column in renderer.referenced_columns())
