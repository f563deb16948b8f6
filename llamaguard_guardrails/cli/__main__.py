"""``python -m llamaguard_guardrails.cli``: the ``llamaguard-guardrails`` command."""

import sys

from . import main

sys.exit(main())
