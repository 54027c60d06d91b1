"""The DR drill (``make drill``, ``python -m drill``): the README's first command, run for real on this machine.

It drives the ``fleet`` CLI as a user would (:mod:`drill.runbook`), so it lives outside the DR pipeline.
"""
