"""Local tools for runner steps: Python callables the model may call, described by a JSON schema.

A tool is named by an import path, `"package.module:function"`. Its JSON schema is built with
pydantic from the function's signature and type hints, and the same pydantic model validates the
model's arguments before the function is called, so a bad call never reaches user code: it comes
back as an `"Error: ..."` outcome the runner hands to the model. Nothing here raises while a tool
runs (except cancellation); only loading a tool raises, as `ToolImportError`.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from schemas.import_path import is_import_path
from tasks.errors import ToolImportError

ToolOutcomeKind = Literal["ok", "error", "invalid_arguments", "arguments_missing"]

# What OpenAI-style APIs accept as a function name.
_TOOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """How one tool call ended: `result` when `kind == "ok"`, else an `"Error: ..."` in `error`."""

    kind: ToolOutcomeKind
    result: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the function ran and returned."""
        return self.kind == "ok"

    @property
    def content(self) -> str:
        """The text of the `tool` message that answers the call."""
        return (self.result if self.ok else self.error) or ""


class LocalTool:
    """A Python callable offered to the model as a function tool, with validated arguments."""

    __slots__ = (
        "_arguments_model",
        "_is_async",
        "_positional",
        "description",
        "function",
        "name",
        "parameters",
        "required",
    )

    def __init__(self, function: Callable[..., Any], *, name: str | None = None) -> None:
        """Describe `function` as a tool; raises ToolImportError if its signature cannot be one."""
        label = name or getattr(function, "__qualname__", None) or repr(function)
        tool_name = name or str(getattr(function, "__name__", None) or "")
        if not _TOOL_NAME_RE.match(tool_name):
            raise ToolImportError(
                f"tool {label!r}: name {tool_name!r} is not a valid tool name "
                "(1-64 letters, digits, '_' or '-')"
            )
        self.function = function
        self.name = tool_name
        self.description = _first_doc_line(function)
        model, positional = _arguments_model(function, label)
        self._arguments_model = model
        # Parameter names in signature order; positional-only ones cannot be passed by keyword.
        self._positional = positional
        self.required: tuple[str, ...] = tuple(
            info.alias or field for field, info in model.model_fields.items() if info.is_required()
        )
        self.parameters = _json_schema(model, label)
        self._is_async = _is_async_callable(function)

    def __repr__(self) -> str:
        return f"LocalTool(name={self.name!r}, required={list(self.required)!r})"

    def openai_schema(self) -> dict[str, Any]:
        """The tool as an OpenAI-style `tools` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def arguments_missing(self, arguments_json: str | None) -> bool:
        """True when the call carries no arguments although the tool requires some (BYOK bug)."""
        return bool(self.required) and not (arguments_json or "").strip()

    async def call(self, arguments_json: str | None) -> ToolOutcome:
        """Validate the arguments, then run the function; every failure becomes an outcome."""
        if self.arguments_missing(arguments_json):
            return ToolOutcome(
                "arguments_missing",
                error=f"Error: tool {self.name!r} was called without arguments; "
                f"it requires {', '.join(self.required)}",
            )
        text = (arguments_json or "").strip() or "{}"
        try:
            validated = self._arguments_model.model_validate_json(text)
        except ValidationError as exc:
            return ToolOutcome(
                "invalid_arguments",
                error=f"Error: invalid arguments for tool {self.name!r}: {_validation_message(exc)}",
            )
        args, kwargs = self._call_arguments(validated)
        try:
            if self._is_async:
                value = await self.function(*args, **kwargs)
            else:
                # A sync tool may block (I/O, CPU); a thread keeps the event loop, and with it
                # every other row of the shard, running.
                value = await asyncio.to_thread(self.function, *args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
        except Exception as exc:
            return ToolOutcome("error", error=_exception_message(exc))
        return ToolOutcome("ok", result=result_text(value))

    def _call_arguments(self, validated: BaseModel) -> tuple[list[Any], dict[str, Any]]:
        """Positional-only values in order; keyword values only for the arguments given."""
        given = validated.model_fields_set
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for index, (name, positional_only) in enumerate(self._positional):
            field = _field_name(index)
            if positional_only:
                args.append(getattr(validated, field))
            elif field in given:
                # Arguments not given are left out so the function's own defaults apply.
                kwargs[name] = getattr(validated, field)
        return args, kwargs


def import_object(path: str, *, what: str = "tool") -> Any:
    """The object named by `"package.module:attribute"`; ToolImportError names the path and why."""
    if not is_import_path(path):
        raise ToolImportError(f"{what} {path!r}: expected an import path like 'package.module:function'")
    module_name, _, attribute = path.partition(":")
    target: Any = _import_module(path, module_name, what)
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ToolImportError(f"{what} {path!r}: {_describe(target)} has no attribute {part!r}")
        target = getattr(target, part)
    return target


def load_tool(path: str) -> LocalTool:
    """Import the callable named by `"package.module:function"` and describe it as a tool."""
    target = import_object(path)
    attribute = path.partition(":")[2]
    if not callable(target):
        raise ToolImportError(
            f"tool {path!r}: {attribute!r} is not callable (it is a {type(target).__name__})"
        )
    name = getattr(target, "__name__", None)
    # A lambda or a callable object has no usable __name__: the path's last segment names it.
    if not isinstance(name, str) or not _TOOL_NAME_RE.match(name):
        name = attribute.rsplit(".", 1)[-1]
    return LocalTool(target, name=name)


def result_text(value: Any) -> str:
    """A tool's return value as tool-message text: str as is, JSON when it can be, else repr."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _import_module(path: str, module_name: str, what: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # The module itself is missing, or it exists but imports something that is missing.
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ToolImportError(f"{what} {path!r}: module {module_name!r} not found") from exc
        raise ToolImportError(f"{what} {path!r}: importing module {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ToolImportError(
            f"{what} {path!r}: importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def _describe(target: Any) -> str:
    if inspect.ismodule(target):
        return f"module {target.__name__!r}"
    return repr(getattr(target, "__qualname__", type(target).__name__))


def _first_doc_line(function: Callable[..., Any]) -> str:
    doc = inspect.getdoc(function) or ""
    return next((line.strip() for line in doc.splitlines() if line.strip()), "")


def _field_name(index: int) -> str:
    # Fields are named p0, p1, ... with the parameter name as alias: a parameter called
    # `json`, `schema` or `model_config` would otherwise clash with BaseModel's own attributes.
    return f"p{index}"


def _arguments_model(
    function: Callable[..., Any], label: str
) -> tuple[type[BaseModel], tuple[tuple[str, bool], ...]]:
    """A pydantic model of the function's parameters, and (name, positional-only) per parameter."""
    try:
        # eval_str resolves string annotations (`from __future__ import annotations` modules).
        signature = inspect.signature(function, eval_str=True)
    except (TypeError, ValueError) as exc:
        raise ToolImportError(f"tool {label!r}: cannot read its signature: {exc}") from exc
    except Exception as exc:
        raise ToolImportError(
            f"tool {label!r}: its type hints cannot be resolved: {type(exc).__name__}: {exc}"
        ) from exc
    fields: dict[str, Any] = {}
    positional: list[tuple[str, bool]] = []
    for index, parameter in enumerate(signature.parameters.values()):
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolImportError(
                f"tool {label!r}: parameter {parameter.name!r} is *args or **kwargs, "
                "which a tool call cannot fill; give every parameter a name"
            )
        annotation = Any if parameter.annotation is parameter.empty else parameter.annotation
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[_field_name(index)] = (annotation, Field(default, alias=parameter.name))
        positional.append((parameter.name, parameter.kind == parameter.POSITIONAL_ONLY))
    try:
        model = create_model(
            "Arguments",
            # Unknown arguments are refused: a misspelt one would otherwise be dropped silently.
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
            **fields,
        )
    except Exception as exc:
        raise ToolImportError(
            f"tool {label!r}: its parameters cannot be described: {type(exc).__name__}: {exc}"
        ) from exc
    return model, tuple(positional)


def _json_schema(model: type[BaseModel], label: str) -> dict[str, Any]:
    """The JSON schema of the arguments, by parameter name, without pydantic's model title."""
    try:
        schema = model.model_json_schema(by_alias=True)
    except Exception as exc:
        raise ToolImportError(
            f"tool {label!r}: its parameters have no JSON schema: {type(exc).__name__}: {exc}"
        ) from exc
    schema.pop("title", None)
    return schema


def _is_async_callable(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    # An object whose __call__ is `async def`.
    return inspect.iscoroutinefunction(getattr(function, "__call__", None))  # noqa: B004


def _validation_message(exc: ValidationError) -> str:
    """Pydantic's errors on one line, by parameter name, without documentation links."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def _exception_message(exc: Exception) -> str:
    message = str(exc)
    kind = type(exc).__name__
    return f"Error: {kind}: {message}" if message else f"Error: {kind}"
