"""``python -m fakepop3``: the standalone server (see ``fakepop3 --help``)."""

from .cli import main

raise SystemExit(main())
