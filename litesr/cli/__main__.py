"""``python -m litesr.cli ...`` (what torchrun needs: ``torchrun --nproc_per_node 2 -m litesr.cli train ...``)."""

import sys

from . import main

sys.exit(main())
