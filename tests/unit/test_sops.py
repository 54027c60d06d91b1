"""SOPS (age) secrets: the file format (against our encryptor and a file the real sops wrote), the MAC,
redaction, the key source, fleet.yaml's secrets.sops, the operator's decryption and sops-age Secret,
and that neither the key nor a secret value reaches an error, a plan or the Pulumi program's plain
inputs."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi_mocks import KUBECONFIG, resolve, spec, stack_config, use_mocks

from clusters.operator import FluxOperator
from fleet import sops
from fleet.errors import InputError, SecretsError
from fleet.operator.flux import install as flux
from fleet.registry.model import FleetSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sops"
# A test-only age identity, committed as a fixture: it protects nothing but the fixtures.
TEST_KEY_FILE = FIXTURES / "TEST-ONLY-age.agekey"
PASSWORD = "s3cr3t-planted-Pa55word"  # planted: must never leak


def _secret() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app"}, "type": "Opaque",
        "stringData": {"password": PASSWORD, "port": 5432, "ratio": 0.25, "on": True, "hosts": ["a", "b"]},
    }


@pytest.fixture
def key() -> sops.AgeKey:
    return sops.parse_key(TEST_KEY_FILE.read_text(), str(TEST_KEY_FILE))


def test_the_test_key_fixture_is_a_real_age_key(key: sops.AgeKey) -> None:
    assert key.recipient.startswith("age1") and key.identity.startswith("AGE-SECRET-KEY-1")
    assert key.identity not in repr(key) and key.identity not in str(key)


@pytest.mark.parametrize("regex", ["", "^(data|stringData)$"])
def test_round_trip_and_types(key: sops.AgeKey, regex: str) -> None:
    enc = sops.encrypt_object(_secret(), [key.recipient], encrypted_regex=regex)
    assert sops.is_encrypted(enc) and sops.recipients_of(enc) == (key.recipient,)
    assert PASSWORD not in yaml.safe_dump(enc)
    assert enc["stringData"]["password"].startswith("ENC[AES256_GCM,data:")
    assert enc["stringData"]["port"].endswith("type:int]") and enc["stringData"]["on"].endswith("type:bool]")
    if regex:
        assert enc["metadata"]["name"] == "db"  # left in clear, still under the MAC
    assert sops.decrypt_object(enc, [key]) == _secret()


def test_the_real_sops_file_decrypts(key: sops.AgeKey) -> None:
    """tests/fixtures/sops/secret.enc.yaml was written by the sops CLI (v3.11.0) with the test-only key."""
    doc = yaml.safe_load((FIXTURES / "secret.enc.yaml").read_text())
    assert sops.is_encrypted(doc) and doc["sops"]["age"][0]["recipient"] == key.recipient
    out = sops.decrypt_object(doc, [key])
    assert "sops" not in out
    assert out["stringData"]["password"] == "from-the-real-sops-binary"
    assert out["metadata"]["name"] == "real-sops"
    tampered = copy.deepcopy(doc)
    tampered["metadata"]["name"] = "other"
    with pytest.raises(SecretsError, match="MAC mismatch"):
        sops.decrypt_object(tampered, [key])


def test_tampering_is_caught_by_the_mac_or_the_value_tag(key: sops.AgeKey) -> None:
    enc = sops.encrypt_object(_secret(), [key.recipient], encrypted_regex="^(data|stringData)$")
    renamed = copy.deepcopy(enc)
    renamed["metadata"]["name"] = "evil"  # in clear, but covered by the MAC
    with pytest.raises(SecretsError, match="MAC mismatch"):
        sops.decrypt_object(renamed, [key])
    moved = copy.deepcopy(enc)  # a value moved to another key: its path is its additional data
    moved["stringData"]["user"] = moved["stringData"].pop("password")
    with pytest.raises(SecretsError, match="does not decrypt") as e:
        sops.decrypt_object(moved, [key])
    assert PASSWORD not in str(e.value)
    dropped = copy.deepcopy(enc)
    del dropped["stringData"]["hosts"]
    with pytest.raises(SecretsError, match="MAC mismatch"):
        sops.decrypt_object(dropped, [key])


def test_a_key_for_another_recipient_is_named_by_its_recipient(key: sops.AgeKey) -> None:
    other = sops.generate_key("other")
    enc = sops.encrypt_object(_secret(), [key.recipient])
    with pytest.raises(SecretsError) as e:
        sops.decrypt_object(enc, [other])
    msg = str(e.value)
    assert key.recipient in msg and other.recipient in msg and other.identity not in msg
    assert "(encrypted)" in msg  # the name is encrypted too


def test_redaction_shows_structure_and_recipients_only(key: sops.AgeKey) -> None:
    enc = sops.encrypt_object(_secret(), [key.recipient], encrypted_regex="^(data|stringData)$")
    shown = sops.shown_objects([enc, {"kind": "ConfigMap"}], None)
    assert shown is not None
    text = yaml.safe_dump_all(shown)
    assert sops.REDACTED in text and "ENC[" not in text and "BEGIN AGE" not in text and "mac" not in text
    assert shown[0]["sops"]["age"] == [{"recipient": key.recipient}]
    assert shown[0]["metadata"]["name"] == "db" and shown[1] == {"kind": "ConfigMap"}
    assert sops.shown_objects([{"kind": "ConfigMap"}], None) is None  # nothing encrypted: as rendered
    assert sops.shown_objects([enc], [key]) == [_secret()]


def test_apply_refuses_encrypted_objects_without_a_key(key: sops.AgeKey) -> None:
    enc = sops.encrypt_object(_secret(), [key.recipient], encrypted_regex="^(data|stringData)$")
    with pytest.raises(InputError, match=r'cluster "c1": 1 SOPS-encrypted object\(s\) \(Secret app/db\)'):
        sops.require_key((), [enc], 'cluster "c1"')
    sops.require_key((), [{"kind": "ConfigMap"}], "x")  # nothing encrypted: fine


# -- the key source ----------------------------------------------------------------------------------


def _settings(key: sops.AgeKey, **source: str) -> FleetSettings:
    return FleetSettings.model_validate({"secrets": {"sops": {"ageRecipients": [key.recipient], "keySource": source}}})


def test_key_source_env_then_fleet_home(key: sops.AgeKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FLEET_HOME", str(home))
    monkeypatch.delenv("FLEET_SOPS_AGE_KEY_FILE", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    settings = _settings(key)
    with pytest.raises(SecretsError, match=r"age key is missing: .*sops-age.agekey \(from FLEET_HOME\)") as e:
        sops.key_for(settings, repo)
    assert e.value.exit_code == 2
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "sops-age.agekey").write_text(TEST_KEY_FILE.read_text())
    found = sops.key_for(settings, repo)
    assert found is not None and (found.identity, found.recipient) == (key.identity, key.recipient)
    other = tmp_path / "other.agekey"
    other.write_text(f"# created: test\n{sops.generate_key().identity}\n")
    monkeypatch.setenv("FLEET_SOPS_AGE_KEY_FILE", str(other))
    with pytest.raises(SecretsError, match=r"not one of fleet\.yaml's secrets\.sops\.ageRecipients"):
        sops.key_for(settings, repo)
    inside = repo / "age.agekey"
    inside.write_text(TEST_KEY_FILE.read_text())
    monkeypatch.setenv("FLEET_SOPS_AGE_KEY_FILE", str(inside))
    with pytest.raises(SecretsError, match="inside the fleet repo"):
        sops.key_for(settings, repo)
    assert sops.key_for(FleetSettings(), repo) is None  # no secrets.sops: no key needed


def test_a_key_file_that_is_no_key() -> None:
    with pytest.raises(SecretsError, match="not an age key file") as e:
        sops.parse_key("AGE-SECRET-KEY-1NOTAKEY\n", "k.txt")
    assert "NOTAKEY" not in str(e.value)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"sops": {"ageRecipients": []}}, "at least 1"),
        ({"sops": {"ageRecipients": ["age1short"]}}, "is not an age recipient"),
        ({"sops": {"ageRecipients": ["age1" + "q" * 58], "keySource": {"env": "lower"}}}, "environment variable"),
        ({"sops": {"ageRecipients": ["age1" + "q" * 58], "extra": 1}}, "Extra inputs"),
    ],
)
def test_fleet_yaml_secrets_sops_is_checked(doc: dict[str, Any], match: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=match):
        FleetSettings.model_validate({"secrets": doc})


# -- the operator ------------------------------------------------------------------------------------


def test_kustomization_decrypts_with_sops_when_the_fleet_uses_it(key: sops.AgeKey) -> None:
    plain = stack_config(spec("dev-1"))
    assert "decryption" not in flux.kustomization(plain)["spec"]
    cfg = stack_config(spec("dev-1"), secrets={"sops": {"ageRecipients": [key.recipient]}})
    assert flux.kustomization(cfg)["spec"]["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    secret = flux.sops_age_secret(key.identity)
    assert secret["metadata"]["name"] == "sops-age" and secret["metadata"]["namespace"] == "flux-system"
    assert base64.b64decode(secret["data"]["age.agekey"]).decode().strip() == key.identity


def test_the_age_key_becomes_a_secret_in_state(key: sops.AgeKey, tmp_path: Path) -> None:
    install = tmp_path / "install.yaml"
    install.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n")
    rec = use_mocks()
    cfg = stack_config(spec("dev-1"), operator={"source": str(install)},
                       secrets={"sops": {"ageRecipients": [key.recipient]}})
    op = FluxOperator("flux", kubeconfig=KUBECONFIG, config=cfg, sops_age_key=pulumi.Output.secret(key.identity))
    assert resolve(op.path) == "./environments/dev"
    secret = rec.one("kubernetes:core/v1:Secret")
    data = secret.inputs["data"]
    assert "value" in data  # a secret output: encrypted in the stack's state
    assert base64.b64decode(data["value"]["age.agekey"]).decode().strip() == key.identity
    sync = rec.one("kubernetes:kustomize.toolkit.fluxcd.io/v1:Kustomization")
    assert sync.inputs["spec"]["decryption"]["secretRef"] == {"name": "sops-age"}
    for r in rec.resources:  # plain inputs of every other resource carry neither the key nor its recipient
        if r is not secret:
            assert key.identity not in repr(r.inputs)


# -- fleet render, the bootstrap plan, the provision step (kustomize replaced by the rendered objects) --


@pytest.fixture
def sops_repo(tmp_path: Path, key: sops.AgeKey, monkeypatch: pytest.MonkeyPatch) -> Path:
    from fleet.registry import ClusterSpec, add_cluster
    from tests.helpers import commit_file, new_fleet_repo

    monkeypatch.setenv("FLEET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FLEET_SOPS_AGE_KEY_FILE", raising=False)
    root = new_fleet_repo(tmp_path)
    add_cluster(root, ClusterSpec(name="eu-1", environment="dev"))
    text = (root / "fleet.yaml").read_text() + f"secrets:\n  sops:\n    ageRecipients: [{key.recipient}]\n"
    commit_file(root, "fleet.yaml", text, "fleet uses sops")
    enc = sops.encrypt_object(_secret(), [key.recipient], encrypted_regex="^(data|stringData)$")

    def fake_render(repo: Any, name: str, rev: str | None = None, **_: Any) -> Any:  # helm=, keys=
        from fleet.rendering.build import Rendered
        from tests.helpers import git

        objs = ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, enc)
        text = yaml.safe_dump_all(list(objs), sort_keys=False)
        return Rendered(name, git(root, "rev-parse", "HEAD").strip(), objs, text, "d" * 64)

    monkeypatch.setattr("fleet.rendering.cluster.render_cluster", fake_render)
    monkeypatch.setattr("bootstrap.services.render_cluster", fake_render)
    return root


def _give_key(tmp_path: Path) -> None:
    (tmp_path / "home" / "secrets").mkdir(parents=True, exist_ok=True)
    (tmp_path / "home" / "secrets" / "sops-age.agekey").write_text(TEST_KEY_FILE.read_text())


def test_render_redacts_unless_decrypt_and_the_key(sops_repo: Path, tmp_path: Path, key: sops.AgeKey,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tests.helpers import run_cli

    code, out, err = run_cli(capsys, "render", "eu-1", "--rev", "HEAD", "--repo", str(sops_repo))
    assert code == 0, err
    assert sops.REDACTED in out and PASSWORD not in out and "ENC[" not in out and key.recipient in out
    code, out, err = run_cli(capsys, "render", "eu-1", "--rev", "HEAD", "--decrypt", "--repo", str(sops_repo))
    assert code == 2 and err.startswith("✗ the fleet uses SOPS but its age key is missing") and PASSWORD not in out
    assert "Traceback" not in err
    _give_key(tmp_path)
    code, out, err = run_cli(capsys, "render", "eu-1", "--rev", "HEAD", "--decrypt", "--repo", str(sops_repo))
    assert code == 0, err
    assert PASSWORD in out and "sops:" not in out and key.identity not in out + err
    outdir = tmp_path / "out"
    code, out, err = run_cli(capsys, "render", "eu-1", "--decrypt", "-o", str(outdir), "--repo", str(sops_repo))
    assert code == 2 and "never writes decrypted secrets to disk" in err and not outdir.exists()


def test_bootstrap_plan_refuses_without_the_key_and_names_the_recipient(sops_repo: Path, tmp_path: Path,
                                                                       key: sops.AgeKey) -> None:
    from bootstrap.pipeline import Resolved
    from bootstrap.services import RealServices
    from fleet.adapters.pulumi_auto import default_settings
    from tests.helpers import git

    svc = RealServices(sops_repo, engine=default_settings())
    resolved = Resolved(git(sops_repo, "rev-parse", "HEAD").strip(), "--to", "x")
    with pytest.raises(SecretsError, match="age key is missing") as e:
        svc.plan("eu-1", resolved, "auto", None)
    assert e.value.exit_code == 2
    assert not (tmp_path / "home" / "pulumi").exists()  # nothing created
    _give_key(tmp_path)
    plan = svc.plan("eu-1", resolved, "auto", None)
    line = next(c for c in plan.creates if "sops-age" in c)
    assert key.recipient in line and key.identity not in repr(plan)


def test_provision_stops_before_the_engine_without_the_key(sops_repo: Path, tmp_path: Path) -> None:
    from fleet import provision as prov
    from fleet.adapters.pulumi_auto import default_settings
    from fleet.output import SilentReporter

    class Program:
        def __call__(self) -> None:
            raise AssertionError("the engine must not run")

    with pytest.raises(SecretsError, match="age key is missing"):
        prov.provision(sops_repo, "eu-1", program=Program(), reporter=SilentReporter(), engine=default_settings())
    assert not (tmp_path / "home" / "pulumi").exists()


# -- a commit whose SOPS MAC does not verify is refused before a pin moves (issue 20) -----------------


def _tampered_configmap(key: sops.AgeKey) -> dict[str, Any]:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "app"},
          "data": {"token": PASSWORD}}
    enc = sops.encrypt_object(cm, [key.recipient], encrypted_regex="^data$")
    enc["metadata"]["name"] = "tampered"  # in clear, covered by the MAC: Flux v1.9.6 applied such a commit
    return enc


def test_require_intact(key: sops.AgeKey) -> None:
    good = sops.encrypt_object(_secret(), [key.recipient], encrypted_regex="^(data|stringData)$")
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}}
    sops.require_intact([plain, good], [key], "commit x")
    sops.require_intact([plain], [], "commit x")  # nothing encrypted: nothing to check, no key needed
    with pytest.raises(SecretsError, match="MAC mismatch") as e:
        sops.require_intact([plain, _tampered_configmap(key)], [key], "commit x")
    assert PASSWORD not in str(e.value) and e.value.exit_code == 2
    with pytest.raises(SecretsError, match="no age key to check their MACs"):
        sops.require_intact([good], [], "commit x")


def test_a_tampered_commit_is_refused_by_the_plan_and_never_pinned(
    sops_repo: Path, tmp_path: Path, key: sops.AgeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bootstrap.pipeline import Resolved
    from bootstrap.services import RealServices
    from fleet.adapters.pulumi_auto import default_settings
    from fleet.output import SilentReporter
    from fleet.rendering.build import Rendered
    from tests.helpers import git

    sha = git(sops_repo, "rev-parse", "HEAD").strip()
    bad = _tampered_configmap(key)

    def tampered_render(repo: Any, name: str, rev: str | None = None) -> Any:
        return Rendered(name, sha, (bad,), yaml.safe_dump(bad), "d" * 64)

    monkeypatch.setattr("bootstrap.services.render_cluster", tampered_render)
    pinned: list[str] = []
    monkeypatch.setattr("bootstrap.services.prov.provision", lambda *a, **k: pinned.append("provision"))
    _give_key(tmp_path)
    svc = RealServices(sops_repo, engine=default_settings())
    with pytest.raises(SecretsError, match="MAC mismatch") as e:
        svc.plan("eu-1", Resolved(sha, "--to", "x"), "auto", None)
    assert PASSWORD not in str(e.value)
    with pytest.raises(SecretsError, match="MAC mismatch"):
        svc.install_operator("eu-1", sha, SilentReporter())  # a rollout's pin step, a resumed bootstrap
    assert pinned == []


def test_a_commit_without_encrypted_objects_needs_no_key_to_be_pinned(sops_repo: Path, key: sops.AgeKey) -> None:
    from fleet.registry import load_registry

    settings = load_registry(sops_repo).settings  # the fleet uses SOPS; FLEET_HOME holds no key
    plain = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}}
    sops.require_intact_commit(settings, sops_repo, [plain], "commit x")
    enc = sops.encrypt_object(_secret(), [key.recipient], encrypted_regex="^(data|stringData)$")
    with pytest.raises(SecretsError, match="age key is missing"):
        sops.require_intact_commit(settings, sops_repo, [plain, enc], "commit x")


def test_provision_pin_refuses_a_tampered_commit_before_the_engine(
    sops_repo: Path, tmp_path: Path, key: sops.AgeKey, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`fleet provision --pin REV` moves the operator's pin too: a commit whose SOPS MACs do not verify is
    refused there (exit 2), as by sync and bootstrap, before the engine runs."""
    from fleet.rendering.build import Rendered
    from tests.helpers import git, run_cli

    sha = git(sops_repo, "rev-parse", "HEAD").strip()
    bad = _tampered_configmap(key)
    monkeypatch.setattr("fleet.rendering.cluster.render_cluster",
                        lambda repo, name, rev=None, **kw: Rendered(name, sha, (bad,), yaml.safe_dump(bad), "d" * 64))
    engine_ran: list[str] = []
    monkeypatch.setattr("fleet.provision.provision", lambda *a, **k: engine_ran.append("up"))
    _give_key(tmp_path)
    code, out, err = run_cli(capsys, "provision", "eu-1", "--pin", sha, "--repo", str(sops_repo))
    assert code == 2 and "MAC mismatch" in err and out == "", err
    assert PASSWORD not in err and engine_ran == []
