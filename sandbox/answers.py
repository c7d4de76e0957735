"""The text a sandbox model writes: deterministic per (model, conversation, seed, choice index).

`compose` looks at the conversation, in this order:

1. Tool results after the last user message (tool or legacy function messages): `The result is
   {r}.` or `The results are {r1}, {r2}.` (whitespace inside results collapsed).
2. Results of MCP tools the gateway ran for this request: each tool's `summary`, else `{tool}
   returned {result as JSON}.`
3. A grading prompt (lines `Reference: ...` and `Candidate: ...`, as an LLM judge gets): a score of
   10 (the candidate contains the reference's words in order), 5 (some of them) or 0, and why.
4. A review prompt (`... answer to '<question>': <answer>`): whether the answer agrees with what the
   model knows about the question (`sandbox.knowledge`).
5. A question the model knows (arithmetic, the fact table): its sentence, e.g. `42 * 17 = 714.` —
   or, with probability `error_rate`, the same sentence with a plausible wrong answer. The draw is
   a hash of (model, question, seed, choice), so a model errs on the same questions every run.
6. Anything else: the start of the question (up to 12 words), ` — `, and one of `CLOSERS` chosen by
   a hash (CRC32) of the model, the whole conversation, the seed and the choice index.

The answer is `"{model} answers: " + text`, except in terse mode: when the instructions (system or
developer messages) or the question ask for the answer only (`TERSE_RE`), it is the bare answer
(`714`, `Canberra`, the score, the tool results joined by ", "; `I don't know.` for 6).

`Reply.fields` are values structured output uses for matching top-level properties (see
`sandbox.structured`): a grading's `score`/`reasoning`, a known question's `answer`.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from types import MappingProxyType
from typing import Any, NamedTuple

from sandbox.directives import strip_directives
from sandbox.knowledge import Known, lookup
from schemas.wire import RequestMessage, message_text

TERSE_RE = re.compile(
    r"answer only|only the answer|just the answer|answer with only|only answer|no sentences?\b|"
    r"one word|single word|only the (?:number|name|word)|only a number",
    re.IGNORECASE,
)
CLOSERS: tuple[str, ...] = (
    "it depends on the details.",
    "I would need more context to say.",
    "there are a few ways to see it.",
    "the honest answer is that it depends.",
    "start simple and check the result.",
    "I cannot give a definite answer.",
    "it can be done, with some care.",
    "the details matter most here.",
)
ECHO_WORDS = 12
_REFERENCE_RE = re.compile(r"^\s*Reference:[ \t]*(.*)$", re.MULTILINE)
_CANDIDATE_RE = re.compile(r"^\s*Candidate:[ \t]*(.*)", re.MULTILINE | re.DOTALL)
_REVIEW_RE = re.compile(r"answer to ['\"‘“](?P<question>.+?)['\"’”]\s*:\s*(?P<answer>.+)", re.DOTALL)
_PREFIX_RE = re.compile(r"^\s*\S+/\S+ answers:\s*")
_TOKEN_RE = re.compile(r"[^\W_]+")


class Reply(NamedTuple):
    """A text answer: the full text, its words without the prefix, and structured-output hints."""

    text: str
    body: str
    fields: Mapping[str, Any] = MappingProxyType({})


class Turn(NamedTuple):
    """What `compose` needs to know besides the messages (tuples: built on every request)."""

    seed: int | None = None
    choice: int = 0
    error_rate: float = 0.0
    server_results: Sequence[dict[str, Any]] = ()


def draw(*parts: object) -> float:
    """A deterministic number in [0, 1) from `parts`."""
    digest = hashlib.sha256("\n".join([str(part) for part in parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def tokens(text: str) -> list[str]:
    """Lower-case words without punctuation (how answers are compared)."""
    return _TOKEN_RE.findall(text.lower())


def contains_words(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    """True when `needle` occurs in `haystack` as a contiguous run of words."""
    width = len(needle)
    return width > 0 and any(list(haystack[i : i + width]) == list(needle) for i in range(len(haystack)))


def tool_results(messages: Sequence[RequestMessage]) -> list[str]:
    """Contents of the tool (and function) messages after the last user message, in order."""
    results: list[str] = []
    for message in reversed(messages):
        if message.role == "user":
            break
        if message.role in ("tool", "function"):
            results.append(" ".join(message_text(message).split()))
    results.reverse()
    return results


def instructions_of(messages: Sequence[RequestMessage]) -> str:
    """The system and developer messages' text."""
    return "\n".join(message_text(m) for m in messages if m.role in ("system", "developer"))


def question_of(messages: Sequence[RequestMessage]) -> str:
    """The last user message's text, directives removed."""
    for message in reversed(messages):
        if message.role == "user":
            return strip_directives(message_text(message)).strip()
    return ""


def compose(model: str, messages: Sequence[RequestMessage], turn: Turn, canonical: str) -> Reply:
    """The text answer of `model` to `messages` (see the module doc for the rules)."""
    question = question_of(messages)
    terse = _terse(instructions_of(messages)) or TERSE_RE.search(question) is not None
    last_is_result = bool(messages) and messages[-1].role in ("tool", "function")
    results = tool_results(messages) if last_is_result else []
    if results:
        said = "The result is" if len(results) == 1 else "The results are"
        return _reply(model, terse, f"{said} {', '.join(results)}.", ", ".join(results))
    if turn.server_results:
        summary = " ".join(_server_summary(result) for result in turn.server_results)
        return _reply(model, terse, summary, summary)
    graded = _grade(question)
    if graded is not None:
        score, reasoning = graded
        fields = {"score": score, "grade": score, "rating": score, "reasoning": reasoning}
        fields |= {"explanation": reasoning, "rationale": reasoning, "correct": score == 10}
        return _reply(model, terse, f"Score: {score}/10. {reasoning}", str(score), fields)
    review = _review(question)
    if review is not None:
        return _reply(model, terse, review, review)
    known = lookup(question) if question else None
    if known is not None:
        answer = _answer(model, question, turn, known)
        return _reply(model, terse, known.say(answer), answer, {"answer": answer, "result": answer})
    return _reply(model, terse, _fallback(model, question, turn, canonical), "I don't know.")


@lru_cache(maxsize=1024)
def _terse(text: str) -> bool:
    """True when `text` asks for the answer only (cached: a step's instructions repeat)."""
    return bool(text) and TERSE_RE.search(text) is not None


def _reply(
    model: str, terse: bool, sentence: str, bare: str, fields: Mapping[str, Any] | None = None
) -> Reply:
    """The Reply in the requested style; answers are always single-spaced words."""
    body = " ".join((bare if terse else sentence).split())
    text = body if terse else f"{model} answers: {body}"
    return Reply(text, body, fields or MappingProxyType({}))


def _answer(model: str, question: str, turn: Turn, known: Known) -> str:
    """The model's answer to a known question: right, or wrong with probability error_rate."""
    if turn.error_rate <= 0 or not known.wrong:
        return known.answer
    roll = draw(model, question, turn.seed, turn.choice)
    if roll >= turn.error_rate:
        return known.answer
    # The same roll picks the mistake, so an answer stays the same across runs.
    return known.wrong[int(roll / turn.error_rate * len(known.wrong)) % len(known.wrong)]


def _server_summary(result: dict[str, Any]) -> str:
    """One MCP tool result as a sentence."""
    value = result.get("result")
    if isinstance(value, dict) and isinstance(value.get("summary"), str):
        return str(value["summary"])
    shown = value if isinstance(value, str) else json.dumps(value)
    if result.get("is_error"):
        return f"{result.get('tool_name')} failed: {shown}."
    return f"{result.get('tool_name')} returned {shown}."


def _grade(question: str) -> tuple[int, str] | None:
    """(score out of 10, reasoning) for a grading prompt, else None."""
    if "Reference:" not in question or "Candidate:" not in question:
        return None
    reference = _REFERENCE_RE.search(question)
    candidate = _CANDIDATE_RE.search(question)
    if reference is None or candidate is None:
        return None
    wanted = tokens(reference.group(1))
    given = tokens(_PREFIX_RE.sub("", candidate.group(1).strip()))
    shown = reference.group(1).strip()
    if not given:
        return 0, "The candidate gives no answer."
    if contains_words(given, wanted):
        return 10, f"The candidate gives the reference answer, {shown}."
    if set(wanted) & set(given) - _STOP_WORDS:
        return 5, f"The candidate is partly right; the reference answer is {shown}."
    return 0, f"The candidate's answer differs from the reference answer, {shown}."


_STOP_WORDS = frozenset(["a", "an", "the", "of", "and", "or", "is", "are", "in", "on", "to", "for", "it"])


def _review(question: str) -> str | None:
    """A review of an answer to a question the model knows, else None."""
    match = _REVIEW_RE.search(question) if "answer to" in question else None
    if match is None:
        return None
    known = lookup(match.group("question"))
    if known is None:
        return "The answer is clear and on topic, though I cannot check it against a source."
    given = tokens(_PREFIX_RE.sub("", match.group("answer")))
    if contains_words(given, tokens(known.answer)):
        return f"The answer is correct: {known.say()}"
    return f"The answer is wrong: {known.say()}"


def _fallback(model: str, question: str, turn: Turn, canonical: str) -> str:
    """The start of the question and a closing sentence picked by hash."""
    if not question:
        return "Hello! How can I help you today?"
    words = question.splitlines()[0].split()
    echo = " ".join(words[:ECHO_WORDS]).rstrip("?.!:;,")
    # CRC32, not sha256: this runs for every plain prompt, and only picks one of a few closers.
    pick = zlib.crc32(f"{model}\n{canonical}\n{turn.seed}\n{turn.choice}".encode()) * len(CLOSERS) >> 32
    closer = CLOSERS[pick]
    return f"{echo} — {closer}"
