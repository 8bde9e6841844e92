"""When and how long to wait before trying a failed request again.

Exponential backoff with full jitter (a random wait between 0 and the exponential cap, so clients
that failed together do not retry together), except that a server's ``Retry-After`` is honoured as
the minimum wait. A ``Retry-After`` longer than ``max_retry_after_s`` is not slept through: the
error goes to the user, who can decide to wait.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    max_retry_after_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` counts from 1), or None when
        no further attempt should be made."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after_s:
            return None
        cap = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        wait = self.rng.uniform(0, cap)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110 10.2.3).
    Also accepts the ``retry-after-ms`` style of a plain float. None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def retry_after_from_headers(headers) -> float | None:
    """Read ``retry-after-ms`` (OpenAI/Anthropic style) or ``Retry-After`` from a headers mapping."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    return parse_retry_after(headers.get("retry-after"))
