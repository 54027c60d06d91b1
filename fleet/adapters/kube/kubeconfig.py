"""A kubeconfig read without the ``kubernetes`` library, for the plain cases only.

Importing the ``kubernetes`` package loads its whole generated client (hundreds of model classes):
about a third of a second before the first request of every ``fleet sync``/``diff``/``gate``/``status``.
Most kubeconfigs fleet meets are plain: a server, a CA, and a client certificate or a static token (every
local cluster's, and any service-account kubeconfig). Those are read here; anything else (exec plugins,
auth providers, basic auth, token files, proxies, ``tls-server-name``, merged ``KUBECONFIG`` lists,
in-cluster config) returns ``None`` and :class:`~fleet.adapters.kube.client.Kube` falls back to the
library, which also gives the error messages for files it cannot use.

TLS is verified as kubectl does: against the kubeconfig's CA, host name checked, unless the cluster
says ``insecure-skip-tls-verify``. Key material given as data is loaded into the TLS context from
anonymous memory files (``memfd``): nothing is written to disk.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import InputError

__all__ = ["Plain", "load_plain"]

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CLUSTER_KEYS = {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"}
_USER_KEYS = {"client-certificate", "client-certificate-data", "client-key", "client-key-data", "token"}


@dataclass(frozen=True)
class Plain:
    """What a request needs: the server, its TLS context (``None`` for plain http) and a bearer token."""

    host: str
    ssl_context: ssl.SSLContext | None
    verify: bool
    token: str | None


def _named(entries: Any, name: str, what: str) -> Mapping[str, Any] | None:
    if not isinstance(entries, list):
        return None
    found = [e for e in entries if isinstance(e, Mapping) and e.get("name") == name]
    if len(found) != 1 or not isinstance(found[0].get(what), Mapping):
        return None
    inner: Mapping[str, Any] = found[0][what]
    return inner


@contextlib.contextmanager
def _as_file(data: bytes) -> Iterator[str]:
    """A path the ssl module can read ``data`` from: an anonymous memory file where Linux has them,
    else a private temporary file removed as soon as it is read."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd = memfd("fleet-kubeconfig", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="fleet-tls-") as d:  # pragma: no cover (not Linux)
        p = Path(d) / "pem"
        p.touch(mode=0o600)
        p.write_bytes(data)
        yield str(p)


def _pem(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """``key``-data (base64) or ``key`` (a path, relative to the kubeconfig's folder) as bytes."""
    data = entry.get(f"{key}-data")
    if data is not None:
        return base64.b64decode(str(data), validate=True)
    path = entry.get(key)
    if path is None:
        return None
    return (base / str(path)).expanduser().read_bytes()


def load_plain(path: Path, context: str | None) -> Plain | None:
    """The connection settings of ``path`` (at ``context``, else its current context), or ``None``
    when the kubeconfig is not a plain one (see the module docstring) or cannot be read here."""
    try:
        doc = yaml.load(path.expanduser().read_text(), Loader=_LOADER)
        if not isinstance(doc, Mapping):
            return None
        ctx = _named(doc.get("contexts"), context or str(doc.get("current-context") or ""), "context")
        if ctx is None:
            return None
        cluster = _named(doc.get("clusters"), str(ctx.get("cluster") or ""), "cluster")
        user = _named(doc.get("users"), str(ctx.get("user") or ""), "user") if ctx.get("user") else {}
        if cluster is None or user is None or set(cluster) - _CLUSTER_KEYS or set(user) - _USER_KEYS:
            return None
        host = str(cluster.get("server") or "").rstrip("/")
        base = path.expanduser().resolve().parent
        token = str(user["token"]) if user.get("token") else None
        if token is not None and any(ord(c) < 0x21 or ord(c) == 0x7F for c in token):
            raise InputError(f'kubeconfig {path}: the token of user "{ctx.get("user")}" has a space or a control '
                             "character (a line break?); a bearer token has none")
        if host.startswith("http://"):
            return Plain(host, None, False, token)
        if not host.startswith("https://"):
            return None
        verify = not bool(cluster.get("insecure-skip-tls-verify"))
        if verify:
            ca = _pem(cluster, "certificate-authority", base)
            tls = ssl.create_default_context(cadata=ca.decode() if ca is not None else None)  # else: the system's
        else:
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        cert, key = _pem(user, "client-certificate", base), _pem(user, "client-key", base)
        if (cert is None) != (key is None):
            return None
        if cert is not None and key is not None:
            with _as_file(cert) as cert_file, _as_file(key) as key_file:
                tls.load_cert_chain(cert_file, key_file, password=b"")  # an encrypted key: never a prompt
        return Plain(host, tls, verify, token)
    except (OSError, ValueError, binascii.Error, ssl.SSLError, yaml.YAMLError, UnicodeError):
        return None  # the library reads it, and says what is wrong with it
