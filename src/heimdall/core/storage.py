"""S3 object storage: the one place that talks to MinIO / SeaweedFS.

Calls are synchronous (the minio SDK); async callers go through
``asyncio.to_thread``. Every failure to reach the server surfaces as
:class:`ObjectStoreUnavailable` whose message names the endpoint, so an
operator reading a failed acquisition knows which dependency went down.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from heimdall.core.settings import Settings, get_settings

P = ParamSpec("P")
T = TypeVar("T")


class ObjectStoreError(RuntimeError):
    """The object store answered, but refused or failed the request."""


class ObjectStoreUnavailable(ObjectStoreError):
    """The object store could not be reached at all."""


def _unreachable(endpoint: str, exc: BaseException) -> ObjectStoreUnavailable:
    return ObjectStoreUnavailable(
        f"MinIO/S3 object storage unreachable at {endpoint}: {type(exc).__name__}: {exc}"
    )


@dataclass(frozen=True, slots=True)
class ObjectRef:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ObjectStore:
    def __init__(self, settings: Settings | None = None, *, timeout_s: float = 5.0) -> None:
        self.settings = settings or get_settings()
        endpoint = urlsplit(self.settings.s3_endpoint)
        self.endpoint = self.settings.s3_endpoint
        # Few, fast retries: a dead store must fail an acquisition in seconds, not minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout_s, read=timeout_s * 4),
            retries=urllib3.Retry(total=1, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
            maxsize=16,
        )
        self.client = Minio(
            endpoint.netloc,
            access_key=self.settings.s3_access_key.get_secret_value(),
            secret_key=self.settings.s3_secret_key.get_secret_value(),
            secure=endpoint.scheme == "https",
            region=self.settings.s3_region,
            http_client=http,
        )

    def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            raise ObjectStoreError(f"object storage at {self.endpoint} refused: {exc}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(self.endpoint, exc) from exc

    def ping(self) -> None:
        """Raise ObjectStoreUnavailable unless the store answers an authenticated request."""
        self._call(self.client.list_buckets)

    def ensure_buckets(self) -> None:
        for bucket in (self.settings.s3_bucket_raw, self.settings.s3_bucket_models):
            if not self._call(self.client.bucket_exists, bucket):
                self._call(self.client.make_bucket, bucket)

    def put_bytes(
        self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectRef:
        self._call(
            self.client.put_object,
            bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
        )
        return ObjectRef(bucket, key)

    def get_bytes(self, bucket: str, key: str) -> bytes:
        response = self._call(self.client.get_object, bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def list_keys(self, bucket: str, prefix: str) -> Iterator[str]:
        objects = self._call(self.client.list_objects, bucket, prefix=prefix, recursive=True)
        try:
            for obj in objects:
                if obj.object_name is not None:
                    yield obj.object_name
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unreachable(self.endpoint, exc) from exc

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many were removed."""
        keys = list(self.list_keys(bucket, prefix))
        if not keys:
            return 0
        errors = self._call(self.client.remove_objects, bucket, [DeleteObject(k) for k in keys])
        failed = list(errors)
        if failed:
            raise ObjectStoreError(f"could not delete {len(failed)} objects under {prefix}")
        return len(keys)


def parse_s3_url(url: str) -> ObjectRef:
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.strip("/"):
        raise ValueError(f"not an s3:// object URL: {url!r}")
    return ObjectRef(parts.netloc, parts.path.lstrip("/"))
