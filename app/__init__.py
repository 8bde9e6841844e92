"""Tiller desktop client: mail import, storage, backends, on-device agent, drafting, GUI.

Nothing in this package imports ``agent_training`` (the trainer runs as a subprocess) and only
``app.gui`` imports PySide6; ``tests/test_architecture.py`` keeps it that way.
"""

__version__ = "0.1.0"
