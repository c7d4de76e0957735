"""The checks `byokflow validate` and the start of every run share: nothing is sent before they pass."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import Any

import pyarrow.dataset as ds

from flows.gateway_check import check_gateway
from flows.output_checks import check_output
from schemas.errors import SpecError
from schemas.prices import PriceTable, load_prices
from schemas.records import STEP_VIEW_FIELDS
from schemas.spec import PipelineSpec
from tasks.errors import TemplateError
from tasks.inputs.checks import check_file_schemas, check_id_type, check_text
from tasks.inputs.dataset import check_columns, check_ids, check_prompt_values, open_dataset
from tasks.inputs.values import without_nanoseconds
from tasks.rows.local_tools import load_tool
from tasks.rows.render import RESERVED_NAMES, StepRenderer
from tasks.rows.structured import OutputValidator
from tasks.run.credentials import load_key
from tasks.store.location import OutputLocationError


class CheckedPipeline:
    """A spec that passed preflight, with what the run needs from the checks.

    A plain object, not a dataclass: it can be handed to the flow as a parameter, which Prefect
    then neither walks into nor tries to store.
    """

    __slots__ = ("columns", "dataset", "depends_on", "order", "prices", "rows", "samples", "spec", "warnings")

    def __init__(
        self,
        spec: PipelineSpec,
        dataset: ds.Dataset,
        rows: int,
        columns: list[str],
        order: list[str],
        depends_on: dict[str, set[str]],
        prices: PriceTable,
        samples: list[dict[str, Any]] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.spec, self.dataset, self.rows, self.columns = spec, dataset, rows, columns
        self.order, self.depends_on, self.prices = order, depends_on, prices
        self.samples = samples or []
        # What preflight could not check (an unreachable gateway): the caller shows them.
        self.warnings = warnings or []

    def has_dependents(self, step: str) -> bool:
        """Whether a later step reads this step's records."""
        return any(step in deps for deps in self.depends_on.values())


async def preflight(spec: PipelineSpec, *, check_keys: bool = True, sample_rows: int = 3) -> CheckedPipeline:
    """Check the steps, the dataset, the templates, the keys and the gateway; raise on the first problem."""
    # Before the dataset: nothing is written if this fails.
    location = check_output(spec.output.path, spec.output.storage_options)
    if spec.scores and not location.local:
        raise OutputLocationError(
            f"output {spec.output.path!r}: scores (and the evaluation report) are written to a local "
            "output directory only for now; run the evaluation into a local directory"
        )
    renderers = {step.name: StepRenderer(step) for step in spec.steps}
    _check_imports(spec)
    prices = load_prices(spec.prices)
    _check_prices(spec, prices)
    dataset = open_dataset(spec.input)
    _check_reserved_names(spec, dataset.schema.names, renderers)
    depends_on = {name: r.referenced_steps() for name, r in renderers.items()}
    order = _step_order(spec, depends_on)
    needed = set().union(*(r.referenced_columns() for r in renderers.values()))
    check_columns(dataset, spec.input, needed | set(spec.input.columns or ()))
    columns = sorted(needed | {spec.input.id_column} | set(spec.input.columns or ()))
    _check_values(dataset, spec, columns)
    rows = check_ids(dataset, spec.input)
    if spec.input.empty_prompts == "error":
        check_prompt_values(dataset, spec.input, needed)
    samples = _render_samples(dataset, spec, columns, order, renderers, sample_rows)
    warnings = []
    if check_keys:
        await _check_keys(spec)
        warnings = await check_gateway(spec)
    return CheckedPipeline(spec, dataset, rows, columns, order, depends_on, prices, samples, warnings)


def _check_values(dataset: ds.Dataset, spec: PipelineSpec, columns: list[str]) -> None:
    """Types and bytes the id and prompt checks (and the run) rely on, before they read a value."""
    check_id_type(dataset, spec.input)
    check_file_schemas(dataset, spec.input, columns)
    check_text(dataset, spec.input, columns)


def _check_reserved_names(spec: PipelineSpec, columns: list[str], renderers: dict[str, StepRenderer]) -> None:
    """A column named like a name templates reserve (`steps`, `row`) is never silently shadowed."""
    valid = {"steps": {step.name for step in spec.steps}, "row": set(columns)}
    for name, meaning in RESERVED_NAMES.items():
        if name not in columns:
            continue
        for step_name, renderer in renderers.items():
            if any(key is None or key not in valid[name] for key in renderer.namespace_reads(name)):
                raise TemplateError(
                    f"input {spec.input.path!r}: column {name!r} collides with the template name "
                    f"`{name}` (step {step_name!r}), which means {meaning}; read the column as "
                    f"`{{{{ row.{name} }}}}`"
                )


def _step_order(spec: PipelineSpec, depends_on: dict[str, set[str]]) -> list[str]:
    names = [step.name for step in spec.steps]
    for index, step in enumerate(spec.steps):
        unknown = sorted(depends_on[step.name] - set(names))
        if unknown:
            raise SpecError(
                f"steps[{index}] ({step.name!r}): template references unknown step(s) {unknown}; "
                f"steps are {names}"
            )
        if step.name in depends_on[step.name]:
            raise SpecError(f"steps[{index}] ({step.name!r}): a step cannot use its own output")
        several = sorted(d for d in depends_on[step.name] if d in names and len(spec.step(d).model_names) > 1)
        if several:
            raise SpecError(
                f"steps[{index}] ({step.name!r}): step(s) {several} send each row to several models, "
                "so their output is not one value a template can use"
            )
    try:
        return list(TopologicalSorter(depends_on).static_order())
    except CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise SpecError(f"steps form a cycle: {cycle}") from None


def _render_samples(
    dataset: ds.Dataset,
    spec: PipelineSpec,
    columns: list[str],
    order: list[str],
    renderers: dict[str, StepRenderer],
    count: int,
) -> list[dict[str, Any]]:
    rows = without_nanoseconds(dataset.head(count, columns=columns)).to_pylist() if count else []
    samples = []
    for row in rows:
        steps = {name: placeholder_view() for name in order}
        rendered = {}
        for name in order:
            try:
                rendered[name] = renderers[name].messages(row, steps)
            except TemplateError as exc:
                row_id = row.get(spec.input.id_column)
                raise TemplateError(f"{exc} (row {spec.input.id_column}={row_id!r})") from None
        samples.append(rendered)
    return samples


def placeholder_view() -> dict[str, Any]:
    """What stands in for an earlier step's record when its output is not known yet."""
    placeholder: dict[str, Any] = {f: f"<{f}>" for f in STEP_VIEW_FIELDS}
    placeholder["parsed"] = _AnyValue("parsed")
    return placeholder


class _AnyValue:
    """Stands in for a structured output while rendering samples: any field of it exists."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __getattr__(self, name: str) -> _AnyValue:
        return _AnyValue(f"{self._path}.{name}")

    def __getitem__(self, key: object) -> _AnyValue:
        return _AnyValue(f"{self._path}[{key!r}]")

    def __str__(self) -> str:
        return f"<{self._path}>"


async def _check_keys(spec: PipelineSpec) -> None:
    await load_key(spec.gateway.api_key)
    for step in spec.steps:
        for model in step.model_names:
            credentials = step.credentials_for(model)
            if credentials is not None:
                await load_key(credentials)


def _check_prices(spec: PipelineSpec, prices: PriceTable) -> None:
    """A budget needs a price for every model, else the worst case of a request is unknown."""
    if spec.max_cost_usd is None:
        return
    unpriced = sorted({m for step in spec.steps for m in step.model_names if prices.price(m) is None})
    if unpriced:
        raise SpecError(
            f"max_cost_usd is set but these models have no price: {unpriced}; add them to a price file "
            "(`prices:` in the spec, `model: {input: USD per M tokens, output: USD per M tokens}`)"
        )


def _check_imports(spec: PipelineSpec) -> None:
    """Import every local tool and output model now, so a bad path fails before any request."""
    for step in spec.steps:
        for path in step.runner.tools if step.runner else []:
            load_tool(path)
        OutputValidator(step)
