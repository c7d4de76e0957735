"""Preflight's gateway check: the gateway key and every step's model, asked of `GET /v1/models`.

The listing is free (no completion is sent). A refused key or a model the gateway does not list
stops the run before its first request; `gateway.check_models: false` skips the models (a gateway
may not list every model a BYOK key reaches), never the key. A gateway that cannot be asked
(unreachable, or no model listing) is a warning: the run goes on, and its requests that fail
become error records.
"""

from __future__ import annotations

from difflib import get_close_matches

from gateway import GatewayClient
from gateway.errors import AuthenticationError, GatewayError, PermissionDeniedError
from schemas.errors import SpecError
from schemas.providers import split_model
from schemas.spec import PipelineSpec, StepSpec
from tasks.errors import CredentialError
from tasks.run.credentials import describe_source, load_key

LIST_TIMEOUT_S = 10.0


async def check_gateway(spec: PipelineSpec) -> list[str]:
    """Check the gateway key and the steps' models; return warnings when the gateway cannot say."""
    gateway = spec.gateway
    api_key = await load_key(gateway.api_key)
    client = GatewayClient(api_key=api_key, base_url=gateway.base_url, timeout=LIST_TIMEOUT_S, environ={})
    try:
        listing = await client.list_models()
    except (AuthenticationError, PermissionDeniedError) as exc:
        raise CredentialError(
            f"the gateway at {gateway.base_url} refused the gateway key in "
            f"{describe_source(gateway.api_key)} (HTTP {exc.status_code}); check gateway.api_key"
        ) from None
    except GatewayError as exc:
        return [
            f"the gateway at {gateway.base_url} could not list its models ({exc.kind}: {exc}); the "
            "gateway key and the models are not checked, and requests that fail become error records"
        ]
    finally:
        await client.aclose()
    if not gateway.check_models:
        return []  # the key was checked by the listing; the user vouches for the models
    known = {model.id for model in listing.data}
    for index, step in enumerate(spec.steps):
        _check_models(index, step, known, gateway.base_url)
    return []


def _check_models(index: int, step: StepSpec, known: set[str], base_url: str) -> None:
    """Raise SpecError naming the step and each of its models the gateway does not serve."""
    unknown = [m for m in step.model_names if gateway_model(step, m) not in known]
    if not unknown:
        return
    details = []
    for model in unknown:
        served = gateway_model(step, model)
        close = get_close_matches(served, sorted(known), n=3)
        alias = "" if served == model else f" (sent as {served!r})"
        hint = f"; did you mean {close}?" if close else ""
        details.append(f"{model!r}{alias}{hint}")
    raise SpecError(
        f"steps[{index}] ({step.name!r}): the gateway at {base_url} does not serve model(s) "
        f"{', '.join(details)}; its GET /v1/models lists {len(known)} models; if it serves "
        "models it does not list, set gateway.check_models to false in the spec to skip this check"
    )


def gateway_model(step: StepSpec, model: str) -> str:
    """The `provider/model` id the gateway routes `step`'s requests to `model` to."""
    credentials = step.credentials_for(model)
    name = credentials.provider_model if credentials and credentials.provider_model else split_model(model)[1]
    return f"{step.provider_for(model)}/{name}"
