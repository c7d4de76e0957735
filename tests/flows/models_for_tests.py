"""A structured-output model for the flow tests, loaded by import path like a pipeline's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Verdict(BaseModel):
    """What an extraction step returns for each row."""

    label: Literal["good", "bad", "unsure"]
    score: int = Field(ge=0, le=10)
    summary: str
