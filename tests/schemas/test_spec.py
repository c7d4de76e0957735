"""The pipeline spec: what validates, and errors that name the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.errors import SpecError
from schemas.spec import PipelineSpec
from schemas.spec_file import load_spec, parse_spec, spec_json_schema

VALID = """
name: eval
input: {path: data/prompts.parquet, id_column: qid}
output: {path: out}
gateway: {base_url: "http://127.0.0.1:4010", api_key: {env: GATEWAY_KEY}}
steps:
  - name: draft
    model: openai/gpt-4o-mini
    credentials: {secret: openai-key, provider_model: gpt-4o-mini}
    instructions: Be brief.
    input: "{{ question }}"
    params: {max_tokens: 32, temperature: 0}
    concurrency: 16
"""


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="pipeline.yaml")
    return str(info.value)


def test_valid_spec_loads_with_defaults() -> None:
    spec = parse_spec(VALID)
    step = spec.steps[0]
    assert spec.input.id_column == "qid"
    assert step.provider_for("openai/gpt-4o-mini") == "openai"
    assert step.model_names == ["openai/gpt-4o-mini"]
    assert step.params.max_tokens == 32
    assert step.retry.max_attempts == 4
    assert spec.shard_size == 1000


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(VALID)
    spec = load_spec(tmp_path / "pipeline.yaml")
    assert spec.input.path == str(tmp_path / "data" / "prompts.parquet")
    assert spec.output.path == str(tmp_path / "out")


def test_uri_paths_are_left_alone() -> None:
    spec = parse_spec(VALID.replace("data/prompts.parquet", "s3://bucket/prompts/"))
    assert spec.resolved_against(Path("/x")).input.path == "s3://bucket/prompts/"


def test_unknown_key_is_named_with_its_location() -> None:
    message = _error(VALID.replace("concurrency: 16", "concurency: 16"))
    assert "pipeline.yaml" in message
    assert "steps[0].concurency: unknown key" in message


def test_wrong_type_names_the_key() -> None:
    message = _error(VALID.replace("max_tokens: 32", "max_tokens: lots"))
    assert "steps[0].params.max_tokens" in message


def test_model_without_provider_is_rejected() -> None:
    message = _error(VALID.replace("openai/gpt-4o-mini", "gpt-4o-mini"))
    assert "steps[0].model" in message and "'provider/model'" in message


def test_unknown_provider_lists_the_supported_ones() -> None:
    message = _error(VALID.replace("openai/gpt-4o-mini", "openia/gpt-4o-mini"))
    assert "unknown provider 'openia'" in message and "together_ai" in message


def test_unknown_credentials_provider_is_rejected() -> None:
    message = _error(VALID.replace("provider_model: gpt-4o-mini", "provider: acme"))
    assert "steps[0].credentials.provider" in message


def test_credentials_need_exactly_one_source() -> None:
    message = _error(
        VALID.replace("{secret: openai-key, provider_model: gpt-4o-mini}", "{secret: a, env: B}")
    )
    assert "steps[0].credentials" in message and "exactly one" in message


def test_step_needs_exactly_one_prompt_source() -> None:
    message = _error(VALID.replace('input: "{{ question }}"', "messages_column: chat"))
    assert "'instructions' goes with 'input'" in message
    both = VALID.replace("    instructions: Be brief.\n", "    messages_column: chat\n")
    assert "exactly one prompt source" in _error(both)


def test_duplicate_step_names_are_rejected() -> None:
    step = VALID[VALID.index("  - name: draft") :]
    assert "duplicate step name 'draft'" in _error(VALID + step)


def test_invalid_yaml_names_line_and_column() -> None:
    message = _error("name: x\nsteps: [\n")
    assert message.startswith("pipeline.yaml: invalid YAML") and "line" in message


def test_spec_must_be_a_mapping() -> None:
    assert "must be a mapping" in _error("- a\n- b\n")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: cannot read"):
        load_spec(tmp_path / "nope.yaml")


def test_json_schema_is_exported_and_forbids_extra_keys() -> None:
    schema = json.loads(spec_json_schema())
    assert schema["title"] == "PipelineSpec"
    assert schema["additionalProperties"] is False
    assert "steps" in schema["required"]
    assert PipelineSpec.model_json_schema()["$defs"]["StepSpec"]["additionalProperties"] is False
