"""The one way fleet talks to Kubernetes: only this package imports the ``kubernetes`` client.

    client.py     :class:`Kube`: every API call, error translation, the retry policy (tenacity)
    informer.py   :class:`Informer`: list, then watch from that resourceVersion
    model.py      the values it takes and gives (:class:`KubeTarget`, :class:`RetryPolicy`, ...)

Its errors (:class:`~fleet.errors.ApiRefused`, :class:`~fleet.errors.NotServed`, ...) live in
:mod:`fleet.errors` with every other.
"""

from __future__ import annotations

from fleet.adapters.kube.client import FIELD_MANAGER, Kube
from fleet.adapters.kube.informer import Informer
from fleet.adapters.kube.model import FAST, Applied, KubeTarget, ObjectList, Resource, RetryPolicy, WatchEvent
from fleet.errors import ApiRefused, NotServed

__all__ = [
    "FAST",
    "FIELD_MANAGER",
    "ApiRefused",
    "Applied",
    "Informer",
    "Kube",
    "KubeTarget",
    "NotServed",
    "ObjectList",
    "Resource",
    "RetryPolicy",
    "WatchEvent",
]
