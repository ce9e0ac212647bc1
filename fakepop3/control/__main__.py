"""``python -m fakepop3.control --markdown``: the control API reference page."""

from . import _main

raise SystemExit(_main())
