"""The desktop app's own settings (window layout, last page, tray): ``<data>/gui.ini``, versioned."""

from __future__ import annotations

from PySide6.QtCore import QSettings

from app import paths

SETTINGS_SCHEMA = 2  # 2: Get started became page 0


def gui_settings() -> QSettings:
    settings = QSettings(str(paths.home() / "gui.ini"), QSettings.IniFormat)
    version = settings.value("schema_version", None)
    if version is not None and int(version) != SETTINGS_SCHEMA:
        settings.clear()  # an older layout: start from defaults rather than misread it
    settings.setValue("schema_version", SETTINGS_SCHEMA)
    return settings
