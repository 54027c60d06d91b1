"""A shared S3 backend, what needs no server: its URL read as Pulumi reads it, messages that never carry a
credential, the team's passphrase required up front, and the local clusters' work directory a team shares.
The server itself (seaweedfs) is exercised in tests/e2e/test_s3_backend.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.adapters import s3
from fleet.adapters.pulumi_auto import Engine, EngineSettings, resolve_settings
from fleet.errors import BackendRefused

URL = "s3://fleet/team-a?endpoint=http://127.0.0.1:8333&s3ForcePathStyle=true&region=eu-west-1"


def test_the_url_names_bucket_prefix_endpoint_and_addressing() -> None:
    loc = s3.parse_url(URL)
    assert loc is not None
    assert (loc.bucket, loc.prefix, loc.endpoint, loc.region, loc.path_style) == (
        "fleet", "team-a/", "http://127.0.0.1:8333", "eu-west-1", True)
    assert loc.key(".pulumi/meta.yaml") == "team-a/.pulumi/meta.yaml"
    bare = s3.parse_url("s3://bucket")
    assert bare is not None and (bare.prefix, bare.endpoint, bare.path_style) == ("", None, False)
    assert s3.parse_url("file:///tmp/x") is None and s3.parse_url("gs://b") is None


def test_a_message_names_the_backend_without_its_query() -> None:
    shown = s3.display_url("s3://fleet?endpoint=http://127.0.0.1:8333&profile=secret-profile")
    assert shown == "s3://fleet (endpoint http://127.0.0.1:8333)"
    assert "secret-profile" not in shown


def _s3_settings(tmp_path: Path, **environ: str) -> EngineSettings:
    return resolve_settings({"PULUMI_BACKEND_URL": URL, **environ}, tmp_path / "home")


def test_a_shared_backend_without_the_teams_passphrase_is_refused_naming_the_stack(tmp_path: Path) -> None:
    s = _s3_settings(tmp_path)
    assert s.passphrase is None and s.passphrase_home is None  # no private passphrase made for a shared backend
    with pytest.raises(BackendRefused) as e:
        Engine(s).outputs("eu-1")
    assert 'stack "eu-1"' in e.value.message and "s3://fleet/team-a" in e.value.message
    assert e.value.exit_code == 2 and e.value.hint is not None and "PULUMI_CONFIG_PASSPHRASE_FILE" in e.value.hint
    assert not (tmp_path / "home").exists()  # refused before anything was written


@pytest.mark.parametrize("given", [{"PULUMI_CONFIG_PASSPHRASE": "p"}, {"PULUMI_CONFIG_PASSPHRASE_FILE": "/f"},
                                   {"PULUMI_SECRETS_PROVIDER": "awskms://alias/x"}])
def test_any_way_of_giving_the_secrets_passes_the_check(tmp_path: Path, given: dict[str, str]) -> None:
    Engine(_s3_settings(tmp_path, **given))._check_secrets("eu-1")


def test_the_local_clusters_work_directory_can_be_shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.local.clusters import LocalClusters
    from fleet.paths import local_dir

    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "alice"))
    monkeypatch.delenv("FLEET_LOCAL_DIR", raising=False)
    assert local_dir() == tmp_path / "alice" / "local"
    monkeypatch.setenv("FLEET_LOCAL_DIR", str(tmp_path / "cloud"))
    assert local_dir() == tmp_path / "cloud"
    assert LocalClusters().workdir == (tmp_path / "cloud").resolve()
    assert LocalClusters().kubeconfig_path("eu-1").is_relative_to((tmp_path / "cloud").resolve())
