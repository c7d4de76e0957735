"""Plain templates are filled in without Jinja, to the very text Jinja renders (or Jinja renders them)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.spec import StepSpec
from tasks.errors import TemplateError
from tasks.rows.render import _ENV, StepRenderer

ROW: dict[str, Any] = {
    "q": 'héllo "quoted" \\ {{ not a template }} \n\t end',
    "n": 3,
    "nothing": None,
    "meta": {"title": "T", "items": "a key named like a dict method"},
    "keys": "a column named like a dict method",
}
STEPS: dict[str, Any] = {"draft": {"output": "A\nB", "model": "m", "parsed": {"k": "v"}}}

PLAIN = [
    "{{ q }}",
    "Q: {{ q }}\n",
    "{{ row.q }}|{{ row['q'] }}",
    "Review: {{ steps.draft.output }}",
    "{{ steps['draft']['output'] }} and {{ q }} and {{ meta.title }}",
    "  {{- q -}}  x",
    "{% raw %}{{ q }}{% endraw %} {{ q }}",
    "{# a comment #}{{ q }}",
    "line1\r\nline2 {{ q }}",
    "no field at all",
    "",
    "{{ keys }}",
    "{{ meta['items'] }}",
    "{{ steps.draft.parsed.k }}",
]
# Rendered by Jinja on every row: filters, conditions, calls, constants, dict-method attributes.
NOT_PLAIN = [
    "{{ q | upper }}",
    "{% if q %}{{ q }}{% endif %}",
    "{{ q.upper() }}",
    "{{ 'x' }}",
    "{{ none }}",
    "{{ row }}",
    "{{ steps }}",
    "{{ meta.items }}",
    "{{ row.keys }}",
    "{{ steps.draft.parsed.k }}{% set x = 1 %}",
]
# Plain, but this row is rendered by Jinja: a value that is not a string, or no value at all.
FALLBACK = ["{{ n }}", "{{ nothing }}", "{{ steps.draft.parsed }}", "{{ meta }}"]


def _renderer(source: str) -> StepRenderer:
    return StepRenderer(
        StepSpec.model_validate({"name": "s", "model": "openai/gpt-4o-mini", "input": source})
    )


def _jinja(source: str) -> str:
    text: str = _ENV.from_string(source).render({**ROW, "steps": STEPS, "row": ROW})
    return text


@pytest.mark.parametrize("source", PLAIN + NOT_PLAIN + FALLBACK)
def test_every_template_renders_what_jinja_renders(source: str) -> None:
    renderer = _renderer(source)
    assert renderer.messages(ROW, STEPS) == [{"role": "user", "content": _jinja(source)}]


@pytest.mark.parametrize("source", PLAIN)
def test_plain_templates_are_filled_in_without_jinja(source: str) -> None:
    renderer = _renderer(source)
    assert renderer.plain and renderer.contents(ROW, STEPS) == [_jinja(source)]


@pytest.mark.parametrize("source", NOT_PLAIN)
def test_other_templates_are_left_to_jinja(source: str) -> None:
    assert not _renderer(source).plain


@pytest.mark.parametrize("source", FALLBACK)
def test_a_value_that_is_not_a_string_is_left_to_jinja(source: str) -> None:
    renderer = _renderer(source)
    assert renderer.plain and renderer.contents(ROW, STEPS) is None


def test_a_missing_value_is_jinja_s_error() -> None:
    for source in ["{{ questoin }}", "{{ steps.draft.outptu }}", "{{ steps.plan.output }}", "{{ row.x }}"]:
        renderer = _renderer(source)
        assert renderer.plain and renderer.contents(ROW, STEPS) is None
        with pytest.raises(TemplateError, match=r"step 's', input: .*(is undefined|has no attribute)"):
            renderer.messages(ROW, STEPS)


def test_instructions_and_input_keep_their_roles() -> None:
    spec = {"name": "s", "model": "openai/gpt-4o-mini", "instructions": "Be {{ tone }}.", "input": "{{ q }}"}
    renderer = StepRenderer(StepSpec.model_validate(spec))
    assert renderer.contents({"tone": "brief", "q": "why?"}) == ["Be brief.", "why?"]
    assert renderer.messages({"tone": "brief", "q": "why?"}) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "why?"},
    ]


def test_a_messages_column_is_never_plain() -> None:
    renderer = StepRenderer(
        StepSpec.model_validate({"name": "s", "model": "openai/gpt-4o-mini", "messages_column": "chat"})
    )
    assert not renderer.plain and renderer.contents({"chat": []}) is None
