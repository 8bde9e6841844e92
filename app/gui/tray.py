"""Tiller in the system tray: "Draft a reply…" and "Draft from clipboard" without finding the
window, a notice when a draft finishes while the window is hidden, and (when the user chooses it)
starting in the tray and closing to it.

No global hotkey: Qt has none, and the libraries that add one either are unmaintained or need
accessibility permissions and a different backend per desktop (X11, Wayland, macOS); the tray menu
works everywhere a tray does.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QGuiApplication
from PySide6.QtWidgets import QApplication, QMenu, QSystemTrayIcon

from app.gui.settings import gui_settings

START_IN_TRAY = "tray/start_in_tray"


def start_in_tray() -> bool:
    """The user chose to start Tiller in the tray (and to close the window to it)."""
    return gui_settings().value(START_IN_TRAY, False, type=bool) and QSystemTrayIcon.isSystemTrayAvailable()


class TrayIcon(QObject):
    sig_notice = Signal(str)  # what a notification said (tests read it; offscreen there is no tray)

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.icon = QSystemTrayIcon(window.windowIcon(), window)
        self.icon.setToolTip("Tiller: drafts in your own style")
        menu = QMenu(window)
        self.reply_action = menu.addAction("Draft a reply…", self.draft_reply)
        self.clipboard_action = menu.addAction("Draft from clipboard", self.draft_from_clipboard)
        menu.addSeparator()
        menu.addAction("Open Tiller", self.show_window)
        self.start_action = QAction("Start in the tray", menu, checkable=True)
        self.start_action.setChecked(gui_settings().value(START_IN_TRAY, False, type=bool))
        self.start_action.toggled.connect(lambda on: gui_settings().setValue(START_IN_TRAY, on))
        menu.addAction(self.start_action)
        menu.addAction("Quit", QApplication.quit)
        self.menu = menu
        self.icon.setContextMenu(menu)
        self.icon.activated.connect(self._activated)
        window.compose.sig_draft_finished.connect(self._draft_finished)
        window.compose.sig_saved.connect(lambda folder: self.notify(f"The draft is in {folder}, not sent."))
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.icon.show()

    def _activated(self, reason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.window.hide() if self.window.isVisible() else self.show_window()

    def show_window(self) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

    def draft_reply(self) -> None:
        """Open Compose and pick the received message to answer."""
        self.show_window()
        self.window.show_page(self.window.compose)
        self.window.compose.pick_previous()

    def draft_from_clipboard(self) -> None:
        """The clipboard holds the email being answered (copied from any mail client): it becomes
        the context, and the cursor waits in the intent box."""
        text = QGuiApplication.clipboard().text().strip()
        self.show_window()
        compose = self.window.compose
        self.window.show_page(compose)
        if text:
            compose.form.previous.setPlainText(text)
        compose.form.intent.setFocus()

    def _draft_finished(self, text: str) -> None:
        if not self.window.isVisible() or self.window.isMinimized():
            first = next((line for line in text.splitlines() if line.strip()), "")
            self.notify(f"Your draft is ready: {first[:80]}")

    def notify(self, message: str) -> None:
        if self.window.isVisible() and not self.window.isMinimized():
            return
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage("Tiller", message, QSystemTrayIcon.MessageIcon.Information, 8000)
        self.sig_notice.emit(message)
