"""Run the sandbox gateway: blocking (`serve`), in a thread (`SandboxServer`, for tests) or in a
child process (`start_process`, for benchmarks, so it does not share the GIL with the engine).

Every mode serves with uvicorn on uvloop + httptools without access logs: the sandbox must not be
the bottleneck of the engine it is measuring.
"""

from __future__ import annotations

import gc
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from sandbox.app import SandboxApp
from sandbox.asgi import ASGIApp
from sandbox.config import SandboxConfig

READY_PREFIX = "SANDBOX_URL="
_REPO_ROOT = Path(__file__).resolve().parent.parent
# Young collections every 20,000 allocations, the middle and old generations rarer than by default.
SERVER_GC_THRESHOLDS = (20_000, 50, 100)


def _uvicorn_config(app: ASGIApp, graceful_s: int) -> uvicorn.Config:
    """The fast uvicorn setup (stock loop/parser only where uvloop/httptools are missing)."""
    return uvicorn.Config(
        app,
        loop="uvloop" if find_spec("uvloop") else "asyncio",
        http="httptools" if find_spec("httptools") else "h11",
        access_log=False,
        log_level="warning",
        lifespan="off",
        server_header=False,
        # A hanging request must not hold shutdown hostage.
        timeout_graceful_shutdown=graceful_s,
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free port, with no window for another process."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    """The base URL (no `/v1`) of a bound socket."""
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn.Server that reports when it is actually accepting connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start listening, then call `on_ready`."""
        await super().startup(sockets=sockets)
        if self.started and self._on_ready is not None:
            self._on_ready()


def serve(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the sandbox until interrupted; `on_ready(url)` runs once it accepts connections."""
    sock = bind_socket(host, port)
    url = _url(host, sock)
    app = SandboxApp(config if config is not None else SandboxConfig())
    server = _Server(_uvicorn_config(app, 5), None if on_ready is None else lambda: on_ready(url))
    # A process holding thousands of open requests: with CPython's default thresholds their objects
    # outlive the young generations and full collections walk them again and again, stalling every
    # answer (benchmarks/PROFILE.md, round 3). What is loaded now is frozen; collections are rarer.
    gc.freeze()
    gc.set_threshold(*SERVER_GC_THRESHOLDS)
    server.run(sockets=[sock])


class _Controls:
    """HTTP helpers shared by the thread and process handles (they only need `url`)."""

    url: str

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, `{url}/v1`."""
        return f"{self.url}/v1"

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """`GET /sandbox/stats`."""
        return dict(self._call("GET", "/sandbox/stats"))

    def arrivals(self, key_hash: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """`GET /sandbox/arrivals`, optionally for one key hash."""
        query = f"?key_hash={key_hash}" if key_hash else ""
        return dict(self._call("GET", f"/sandbox/arrivals{query}"))

    def reset(self) -> None:
        """`POST /sandbox/reset`: clear stats, rate-limit windows and directive counts."""
        self._call("POST", "/sandbox/reset")


class SandboxServer(_Controls):
    """The sandbox on a free 127.0.0.1 port in a thread: `with SandboxServer(cfg) as server`."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 10.0,
    ) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.app = SandboxApp(self.config)
        self.host = host
        self.port = port
        self.url = ""
        self._startup_timeout = startup_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SandboxServer:
        """Start serving and wait until the server accepts connections."""
        sock = bind_socket(self.host, self.port)
        self.url = _url(self.host, sock)
        ready = threading.Event()
        self._server = _Server(_uvicorn_config(self.app, 1), ready.set)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="sandbox-gateway", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not ready.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sandbox gateway did not start on {self.url}")
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread (forcing exit after a few seconds)."""
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SandboxProcess(_Controls):
    """Handle of a sandbox running in a child process (see `start_process`)."""

    def __init__(self, url: str, process: subprocess.Popen[str]) -> None:
        self.url = url
        self.process = process

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid


def _read_ready_line(process: subprocess.Popen[str], timeout: float) -> str:
    """Wait for the child's `SANDBOX_URL=...` line; raise if it exits or takes too long."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout

    def pump() -> None:
        """Move the child's stdout lines into the queue (a pipe read cannot time out)."""
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, name="sandbox-stdout", daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if line.startswith(READY_PREFIX):
            return line.removeprefix(READY_PREFIX).strip()
    raise RuntimeError(f"sandbox child process did not start (exit code {process.poll()})")


@contextmanager
def start_process(
    config: SandboxConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 30.0,
) -> Iterator[SandboxProcess]:
    """Run the sandbox in a child process (`python -m sandbox`) for the duration of the block."""
    config = config if config is not None else SandboxConfig()
    with tempfile.TemporaryDirectory(prefix="sandbox-") as tmp:
        # JSON is valid YAML, so the child reads this file like any other --config.
        config_path = Path(tmp) / "sandbox.json"
        config_path.write_text(config.model_dump_json(), encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "sandbox", "--config", str(config_path)]
        command += ["--host", host, "--port", str(port)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        try:
            url = _read_ready_line(process, startup_timeout)
            yield SandboxProcess(url, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
