"""Model prices: USD per million input and output tokens, a small default table and user overrides.

A model missing from the table has an unknown price: its cost is None ("unknown"), never a
made-up zero. The defaults are list prices at the time of writing; put your negotiated prices in
a YAML file (`model: {input: 0.15, output: 0.60}`) and name it in the spec's `prices`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.errors import SpecError


class ModelPrice(BaseModel):
    """Prices of one model, in USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, description="USD per million prompt tokens.")
    output: float = Field(ge=0, description="USD per million completion tokens.")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for this many tokens."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "openai/gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
    "openai/gpt-4o": ModelPrice(input=2.50, output=10.00),
    "anthropic/claude-sonnet-4-20250514": ModelPrice(input=3.00, output=15.00),
    "anthropic/claude-3-5-haiku-20241022": ModelPrice(input=0.80, output=4.00),
    "google/gemini-2.5-pro": ModelPrice(input=1.25, output=10.00),
    "google/gemini-2.5-flash": ModelPrice(input=0.30, output=2.50),
    "mistral/mistral-small-latest": ModelPrice(input=0.10, output=0.30),
    "deepseek/deepseek-chat": ModelPrice(input=0.27, output=1.10),
    "groq/llama-3.1-8b-instant": ModelPrice(input=0.05, output=0.08),
}


class PriceTable:
    """Prices by model name: the defaults, overridden by a user's file."""

    def __init__(self, prices: dict[str, ModelPrice] | None = None) -> None:
        self.prices = {**DEFAULT_PRICES, **(prices or {})}

    def price(self, model: str) -> ModelPrice | None:
        """The price of `model`, or None when it is unknown."""
        return self.prices.get(model)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for this usage of `model`, or None when its price is unknown."""
        price = self.prices.get(model)
        return None if price is None else price.cost(prompt_tokens, completion_tokens)


def load_prices(path: str | Path | None) -> PriceTable:
    """The default table, overridden by the YAML file at `path` (when given)."""
    if path is None:
        return PriceTable()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read the price file ({exc})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the price file must map model names to {{input, output}}")
    try:
        return PriceTable({str(model): ModelPrice.model_validate(p) for model, p in data.items()})
    except ValidationError as exc:
        raise SpecError(
            f"{path}: invalid price: {exc.errors()[0]['msg']} ({exc.errors()[0]['loc']})"
        ) from None

