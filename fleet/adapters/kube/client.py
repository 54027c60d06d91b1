"""The Kubernetes client: the one place the ``kubernetes`` library is used.

Every API call goes through :meth:`Kube._call`, which turns library errors into fleet's
(:class:`~fleet.errors.Unreachable`, :class:`~fleet.errors.Forbidden`, :class:`~fleet.errors.KubeError`
carrying the API server's own message) and holds the retry policy (tenacity). Only what is transient
is retried: connection errors and timeouts, HTTP 5xx, 429 (honouring ``Retry-After``) and 409
"object has been modified" conflicts (the next attempt re-reads the object server-side). Everything
else fails at once. It is also where an error is classified for the layers above (see
:mod:`fleet.errors`): a connection failure, timeout, 5xx or 429 still failing once the retries are
spent comes out ``transient``; TLS verification, 401/403 (:class:`~fleet.errors.Forbidden`), 404, a
conflict and every other refusal do not.

One :class:`Kube` per cluster and policy is kept (:meth:`Kube.connect`), so one connection pool (sized
for the callers' parallelism) serves every thread. A plain kubeconfig (a CA, a client certificate or a
token) is read by :mod:`fleet.adapters.kube.kubeconfig` without importing the library; any other goes
through the library's loader and ``ApiClient``.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import tenacity
import urllib3

from fleet.adapters.kube.kubeconfig import load_plain
from fleet.adapters.kube.model import Applied, KubeTarget, Obj, ObjectList, Resource, RetryPolicy
from fleet.errors import ApiRefused, Forbidden, InputError, KubeError, NotFound, NotServed, Unreachable

__all__ = ["FIELD_MANAGER", "Kube"]

FIELD_MANAGER = "fleet"
_METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


def _file_identity(path: Path | None) -> tuple[int, ...]:
    if path is None:
        return ()
    try:
        st = path.stat()
    except OSError:
        return ()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class _Transient(Exception):
    def __init__(
        self, error: KubeError, retry_after: float | None = None, *, connect: bool = False, conflict: bool = False
    ) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after
        self.conflict = conflict  # 409 Conflict: retried unless the caller's precondition is the point
        self.connect = connect  # the connection could not even be made


class _StopConnecting(tenacity.stop.stop_base):
    """Stop after ``attempts`` failures to even connect (NewConnectionError is a ConnectTimeoutError)."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def __call__(self, state: tenacity.RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        return isinstance(exc, _Transient) and exc.connect and state.attempt_number >= self.attempts


def _built_in() -> dict[tuple[str, str], Resource]:
    """GA kinds every supported API server serves: no discovery round trip for them."""
    table = {
        "v1": [("ConfigMap", "configmaps", True), ("Secret", "secrets", True), ("Service", "services", True),
               ("ServiceAccount", "serviceaccounts", True), ("Pod", "pods", True), ("Event", "events", True),
               ("PersistentVolumeClaim", "persistentvolumeclaims", True), ("Namespace", "namespaces", False),
               ("Node", "nodes", False), ("PersistentVolume", "persistentvolumes", False)],
        "apps/v1": [("Deployment", "deployments", True), ("StatefulSet", "statefulsets", True),
                    ("DaemonSet", "daemonsets", True), ("ReplicaSet", "replicasets", True)],
        "batch/v1": [("Job", "jobs", True), ("CronJob", "cronjobs", True)],
        "coordination.k8s.io/v1": [("Lease", "leases", True)],
        "apiextensions.k8s.io/v1": [("CustomResourceDefinition", "customresourcedefinitions", False)],
        "rbac.authorization.k8s.io/v1": [("Role", "roles", True), ("RoleBinding", "rolebindings", True),
                                         ("ClusterRole", "clusterroles", False),
                                         ("ClusterRoleBinding", "clusterrolebindings", False)],
    }
    out = {}
    for api_version, kinds in table.items():
        group, version = _split_api_version(api_version)
        for kind, plural, namespaced in kinds:
            out[(api_version, kind)] = Resource(group, version, kind, plural, namespaced)
    return out


def _split_api_version(api_version: str) -> tuple[str, str]:
    if "/" in api_version:
        g, v = api_version.split("/", 1)
        return g, v
    return "", api_version


_BUILT_IN: dict[tuple[str, str], Resource] = {}


def _reason(e: BaseException) -> str:
    """A short reason from a urllib3/socket error: 'Connection refused', 'read timed out', ..."""
    inner: BaseException = e
    if isinstance(e, urllib3.exceptions.MaxRetryError) and e.reason is not None:
        inner = e.reason
    text = str(inner)
    if isinstance(inner, urllib3.exceptions.ProtocolError) and inner.args:
        last = inner.args[-1]
        text = str(last) if isinstance(last, BaseException) else text
    if "] " in text:
        text = text.rsplit("] ", 1)[1]
    elif ": " in text:
        text = text.rsplit(": ", 1)[1]
    return text.strip().strip("()'\"") or type(inner).__name__


_BUILT_IN.update(_built_in())


class Kube:
    """A client for one cluster. Thread-safe; get one with :meth:`connect`."""

    _cache: ClassVar[dict[tuple[KubeTarget, RetryPolicy, int, tuple[int, ...]], Kube]] = {}
    _cache_lock = threading.Lock()

    def __init__(
        self, target: KubeTarget, *, policy: RetryPolicy = RetryPolicy(), pool_size: int = 16
    ) -> None:
        self.target = target
        self.policy = policy
        if target.kubeconfig is not None and not Path(target.kubeconfig).expanduser().is_file():
            raise NotFound(f'kubeconfig {target.kubeconfig} of cluster "{target.cluster}" does not exist')
        plain = load_plain(Path(target.kubeconfig), target.context) if target.kubeconfig is not None else None
        self._api: Any = None  # the library's ApiClient, when it read the kubeconfig
        self.host: str = ""
        self._pool: Any = None
        self._token: Callable[[], str | None]
        if plain is not None:  # read without the kubernetes library (see fleet.adapters.kube.kubeconfig)
            self.host = plain.host
            kw: dict[str, Any] = {"maxsize": max(4, pool_size)}
            if plain.ssl_context is not None:
                kw.update(ssl_context=plain.ssl_context, cert_reqs="CERT_REQUIRED" if plain.verify else "CERT_NONE")
                if not plain.verify:
                    kw["assert_hostname"] = False
                    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
            self._pool = urllib3.connectionpool.connection_from_url(plain.host, **kw)
            token = f"Bearer {plain.token}" if plain.token else None
            self._token = lambda: token
        else:
            self._connect_library(target, pool_size)
        self._prefix = urlsplit(self.host).path.rstrip("/")
        self._discovery: dict[str, tuple[float, dict[str, Resource]]] = {}
        self._disc_lock = threading.Lock()

    def _connect_library(self, target: KubeTarget, pool_size: int) -> None:
        """Every other kubeconfig (exec plugins, auth providers, merged KUBECONFIG lists, in-cluster):
        through the ``kubernetes`` library, loaded only now (it costs about a third of a second)."""
        from kubernetes import client as k8s_client
        from kubernetes import config as k8s_config
        from kubernetes.config.config_exception import ConfigException

        cfg = type.__call__(k8s_client.Configuration)
        try:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(Path(target.kubeconfig).expanduser()) if target.kubeconfig else None,
                context=target.context,
                client_configuration=cfg,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError, TypeError) as e:
            where = target.kubeconfig or "the default kubeconfig"
            ctx = f' (context "{target.context}")' if target.context else ""
            raise InputError(f'cannot use {where}{ctx} for cluster "{target.cluster}": {e}') from e
        cfg.connection_pool_maxsize = max(4, pool_size)
        cfg.retries = False  # tenacity retries here, urllib3 must not
        if not cfg.verify_ssl:
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        self.host = cfg.host
        self._api = k8s_client.ApiClient(cfg)
        self._pool = self._api.rest_client.pool_manager.connection_from_url(cfg.host)

        def token() -> str | None:
            auth = cfg.auth_settings().get("BearerToken")  # refreshed by the library (exec plugins)
            return str(auth["value"]) if auth and auth.get("value") else None

        self._token = token

    @classmethod
    def connect(cls, target: KubeTarget, *, policy: RetryPolicy = RetryPolicy(), pool_size: int = 16) -> Kube:
        """The shared client of ``target`` (one connection pool per cluster and policy)."""
        # A rebuilt cluster gets a new kubeconfig at the same path (new port, new CA): the file's
        # identity is part of the key, so a client of the lost cluster is never reused.
        key = (target, policy, pool_size, _file_identity(target.kubeconfig))
        with cls._cache_lock:
            kube = cls._cache.get(key)
            if kube is None:
                kube = cls._cache[key] = cls(target, policy=policy, pool_size=pool_size)
            return kube

    def close(self) -> None:
        with self._cache_lock:
            for k, v in list(self._cache.items()):
                if v is self:
                    del self._cache[k]
        if self._api is not None:
            self._api.close()
        else:
            self._pool.close()

    # ------------------------------------------------------------------ the choke point

    def _once(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None,
        body: Any,
        content_type: str | None,
        what: str,
        timeout: tuple[float, float] | None,
        stream: bool,
        accept: str = "application/json",
    ) -> tuple[int, bytes, Any]:
        # The ApiClient's own connection pool (its TLS, proxy and auth settings), without the generated
        # layer's per-request serialisation: the client's CPU is what limits parallel applies.
        headers = {"Accept": accept, "User-Agent": "fleet"}
        auth = self._token()
        if auth:
            headers["Authorization"] = auth
        data_out: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            data_out = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) \
                else json.dumps(body, separators=(",", ":")).encode()
        url = self._prefix + path + ("?" + urlencode(query) if query else "")
        connect, read = timeout or (self.policy.connect_timeout, self.policy.read_timeout)
        try:
            resp = self._pool.urlopen(
                method, url, body=data_out, headers=headers, retries=False, redirect=False,
                timeout=urllib3.Timeout(connect=connect, read=read), preload_content=False,
                assert_same_host=False,
            )
            if stream and 200 <= resp.status < 300:
                return resp.status, b"", resp
            data = resp.data or b""
        except urllib3.exceptions.SSLError as e:
            if "CERTIFICATE_VERIFY_FAILED" in str(e) or "WRONG_VERSION_NUMBER" in str(e):  # not transient
                raise Unreachable(
                    f'cluster "{self.target.cluster}": {what}: TLS with {self.host} failed: {_reason(e)}'
                ) from e
            err = Unreachable(
                f'cluster "{self.target.cluster}": {what}: TLS with {self.host} broke: {_reason(e)}'
            )
            raise _Transient(err) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            err = Unreachable(
                f'cluster "{self.target.cluster}": {what}: API server {self.host} unreachable: {_reason(e)}'
            )
            inner = e.reason if isinstance(e, urllib3.exceptions.MaxRetryError) else e
            raise _Transient(err, connect=isinstance(inner, urllib3.exceptions.ConnectTimeoutError)) from e
        if resp.status >= 400:
            raise self._status_error(resp.status, data, resp.headers, what)
        return resp.status, data, None

    def _status_error(self, status: int, data: bytes, headers: Mapping[str, str], what: str) -> Exception:
        message, reason = "", ""
        try:
            st = json.loads(data)
            if not isinstance(st, dict):
                raise ValueError("not a Status")
            message, reason = str(st.get("message") or ""), str(st.get("reason") or "")
        except ValueError:
            message = data.decode(errors="replace").strip()[:300]
        message = message or f"HTTP {status}"
        text = f'cluster "{self.target.cluster}": {what}: {message}'
        if status in (401, 403):
            hint = "check the credentials of this cluster's kubeconfig" if status == 401 else None
            return Forbidden(text if status == 403 else f"{text} (credentials rejected)", hint=hint)
        error = ApiRefused(text, status=status, reason=reason)
        if status >= 500 and "failed calling webhook" in message:
            return error  # an admission webhook that fails or never answers: the cluster's, said at once
        if status == 429 or status >= 500:
            retry_after: float | None = None
            with contextlib.suppress(TypeError, ValueError):
                retry_after = float(headers.get("Retry-After", ""))
            return _Transient(error, retry_after)
        if status == 409 and reason == "Conflict":
            return _Transient(error, conflict=True)  # optimistic-concurrency conflict: the next try re-reads
        return error

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return float(min(max(exc.retry_after, 0.0), 30.0))
        base: float = min(0.2 * 2.0 ** (state.attempt_number - 1), 5.0)
        return base * (0.5 + random.random())

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str | None = None,
        what: str = "request",
        timeout: tuple[float, float] | None = None,
        stream: bool = False,
        retry_conflicts: bool = True,
        accept: str = "application/json",
    ) -> tuple[int, bytes, Any]:
        """Make one API call with the retry policy. Returns (status, body, stream response or None)."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(
                lambda e: isinstance(e, _Transient) and (retry_conflicts or not e.conflict)
            ),
            stop=(
                tenacity.stop_after_attempt(self.policy.attempts)
                | tenacity.stop_after_delay(self.policy.budget_s)
                | _StopConnecting(self.policy.connect_attempts)
            ),
            wait=self._wait,
            reraise=True,
        )
        try:
            return retrying(
                self._once, method, path, query=query, body=body, content_type=content_type, what=what,
                timeout=timeout, stream=stream, accept=accept,
            )
        except _Transient as t:
            # Retried to this call's bound already (5xx, 429, resets): the step above must not try it all
            # again. Only a server that refuses connections (down, or not up yet: given up on after
            # ``connect_attempts``, soon, by design) is the step's to wait for (docs/reliability.md).
            t.error.transient = t.connect and not t.conflict
            raise t.error from (t.__cause__ or t)

    def _json(self, method: str, path: str, **kw: Any) -> Obj:
        _, data, _ = self._call(method, path, **kw)
        return self._decode(data, kw.get("what", "request"))

    def _decode(self, data: bytes, what: str) -> Obj:
        where = f'cluster "{self.target.cluster}": {what}'
        try:
            out = json.loads(data) if data else {}
        except ValueError as e:
            raise KubeError(f"{where}: the answer is not JSON: {data[:80]!r}") from e
        if not isinstance(out, dict):
            raise KubeError(f"{where}: the answer is not a JSON object: {data[:80]!r}")
        return out

    # ------------------------------------------------------------------ discovery

    def _group_resources(self, api_version: str, *, refresh: bool) -> dict[str, Resource]:
        with self._disc_lock:
            hit = self._discovery.get(api_version)
            if hit and not (refresh and time.monotonic() - hit[0] > 1.0):
                return hit[1]
        group, version = _split_api_version(api_version)
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        try:
            doc = self._json("GET", path, what=f"discovery of {api_version}")
        except ApiRefused as e:
            if e.status != 404:
                raise
            doc = {}
        kinds: dict[str, Resource] = {}
        for r in doc.get("resources", []):
            if "/" in r.get("name", ""):
                continue  # subresources
            kinds[r["kind"]] = Resource(group, version, r["kind"], r["name"], bool(r.get("namespaced")))
        with self._disc_lock:
            self._discovery[api_version] = (time.monotonic(), kinds)
        return kinds

    def find_resource(self, api_version: str, kind: str) -> Resource | None:
        """The kind as served, or None (looked up again when it was missing: CRDs appear)."""
        known = _BUILT_IN.get((api_version, kind))
        if known is not None:
            return known
        res = self._group_resources(api_version, refresh=False).get(kind)
        if res is None:
            res = self._group_resources(api_version, refresh=True).get(kind)
        return res

    def resource(self, api_version: str, kind: str) -> Resource:
        res = self.find_resource(api_version, kind)
        if res is None:
            raise NotServed(
                f'cluster "{self.target.cluster}": the API server serves no kind {kind} in {api_version}',
                hint="is its CustomResourceDefinition installed?",
            )
        return res

    def wait_served(self, api_version: str, kind: str, timeout: float) -> Resource:
        """The kind of a CRD that was just Established: the API server's discovery can lag behind that
        condition for a moment, so look again (discovery refreshed each time) until it is served, or
        raise NotServed after ``timeout`` seconds."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_fixed(0.2),
            retry=tenacity.retry_if_exception_type(NotServed),
            reraise=True,
        )
        res: Resource = retrying(self.resource, api_version, kind)
        return res

    def forget_discovery(self, api_version: str | None = None) -> None:
        with self._disc_lock:
            if api_version is None:
                self._discovery.clear()
            else:
                self._discovery.pop(api_version, None)

    # ------------------------------------------------------------------ objects

    def server_version(self) -> str:
        return str(self._json("GET", "/version", what="version").get("gitVersion", "?"))

    def ready(self) -> bool:
        """Whether the API server says it is ready (``GET /readyz`` answers 200), within the client's
        policy; an API server that does not answer, or answers not ready, is not."""
        try:
            status, _, _ = self._call("GET", "/readyz", what="readyz")
        except KubeError:
            return False
        return status == 200

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        res = self.find_resource(api_version, kind)
        if res is None:
            return None
        try:
            return self._json("GET", res.path(namespace, name), what=f"get {_show(kind, namespace, name)}")
        except ApiRefused as e:
            if e.status == 404:
                return None
            raise

    def list_objects(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
    ) -> ObjectList:
        """Every object of a kind (all pages). An unserved kind lists as empty. ``metadata_only``: each
        object's ``apiVersion``, ``kind`` and ``metadata`` only (the API server's PartialObjectMetadata)."""
        res = self.find_resource(api_version, kind)
        if res is None:
            return ObjectList((), "")
        items: list[Obj] = []
        query = [("limit", "500")]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        cont, rv = "", ""
        while True:
            q = [*query, ("continue", cont)] if cont else query
            doc = self._json("GET", res.path(namespace), query=q, what=f"list {kind}",
                             accept=_METADATA_LIST if metadata_only else "application/json")
            for item in doc.get("items") or []:
                if metadata_only:  # PartialObjectMetadata: named as the object it describes
                    item["apiVersion"], item["kind"] = res.api_version, kind
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", kind)
                items.append(item)
            meta = doc.get("metadata") or {}
            rv = str(meta.get("resourceVersion") or rv)
            cont = str(meta.get("continue") or "")
            if not cont:
                return ObjectList(tuple(items), rv)

    def apply(
        self, obj: Mapping[str, Any], *, dry_run: bool = False, force: bool = True, decode: bool = True,
        retry_conflicts: bool = True, field_manager: str = FIELD_MANAGER,
    ) -> Applied:
        """Server-side apply of ``obj`` with field manager ``fleet`` (``decode`` False: skip parsing
        the answer, whose object is then empty: sync only needs to know it was created).
        ``retry_conflicts`` False: a ``metadata.resourceVersion`` precondition that fails raises
        :class:`ApiRefused` (409) at once."""
        meta = obj.get("metadata") or {}
        res = self.resource(str(obj.get("apiVersion")), str(obj.get("kind")))
        ns = meta.get("namespace") if res.namespaced else None
        query = [("fieldManager", field_manager), ("force", "true" if force else "false")]
        if dry_run:
            query.append(("dryRun", "All"))
        status, data, _ = self._call(
            "PATCH", res.path(ns or ("default" if res.namespaced else None), meta["name"]),
            query=query, body=json.dumps(obj, separators=(",", ":")),
            content_type="application/apply-patch+yaml",
            what=f"apply {_show(res.kind, ns, meta['name'])}", retry_conflicts=retry_conflicts,
        )
        return Applied(self._decode(data, "apply") if decode else {}, created=status == 201)

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, uid: str | None = None
    ) -> bool:
        """Delete (background propagation). False when it was already gone."""
        res = self.find_resource(api_version, kind)
        if res is None:
            return False
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self._call("DELETE", res.path(namespace, name), body=body, content_type="application/json",
                       what=f"delete {_show(kind, namespace, name)}")
        except ApiRefused as e:
            if e.status == 404:
                return False
            raise
        return True

    def request_token(self, namespace: str, service_account: str, *, seconds: int = 3600) -> str:
        """A bound token of a ServiceAccount (TokenRequest API), for kubeconfigs with limited rights."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds}}
        doc = self._json("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                         body=body, content_type="application/json",
                         what=f"token of ServiceAccount {namespace}/{service_account}")
        return str((doc.get("status") or {}).get("token") or "")

    def events_for(self, kind: str, name: str, namespace: str | None, *, limit: int = 5) -> list[str]:
        """The most recent Events about an object, as 'Type Reason: message' lines."""
        sel = f"involvedObject.kind={kind},involvedObject.name={name}"
        try:
            items = self.list_objects("v1", "Event", namespace=namespace, field_selector=sel).items
        except KubeError:
            return []

        def when(e: Obj) -> str:
            meta = e.get("metadata") or {}
            return str(e.get("lastTimestamp") or e.get("eventTime") or meta.get("creationTimestamp") or "")

        out = []
        for ev in sorted(items, key=when)[-limit:]:
            count = f" (x{ev['count']})" if (ev.get("count") or 1) > 1 else ""
            message = str(ev.get("message", "")).strip()
            out.append(f"{ev.get('type', '')} {ev.get('reason', '')}: {message}{count}")
        return out


def _show(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
