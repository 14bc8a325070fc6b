"""One contract, two backends: FilesystemStorage and S3Storage on moto."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pixtools_shared.settings import Settings
from pixtools_shared.storage import (
    FilesystemStorage,
    InvalidStorageKeyError,
    ObjectNotFoundError,
    ObjectStorage,
    S3Storage,
    StorageError,
    create_storage,
)
from pixtools_shared.testing import free_port, moto_s3_endpoint

SECRET = "unit-test-secret-with-enough-length-0001"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_s3_endpoint() as endpoint:
        yield endpoint


def _s3_storage(endpoint: str, suffix: str) -> S3Storage:
    storage = S3Storage(
        {
            "uploads": f"uploads-{suffix}",
            "outputs": f"outputs-{suffix}",
            "bundles": f"bundles-{suffix}",
        },
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
    )
    storage.ensure_buckets()
    return storage


@pytest.fixture(params=["filesystem", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStorage]:
    if request.param == "filesystem":
        yield FilesystemStorage(tmp_path / "storage", SECRET, "http://127.0.0.1:1")
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    yield _s3_storage(endpoint, request.node.name.split("[")[0][-20:].replace("_", "-"))


def test_put_get_round_trip(storage: ObjectStorage) -> None:
    storage.put("outputs", "job-1/jpg.jpg", b"\xff\xd8data", "image/jpeg")

    assert storage.get("outputs", "job-1/jpg.jpg") == b"\xff\xd8data"
    assert storage.exists("outputs", "job-1/jpg.jpg") is True


def test_put_overwrites(storage: ObjectStorage) -> None:
    storage.put("bundles", "job-2.zip", b"first", "application/zip")
    storage.put("bundles", "job-2.zip", b"second", "application/zip")

    assert storage.get("bundles", "job-2.zip") == b"second"


def test_missing_object_raises_not_found(storage: ObjectStorage) -> None:
    with pytest.raises(ObjectNotFoundError):
        storage.get("uploads", "nope/source")
    assert storage.exists("uploads", "nope/source") is False


def test_delete_missing_is_fine(storage: ObjectStorage) -> None:
    storage.delete("outputs", "never/stored.png")

    assert storage.exists("outputs", "never/stored.png") is False


def test_list_and_delete_prefix(storage: ObjectStorage) -> None:
    for key in ("job-a/jpg.jpg", "job-a/png.png", "job-ab/jpg.jpg", "job-b/x.png"):
        storage.put("outputs", key, key.encode(), "image/png")

    assert storage.list_keys("outputs", "job-a/") == ["job-a/jpg.jpg", "job-a/png.png"]
    assert storage.delete_prefix("outputs", "job-a/") == 2
    assert storage.list_keys("outputs") == ["job-ab/jpg.jpg", "job-b/x.png"]


def test_areas_are_separate(storage: ObjectStorage) -> None:
    storage.put("uploads", "job-c/source", b"src", "image/png")

    assert storage.exists("outputs", "job-c/source") is False
    assert storage.list_keys("outputs", "job-c/") == []


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", ".tmp-x"])
def test_traversal_keys_rejected(storage: ObjectStorage, key: str) -> None:
    with pytest.raises(InvalidStorageKeyError):
        storage.put("outputs", key, b"x", "text/plain")
    with pytest.raises(InvalidStorageKeyError):
        storage.get("outputs", key)


def test_filesystem_write_is_atomic(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "s", SECRET, "http://127.0.0.1:1")
    key = "job-d/png.png"
    old, new = b"A" * 2_000_000, b"B" * 2_000_000
    storage.put("outputs", key, old, "image/png")
    seen: set[bytes] = set()
    stop = threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            data = storage.get("outputs", key)
            seen.add(data[:1] + data[-1:] + str(len(data)).encode())

    reader = threading.Thread(target=read_loop)
    reader.start()
    for _ in range(20):
        storage.put("outputs", key, new, "image/png")
        storage.put("outputs", key, old, "image/png")
    stop.set()
    reader.join()

    assert seen <= {b"AA2000000", b"BB2000000"}
    assert [p.name for p in (tmp_path / "s" / "outputs" / "job-d").iterdir()] == [
        "png.png"
    ]


def test_filesystem_symlink_escape_rejected(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "s", SECRET, "http://127.0.0.1:1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "s" / "outputs" / "link").symlink_to(outside)

    with pytest.raises(StorageError, match="outside its area"):
        storage.put("outputs", "link/file.png", b"x", "image/png")
    assert list(outside.iterdir()) == []


def test_filesystem_download_url_signed(tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path / "s", SECRET, "http://127.0.0.1:8000", 90)

    url = storage.download_url("outputs", "job-e/jpg.jpg", "photo-jpg.jpg")
    query = parse_qs(urlsplit(url).query)

    assert urlsplit(url).path == "/api/files/outputs/job-e/jpg.jpg"
    assert query["filename"] == ["photo-jpg.jpg"]
    assert len(query["signature"][0]) == 64


def test_s3_presigned_url_downloads(moto_endpoint: str) -> None:
    storage = _s3_storage(moto_endpoint, "presign")
    storage.put("outputs", "job-f/webp.webp", b"RIFFdata", "image/webp")

    url = storage.download_url("outputs", "job-f/webp.webp", "photo-webp.webp", 120)
    response = httpx.get(url)

    assert response.status_code == 200
    assert response.content == b"RIFFdata"
    assert response.headers["content-disposition"] == (
        'attachment; filename="photo-webp.webp"'
    )
    assert "X-Amz-Expires=120" in url


def test_s3_unreachable_raises_storage_error() -> None:
    storage = S3Storage(
        {"uploads": "u", "outputs": "o", "bundles": "b"},
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="testing",
        secret_access_key="testing",
        connect_timeout=0.5,
        read_timeout=0.5,
        max_attempts=1,
    )

    with pytest.raises(StorageError, match="could not write outputs/k"):
        storage.put("outputs", "k", b"x", "text/plain")


def test_create_storage_picks_backend(tmp_path: Path, moto_endpoint: str) -> None:
    filesystem = create_storage(Settings(DATA_DIR=tmp_path))
    s3 = create_storage(
        Settings(
            DATA_DIR=tmp_path,
            STORAGE_BACKEND="s3",
            S3_ENDPOINT_URL=moto_endpoint,
            S3_ACCESS_KEY_ID="testing",
            S3_SECRET_ACCESS_KEY="testing",
        )
    )

    assert isinstance(filesystem, FilesystemStorage)
    assert filesystem.root == (tmp_path / "storage").resolve()
    assert isinstance(s3, S3Storage)
