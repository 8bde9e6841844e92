import sys

from app.gui.window import main

sys.exit(main())
