from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from structlog.testing import capture_logs
from torch.nn import functional

from pixtools_worker_ml import int8pairs
from pixtools_worker_ml import quantize as quantize_program
from pixtools_worker_ml.data import add_gaussian_noise, psnr_uint8
from pixtools_worker_ml.inference import Denoiser, TileOptions
from pixtools_worker_ml.int8net import Int8DenoiseNet, kernels_exact, sum_products
from pixtools_worker_ml.int8pairs import (
    PAIR_LIMIT,
    PairLimitedObserver,
    WeightRange,
    exact_weight_range,
    pair_kernels_exact,
    pair_sums,
    pairs_fit,
)
from pixtools_worker_ml.model import DenoiseNet
from pixtools_worker_ml.quantize import (
    QuantizedWeightsError,
    int8_path_for,
    load_quantized,
    quantize,
    save_quantized,
)
from pixtools_worker_ml.testimages import synthetic_photo, to_uint8
from pixtools_worker_ml.testmarks import needs_int8_kernels
from pixtools_worker_ml.weights_io import load_weights

pytestmark = needs_int8_kernels

needs_exact_pairs = pytest.mark.skipif(
    not pair_kernels_exact(),
    reason="this CPU's int8 convolutions saturate even for pair-limited codes",
)


def noisy_crops(count: int, size: int) -> list[torch.Tensor]:
    crops = []
    for index in range(count):
        noisy = add_gaussian_noise(synthetic_photo(size, size, seed=index), 25.0, index)
        crops.append(torch.from_numpy(noisy).permute(2, 0, 1)[None].contiguous())
    return crops


def observed_codes(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the scales PairLimitedObserver picks and the codes they give."""
    observer = PairLimitedObserver()
    observer(weights)
    scales, zero_points = observer.calculate_qparams()
    codes = torch.quantize_per_channel(weights, scales, zero_points, 0, torch.qint8)
    return scales, codes.int_repr()


def test_observer_scale_from_largest_pair() -> None:
    weights = torch.zeros(3, 4, 3, 3)
    weights[0, 0, 1, 1] = 0.5  # paired with a zero: the full range scale
    weights[1, 2, 0, 0] = 0.4  # 0.4 + 0.4 in one pair: twice that scale
    weights[1, 3, 0, 0] = -0.4
    weights[2, 1, 2, 2] = 0.3  # 0.3 and 0.3 in different pairs
    weights[2, 2, 2, 2] = 0.3

    scales, codes = observed_codes(weights)

    assert torch.allclose(scales, torch.tensor([0.5, 0.8, 0.3]) / 127)
    assert codes[0, 0, 1, 1] == 127
    assert codes[1, 2, 0, 0] == 64
    assert codes[1, 3, 0, 0] == -64
    assert codes[2, 1, 2, 2] == 127


def test_observer_codes_fit_pairs() -> None:
    generator = torch.Generator().manual_seed(3)
    weights = torch.randn(32, 17, 3, 3, generator=generator)

    _, codes = observed_codes(weights)

    assert int(pair_sums(codes).max()) <= PAIR_LIMIT
    assert pairs_fit(codes)
    # Every channel uses most of its range: its largest pair reaches 127 or 128.
    assert bool((pair_sums(codes).amax(dim=(1, 2, 3)) >= 127).all())


def test_observer_without_weights_raises() -> None:
    with pytest.raises(RuntimeError, match="seen no weights"):
        PairLimitedObserver().calculate_qparams()


def test_pair_sums_pad_odd_channels() -> None:
    codes = torch.zeros(1, 3, 1, 1, dtype=torch.int8)
    codes[0, :, 0, 0] = torch.tensor([100, -29, 127], dtype=torch.int8)

    sums = pair_sums(codes)

    assert sums.flatten().tolist() == [129.0, 127.0]
    assert not pairs_fit(codes)
    codes[0, 1, 0, 0] = -28
    assert pairs_fit(codes)


def test_pair_sums_count_minus_128() -> None:
    codes = torch.zeros(1, 4, 1, 1, dtype=torch.int8)
    codes[0, :, 0, 0] = torch.tensor([-128, -128, -128, 0], dtype=torch.int8)

    assert pair_sums(codes).flatten().tolist() == [256.0, 128.0]
    assert not pairs_fit(codes)


@needs_exact_pairs
def test_pair_limited_sums_exact() -> None:
    generator = torch.Generator().manual_seed(9)
    _, weights = observed_codes(torch.randn(64, 64, 3, 3, generator=generator))
    codes = torch.randint(0, 256, (1, 64, 10, 10), generator=generator)

    sums = sum_products(weights, codes.to(torch.uint8), padding=1)
    exact = functional.conv2d(codes.double(), weights.double(), padding=1)

    assert torch.equal(sums.double(), exact)


@needs_exact_pairs
@pytest.mark.parametrize("channels", [7, 8, 64])
def test_pair_check_any_channel_count(channels: int) -> None:
    # Where 64 channels sum exactly, an odd count pairs its last channel with zero.
    assert pair_kernels_exact.__wrapped__(channels) is True


def test_wider_pairs_exact_only_with_vnni(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(int8pairs, "PAIR_LIMIT", 160)

    # 255 x 160 passes 32,767, so only kernels that never saturate sum it exactly.
    assert pair_kernels_exact.__wrapped__(64) == kernels_exact()


@pytest.mark.parametrize(
    ("full", "pairs", "expected"),
    [(True, True, "full"), (False, True, "pairs"), (False, False, None)],
)
def test_exact_weight_range_order(
    monkeypatch: pytest.MonkeyPatch, full: bool, pairs: bool, expected: str | None
) -> None:
    monkeypatch.setattr(int8pairs, "kernels_exact", lambda channels: full)
    monkeypatch.setattr(int8pairs, "pair_kernels_exact", lambda channels: pairs)

    assert exact_weight_range(64) == expected


def test_int8_file_names() -> None:
    weights = Path("/models/denoise.pt")

    assert int8_path_for(weights) == Path("/models/denoise-int8.pt")
    assert int8_path_for(weights, "pairs") == Path("/models/denoise-int8-pairs.pt")


@needs_exact_pairs
def test_pairs_file_loaded_without_vnni(
    weights_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = load_weights(weights_copy)
    crops = noisy_crops(2, 64)
    graph = quantize(model, crops, "pairs")
    save_quantized(graph, weights_copy, {"crops": 2}, "pairs")
    monkeypatch.setattr(quantize_program, "exact_weight_range", lambda width: "pairs")

    loaded = load_quantized(model, weights_copy)

    assert loaded.weight_range == "pairs"
    assert all(pairs_fit(conv.weights.int_repr()) for conv in loaded.convolutions())
    expected = Int8DenoiseNet.from_graph(model, graph)
    with torch.inference_mode():
        assert torch.equal(expected(crops[0]), loaded(crops[0]))


def save_int8(
    weights_copy: Path, graph_range: WeightRange, file_range: WeightRange
) -> tuple[DenoiseNet, Path]:
    """Quantize the copied weights for ``graph_range``, save them as ``file_range``."""
    model = load_weights(weights_copy)
    graph = quantize(model, noisy_crops(1, 48), graph_range)
    return model, save_quantized(graph, weights_copy, {}, file_range)


def test_full_range_cpu_falls_back_to_pairs(
    weights_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _ = save_int8(weights_copy, "pairs", "pairs")
    monkeypatch.setattr(quantize_program, "exact_weight_range", lambda width: "full")

    with capture_logs() as logs:
        loaded = load_quantized(model, weights_copy)

    assert loaded.weight_range == "pairs"
    events = [entry["event"] for entry in logs]
    assert events == ["int8_full_range_unavailable"]
    assert "model-int8.pt" in logs[0]["error"]


def test_pairs_json_naming_full_rejected(
    weights_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, path = save_int8(weights_copy, "pairs", "pairs")
    json_path = path.with_suffix(".json")
    description = json.loads(json_path.read_text())
    description["weight_range"] = "full"
    json_path.write_text(json.dumps(description))
    monkeypatch.setattr(quantize_program, "exact_weight_range", lambda width: "pairs")

    with pytest.raises(QuantizedWeightsError, match="records weight range 'full'"):
        load_quantized(model, weights_copy)


@pytest.mark.parametrize(
    ("file_range", "message"),
    [("pairs", "above the pair limit"), ("full", r"model-int8-pairs\.pt")],
)
def test_full_range_codes_rejected_without_vnni(
    weights_copy: Path,
    monkeypatch: pytest.MonkeyPatch,
    file_range: WeightRange,
    message: str,
) -> None:
    # Saved as the pairs file, full range codes break the limit. Saved as the full
    # range file, they are never read, so the error names the missing pairs file.
    model, _ = save_int8(weights_copy, "full", file_range)
    monkeypatch.setattr(quantize_program, "exact_weight_range", lambda width: "pairs")

    with pytest.raises(QuantizedWeightsError, match=message):
        load_quantized(model, weights_copy)


@needs_exact_pairs
def test_bundled_pairs_close_to_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize_program, "exact_weight_range", lambda width: "pairs")
    whole = TileOptions(0, 0)
    fp32 = Denoiser.load(tiles=whole, precision="fp32", threads=1)
    int8 = Denoiser.load(tiles=whole, precision="int8", threads=1)
    clean = synthetic_photo(160, 200, seed=4)
    noisy = add_gaussian_noise(clean, 50.0, seed=8)

    fp32_output = fp32.denoise_array(noisy)
    int8_output = int8.denoise_array(noisy)

    assert isinstance(int8.network, Int8DenoiseNet)
    assert int8.network.weight_range == "pairs"
    fp32_psnr = psnr_uint8(fp32_output, clean)
    int8_psnr = psnr_uint8(int8_output, clean)
    # Pair-limited int8 lost 0.009 to 0.015 dB on CBSD68; 0.3 dB means broken scales.
    assert int8_psnr > fp32_psnr - 0.3, (fp32_psnr, int8_psnr)
    assert psnr_uint8(int8_output, fp32_output) > 38.0


def write_photos(folder: Path) -> None:
    folder.mkdir()
    for index in range(2):
        pixels = to_uint8(synthetic_photo(64, 80, seed=index))
        Image.fromarray(pixels, "RGB").save(folder / f"photo{index}.png")


@needs_exact_pairs
def test_program_writes_pairs_only_without_vnni(
    weights_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_photos(weights_copy.parent / "CBSD432")
    monkeypatch.setattr(quantize_program, "exact_weight_range", lambda width: "pairs")
    arguments = ["--datasets-dir", str(weights_copy.parent), "--weights"]
    arguments += [str(weights_copy), "--crops", "2", "--crop-size", "32"]

    threads = torch.get_num_threads()
    try:
        automatic = quantize_program.main(arguments)
        full = quantize_program.main([*arguments, "--weight-range", "full"])
    finally:
        torch.set_num_threads(threads)

    assert automatic == 0
    assert full == 2
    assert not int8_path_for(weights_copy).exists()
    description = json.loads(
        int8_path_for(weights_copy, "pairs").with_suffix(".json").read_text()
    )
    assert description["weight_range"] == "pairs"
    assert description["calibration"]["crops"] == 2
