"""Signed commits: the commit fleet is about to act on must carry a valid signature by an allowed key.

``fleet.yaml`` says so (``verify: {mode: head, allowedSigners: FILE, publicKeys: FILE|DIR}``); then
``fleet sync``, ``fleet bootstrap``, ``fleet rollout`` and ``fleet good --set`` (every record of a last
good revision) call :func:`require` before anything is applied, created or written, and the operator's
GitRepository verifies the same keys (:func:`flux_keys`, ``spec.verify`` mode HEAD).

**The trust decision.** A commit must not vouch for itself, so neither the policy nor the keys are read
from the commit being verified:

- the policy is the ``verify:`` of ``fleet.yaml`` in the **working tree** (the checkout fleet runs in),
  so ``--rev X`` cannot turn verification off or widen it by what X holds;
- a key path outside the repo (``/...`` or ``~/...``) is read from disk: the strongest choice, since
  nothing pushed to the repo can change it (as Flux's Secret, which lives in the cluster);
- a key path relative to the repo root is read from the **working tree**, never from the revision. What
  the checkout holds is trusted as it is: a ``git pull`` brings new keys as well as new commits (docs/
  security.md says what that means).

Verification is ``git verify-commit`` (through :meth:`fleet.adapters.git.GitRepo.verify_commit`) with
``gpg.ssh.allowedSignersFile`` for SSH signatures and a private, temporary GNUPGHOME holding only the
configured OpenPGP keys for OpenPGP signatures: never the user's keyring or allowed signers.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.adapters import proc
from fleet.errors import ConfigError, FleetError, ToolMissing, UnverifiedCommit
from fleet.registry.load import FLEET_FILE, open_repo, parse_settings, worktree_root
from fleet.registry.model import VerifySettings, shown
from fleet.registry.yamlpos import load_yaml

if TYPE_CHECKING:  # GitPython loads when a commit is verified, not to learn that none need be
    from fleet.adapters.git import GitRepo, SignatureCheck

__all__ = ["Policy", "Verification", "flux_gaps", "flux_keys", "policy", "require", "verify"]

_SSH_KEY_TYPE = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)"
                           r"|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)(-cert-v01@openssh\.com)?$")
_PGP_BLOCK = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
_SECRET_KEY = re.compile(r"[^-._a-zA-Z0-9]")


@dataclass(frozen=True)
class Policy:
    """What the working tree's fleet.yaml requires, with its key files found and read."""

    mode: str
    allowed_signers: Path | None  # an SSH allowed-signers file
    allowed_signers_text: str
    public_keys: tuple[tuple[Path, str], ...]  # (file, ASCII-armored OpenPGP public keys)

    @property
    def where(self) -> str:
        """Where the keys are, for a message."""
        parts = ([f"allowed signers {self.allowed_signers}"] if self.allowed_signers else []) + (
            [f"OpenPGP keys {', '.join(str(p) for p, _ in self.public_keys)}"] if self.public_keys else [])
        return " and ".join(parts)

    @property
    def digest(self) -> str:
        h = hashlib.sha256(self.allowed_signers_text.encode())
        for p, text in self.public_keys:
            h.update(f"\0{p}\0{text}".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Verification:
    """A commit that verified: who signed it, with which key."""

    revision: str
    format: str  # "ssh" | "openpgp"
    signer: str  # the SSH principal, or the OpenPGP user id
    key: str  # the SSH key's SHA256 fingerprint, or the OpenPGP signing key's fingerprint

    def describe(self) -> str:
        kind = "SSH" if self.format == "ssh" else "OpenPGP"
        who = f"{self.signer} " if self.signer else ""
        return f"commit {self.revision[:12]} is signed by {who}({kind} key {self.key})"


# ---- the policy, from the working tree ---------------------------------------------------------


def _line(text: str, key: str) -> int | None:
    try:
        _, pos = load_yaml(text, FLEET_FILE)
    except ConfigError:
        return None
    return pos.line_of(("verify", key))


def _where(g: GitRepo, value: str) -> Path:
    return Path(value).expanduser() if value.startswith(("/", "~")) else g.root / value


def _read(path: Path, text: str, key: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", file=FLEET_FILE, line=_line(text, key),
                          key=f"verify.{key}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", file=FLEET_FILE, line=_line(text, key),
                          key=f"verify.{key}", hint="keys in the repo are read from the working tree: "
                          "commit and check them out; or point to a path outside the repo") from None


def ssh_keys(allowed_signers: str) -> list[str]:
    """The public keys of an allowed-signers file, as authorized_keys lines (``type base64``): what Flux's
    ``.sshpub`` Secret keys hold. Lines that are comments, blank or hold no key are skipped."""
    out: list[str] = []
    for line in allowed_signers.splitlines():
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        for i, tok in enumerate(tokens[:-1]):
            if _SSH_KEY_TYPE.match(tok) and re.fullmatch(r"[A-Za-z0-9+/]+=*", tokens[i + 1]):
                out.append(f"{tok} {tokens[i + 1]}")
                break
    return out


# What git's allowed-signers options do that Flux's source-controller (v1.9.6) cannot: it verifies an SSH
# signature against plain authorized_keys lines, so a line restricted by one of these would be accepted by
# the operator where fleet refuses it (or the reverse, for cert-authority). `namespaces` is fine when it
# lets "git" sign (both check that namespace).
_FLUX_CANNOT = {
    "cert-authority": "Flux verifies signatures by the key itself, not certificates it issued",
    "valid-after": "Flux does not check a key's validity period",
    "valid-before": "Flux does not check a key's validity period",
}
_OPTION = re.compile(r'([A-Za-z-]+)(?:="([^"]*)")?(?:,|$)')


def flux_gaps(allowed_signers: str) -> list[str]:
    """The options of an allowed-signers file that Flux's source-controller cannot honour, one line each
    (``line N: option: why``): with them, fleet and the operator would not verify the same way."""
    out: list[str] = []
    for n, line in enumerate(allowed_signers.splitlines(), 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        at = next((i for i, t in enumerate(tokens[1:], 1) if _SSH_KEY_TYPE.match(t)), len(tokens))
        for name, value in _OPTION.findall(",".join(tokens[1:at])):
            name = name.lower()
            if name in _FLUX_CANNOT:
                out.append(f"line {n}: {name}: {_FLUX_CANNOT[name]}")
            elif name == "namespaces" and "git" not in [v.strip() for v in value.split(",")]:
                out.append(f'line {n}: namespaces="{value}": Flux accepts the key for git signatures anyway')
    return out


def policy(repo: GitRepo | str | Path) -> Policy | None:
    """The verification the working tree's fleet.yaml requires, or None (``mode: none``). Bad paths and
    key files are ConfigErrors naming fleet.yaml, the line and the key."""
    g = open_repo(repo)
    path = g.root / FLEET_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        parse_settings(None)  # not a fleet repo: raises
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read: {getattr(e, 'strerror', None) or e}", file=FLEET_FILE) from None
    settings: VerifySettings = parse_settings(text).verify
    if settings.mode == "none":
        return None
    signers: Path | None = None
    signers_text = ""
    if settings.allowedSigners is not None:
        signers = _where(g, settings.allowedSigners)
        signers_text = _read(signers, text, "allowedSigners")
        if not ssh_keys(signers_text):
            raise ConfigError(f"{signers} holds no SSH public key (lines: PRINCIPALS [OPTIONS] KEYTYPE KEY)",
                              file=FLEET_FILE, line=_line(text, "allowedSigners"), key="verify.allowedSigners")
        if gaps := flux_gaps(signers_text):
            raise ConfigError(f"{signers} {gaps[0]}; the operator (Flux) would not verify the same way",
                              file=FLEET_FILE, line=_line(text, "allowedSigners"), key="verify.allowedSigners",
                              hint="list the signing keys themselves, without cert-authority, valid-after, "
                              "valid-before or a namespaces option that leaves out git")
    keys: list[tuple[Path, str]] = []
    if settings.publicKeys is not None:
        where = _where(g, settings.publicKeys)
        files = sorted(p for p in where.glob("*.asc") if p.is_file()) if where.is_dir() else [where]
        if not files:
            raise ConfigError(f"{where} holds no *.asc file (ASCII-armored OpenPGP public keys)",
                              file=FLEET_FILE, line=_line(text, "publicKeys"), key="verify.publicKeys")
        for f in files:
            body = _read(f, text, "publicKeys")
            if _PGP_BLOCK not in body:
                raise ConfigError(f"{f} is not an ASCII-armored OpenPGP public key ({_PGP_BLOCK})",
                                  file=FLEET_FILE, line=_line(text, "publicKeys"), key="verify.publicKeys",
                                  hint="export it with `gpg --armor --export KEYID > FILE.asc`")
            keys.append((f, body))
    return Policy(settings.mode, signers, signers_text, tuple(keys))


# ---- verifying -------------------------------------------------------------------------------

_memo: dict[tuple[str, str, str], Verification] = {}
_memo_lock = threading.Lock()


def _check(g: GitRepo, revision: str, pol: Policy) -> SignatureCheck:
    with tempfile.TemporaryDirectory(prefix="fleet-verify-") as tmp:
        home = Path(tmp) / "gnupg"
        home.mkdir(mode=0o700)
        signers = Path(tmp) / "allowed_signers"
        signers.write_text(pol.allowed_signers_text)  # empty when none: SSH signatures are then unknown keys
        try:
            if pol.public_keys:
                done = proc.run(["gpg", "--batch", "--quiet", "--no-autostart", "--homedir", home, "--import",
                                 *(p for p, _ in pol.public_keys)], env={"GNUPGHOME": str(home)}, timeout=60)
                if not done.ok:
                    tail = " | ".join(done.stderr.strip().splitlines()[-2:])
                    raise ConfigError(f"gpg cannot import the OpenPGP keys: {shown(tail, 200)}", file=FLEET_FILE,
                                      key="verify.publicKeys")
            return g.verify_commit(revision, allowed_signers=signers, gnupghome=home)
        except ToolMissing as e:
            raise ToolMissing(e.message.replace("program", "signature verification needs", 1),
                              hint="install git, gpg (OpenPGP keys) and ssh-keygen (SSH keys)") from e
        finally:
            if (home / "S.gpg-agent").exists() or list(home.glob("S.*")):  # nothing should have started one
                proc.run(["gpgconf", "--homedir", home, "--kill", "all"], env={"GNUPGHOME": str(home)}, timeout=30)


def _refusal(c: SignatureCheck, pol: Policy) -> UnverifiedCommit:
    short = c.revision[:12]
    kind = {"ssh": "SSH", "openpgp": "OpenPGP", "x509": "X.509"}.get(c.format, c.format)
    key = f"{kind} key {c.fingerprint}" if c.fingerprint else kind
    hint = f"sign it with an allowed key (git commit -S), or choose a revision that is; allowed: {pol.where}"
    if c.status == "N" or not c.format:
        return UnverifiedCommit(c.revision, "unsigned", f"commit {short} is not signed; fleet.yaml requires "
                                "signed commits (verify.mode head)", hint=hint)
    if c.format == "x509":
        return UnverifiedCommit(c.revision, "unsupported", f"commit {short} is signed with X.509 (gpgsm), which "
                                "fleet does not verify; sign with SSH or OpenPGP", hint=hint)
    if c.status == "B":
        return UnverifiedCommit(c.revision, "bad-signature", f"commit {short} has a bad signature ({key}): the "
                                "commit is not what was signed", hint="the commit or its signature was altered")
    if c.status in ("E", "U"):  # U without ok: an SSH key no principal of allowed signers holds
        return UnverifiedCommit(c.revision, "unknown-key", f"commit {short} is signed by an unknown key ({key}); "
                                "it is not among the allowed keys", hint=hint)
    why = {"X": "an expired signature", "Y": f"an expired key ({key})", "R": f"a revoked key ({key})"}.get(c.status)
    if why:
        return UnverifiedCommit(c.revision, "expired" if c.status in "XY" else "revoked",
                                f"commit {short} is signed with {why}", hint=hint)
    return UnverifiedCommit(c.revision, "bad-signature", f"commit {short} does not verify ({key}): "
                            f"{c.detail or 'git verify-commit failed'}", hint=hint)


def verify(repo: GitRepo | str | Path, revision: str, pol: Policy) -> Verification:
    """``revision``'s signature against ``pol``'s keys: a :class:`Verification`, or :class:`UnverifiedCommit`
    (exit 2) naming the commit and why (unsigned, unknown key, bad signature, expired, revoked)."""
    g = open_repo(repo)
    sha = g.resolve(revision)
    memo = (str(g.root), sha, pol.digest)
    with _memo_lock:
        if memo in _memo:
            return _memo[memo]
    c = _check(g, sha, pol)
    if not c.ok:
        raise _refusal(c, pol)
    done = Verification(sha, c.format, c.signer, c.fingerprint)
    with _memo_lock:
        _memo[memo] = done
    return done


def _may_require(root: Path) -> bool:
    """False only when ``root``'s fleet.yaml reads and says ``verify.mode: none`` (what :func:`policy` then
    finds); anything else is left to :func:`policy`, which reads the same file and reports what is wrong."""
    try:
        return parse_settings((root / FLEET_FILE).read_text(encoding="utf-8")).verify.mode != "none"
    except (OSError, UnicodeDecodeError, FleetError):
        return True


def require(repo: GitRepo | str | Path, revision: str) -> Verification | None:
    """Verify ``revision`` when the working tree's fleet.yaml requires signed commits (None when it does
    not). Call it before anything is applied, created or written."""
    if isinstance(repo, (str, Path)) and not _may_require(worktree_root(repo)):
        return None  # read without GitPython: most fleets sign nothing
    g = open_repo(repo)
    pol = policy(g)
    return verify(g, revision, pol) if pol is not None else None


# ---- the operator -----------------------------------------------------------------------------


def flux_keys(repo: GitRepo | str | Path) -> dict[str, str]:
    """The data of the Secret Flux's GitRepository verifies with (``spec.verify.secretRef``): OpenPGP keys
    under ``<name>.asc``, SSH keys (the allowed signers' keys as authorized_keys lines) under
    ``allowed-signers.sshpub``; {} when fleet.yaml requires no signatures. Public keys: no secret."""
    pol = policy(repo)
    if pol is None:
        return {}
    out: dict[str, str] = {}
    if pol.allowed_signers_text:
        out["allowed-signers.sshpub"] = "\n".join(ssh_keys(pol.allowed_signers_text)) + "\n"
    for path, text in pol.public_keys:
        name = _SECRET_KEY.sub("-", path.stem) or "key"
        n, i = f"{name}.asc", 1
        while n in out:
            i += 1
            n = f"{name}-{i}.asc"
        out[n] = text
    return out
