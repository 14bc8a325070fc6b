from __future__ import annotations

import io
import zipfile

from pixtools_worker_standard.bundle import BundleEntry, build_bundle, entry_name


def test_bundle_deterministic() -> None:
    entries = [
        BundleEntry("jpg.jpg", b"\xff\xd8jpeg"),
        BundleEntry("metadata.json", b'{"a": 1}' * 50),
    ]

    assert build_bundle(entries) == build_bundle(list(entries))


def test_bundle_contents_and_compression() -> None:
    archive = build_bundle(
        [BundleEntry("png.png", b"PNGDATA"), BundleEntry("metadata.json", b"{}" * 100)]
    )

    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        infos = opened.infolist()
        assert [info.filename for info in infos] == ["png.png", "metadata.json"]
        assert infos[0].compress_type == zipfile.ZIP_STORED
        assert infos[1].compress_type == zipfile.ZIP_DEFLATED
        assert infos[0].date_time == (1980, 1, 1, 0, 0, 0)
        assert opened.read("png.png") == b"PNGDATA"
        assert opened.testzip() is None


def test_entry_name() -> None:
    assert entry_name("webp", "webp") == "webp.webp"
    assert entry_name("denoise", "png") == "denoise.png"
