"""`fleet diff` on the real local cluster never shows a secret (issue 20): a live Secret applied with the real
`kubectl apply` (so its `kubectl.kubernetes.io/last-applied-configuration` annotation holds every value, in
clear in the JSON), and a SOPS-encrypted ConfigMap whose live value differs from the repository's."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers import need_tool
from live_support import make_namespace

from fleet import sops
from fleet.adapters.kube import Kube, KubeTarget
from fleet.live.diff import diff
from fleet.output import SilentReporter

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("live")]

KEY_FILE = Path(__file__).parents[1] / "fixtures" / "sops" / "TEST-ONLY-age.agekey"
LIVE_PASSWORD = "live-Pa55word-planted"
REPO_PASSWORD = "repo-Pa55word-planted"
LIVE_TOKEN = "live-token-planted"
REPO_TOKEN = "repo-token-planted"
ANNOTATED = "annotation-secret-planted"


def _kubectl_apply(target: KubeTarget, obj: dict[str, object]) -> None:
    kubectl = need_tool("kubectl")
    subprocess.run([str(kubectl), "apply", "-f", "-"], input=yaml.safe_dump(obj), text=True, check=True,
                   capture_output=True, env={**os.environ, "KUBECONFIG": str(target.kubeconfig)})


def _forms(*values: str) -> list[str]:
    return [f for v in values for f in (v, base64.b64encode(v.encode()).decode())]


def test_a_diff_shows_no_secret_value_live_or_desired(kube: Kube, live_target: KubeTarget, ns: str) -> None:
    make_namespace(kube, ns)
    live_secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "db", "namespace": ns, "annotations": {"note": ANNOTATED}},
                   "stringData": {"password": LIVE_PASSWORD}}
    _kubectl_apply(live_target, live_secret)
    live_cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api", "namespace": ns},
               "data": {"token": LIVE_TOKEN, "mode": "plain"}}
    _kubectl_apply(live_target, live_cm)
    got = kube.get("v1", "Secret", "db", ns)
    assert got is not None and LIVE_PASSWORD in json.dumps(got)  # positive control: the annotation holds it

    key = sops.parse_key(KEY_FILE.read_text(), str(KEY_FILE))
    desired_secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                      "metadata": {"name": "db", "namespace": ns}, "data": {
                          "password": base64.b64encode(REPO_PASSWORD.encode()).decode()}}
    desired_cm = sops.encrypt_object(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "api", "namespace": ns},
         "data": {"mode": "plain", "token": REPO_TOKEN}},
        [key.recipient], encrypted_regex="^token$")
    result = diff(live_target, [desired_cm, desired_secret], "a" * 40, reporter=SilentReporter(), age_keys=[key],
                  operator=False, via=None)
    text = "".join(o.diff for o in result.objects) + json.dumps([o.diff for o in result.objects])
    assert {o.object for o in result.objects} >= {f"Secret/{ns}/db", f"ConfigMap/{ns}/api"}
    for planted in _forms(LIVE_PASSWORD, REPO_PASSWORD, LIVE_TOKEN, REPO_TOKEN, ANNOTATED):
        assert planted not in text, planted
    assert "*** (before)" in text and "*** (after)" in text
    assert "mode: plain" in text or "plain" in text  # what the repository keeps in clear still shows
