"""Real signing keys and signed commits for tests: SSH keys made with ssh-keygen, OpenPGP keys made with
gpg (batch, no passphrase, in a tmp dir), commits signed with ``git commit -S``.

Shared by the unit tests of fleet.verify and the e2e test of Flux verifying commits. git, gpg and
ssh-keygen are system tools, not the toolchain's: :data:`HAVE_TOOLS` says whether this machine has them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

HAVE_TOOLS = all(shutil.which(t) for t in ("git", "gpg", "ssh-keygen"))


@dataclass(frozen=True)
class Keys:
    dir: Path
    ssh_alice: Path  # private key files (their .pub beside them)
    ssh_mallory: Path
    allowed_signers: Path  # alice only
    gnupg: Path  # a keyring holding both OpenPGP secret keys, to sign with
    pgp_alice: str  # fingerprints
    pgp_mallory: str
    alice_asc: Path  # alice's public key, armored


def _run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})})
    return done.stdout


def make_keys(d: Path) -> Keys:
    """Alice's and Mallory's SSH and OpenPGP keys in ``d``; only Alice is allowed (allowed_signers, alice.asc).
    Call :func:`stop_agent` when done (gpg starts an agent for the keyring)."""
    for who in ("alice", "mallory"):
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", d / who)
    signers = d / "allowed_signers"
    signers.write_text(f"# who may sign\nalice@example.com {(d / 'alice.pub').read_text()}")
    home = d / "gnupg"
    home.mkdir(mode=0o700)
    env = {"GNUPGHOME": str(home)}
    fprs = {}
    for who in ("Alice <alice@example.com>", "Mallory <mallory@example.com>"):
        _run("gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", "", "--quick-gen-key",
             who, "ed25519", "sign", "never", env=env)
        out = _run("gpg", "--batch", "--with-colons", "--list-keys", who, env=env)
        fprs[who.split()[0]] = next(ln.split(":")[9] for ln in out.splitlines() if ln.startswith("fpr:"))
    asc = d / "alice.asc"
    asc.write_text(_run("gpg", "--batch", "--armor", "--export", fprs["Alice"], env=env))
    return Keys(d, d / "alice", d / "mallory", signers, home, fprs["Alice"], fprs["Mallory"], asc)


def stop_agent(keys: Keys) -> None:
    subprocess.run(["gpgconf", "--homedir", str(keys.gnupg), "--kill", "all"], capture_output=True, check=False)


def commit(repo: Path, keys: Keys, how: str, message: str, files: dict[str, str] | None = None) -> str:
    """A commit on HEAD: ``how`` is unsigned, ssh-alice, ssh-mallory, pgp-alice or pgp-mallory."""
    for name, text in (files or {}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
        _run("git", "-C", repo, "add", name)
    sign: list[str] = []
    if how.startswith("ssh-"):
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={keys.dir / how[4:]}"]
    elif how.startswith("pgp-"):
        sign = ["-c", "gpg.format=openpgp", "-c",
                f"user.signingkey={keys.pgp_alice if how == 'pgp-alice' else keys.pgp_mallory}"]
    args = [*sign, "commit", "-q", "--allow-empty", "-m", message, *(["-S"] if sign else [])]
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GNUPGHOME": str(keys.gnupg)})
    return _run("git", "-C", repo, "rev-parse", "HEAD").strip()


def require_signatures(repo: Path, keys: Keys, how: str = "ssh-alice", **verify: str) -> str:
    """fleet.yaml gains ``verify:`` (keys outside the repo by default), committed as ``how``."""
    fields = verify or {"allowedSigners": str(keys.allowed_signers), "publicKeys": str(keys.alice_asc)}
    text = (repo / "fleet.yaml").read_text() + "verify:\n  mode: head\n" + "".join(
        f"  {k}: {v}\n" for k, v in fields.items())
    return commit(repo, keys, how, "require signed commits", {"fleet.yaml": text})
