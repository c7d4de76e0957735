"""Simulated MCP servers: the tools a request's `mcp_servers` bring, run by the gateway itself.

A request's `mcp_servers` (a slug like `windsor/open-meteo-mcp`, optionally `@version`; a URL; a
spec `{"name", "slug" | "url", ...}`; or a list of these) name servers of the sandbox config's
`mcp_servers`. Their tools are offered to the model next to the request's own; when the model calls
one, the sandbox runs it server-side and reports it the way the gateway does, in the response:

    "tools_executed":   ["get_forecast"],
    "mcp_tool_results": [{"tool_name", "server_name", "arguments", "result", "is_error", "duration_ms"}],
    "mcp_server_errors": {"<server>": {"message", "code", "recommendation"}}   (unknown servers)

A tool's result is its config's fixed `result`, or a built-in's (`builtin: forecast` or
`current_weather`: deterministic weather for the `location` argument, with a `summary` sentence),
or else `{"tool": name, "arguments": ...}`. A tool with an `error` fails with that message
(`is_error: true`). `duration_ms` is a deterministic 5-60 ms; no time is actually spent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.config import MCPServerConfig
from sandbox.tools import Call, Tool, function_tool

_CONDITIONS = ("sunny", "partly cloudy", "cloudy", "foggy", "light rain", "windy")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(slots=True)
class ServerTools:
    """The MCP tools a request brings, and the servers it named that do not exist."""

    tools: list[Tool] = field(default_factory=list)
    errors: dict[str, dict[str, str]] = field(default_factory=dict)


NO_SERVERS = ServerTools()


class MCPRegistry:
    """The config's simulated servers, by slug and by URL."""

    def __init__(self, servers: dict[str, MCPServerConfig]) -> None:
        self._servers = servers
        self._by_url = {url.rstrip("/"): slug for slug, s in servers.items() for url in s.urls}

    def resolve(self, requested: Any) -> ServerTools:
        """The tools of the servers a request's `mcp_servers` value names."""
        if not requested:
            return NO_SERVERS
        entries = requested if isinstance(requested, list) else [requested]
        found = ServerTools()
        for entry in entries:
            label, slug = self._identify(entry)
            server = self._servers.get(slug) if slug is not None else None
            if server is None:
                found.errors[label] = {
                    "message": f"MCP server {label!r} is not available on this gateway.",
                    "code": "server_not_found",
                    "recommendation": "Check the slug or URL; the sandbox serves the servers of its "
                    "config's `mcp_servers`.",
                }
                continue
            for spec in server.tools:
                tool = function_tool(spec.model_dump(include={"name", "description", "parameters"}), slug)
                found.tools.append(tool)
        return found

    def _identify(self, entry: Any) -> tuple[str, str | None]:
        """(name to report, config slug or None) of one `mcp_servers` entry."""
        if isinstance(entry, dict):
            target = entry.get("slug") or entry.get("url")
            label = str(entry.get("name") or target or "<unnamed>")
        else:
            target = label = str(entry)
        if not isinstance(target, str):
            return label, None
        if "://" in target:
            return label, self._by_url.get(target.rstrip("/"))
        return label, target.partition("@")[0]

    def run(self, call: Call) -> dict[str, Any]:
        """Run one MCP tool call; the `mcp_tool_results` entry."""
        server = self._servers[call.tool.server or ""]
        spec = next(t for t in server.tools if t.name == call.tool.name)
        digest = hashlib.sha256(f"{call.tool.name}\n{json.dumps(call.arguments, sort_keys=True)}".encode())
        duration = 5 + digest.digest()[0] % 56
        if spec.error is not None:
            result: Any = spec.error
        elif spec.result is not None:
            result = spec.result
        elif spec.builtin is not None:
            result = _BUILTINS[spec.builtin](call.arguments)
        else:
            result = {"tool": call.tool.name, "arguments": call.arguments}
        return {
            "tool_name": call.tool.name,
            "server_name": call.tool.server,
            "arguments": call.arguments,
            "result": result,
            "is_error": spec.error is not None,
            "duration_ms": duration,
        }


def _numbers(location: str) -> bytes:
    """Deterministic bytes for a location (case and spacing do not matter)."""
    return hashlib.sha256(" ".join(location.lower().split()).encode()).digest()


def forecast(arguments: dict[str, Any]) -> dict[str, Any]:
    """A made-up but stable daily forecast for `location` over `days` (default 7, at most 16)."""
    location = str(arguments.get("location") or "your location")
    days = max(1, min(int(arguments.get("days") or 7), 16))
    seed = _numbers(location)
    base = 8 + seed[0] % 20
    daily: list[dict[str, Any]] = []
    highs: list[int] = []
    for day in range(days):
        high = base + seed[1 + day] % 7
        highs.append(high)
        daily.append(
            {
                "day": _WEEKDAYS[day % 7],
                "high_c": high,
                "low_c": high - 4 - seed[17 + day % 15] % 5,
                "conditions": _CONDITIONS[seed[day + 2] % len(_CONDITIONS)],
            }
        )
    conditions = [str(d["conditions"]) for d in daily]
    usual = max(sorted(set(conditions)), key=conditions.count)
    summary = (
        f"The forecast for {location} over the next {days} days: highs of {min(highs)}-{max(highs)} °C, "
        f"mostly {usual}."
    )
    return {"location": location, "days": daily, "summary": summary}


def current_weather(arguments: dict[str, Any]) -> dict[str, Any]:
    """Made-up but stable current weather for `location`."""
    location = str(arguments.get("location") or "your location")
    seed = _numbers(location)
    temperature = 5 + seed[3] % 25
    conditions = _CONDITIONS[seed[4] % len(_CONDITIONS)]
    summary = f"It is {temperature} °C and {conditions} in {location}."
    return {"location": location, "temperature_c": temperature, "conditions": conditions, "summary": summary}


_BUILTINS = {"forecast": forecast, "current_weather": current_weather}
