"""The `byokflow` command: a thin layer over the pipeline flow, the sandbox and Prefect secrets."""

from __future__ import annotations

import _thread
import asyncio
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(
    help="Batch BYOK LLM pipelines on Prefect: Parquet in, chat completions out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
secret_app = typer.Typer(help="Store provider keys in Prefect Secret blocks.", no_args_is_help=True)
app.add_typer(secret_app, name="secret")
server_app = typer.Typer(help="The local Prefect server byokflow shares between runs.", no_args_is_help=True)
app.add_typer(server_app, name="server")

console = Console()
errors = Console(stderr=True)

SpecPath = Annotated[Path, typer.Argument(help="Pipeline spec (YAML).", show_default=False)]


def _quiet_prefect() -> None:
    # Prefect logs every task run to the console; the CLI shows its own progress instead.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The temporary server's first start creates its database: on a busy machine that takes
    # longer than Prefect's default 20 s, and the run would fail before sending anything.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.local_server import use_shared_server
    from flows.prefect_server import shield_temporary_server

    # One local Prefect server for every command (started on first use), not ~6 s of a new one each.
    use_shared_server(announce=lambda message: errors.print(message, highlight=False))
    if not os.environ.get("PREFECT_API_URL"):
        # Prefect will start a temporary server: Ctrl-C stops byokflow first, the server ends with
        # it. With a server to talk to there is none, and importing Prefect's server (~2 s) is saved.
        shield_temporary_server()


def _fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def _user_errors() -> tuple[type[Exception], ...]:
    # Every error byokflow raises on purpose has one root; anything else is a bug and shows as one.
    from schemas.errors import ByokflowError

    return (ByokflowError,)


@app.command()
def run(
    spec: SpecPath,
    out: Annotated[
        str | None, typer.Option(help="Output directory or s3:// URI (overrides the spec).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Run only the first N rows.")] = None,
    use_sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run against a local sandbox gateway: no keys, no spend.")
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(help="Run shards on Dask: a scheduler address, or 'local:N' for N local workers."),
    ] = None,
    continues: Annotated[
        str | None,
        typer.Option(
            help="The output directory belongs to this other pipeline, which this one continues "
            "(without it, another pipeline's output directory is refused).",
        ),
    ] = None,
) -> None:
    """Run a pipeline: exit 0 when it finished (provider errors are records), 2 on invalid input."""
    _quiet_prefect()
    from flows.pipeline import load_pipeline_spec

    try:
        pipeline_spec = _with_out(_with_dask(load_pipeline_spec(spec), dask), out)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    output_dir = pipeline_spec.output.path
    resume_hint = (
        f"byokflow run {spec}" + (f" --out {out}" if out else "") + (" --sandbox" if use_sandbox else "")
    )
    options: dict[str, Any] = {"out": output_dir, "limit": limit, "continues": continues}
    if not use_sandbox:
        _run_with_display(pipeline_spec, output_dir, resume_hint, **options)
        return
    from flows.sandbox_mode import against_sandbox  # the sandbox server's imports only when asked

    with against_sandbox(pipeline_spec) as sandboxed:
        console.print(f"sandbox gateway on {sandboxed.gateway.base_url}")
        _run_with_display(sandboxed, output_dir, resume_hint, **options)


def _with_out(spec: Any, out: str | None) -> Any:
    """The spec with `--out` applied, so preflight checks the directory the run writes."""
    from tasks.store.location import output_path

    if out is None:
        return spec
    return spec.model_copy(update={"output": spec.output.model_copy(update={"path": output_path(out)})})


def _with_dask(spec: Any, dask: str | None) -> Any:
    """The spec with `--dask` applied: 'local:N' starts N local workers, anything else is an address."""
    from schemas.errors import SpecError
    from schemas.spec import DaskSpec

    if dask is None:
        return spec
    if dask.startswith("local:"):
        count = dask.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise SpecError(f"--dask {dask!r}: expected 'local:N' with N >= 1, or a scheduler address")
        return spec.model_copy(update={"dask": DaskSpec(workers=int(count))})
    return spec.model_copy(update={"dask": DaskSpec(address=dask)})


@app.command("retry-errors")
def retry_errors(
    output_dir: Annotated[str, typer.Argument(help="Output directory (or s3:// URI) of an earlier run.")],
    error_type: Annotated[
        list[str] | None, typer.Option("--type", help="Retry only this error type (repeatable).")
    ] = None,
) -> None:
    """Request the errored records of an earlier run again; retried rows move from errors to results."""
    _quiet_prefect()
    from tasks.store.manifest import spec_from_manifest

    try:
        pipeline_spec = spec_from_manifest(output_dir)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    hint = f"byokflow retry-errors {output_dir}"
    _run_with_display(
        pipeline_spec, pipeline_spec.output.path, hint, retry_errors=True, error_types=error_type or []
    )


def _run_with_display(spec: Any, output_dir: str, resume_hint: str, **options: Any) -> None:
    """Preflight, run with live progress, print the summary; Ctrl-C keeps what completed."""
    from flows.display import ProgressDisplay, print_summary
    from flows.pipeline import pipeline_for
    from flows.prefect_server import sigterm_handler
    from flows.preflight import preflight
    from tasks.run.control import RunControl
    from tasks.store.journal import recover_under_lock
    from tasks.store.location import store_location

    control = RunControl()
    stopper = _GracefulStop(control)
    previous = signal.signal(signal.SIGINT, stopper.on_signal)
    try:
        checked = asyncio.run(preflight(spec, sample_rows=0))
        _print_warnings(checked.warnings)
        with ProgressDisplay(console, control.progress), sigterm_handler(stopper.on_signal):
            flow = pipeline_for(spec)
            summary = asyncio.run(flow(spec, control=control, prechecked=checked, **options))
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        # Under the lock (never a live run's journals), at the spec's endpoint for an S3 output.
        saved = recover_under_lock(store_location(output_dir, spec.output.storage_options))
        kept = "are saved by the run now holding the directory" if saved is None else f"were saved ({saved})"
        raise _fail(
            f"interrupted: the records completed since the last part {kept}; "
            f"run `{resume_hint}` to resume (only missing records are requested)",
            code=stopper.exit_code,
        ) from None
    finally:
        signal.signal(signal.SIGINT, previous)
        stopper.cancel()
    print_summary(console, summary)
    if control.stop.is_set():
        raise _fail(
            f"stopped before the end; run `{resume_hint}` to resume (only missing records are requested)",
            stopper.exit_code,
        )


GRACE_SECONDS = 15.0


class _GracefulStop:
    """First Ctrl-C or SIGTERM: send nothing new, let in-flight requests finish; second or too long: abort."""

    def __init__(self, control: Any) -> None:
        self._control = control
        self._timer: threading.Timer | None = None
        self.exit_code = 130  # 128 + the first stop signal: 130 for SIGINT, 143 for SIGTERM

    def on_signal(self, signum: int, frame: object) -> None:
        """The SIGINT and SIGTERM handler of one run."""
        if self._control.stop.is_set():
            raise KeyboardInterrupt
        self._control.stop.set()
        self.exit_code = 128 + signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        errors.print(
            f"stopping: no new requests ({name}); waiting up to {GRACE_SECONDS:.0f} s for the ones in "
            "flight (Ctrl-C again to abort now)"
        )
        # Aborts a graceful stop that takes too long, as a second Ctrl-C would.
        self._timer = threading.Timer(GRACE_SECONDS, _thread.interrupt_main)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        """The run ended: no abort is coming."""
        if self._timer is not None:
            self._timer.cancel()


@app.command()
def validate(
    spec: SpecPath,
    estimate: Annotated[bool, typer.Option("--estimate", help="Also estimate tokens and cost.")] = False,
) -> None:
    """Check the spec, the input columns, the templates (on the first rows) and the keys; send nothing."""
    _quiet_prefect()
    from flows.pipeline import load_pipeline_spec
    from flows.preflight import preflight

    try:
        checked = asyncio.run(preflight(load_pipeline_spec(spec)))
        _print_warnings(checked.warnings)
        console.print(f"[green]ok[/]: {spec} — {checked.rows} rows, steps {' -> '.join(checked.order)}")
        for name, messages in (checked.samples[0] if checked.samples else {}).items():
            console.print(f"[bold]{name}[/] (first row):")
            for message in messages:
                console.print(f"  {message['role']}: {message['content']}", highlight=False)
        if estimate:
            _print_estimate(checked)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        errors.print(f"[bold yellow]warning:[/] {warning}", highlight=False)


def _print_estimate(checked: Any) -> None:
    from rich.table import Table

    from flows.estimate import estimate_run

    table = Table(title="Estimate before any spend (answers at their max_tokens: an upper bound)")
    for column in ("step", "model", "requests", "prompt tokens", "max answer tokens", "max cost USD"):
        table.add_column(column)
    total: float | None = 0.0
    for e in estimate_run(checked):
        cost = "unknown" if e.cost_usd is None else f"{e.cost_usd:.4f}"
        table.add_row(
            e.step, e.model, str(e.requests), str(e.prompt_tokens), str(e.max_completion_tokens), cost
        )
        total = None if total is None or e.cost_usd is None else total + e.cost_usd
    console.print(table)
    console.print(
        f"total: at most {'unknown (some prices are unknown)' if total is None else f'{total:.4f} USD'}"
    )


@app.command()
def serve(
    spec: SpecPath,
    cron: Annotated[str, typer.Option(help='Schedule, e.g. "0 2 * * *" (nightly at 02:00).')],
    name: Annotated[str | None, typer.Option(help="Deployment name (default: the spec's name).")] = None,
    out: Annotated[
        str | None, typer.Option(help="Output directory or s3:// URI (overrides the spec).")
    ] = None,
) -> None:
    """Serve the pipeline on a schedule with Prefect's `serve` (needs a Prefect server, no work pool)."""
    from flows.pipeline import load_pipeline_spec, pipeline

    try:
        pipeline_spec = load_pipeline_spec(spec)  # a bad spec fails now, not at 2 a.m.
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    from tasks.store.location import output_path

    parameters = {"spec": str(spec.resolve()), "out": output_path(out) if out else None}
    pipeline.serve(name=name or pipeline_spec.name, cron=cron, parameters=parameters)


@app.command()
def export(
    output_dir: Annotated[str, typer.Argument(help="Output directory (or s3:// URI) of a run.")],
    to: Annotated[Path | None, typer.Option(help="File to write (default: OUTPUT_DIR/wide.parquet).")] = None,
) -> None:
    """Write the wide view: one row per input row, each step's output (and error type) as columns."""
    from tasks.store.location import store_location
    from tasks.store.manifest import MANIFEST
    from tasks.store.wide_view import wide_view
    from tasks.store.write_part import write_part

    try:
        location = store_location(output_dir)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    if location.read_text(MANIFEST) is None:
        raise _fail(f"{output_dir}: not an output directory of byokflow (no {MANIFEST})")
    table = wide_view(location)
    if to is None:
        written = location.write_parquet(table, "", "wide.parquet")
        shown = f"{location.uri}/wide.parquet" if location.uri else written
    else:
        shown = str(write_part(table, to.parent, to.name))
    console.print(f"wrote {shown}: {table.num_rows} rows, columns {table.column_names}")


@app.command()
def report(
    output_dir: Annotated[Path, typer.Argument(help="Output directory of an evaluation run.")],
    to: Annotated[Path | None, typer.Option(help="File to write (default: OUTPUT_DIR/report.html).")] = None,
) -> None:
    """Write a self-contained HTML report: summary, score/latency/cost charts, worst rows."""
    from tasks.evaluation.report import write_report

    try:
        path = write_report(output_dir, to)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(f"wrote {path}")


@app.command()
def schema() -> None:
    """Print the spec's JSON Schema (for editor completion and checks)."""
    from schemas.spec_file import spec_json_schema

    print(spec_json_schema())


@app.command()
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 4010,
    config: Annotated[Path | None, typer.Option(help="Sandbox config (YAML).")] = None,
) -> None:
    """Serve the sandbox gateway: the gateway's wire protocol with deterministic models, no spend."""
    from sandbox import SandboxConfig, serve

    try:
        sandbox_config = SandboxConfig.from_file(config) if config else SandboxConfig()
    except _user_errors() as exc:  # the sandbox's config errors name the file and key
        raise _fail(str(exc)) from None
    console.print(f"sandbox gateway on http://{host}:{port} (gateway keys: {sandbox_config.gateway_keys})")
    serve(sandbox_config, host=host, port=port)


@server_app.command("status")
def server_status() -> None:
    """Say whether the shared local Prefect server runs, and where."""
    from flows.local_server import find_server, prefect_home

    found = find_server()
    if found is None:
        console.print(f"no shared Prefect server runs for PREFECT_HOME {prefect_home()}")
        raise typer.Exit(1)
    console.print(f"shared Prefect server at {found.url} (pid {found.pid}); UI at {found.url}")


@server_app.command("start")
def server_start() -> None:
    """Start the shared local Prefect server (runs start it on first use anyway)."""
    from flows.local_server import find_server, start_server

    found = find_server() or start_server()
    console.print(f"shared Prefect server at {found.url} (pid {found.pid})")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the shared local Prefect server."""
    from flows.local_server import stop_server

    stopped = stop_server()
    console.print("no shared Prefect server was running" if stopped is None else f"stopped {stopped.url}")


@secret_app.command("set")
def secret_set(name: Annotated[str, typer.Argument(help="Secret block name.")]) -> None:
    """Store a key, read from stdin or a hidden prompt (never from the command line)."""
    _quiet_prefect()
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    if sys.stdin.isatty():
        value = typer.prompt(f"Key for {name}", hide_input=True)
    else:
        value = sys.stdin.readline().strip()
    if not value:
        raise _fail("no key given (empty input)")
    Secret(value=SecretStr(value)).save(name, overwrite=True)
    console.print(f"stored Secret block {name!r}")


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo writes its files.")] = Path(
        "byokflow-demo"
    ),
) -> None:
    """Start the sandbox, store demo keys, write a dataset and run a two-provider pipeline."""
    _quiet_prefect()
    from flows.demo import run_demo
    from flows.display import ProgressDisplay, print_summary
    from tasks.run.control import RunControl

    control = RunControl()
    with ProgressDisplay(console, control.progress):
        summary = run_demo(directory, console, control)
    print_summary(console, summary)
    _show_preview(summary.output_dir)


def _show_preview(output_dir: str) -> None:
    from tasks.store.record_store import RecordKind, read_records

    previews: tuple[tuple[RecordKind, list[str]], ...] = (
        ("results", ["row_id", "step", "output"]),
        ("errors", ["row_id", "step", "error_type", "message"]),
    )
    for kind, columns in previews:
        table = read_records(output_dir, kind, columns)
        console.print(f"[bold]{kind}[/] ({table.num_rows} records), first rows:")
        for row in table.slice(0, 3).to_pylist():
            console.print("  " + " | ".join(_short(v) for v in row.values()), highlight=False)


def _short(value: Any, width: int = 70) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> None:
    """Entry point of the `byokflow` script."""
    app()
