"""`python -m train --config train/configs/<dataset>.json ...` (single process)."""
import sys

from segearth.training.cli import main

sys.exit(main())
