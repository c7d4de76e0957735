"""One local Prefect server shared by every byokflow command, instead of a new one per run.

Without `PREFECT_API_URL`, Prefect starts a temporary server for each process: ~6 s of every run,
however small. So the first command starts `prefect server start` in the background (a session of
its own, logging to `PREFECT_HOME/byokflow-server.log`), records where it listens in
`PREFECT_HOME/byokflow-server.json`, and later commands find it there and use it at once. It runs
until `byokflow server stop`; `byokflow server status` says where it is. Set
`BYOKFLOW_SHARED_SERVER=0` (the test suite does) for Prefect's temporary server per process, or
set `PREFECT_API_URL` to use a server of your own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

STATE_FILE = "byokflow-server.json"
LOG_FILE = "byokflow-server.log"
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LocalServer:
    """Where the shared server listens, and its process."""

    url: str
    pid: int

    @property
    def api_url(self) -> str:
        """What `PREFECT_API_URL` is set to."""
        return f"{self.url}/api"


def prefect_home() -> Path:
    """Prefect's home folder, as Prefect itself resolves it."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def use_shared_server(announce: object = print) -> LocalServer | None:
    """Point this process at the shared server, starting it if needed; None when not wanted."""
    if os.environ.get("PREFECT_API_URL") or os.environ.get("BYOKFLOW_SHARED_SERVER", "1") == "0":
        return None
    server = find_server()
    if server is None:
        server = start_server()
        if callable(announce):
            announce(
                f"started a local Prefect server for byokflow at {server.url} (pid {server.pid}); "
                "later runs reuse it, `byokflow server stop` ends it"
            )
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


def find_server() -> LocalServer | None:
    """The shared server recorded in PREFECT_HOME, if it is alive and answers."""
    path = prefect_home() / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        server = LocalServer(url=str(data["url"]), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return server if _alive(server.pid) and _healthy(server.url) else None


def start_server() -> LocalServer:
    """Start the shared server in the background and wait until it answers."""
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    with open(home / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    server = LocalServer(url=f"http://127.0.0.1:{port}", pid=process.pid)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(server.url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the local Prefect server did not start; see {home / LOG_FILE}")
        time.sleep(0.2)
    (home / STATE_FILE).write_text(json.dumps({"url": server.url, "pid": server.pid}), encoding="utf-8")
    return server


def stop_server() -> LocalServer | None:
    """Stop the shared server (if one runs); returns what was stopped."""
    server = find_server()
    (prefect_home() / STATE_FILE).unlink(missing_ok=True)
    if server is None:
        return None
    os.killpg(server.pid, signal.SIGTERM)  # the server and the processes it started
    deadline = time.monotonic() + 15
    while _alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(server.pid):
        os.killpg(server.pid, signal.SIGKILL)
    return server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by a parent that is still running) is not alive.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
    except OSError:
        return True
    return state != "Z"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
