"""Tiller's desktop app (PySide6). The only package that imports Qt; every page drives the same
core (app.mail, app.backends, app.agent, app.drafting) as the CLI, with work off the GUI thread."""
