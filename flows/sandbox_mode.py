"""`byokflow run SPEC --sandbox`: the same pipeline against a local sandbox gateway.

The spec's gateway is swapped for a sandbox started in this process, and every key source for
placeholder keys the sandbox accepts, so a pipeline can be tried with no keys and no spend.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sandbox import SandboxConfig, SandboxServer
from schemas.spec import CredentialsSpec, GatewaySpec, KeySource, PipelineSpec, StepSpec

GATEWAY_ENV = "BYOKFLOW_SANDBOX_GATEWAY_KEY"
PROVIDER_ENV = "BYOKFLOW_SANDBOX_PROVIDER_KEY"
GATEWAY_KEY = "sandbox-gateway-key"
PROVIDER_KEY = "sandbox-provider-key"


@contextmanager
def against_sandbox(spec: PipelineSpec) -> Iterator[PipelineSpec]:
    """Start a sandbox gateway and yield `spec` pointed at it, with placeholder keys."""
    os.environ.setdefault(GATEWAY_ENV, GATEWAY_KEY)
    os.environ.setdefault(PROVIDER_ENV, PROVIDER_KEY)
    with SandboxServer(SandboxConfig(gateway_keys=[os.environ[GATEWAY_ENV]])) as server:
        gateway = GatewaySpec(
            base_url=server.url,
            api_key=KeySource(env=GATEWAY_ENV),
            # As the user set it: a model their gateway serves unlisted is sent to the sandbox too.
            check_models=spec.gateway.check_models,
        )
        steps = [_with_placeholder_keys(step) for step in spec.steps]
        yield spec.model_copy(update={"gateway": gateway, "steps": steps})


def _with_placeholder_keys(step: StepSpec) -> StepSpec:
    credentials = step.credentials
    if isinstance(credentials, dict):
        replaced: CredentialsSpec | dict[str, CredentialsSpec] = {
            provider: _placeholder(c) for provider, c in credentials.items()
        }
    elif credentials is not None:
        replaced = _placeholder(credentials)
    else:
        return step
    return step.model_copy(update={"credentials": replaced})


def _placeholder(credentials: CredentialsSpec) -> CredentialsSpec:
    return CredentialsSpec(
        env=PROVIDER_ENV, provider=credentials.provider, provider_model=credentials.provider_model
    )
