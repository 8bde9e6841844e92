"""What a batch costs, for the estimate shown before one is submitted.

List prices in US dollars per million tokens (input, output) for the models people use through
Tiller, as recorded on the date below, and each provider's batch discount. Prices change: the
estimate says its date, and an unknown model gets a token count without a price, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_AS_OF = "2026-12-05"
BATCH_DISCOUNT = {"anthropic": 0.5, "gemini": 0.5, "openai_compat": 0.5}  # batch price = list price x this

# model name prefix -> (input, output) list price per million tokens
LIST_PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-flash": (0.30, 2.50),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4o-mini": (0.15, 0.60),
}


@dataclass(frozen=True)
class BatchPrice:
    input_per_m: float
    output_per_m: float
    source: str  # what the price is: "claude-sonnet-4-5 list price as of …, batch half"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1e6


def batch_price(provider: str, model: str | None) -> BatchPrice | None:
    """The batch price of ``model`` on ``provider``, or None when Tiller does not know it."""
    if not model or provider not in BATCH_DISCOUNT:
        return None
    # the longest matching prefix: gemini-2.5-flash-lite before gemini-2.5-flash
    for prefix in sorted(LIST_PRICES, key=len, reverse=True):
        if model.startswith(prefix):
            listed_in, listed_out = LIST_PRICES[prefix]
            discount = BATCH_DISCOUNT[provider]
            return BatchPrice(
                listed_in * discount,
                listed_out * discount,
                f"{prefix} list price as of {PRICES_AS_OF}, batch at {discount:.0%} of it",
            )
    return None
