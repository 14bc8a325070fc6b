from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from pixtools_worker_ml import train
from pixtools_worker_ml.testimages import synthetic_photo, to_uint8
from pixtools_worker_ml.weights_io import load_weights


@pytest.fixture
def tiny_datasets(tmp_path: Path) -> Path:
    """A datasets folder of synthetic photos laid out like CBSD432 and CBSD68."""
    root = tmp_path / "datasets"
    for folder, count in (("CBSD432", 3), ("CBSD68", 2)):
        (root / folder).mkdir(parents=True)
        for index in range(count):
            pixels = to_uint8(synthetic_photo(48, 40, seed=index))
            Image.fromarray(pixels, "RGB").save(root / folder / f"{index:03d}.png")
    return root


def run_training(
    datasets: Path,
    run_dir: Path,
    max_steps: int,
    init: Path | None = None,
    blocks: int = 1,
    extra: list[str] | None = None,
) -> None:
    argv = [
        "--datasets-dir",
        str(datasets),
        "--checkpoint",
        str(run_dir / "checkpoint.pt"),
        "--export-weights",
        str(run_dir / "denoise.pt"),
        "--max-steps",
        str(max_steps),
        "--threads",
        "1",
        "--precision",
        "fp32",
        "--batch-size",
        "2",
        "--patch-size",
        "24",
        "--width",
        "8",
        "--blocks",
        str(blocks),
        "--warmup-steps",
        "2",
        "--total-steps",
        "10",
        "--validation-every",
        "2",
    ]
    if init is not None:
        argv += ["--init-weights", str(init)]
    argv += extra or []
    assert train.main(argv) == 0


def test_resumed_run_matches_unbroken_run(tiny_datasets: Path, tmp_path: Path) -> None:
    unbroken, resumed = tmp_path / "unbroken", tmp_path / "resumed"

    run_training(tiny_datasets, unbroken, max_steps=4)
    run_training(tiny_datasets, resumed, max_steps=2)
    run_training(tiny_datasets, resumed, max_steps=4)

    first = torch.load(unbroken / "checkpoint.pt", weights_only=True)
    second = torch.load(resumed / "checkpoint.pt", weights_only=True)
    assert first["step"] == second["step"] == 4
    for name, value in first["model"].items():
        assert torch.equal(value, second["model"][name]), name
    for name, value in first["ema"].items():
        assert torch.equal(value, second["ema"][name]), name
    assert first["scheduler"]["last_epoch"] == second["scheduler"]["last_epoch"]
    assert first["sampler_rng"] == second["sampler_rng"]

    def psnr_lines(path: Path) -> list[dict[str, float]]:
        lines = path.read_text().splitlines()
        return [json.loads(line)["psnr"] for line in lines]

    assert psnr_lines(unbroken / "metrics.jsonl") == psnr_lines(
        resumed / "metrics.jsonl"
    )


def test_clipped_run_validates_eight_bit_inputs(
    tiny_datasets: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    run_training(tiny_datasets, run_dir, max_steps=4, extra=["--clip-fraction", "0.5"])

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    description = json.loads((run_dir / "denoise.json").read_text())
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)

    assert [record["step"] for record in records] == [2, 4]
    for record in records:
        assert set(record["psnr_8bit"]) == {"15", "25", "50"}
        expected = (record["psnr_mean"] + record["psnr_8bit_mean"]) / 2
        assert abs(record["criterion"] - expected) < 1e-3
    assert checkpoint["train_config"]["clip_fraction"] == 0.5
    assert set(description["training"]["validation_psnr_8bit"]) == {"15", "25", "50"}


def test_exported_weights_load(tiny_datasets: Path, tmp_path: Path) -> None:
    run_training(tiny_datasets, tmp_path / "run", max_steps=2)

    model = load_weights(tmp_path / "run" / "denoise.pt")
    description = json.loads((tmp_path / "run" / "denoise.json").read_text())

    assert model.config.blocks == 1
    assert description["config"]["width"] == 8
    assert description["training"]["step"] == 2
    sample = torch.rand(1, 3, 12, 10)
    assert model(sample).shape == sample.shape


def test_export_only_writes_checkpoint_ema(tiny_datasets: Path, tmp_path: Path) -> None:
    run_training(tiny_datasets, tmp_path / "run", max_steps=2)
    target = tmp_path / "exported" / "denoise.pt"

    code = train.main(
        [
            "--checkpoint",
            str(tmp_path / "run" / "checkpoint.pt"),
            "--export-weights",
            str(target),
            "--export-only",
        ]
    )

    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    exported = torch.load(target, weights_only=True)
    assert code == 0
    assert exported.keys() == checkpoint["ema"].keys()
    for name, value in exported.items():
        assert torch.equal(value, checkpoint["ema"][name]), name
    assert load_weights(target).config.blocks == 1


def test_skip_step_rules() -> None:
    assert train.skip_step(float("nan"), 0.01, 5, 0)
    assert train.skip_step(float("inf"), 0.01, 5000, 999)
    assert train.skip_step(0.05, 0.01, 5000, 0)
    assert not train.skip_step(0.05, 0.01, 5000, train.SPIKE_MAX_SKIPS)
    assert not train.skip_step(0.05, 0.01, 10, 0)
    assert not train.skip_step(0.03, 0.01, 5000, 0)


def test_init_weights_start_new_run(tiny_datasets: Path, tmp_path: Path) -> None:
    run_training(tiny_datasets, tmp_path / "first", max_steps=2)
    start = tmp_path / "first" / "denoise.pt"

    run_training(tiny_datasets, tmp_path / "second", max_steps=2, init=start)

    state = torch.load(tmp_path / "second" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2
    assert state["train_config"]["init_weights"] == str(start)


def test_init_weights_reject_deeper_network(
    tiny_datasets: Path, tmp_path: Path
) -> None:
    run_training(tiny_datasets, tmp_path / "first", max_steps=2, blocks=2)
    start = tmp_path / "first" / "denoise.pt"

    with pytest.raises(SystemExit, match="--init-weights has architecture"):
        run_training(
            tiny_datasets, tmp_path / "second", max_steps=2, init=start, blocks=1
        )


def test_init_weights_deepen_shallower_network(
    tiny_datasets: Path, tmp_path: Path
) -> None:
    run_training(tiny_datasets, tmp_path / "first", max_steps=2, blocks=1)
    start = tmp_path / "first" / "denoise.pt"

    run_training(
        tiny_datasets,
        tmp_path / "second",
        max_steps=0,
        init=start,
        blocks=3,
    )

    state = torch.load(tmp_path / "second" / "checkpoint.pt", weights_only=True)
    assert state["model_config"]["blocks"] == 3
    shallow = torch.load(start, weights_only=True)
    deep = state["model"]
    assert torch.equal(deep["head.weight"], shallow["head.weight"])
    trained_block = "blocks.0.second.weight"
    assert torch.equal(deep[trained_block], shallow[trained_block])
    assert not deep["blocks.2.second.weight"].any()


def test_missing_datasets_dir_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIXTOOLS_DATASETS_DIR", raising=False)

    with pytest.raises(SystemExit, match="PIXTOOLS_DATASETS_DIR"):
        train.main(["--max-steps", "1"])
