"""`python -m encoderkit` (also what `torchrun -m encoderkit` and `accelerate launch -m` run)."""

import sys

from encoderkit.cli import main

sys.exit(main())
