"""Plain kubeconfigs are read without the ``kubernetes`` library (fleet.adapters.kube.kubeconfig), with
TLS verified as kubectl does; every other kind falls back to the library. Against a real TLS server on
loopback that requires a client certificate."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleet.adapters.kube import Kube, KubeTarget, RetryPolicy
from fleet.adapters.kube.kubeconfig import load_plain
from fleet.errors import InputError, Unreachable

REPO = Path(__file__).resolve().parents[2]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool = False,
          ips: tuple[str, ...] = ()) -> bytes:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ips:
        b = b.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(i)) for i in ips]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class PKI:
    def __init__(self, d: Path) -> None:
        self.dir = d
        ca_key, other_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("test-ca", ca_key, "test-ca", ca_key, ca=True)
        self.other_ca = _cert("other-ca", other_key, "other-ca", other_key, ca=True)
        srv_key, cli_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        self.server = _cert("apiserver", srv_key, "test-ca", ca_key, ips=("127.0.0.1",))
        self.server_key = _key_pem(srv_key)
        self.client = _cert("fleet-user", cli_key, "test-ca", ca_key)
        self.client_key = _key_pem(cli_key)
        for name in ("ca", "other_ca", "server", "server_key", "client", "client_key"):
            (d / f"{name}.pem").write_bytes(getattr(self, name))


class Server:
    """HTTPS on loopback: a client certificate signed by the test CA is required; answers /version
    and records who asked (the client certificate's CN) and the Authorization header."""

    def __init__(self, pki: PKI, *, require_client_cert: bool = True) -> None:
        seen = self.seen = []  # type: list[tuple[str, str | None]]

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]
                cn = dict(x[0] for x in peer["subject"])["commonName"] if peer else ""
                seen.append((cn, self.headers.get("Authorization")))
                body = json.dumps({"gitVersion": "v1.99.0"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.dir / "server.pem", pki.dir / "server_key.pem")
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(pki.dir / "ca.pem")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def pki(tmp_path: Path) -> PKI:
    return PKI(tmp_path)


@pytest.fixture()
def server(pki: PKI) -> Iterator[Server]:
    s = Server(pki)
    yield s
    s.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": cluster}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": user}],
    }))
    return path


def cert_user(pki: PKI) -> dict[str, Any]:
    return {"client-certificate-data": b64(pki.client), "client-key-data": b64(pki.client_key)}


def kube(path: Path) -> Kube:
    return Kube(KubeTarget("t1", path), policy=RetryPolicy(attempts=2, budget_s=10))


def test_a_plain_kubeconfig_is_read_here_and_presents_its_client_certificate(
        pki: PKI, server: Server, tmp_path: Path) -> None:
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": f"https://127.0.0.1:{server.port}",
                                            "certificate-authority-data": b64(pki.ca)}, cert_user(pki))
    plain = load_plain(cfg, None)
    assert plain is not None and plain.verify and plain.host == f"https://127.0.0.1:{server.port}"
    assert kube(cfg).server_version() == "v1.99.0"
    assert server.seen == [("fleet-user", None)]


def test_paths_in_a_kubeconfig_are_relative_to_its_folder_and_a_token_is_sent(
        pki: PKI, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": f"https://127.0.0.1:{server.port}",
                                            "certificate-authority": "ca.pem"},
                     {"client-certificate": "client.pem", "client-key": str(pki.dir / "client_key.pem"),
                      "token": "s3cr3t"})
    monkeypatch.chdir("/")  # relative to the kubeconfig, not to the working directory
    assert kube(cfg).server_version() == "v1.99.0"
    assert server.seen == [("fleet-user", "Bearer s3cr3t")]


def test_a_server_signed_by_another_ca_is_refused_and_not_retried(
        pki: PKI, server: Server, tmp_path: Path) -> None:
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": f"https://127.0.0.1:{server.port}",
                                            "certificate-authority-data": b64(pki.other_ca)}, cert_user(pki))
    with pytest.raises(Unreachable, match=r"TLS with .* failed") as e:
        kube(cfg).server_version()
    assert not e.value.transient
    assert server.seen == []


def test_the_host_name_is_checked_against_the_servers_certificate(
        pki: PKI, server: Server, tmp_path: Path) -> None:
    # the certificate names 127.0.0.1 only: "localhost" reaches the same server but is not its name
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": f"https://localhost:{server.port}",
                                            "certificate-authority-data": b64(pki.ca)}, cert_user(pki))
    with pytest.raises(Unreachable, match="TLS"):
        kube(cfg).server_version()
    assert server.seen == []


def test_insecure_skip_tls_verify_is_honoured(pki: PKI, server: Server, tmp_path: Path) -> None:
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": f"https://localhost:{server.port}",
                                            "insecure-skip-tls-verify": True}, cert_user(pki))
    plain = load_plain(cfg, None)
    assert plain is not None and not plain.verify
    assert kube(cfg).server_version() == "v1.99.0"


@pytest.mark.parametrize("cluster_extra,user", [
    ({"tls-server-name": "apiserver"}, {}),
    ({"proxy-url": "http://127.0.0.1:3128"}, {}),
    ({}, {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "true"}}),
    ({}, {"auth-provider": {"name": "oidc", "config": {}}}),
    ({}, {"username": "u", "password": "p"}),
    ({}, {"tokenFile": "/dev/null"}),
    ({}, {"client-certificate-data": "not base64!", "client-key-data": "eA=="}),
    ({}, {"client-certificate-data": "eA=="}),  # a certificate without its key
], ids=["tls-server-name", "proxy", "exec", "auth-provider", "basic", "token-file", "bad-base64", "half-pair"])
def test_anything_but_a_plain_kubeconfig_is_left_to_the_library(
        pki: PKI, tmp_path: Path, cluster_extra: dict[str, Any], user: dict[str, Any]) -> None:
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": "https://127.0.0.1:1",
                                            "certificate-authority-data": b64(pki.ca), **cluster_extra}, user)
    assert load_plain(cfg, None) is None
    assert load_plain(cfg, "no-such-context") is None


def test_an_encrypted_client_key_is_left_to_the_library_without_a_prompt(pki: PKI, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passw0rd"))
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": "https://127.0.0.1:1", "certificate-authority-data": b64(pki.ca)},
                     {"client-certificate-data": b64(pki.client), "client-key-data": b64(key)})
    assert load_plain(cfg, None) is None


@pytest.mark.parametrize("token", ["abc\nX-Injected: 1", "abc def", "abc\r", "\x7f"])
def test_a_token_with_a_line_break_or_a_space_is_bad_input_never_a_header(tmp_path: Path, token: str) -> None:
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": "http://127.0.0.1:1"}, {"token": token})
    with pytest.raises(InputError, match="has a space or a control character") as e:
        kube(cfg)
    assert token not in e.value.message  # the secret is not repeated in the error


def test_an_exec_plugin_goes_through_the_library_and_its_token_is_sent(pki: PKI, tmp_path: Path) -> None:
    s = Server(pki, require_client_cert=False)
    try:
        cred = json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                           "status": {"token": "from-exec"}})
        script = tmp_path / "cred.sh"
        script.write_text(f"#!/bin/sh\necho '{cred}'\n")
        script.chmod(0o755)
        cfg = kubeconfig(tmp_path / "kc.yaml", {"server": f"https://127.0.0.1:{s.port}",
                                                "certificate-authority-data": b64(pki.ca)},
                         {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(script)}})
        assert load_plain(cfg, None) is None
        assert kube(cfg).server_version() == "v1.99.0"
        assert s.seen == [("", "Bearer from-exec")]
    finally:
        s.close()


def test_a_plain_kubeconfig_does_not_load_the_kubernetes_library(
        pki: PKI, server: Server, tmp_path: Path) -> None:
    cfg = kubeconfig(tmp_path / "kc.yaml", {"server": f"https://127.0.0.1:{server.port}",
                                            "certificate-authority-data": b64(pki.ca)}, cert_user(pki))
    code = ("import sys; from pathlib import Path; from fleet.adapters.kube import Kube, KubeTarget; "
            f"print(Kube(KubeTarget('t1', Path({str(cfg)!r}))).server_version(), "
            "any(m == 'kubernetes' or m.startswith('kubernetes.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert out.stdout.split() == ["v1.99.0", "False"]
