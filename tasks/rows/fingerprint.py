"""Content hashes of requests: what resume keys records on. Keys never enter a hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def request_hash(row_id: str, body: dict[str, Any], provider: str, provider_model: str | None) -> str:
    """Hash of a row's rendered request: row id, body (model, messages, params) and routing."""
    canonical = json.dumps(
        {"row": row_id, "body": body, "provider": provider, "provider_model": provider_model},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]
