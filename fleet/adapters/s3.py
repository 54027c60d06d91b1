"""A shared Pulumi state backend on S3 (or any S3-compatible server): the only module that imports boto3.

Pulumi's own URL names the bucket (``s3://BUCKET[/PREFIX]?endpoint=...&s3ForcePathStyle=true&region=...``);
:func:`parse_url` reads it the way Pulumi's blob opener does, :class:`Bucket` reads, lists and removes
the objects fleet looks at beside the engine (the stack locks, a dry run's copy of the checkpoints, the
bytes a test compares). Credentials come from the AWS SDK's own chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, a ``profile=`` in the URL, ...), as the engine reads them: fleet never
prints, stores or passes them on.

Errors become fleet's, naming the backend URL and never a credential:

    the server down, a timeout, 5xx (after the SDK's retries)   BackendUnreachable (exit 1, transient)
    no such bucket                                              BackendRefused (exit 2)
    credentials refused (unknown key, bad signature, 403)       BackendRefused (exit 2)

A conditional write (:meth:`Bucket.put` with ``if_none_match`` or ``if_match``: S3's ``If-None-Match: *`` and
``If-Match: ETAG``) whose condition does not hold is no error: it gives None (HTTP 412, or 409 when two
conditional writes met), which is what a compare-and-swap needs (:mod:`fleet.adapters.leases`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

from fleet.errors import BackendRefused, BackendUnreachable

__all__ = ["Bucket", "S3Location", "Stored", "parse_url"]

_TRUE = ("true", "1", "yes")


@dataclass(frozen=True)
class S3Location:
    """Where a Pulumi ``s3://`` backend keeps its objects."""

    url: str  # as given (it holds no credential: Pulumi's S3 URLs never do)
    bucket: str
    prefix: str = ""  # "" or "some/path/" (Pulumi's objects then live under it)
    endpoint: str | None = None
    region: str | None = None
    path_style: bool = False
    profile: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def key(self, name: str) -> str:
        return self.prefix + name


@dataclass(frozen=True)
class Stored:
    """An object as read, with what a compare-and-swap needs: its ETag, and its age by the server's clock
    (the server's ``Date`` of the answer minus the object's ``Last-Modified``, both the server's)."""

    body: bytes
    etag: str
    age_s: float


def parse_url(url: str) -> S3Location | None:
    """The bucket a ``s3://`` backend URL names; None for any other backend."""
    u = urlparse(url)
    if u.scheme != "s3" or not u.netloc:
        return None
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    prefix = u.path.strip("/")
    return S3Location(
        url=url,
        bucket=u.netloc,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=q.get("endpoint") or None,
        region=q.get("region") or None,
        path_style=(q.get("s3ForcePathStyle") or q.get("use_path_style") or "").lower() in _TRUE,
        profile=q.get("profile") or None,
        options=q,
    )


def display_url(url: str) -> str:
    """The backend URL for a message: scheme, bucket, path and endpoint only (no query secrets)."""
    loc = parse_url(url)
    if loc is None:
        return url
    where = f"s3://{loc.bucket}/{loc.prefix}".rstrip("/")
    return f"{where} (endpoint {loc.endpoint})" if loc.endpoint else where


class Bucket:
    """The objects of one ``s3://`` backend. ``attempts``: how many times the SDK tries a request that
    failed transiently (connection refused, timeout, 5xx, throttling) before it gives up."""

    def __init__(self, loc: S3Location, *, attempts: int = 4, connect_timeout_s: float = 5,
                 credentials: tuple[str, str] | None = None) -> None:
        """``credentials``: an access key and secret to use instead of the SDK's chain (a server fleet
        started itself, :mod:`fleet.local.backend`)."""
        self.loc = loc
        self._attempts = attempts
        self._connect_timeout_s = connect_timeout_s
        self._credentials = credentials
        self._made: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        """The SDK's client, made on first use (credentials are read then, as the engine reads them)."""
        with self._lock:
            if self._made is None:
                import boto3
                from botocore.config import Config

                ak, sk = self._credentials or (None, None)
                session = boto3.session.Session(profile_name=self.loc.profile, aws_access_key_id=ak,
                                                aws_secret_access_key=sk)
                self._made = session.client(
                    "s3",
                    endpoint_url=self.loc.endpoint,
                    region_name=self.loc.region or "us-east-1",
                    config=Config(
                        retries={"max_attempts": self._attempts, "mode": "standard"},
                        connect_timeout=self._connect_timeout_s,
                        read_timeout=30,
                        s3={"addressing_style": "path" if self.loc.path_style else "auto"},
                    ),
                )
            return self._made

    # -- the choke point ---------------------------------------------------------------------------

    def _call(self, op: str, *, missing_ok: bool = False, conditional: bool = False, **kwargs: Any) -> Any:
        """The SDK's ``op``, its errors made fleet's; ``missing_ok``: a missing object gives None;
        ``conditional``: a condition that does not hold (412, or 409 for two conditional writes at once)
        gives None."""
        from botocore import exceptions as bx

        where = display_url(self.loc.url)
        try:
            return getattr(self._client(), op)(**kwargs)
        except bx.NoCredentialsError as e:
            raise BackendRefused(
                f"no credentials for the Pulumi backend {where}",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile) for it",
            ) from e
        except bx.ClientError as e:
            err = e.response.get("Error", {})
            code = str(err.get("Code") or "")
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if missing_ok and code in ("NoSuchKey", "404"):
                return None
            if conditional and (status in (409, 412) or code in ("PreconditionFailed",
                                                                 "ConditionalRequestConflict")):
                return None
            if code == "NoSuchBucket" or (op == "head_bucket" and status == 404):
                raise BackendRefused(f"the Pulumi backend's bucket does not exist: {where}",
                                     hint="create the bucket, or fix PULUMI_BACKEND_URL") from e
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken",
                        "ExpiredToken", "AuthorizationHeaderMalformed") or status in (401, 403):
                raise BackendRefused(
                    f"the Pulumi backend {where} refused the credentials ({code or status})",
                    hint="check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for this backend",
                ) from e
            if status >= 500 or status == 429 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
                raise BackendUnreachable(
                    f"the Pulumi backend {where} answered {status or code} after {self._attempts} attempts",
                    transient=True,
                ) from e
            raise BackendRefused(f"the Pulumi backend {where} refused {op} ({code or status})") from e
        except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                bx.ConnectionClosedError) as e:
            raise BackendUnreachable(
                f"the Pulumi backend {where} cannot be reached after {self._attempts} attempts",
                hint="is the S3 server up? (`fleet local backend status` for a local one)",
                transient=True,
            ) from e
        except bx.BotoCoreError as e:
            raise BackendUnreachable(f"the Pulumi backend {where} failed: {type(e).__name__}", transient=True) from e

    # -- operations ---------------------------------------------------------------------------------

    def check(self) -> None:
        """The bucket exists and the credentials are accepted (one HEAD); fleet's errors otherwise."""
        self._call("head_bucket", Bucket=self.loc.bucket)

    def keys(self, under: str = "") -> Iterator[str]:
        """Every object's key under ``PREFIX + under``, relative to the backend's prefix, in order."""
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": self.loc.bucket, "Prefix": self.loc.key(under)}
            if token:
                kw["ContinuationToken"] = token
            page = self._call("list_objects_v2", **kw)
            for obj in page.get("Contents") or ():
                yield str(obj["Key"])[len(self.loc.prefix):]
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def get(self, name: str) -> bytes | None:
        """The object's bytes; None when there is none."""
        resp = self._call("get_object", missing_ok=True, Bucket=self.loc.bucket, Key=self.loc.key(name))
        return None if resp is None else bytes(resp["Body"].read())

    def read(self, name: str) -> Stored | None:
        """The object with its ETag and its age by the server's clock; None when there is none."""
        resp = self._call("get_object", missing_ok=True, Bucket=self.loc.bucket, Key=self.loc.key(name))
        if resp is None:
            return None
        body = bytes(resp["Body"].read())
        modified = resp.get("LastModified")
        date = (resp.get("ResponseMetadata", {}).get("HTTPHeaders") or {}).get("date")
        try:
            now = parsedate_to_datetime(date) if date else datetime.now(UTC)
        except (TypeError, ValueError):
            now = datetime.now(UTC)
        age = (now - modified).total_seconds() if isinstance(modified, datetime) else 0.0
        return Stored(body, str(resp.get("ETag") or ""), max(age, 0.0))

    def put(self, name: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str | None:
        """Write the object whole (a PUT is atomic) and give its ETag. ``if_none_match``: only when there is
        none yet; ``if_match``: only when its ETag is still that one. None when the condition did not hold."""
        kw: dict[str, Any] = {"Bucket": self.loc.bucket, "Key": self.loc.key(name), "Body": body,
                              "ContentType": "application/json"}
        if if_none_match:
            kw["IfNoneMatch"] = "*"
        if if_match is not None:
            kw["IfMatch"] = if_match
        resp = self._call("put_object", conditional=if_none_match or if_match is not None, **kw)
        return None if resp is None else str(resp.get("ETag") or "")

    def delete(self, name: str) -> None:
        self._call("delete_object", Bucket=self.loc.bucket, Key=self.loc.key(name))

    def digests(self) -> dict[str, str]:
        """Every object of the bucket (all prefixes) and the sha256 of its bytes: what a read-only
        command must leave as it found it."""
        out: dict[str, str] = {}
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Bucket": self.loc.bucket}
            if token:
                kw["ContinuationToken"] = token
            page = self._call("list_objects_v2", **kw)
            for obj in page.get("Contents") or ():
                body = self._call("get_object", Bucket=self.loc.bucket, Key=obj["Key"])["Body"].read()
                out[str(obj["Key"])] = hashlib.sha256(body).hexdigest()
            if not page.get("IsTruncated"):
                return out
            token = page.get("NextContinuationToken")
