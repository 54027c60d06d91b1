"""``python -m fleet``: the ``fleet`` command."""

import os
import sys
from pathlib import Path

# ``python -m`` puts the working directory first on sys.path. In a fleet repo that directory holds the
# registry's ``clusters/`` folder, which would then shadow fleet's own ``clusters`` package (the Pulumi
# program) as a namespace package, and the engine would be handed a module for a program. The ``fleet``
# command never has the working directory on its path; neither has this, unless it is run from fleet's
# own source tree.
if sys.path and sys.path[0] in ("", os.getcwd()) and Path.cwd().resolve() != Path(__file__).resolve().parents[1]:
    del sys.path[0]

from fleet.cli import main

sys.exit(main())
