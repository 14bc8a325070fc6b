from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pixtools_worker_ml.data import add_gaussian_noise, psnr_uint8
from pixtools_worker_ml.inference import (
    Denoiser,
    TileOptions,
    load_int8,
)
from pixtools_worker_ml.int8net import Int8Block, Int8DenoiseNet
from pixtools_worker_ml.quantize import (
    QuantizedWeightsError,
    calibration_batches,
    int8_path_for,
    load_quantized,
    quantize,
    save_quantized,
)
from pixtools_worker_ml.testimages import synthetic_photo, to_uint8
from pixtools_worker_ml.testmarks import EXACT_RANGE, exact_range, needs_exact_range
from pixtools_worker_ml.weights_io import load_weights

pytestmark = pytest.mark.skipif(
    "onednn" not in torch.backends.quantized.supported_engines,
    reason="this torch build has no oneDNN quantized engine",
)


@pytest.fixture(scope="module")
def float_and_int8() -> tuple[Denoiser, Denoiser]:
    if EXACT_RANGE is None:
        pytest.skip("this CPU's int8 convolutions saturate even for pair-limited codes")
    whole = TileOptions(0, 0)
    fp32 = Denoiser.load(tiles=whole, precision="fp32", threads=1)
    int8 = Denoiser.load(tiles=whole, precision="int8", threads=1)
    return fp32, int8


def test_bundled_int8_close_to_fp32(
    float_and_int8: tuple[Denoiser, Denoiser],
) -> None:
    fp32, int8 = float_and_int8
    clean = synthetic_photo(160, 200)
    noisy = add_gaussian_noise(clean, 25.0, seed=7)

    fp32_output = fp32.denoise_array(noisy)
    int8_output = int8.denoise_array(noisy)

    assert int8.precision == "int8"
    noisy_psnr = psnr_uint8(noisy, clean)
    fp32_psnr = psnr_uint8(fp32_output, clean)
    int8_psnr = psnr_uint8(int8_output, clean)
    assert int8_psnr > noisy_psnr + 3.0, (noisy_psnr, int8_psnr)
    # Calibrated int8 lost 0.04 to 0.16 dB on CBSD68; 0.5 dB means broken scales.
    assert int8_psnr > fp32_psnr - 0.5, (fp32_psnr, int8_psnr)
    assert psnr_uint8(int8_output, fp32_output) > 38.0


def test_int8_tiles_match_whole_image(
    float_and_int8: tuple[Denoiser, Denoiser],
) -> None:
    _, int8 = float_and_int8
    noisy = add_gaussian_noise(synthetic_photo(150, 190), 15.0, seed=3)
    tiled = Denoiser(
        int8.model,
        tiles=TileOptions(64, 32),
        precision="int8",
        threads=1,
        quantized=int8.network,
    )

    whole_output = int8.denoise_array(noisy)
    tiled_output = tiled.denoise_array(noisy)

    assert np.abs(whole_output - tiled_output).max() < 0.02


@needs_exact_range
def test_saved_int8_graph_reloads(weights_copy: Path) -> None:
    model = load_weights(weights_copy)
    batches = [
        torch.from_numpy(add_gaussian_noise(synthetic_photo(48, 48), sigma, seed=i))
        .permute(2, 0, 1)[None]
        .contiguous()
        for i, sigma in enumerate((10.0, 30.0, 50.0))
    ]
    quantized = quantize(model, batches, exact_range())

    path = save_quantized(quantized, weights_copy, {"crops": 3}, exact_range())
    loaded = load_quantized(load_weights(weights_copy), weights_copy)

    suffix = "" if exact_range() == "full" else "-pairs"
    assert path == weights_copy.with_name(f"model-int8{suffix}.pt")
    assert loaded.weight_range == exact_range()
    description = json.loads(path.with_suffix(".json").read_text())
    assert description["source_weights"] == "model.pt"
    assert description["weight_range"] == exact_range()
    assert description["calibration"] == {"crops": 3}
    built = Int8DenoiseNet.from_graph(model, quantized)
    sample = batches[1]
    with torch.inference_mode():
        assert torch.equal(built(sample), loaded(sample))


@needs_exact_range
def test_stale_int8_weights_rejected(weights_copy: Path) -> None:
    model = load_weights(weights_copy)
    batch = torch.rand(1, 3, 32, 32)
    graph = quantize(model, [batch], exact_range())
    save_quantized(graph, weights_copy, {}, exact_range())
    state = torch.load(weights_copy, weights_only=True)
    state["head.bias"] = state["head.bias"] + 0.01
    torch.save(state, weights_copy)

    with pytest.raises(QuantizedWeightsError, match="run python -m"):
        load_quantized(model, weights_copy)
    assert load_int8(model, weights_copy, required=False) is None
    with pytest.raises(QuantizedWeightsError):
        load_int8(model, weights_copy, required=True)


@needs_exact_range
def test_older_int8_format_rejected(weights_copy: Path) -> None:
    model = load_weights(weights_copy)
    graph = quantize(model, [torch.rand(1, 3, 32, 32)], exact_range())
    path = save_quantized(graph, weights_copy, {}, exact_range())
    json_path = path.with_suffix(".json")
    description = json.loads(json_path.read_text())
    description["format"] = 1
    json_path.write_text(json.dumps(description))

    with pytest.raises(QuantizedWeightsError, match="int8 format 1"):
        load_quantized(model, weights_copy)


@needs_exact_range
def test_missing_int8_files(weights_copy: Path) -> None:
    model = load_weights(weights_copy)

    assert not int8_path_for(weights_copy, exact_range()).exists()
    with pytest.raises(QuantizedWeightsError, match="int8 weights not found"):
        Denoiser.load(weights_copy, precision="int8", threads=1)
    assert load_int8(model, weights_copy, required=False) is None
    assert Denoiser.load(weights_copy, precision="fp32", threads=1).precision == "fp32"


def test_int8_rejected_where_sums_saturate(
    weights_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_weights(weights_copy)
    save_quantized(quantize(model, [torch.rand(1, 3, 32, 32)]), weights_copy, {})
    monkeypatch.setattr(
        "pixtools_worker_ml.quantize.exact_weight_range", lambda width: None
    )

    with pytest.raises(QuantizedWeightsError, match="saturate"):
        load_quantized(model, weights_copy)
    with pytest.raises(QuantizedWeightsError, match="use precision auto or fp32"):
        Denoiser.load(weights_copy, precision="int8", threads=1)
    assert load_int8(model, weights_copy, required=False) is None
    automatic = Denoiser.load(weights_copy, precision="auto", threads=1)
    assert automatic.precision in {"fp32", "bf16"}
    assert automatic.network is automatic.model


def saved_exact_file(weights_copy: Path) -> Path:
    """Save an int8 file of the range this CPU sums exactly and return its path."""
    model = load_weights(weights_copy)
    graph = quantize(model, [torch.rand(1, 3, 32, 32)], exact_range())
    return save_quantized(graph, weights_copy, {}, exact_range())


def drop_int8_checksum(path: Path) -> None:
    """Remove the int8 file's own SHA-256 from its JSON, as older files lack it."""
    json_path = path.with_suffix(".json")
    description = json.loads(json_path.read_text())
    del description["sha256"]
    json_path.write_text(json.dumps(description))


@needs_exact_range
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "unreadable"),
        (b"not a torch file", "unreadable"),
        ("truncated", "unreadable"),
        ("tensor", "unreadable"),
    ],
)
def test_damaged_int8_file_rejected(
    weights_copy: Path, content: bytes | str, message: str
) -> None:
    path = saved_exact_file(weights_copy)
    drop_int8_checksum(path)
    if content == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    model = load_weights(weights_copy)

    with pytest.raises(QuantizedWeightsError, match=message):
        load_quantized(model, weights_copy)
    assert load_int8(model, weights_copy, required=False) is None


@needs_exact_range
def test_changed_int8_file_rejected(weights_copy: Path) -> None:
    path = saved_exact_file(weights_copy)
    path.write_bytes(path.read_bytes() + b"\0")

    with pytest.raises(QuantizedWeightsError, match="has changed since it was written"):
        load_quantized(load_weights(weights_copy), weights_copy)


@needs_exact_range
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is unreadable"),
        ("[]", "JSON list, not an object"),
        (b"\xff\xfe".decode("latin-1"), "is unreadable"),
    ],
)
def test_damaged_int8_json_rejected(
    weights_copy: Path, text: str, message: str
) -> None:
    path = saved_exact_file(weights_copy)
    path.with_suffix(".json").write_bytes(text.encode("latin-1"))

    with pytest.raises(QuantizedWeightsError, match=message):
        load_quantized(load_weights(weights_copy), weights_copy)


@needs_exact_range
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format", "2", "int8 format '2'"),
        ("engine", "fbgemm", "engine 'fbgemm'"),
        ("source_sha256", None, "records no source SHA-256"),
    ],
)
def test_int8_json_fields_checked(
    weights_copy: Path, key: str, value: str | None, message: str
) -> None:
    path = saved_exact_file(weights_copy)
    json_path = path.with_suffix(".json")
    description = json.loads(json_path.read_text())
    description[key] = value
    json_path.write_text(json.dumps(description))

    with pytest.raises(QuantizedWeightsError, match=message):
        load_quantized(load_weights(weights_copy), weights_copy)


@needs_exact_range
def test_non_finite_int8_scale_rejected(weights_copy: Path) -> None:
    path = saved_exact_file(weights_copy)
    drop_int8_checksum(path)
    state = torch.load(path, weights_only=True)
    state["blocks_0_first_input_scale_0"] = torch.tensor(float("nan"))
    torch.save(state, path)

    with pytest.raises(QuantizedWeightsError, match="not finite"):
        load_quantized(load_weights(weights_copy), weights_copy)


def test_calibration_crops_repeat(tmp_path: Path) -> None:
    from PIL import Image

    for index in range(3):
        pixels = to_uint8(synthetic_photo(90 + index * 10, 120))
        Image.fromarray(pixels, "RGB").save(tmp_path / f"photo{index}.png")

    first = list(calibration_batches(tmp_path, 5, 64, seed=11))
    second = list(calibration_batches(tmp_path, 5, 64, seed=11))

    assert len(first) == 5
    assert all(batch.shape == (1, 3, 64, 64) for batch in first)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    # Noise is added unclipped, as at evaluation.
    assert min(float(batch.min()) for batch in first) < 0.0


@needs_exact_range
def test_quantize_program_writes_corrected_files(weights_copy: Path) -> None:
    from PIL import Image

    from pixtools_worker_ml.quantize import main

    photos = weights_copy.parent / "CBSD432"
    photos.mkdir()
    for index in range(3):
        pixels = to_uint8(synthetic_photo(80, 96, seed=index))
        Image.fromarray(pixels, "RGB").save(photos / f"photo{index}.png")
    arguments = ["--datasets-dir", str(weights_copy.parent), "--weights"]
    arguments += [str(weights_copy), "--crops", "4", "--crop-size", "48"]

    threads = torch.get_num_threads()
    try:
        status = main(arguments)
    finally:
        torch.set_num_threads(threads)

    assert status == 0
    # Where full range sums are exact, pair-limited ones are too: both are written.
    written = ["full", "pairs"] if exact_range() == "full" else ["pairs"]
    for weight_range in ("full", "pairs"):
        path = int8_path_for(weights_copy, weight_range)
        assert path.exists() == (weight_range in written), weight_range
    description = json.loads(
        int8_path_for(weights_copy, exact_range()).with_suffix(".json").read_text()
    )
    assert description["weight_range"] == exact_range()
    assert description["calibration"]["bias_correction"] is True
    assert description["calibration"]["crops"] == 4
    model = load_weights(weights_copy)
    loaded = load_quantized(model, weights_copy)
    seed = description["calibration"]["seed"]
    crops = list(calibration_batches(photos, 4, 48, seed))
    uncorrected_graph = quantize(model, crops, exact_range())
    uncorrected = Int8DenoiseNet.from_graph(model, uncorrected_graph)
    for plain, corrected in zip(uncorrected.blocks, loaded.blocks, strict=True):
        assert isinstance(plain, Int8Block)
        assert isinstance(corrected, Int8Block)
        assert not torch.equal(plain.second.bias, corrected.second.bias)


def test_auto_runs_the_fastest_loaded_precision(
    float_and_int8: tuple[Denoiser, Denoiser], monkeypatch: pytest.MonkeyPatch
) -> None:
    fp32, int8 = float_and_int8
    timed: list[list[str]] = []

    def prefer_int8(candidates: dict[str, object]) -> tuple[str, dict[str, float]]:
        timed.append(sorted(candidates))
        chosen = "int8" if "int8" in candidates else "fp32"
        return chosen, dict.fromkeys(candidates, 0.1)

    monkeypatch.setattr("pixtools_worker_ml.inference.fastest_choice", prefer_int8)
    monkeypatch.setattr("pixtools_worker_ml.inference.bfloat16_is_fast", lambda: True)
    with_int8 = Denoiser(
        fp32.model, precision="auto", threads=1, quantized=int8.network
    )
    float_only = Denoiser(fp32.model, precision="auto", threads=1)
    monkeypatch.setattr("pixtools_worker_ml.inference.bfloat16_is_fast", lambda: False)
    untimed = Denoiser(fp32.model, precision="auto", threads=1)

    # With bf16 left out and no int8 network, fp32 is the only candidate.
    assert timed == [["bf16", "fp32", "int8"], ["bf16", "fp32"]]
    assert untimed.precision == "fp32"
    assert with_int8.precision == "int8"
    assert with_int8.network is int8.network
    assert float_only.precision == "fp32"
    assert float_only.network is float_only.model


def test_auto_probe_returns_a_candidate(
    float_and_int8: tuple[Denoiser, Denoiser],
) -> None:
    fp32, int8 = float_and_int8

    automatic = Denoiser(
        fp32.model, precision="auto", threads=2, quantized=int8.network
    )
    threads_after_probe = torch.get_num_threads()
    float_only = Denoiser(fp32.model, precision="auto", threads=1)

    # The probe times on one thread and gives the denoiser its threads back.
    assert threads_after_probe == 2
    assert automatic.precision in {"fp32", "bf16", "int8"}
    assert float_only.precision in {"fp32", "bf16"}
    noisy = add_gaussian_noise(synthetic_photo(64, 64), 25.0, seed=5)
    assert automatic.denoise_array(noisy).shape == noisy.shape
