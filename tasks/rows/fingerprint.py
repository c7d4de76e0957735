"""Content hashes of requests: what resume keys records on. Keys never enter a hash."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring
from typing import Any


def request_hash(row_id: str, body: dict[str, Any], provider: str, provider_model: str | None) -> str:
    """Hash of a row's rendered request: row id, body (model, messages, params) and routing."""
    return _digest(_canonical(row_id, body, provider, provider_model))


def _canonical(row_id: str, body: dict[str, Any], provider: str, provider_model: str | None) -> str:
    return json.dumps(
        {"row": row_id, "body": body, "provider": provider, "provider_model": provider_model},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )


def _digest(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class RequestHasher:
    """`request_hash` of requests that differ only in the row id and some strings, without `json.dumps`.

    The canonical JSON of one such request is built once with a marker in place of each varying
    string and cut at the markers; a row's hash joins the pieces with its strings encoded exactly
    as `json.dumps` encodes them (`encode_basestring`), so it is the very hash `request_hash`
    gives: records written before stay found.
    """

    def __init__(
        self,
        definition: Callable[[list[str]], dict[str, Any]],
        slots: int,
        provider: str,
        provider_model: str | None,
    ) -> None:
        # marks[0] stands for the row id, marks[1:] for the strings `definition` places.
        token = uuid.uuid4().hex
        marks = [f"{token}-{i}" for i in range(slots + 1)]
        text = _canonical(marks[0], definition(marks[1:]), provider, provider_model)
        places = sorted((text.find(encode_basestring(mark)), i) for i, mark in enumerate(marks))
        if any(text.count(encode_basestring(mark)) != 1 for mark in marks):
            raise ValueError("each varying string must appear once in the request's definition")
        literals: list[str] = []
        # The slot (0: the row id) whose encoded string goes into each `%s`, in order of the text.
        self._order: list[int] = []
        start = 0
        for position, slot in places:
            literals.append(text[start:position])
            self._order.append(slot)
            start = position + len(encode_basestring(marks[slot]))
        literals.append(text[start:])
        # One `%` format, filled in C: the literal text's own `%` doubled.
        self._format = "%s".join(literal.replace("%", "%%") for literal in literals)

    def digest(self, row_id: str, strings: Sequence[str]) -> str:
        """The request hash of this row with these strings in their places."""
        values = (row_id, *strings)
        return _digest(self._format % tuple([encode_basestring(values[slot]) for slot in self._order]))
