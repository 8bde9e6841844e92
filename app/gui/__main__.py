"""``python -m app.gui``: the desktop app, or one line saying what to install when Qt is missing."""

import sys

try:
    from app.gui.window import main
except ImportError as exc:
    sys.exit(f"tiller: the desktop app needs the gui extra: pip install 'tiller[gui]' ({exc})")

sys.exit(main())
