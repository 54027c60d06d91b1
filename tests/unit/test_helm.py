"""The pure parts of HelmRelease expansion (fleet/rendering/helm.py): helm-controller's release naming, Helm's
version pick from a repository index, which CRDs are installed, how values merge, and the fleet.yaml key."""

from __future__ import annotations

import pytest

from fleet.errors import HelmError
from fleet.registry.model import FleetSettings
from fleet.rendering import helm
from fleet.rendering.fluxtree import merge_maps as _merge
from fleet.rendering.helm import _crds, _set_path, release_name, resolve_version


def _hr(spec: dict[str, object], name: str = "web", namespace: str = "apps") -> dict[str, object]:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def test_release_name_and_namespace_as_helm_controller_gives_them() -> None:
    assert release_name(_hr({})) == ("web", "apps")
    assert release_name(_hr({"targetNamespace": "prod"})) == ("prod-web", "prod")
    assert release_name(_hr({"targetNamespace": "prod", "releaseName": "site"})) == ("site", "prod")
    assert helm.is_release(_hr({})) and not helm.is_release({"apiVersion": "v1", "kind": "HelmRelease"})


@pytest.mark.parametrize(("constraint", "expected"), [
    ("", "2.0.0"), ("*", "2.0.0"), ("^1.0", "1.2.0"), ("~1.0.0", "1.0.1"), (">=1.0.0 <2.0.0", "1.2.0"),
    (">=1.0.0, <1.2.0", "1.0.1"), ("1.x", "1.2.0"), ("1.0.1", "1.0.1"), ("v2.0.0", "v2.0.0"),
    ("0.x || 2.x", "2.0.0"), (">=3", None), ("1.0.0 - 1.1.0", "1.0.1"),
])
def test_versions_are_picked_as_helm_picks_them(constraint: str, expected: str | None) -> None:
    versions = ["1.0.0", "1.0.1", "1.2.0", "2.0.0", "v2.0.0", "2.1.0-rc.1"]
    assert resolve_version(versions, constraint) == expected


def test_crds_follow_the_install_and_upgrade_policies() -> None:
    assert _crds({}) is True  # install.crds: Create by default
    assert _crds({"install": {"crds": "Skip"}}) is False
    assert _crds({"install": {"crds": "Skip"}, "upgrade": {"crds": "CreateReplace"}}) is True
    assert _crds({"install": {"crds": "CreateReplace"}}) is True


def test_values_merge_key_by_key_and_target_paths_set_strings() -> None:
    merged = _merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2], "e": {"f": 1}}, "d": None})
    assert merged == {"a": {"b": 1, "c": [2], "e": {"f": 1}}, "d": None}
    values: dict[str, object] = {"x": 1}
    _set_path(values, "x.y\\.z", "7", "HelmRelease a/b", "spec.valuesFrom[0]")
    assert values == {"x": {"y.z": "7"}}
    with pytest.raises(HelmError, match=r"HelmRelease a/b: spec.valuesFrom\[0\].targetPath 'l\[0\]'"):
        _set_path(values, "l[0]", "7", "HelmRelease a/b", "spec.valuesFrom[0]")


def test_the_mirror_is_a_repo_directory_or_an_http_url() -> None:
    assert FleetSettings.model_validate({"helm": {"mirror": "./charts-mirror/"}}).helm.mirror == "charts-mirror"
    assert FleetSettings.model_validate({"helm": {"mirror": "https://charts.example/m"}}).helm.mirror
    for bad in ("file:///etc", "../outside", "https://user:pw@charts.example/"):
        with pytest.raises(ValueError, match=r"helm\.mirror"):
            FleetSettings.model_validate({"helm": {"mirror": bad}})


def test_values_are_given_to_helm_as_json_holds_them() -> None:
    import datetime

    from fleet.rendering.helm import _plain

    assert _plain({datetime.date(2024, 1, 2): [b"x", 1.5, None, True]}) == {"2024-01-02": ["eA==", 1.5, None, True]}
    with pytest.raises(HelmError, match="nan is not a number Helm reads"):
        _plain({"a": [float("nan")]})


@pytest.mark.parametrize(("url", "expected"), [
    ("oci://ghcr.io/org/charts", "ghcr.io/org/charts"),
    ("oci://127.0.0.1:5000/charts/podinfo/", "127.0.0.1:5000/charts/podinfo"),
    ("oci://ghcr.io", None), ("https://ghcr.io/org/charts", None), ("oci://ghcr.io/org/podinfo:6.9.2@sha256:ab", None),
    ("oci://ghcr.io/../etc", None), ("oci://ghcr.io/a b", None), ("", None),
])
def test_an_oci_url_is_host_and_repository_or_one_line(url: str, expected: str | None) -> None:
    if expected is not None:
        assert helm._oci_ref(url, "HelmRelease apps/web", "spec.url") == expected
        return
    with pytest.raises(HelmError, match=r"^HelmRelease apps/web: spec.url .* is not an oci://host/repository URL"):
        helm._oci_ref(url, "HelmRelease apps/web", "spec.url")


def test_values_files_keep_their_order_with_the_deprecated_one_first() -> None:
    where, key = "HelmRelease apps/web", "spec.chart.spec"
    assert helm._values_files({}, where, key) == ()
    assert helm._values_files({"valuesFiles": ["values.yaml", "prod.yaml"]}, where, key) == ("values.yaml", "prod.yaml")
    assert helm._values_files({"valuesFile": "a.yaml", "valuesFiles": ["b.yaml"]}, where, key) == ("a.yaml", "b.yaml")
    assert helm._values_files({"valuesFile": "b.yaml", "valuesFiles": ["b.yaml"]}, where, key) == ("b.yaml",)
    with pytest.raises(HelmError, match=r"^HelmRelease apps/web: spec.chart.spec.valuesFiles: expected a list"):
        helm._values_files({"valuesFiles": "prod.yaml"}, where, key)
