"""Request hashes: the fast hasher of plain templates gives exactly `request_hash`."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.spec import StepSpec
from tasks.rows.fingerprint import RequestHasher, request_hash
from tasks.rows.prepare import prepare
from tasks.rows.request import Request
from tests.tasks.rows.fakes import FakeClient, completion, lane

STRINGS = [
    "",
    "plain",
    'quotes " and \\ backslashes \\" ',
    "control \x00 \x1f \n \r \t \u2028 \u2029",
    "unicode é ü 中文 🙂",
    '{"looks": ["like", "json"]}',
    "0123456789abcdef0123456789abcdef-1",
]


def _definition(contents: list[str]) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "system", "content": contents[0]}, {"role": "user", "content": contents[1]}],
        "temperature": 0.5,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"a": [1, None]}}},
        "runner": {"tools": ["m:f"], "max_steps": 3},
    }


@pytest.mark.parametrize("first", STRINGS)
@pytest.mark.parametrize("second", STRINGS[:4])
def test_the_hasher_gives_request_hash(first: str, second: str) -> None:
    hasher = RequestHasher(_definition, 2, "openai", "gpt-4o")
    for row_id in ["r1", 'id "with" quotes é']:
        expected = request_hash(row_id, _definition([first, second]), "openai", "gpt-4o")
        assert hasher.digest(row_id, [first, second]) == expected


def test_a_definition_that_drops_a_text_is_refused() -> None:
    with pytest.raises(ValueError, match="appear once"):
        RequestHasher(lambda contents: {"messages": []}, 1, "openai", None)


def _step(**fields: Any) -> StepSpec:
    return StepSpec.model_validate({"name": "review", "model": "openai/gpt-4o-mini", **fields})


@pytest.mark.parametrize(
    "fields",
    [
        {"input": "Review: {{ steps.draft.output }} of {{ q }}"},
        {"instructions": "Be {{ tone }}.", "input": "{{ q }}", "params": {"max_tokens": 5}},
        {"input": "{{ q }}", "params": {"response_format": {"type": "json_object"}}},
        {"input": "{{ q }}", "runner": {"tools": ["tests.tasks.tools_for_tests:calculator"]}},
    ],
)
def test_a_plain_lane_prepares_the_request_the_long_way_would(fields: dict[str, Any]) -> None:
    plain = lane(_step(**fields), FakeClient(_never))
    assert plain.hasher is not None
    row = {"q": 'why "now"?', "tone": "brief"}
    plain.upstream = {"draft": _upstream({"r1": {"output": "draft é"}})}
    prepared = prepare(plain, "r1", row, blank=False)
    assert isinstance(prepared, Request)
    steps = {"draft": {"output": "draft é"}}
    body = plain.body_of(plain.renderer.messages(row, steps))
    assert prepared.body == body
    expected = request_hash("r1", plain.definition_of(body), plain.provider, plain.provider_model)
    assert prepared.digest == expected


async def _never(body: dict[str, Any]) -> dict[str, Any]:
    return completion("unused")


def _upstream(outputs: dict[str, dict[str, Any]]) -> Any:
    from tasks.rows.tally import StepShardOutcome

    return StepShardOutcome(step="draft", shard_index=0, outputs=outputs)
