"""`validate --estimate`: the numbers, for templates reading any field of an earlier step."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.estimate import estimate_run
from flows.preflight import preflight
from tasks.rows.tokens import MAX_ANSWER_TOKENS, prompt_tokens
from tests.flows.support import GATEWAY_ENV, make_spec, step, write_prompts


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, "gateway-key")


async def test_the_estimate_counts_every_row_and_bounds_answers_by_their_cap(tmp_path: Path) -> None:
    questions = ["short", "a somewhat longer question here", "   "]
    write_prompts(tmp_path / "prompts.parquet", questions)
    prices = tmp_path / "prices.yaml"
    prices.write_text(yaml.safe_dump({"openai/gpt-4o-mini": {"input": 1.0, "output": 2.0}}))
    steps = [
        step("draft", output_model=None, params={"max_tokens": 100}),
        step("review", input="Score {{ steps.draft.parsed.score }} ({{ steps.draft.finish_reason }})"),
    ]
    spec = make_spec(tmp_path, "http://127.0.0.1:9", steps, prices=str(prices))
    spec = spec.model_copy(update={"input": spec.input.model_copy(update={"empty_prompts": "record"})})
    estimates = {e.step: e for e in estimate_run(await preflight(spec))}
    draft, review = estimates["draft"], estimates["review"]
    # The blank row is not sent by the draft step; the review step has no blank column of its own.
    assert (draft.requests, draft.unsent_rows) == (2, 1) and review.requests == 3
    expected = sum(prompt_tokens({"messages": [{"role": "user", "content": q}]}) for q in questions[:2])
    assert draft.prompt_tokens == expected
    assert draft.max_completion_tokens == 2 * 100
    # No max_tokens: the same cap the budget reserves.
    assert review.max_completion_tokens == 3 * MAX_ANSWER_TOKENS
    # The draft's answer stands in at its cap inside the review's prompt.
    assert review.prompt_tokens > 3 * 100
    assert draft.cost_usd == pytest.approx((expected * 1.0 + 200 * 2.0) / 1_000_000)
