from __future__ import annotations

import httpx
import pytest

from heimdall.core.settings import Settings
from heimdall.core.storage import ObjectStore, ObjectStoreError, ObjectStoreUnavailable


def test_put_get_list_and_delete_prefix(object_store: ObjectStore, settings: Settings) -> None:
    bucket = settings.s3_bucket_raw
    object_store.put_bytes(bucket, "sessions/t1/a.bin", b"\x00\x01\x02")
    object_store.put_bytes(bucket, "sessions/t1/b.bin", b"xyz")
    object_store.put_bytes(bucket, "sessions/t2/a.bin", b"keep")
    assert object_store.get_bytes(bucket, "sessions/t1/a.bin") == b"\x00\x01\x02"
    assert sorted(object_store.list_keys(bucket, "sessions/t1/")) == [
        "sessions/t1/a.bin",
        "sessions/t1/b.bin",
    ]
    assert object_store.delete_prefix(bucket, "sessions/t1/") == 2
    assert list(object_store.list_keys(bucket, "sessions/t1/")) == []
    assert object_store.get_bytes(bucket, "sessions/t2/a.bin") == b"keep"


def test_anonymous_access_is_refused(object_store: ObjectStore, settings: Settings) -> None:
    object_store.put_bytes(settings.s3_bucket_raw, "private.txt", b"secret")
    response = httpx.get(f"{settings.s3_endpoint}/{settings.s3_bucket_raw}/private.txt")
    assert response.status_code == 403
    assert b"secret" not in response.content


def test_wrong_credentials_are_refused(object_store: ObjectStore, settings: Settings) -> None:
    wrong = settings.model_copy(update={"s3_secret_key": settings.s3_secret_key.__class__("nope")})
    with pytest.raises(ObjectStoreError):
        ObjectStore(wrong).ping()


def test_unreachable_store_names_itself(settings: Settings) -> None:
    dead = settings.model_copy(update={"s3_endpoint": "http://127.0.0.1:9"})
    with pytest.raises(
        ObjectStoreUnavailable, match="MinIO/S3 object storage unreachable at http://127.0.0.1:9"
    ):
        ObjectStore(dead, timeout_s=1).ping()
