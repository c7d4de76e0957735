"""Who is calling and where a chat request goes: gateway auth, body parsing, BYOK routing.

Checks run in the order a real gateway and provider would: gateway key (401) → body (400 invalid
JSON, 422 invalid request) → provider (400 listing the supported ones) → provider key (401 shaped
like the provider's own, echoing a masked key) → model (404).

BYOK: the provider is `X-Provider`, else the body model's prefix; the model at the provider is
`X-Provider-Model`, else the body model without its provider prefix. The response's `model` is
`"{provider}/{model_at_provider}"`. A request without `X-Provider-Key` uses the sandbox's house
keys (unless `house_keys` is off); an `X-Provider-Key` header that is present but empty is an
invalid key, and so is one the provider's `keys` do not list or, without `keys`, one that does not
look like the provider's (`sandbox.keys`). A `model` given as a list (or as `{model: ...,
settings: ...}`) uses its first entry; its settings are defaults for the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from sandbox.asgi import HttpError
from sandbox.config import SandboxConfig
from sandbox.keys import looks_like_key, mask_key, provider_auth_error
from sandbox.limits import key_hash
from schemas.providers import SUPPORTED_PROVIDERS
from schemas.wire import ChatCompletionRequest

SUPPORTED_LIST = ", ".join(SUPPORTED_PROVIDERS)


def authenticate(headers: dict[str, str], gateway_keys: frozenset[str]) -> str:
    """The request's gateway key (`Authorization: Bearer` or `x-api-key`), else raise a 401."""
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    x_api_key = headers.get("x-api-key", "")
    for candidate in (bearer, x_api_key):
        if candidate in gateway_keys:
            return candidate
    presented = bearer or x_api_key
    if presented:
        message = f"Incorrect gateway API key provided: {mask_key(presented)}."
    else:
        message = "Missing gateway API key: send `Authorization: Bearer <key>` or `x-api-key`."
    raise HttpError(401, message, type="authentication_error", code="invalid_api_key")


def parse_request(body: bytes) -> ChatCompletionRequest:
    """Validate a request body: 400 for invalid JSON, 422 for a body that is not a valid request."""
    try:
        # pydantic parses and validates the bytes in one go.
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            message = f"We could not parse the JSON body of your request: {first['msg']}"
            raise HttpError(400, message, code="invalid_json") from exc
        raise _invalid_body(exc) from exc


def _invalid_body(exc: ValidationError) -> HttpError:
    """A 422 naming every invalid field."""
    errors = exc.errors()
    problems = []
    for err in errors:
        where = ".".join(str(part) for part in err["loc"]) or "body"
        problems.append(f"{where}: {err['msg']}")
    param = ".".join(str(p) for p in errors[0]["loc"]) or None
    message = "Invalid chat completion request: " + "; ".join(problems)
    return HttpError(422, message, code="invalid_request_body", param=param)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: provider, model at the provider, and whose key pays."""

    provider: str
    model_at: str
    byok: bool
    key_id: str

    @property
    def model(self) -> str:
        """The response's `model` field."""
        return f"{self.provider}/{self.model_at}"


class Router:
    """Resolves provider, provider key and model for one SandboxConfig."""

    def __init__(self, config: SandboxConfig) -> None:
        self._house_keys = config.house_keys
        self._format_check = config.key_check == "format"
        self._catalogue = {name: frozenset(p.models) for name, p in config.providers.items()}
        self._accepted = {
            name: None if p.keys is None else frozenset(p.keys) for name, p in config.providers.items()
        }

    def route(self, headers: dict[str, str], body_model: str, gateway_key: str) -> Route:
        """Resolve a request's route, or raise the 400/401/404 a gateway would answer."""
        prefix, sep, rest = body_model.partition("/")
        provider = headers.get("x-provider") or (prefix if sep else None)
        if provider is None or provider not in self._catalogue:
            raise self._invalid_provider(provider, body_model, bool(headers.get("x-provider")))
        if "x-provider-key" in headers:
            key = headers["x-provider-key"].strip()
            if not self._key_accepted(provider, key):
                raise provider_auth_error(provider, key)
            byok, key_id = True, key_hash(key)
        elif self._house_keys:
            byok, key_id = False, key_hash(gateway_key)
        else:
            message = "This gateway only serves BYOK requests: send your key in X-Provider-Key."
            raise HttpError(401, message, type="authentication_error", code="missing_provider_key")
        # A prefix that is not a provider is part of the model name (`meta-llama/Llama-3.3-...`).
        in_body = rest if sep and prefix in self._catalogue else body_model
        model_at = headers.get("x-provider-model") or in_body
        if model_at not in self._catalogue[provider]:
            message = f"The model `{model_at}` does not exist or you do not have access to it."
            raise HttpError(404, message, code="model_not_found", param="model", provider=provider)
        return Route(provider, model_at, byok, key_id)

    def _key_accepted(self, provider: str, key: str) -> bool:
        """The provider's listed keys decide; without a list, the format check (if on)."""
        accepted = self._accepted[provider]
        if not key:
            return False
        if accepted is not None:
            return key in accepted
        return not self._format_check or looks_like_key(provider, key)

    @staticmethod
    def _invalid_provider(provider: str | None, body_model: str, from_header: bool) -> HttpError:
        """A 400 that lists the supported providers."""
        if provider:
            named = f"Invalid provider {provider!r}."
        else:
            named = (
                f"Cannot tell the provider of model {body_model!r}: "
                "send X-Provider or use a 'provider/model' name."
            )
        return HttpError(
            400,
            f"{named} Supported providers: {SUPPORTED_LIST}",
            code="invalid_provider",
            param="X-Provider" if from_header else "model",
            supported_providers=list(SUPPORTED_PROVIDERS),
        )
