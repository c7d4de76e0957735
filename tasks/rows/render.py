"""Rendering a step's prompt templates for one row into a chat completion request body.

Templates are Jinja2 in a sandboxed environment with strict undefined names, compiled once per
step. A template sees the row's columns by name (and as `row.<column>`) and earlier steps' records
as `steps.<name>`. `steps` and `row` are reserved: a column of that name is read as `row.<name>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from schemas.spec import StepSpec
from tasks.errors import TemplateError
from tasks.rows.plain_template import PlainTemplate

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_ROLES = {"developer", "system", "user", "assistant", "tool"}
# Names the renderer puts in every template's context, over any column of the same name.
RESERVED_NAMES = {"steps": "earlier steps' records (steps.<step>.output)", "row": "the row's columns"}


class StepRenderer:
    """Turns rows into request bodies for one step."""

    def __init__(self, step: StepSpec) -> None:
        self.step = step
        self._sources = _template_sources(step)
        self._templates = {where: _compile(step.name, where, src) for where, src in self._sources}
        self._params = step.params.model_dump(exclude_none=True)
        self.roles = [_role_of(step, where) for where, _ in self._sources]
        # Filled in without Jinja when every template is plain (`tasks.rows.plain_template`).
        plain = [PlainTemplate.of(_parse(source)) for _, source in self._sources]
        self._plain: list[PlainTemplate] | None = None
        if not step.messages_column and all(p is not None for p in plain):
            self._plain = [p for p in plain if p is not None]

    @property
    def plain(self) -> bool:
        """Whether every row is first tried without Jinja (`contents` can answer)."""
        return self._plain is not None

    def referenced_columns(self) -> set[str]:
        """Input columns the templates (or `messages_column`) read."""
        names: set[str] = set()
        for _, source in self._sources:
            names |= meta.find_undeclared_variables(_parse(source)) - RESERVED_NAMES.keys()
        names |= {key for key in self.namespace_reads("row") if key is not None}
        if self.step.messages_column:
            names.add(self.step.messages_column)
        return names

    def referenced_steps(self) -> set[str]:
        """Names of earlier steps whose records the templates use (`steps.<name>`)."""
        return {key for key in self.namespace_reads("steps") if key is not None}

    def namespace_reads(self, name: str) -> list[str | None]:
        """What the templates read from the reserved `name`: `name.<key>` keys, None for any other use."""
        found: list[str | None] = []
        for _, source in self._sources:
            tree, keyed = _parse(source), set()
            for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
                assert isinstance(node, nodes.Getattr | nodes.Getitem)
                target = node.node
                if isinstance(target, nodes.Name) and target.name == name:
                    key = node.attr if isinstance(node, nodes.Getattr) else _const(node.arg)
                    if key is not None:
                        found.append(key)
                        keyed.add(id(target))
            # A bare `name` (or a computed key): not a plain read of one key.
            bare = [n for n in tree.find_all(nodes.Name) if n.name == name and id(n) not in keyed]
            found += [None] * len(bare)
        return found

    def messages(
        self, row: Mapping[str, Any], steps: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """The chat messages for `row`; raises TemplateError naming the step and template."""
        if self.step.messages_column:
            return _messages_from_column(self.step, row)
        contents = self.contents(row, steps)
        if contents is not None:
            return self.messages_of(contents)
        context = {**row, "steps": steps or {}, "row": row}
        rendered: list[dict[str, Any]] = []
        for where, template in self._templates.items():
            try:
                content = template.render(context)
            except (UndefinedError, SecurityError, TypeError) as exc:
                raise TemplateError(f"step {self.step.name!r}, {where}: {exc}") from None
            rendered.append({"role": _role_of(self.step, where), "content": content})
        return rendered

    def contents(self, row: Mapping[str, Any], steps: Mapping[str, Any] | None = None) -> list[str] | None:
        """Each template's text for `row` without Jinja, or None when Jinja must render the row."""
        if self._plain is None:
            return None
        texts = []
        for template in self._plain:
            text = template.fill(row, steps or {})
            if text is None:
                return None
            texts.append(text)
        return texts

    def messages_of(self, contents: list[str]) -> list[dict[str, Any]]:
        """The chat messages of these template texts (as `contents` gave them)."""
        return [{"role": role, "content": text} for role, text in zip(self.roles, contents, strict=True)]

    def body(self, messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
        """The request body for these messages: model, messages and the step's params."""
        return {"model": model, "messages": messages, **self._params}


def _template_sources(step: StepSpec) -> list[tuple[str, str]]:
    if step.messages is not None:
        return [(f"messages[{i}].content", m.content) for i, m in enumerate(step.messages)]
    sources = []
    if step.instructions is not None:
        sources.append(("instructions", step.instructions))
    if step.input is not None:
        sources.append(("input", step.input))
    return sources


def _role_of(step: StepSpec, where: str) -> str:
    if where == "instructions":
        return "system"
    if where == "input":
        return "user"
    assert step.messages is not None
    index = int(where[len("messages[") : where.index("]")])
    return step.messages[index].role


# Each shard task builds its step's renderer: a template is compiled (and parsed) once per process.
@lru_cache(maxsize=256)
def _parse(source: str) -> nodes.Template:
    """The parsed tree of a template (read, never changed, by whoever asks)."""
    return _ENV.parse(source)


@lru_cache(maxsize=256)
def _compile(step_name: str, where: str, source: str) -> Any:
    try:
        return _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"step {step_name!r}, {where}: template syntax error at line {exc.lineno}: {exc.message}"
        ) from None


def _const(node: nodes.Node) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def _messages_from_column(step: StepSpec, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    column = step.messages_column
    value = row.get(column) if column else None
    if not isinstance(value, list) or not value:
        raise TemplateError(f"column {column!r} must hold a non-empty list of {{role, content}}")
    messages = []
    for index, item in enumerate(value):
        role = item.get("role") if isinstance(item, Mapping) else None
        if role not in _ROLES:
            raise TemplateError(f"column {column!r}, message {index}: invalid role {role!r}")
        messages.append(_message(item))
    return messages


# What a message from a column may carry besides its role, as the chat API defines it.
_MESSAGE_KEYS = ("content", "name", "tool_calls", "tool_call_id")


def _message(item: Mapping[str, Any]) -> dict[str, Any]:
    """A column's message as sent: its role and chat fields, without the nulls Parquet fills in.

    A list of structs gives every struct every field (a text part gets `image_url: null`), which a
    strict provider refuses, so null fields are dropped at every depth; content stays, even null.
    """
    message: dict[str, Any] = {"role": item["role"], "content": _without_nulls(item.get("content"))}
    for key in _MESSAGE_KEYS[1:]:
        if item.get(key) is not None:
            message[key] = _without_nulls(item[key])
    return message


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
