"""How the CLI lives with Prefect in one process: its temporary server, and SIGTERM during a flow run.

Without `PREFECT_API_URL`, Prefect starts a temporary server as a child process. In a terminal,
Ctrl-C goes to the whole process group: the server would exit at once while byokflow still stops
gracefully, and Prefect's clients would then retry against a dead server for a minute. And a parent
killed with SIGKILL would leave the server running. So the server child starts in a session of its
own (no terminal signal reaches it; byokflow stops it when it exits) and watches its parent: when
the parent is gone, whatever killed it, the server shuts itself down.

During a flow run Prefect replaces the SIGTERM handler with one that crashes the run at once (what
its workers use to cancel a run). The CLI wants SIGTERM to stop gracefully, like Ctrl-C, so it
gives Prefect its own handler to install (`sigterm_handler`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SignalHandler = Callable[[int, Any], None]

# Runs uvicorn in the child, with a thread that ends the child once its parent is gone (its parent
# pid changes when it is reparented). Polling, not PR_SET_PDEATHSIG: Prefect may start the server
# from a helper thread, and a parent-death signal fires when that thread ends.
_LAUNCHER = """
import os, runpy, signal, sys, threading, time
parent = int(sys.argv.pop(1))
def watch():
    while os.getppid() == parent:
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown
    time.sleep(3)
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv[0] = "uvicorn"
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


def shield_temporary_server() -> None:
    """Make every temporary Prefect server this process starts shielded and tied to its life."""
    from prefect.server.api import server

    original: Callable[[Any], subprocess.Popen[Any]] = server.SubprocessASGIServer._run_uvicorn_command
    if getattr(original, "_byokflow_shielded", False):
        return

    def run_shielded(self: Any) -> subprocess.Popen[Any]:
        # Prefect's own command and environment, launched through ours: only for this call.
        module = server.subprocess
        server.subprocess = types.SimpleNamespace(**{**vars(module), "Popen": _shielded_popen})  # type: ignore[assignment]
        try:
            return original(self)
        finally:
            server.subprocess = module

    run_shielded._byokflow_shielded = True  # type: ignore[attr-defined]
    server.SubprocessASGIServer._run_uvicorn_command = run_shielded  # type: ignore[method-assign]


def _shielded_popen(args: list[str], **options: Any) -> subprocess.Popen[Any]:
    """Popen for `python -m uvicorn ...`: through the launcher, in a session of its own."""
    if list(args[1:3]) == ["-m", "uvicorn"]:
        args = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *args[3:]]
    return subprocess.Popen(args, start_new_session=True, **options)


@contextmanager
def sigterm_handler(handler: SignalHandler) -> Iterator[None]:
    """SIGTERM calls `handler` while this is active, flow runs included (main thread only)."""
    from prefect.utilities import engine

    # Prefect's flow engine installs the handler it finds under this name for the run's duration.
    bridge = getattr(engine, "_prefect_sigterm_handler", None)
    if bridge is not None:
        engine._prefect_sigterm_handler = handler  # type: ignore[assignment]
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if bridge is not None:
            engine._prefect_sigterm_handler = bridge
