"""``python -m agent_training``: the training side, which needs the ``train`` extra (torch,
transformers, peft, ...); without it, one line says what to install instead of a traceback."""

import importlib.util
import sys

_NEEDED = ("torch", "transformers", "peft", "sklearn", "matplotlib")
missing = [name for name in _NEEDED if importlib.util.find_spec(name) is None]
if missing:
    print(
        f"Error: the training side needs the train extra (missing: {', '.join(missing)}): pip install 'tiller[train]'",
        file=sys.stderr,
    )
    sys.exit(1)

from agent_training.cli import main  # noqa: E402 - after the check, so a bare install gets the line above

main()
