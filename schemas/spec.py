"""The pipeline spec: what a user writes in `pipeline.yaml`, validated strictly.

Every model forbids unknown keys, so a typo is an error that names its location instead of a
setting silently ignored. Paths in the spec are resolved against the spec file's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from schemas.providers import split_model, unknown_provider_message
from schemas.scoring import ScoreList

STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# The most requests `concurrency: auto` keeps in flight per (step, model).
AUTO_CONCURRENCY_CEILING = 5000


class SpecModel(BaseModel):
    """Base of everything a user writes: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageOptions(SpecModel):
    """Where an object store is, for a URI path; never its credentials (environment or profiles)."""

    endpoint_url: str | None = Field(
        None, description="An S3-compatible endpoint (MinIO, R2, a test server); else AWS_ENDPOINT_URL_S3."
    )
    region: str | None = Field(None, description="The bucket's region.")
    anonymous: bool = Field(False, description="Read without credentials (public buckets).")


class InputSpec(SpecModel):
    """The Parquet dataset of prompts."""

    path: str = Field(description="Parquet file, directory or glob; a local path or any URI pyarrow reads.")
    storage_options: StorageOptions | None = Field(
        None,
        description="For an s3:// path: endpoint and region (credentials come from the environment, "
        "profiles or instance roles, never from the spec).",
    )
    id_column: str = Field("id", description="Column that identifies a row; values must be unique.")
    columns: list[str] | None = Field(
        None, description="Columns to read (projection); the id column is always read."
    )
    empty_prompts: Literal["error", "record"] = Field(
        "error",
        description="A null or empty prompt value: fail the run before any request ('error'), "
        "or write an error record for that row and go on ('record').",
    )


class OutputSpec(SpecModel):
    """Where results, errors and the manifest are written."""

    path: str = Field(
        description="Output directory (created if missing): a local path, a file:// URI, or an s3:// URI "
        "(any S3-compatible store)."
    )
    storage_options: StorageOptions | None = Field(
        None,
        description="For an s3:// path: endpoint and region (credentials come from the environment, "
        "profiles or instance roles, never from the spec).",
    )
    flush_records: int = Field(
        1000,
        ge=1,
        description="A shard task writes the records it has as a part every this many records (or "
        "`flush_seconds`), so a killed worker whose local journal is lost with it loses no more.",
    )
    flush_seconds: float = Field(
        60.0, gt=0, description="A shard task writes the records it has as a part at least this often."
    )
    file_rows: int = Field(
        100_000,
        ge=1,
        description="Target records per file: at the end of a run, small parts are merged into files "
        "of about this many records (or `file_bytes`, whichever comes first).",
    )
    file_bytes: int = Field(
        128 * 1024 * 1024, ge=1, description="Target size of a merged file, in bytes of Parquet."
    )


class KeySource(SpecModel):
    """Where a key comes from: a Prefect Secret block (by name) or an environment variable."""

    secret: str | None = Field(None, description="Name of a Prefect Secret block holding the key.")
    env: str | None = Field(None, description="Name of an environment variable holding the key.")

    @model_validator(mode="after")
    def _exactly_one(self) -> KeySource:
        if (self.secret is None) == (self.env is None):
            raise ValueError("give exactly one of 'secret' (a Prefect Secret block) or 'env'")
        return self


class CredentialsSpec(KeySource):
    """A step's BYOK credentials: the provider key's source, optional provider and provider model."""

    provider: str | None = Field(None, description="X-Provider; inferred from the model when omitted.")
    provider_model: str | None = Field(
        None, description="X-Provider-Model; the request's model is used when omitted."
    )

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        return None if value is None else _checked_provider(value)


class GatewaySpec(SpecModel):
    """The Dedalus-compatible gateway the requests go through."""

    base_url: str = Field("https://api.dedaluslabs.ai", description="Gateway base URL.")
    api_key: KeySource = Field(
        default_factory=lambda: KeySource(env="DEDALUS_API_KEY"),
        description="The gateway key (Authorization: Bearer).",
    )
    check_models: bool = Field(
        True,
        description="Check every step's model against the gateway's GET /v1/models before the run; "
        "false for a gateway that does not list every model a BYOK key can reach.",
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _checked_base_url(value)


class MessageTemplate(SpecModel):
    """One chat message whose content is a Jinja2 template over the row's columns."""

    role: Literal["developer", "system", "user", "assistant"]
    content: str


class RequestParams(SpecModel):
    """Chat completion parameters sent with every request of a step."""

    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(
        None, ge=1, le=128, description="Answers per request: the first is `output`, all are in `choices`."
    )
    response_format: dict[str, Any] | None = None


class RetryPolicy(SpecModel):
    """How a step retries transient failures (connection errors, timeouts, 408, 409, 429, 5xx)."""

    max_attempts: int = Field(4, ge=1, le=100, description="Attempts per request, the first included.")
    initial_backoff: float = Field(0.5, ge=0, description="Seconds before the first retry.")
    max_backoff: float = Field(30.0, gt=0, description="Cap of one backoff, in seconds.")
    deadline: float = Field(300.0, gt=0, description="Seconds a row may spend on all its attempts.")


class RateLimits(SpecModel):
    """Per provider key limits the engine paces itself to; shared by every step using the key."""

    rpm: int | None = Field(None, ge=1, description="Requests per minute allowed on this key.")
    tpm: int | None = Field(None, ge=1, description="Tokens (prompt + completion) per minute on this key.")
    max_concurrency: int | None = Field(
        None, ge=1, description="Requests in flight at once on this key, across all steps and shards."
    )
    adaptive: bool = Field(
        True,
        description="Back off on 429s (halve concurrency, pause until Retry-After), recover on "
        "success, and follow the provider's x-ratelimit-* headers.",
    )
    max_pause: float = Field(
        60.0,
        gt=0,
        description="Longest pause of the key (a provider's Retry-After or rate-limit reset) that rows "
        "wait out; during a longer one, the rows waiting for the key end as rate_limited error records "
        "that say when to retry (`byokflow retry-errors`).",
    )


def _credentials_shape(value: Any) -> str:
    # One key source has `secret` or `env`; anything else is a mapping of provider -> key source.
    if isinstance(value, CredentialsSpec) or (isinstance(value, dict) and {"secret", "env"} & value.keys()):
        return "credentials"
    return "per_provider"


StepCredentials = Annotated[
    Annotated[CredentialsSpec, Tag("credentials")]
    | Annotated[dict[str, CredentialsSpec], Tag("per_provider")],
    Discriminator(_credentials_shape),
]
# Union tags pydantic puts in error locations; the spec's error messages leave them out.
UNION_TAGS = frozenset({"credentials", "per_provider"})


class RunnerSpec(SpecModel):
    """A runner step: the model may call tools over several model calls before it answers."""

    max_steps: int = Field(10, ge=1, le=100, description="Most model calls per row.")
    tools: list[str] = Field(
        default_factory=list, description="Local tools by import path, e.g. 'mypkg.tools:calculator'."
    )
    mcp_servers: list[str | dict[str, Any]] = Field(
        default_factory=list, description="MCP servers the gateway runs (slugs, URLs or specs)."
    )


class StepSpec(SpecModel):
    """One pipeline step: a chat completion (or a runner loop) per row and model."""

    name: str = Field(description="Step name: letters, digits and underscores.")
    model: str | None = Field(None, description="'provider/model', e.g. 'openai/gpt-4o-mini'.")
    models: list[str] | None = Field(
        None, description="Several 'provider/model' names: every row goes to each of them."
    )
    credentials: StepCredentials | None = Field(
        None,
        description="BYOK provider key source, or one per provider ({openai: {...}, anthropic: {...}}); "
        "without it the gateway's own keys are used.",
    )
    instructions: str | None = Field(None, description="System message template.")
    input: str | None = Field(None, description="User message template over the row's columns.")
    messages: list[MessageTemplate] | None = Field(None, description="Message templates.")
    messages_column: str | None = Field(
        None, description="Column already holding chat messages (a list of {role, content})."
    )
    params: RequestParams = Field(default_factory=RequestParams)
    output_model: str | None = Field(
        None, description="Structured output: a pydantic model by import path ('mypkg.models:Answer')."
    )
    stream: bool = Field(False, description="Stream responses (SSE); records also get time to first token.")
    runner: RunnerSpec | None = Field(None, description="Run the tool-calling loop for each row.")
    concurrency: Annotated[int, Field(ge=1, le=10_000)] | Literal["auto"] = Field(
        "auto",
        description="Requests in flight per model of this step: a number pins it; 'auto' (the default) "
        "finds it, growing while answers keep their latency and backing off on 429s, timeouts and "
        "latency inflation, up to 5,000 (and the key's max_concurrency).",
    )
    timeout: float = Field(60.0, gt=0, description="Seconds one request may take.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    limits: RateLimits = Field(
        default_factory=RateLimits,
        description="Rate limits of the step's provider key; when two steps share a key the tighter "
        "value of each wins.",
    )

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, value: str) -> str:
        if not STEP_NAME.match(value):
            raise ValueError(f"step name must be letters, digits and underscores, got {value!r}")
        return value

    @field_validator("model")
    @classmethod
    def _model_names_provider(cls, value: str | None) -> str | None:
        return None if value is None else _checked_model(value)

    @field_validator("models")
    @classmethod
    def _models_name_providers(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("'models' needs at least one model")
        if len(set(value)) != len(value):
            raise ValueError(f"'models' lists a model twice: {value}")
        return [_checked_model(model) for model in value]

    @field_validator("credentials")
    @classmethod
    def _credentials_per_known_provider(
        cls, value: CredentialsSpec | dict[str, CredentialsSpec] | None
    ) -> CredentialsSpec | dict[str, CredentialsSpec] | None:
        if isinstance(value, dict):
            for provider in value:
                _checked_provider(provider)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StepSpec:
        if (self.model is None) == (self.models is None):
            raise ValueError("give exactly one of 'model' or 'models'")
        sources = [self.input is not None, self.messages is not None, self.messages_column is not None]
        if sum(sources) != 1:
            raise ValueError("give exactly one prompt source: 'input', 'messages' or 'messages_column'")
        if self.instructions is not None and self.input is None:
            raise ValueError("'instructions' goes with 'input'; put a system message in 'messages'")
        if self.output_model and self.params.response_format:
            raise ValueError("give 'output_model' or 'params.response_format', not both")
        return self

    @property
    def model_names(self) -> list[str]:
        """Every model this step sends each row to."""
        return list(self.models) if self.models is not None else [self.model or ""]

    def credentials_for(self, model: str) -> CredentialsSpec | None:
        """The credentials requests to `model` use (by its provider when given per provider)."""
        if isinstance(self.credentials, dict):
            return self.credentials.get(split_model(model)[0] or "")
        return self.credentials

    def max_in_flight(self) -> int:
        """The most requests of one model of this step in flight: the number, or auto's ceiling."""
        ceiling = AUTO_CONCURRENCY_CEILING if self.concurrency == "auto" else self.concurrency
        return min(ceiling, self.limits.max_concurrency or ceiling)

    def provider_for(self, model: str) -> str:
        """The provider requests to `model` go to."""
        credentials = self.credentials_for(model)
        if credentials is not None and credentials.provider:
            return credentials.provider
        return split_model(model)[0] or ""


class DaskSpec(SpecModel):
    """Run the shard tasks on a Dask cluster: an existing one by address, or a local one."""

    address: str | None = Field(None, description="Scheduler of an existing cluster, e.g. 'tcp://host:8786'.")
    workers: int = Field(2, ge=1, le=512, description="Worker processes of a local cluster (no address).")


class PipelineSpec(SpecModel):
    """A whole pipeline: input dataset, output directory, gateway and steps."""

    name: str = Field(description="Pipeline name, recorded in the manifest.")
    input: InputSpec
    output: OutputSpec
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    steps: list[StepSpec] = Field(min_length=1)
    shard_size: int = Field(1000, ge=1, le=1_000_000, description="Rows per Prefect task run.")
    prices: str | None = Field(
        None, description="YAML file of model prices (USD per million input/output tokens) over the defaults."
    )
    max_cost_usd: float | None = Field(
        None, gt=0, description="Hard budget of one run: no request is sent that could exceed it."
    )
    dask: DaskSpec | None = Field(None, description="Run shards on Dask instead of in this process.")
    # After `steps`: the scorers' checks read the validated steps.
    scores: ScoreList = Field(
        default_factory=list,
        description="Scorers applied to steps' outputs once the steps are done (see schemas/scoring.py).",
    )

    @field_validator("steps")
    @classmethod
    def _unique_step_names(cls, steps: list[StepSpec]) -> list[StepSpec]:
        seen: set[str] = set()
        for step in steps:
            if step.name in seen:
                raise ValueError(f"duplicate step name {step.name!r}")
            seen.add(step.name)
        return steps

    def step(self, name: str) -> StepSpec:
        """The step called `name`."""
        return next(step for step in self.steps if step.name == name)

    def resolved_against(self, base: Path) -> PipelineSpec:
        """A copy whose local input, output and price paths are relative to `base` (the spec's folder)."""
        return self.model_copy(
            update={
                "input": self.input.model_copy(update={"path": _resolve(self.input.path, base)}),
                "output": self.output.model_copy(update={"path": _resolve(self.output.path, base)}),
                "prices": None if self.prices is None else _resolve(self.prices, base),
            }
        )


def _checked_base_url(value: str) -> str:
    """An http(s) URL with a host (and a valid port): what the gateway client can send to."""
    problem = None
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError as exc:
        problem = str(exc)
    else:
        if url.scheme not in ("http", "https"):
            problem = "the scheme must be http:// or https://"
        elif not url.hostname:
            problem = "it has no host"
        elif any(c.isspace() for c in value) or url.query or url.fragment:
            problem = "it holds spaces, a query or a fragment"
    if problem is not None:
        raise ValueError(f"not a gateway URL ({problem}): {value!r}; e.g. 'https://api.dedaluslabs.ai'")
    return value


def _checked_provider(provider: str) -> str:
    problem = unknown_provider_message(provider)
    if problem is not None:
        raise ValueError(problem)
    return provider


def _checked_model(value: str) -> str:
    provider, name = split_model(value)
    if provider is None or not name:
        raise ValueError(f"model must be 'provider/model' (e.g. 'openai/gpt-4o-mini'), got {value!r}")
    _checked_provider(provider)
    return value


def _resolve(path: str, base: Path) -> str:
    if "://" in path or Path(path).is_absolute():
        return path
    return str((base / path).resolve())
