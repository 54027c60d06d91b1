"""Entry point for ``pulumi up`` with a full Pulumi install (``Pulumi.yaml``: ``main: clusters/``).

Reads the stack config (set by ``fleet provision``, or by hand with ``pulumi config set``) and runs
the program. fleet itself runs the program inline through the Automation API instead.
"""

from clusters.program import run

run()
