"""The composition root (the CLI) resolves the Pulumi engine's settings once and hands them over: the
engine, the provisioning service, the DR pipeline's services and rollout's never fall back to the
environment for them, and resolving them writes nothing (the file backend's passphrase is made when the
engine first needs it)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from fleet.adapters.pulumi_auto import Engine, EngineSettings, default_settings, resolve_settings
from tests.helpers import new_fleet_repo

POISON = {
    "PULUMI_BACKEND_URL": "s3://poison-bucket/state",
    "PULUMI_CONFIG_PASSPHRASE": "poison-passphrase",
    "PULUMI_SECRETS_PROVIDER": "awskms://alias/poison",
}


def _given(tmp_path: Path) -> EngineSettings:
    return EngineSettings(backend_url=f"file://{tmp_path / 'backend'}", pulumi_home=tmp_path / "ph",
                          work_root=tmp_path / "work", passphrase="given-passphrase")


def test_nothing_below_the_cli_has_a_default_for_the_engine_settings() -> None:
    from bootstrap.services import RealServices
    from fleet import provision
    from rollout.services import RealRolloutServices

    takers = [Engine, RealServices, RealRolloutServices, provision.provision, provision.provision_many,
              provision.drift, provision.refresh, provision.destroy, provision.stack_outputs, provision.unlock]
    for taker in takers:
        params = inspect.signature(taker).parameters
        name = "settings" if taker is Engine else "engine"
        assert params[name].default is inspect.Parameter.empty, f"{taker.__qualname__}({name}=...) has a default"
    with pytest.raises(TypeError):
        Engine()  # type: ignore[call-arg]


def test_services_given_settings_use_them_not_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              fleet_home: Path) -> None:
    from bootstrap.services import RealServices
    from rollout.services import RealRolloutServices

    repo = new_fleet_repo(tmp_path / "repo", clusters={"dev-1": "dev"})
    given = _given(tmp_path)
    for k, v in POISON.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "poison-home"))
    services = RealServices(repo, engine=given)
    rollout = RealRolloutServices(repo, engine=given)
    assert services.engine is given and rollout.real.engine is given
    env = Engine(services.engine)._env()
    assert env["PULUMI_BACKEND_URL"] == given.backend_url
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "given-passphrase"
    assert Engine(given)._roots() == (given.work_root, given.pulumi_home)
    assert not (tmp_path / "poison-home").exists()
    # and the poisoned environment is what the CLI would resolve, for a command that starts now
    assert default_settings().backend_url == POISON["PULUMI_BACKEND_URL"]


def test_resolving_reads_only_what_it_is_given_and_writes_nothing(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in POISON.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "home"
    s = resolve_settings({}, home)  # the process's environment is poisoned: not read
    assert s.backend_url == f"file://{home / 'pulumi'}" and s.secrets_provider is None
    assert s.passphrase is None and s.passphrase_home == home
    assert not home.exists()  # resolving made no passphrase, no directory
    passphrase = Engine(s).passphrase()  # the engine's first need makes it, under the given home
    assert passphrase == (home / "secrets" / "pulumi-passphrase").read_text().strip()
    assert resolve_settings({"PULUMI_CONFIG_PASSPHRASE": "x"}, home).passphrase == "x"
