"""Versioned prompt files in ``resources/prompts/``: ``NAME.vN.txt`` with ``### system`` and
``### user`` sections and ``$placeholders`` (string.Template, so braces in emails are harmless).

The version is part of what each stored row records, so a changed prompt can be recomputed alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from app.files import read_text_bounded


def resources_dir() -> Path:
    """``resources/`` beside a checkout (editable installs, the bundle), else the copy a wheel
    installs as the package ``app._resources``."""
    checkout = Path(__file__).resolve().parent.parent / "resources"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "_resources"


RESOURCES = resources_dir()
PROMPTS = RESOURCES / "prompts"


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    system: Template
    user: Template

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"

    def render(self, **values: str) -> tuple[str, str]:
        return self.system.substitute(values), self.user.substitute(values)


def load_prompt(name: str, version: int | None = None) -> Prompt:
    """The newest version of prompt ``name`` (or the given one)."""
    candidates = {}
    for path in PROMPTS.glob(f"{name}.v*.txt"):
        m = re.fullmatch(rf"{re.escape(name)}\.v(\d+)\.txt", path.name)
        if m:
            candidates[int(m.group(1))] = path
    if not candidates:
        raise FileNotFoundError(f"no prompt named {name!r} in {PROMPTS}")
    chosen = version if version is not None else max(candidates)
    if chosen not in candidates:
        raise FileNotFoundError(f"prompt {name!r} has no version {chosen} (have {sorted(candidates)})")
    text = read_text_bounded(candidates[chosen], 1 << 20, "prompt")
    sections = dict(re.findall(r"^### (system|user)\n(.*?)(?=^### |\Z)", text, flags=re.S | re.M))
    missing = {"system", "user"} - set(sections)
    if missing:
        raise ValueError(f"{candidates[chosen]}: missing section(s) {', '.join(sorted(missing))}")
    return Prompt(name, chosen, Template(sections["system"].strip()), Template(sections["user"].strip()))
