"""Screenshots of the real app for the README, taken on a virtual X display.

    xvfb-run -s "-screen 0 1280x800x24" python packaging/screenshots.py [--agent PROFILE_DIR]

Uses a temporary data folder: imports Kay Mann's sent mail from ../shared/data/enron, optionally
installs a trained agent profile (``<data>/agents/<sender>`` from ``tiller train``), drafts on the
built-in local backend (the embedded instruct model), and grabs each page from the screen into
resources/screenshots/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ENRON = Path(os.environ.get("TILLER_ENRON_DATA", REPO.parent / "shared" / "data" / "enron"))
KAY = "kay.mann@enron.com"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--agent", type=Path, help="a trained profile folder to show (e.g. <data>/agents/kay.mann@enron.com)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "resources" / "screenshots")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        raise SystemExit(
            "run under a display, e.g.: xvfb-run -s '-screen 0 1280x800x24' python packaging/screenshots.py"
        )
    from app.gui.platform_libs import explain_missing, missing_libraries

    missing = missing_libraries()
    if missing:  # Qt would abort inside its xcb plugin instead of saying this
        raise SystemExit(explain_missing(missing))
    home = Path(tempfile.mkdtemp(prefix="tiller-shots-"))
    os.environ["TILLER_HOME"] = str(home)

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.window import MainWindow
    from app.mail.importer import MailImport
    from app.mail.sources import open_source
    from app.store import open_database

    db = open_database()
    for _ in MailImport(db, open_source(ENRON / "maildir" / "mann-k")).run():
        pass
    if args.agent:
        shutil.copytree(args.agent, home / "agents" / KAY)
    app = QApplication([])  # kept referenced for the whole run
    app.setApplicationName("Tiller")
    window = MainWindow()
    window.resize(1240, 760)
    window.show()
    args.out.mkdir(parents=True, exist_ok=True)

    def wait(condition, ms=120_000) -> None:
        loop = QEventLoop()
        poll = QTimer()
        poll.timeout.connect(lambda: loop.quit() if condition() else None)
        poll.start(50)
        QTimer.singleShot(ms, loop.quit)
        loop.exec()
        poll.stop()

    def shoot(name: str) -> None:
        wait(lambda: False, 400)  # let it paint
        image = window.screen().grabWindow(window.winId())
        image.save(str(args.out / f"{name}.png"))
        print(args.out / f"{name}.png")

    window.show_page(window.start)  # the first-run path, with the import (and the agent, if given) done
    window.start.refresh()
    shoot("start")

    compose = window.compose
    window.show_page(compose)
    compose.refresh()
    compose.backend.setCurrentText("local")
    compose.form.recipient.setText("Sylvia")
    compose.form.subject.setText("NG Energy contract")
    compose.intent.setPlainText(
        "Tell Sylvia the NG Energy contract is ready for legal review and ask for comments by Friday."
    )
    compose.form.candidates.setValue(1)  # one draft: the page shows its rule check (kept / repaired / broken)
    compose.start_draft()
    wait(lambda: compose.job is not None and compose.job.name == "draft" and not compose.job.running, 600_000)
    shoot("compose")

    # the user shortens the draft and copies it: the Your edits page shows what that taught
    compose.output.setPlainText("The NG Energy contract is ready for legal review. Comments by Friday?\n\nKay")
    compose.copy_draft()
    wait(lambda: compose._learn_job is not None and not compose._learn_job.running)
    window.show_page(window.edits)
    shoot("edits")

    window.show_page(window.importer)
    window.importer._chosen(str(ENRON / "maildir"))
    window.importer.run_import()
    wait(lambda: not window.importer.job.running)
    shoot("import")

    window.show_page(window.training)
    training = window.training
    if args.agent and (args.agent / "training.json").is_file():
        import json

        record = json.loads((args.agent / "training.json").read_text())
        for entry in record.get("loss_history", []):
            training.plot.add(entry["step"], entry["loss"])
        training.bar.setRange(0, record["steps"])
        training.bar.setValue(record["steps"])
        training.status.setText(
            f"The agent for {KAY} is trained ({record['steps']} steps, loss "
            f"{record['first_loss']:.2f} -> {record['final_loss']:.2f}); drafts use it from now on."
        )
    shoot("training")

    # a real OpenAI-compatible endpoint on 127.0.0.1 (llama.cpp's server with the embedded model),
    # so the Large models and Privacy pages show a configured endpoint and real requests
    server = start_llama_server()
    try:
        from app.backends.base import EndpointConfig
        from app.backends.config import save_endpoint

        save_endpoint(db, EndpointConfig("llama.cpp server", "openai_compat", "gemma-270m", server.url))
        window.backends.refresh()
        window.compose.refresh()
        compose.backend.setCurrentText("llama.cpp server")
        compose.start_draft()
        wait(lambda: compose.job is not None and compose.job.name == "draft" and not compose.job.running)
        window.show_page(window.backends)
        window.backends.table.selectRow(1)
        window.backends.run_test()
        wait(lambda: "answered" in window.backends.result.text() or "failed" in window.backends.result.text())
        shoot("backends")
        window.show_page(window.ledger)
        window.ledger.table.setCurrentCell(0, 0)
        shoot("ledger")
    finally:
        server.stop()
    window.close()


class start_llama_server:  # noqa: N801 (used like a function)
    def __init__(self) -> None:
        import socket
        import subprocess
        import time
        import urllib.request

        from app.model_files import embedded_base_model

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.llamacpp",  # llama_cpp.server, safe on every CPU
                "--model",
                str(embedded_base_model()),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--model_alias",
                "gemma-270m",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("llama_cpp.server did not start") from None
                time.sleep(0.3)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


if __name__ == "__main__":
    main()
