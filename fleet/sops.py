"""SOPS (age) secrets: detect, redact and decrypt SOPS-encrypted manifests, in memory only.

A SOPS file keeps its structure in clear and each value as
``ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]``: AES-256-GCM under a random 32-byte data key,
with the value's path in the document (``data:password:``; list items share their parent's path) as
additional data. The data key is encrypted to every age recipient (``sops.age[].enc``, an armored age
file), and ``sops.mac`` is the SHA-512 of the plaintext values in document order (hex, upper case),
itself encrypted with the data key and ``sops.lastmodified`` as additional data. This follows
getsops/sops v3 (``sops.go``, ``aes/cipher.go``, ``age/keysource.go``, ``stores/yaml``) and is checked
against a file the real ``sops`` wrote (tests/fixtures/sops/).

Flux's kustomize-controller decrypts the rendered resource the same way (``spec.decryption``), so an
object fleet can decrypt is one Flux can, and a MAC mismatch here is one there.

Nothing in this module writes anything: plaintext exists only in the returned objects, and no error
message carries a value or a key (they name the object, the path and what is wrong).
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fleet.errors import InputError, SecretsError
from fleet.registry.model import FleetSettings

__all__ = [
    "KEY_ENV",
    "REDACTED",
    "SECRET_KEY",
    "SECRET_NAME",
    "AgeKey",
    "decrypt_object",
    "decrypt_objects",
    "encrypt_object",
    "encrypted_paths",
    "generate_key",
    "is_encrypted",
    "key_for",
    "load_key",
    "parse_key",
    "recipients_of",
    "redact_object",
    "redact_objects",
    "require_intact",
    "require_intact_commit",
    "require_key",
    "resolve_key_file",
]

REDACTED = "[sops: encrypted]"
KEY_ENV = "FLEET_SOPS_AGE_KEY_FILE"  # the default keySource.env
SECRET_NAME = "sops-age"  # flux-system/sops-age, which spec.decryption.secretRef names
SECRET_KEY = "age.agekey"  # the data key Flux's kustomize-controller reads age identities from

_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_IDENTITY = re.compile(r"^AGE-SECRET-KEY-1[0-9A-Z]+$")
_MAC_ONLY_ENCRYPTED_INIT = hashlib.sha256(b"sops").digest()  # sops.MACOnlyEncryptedInitialization
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class AgeKey:
    """An age identity and its public recipient. ``repr`` and ``str`` never show the identity."""

    identity: str = field(repr=False)
    recipient: str
    source: str  # where it was read from, for messages (a path or an environment variable)

    def __str__(self) -> str:
        return f"age identity for {self.recipient} ({self.source})"


def generate_key(source: str = "generated") -> AgeKey:
    """A new age identity (for tests and for `docs/security.md`'s walk-through)."""
    from pyrage import x25519

    ident = x25519.Identity.generate()
    return AgeKey(str(ident), str(ident.to_public()), source)


def parse_key(text: str, source: str) -> AgeKey:
    """The first age identity in ``text`` (an age key file: ``# comments`` and ``AGE-SECRET-KEY-1...``)."""
    from pyrage import IdentityError, x25519

    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    for ln in lines:
        if _IDENTITY.match(ln):
            try:
                ident = x25519.Identity.from_str(ln)
            except IdentityError:
                break
            return AgeKey(ln, str(ident.to_public()), source)
    raise SecretsError(f"{source}: not an age key file (no valid AGE-SECRET-KEY-1... line)")


def resolve_key_file(env_file: str | None, configured: str, home: Path, repo_root: Path | None) -> tuple[Path, str]:
    """Where the age key is read from: the file the environment variable names when it is set, else
    ``configured`` (relative to FLEET_HOME, or absolute). Refused inside the fleet repo: the key never
    lives in Git. Returns the path and how it was found (for messages)."""
    if env_file:
        path, how = Path(env_file).expanduser(), "the environment"
    else:
        p = Path(configured).expanduser()
        path, how = (p if p.is_absolute() else home / p), "FLEET_HOME"
    if repo_root is not None and path.resolve().is_relative_to(repo_root.resolve()):
        raise SecretsError(
            f"the age key {path} is inside the fleet repo; it must live outside Git",
            hint="move it to $FLEET_HOME/secrets/sops-age.agekey (mode 0600) and remove it from the repo",
        )
    return path, how


def load_key(path: Path, how: str, recipients: Sequence[str]) -> AgeKey:
    """Read the age key at ``path`` and check it is one of fleet.yaml's ``ageRecipients``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretsError(
            f"the fleet uses SOPS but its age key is missing: {path} (from {how}) does not exist",
            hint="put the age identity there (mode 0600), or point FLEET_SOPS_AGE_KEY_FILE at it; "
            "it never goes into the repo",
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else "not readable UTF-8 text"
        raise SecretsError(f"the age key {path} cannot be read: {reason}") from None
    key = parse_key(text, str(path))
    if recipients and key.recipient not in recipients:
        raise SecretsError(
            f"the age key {path} is for {key.recipient}, which is not one of fleet.yaml's "
            f"secrets.sops.ageRecipients",
            hint="use the key of a listed recipient, or add its recipient and re-encrypt (sops updatekeys)",
        )
    return key


def key_for(settings: FleetSettings, repo_root: Path | None) -> AgeKey | None:
    """The fleet's age key from its key source (fleet.yaml ``secrets.sops.keySource``): None when the
    fleet does not use SOPS; SecretsError (exit 2) when it does and the key is missing or wrong."""
    from fleet.paths import age_key_file_from_env, fleet_home

    sops = settings.secrets.sops
    if sops is None:
        return None
    src = sops.keySource
    path, how = resolve_key_file(age_key_file_from_env(src.env), src.file, fleet_home(), repo_root)
    return load_key(path, f"${src.env}" if how == "the environment" else how, sops.ageRecipients)


# -- detection and redaction ------------------------------------------------------------------------


def encrypted_paths(obj: Mapping[str, Any]) -> frozenset[tuple[str | int, ...]]:
    """The paths (keys and list indexes) of every value SOPS encrypted in ``obj`` (``ENC[...]``), the
    ``sops`` block aside: what a diff masks once the object is decrypted, whatever its kind."""
    out: set[tuple[str | int, ...]] = set()

    def walk(node: Any, path: tuple[str | int, ...]) -> None:
        if isinstance(node, str):
            if _ENC.match(node):
                out.add(path)
        elif isinstance(node, Mapping):
            for k, v in node.items():
                if not (path == () and k == "sops"):
                    walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))

    walk(obj, ())
    return frozenset(out)


def is_encrypted(obj: Mapping[str, Any]) -> bool:
    """A SOPS-encrypted manifest: a top-level ``sops`` mapping with a MAC and its data key's stanzas."""
    meta = obj.get("sops")
    return isinstance(meta, Mapping) and "mac" in meta and any(
        k in meta for k in ("age", "key_groups", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault")
    )


def recipients_of(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The age recipients the object's data key is encrypted to."""
    return tuple(str(s.get("recipient", "")) for s in _age_stanzas(obj.get("sops") or {}))


def _age_stanzas(meta: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out = [s for s in meta.get("age") or [] if isinstance(s, Mapping)]
    for group in meta.get("key_groups") or []:
        if isinstance(group, Mapping):
            out += [s for s in group.get("age") or [] if isinstance(s, Mapping)]
    return out


def _ref(obj: Mapping[str, Any]) -> str:
    """``Kind namespace/name`` for messages; an encrypted name or namespace shows as ``(encrypted)``."""
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else None

    def shown(v: Any) -> str:
        return "(encrypted)" if isinstance(v, str) and _ENC.match(v) else str(v)

    ns = f"{shown(meta.get('namespace'))}/" if meta and meta.get("namespace") else ""
    return f"{shown(obj.get('kind', '?'))} {ns}{shown((meta or {}).get('name', '?'))}"


def _redact(node: Any) -> Any:
    if isinstance(node, str):
        return REDACTED if _ENC.match(node) else node
    if isinstance(node, Mapping):
        return {k: _redact(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact(v) for v in node]
    return node


def redact_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` with every encrypted value shown as ``[sops: encrypted]`` and the ``sops`` block reduced
    to the recipients (no wrapped data keys, no MAC)."""
    if not is_encrypted(obj):
        return dict(obj)
    out = {k: _redact(v) for k, v in obj.items() if k != "sops"}
    out["sops"] = {"encrypted": True, "age": [{"recipient": r} for r in recipients_of(obj)]}
    return out


def redact_objects(objs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [redact_object(o) for o in objs]


# -- decryption ------------------------------------------------------------------------------------


def _b64(s: str, what: str, where: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise SecretsError(f"{where}: the {what} of an encrypted value is not base64") from None


def _aes_decrypt(value: str, key: bytes, aad: str, where: str) -> Any:
    """One ``ENC[...]`` value, as sops's aes.Cipher.Decrypt: typed by its ``type:``."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if value == "":
        return ""
    m = _ENC.match(value)
    if m is None:
        raise SecretsError(f"{where}: a value that should be encrypted is not in sops' ENC[AES256_GCM,...] format")
    data, iv, tag = (_b64(m[i], n, where) for i, n in ((1, "data"), (2, "iv"), (3, "tag")))
    if len(tag) != 16 or not iv:
        raise SecretsError(f"{where}: malformed encrypted value (iv or tag)")
    try:
        plain = AESGCM(key).decrypt(iv, data + tag, aad.encode()) if len(iv) == 12 else _gcm_any_iv(
            key, iv, data, tag, aad.encode())
    except InvalidTag:
        raise SecretsError(f"{where}: the value does not decrypt (wrong data key, or the value was changed)") from None
    kind = m[4]
    text = plain.decode("utf-8", errors="surrogateescape")
    try:
        if kind == "str":
            return text
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text in _GO_TRUE:
                return True
            if text in _GO_FALSE:
                return False
            raise ValueError
        if kind in ("bytes", "time", "comment"):
            return text
    except ValueError:
        raise SecretsError(f"{where}: a decrypted value is not of its type {kind}") from None
    raise SecretsError(f"{where}: unknown encrypted value type {kind!r}")


def _gcm_any_iv(key: bytes, iv: bytes, data: bytes, tag: bytes, aad: bytes) -> bytes:
    """AES-GCM with a nonce that is not 96 bits (sops writes 32-byte IVs): the general GCM of
    cryptography's ``modes.GCM``, which accepts any IV length."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(data) + dec.finalize()


def _go_float(v: float) -> str:
    """strconv.FormatFloat(v, 'f', -1, 64): the shortest digits, never an exponent."""
    s = format(Decimal(repr(v)), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def _to_bytes(v: Any) -> bytes | None:
    """sops.ToBytes, for the MAC; None for what sops does not hash (null)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return b"True" if v else b"False"
    if isinstance(v, int):
        return str(v).encode()
    if isinstance(v, float):
        return _go_float(v).encode()
    if isinstance(v, bytes):
        return v
    if isinstance(v, datetime):
        return v.isoformat().replace("+00:00", "Z").encode()
    return str(v).encode("utf-8", errors="surrogateescape")


@dataclass
class _Rules:
    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    mac_only_encrypted: bool = False

    @classmethod
    def of(cls, meta: Mapping[str, Any]) -> _Rules:
        r = cls(
            str(meta.get("unencrypted_suffix") or ""), str(meta.get("encrypted_suffix") or ""),
            str(meta.get("unencrypted_regex") or ""), str(meta.get("encrypted_regex") or ""),
            bool(meta.get("mac_only_encrypted") or False),
        )
        if not any((r.unencrypted_suffix, r.encrypted_suffix, r.unencrypted_regex, r.encrypted_regex)):
            r.unencrypted_suffix = "_unencrypted"  # sops.DefaultUnencryptedSuffix, as its stores set it
        return r

    def encrypted(self, path: Sequence[str]) -> bool:
        """sops's Tree.shouldBeEncrypted (comment regexes aside: comments are not in the tree here)."""
        enc = True
        if self.unencrypted_suffix and any(p.endswith(self.unencrypted_suffix) for p in path):
            enc = False
        if self.encrypted_suffix:
            enc = any(p.endswith(self.encrypted_suffix) for p in path)
        if self.unencrypted_regex and any(_linear(self.unencrypted_regex, "unencrypted_regex").search(p)
                                          for p in path):
            enc = False
        if self.encrypted_regex:
            enc = any(_linear(self.encrypted_regex, "encrypted_regex").search(p) for p in path)
        return enc


MAX_REGEX = 1024  # the length of a SOPS regex from the file being decrypted


@functools.lru_cache(maxsize=64)
def _linear(pattern: str, key: str) -> Any:
    """``pattern`` (from the file being decrypted: anyone's text) compiled for RE2, which matches in time
    linear in the input whatever the pattern, as sops (Go's regexp) does; Python's ``re`` backtracks, and a
    pattern like ``(a+)+$`` would hang a decryption. A pattern RE2 cannot compile (a backreference, a
    lookaround: what Go refuses too) or longer than :data:`MAX_REGEX` is refused (exit 2)."""
    import re2

    if len(pattern) > MAX_REGEX:
        raise SecretsError(f"sops.{key} is {len(pattern)} characters long; at most {MAX_REGEX}")
    try:
        return re2.compile(pattern)
    except re2.error:
        raise SecretsError(f"sops.{key} is not a regular expression sops can use (RE2 syntax: no "
                           "backreference, no lookaround)") from None


def _walk(node: Any, path: tuple[str, ...], fn: Any) -> Any:
    if isinstance(node, Mapping):
        out = {}
        for k, v in node.items():
            if not isinstance(k, str):
                raise SecretsError(f"{':'.join(path) or 'top level'}: sops only supports string keys")
            out[k] = _walk(v, (*path, k), fn)
        return out
    if isinstance(node, list):
        return [_walk(v, path, fn) for v in node]
    if node is None:
        return None
    return fn(node, path)


def _data_key(meta: Mapping[str, Any], keys: Sequence[AgeKey], ref: str) -> bytes:
    import pyrage
    from pyrage import x25519

    stanzas = _age_stanzas(meta)
    if not stanzas:
        raise SecretsError(f"{ref}: encrypted with SOPS but not to any age recipient (only age is supported)")
    mine = {k.recipient: k for k in keys}
    for s in stanzas:
        key = mine.get(str(s.get("recipient", "")))
        if key is None:
            continue
        try:
            dk = pyrage.decrypt(str(s.get("enc", "")).encode(), [x25519.Identity.from_str(key.identity)])
        except (pyrage.DecryptError, pyrage.IdentityError, ValueError):
            raise SecretsError(f"{ref}: the data key for {key.recipient} does not decrypt with its age key") from None
        if len(dk) != 32:
            raise SecretsError(f"{ref}: the data key is not 32 bytes")
        return dk
    listed = ", ".join(str(s.get("recipient", "?")) for s in stanzas)
    have = ", ".join(mine) or "none"
    raise SecretsError(f"{ref}: encrypted to {listed}; the age key given is for {have}")


def _rfc3339(text: str, ref: str) -> str:
    """``lastmodified`` as Go's time.Format(time.RFC3339) prints it back (seconds, Z for UTC)."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SecretsError(f"{ref}: sops.lastmodified is not an RFC 3339 time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    s = t.replace(microsecond=0).isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def decrypt_object(obj: Mapping[str, Any], keys: Sequence[AgeKey]) -> dict[str, Any]:
    """``obj`` decrypted, without its ``sops`` block, after checking the MAC (as ``sops -d`` and
    Flux's kustomize-controller do). Objects that are not encrypted come back as they are."""
    if not is_encrypted(obj):
        return dict(obj)
    ref = _ref(obj)
    meta = obj["sops"]
    if meta.get("shamir_threshold") and int(meta.get("shamir_threshold") or 0) > 1:
        raise SecretsError(f"{ref}: Shamir key groups (shamir_threshold > 1) are not supported")
    dk = _data_key(meta, keys, ref)
    rules = _Rules.of(meta)
    h = hashlib.sha512()
    if rules.mac_only_encrypted:
        h.update(_MAC_ONLY_ENCRYPTED_INIT)

    def leaf(value: Any, path: tuple[str, ...]) -> Any:
        enc = rules.encrypted(path)
        where = f"{ref}: {':'.join(path)}"
        if enc:
            if not isinstance(value, str):
                raise SecretsError(f"{where}: expected an encrypted value, found a {type(value).__name__}")
            value = _aes_decrypt(value, dk, ":".join(path) + ":", where)
        if enc or not rules.mac_only_encrypted:
            b = _to_bytes(value)
            if b is not None:
                h.update(b)
        return value

    body: dict[str, Any] = _walk({k: v for k, v in obj.items() if k != "sops"}, (), leaf)
    stored = str(meta.get("mac") or "")
    if not stored:
        raise SecretsError(f"{ref}: sops.mac is missing; refusing a file whose integrity cannot be checked")
    expected = _aes_decrypt(stored, dk, _rfc3339(str(meta.get("lastmodified", "")), ref), f"{ref}: sops.mac")
    if not isinstance(expected, str) or expected != h.hexdigest().upper():
        raise SecretsError(
            f"{ref}: MAC mismatch: the encrypted file was changed after it was encrypted "
            "(or a kustomize transformation changed a value sops covers)",
            hint="re-encrypt it with sops; let kustomize leave encrypted Secrets alone, or encrypt with "
            "--mac-only-encrypted",
        )
    return body


def decrypt_objects(objs: Iterable[Mapping[str, Any]], keys: Sequence[AgeKey]) -> list[dict[str, Any]]:
    return [decrypt_object(o, keys) if is_encrypted(o) else dict(o) for o in objs]


# -- encryption (tests and documentation; users encrypt with the sops CLI) --------------------------


def _aes_encrypt(value: Any, key: bytes, aad: str, iv: bytes) -> str:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if isinstance(value, bool):
        kind, plain = "bool", b"True" if value else b"False"
    elif isinstance(value, int):
        kind, plain = "int", str(value).encode()
    elif isinstance(value, float):
        kind, plain = "float", _go_float(value).encode()
    elif isinstance(value, str):
        if value == "":
            return ""
        kind, plain = "str", value.encode()
    else:
        raise SecretsError(f"cannot encrypt a {type(value).__name__}")
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(aad.encode())
    data = enc.update(plain) + enc.finalize()
    b = base64.b64encode
    return f"ENC[AES256_GCM,data:{b(data).decode()},iv:{b(iv).decode()},tag:{b(enc.tag).decode()},type:{kind}]"


def encrypt_object(
    obj: Mapping[str, Any],
    recipients: Sequence[str],
    *,
    encrypted_regex: str = "",
    lastmodified: str = "2026-01-01T00:00:00Z",
    data_key: bytes | None = None,
    iv_source: Any = None,
) -> dict[str, Any]:
    """``obj`` encrypted as ``sops --encrypt --age R1,R2 [--encrypted-regex RE]`` writes it (YAML store):
    the format fleet decrypts, for tests. ``iv_source(n)`` gives IV bytes (default os.urandom)."""
    import os

    import pyrage
    from pyrage import x25519

    dk = data_key if data_key is not None else os.urandom(32)
    rand = iv_source or os.urandom
    meta: dict[str, Any] = {}
    rules = _Rules.of({"encrypted_regex": encrypted_regex} if encrypted_regex else {})
    h = hashlib.sha512()

    def leaf(value: Any, path: tuple[str, ...]) -> Any:
        b = _to_bytes(value)
        if b is not None:
            h.update(b)
        if rules.encrypted(path):
            return _aes_encrypt(value, dk, ":".join(path) + ":", rand(32))
        return value

    body: dict[str, Any] = _walk(copy.deepcopy(dict(obj)), (), leaf)
    meta["age"] = [
        {"recipient": r, "enc": pyrage.encrypt(dk, [x25519.Recipient.from_str(r)], armored=True).decode()}
        for r in recipients
    ]
    meta["lastmodified"] = lastmodified
    meta["mac"] = _aes_encrypt(h.hexdigest().upper(), dk, lastmodified, rand(32))
    if encrypted_regex:
        meta["encrypted_regex"] = encrypted_regex
    else:
        meta["unencrypted_suffix"] = "_unencrypted"
    meta["version"] = "3.11.0"
    body["sops"] = meta
    return body


def require_key(keys: Sequence[AgeKey], objs: Iterable[Mapping[str, Any]], what: str) -> None:
    """Refuse (exit 2) when ``objs`` hold SOPS-encrypted manifests and no age key was given."""
    enc = [o for o in objs if is_encrypted(o)]
    if enc and not keys:
        raise InputError(
            f"{what}: {len(enc)} SOPS-encrypted object(s) ({_ref(enc[0])}) and no age key to decrypt them",
            hint="set secrets.sops in fleet.yaml and give the key (FLEET_SOPS_AGE_KEY_FILE or "
            "$FLEET_HOME/secrets/sops-age.agekey)",
        )


def require_intact(objs: Iterable[Mapping[str, Any]], keys: Sequence[AgeKey], what: str) -> None:
    """Refuse (exit 2) a commit whose SOPS-encrypted objects do not verify (their MAC, their data key),
    before a pin moves to it, whatever the operator would do with it (Flux v1.9.6 applied a tampered
    ``sops.mac``): checked with the fleet's key in memory, the plaintext dropped at once. Without a key
    their integrity cannot be checked, and the commit is not pinned unchecked."""
    enc = [o for o in objs if is_encrypted(o)]
    if not enc:
        return
    if not keys:
        raise SecretsError(
            f"{what}: {len(enc)} SOPS-encrypted object(s) ({_ref(enc[0])}) and no age key to check their MACs "
            "before the operator is pinned to it",
            hint="set secrets.sops in fleet.yaml and give the key (FLEET_SOPS_AGE_KEY_FILE or "
            "$FLEET_HOME/secrets/sops-age.agekey)",
        )
    for o in enc:
        decrypt_object(o, keys)


def require_intact_commit(settings: FleetSettings, repo_root: Path | None, objs: Sequence[Mapping[str, Any]],
                          what: str) -> None:
    """:func:`require_intact` with the fleet's key, read only when ``objs`` hold encrypted objects (a commit
    without any needs no key, as before)."""
    if not any(is_encrypted(o) for o in objs):
        return
    key = key_for(settings, repo_root)
    require_intact(objs, [key] if key else [], what)


def shown_objects(objs: Sequence[Mapping[str, Any]], keys: Sequence[AgeKey] | None) -> list[dict[str, Any]] | None:
    """What ``fleet render`` prints of ``objs``: None when none is encrypted (print as rendered); else
    every encrypted object redacted, or decrypted when ``keys`` are given (``--decrypt``)."""
    if not any(is_encrypted(o) for o in objs):
        return None
    if keys:
        return decrypt_objects(objs, keys)
    return redact_objects(objs)
