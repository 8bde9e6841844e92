"""The user's tag selector: one PREMIUM-Embed model per identity, kept under ``<home>/ranking/``.

"Give me 3 drafts" asks it for three tag sets (one its best guess, one a variant, one exploring),
M_L drafts once per set with the agent's rules plus the tags, and the user's ranking (or single
pick) updates it on the spot. The saved state holds the learned heads and tag preferences, the
replay buffer and how often each tag was shown, so learning carries across sessions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.agent.profiles import profile_slug
from app.paths import home
from app.ranking.premium import STYLE_TAGS, Comparison, PremiumConfig, PremiumEmbed, TextEncoder

# What emails are about and how they read: broad enough for work mail, each a plain phrase the
# large model can act on ("Style: Scheduling" reads as "this is about scheduling").
TOPIC_TAGS = (
    "Scheduling and meetings",
    "Contracts and legal",
    "Status update",
    "Request for action",
    "Thank-you note",
    "Apology",
    "Negotiation",
    "Follow-up",
    "Introduction",
    "Pricing and numbers",
    "Deadline",
    "Technical detail",
    "Bad news delivered gently",
    "Quick confirmation",
    "Travel and logistics",
    "Decision needed",
    "Friendly and personal",
    "Delegating a task",
    "Sharing a document",
    "Asking for feedback",
)
DEFAULT_TAGS = (*TOPIC_TAGS, *STYLE_TAGS)

_ENCODER: TextEncoder | None = None


def ranking_dir() -> Path:
    return home() / "ranking"


def state_path(sender: str | None) -> Path:
    return ranking_dir() / f"{profile_slug(sender)}.json"  # named like the identity's agent profile


def load_selector(sender: str | None, *, seed: int | None = None) -> PremiumEmbed:
    """The identity's selector, with its saved state when there is one."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = TextEncoder()  # ~1 s to load; kept for the process (the GUI asks many times)
    config = PremiumConfig(seed=seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
    selector = PremiumEmbed(list(DEFAULT_TAGS), _ENCODER, config)
    path = state_path(sender)
    if path.is_file():
        try:
            selector.load(path)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{path}: unreadable ranking state ({exc}); `tiller tags --reset` starts over") from None
    return selector


def save_selector(selector: PremiumEmbed, sender: str | None) -> Path:
    path = state_path(sender)
    selector.save(path)
    return path


@dataclass(frozen=True)
class Learned:
    """What one ranking taught: shown by the CLI and the app alike."""

    seconds: float
    path: Path
    updates: int  # rankings learned from so far
    favoured: tuple[str, ...]  # the tags now favoured, strongest first (up to five)
    best_only: bool  # a pick of one, not a full ranking

    def sentence(self) -> str:
        what = "pick" if self.best_only else "ranking"
        return (
            f"Learned from your {what} in {self.seconds * 1000:.0f} ms ({self.updates} so far). "
            f"Favoured tags: {', '.join(self.favoured) or '(none yet)'}"
        )


def learn_ranking(selector: PremiumEmbed, sender: str | None, intent: str, ranked: list, *, best_only: bool) -> Learned:
    """The one way a user's ranking (tag sets, best first) or pick teaches the selector and is saved:
    the CLI's ``--rank``, the app's pick buttons, and a sent draft that was one of several."""
    seconds = selector.update(intent, [list(tags) for tags in ranked], best_only=best_only)
    path = save_selector(selector, sender)
    favoured = tuple(t for t, w in learned_preferences(selector, 5) if w > 0)
    return Learned(seconds, path, selector.updates, favoured, best_only)


def reset_selector(sender: str | None) -> bool:
    path = state_path(sender)
    if path.is_file():
        path.unlink()
        return True
    return False


def learned_preferences(selector: PremiumEmbed, n: int = 8) -> list[tuple[str, float]]:
    """The tags the user's rankings favoured, strongest first (the intent-independent part)."""
    bias = selector.tag_bias.detach().numpy()
    order = bias.argsort()[::-1][:n]
    return [(selector.tags[i], float(bias[i])) for i in order]


__all__ = [
    "Comparison",
    "DEFAULT_TAGS",
    "Learned",
    "learn_ranking",
    "load_selector",
    "save_selector",
    "reset_selector",
    "learned_preferences",
]
