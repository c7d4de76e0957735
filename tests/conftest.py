"""Shared pytest fixtures for the whole suite.

Sandbox gateway
    sandbox_server   session-scoped: a SandboxServer (background thread, free 127.0.0.1 port)
                     running `SANDBOX_TEST_CONFIG`; use `.url` (or `.base_url` = url + "/v1").
    clean_sandbox    function-scoped: the same server with stats, rate-limit windows and
                     directive counts reset before the test.

Prefect
    prefect_harness  session-scoped: one throwaway Prefect server with its own SQLite database
                     (about 8 s to start), in a PREFECT_HOME private to the test session.

No process left behind
    no_process_left  session-scoped, automatic: once every other fixture is torn down, no child
                     process of the test session may still run (they are killed, and it fails).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Before Prefect is imported anywhere: the session's Prefect state lives in a folder of its own,
# so key-hygiene tests can scan all of it and a developer's ~/.prefect is never touched.
PREFECT_HOME = Path(tempfile.mkdtemp(prefix="byokflow-test-prefect-"))
os.environ["PREFECT_HOME"] = str(PREFECT_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# Each test session runs its own Prefect (the harness, or a temporary server per CLI process), never
# the shared local server the CLI starts for users (which would outlive the session).
os.environ["BYOKFLOW_SHARED_SERVER"] = "0"
# The local journals of outputs on object stores: inside the session's folder, never ~/.local/state.
STATE_DIR = PREFECT_HOME / "byokflow-state"
os.environ["BYOKFLOW_STATE_DIR"] = str(STATE_DIR)
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")

import pytest  # noqa: E402

from sandbox import SandboxConfig, SandboxServer  # noqa: E402
from sandbox.config import DEFAULT_GATEWAY_KEY, FaultsConfig  # noqa: E402

SANDBOX_GATEWAY_KEY = DEFAULT_GATEWAY_KEY

# Defaults (all 13 providers, any provider key accepted, house keys on, no latency, limits or
# random faults), except that `[[sandbox:hang]]` hangs for 1 s rather than 30 s.
SANDBOX_TEST_CONFIG = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], faults=FaultsConfig(hang_seconds=1.0))


@pytest.fixture(scope="session", autouse=True)
def no_process_left() -> Iterator[None]:
    """Fail the session if a process it started is still running at its end (and end it)."""
    import psutil

    yield
    session = psutil.Process()
    deadline = time.monotonic() + 10  # a server whose parent just died shuts down within seconds
    while (left := _running(session.children(recursive=True))) and time.monotonic() < deadline:
        time.sleep(0.5)
    for process, _ in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    assert not left, "processes left running by the tests: " + "; ".join(f"{p.pid}: {cmd}" for p, cmd in left)


# Python's own helper processes, which end with the interpreter that started them.
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _running(processes: list[Any]) -> list[tuple[Any, str]]:
    """The processes still running (not zombies, not interpreter helpers), with their command lines."""
    import psutil

    alive = []
    for process in processes:
        try:
            command = " ".join(process.cmdline())[:150]
            if process.status() != psutil.STATUS_ZOMBIE and not any(
                h in command for h in _INTERPRETER_HELPERS
            ):
                alive.append((process, command))
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """A sandbox gateway served over real HTTP for the whole test session."""
    with SandboxServer(SANDBOX_TEST_CONFIG) as server:
        yield server


@pytest.fixture
def clean_sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session's sandbox gateway with its stats reset."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[Path]:
    """A throwaway Prefect server for the session; yields the path of its SQLite database."""
    from prefect.settings import get_current_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = get_current_settings().server.database.connection_url
        yield Path(str(url.get_secret_value() if url else "").split("///")[-1])
