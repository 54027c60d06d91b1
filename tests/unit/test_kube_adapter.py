"""The kube adapter against a scripted HTTP server on loopback: what is retried, what fails at once,
and that no library exception ever leaves the adapter."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.adapters.kube import Informer, Kube, KubeTarget, NotServed, RetryPolicy
from fleet.errors import ApiRefused, FleetError, Forbidden, InputError, KubeError, NotFound, Unreachable

CORE = {
    "kind": "APIResourceList",
    "groupVersion": "v1",
    "resources": [
        {"name": "configmaps", "kind": "ConfigMap", "namespaced": True},
        {"name": "namespaces", "kind": "Namespace", "namespaced": False},
        {"name": "namespaces/status", "kind": "Namespace", "namespaced": False},
    ],
}


class Script:
    """Per (method, path prefix): a queue of (status, headers, body) answers; the last one repeats."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[tuple[int, dict[str, str], Any]]] = {}
        self.seen: list[tuple[str, str, float]] = []
        self.bodies: list[bytes] = []

    def on(self, method: str, path: str, *answers: tuple[int, dict[str, str], Any]) -> None:
        self.answers[(method, path)] = list(answers)

    def answer(self, method: str, path: str) -> tuple[int, dict[str, str], Any]:
        want = path.split("?")[0] + ("?watch" if "watch=1" in path else "")
        for (m, p), queue in self.answers.items():
            if m == method and want == p:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return 404, {}, {"kind": "Status", "code": 404, "reason": "NotFound", "message": f"{path} not found"}


@pytest.fixture
def server() -> Iterator[tuple[Script, int]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def handle_any(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            script.bodies.append(self.rfile.read(n) if n else b"")
            script.seen.append((self.command, self.path, time.monotonic()))
            status, headers, body = script.answer(self.command, self.path)
            if status == 0:  # drop the connection without an answer
                self.close_connection = True
                self.connection.close()
                return
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_DELETE = do_POST = handle_any

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):  # a client that hung up
                super().handle_error(request, client_address)

    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    script.on("GET", "/api/v1", (200, {}, CORE))
    yield script, httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def kube_for(tmp_path: Path, port: int, **policy: Any) -> Kube:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t0k3n"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return Kube(KubeTarget("t1", path), policy=RetryPolicy(**{"budget_s": 20, **policy}))


CM = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "a", "namespace": "ns"},
    "data": {"k": "v"},
}
CM_PATH = "/api/v1/namespaces/ns/configmaps/a"


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "code": code, "reason": reason, "message": message}


def test_apply_is_server_side_apply_and_retries_5xx(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    script.on(
        "PATCH",
        CM_PATH,
        (503, {}, status(503, "ServiceUnavailable", "busy")),
        (500, {}, status(500, "InternalError", "etcd hiccup")),
        (201, {}, CM),
    )
    kube = kube_for(tmp_path, port)
    applied = kube.apply(CM)
    assert applied.created and applied.object["data"] == {"k": "v"}
    patches = [s for s in script.seen if s[0] == "PATCH"]
    assert len(patches) == 3
    assert "fieldManager=fleet" in patches[0][1] and "force=true" in patches[0][1]
    assert json.loads(script.bodies[-1]) == CM


def test_an_admission_webhook_that_fails_is_said_at_once_not_retried(server: tuple[Script, int],
                                                                     tmp_path: Path) -> None:
    script, port = server
    msg = ('Internal error occurred: failed calling webhook "check.example.com": failed to call webhook: '
           'Post "https://check.default.svc:443/validate": context deadline exceeded')
    script.on("PATCH", CM_PATH, (500, {}, status(500, "InternalError", msg)), (201, {}, CM))
    kube = kube_for(tmp_path, port)
    with pytest.raises(ApiRefused) as e:
        kube.apply(CM)
    assert 'failed calling webhook "check.example.com"' in e.value.message and not e.value.transient
    assert len([s for s in script.seen if s[0] == "PATCH"]) == 1


def test_429_honours_retry_after(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    script.on(
        "PATCH",
        CM_PATH,
        (429, {"Retry-After": "1"}, status(429, "TooManyRequests", "slow down")),
        (200, {}, CM),
    )
    kube_for(tmp_path, port).apply(CM)
    t = [s[2] for s in script.seen if s[0] == "PATCH"]
    assert len(t) == 2 and t[1] - t[0] >= 0.95


def test_refusals_fail_at_once_with_the_servers_words(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    kube = kube_for(tmp_path, port)
    script.on(
        "PATCH", CM_PATH, (422, {}, status(422, "Invalid", 'ConfigMap "a" is invalid: data: Invalid value'))
    )
    with pytest.raises(
        KubeError, match=r'cluster "t1": apply ConfigMap ns/a: ConfigMap "a" is invalid: data'
    ):
        kube.apply(CM)
    script.on("PATCH", CM_PATH, (403, {}, status(403, "Forbidden", 'configmaps "a" is forbidden: User "u"')))
    with pytest.raises(Forbidden, match='configmaps "a" is forbidden'):
        kube.apply(CM)
    script.on("PATCH", CM_PATH, (401, {}, status(401, "Unauthorized", "Unauthorized")))
    with pytest.raises(Forbidden, match="credentials rejected"):
        kube.apply(CM)
    script.on("PATCH", CM_PATH, (409, {}, status(409, "AlreadyExists", "exists")))
    with pytest.raises(KubeError, match="exists"):
        kube.apply(CM)
    assert len([s for s in script.seen if s[0] == "PATCH"]) == 4  # none of those was retried


def test_optimistic_conflicts_are_retried(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    script.on(
        "PATCH", CM_PATH, (409, {}, status(409, "Conflict", "the object has been modified")), (200, {}, CM)
    )
    kube_for(tmp_path, port).apply(CM)
    assert len([s for s in script.seen if s[0] == "PATCH"]) == 2


def test_dropped_connections_are_retried_then_reported(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    script.on("GET", CM_PATH, (0, {}, None), (200, {}, CM))
    kube = kube_for(tmp_path, port)
    assert kube.get("v1", "ConfigMap", "a", "ns") == CM
    script.on("GET", CM_PATH, (0, {}, None))
    with pytest.raises(Unreachable, match="unreachable"):
        kube_for(tmp_path, port, attempts=3).get("v1", "ConfigMap", "a", "ns")


def test_a_refused_connection_gives_up_fast(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(Unreachable, match=r"API server http://127.0.0.1:\d+ unreachable: .*refused"):
        kube_for(tmp_path, port).server_version()
    assert time.monotonic() - t0 < 5


def test_discovery_not_found_and_bad_kubeconfigs(server: tuple[Script, int], tmp_path: Path) -> None:
    _, port = server
    kube = kube_for(tmp_path, port)
    assert kube.get("v1", "ConfigMap", "missing", "ns") is None
    assert kube.find_resource("example.com/v1", "Widget") is None
    with pytest.raises(NotServed, match=r"serves no kind Widget in example\.com/v1") as e:
        kube.apply({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
    assert e.value.hint and "CustomResourceDefinition" in e.value.hint
    assert kube.delete("v1", "ConfigMap", "missing", "ns") is False
    with pytest.raises(NotFound, match="does not exist"):
        Kube(KubeTarget("t2", tmp_path / "nope.yaml"))
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Config\ncurrent-context: x\n")
    with pytest.raises(InputError, match='cluster "t2"'):
        Kube(KubeTarget("t2", tmp_path / "bad.yaml"))


def test_no_library_exception_escapes(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    kube = kube_for(tmp_path, port, attempts=2)
    script.on("GET", CM_PATH, (0, {}, None))  # the connection dropped
    script.on("PATCH", CM_PATH, (500, {}, "not even a Status"))
    script.on("GET", "/api/v1/namespaces/ns/configmaps", (200, {}, "{not json"))
    script.on("DELETE", CM_PATH, (400, {}, "<html>a proxy's page</html>"))
    script.on("GET", "/version", (200, {}, "[1, 2"))
    calls = {
        "get": lambda: kube.get("v1", "ConfigMap", "a", "ns"),
        "apply": lambda: kube.apply(CM),
        "list": lambda: kube.list_objects("v1", "ConfigMap", namespace="ns"),
        "delete": lambda: kube.delete("v1", "ConfigMap", "a", "ns"),
        "version": lambda: kube.server_version(),
    }
    for what, call in calls.items():
        try:
            call()
        except FleetError:
            continue
        except Exception as e:  # pragma: no cover - the failure this test exists for
            pytest.fail(f"{what}: {type(e).__module__}.{type(e).__name__} escaped the adapter: {e}")
        pytest.fail(f"{what} succeeded: each call is made to fail, so that an escape would show")


def test_informer_lists_watches_and_relists_after_410(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    path = "/api/v1/namespaces/ns/configmaps"

    def cm(name: str, rv: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}

    script.on(
        "GET",
        path,
        (200, {}, {"metadata": {"resourceVersion": "5"}, "items": [cm("a", "4")]}),
        (200, {}, {"metadata": {"resourceVersion": "9"}, "items": [cm("a", "4"), cm("b", "8")]}),
    )
    stream = b"".join(
        json.dumps(e).encode() + b"\n"
        for e in (
            {"type": "ADDED", "object": cm("b", "6")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}},
            {
                "type": "ERROR",
                "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"},
            },
        )
    )
    script.on("GET", path + "?watch", (200, {}, stream))
    kube = kube_for(tmp_path, port)
    inf = Informer(kube, "v1", "ConfigMap", namespace="ns", deadline=time.monotonic() + 10)
    seen = []
    objects = []
    for ev in inf.events():
        objects += [ev.object] if ev.object else []
        seen.append(
            (
                ev.type,
                [o["metadata"]["name"] for o in ev.items]
                if ev.type == "SYNC"
                else ev.object["metadata"]["name"]
                if ev.object
                else None,
            )
        )
        if len(seen) == 3:
            inf.close()
            break
    assert seen == [("SYNC", ["a"]), ("ADDED", "b"), ("SYNC", ["a", "b"])]
    watches = [s[1] for s in script.seen if "watch=1" in s[1]]
    assert watches and "resourceVersion=5" in watches[0] and "allowWatchBookmarks=true" in watches[0]
    added = next(o for o in objects if o["metadata"]["name"] == "b")
    assert (added["apiVersion"], added["kind"]) == ("v1", "ConfigMap")  # filled in, as list items are


def test_what_comes_out_says_whether_another_attempt_may_cure_it(
    server: tuple[Script, int], tmp_path: Path
) -> None:
    """The adapter is the one place that classifies and retries (fleet.errors): the step runner only reads
    ``transient``. 5xx, 429 and dropped connections are retried here, to this call's bound, and then are not
    the step's to retry again (the bounds never multiply); only a server that refuses connections (down,
    or not up yet) is. Authentication, authorization, a refusal, a conflict and TLS verification never are."""
    script, port = server
    kube = kube_for(tmp_path, port, attempts=2)

    def error_of(*answer: tuple[int, dict[str, str], Any]) -> FleetError:
        script.on("GET", CM_PATH, *answer)
        with pytest.raises(FleetError) as e:
            kube.get("v1", "ConfigMap", "a", "ns")
        return e.value

    assert not error_of((503, {}, status(503, "ServiceUnavailable", "etcd is down"))).transient
    assert not error_of((429, {"Retry-After": "0"}, status(429, "TooManyRequests", "slow down"))).transient
    dropped = error_of((0, {}, None))
    assert isinstance(dropped, Unreachable) and not dropped.transient
    assert len([s for s in script.seen if s[0] == "GET"]) == 3 * 2  # each retried here, to its bound
    import socket

    with socket.socket() as s:  # a port nothing listens on: connections refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cfg = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{closed}"
    (tmp_path / "down.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(Unreachable) as down:
        Kube(KubeTarget("t1", tmp_path / "down.yaml"), policy=RetryPolicy(attempts=3, connect_attempts=2)).get(
            "v1", "ConfigMap", "a", "ns")
    assert down.value.transient  # the server is down or not up yet: the step may wait for it
    forbidden = error_of((403, {}, status(403, "Forbidden", "no")))
    assert isinstance(forbidden, Forbidden) and not forbidden.transient
    assert not error_of((401, {}, status(401, "Unauthorized", "who are you"))).transient
    assert not error_of((400, {}, status(400, "BadRequest", "nonsense"))).transient
    assert not error_of((409, {}, status(409, "Conflict", "the object has been modified"))).transient
    # TLS that cannot be verified (here: a plain HTTP server behind an https:// URL) is never transient
    cfg = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    (tmp_path / "tls.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(Unreachable, match="TLS") as e:
        Kube(KubeTarget("t1", tmp_path / "tls.yaml"), policy=RetryPolicy(attempts=3)).server_version()
    assert not e.value.transient


def test_ready_is_what_readyz_says(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    script.on("GET", "/readyz", (200, {}, b"ok"), (500, {}, b"[-]etcd failed"))
    kube = kube_for(tmp_path, port, attempts=1)
    assert kube.ready()
    assert not kube.ready()  # a 500: not ready (after the policy's attempts), never an exception


def test_ready_is_false_when_nothing_answers(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not kube_for(tmp_path, port, attempts=1, connect_attempts=1).ready()


def _node(name: str, ready: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "3"},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def _local_with_kubeconfig(tmp_path: Path, port: int) -> Any:
    from fleet.local.clusters import LocalClusters

    lc = LocalClusters(tmp_path / "local")
    kube_for(tmp_path, port)  # writes tmp_path/kubeconfig
    lc.kubeconfig_path("c1").parent.mkdir(parents=True, exist_ok=True)
    lc.kubeconfig_path("c1").write_text((tmp_path / "kubeconfig").read_text())
    return lc


def test_a_local_cluster_is_healthy_when_its_api_server_is_ready(server: tuple[Script, int], tmp_path: Path) -> None:
    script, port = server
    lc = _local_with_kubeconfig(tmp_path, port)
    script.on("GET", "/readyz", (200, {}, b"ok"))
    assert lc.healthy("c1")
    assert not lc.healthy("c2")  # no kubeconfig: not healthy, nothing asked
    script.on("GET", "/readyz", (503, {}, b"not ready"))
    assert not lc.healthy("c1")


def test_local_nodes_are_waited_for_by_watching_them(server: tuple[Script, int], tmp_path: Path) -> None:
    from fleet.errors import LocalClusterError

    script, port = server
    lc = _local_with_kubeconfig(tmp_path, port)
    script.on("GET", "/api/v1/nodes", (200, {}, {"metadata": {"resourceVersion": "5"},
                                                  "items": [_node("n0", "True"), _node("n1", "False")]}))
    stream = json.dumps({"type": "MODIFIED", "object": _node("n1", "True")}).encode() + b"\n"
    script.on("GET", "/api/v1/nodes?watch", (200, {}, stream))
    lc._wait_nodes_ready("c1", 2, timeout=20)  # n1 became Ready through the watch
    with pytest.raises(LocalClusterError, match="did not become Ready within 1s") as e:
        lc._wait_nodes_ready("c1", 3, timeout=1)  # a third node never comes
    assert e.value.transient
