"""``python -m drill``: the DR drill (:mod:`drill.runbook`)."""

from __future__ import annotations

import sys

from drill.runbook import main

sys.exit(main())
