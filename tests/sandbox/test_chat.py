"""Chat completions of the sandbox app: answers, streaming, directives, limits, faults, tools."""

from __future__ import annotations

import json
import time

import pytest

from sandbox import SandboxConfig
from sandbox.asgi import ConnectionDropped
from sandbox.config import FaultsConfig, LatencyConfig, LimitsConfig
from sandbox.limits import key_hash
from sandbox.responder import count_prompt_tokens, expected_answer
from tests.sandbox.support import asgi_client, chat_body, messages_of, sse_events, stream_content

MODEL = "openai/gpt-4o-mini"
CALCULATOR = [{"type": "function", "function": {"name": "calculator", "parameters": {}}}]


async def test_answer_is_deterministic_openai_shaped_and_matches_expected_answer() -> None:
    body = chat_body("Summarise row 1234 please", max_tokens=200)
    async with asgi_client() as client:
        first = await client.post("/v1/chat/completions", json=body)
        again = await client.post("/v1/chat/completions", json=body)
        other = await client.post("/v1/chat/completions", json={**body, "model": "openai/gpt-4o"})
    data = first.json()
    content = data["choices"][0]["message"]["content"]
    assert content == expected_answer("openai/gpt-4o-mini", messages_of(body))
    assert content.startswith("openai/gpt-4o-mini answers: Summarise row 1234 please — ")
    assert again.json()["choices"][0]["message"]["content"] == content
    assert again.json()["id"] == data["id"] and data["id"].startswith("chatcmpl-")
    assert other.json()["choices"][0]["message"]["content"] != content
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["choices"][0]["message"]["role"] == "assistant"
    usage = data["usage"]
    assert usage["prompt_tokens"] == count_prompt_tokens(messages_of(body)) == 4 + 4
    assert usage["completion_tokens"] == len(content.split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert first.headers["x-request-id"] != again.headers["x-request-id"]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_token_limit_truncates_with_finish_reason_length(field: str) -> None:
    body = chat_body("one two three four five six")
    body[field] = 3
    async with asgi_client() as client:
        data = (await client.post("/v1/chat/completions", json=body)).json()
    full = expected_answer("openai/gpt-4o-mini", messages_of(body))
    assert data["choices"][0]["message"]["content"] == " ".join(full.split()[:3])
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 3


async def test_stream_concatenates_to_the_plain_answer_then_usage_and_done() -> None:
    body = chat_body("stream this please")
    async with asgi_client() as client:
        plain = (await client.post("/v1/chat/completions", json=body)).json()
        streamed = await client.post(
            "/v1/chat/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
        )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert stream_content(streamed.text) == plain["choices"][0]["message"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    # One word per content chunk.
    assert all(len(c["choices"][0]["delta"].get("content", "").split()) <= 1 for c in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage_chunk() -> None:
    async with asgi_client() as client:
        streamed = await client.post("/v1/chat/completions", json=chat_body("hi", stream=True))
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(e) for e in events[:-1])


async def test_stream_cut_directive_ends_early_without_done() -> None:
    body = chat_body("cut me off somewhere in the middle [[sandbox:stream_cut]]", stream=True)
    async with asgi_client() as client:
        streamed = await client.post("/v1/chat/completions", json=body)
    events = sse_events(streamed.text)
    assert streamed.status_code == 200
    assert "[DONE]" not in events
    assert all(json.loads(e)["choices"][0]["finish_reason"] is None for e in events)
    full = expected_answer("openai/gpt-4o-mini", messages_of(body))
    assert full.startswith(stream_content(streamed.text))
    assert len(stream_content(streamed.text)) < len(full)


@pytest.mark.parametrize("status", [400, 429, 500, 502, 503])
async def test_status_directive_fails_that_request(status: int) -> None:
    async with asgi_client() as client:
        failed = await client.post(
            "/v1/chat/completions", json=chat_body(f"row 3 [[sandbox:status={status}]]")
        )
        fine = await client.post("/v1/chat/completions", json=chat_body("row 4"))
    assert failed.status_code == status
    assert "message" in failed.json()["error"]
    assert fine.status_code == 200
    if status == 429:
        assert failed.headers["retry-after"] == "1"
        assert failed.json()["error"]["code"] == "rate_limit_exceeded"


async def test_times_directive_fails_only_the_first_attempts() -> None:
    body = chat_body("flaky row [[sandbox:status=503]] [[sandbox:times=2]] [[sandbox:retry_after=0.2]]")
    async with asgi_client() as client:
        statuses = [(await client.post("/v1/chat/completions", json=body)) for _ in range(3)]
    assert [r.status_code for r in statuses] == [503, 503, 200]
    first = statuses[0].headers
    assert (first["retry-after"], first["retry-after-ms"]) == ("1", "200")


async def test_retry_after_zero_directive_asks_for_an_immediate_retry() -> None:
    body = chat_body("[[sandbox:status=429]] [[sandbox:retry_after=0]]")
    async with asgi_client() as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("0", "0")


async def test_malformed_directive_sends_unparseable_json() -> None:
    async with asgi_client() as client:
        response = await client.post("/v1/chat/completions", json=chat_body("x [[sandbox:malformed]]"))
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


async def test_drop_directive_closes_without_response_under_asgi_transport() -> None:
    async with asgi_client() as client:
        with pytest.raises(ConnectionDropped):
            await client.post("/v1/chat/completions", json=chat_body("x [[sandbox:drop]]"))
        stats = (await client.get("/sandbox/stats")).json()
    assert stats["by_status"] == {"0": 1}  # status 0: no response was sent
    assert stats["faults"] == {"directive:drop": 1}


async def test_unknown_directive_is_a_400() -> None:
    async with asgi_client() as client:
        response = await client.post("/v1/chat/completions", json=chat_body("[[sandbox:boom]]"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_sandbox_directive"


async def test_rpm_limit_answers_429_with_retry_after_and_ratelimit_headers() -> None:
    config = SandboxConfig(limits=LimitsConfig(rpm=2))
    async with asgi_client(config) as client:
        responses = [await client.post("/v1/chat/completions", json=chat_body(f"row {i}")) for i in range(3)]
        other_key = await client.post(
            "/v1/chat/completions", json=chat_body("row 9"), headers={"X-Provider-Key": "sk-x-0001"}
        )
        arrivals = (await client.get("/sandbox/arrivals")).json()
        stats = (await client.get("/sandbox/stats")).json()
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["x-ratelimit-limit-requests"] == "2"
    assert responses[0].headers["x-ratelimit-remaining-requests"] == "1"
    limited = responses[2]
    assert 58 <= int(limited.headers["retry-after"]) <= 60
    assert abs(int(limited.headers["retry-after-ms"]) / 1000 - 60) < 2
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert other_key.status_code == 200  # limits are per key
    log = arrivals[key_hash("sandbox-gateway-key")]
    assert [e["status"] for e in log] == [200, 200, 429]
    assert log[2]["retry_after_s"] == int(limited.headers["retry-after-ms"]) / 1000
    assert log[0]["t"] <= log[1]["t"] <= log[2]["t"]
    assert stats["rate_limited"] == 1


async def test_tpm_limit_sends_token_headers() -> None:
    body = chat_body("a b c")
    tokens = count_prompt_tokens(messages_of(body)) + len(expected_answer(MODEL, messages_of(body)).split())
    limit = tokens + 5  # room for one request, not two
    config = SandboxConfig(limits=LimitsConfig(tpm=limit))
    async with asgi_client(config) as client:
        first = await client.post("/v1/chat/completions", json=body)
        second = await client.post("/v1/chat/completions", json=body)
    assert first.status_code == 200 and second.status_code == 429
    assert first.headers["x-ratelimit-limit-tokens"] == str(limit)
    assert first.json()["usage"]["total_tokens"] == tokens
    assert first.headers["x-ratelimit-remaining-tokens"] == "5"


async def test_seeded_faults_are_reproducible() -> None:
    config = SandboxConfig(faults=FaultsConfig(error_500=0.3, error_503=0.3, seed=42))

    async def run() -> list[int]:
        async with asgi_client(config) as client:
            return [
                (await client.post("/v1/chat/completions", json=chat_body(f"r{i}"))).status_code
                for i in range(30)
            ]

    first, second = await run(), await run()
    assert first == second
    assert {200, 500, 503} == set(first)


async def test_fixed_latency_delays_the_answer() -> None:
    config = SandboxConfig(latency=LatencyConfig(fixed_ms=60, per_token_ms=1))
    async with asgi_client(config) as client:
        started = time.perf_counter()
        await client.post("/v1/chat/completions", json=chat_body("hi"))
        assert time.perf_counter() - started >= 0.06


async def test_calculator_tool_calls_and_the_follow_up_answer() -> None:
    body = chat_body("What is 42 * 17?", tools=CALCULATOR)
    async with asgi_client() as client:
        data = (await client.post("/v1/chat/completions", json=body)).json()
        choice = data["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        call = choice["message"]["tool_calls"][0]
        assert call["function"]["name"] == "calculator"
        args = json.loads(call["function"]["arguments"])
        assert args == {"a": 42, "b": 17, "operation": "multiply"}
        follow_up = {
            **body,
            "messages": [
                *body["messages"],
                choice["message"],
                {"role": "tool", "tool_call_id": call["id"], "content": "714"},
            ],
        }
        answer = (await client.post("/v1/chat/completions", json=follow_up)).json()
    assert answer["choices"][0]["message"]["content"] == ("openai/gpt-4o-mini answers: The result is 714.")


async def test_streamed_tool_call_arguments_concatenate() -> None:
    body = chat_body("What is 6 / 3?", tools=CALCULATOR, stream=True)
    async with asgi_client() as client:
        streamed = await client.post("/v1/chat/completions", json=body)
    deltas = [
        tc
        for e in sse_events(streamed.text)[:-1]
        for tc in json.loads(e)["choices"][0]["delta"].get("tool_calls", [])
    ]
    arguments = "".join(d["function"].get("arguments", "") for d in deltas)
    assert json.loads(arguments) == {"a": 6, "b": 3, "operation": "divide"}
    assert deltas[0]["id"] == "call_1"


async def test_strip_tool_arguments_reproduces_the_byok_bug_only_under_byok() -> None:
    config = SandboxConfig(strip_tool_arguments=True)
    body = chat_body("What is 1 + 2?", tools=CALCULATOR)
    async with asgi_client(config) as client:
        byok = await client.post(
            "/v1/chat/completions", json=body, headers={"X-Provider-Key": "sk-byok-0001"}
        )
        house = await client.post("/v1/chat/completions", json=body)
    stripped = byok.json()["choices"][0]["message"]["tool_calls"][0]["function"]
    assert stripped == {"name": "calculator"}
    kept = house.json()["choices"][0]["message"]["tool_calls"][0]["function"]
    assert json.loads(kept["arguments"]) == {"a": 1, "b": 2, "operation": "add"}


async def test_prompt_over_the_context_window_is_openais_400() -> None:
    async with asgi_client(SandboxConfig(context_window=10)) as client:
        ok = await client.post("/v1/chat/completions", json=chat_body("hi"))
        response = await client.post("/v1/chat/completions", json=chat_body("word " * 20))
    assert ok.status_code == 200
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert "maximum context length is 10 tokens" in error["message"] and "24 tokens" in error["message"]
