"""The judge's structured answer in the evaluation example, loaded by import path from the spec."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Judgement(BaseModel):
    """A judge's grade of one candidate answer: a score from 0 to 10 and why."""

    score: int = Field(ge=0, le=10, description="10: matches the reference; 0: wrong or no answer.")
    reasoning: str = Field(description="One or two sentences on why.")
