from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixtools_worker_ml import evaluate
from pixtools_worker_ml.testimages import synthetic_photo, to_uint8


def test_main_prints_table_for_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in range(2):
        pixels = to_uint8(synthetic_photo(96, 128, seed=index))
        Image.fromarray(pixels, "RGB").save(tmp_path / f"{index}.png")
    output = tmp_path / "result.json"

    code = evaluate.main(
        [
            "--images",
            str(tmp_path),
            "--sigmas",
            "25",
            "--threads",
            "1",
            "--json",
            str(output),
        ]
    )

    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| sigma"))
    assert code == 0
    assert lines[header].startswith("| sigma | noisy input | ours (")
    row = [cell.strip() for cell in lines[header + 2].strip("|").split("|")]
    assert row[0] == "25"
    assert float(row[2]) > float(row[1]) + 2.0
    assert row[3:] == ["30.71", "31.24"]
    assert '"images": 2' in output.read_text()


def test_eight_bit_input_scores_lower_noisy_psnr(tmp_path: Path) -> None:
    pixels = to_uint8(synthetic_photo(64, 80, seed=4))
    Image.fromarray(pixels, "RGB").save(tmp_path / "photo.png")
    float_json, eight_bit_json = tmp_path / "float.json", tmp_path / "eight.json"
    common = ["--images", str(tmp_path), "--sigmas", "50", "--threads", "1"]

    evaluate.main([*common, "--precision", "fp32", "--json", str(float_json)])
    evaluate.main(
        [*common, "--precision", "fp32", "--eight-bit", "--json", str(eight_bit_json)]
    )

    plain = json.loads(float_json.read_text())
    eight_bit = json.loads(eight_bit_json.read_text())
    assert plain["eight_bit_input"] is False
    assert eight_bit["eight_bit_input"] is True
    # The noisy column clips both the same way, so only the input differs.
    assert eight_bit["results"]["50"]["noisy"] == plain["results"]["50"]["noisy"]
    assert eight_bit["results"]["50"]["restored"] != plain["results"]["50"]["restored"]


def test_int8_rejected_where_sums_saturate(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pixels = to_uint8(synthetic_photo(64, 80, seed=2))
    Image.fromarray(pixels, "RGB").save(tmp_path / "photo.png")
    monkeypatch.setattr(
        "pixtools_worker_ml.quantize.exact_weight_range", lambda width: None
    )

    code = evaluate.main(["--images", str(tmp_path), "--precision", "int8"])

    assert code == 2
    assert "error: precision int8:" in capsys.readouterr().err
