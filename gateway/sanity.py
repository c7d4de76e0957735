"""Sanity rules for a 2xx completion: what decodes but cannot be a real answer.

A completion breaking one of these raises InvalidResponseError (retriable: a proxy or gateway
glitch, not the request's fault). The rules are deliberately loose: a false alarm costs a retry
of a good answer, so only what no provider sends is refused.

- No choices: `choices` is empty (a stream: no chunk carried a choice). A body without
  `choices` at all does not decode; that is ResponseDecodeError, a subclass.
- A negative token count (`prompt_tokens`, `completion_tokens` or `total_tokens`).
- An absurd token count: any above ABSURD_TOKENS, far beyond every model's context.
- A total below its parts: `total_tokens`, when reported (not 0), is below
  `prompt_tokens + completion_tokens` by more than TOTAL_SLACK_RATIO of them (and at least one
  token). A total above the parts is normal: some providers count reasoning or cached tokens
  only there.
- Completion tokens far beyond the request's limit: the limit is `max_completion_tokens` or
  `max_tokens` (the larger if both are set), times the number of choices (usage sums over them).
  Reported reasoning tokens (`completion_tokens_details.reasoning_tokens`) are taken off first,
  since some providers do not count them against `max_tokens`. What remains is refused only
  above OVERSHOOT_FACTOR times the limit plus OVERSHOOT_SLACK_TOKENS: providers count stop and
  tool-call tokens differently, and some gateways (the project's sandbox among them) do not cut
  tool calls or structured output at the limit, so a modest overshoot is a real answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from schemas.wire import ChatCompletion, ChatCompletionRequest, Usage

ABSURD_TOKENS = 100_000_000
TOTAL_SLACK_RATIO = 0.01
OVERSHOOT_FACTOR = 2
OVERSHOOT_SLACK_TOKENS = 1024


def completion_problem(completion: ChatCompletion, max_tokens: int | None) -> str | None:
    """What is wrong with a non-streamed completion, showing the values; None if it is sane."""
    if not completion.choices:
        return "the completion has no choices"
    if completion.usage is None:
        return None
    return usage_problem(completion.usage, max_tokens, len(completion.choices))


def usage_problem(usage: Usage, max_tokens: int | None, choices: int) -> str | None:
    """What is impossible about `usage` for a request limited to `max_tokens`; None if nothing."""
    prompt, completion, total = usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
    if min(prompt, completion, total) < 0:
        return f"negative token count in usage: {_counts(usage)}"
    if max(prompt, completion, total) > ABSURD_TOKENS:
        return f"absurd token count in usage (over {ABSURD_TOKENS:,}): {_counts(usage)}"
    parts = prompt + completion
    if total and total < parts - max(1, int(parts * TOTAL_SLACK_RATIO)):
        return (
            f"usage total below its parts: total_tokens={total} < prompt_tokens={prompt} + "
            f"completion_tokens={completion}"
        )
    if max_tokens is None:
        return None
    limit = max_tokens * max(1, choices)
    visible = completion - _reasoning_tokens(usage)
    if visible > limit * OVERSHOOT_FACTOR + OVERSHOOT_SLACK_TOKENS:
        return (
            f"usage beyond the request's limit: completion_tokens={completion} "
            f"(reasoning_tokens={completion - visible}) for {max_tokens=} per choice, {choices=}"
        )
    return None


def token_limit(request: ChatCompletionRequest | Mapping[str, Any]) -> int | None:
    """The request's completion token limit: `max_completion_tokens` or `max_tokens`, the larger."""
    if isinstance(request, ChatCompletionRequest):
        values: tuple[object, ...] = (request.max_completion_tokens, request.max_tokens)
    else:
        values = (request.get("max_completion_tokens"), request.get("max_tokens"))
    limits = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return max(limits) if limits else None


def _counts(usage: Usage) -> str:
    return (
        f"prompt_tokens={usage.prompt_tokens}, completion_tokens={usage.completion_tokens}, "
        f"total_tokens={usage.total_tokens}"
    )


def _reasoning_tokens(usage: Usage) -> int:
    details = (usage.model_extra or {}).get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    if isinstance(reasoning, int) and not isinstance(reasoning, bool):
        return min(max(reasoning, 0), usage.completion_tokens)
    return 0
