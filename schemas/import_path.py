"""The one rule of an import path a user writes: `package.module:attribute` (tools, models, scorers)."""

from __future__ import annotations

import re

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_import_path(value: str | None) -> bool:
    """Whether `value` has the shape `package.module:attribute`."""
    return bool(value) and _IMPORT_PATH.match(value or "") is not None
