"""Signed commits: the commit fleet is about to act on must carry a valid signature by an allowed key.

``fleet.yaml`` says so (``verify: {mode: head, allowedSigners: FILE, publicKeys: FILE|DIR}``); then
``fleet sync``, ``fleet bootstrap``, ``fleet rollout`` and ``fleet good --set`` (every record of a last
good revision) call :func:`require` before anything is applied, created or written, and the operator's
GitRepository verifies the same keys (:func:`flux_keys`, ``spec.verify`` mode HEAD).

**The trust decision: a commit never vouches for itself.** Which signatures are required comes from, in
order (:func:`policy`):

- the user's own ``$FLEET_HOME/verify.yaml`` (``mode``, ``allowedSigners``, ``publicKeys``, keys outside
  the repo), when it exists: nothing pushed to the repo can change it;
- an uncommitted edit to ``verify:`` in the working tree's fleet.yaml (the user's own, in no commit);
- else the policy history brought into force at HEAD (:func:`trusted_policy`): from none, each commit on
  HEAD's first-parent line that changes fleet.yaml or an in-repo key file brings its ``verify:`` (and the
  key files of its tree) into force only when the policy before it is none, or it verifies under that
  policy: a change to the policy must be signed by a key the previous policy trusted. An unsigned commit
  that says ``mode: none`` (or adds its author's key) is refused, and its change never comes into force.

A key path outside the repo (``/...`` or ``~/...``) is read from disk; one in the repo from the tree of the
commit that brought the policy into force (from the working tree for an uncommitted edit).

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
from fleet.errors import ConfigError, FleetError, NotFound, ToolMissing, UnverifiedCommit
from fleet.registry.load import FLEET_FILE, open_repo, parse_settings, read_worktree, worktree_root
from fleet.registry.model import VerifySettings, shown
from fleet.registry.yamlpos import load_yaml

if TYPE_CHECKING:  # GitPython loads when a commit is verified, not to learn that none need be
    from fleet.adapters.git import GitRepo, SignatureCheck

__all__ = [
    "USER_POLICY",
    "Policy",
    "Verification",
    "flux_gaps",
    "flux_keys",
    "policy",
    "require",
    "trusted_policy",
    "verify",
]

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


class _Keys:
    """Where a policy's key files are read from: a path outside the repo (``/...``, ``~/...``) from disk,
    always; a path in the repo from the working tree (``at`` None: an uncommitted edit of the user's own)
    or from the tree of commit ``at`` (the commit that made the policy, once it was trusted); none at all
    for the user's own policy file, whose keys must be outside the repo (``in_repo`` False)."""

    def __init__(self, g: GitRepo, text: str, file: str, at: str | None, in_repo: bool = True) -> None:
        self.g, self.text, self.file, self.at, self.in_repo = g, text, file, at, in_repo

    def _error(self, message: str, key: str, hint: str | None = None) -> ConfigError:
        return ConfigError(message, file=self.file, line=_line(self.text, key), key=f"verify.{key}", hint=hint)

    def _outside(self, value: str) -> bool:
        return value.startswith(("/", "~"))

    def _label(self, value: str) -> Path:
        return Path(value).expanduser() if self._outside(value) else (
            self.g.root / value if self.at is None else Path(f"{value}@{self.at[:12]}"))

    def read(self, value: str, key: str) -> tuple[Path, str]:
        if not self._outside(value):
            if not self.in_repo:
                raise self._error(f'"{value}" must be a path outside the repository (absolute, or ~/...)', key)
            if self.at is not None:
                text = self.g.read_file(self.at, value)
                if text is None:
                    raise self._error(f"cannot read {value} at {self.at[:12]}: not a file there", key)
                return self._label(value), text
        path = self._label(value)
        return path, _read(path, self.text, key, self.file)

    def asc_files(self, value: str, key: str) -> list[tuple[Path, str]]:
        """``value`` (a file, or a directory of ``*.asc``) as (label, text) pairs."""
        if not self._outside(value) and self.at is not None and self.in_repo:
            entries = self.g.list_dir(self.at, value)
            if entries:
                names = sorted(e.name for e in entries if e.kind == "file" and e.name.endswith(".asc"))
                return [self.read(f"{value.rstrip('/')}/{n}", key) for n in names]
            return [self.read(value, key)]
        if not self._outside(value) and not self.in_repo:
            self.read(value, key)  # raises: the user's policy keeps its keys outside the repo
        where = self._label(value)
        files = sorted(p for p in where.glob("*.asc") if p.is_file()) if where.is_dir() else [where]
        return [(f, _read(f, self.text, key, self.file)) for f in files]


def _read(path: Path, text: str, key: str, file: str = FLEET_FILE) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text", file=file, line=_line(text, key),
                          key=f"verify.{key}") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}", file=file, line=_line(text, key),
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


def _policy_of(settings: VerifySettings, keys: _Keys) -> Policy | None:
    """The policy ``settings`` describe, with its key files found and read through ``keys``."""
    if settings.mode == "none":
        return None
    text, file = keys.text, keys.file
    signers: Path | None = None
    signers_text = ""
    if settings.allowedSigners is not None:
        signers, signers_text = keys.read(settings.allowedSigners, "allowedSigners")
        if not ssh_keys(signers_text):
            raise ConfigError(f"{signers} holds no SSH public key (lines: PRINCIPALS [OPTIONS] KEYTYPE KEY)",
                              file=file, line=_line(text, "allowedSigners"), key="verify.allowedSigners")
        if gaps := flux_gaps(signers_text):
            raise ConfigError(f"{signers} {gaps[0]}; the operator (Flux) would not verify the same way",
                              file=file, line=_line(text, "allowedSigners"), key="verify.allowedSigners",
                              hint="list the signing keys themselves, without cert-authority, valid-after, "
                              "valid-before or a namespaces option that leaves out git")
    found: list[tuple[Path, str]] = []
    if settings.publicKeys is not None:
        files = keys.asc_files(settings.publicKeys, "publicKeys")
        if not files:
            raise ConfigError(f"{settings.publicKeys} holds no *.asc file (ASCII-armored OpenPGP public keys)",
                              file=file, line=_line(text, "publicKeys"), key="verify.publicKeys")
        for f, body in files:
            if _PGP_BLOCK not in body:
                raise ConfigError(f"{f} is not an ASCII-armored OpenPGP public key ({_PGP_BLOCK})",
                                  file=file, line=_line(text, "publicKeys"), key="verify.publicKeys",
                                  hint="export it with `gpg --armor --export KEYID > FILE.asc`")
            found.append((f, body))
    return Policy(settings.mode, signers, signers_text, tuple(found))


USER_POLICY = "verify.yaml"  # in FLEET_HOME: the user's own policy, which no commit can change


def _user_policy(g: GitRepo) -> tuple[bool, Policy | None]:
    """(True, the policy) when ``$FLEET_HOME/verify.yaml`` exists: ``verify:``'s fields (``mode``,
    ``allowedSigners``, ``publicKeys``, keys outside the repo) as the user's own configuration, which
    then decides alone; (False, None) when there is none."""
    from fleet.paths import fleet_home
    from fleet.registry.load import describe_validation_error

    path = fleet_home() / USER_POLICY
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False, None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read: {getattr(e, 'strerror', None) or e}", file=str(path)) from None
    from pydantic import ValidationError

    data, pos = load_yaml(text, str(path))
    try:
        settings = VerifySettings.model_validate(data or {})
    except ValidationError as e:
        raise describe_validation_error(e, VerifySettings, pos, str(path)) from e
    wrapped = "verify:\n" + "".join(f"  {ln}\n" for ln in text.splitlines())  # _line() looks under verify:
    return True, _policy_of(settings, _Keys(g, wrapped, str(path), None, in_repo=False))


def _worktree_edit(g: GitRepo, head: str | None) -> tuple[VerifySettings, str] | None:
    """The working tree's ``verify:`` and fleet.yaml's text when they differ from HEAD's (``head``: its
    commit; an uncommitted edit: the user's own, in no commit), else None."""
    text = read_worktree(g.root, FLEET_FILE)
    if text is None:
        parse_settings(None)  # not a fleet repo: raises
    assert text is not None
    mine = parse_settings(text).verify
    committed = g.read_file(head, FLEET_FILE) if head is not None else None
    try:
        theirs = parse_settings(committed).verify if committed is not None else None
    except ConfigError:
        theirs = None
    return (mine, text) if mine != theirs else None


_trusted_memo: dict[tuple[str, str], Policy | None] = {}


def _head(g: GitRepo) -> str | None:
    """HEAD's commit through the adapter's serialized lookup (threads of a bootstrap share ``g``), or None
    on an unborn branch."""
    try:
        return g.resolve("HEAD")
    except NotFound:
        return None


def _key_paths(settings: VerifySettings) -> list[str]:
    return [v.rstrip("/") for v in (settings.allowedSigners, settings.publicKeys)
            if v is not None and not v.startswith(("/", "~"))]


def trusted_policy(g: GitRepo, upto: str) -> Policy | None:
    """The policy in force at commit ``upto``, built from history so that no commit vouches for itself:
    starting from none, each commit on ``upto``'s first-parent line that changes fleet.yaml or an in-repo
    key file (``upto`` included) brings its ``verify:`` into force only when the policy before it is none
    (turning verification on) or it verifies under that policy (a change signed by a key the previous
    policy trusted). A change nobody trusted signed is ignored: the policy before it stays in force."""
    sha = g.resolve(upto)
    memo = (str(g.root), sha)
    with _memo_lock:
        if memo in _trusted_memo:
            return _trusted_memo[memo]
    paths = {FLEET_FILE}
    for x in g.first_parent_changes(sha, [FLEET_FILE]):
        try:
            paths.update(_key_paths(parse_settings(g.read_file(x, FLEET_FILE)).verify))
        except (ConfigError, FleetError):
            continue
    current: Policy | None = None
    for x in g.first_parent_changes(sha, sorted(paths)):
        text = g.read_file(x, FLEET_FILE)
        if text is None:
            continue
        if current is not None:
            try:
                verify(g, x, current)
            except UnverifiedCommit:
                continue  # a change the trusted policy did not sign: not in force
        label = f"{FLEET_FILE} at {x[:12]}"
        try:
            settings = parse_settings(text, label).verify
        except ConfigError:
            if current is None:
                continue  # a broken fleet.yaml while nothing was required: nothing to keep
            raise
        current = _policy_of(settings, _Keys(g, text, label, x))
    with _memo_lock:
        _trusted_memo[memo] = current
    return current


def policy(repo: GitRepo | str | Path) -> Policy | None:
    """The verification fleet requires in this checkout, or None: the user's own ``$FLEET_HOME/verify.yaml``
    when it exists; else an uncommitted edit to fleet.yaml's ``verify:`` (the user's own, in no commit); else
    the policy history brought into force at HEAD (:func:`trusted_policy`): never what a commit says of
    itself. Bad paths and key files are ConfigErrors naming the file, the line and the key."""
    g = open_repo(repo)
    mine, pol = _user_policy(g)
    if mine:
        return pol
    head = _head(g)  # looked up once: the edit is told from it, and the policy in force read at it
    edit = _worktree_edit(g, head)
    if edit is not None:
        settings, text = edit
        return _policy_of(settings, _Keys(g, text, FLEET_FILE, None))
    return trusted_policy(g, head) if head is not None else None


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
    """False only when nothing can require a signature: no ``$FLEET_HOME/verify.yaml``, the working tree's
    fleet.yaml says ``verify.mode: none`` and no version of fleet.yaml in the history ever held ``verify:``
    (a commit that turned verification off does not turn it off: :func:`trusted_policy`). Anything else is
    left to :func:`policy`."""
    from fleet.adapters import gitplain
    from fleet.paths import fleet_home

    try:
        if (fleet_home() / USER_POLICY).exists():
            return True
        if parse_settings(read_worktree(root, FLEET_FILE)).verify.mode != "none":
            return True
    except (OSError, FleetError):
        return True
    return gitplain.ever_held(root, FLEET_FILE, "verify:") is not False


def require(repo: GitRepo | str | Path, revision: str) -> Verification | None:
    """Verify ``revision`` when the policy in force (:func:`policy`) requires signed commits (None when it
    does not). Call it before anything is applied, created or written."""
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
