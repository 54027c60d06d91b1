"""What a Flux Kustomization's conditions say, read the same way by the operator gate and by ``FluxStatus``."""

from __future__ import annotations

__all__ = ["checking_health"]


def checking_health(commit: str, *, attempted: str, ready: str, health: str, health_message: str,
                    reconciling_message: str) -> bool:
    """What a Kustomization's conditions say between kustomize-controller's apply of ``commit`` and its Ready:
    its health checks of the applied objects are running (Healthy Unknown, "Running health checks for revision
    <commit> ...") or have just passed (Healthy True while Reconciling still says it runs the health checks of
    that revision: the status is written twice, Healthy first, then Ready and lastAppliedRevision). A Healthy
    True left from an earlier revision while ``commit`` is fetched, built or applied does not count: Reconciling
    then says "Fetching", "Building" or "Detecting drift", not health checks."""
    if not commit or commit not in attempted or ready == "False" or health == "False":
        return False
    if health == "Unknown":
        return commit in health_message
    return health == "True" and "health checks for revision" in reconciling_message and commit in reconciling_message
