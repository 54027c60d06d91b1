"""Signed commits (fleet.yaml ``verify:``): real keys made with ssh-keygen and gpg, real signed commits, and
what each entry point does with them: ``sync``, ``bootstrap``, ``rollout`` and ``good --set`` refuse a commit
that does not verify (unsigned, unknown key, bad signature) with exit 2, one line, nothing written.

git, gpg and ssh-keygen are system tools, not the toolchain's; a machine without them skips these tests.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.errors import ConfigError, UnverifiedCommit
from fleet.verify import flux_keys, policy, require, ssh_keys
from tests.helpers import git, git_state, new_fleet_repo, run_cli
from tests.signing import HAVE_TOOLS, Keys, commit, make_keys, require_signatures, stop_agent

pytestmark = pytest.mark.skipif(not HAVE_TOOLS, reason="needs git, gpg and ssh-keygen")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    made = make_keys(tmp_path_factory.mktemp("keys"))
    yield made
    stop_agent(made)


def tampered(repo: Path, sha: str) -> str:
    """``sha`` with its message changed and its signature kept: a commit whose signature does not match."""
    body = git(repo, "cat-file", "commit", sha)
    assert "-----BEGIN" in body
    changed = body.replace("\n\n", "\n\nreally: ", 1) if body.count("\n\n") else body + "x"
    done = subprocess.run(["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
                          input=changed, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, keys: Keys) -> Path:
    root = new_fleet_repo(tmp_path, clusters={"eu-1": "prod"})
    require_signatures(root, keys)
    return root


# ---- the verdicts ----------------------------------------------------------------------------


@pytest.mark.parametrize("how, signer, key", [
    ("ssh-alice", "alice@example.com", "SHA256:"),
    ("pgp-alice", "Alice <alice@example.com>", ""),
])
def test_a_commit_signed_by_an_allowed_key_verifies_naming_signer_and_key(
    repo: Path, keys: Keys, how: str, signer: str, key: str
) -> None:
    sha = commit(repo, keys, how, "signed")
    v = require(repo, sha)
    assert v is not None and v.revision == sha and v.signer == signer
    assert v.key.startswith(key or keys.pgp_alice)
    assert v.describe().startswith(f"commit {sha[:12]} is signed by {signer} (")


@pytest.mark.parametrize("how, reason, words", [
    ("unsigned", "unsigned", "is not signed"),
    ("ssh-mallory", "unknown-key", "is signed by an unknown key (SSH key SHA256:"),
    ("pgp-mallory", "unknown-key", "is signed by an unknown key (OpenPGP key"),
])
def test_unsigned_and_unknown_keys_are_refused_naming_the_commit_and_why(
    repo: Path, keys: Keys, how: str, reason: str, words: str
) -> None:
    sha = commit(repo, keys, how, "not trusted")
    with pytest.raises(UnverifiedCommit) as e:
        require(repo, sha)
    assert e.value.reason == reason and e.value.exit_code == 2
    assert e.value.message.startswith(f"commit {sha[:12]} {words}"), e.value.message


@pytest.mark.parametrize("how, kind", [("ssh-alice", "SSH"), ("pgp-alice", "OpenPGP")])
def test_a_tampered_commit_has_a_bad_signature(repo: Path, keys: Keys, how: str, kind: str) -> None:
    bad = tampered(repo, commit(repo, keys, how, "signed, then altered"))
    with pytest.raises(UnverifiedCommit) as e:
        require(repo, bad)
    assert e.value.reason == "bad-signature"
    assert e.value.message.startswith(f"commit {bad[:12]} has a bad signature ({kind}")


def test_only_the_configured_kind_of_key_counts(tmp_path: Path, keys: Keys) -> None:
    """SSH keys only: an OpenPGP signature by alice is an unknown key, and the other way round."""
    ssh_only = new_fleet_repo(tmp_path / "a")
    require_signatures(ssh_only, keys, allowedSigners=str(keys.allowed_signers))
    with pytest.raises(UnverifiedCommit, match="unknown key"):
        require(ssh_only, commit(ssh_only, keys, "pgp-alice", "pgp"))
    pgp_only = new_fleet_repo(tmp_path / "b")
    require_signatures(pgp_only, keys, publicKeys=str(keys.dir))  # a directory of *.asc
    with pytest.raises(UnverifiedCommit, match="unknown key"):
        require(pgp_only, commit(pgp_only, keys, "ssh-alice", "ssh"))
    assert require(pgp_only, commit(pgp_only, keys, "pgp-alice", "pgp")) is not None


def test_without_verify_nothing_is_checked(tmp_path: Path, keys: Keys) -> None:
    root = new_fleet_repo(tmp_path)
    assert policy(root) is None and flux_keys(root) == {}
    assert require(root, commit(root, keys, "unsigned", "x")) is None


def test_the_users_keyring_and_git_config_are_never_used(
    repo: Path, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mallory's key in the user's GNUPGHOME (it signs with it) and in git's own allowedSignersFile does not
    make her commits verify: fleet's own keyring and allowed signers only."""
    pgp = commit(repo, keys, "pgp-mallory", "mallory, pgp")
    ssh = commit(repo, keys, "ssh-mallory", "mallory, ssh")
    mine = keys.dir / "users-allowed-signers"
    mine.write_text(f"mallory@example.com {(keys.dir / 'mallory.pub').read_text()}")
    git(repo, "config", "gpg.ssh.allowedSignersFile", str(mine))
    monkeypatch.setenv("GNUPGHOME", str(keys.gnupg))
    for sha in (pgp, ssh):
        with pytest.raises(UnverifiedCommit, match="unknown key"):
            require(repo, sha)


# ---- the trust decision: a commit cannot vouch for itself -------------------------------------


def test_a_revision_that_turns_verification_off_is_still_verified(repo: Path, keys: Keys) -> None:
    text = (repo / "fleet.yaml").read_text().replace("mode: head", "mode: none")
    off = commit(repo, keys, "unsigned", "stop verifying", {"fleet.yaml": text})
    git(repo, "checkout", "-q", "HEAD~1", "--", "fleet.yaml")  # the checkout still requires signatures
    with pytest.raises(UnverifiedCommit, match="is not signed"):
        require(repo, off)


def test_keys_in_the_repo_come_from_the_working_tree_not_from_the_commit(tmp_path: Path, keys: Keys) -> None:
    root = new_fleet_repo(tmp_path)
    commit(root, keys, "ssh-alice", "allowed signers",
           {"keys/allowed_signers": keys.allowed_signers.read_text()})
    require_signatures(root, keys, allowedSigners="keys/allowed_signers")
    # a commit that adds mallory's key to the allowed signers, signed by mallory
    mallory = f"mallory@example.com {(keys.dir / 'mallory.pub').read_text()}"
    sha = commit(root, keys, "ssh-mallory", "trust me",
                 {"keys/allowed_signers": keys.allowed_signers.read_text() + mallory})
    git(root, "reset", "-q", "--hard", "HEAD~1")  # the checkout fleet runs in: alice only
    with pytest.raises(UnverifiedCommit, match="unknown key"):
        require(root, sha)


# ---- the policy: bad paths and files name fleet.yaml, the line and the key ----------------------


@pytest.mark.parametrize("verify, words", [
    ("verify:\n  mode: head\n", "fleet.yaml:{1}: verify: mode head needs allowedSigners"),
    ("verify:\n  mode: head\n  allowedSigners: ../outside\n",
     'fleet.yaml:{3}: verify.allowedSigners: "../outside" must stay inside'),
    ("verify:\n  mode: head\n  allowedSigners: missing/file\n", "fleet.yaml:{3}: verify.allowedSigners: cannot read"),
    ("verify:\n  mode: head\n  publicKeys: fleet.yaml\n", "fleet.yaml:{3}: verify.publicKeys: "),
    ("verify:\n  mode: always\n  publicKeys: k.asc\n", 'fleet.yaml:{2}: verify.mode: "always" is not allowed'),
    ("verify:\n  mode: head\n  allowedSigners: fleet.yaml\n", "fleet.yaml:{3}: verify.allowedSigners: "),
])
def test_bad_verify_settings_name_file_line_and_key(tmp_path: Path, verify: str, words: str) -> None:
    root = new_fleet_repo(tmp_path)
    text = (root / "fleet.yaml").read_text()
    (root / "fleet.yaml").write_text(text + verify)
    n = text.count("\n")  # verify: is on the next line
    with pytest.raises(ConfigError) as e:
        require(root, "HEAD")
    assert e.value.message.startswith(words.replace("{1}", str(n + 1)).replace("{2}", str(n + 2))
                                      .replace("{3}", str(n + 3))), e.value.message


@pytest.mark.parametrize("options, words", [
    ("cert-authority", "line 2: cert-authority: Flux verifies signatures by the key itself"),
    ('valid-before="20300101"', "line 2: valid-before: Flux does not check a key's validity period"),
    ('valid-after="20200101"', "line 2: valid-after: "),
    ('namespaces="file"', 'line 2: namespaces="file": Flux accepts the key for git signatures anyway'),
    ('cert-authority,namespaces="git"', "line 2: cert-authority: "),
])
def test_allowed_signers_options_flux_cannot_honour_are_refused(
    tmp_path: Path, keys: Keys, options: str, words: str
) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"# who may sign\nalice@example.com {options} {(keys.dir / 'alice.pub').read_text()}")
    root = new_fleet_repo(tmp_path)
    (root / "fleet.yaml").write_text((root / "fleet.yaml").read_text()
                                     + f"verify:\n  mode: head\n  allowedSigners: {signers}\n")
    with pytest.raises(ConfigError) as e:
        policy(root)
    assert f"verify.allowedSigners: {signers} {words}" in e.value.message, e.value.message
    assert "the operator (Flux) would not verify the same way" in e.value.message


def test_a_namespaces_option_that_lets_git_sign_is_what_flux_does(tmp_path: Path, keys: Keys) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'alice@example.com namespaces="file,git" {(keys.dir / "alice.pub").read_text()}')
    root = new_fleet_repo(tmp_path)
    (root / "fleet.yaml").write_text((root / "fleet.yaml").read_text()
                                     + f"verify:\n  mode: head\n  allowedSigners: {signers}\n")
    sha = commit(root, keys, "ssh-alice", "signed")
    assert require(root, sha) is not None


def test_flux_spelling_of_the_mode_is_accepted(tmp_path: Path, keys: Keys) -> None:
    root = new_fleet_repo(tmp_path)
    (root / "fleet.yaml").write_text((root / "fleet.yaml").read_text()
                                     + f"verify:\n  mode: HEAD\n  publicKeys: {keys.alice_asc}\n")
    pol = policy(root)
    assert pol is not None and pol.mode == "head"


def test_operator_keys_are_flux_secret_data(repo: Path, keys: Keys) -> None:
    data = flux_keys(repo)
    assert set(data) == {"allowed-signers.sshpub", "alice.asc"}
    assert data["allowed-signers.sshpub"] == " ".join((keys.dir / "alice.pub").read_text().split()[:2]) + "\n"
    assert data["alice.asc"].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert ssh_keys('a@x,b@y namespaces="git" ssh-ed25519 AAAA= c\n# ssh-rsa BBBB\n\n') == ["ssh-ed25519 AAAA="]


# ---- each entry point ------------------------------------------------------------------------


def _refused(capsys: pytest.CaptureFixture[str], repo: Path, sha: str, *args: str) -> str:
    before = git_state(repo)
    code, out, err = run_cli(capsys, *args, "--repo", str(repo))
    assert code == 2, (code, out, err)
    assert out == ""
    failed = [ln for ln in err.splitlines() if ln.startswith("✗")]
    assert len(failed) == 1 and "Traceback" not in err, err
    first = failed[0]
    assert first.startswith("✗ commit " + sha[:12]), err
    assert git_state(repo) == before
    return first


@pytest.mark.parametrize("how, words", [("unsigned", "is not signed"), ("ssh-mallory", "unknown key"),
                                        ("pgp-mallory", "unknown key")])
def test_good_set_refuses_a_commit_that_does_not_verify(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys, how: str, words: str
) -> None:
    sha = commit(repo, keys, how, "candidate")
    assert words in _refused(capsys, repo, sha, "good", "eu-1", "--set", sha)
    assert git(repo, "for-each-ref", "refs/fleet") == "" and git(repo, "notes", "--ref=fleet", "list") == ""


def test_good_set_records_a_signed_commit(capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys) -> None:
    sha = commit(repo, keys, "pgp-alice", "candidate")
    code, _, err = run_cli(capsys, "good", "eu-1", "--set", sha, "--repo", str(repo))
    assert code == 0, err
    assert git(repo, "rev-parse", "refs/fleet/good/eu-1").strip() == sha
    bad = tampered(repo, sha)
    _refused(capsys, repo, bad, "good", "eu-1", "--set", bad)


def test_gate_mark_good_path_refuses_too(repo: Path, keys: Keys) -> None:
    """Every record of a last good revision goes through record_good (gate --mark-good, bootstrap, rollout)."""
    from fleet.good import record_good

    sha = commit(repo, keys, "unsigned", "x")
    with pytest.raises(UnverifiedCommit):
        record_good(repo, "eu-1", sha, reason="gates passed")


@pytest.mark.parametrize("dry", [(), ("--dry-run",)])
def test_sync_refuses_before_reaching_the_cluster(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys, dry: tuple[str, ...]
) -> None:
    sha = commit(repo, keys, "ssh-mallory", "x")
    assert "unknown key" in _refused(capsys, repo, sha, "sync", "eu-1", *dry)
    unsigned = commit(repo, keys, "unsigned", "y")
    _refused(capsys, repo, unsigned, "sync", "eu-1", "--rev", unsigned, "--sync", "direct", *dry)


def test_sync_of_a_signed_commit_says_who_signed_it(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys
) -> None:
    sha = commit(repo, keys, "ssh-alice", "x")
    code, _, err = run_cli(capsys, "sync", "eu-1", "--dry-run", "--repo", str(repo))
    # past verification; eu-1 was never provisioned, so there is no kubeconfig to reach it with
    assert f"✔ commit {sha[:12]} is signed by alice@example.com (SSH key SHA256:" in err
    assert code == 2 and "kubeconfig" in err


@pytest.mark.parametrize("dry", [(), ("--dry-run",)])
def test_bootstrap_refuses_at_resolve_before_anything_is_created(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys, fleet_home: Path, dry: tuple[str, ...]
) -> None:
    sha = commit(repo, keys, "unsigned", "x")
    _refused(capsys, repo, sha, "bootstrap", "eu-1", "--to", sha, *dry)
    assert not list(fleet_home.glob("bootstrap/eu-1/*.json"))  # no journal, no report
    assert not (fleet_home / "pulumi").exists() and not (fleet_home / "kubeconfigs").exists()


def test_bootstrap_refuses_a_last_good_that_no_longer_verifies(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys
) -> None:
    """Recorded before signatures were required (or with keys since removed): refused at resolve."""
    sha = commit(repo, keys, "unsigned", "old")
    git(repo, "update-ref", "refs/fleet/good/eu-1", sha)
    assert "is not signed" in _refused(capsys, repo, sha, "bootstrap", "eu-1", "--dry-run")


def test_bootstrap_resolve_notes_who_signed(repo: Path, keys: Keys) -> None:
    from bootstrap.services import RealServices
    from fleet.adapters.pulumi_auto import default_settings

    sha = commit(repo, keys, "pgp-alice", "x")
    s = RealServices(repo, engine=default_settings())
    assert s.resolve("eu-1", sha).revision == sha
    assert s.verified[sha].startswith(f"commit {sha[:12]} is signed by Alice <alice@example.com> (OpenPGP key ")


@pytest.mark.parametrize("dry", [(), ("--dry-run",)])
def test_rollout_refuses_before_any_wave(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys, fleet_home: Path, dry: tuple[str, ...]
) -> None:
    sha = commit(repo, keys, "ssh-mallory", "x")
    assert "unknown key" in _refused(capsys, repo, sha, "rollout", *dry)
    bad = tampered(repo, commit(repo, keys, "ssh-alice", "y"))
    assert "bad signature" in _refused(capsys, repo, bad, "rollout", "--rev", bad, *dry)
    assert not (fleet_home / "rollouts").exists() or not any((fleet_home / "rollouts").rglob("*.json"))


def test_rollout_dry_run_of_a_signed_commit_plans(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys
) -> None:
    sha = commit(repo, keys, "ssh-alice", "x")
    code, out, err = run_cli(capsys, "rollout", "--dry-run", "--repo", str(repo))
    assert code == 0, err
    assert sha[:12] in out + err


# ---- the trust root lies outside the commit being judged (issue 20) ---------------------------------


def _mode(repo: Path, mode: str) -> dict[str, str]:
    return {"fleet.yaml": (repo / "fleet.yaml").read_text().replace("mode: head", f"mode: {mode}")}


def test_an_unsigned_commit_that_turns_verification_off_is_refused_once_checked_out(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys, fleet_home: Path
) -> None:
    """Before: the checkout's fleet.yaml was the policy, so the very commit that said `mode: none` was
    honoured by `good --set` and `bootstrap --dry-run`."""
    off = commit(repo, keys, "unsigned", "stop verifying", _mode(repo, "none"))
    assert "is not signed" in _refused(capsys, repo, off, "good", "eu-1", "--set", "HEAD")
    _refused(capsys, repo, off, "bootstrap", "eu-1", "--to", "HEAD", "--dry-run")
    # the untrusted change is not in force for what follows either, though the tree still says none
    signed = commit(repo, keys, "ssh-alice", "a later signed change")
    assert require(repo, signed) is not None
    unsigned = commit(repo, keys, "unsigned", "and an unsigned one")
    with pytest.raises(UnverifiedCommit, match="is not signed"):
        require(repo, unsigned)


def test_a_policy_change_signed_by_a_trusted_key_is_in_force(tmp_path: Path, keys: Keys) -> None:
    root = new_fleet_repo(tmp_path)
    mallory = f"mallory@example.com {(keys.dir / 'mallory.pub').read_text()}"
    commit(root, keys, "ssh-alice", "keys", {"keys/allowed_signers": keys.allowed_signers.read_text()})
    require_signatures(root, keys, allowedSigners="keys/allowed_signers")
    # mallory adds herself: not signed by a trusted key, so not in force
    commit(root, keys, "ssh-mallory", "trust me", {"keys/allowed_signers": keys.allowed_signers.read_text() + mallory})
    with pytest.raises(UnverifiedCommit, match="unknown key"):
        require(root, commit(root, keys, "ssh-mallory", "as mallory"))
    # alice adds her: signed by a key the policy trusted, so in force from that commit on
    commit(root, keys, "ssh-alice", "welcome mallory",
           {"keys/allowed_signers": keys.allowed_signers.read_text() + mallory + "\n"})
    assert require(root, commit(root, keys, "ssh-mallory", "as mallory, again")) is not None


def test_the_users_own_policy_file_decides_alone(tmp_path: Path, keys: Keys, fleet_home: Path) -> None:
    root = new_fleet_repo(tmp_path)
    unsigned = commit(root, keys, "unsigned", "x")
    assert require(root, unsigned) is None
    (fleet_home / "verify.yaml").write_text(f"mode: head\nallowedSigners: {keys.allowed_signers}\n")
    with pytest.raises(UnverifiedCommit, match="is not signed"):
        require(root, unsigned)
    assert require(root, commit(root, keys, "ssh-alice", "y")) is not None
    (fleet_home / "verify.yaml").write_text("mode: head\nallowedSigners: keys/allowed_signers\n")
    with pytest.raises(ConfigError, match="must be a path outside the repository"):
        require(root, unsigned)


def test_pull_warns_of_last_good_refs_the_policy_would_refuse(
    capsys: pytest.CaptureFixture[str], repo: Path, keys: Keys, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    unsigned = commit(repo, keys, "unsigned", "not signed")
    git(repo, "push", "-q", "origin", "HEAD:refs/heads/main", f"{unsigned}:refs/fleet/good/eu-1")
    git(repo, "reset", "-q", "--hard", "HEAD~1")
    code, _out, err = run_cli(capsys, "pull", "--repo", str(repo))
    assert code == 0, err
    assert f'⚠ the last good of "eu-1" ({unsigned[:12]}) would be refused by the signature policy: commit ' in err
