"""The sandbox gateway: a local, deterministic stand-in for the Dedalus gateway's chat API.

It speaks the gateway's wire protocol (OpenAI-style chat completions plus the BYOK headers) well
enough for the official `openai` and `dedalus-labs` SDKs, answers deterministically (see
`sandbox.responder`), and can simulate latency, rate limits and faults (see `sandbox.config`).
"""

from __future__ import annotations

from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, serve, start_process

__all__ = ["SandboxConfig", "SandboxServer", "create_app", "serve", "start_process"]
