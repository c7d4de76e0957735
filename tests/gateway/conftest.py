"""Fixtures of the gateway client tests."""

from __future__ import annotations

import pytest

from tests.gateway.support import Recorder, ok


@pytest.fixture
def recorder() -> Recorder:
    """A recorder answering every request with a plain completion."""
    return Recorder(ok())
