"""`byokflow validate SPEC --estimate`: tokens and cost before anything is spent.

Every row's prompts are rendered (earlier steps' outputs stand in at their answer cap), so the
prompt side is an estimate (about 4 characters a token) and the answer side an upper bound: the
same worst case the budget reserves (`tasks.rows.tokens`). A row whose prompt is empty or does
not render is not sent, so it is counted as such and costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from flows.preflight import CheckedPipeline, placeholder_view
from tasks.inputs.dataset import blank_rows, iter_shards
from tasks.rows.render import StepRenderer
from tasks.rows.tokens import answer_cap, prompt_tokens


@dataclass
class StepEstimate:
    """Estimated usage and cost of one (step, model) over the whole dataset."""

    step: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    max_completion_tokens: int = 0
    cost_usd: float | None = 0.0
    # Rows not sent: an empty prompt, or a template that fails on the row's values.
    unsent_rows: int = 0


def estimate_run(checked: CheckedPipeline) -> list[StepEstimate]:
    """Estimate every (step, model) of the pipeline over every row of its input."""
    spec = checked.spec
    renderers = {step.name: StepRenderer(step) for step in spec.steps}
    caps = {s.name: answer_cap(s.params.max_tokens) for s in spec.steps}
    estimates = {(s.name, m): StepEstimate(s.name, m) for s in spec.steps for m in s.model_names}
    for shard in iter_shards(checked.dataset, checked.columns, 5000):
        blank = {name: blank_rows(shard, sorted(r.referenced_columns())) for name, r in renderers.items()}
        for i, row in enumerate(shard.to_pylist()):
            for name in checked.order:
                step, deps = spec.step(name), checked.depends_on[name]
                prompt = _prompt_tokens(renderers[name], row, deps, blank[name][i])
                calls = step.runner.max_steps if step.runner else 1
                for model in step.model_names:
                    _add(estimates[(name, model)], prompt, caps, deps, calls)
    for estimate in estimates.values():
        estimate.cost_usd = checked.prices.cost(
            estimate.model, estimate.prompt_tokens, estimate.max_completion_tokens
        )
    return list(estimates.values())


def _prompt_tokens(renderer: StepRenderer, row: dict[str, object], deps: set[str], blank: bool) -> int | None:
    """The row's estimated prompt tokens for a step, or None when the row would not be sent."""
    if blank:
        return None
    try:
        messages = renderer.messages(row, {dep: placeholder_view() for dep in deps})
    except Exception:  # a template failing on this row (TemplateError or its own code): not sent
        return None
    return prompt_tokens({"messages": messages})


def _add(
    estimate: StepEstimate, prompt: int | None, caps: dict[str, int], deps: set[str], calls: int
) -> None:
    if prompt is None:
        estimate.unsent_rows += 1
        return
    # Each earlier step's output appears in the prompt at up to its answer cap.
    prompt += sum(caps[dep] for dep in deps)
    estimate.requests += calls
    estimate.prompt_tokens += prompt * calls
    estimate.max_completion_tokens += caps[estimate.step] * calls
