"""`python -m segearth ...` works like the `segearth` command (e.g. where scripts are not on PATH)."""
import sys

from .cli import main

sys.exit(main())
