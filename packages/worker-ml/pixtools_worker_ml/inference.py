"""Tiled inference of the denoiser on arrays and Pillow images.

The image is cut into tiles whose cores are at most ``tile_size`` pixels on a side,
spread evenly (see tile_spans). Each tile runs through the network with at least
``tile_overlap`` extra pixels of real image context on every side that has a
neighbour, and only its core is written to the output. The network's receptive field
reaches ``receptive_radius()`` pixels (62 for the default model), but pixels that far
out have almost no weight. With 16 px of overlap the tiled int8 output of the
14-block weights differed from whole-image output of a 1 MP photo by 0.00006 to
0.00033 dB PSNR on two CPUs (bench/bench_denoise.py --check-whole), and the tests
require under 0.01 dB. Tiles at the image border get the same zero padding as a
whole-image pass. Peak memory grows with the tile size, not the image size, because
the full image is held only as the uint8 (or float) source and output arrays.

With several threads and several tiles, each thread denoises whole tiles with one
torch thread (see ``tiling.run_parallel``), so as many tiles are in memory at once
as there are threads. An image of fewer tiles than threads runs with all threads
on each tile.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import structlog
import torch
from numpy.typing import NDArray
from PIL import Image
from torch.nn import functional

from pixtools_shared.errors import ImageTooLargeError, PixToolsError
from pixtools_worker_ml.model import DenoiseNet
from pixtools_worker_ml.quantize import (
    QuantizedWeightsError,
    int8_supported,
    load_quantized,
)
from pixtools_worker_ml.runtime import (
    bfloat16_is_fast,
    configure_threads,
    fastest_choice,
    parse_precision,
    to_channels_last,
)
from pixtools_worker_ml.tiling import Span, round_up, run_parallel, tile_spans
from pixtools_worker_ml.views import from_view, parse_views, to_view, views_within
from pixtools_worker_ml.weights_io import load_weights

logger = structlog.get_logger(__name__)
SpanT = TypeVar("SpanT")

# Defaults for callers that build a Denoiser without Settings (tests, bench).
DEFAULT_TILE_SIZE = 384
DEFAULT_TILE_OVERLAP = 16
DEFAULT_MAX_PIXELS = 16_000_000
DEFAULT_PRECISION = "auto"
DEFAULT_TIME_BASE_SECONDS = 60.0
DEFAULT_SECONDS_PER_MEGAPIXEL = 10.0
DEFAULT_VIEWS = "1"
# Views auto keeps the time per megapixel of all views under this, leaving 20 %
# of the 1.0 s/MP speed target for the error of a start-up measurement.
DEFAULT_TARGET_SECONDS_PER_MEGAPIXEL = 0.8
# Side of the noisy square that precision auto times each precision on. On CPU A
# of the model card, int8 took 0.83 of bf16's time at 128 px but 0.66 at 256 px,
# nearer its 0.5 on whole photos, because fixed costs weigh less in a larger square.
PROBE_SIZE = 256
# Timed passes of one full tile when views auto measures the time per megapixel,
# and the pause between them. The fastest counts, and spreading the passes over
# about a second lets one of them miss a short burst of work by another process,
# such as the API storing the upload of the job that triggered the measurement.
SPEED_PROBE_ROUNDS = 6
SPEED_PROBE_PAUSE_SECONDS = 0.1


class DenoiseTimeoutError(PixToolsError):
    """Denoising ran past the time budget computed for the image size."""

    code = "denoise-timed-out"
    http_status = 503
    default_message = "Denoising took longer than the time allowed for this image."


class DenoiseSettings(Protocol):
    """The part of Settings that the denoiser reads."""

    @property
    def DENOISE_MAX_PIXELS(self) -> int: ...

    @property
    def DENOISE_TILE_SIZE(self) -> int: ...

    @property
    def DENOISE_TILE_OVERLAP(self) -> int: ...

    @property
    def TORCH_THREADS(self) -> int | None: ...

    @property
    def DENOISE_MODEL_PATH(self) -> Path | None: ...

    @property
    def DENOISE_PRECISION(self) -> str: ...

    @property
    def DENOISE_VIEWS(self) -> str: ...

    @property
    def DENOISE_TARGET_SECONDS_PER_MEGAPIXEL(self) -> float: ...

    @property
    def DENOISE_PARALLEL_TILES(self) -> bool: ...


@dataclass(frozen=True)
class TileOptions:
    """Tile edge and overlap in pixels; tile_size 0 runs the whole image at once."""

    tile_size: int = DEFAULT_TILE_SIZE
    tile_overlap: int = DEFAULT_TILE_OVERLAP

    def __post_init__(self) -> None:
        if self.tile_size < 0 or self.tile_overlap < 0:
            raise ValueError("tile_size and tile_overlap must not be negative")
        if self.tile_size and self.tile_size < 16:
            raise ValueError(
                f"tile_size must be 0 or at least 16, got {self.tile_size}"
            )


@contextlib.contextmanager
def bundled_weights_path() -> Iterator[Path]:
    """Yield a filesystem path of the weights shipped inside this package."""
    weights = resources.files("pixtools_worker_ml") / "weights" / "denoise.pt"
    with resources.as_file(weights) as path:
        yield path


def load_int8(
    model: DenoiseNet, weights_path: Path, *, required: bool
) -> torch.nn.Module | None:
    """Load the int8 network saved beside ``weights_path``.

    Returns None when it is not ``required`` and cannot be loaded.
    """
    if not required and not int8_supported():
        return None
    try:
        return load_quantized(model, weights_path)
    except QuantizedWeightsError as error:
        if required:
            raise
        logger.warning(
            "int8_weights_unavailable", path=str(weights_path), error=str(error)
        )
        return None


def time_budget_seconds(
    pixels: int,
    base_seconds: float = DEFAULT_TIME_BASE_SECONDS,
    seconds_per_megapixel: float = DEFAULT_SECONDS_PER_MEGAPIXEL,
) -> float:
    """Return the seconds one denoise call may take: a base plus a per-MP share.

    bench/bench_denoise.py measured the 14-block int8 network at 0.5 to 1.7 s per
    megapixel on one idle core, depending on the CPU, so the default of 60 s +
    10 s/MP only trips on a badly overloaded or stalled worker.
    """
    return base_seconds + seconds_per_megapixel * pixels / 1_000_000


class Denoiser:
    """A loaded network plus the tiling and precision used to run it."""

    def __init__(
        self,
        model: DenoiseNet,
        *,
        tiles: TileOptions | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        precision: str = DEFAULT_PRECISION,
        threads: int | None = None,
        quantized: torch.nn.Module | None = None,
        views: str | int = DEFAULT_VIEWS,
        target_seconds_per_megapixel: float = DEFAULT_TARGET_SECONDS_PER_MEGAPIXEL,
        parallel_tiles: bool = True,
    ) -> None:
        self.threads = configure_threads(threads)
        self.parallel_tiles = parallel_tiles
        self.tiles = tiles or TileOptions()
        self.max_pixels = max_pixels
        self.scale = model.config.scale
        self.model = to_channels_last(model.eval())
        self.model.requires_grad_(False)
        self.quantized = quantized
        self.precision = parse_precision(precision)
        if self.precision == "int8" and quantized is None:
            raise ValueError(
                "precision int8 needs quantized weights, and none are loaded"
            )
        if self.precision == "auto":
            self.precision = self.fastest_precision()
        # The network that runs: the int8 network, or the float model (fp32, bf16).
        self.network: torch.nn.Module = self.model
        if self.precision == "int8" and quantized is not None:
            self.network = quantized
        self.target_seconds_per_megapixel = target_seconds_per_megapixel
        # None until views auto has measured the speed, on first use.
        self._views = parse_views(views)
        logger.info(
            "denoiser_loaded",
            threads=self.threads,
            parallel_tiles=self.parallel_tiles,
            precision=self.precision,
            views=self._views or "auto",
            tile_size=self.tiles.tile_size,
            tile_overlap=self.tiles.tile_overlap,
            max_pixels=self.max_pixels,
            int8_weight_range=getattr(self.network, "weight_range", None),
            model=model.config.to_dict(),
        )

    @classmethod
    def load(
        cls,
        weights_path: Path | None = None,
        *,
        tiles: TileOptions | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        precision: str = DEFAULT_PRECISION,
        threads: int | None = None,
        views: str | int = DEFAULT_VIEWS,
        target_seconds_per_megapixel: float = DEFAULT_TARGET_SECONDS_PER_MEGAPIXEL,
        parallel_tiles: bool = True,
    ) -> Denoiser:
        """Load ``weights_path``, or the weights bundled in the package when None.

        With precision int8 or auto, the int8 state saved beside the weights is
        loaded too. auto then times the precisions it has (see fastest_precision);
        an explicit int8 without the int8 state raises QuantizedWeightsError.
        """
        requested = parse_precision(precision)
        with contextlib.ExitStack() as stack:
            if weights_path is None:
                weights_path = stack.enter_context(bundled_weights_path())
            model = load_weights(weights_path)
            quantized = None
            if requested in ("auto", "int8"):
                required = requested == "int8"
                quantized = load_int8(model, weights_path, required=required)
        return cls(
            model,
            tiles=tiles,
            max_pixels=max_pixels,
            precision=requested,
            threads=threads,
            quantized=quantized,
            views=views,
            target_seconds_per_megapixel=target_seconds_per_megapixel,
            parallel_tiles=parallel_tiles,
        )

    @classmethod
    def from_settings(cls, settings: DenoiseSettings) -> Denoiser:
        return cls.load(
            settings.DENOISE_MODEL_PATH,
            tiles=TileOptions(
                settings.DENOISE_TILE_SIZE, settings.DENOISE_TILE_OVERLAP
            ),
            max_pixels=settings.DENOISE_MAX_PIXELS,
            precision=settings.DENOISE_PRECISION,
            threads=settings.TORCH_THREADS,
            views=settings.DENOISE_VIEWS,
            target_seconds_per_megapixel=settings.DENOISE_TARGET_SECONDS_PER_MEGAPIXEL,
            parallel_tiles=settings.DENOISE_PARALLEL_TILES,
        )

    def fastest_precision(self) -> str:
        """Time the network on a small noisy square in each precision, pick one.

        The candidates are fp32, bf16 when ``bfloat16_is_fast`` finds it faster than
        fp32, and int8 when the quantized network is loaded. Which one wins depends on
        the CPU: bfloat16 is fast only with native support (AVX-512 BF16 or AMX) and
        slower than fp32 where oneDNN emulates it. int8 is fastest with AVX-512 VNNI,
        and with AVX2 only it runs pair-limited weights (see ``int8pairs``), which ran
        1.6 times as fast as fp32 on an AMD EPYC with AVX2 only (12 MP in
        bench_denoise.py, two threads). The probe runs on one thread because the ranking
        depends on the instruction set. A busy second core slows two-thread int8 more
        than fp32. With a training job on the other core, two-thread int8 measured 10
        times its idle time and lost.
        """
        probe = np.random.default_rng(0).integers(
            0, 256, (PROBE_SIZE, PROBE_SIZE, 3), dtype=np.uint8
        )

        def timed(name: str) -> Callable[[], object]:
            network = self.quantized if name == "int8" else self.model
            assert network is not None
            return lambda: self.forward(network, probe, name == "bf16")

        torch.set_num_threads(1)
        try:
            # Where oneDNN emulates bfloat16, one pass over the square took 11 times
            # fp32's time (7.9 s against 0.69 s on an AMD EPYC with AVX2 only), so
            # a short convolution timing leaves bf16 out before the full passes.
            candidates = ["fp32"]
            if bfloat16_is_fast():
                candidates.append("bf16")
            if self.quantized is not None:
                candidates.append("int8")
            seconds: dict[str, float] = {}
            if len(candidates) == 1:
                chosen = candidates[0]
            else:
                runs = {name: timed(name) for name in candidates}
                chosen, seconds = fastest_choice(runs)
        finally:
            torch.set_num_threads(self.threads)
        logger.info(
            "precision_probe",
            chosen=chosen,
            seconds={name: round(value, 4) for name, value in seconds.items()},
            probe_size=PROBE_SIZE,
            threads=1,
        )
        return chosen

    def tile_workers(self, tiles: int) -> int:
        """Return the number of threads that take whole tiles of an image of ``tiles``.

        1 means one tile at a time, with all torch threads on it. Fewer tiles than
        threads get 1 too, because one thread per tile would leave the rest idle.
        """
        if not self.parallel_tiles or self.tiles.tile_size <= 0:
            return 1
        return self.threads if tiles >= self.threads else 1

    def seconds_per_megapixel(self) -> float:
        """Time one view of full tiles with the threads and precision in use.

        A tile is as large as a tiled pass runs (its core plus overlap), or 1024 px
        square for a whole-image denoiser, and the result is per pixel of the
        cores, so it includes the cost of the overlap. Where the threads take
        whole tiles, one tile per thread runs at once, as in a large image.
        """
        core = self.tiles.tile_size if self.tiles.tile_size > 0 else 1024
        side = round_up(core, self.scale) + 2 * round_up(
            self.tiles.tile_overlap, self.scale
        )
        tile = np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)
        use_bf16 = self.precision == "bf16"
        workers = self.tile_workers(self.threads)

        def one_view(_: int) -> None:
            self.forward(self.network, tile, use_bf16)

        _, seconds = fastest_choice(
            {"view": lambda: self.run_tiles(one_view, list(range(workers)))},
            rounds=SPEED_PROBE_ROUNDS,
            pause_seconds=SPEED_PROBE_PAUSE_SECONDS,
        )
        return seconds["view"] / (workers * core * core / 1_000_000)

    def run_tiles(self, work: Callable[[SpanT], None], spans: list[SpanT]) -> None:
        """Call ``work`` on every tile span, on the threads ``tile_workers`` allows.

        Tiles run one per thread in whole rounds. The tiles left over, fewer than
        the threads, then run one at a time with every thread on each, so that no
        thread waits idle for the last tile of the image.
        """
        workers = self.tile_workers(len(spans))
        shared_from = 0
        if workers > 1:
            shared_from = len(spans) - len(spans) % workers
            run_parallel(work, spans[:shared_from], workers)
        for span in spans[shared_from:]:
            work(span)

    @property
    def views(self) -> int:
        """Return the views per tile, measuring the speed first under views auto.

        The measurement waits for the first use because a worker loads the
        network while its neighbours start too, and their start-up work on the
        same cores would make the network look slower than it runs later.
        """
        if self._views is None:
            measured = self.seconds_per_megapixel()
            self._views = views_within(measured, self.target_seconds_per_megapixel)
            logger.info(
                "views_probe",
                chosen=self._views,
                seconds_per_megapixel=round(measured, 3),
                target_seconds_per_megapixel=self.target_seconds_per_megapixel,
                precision=self.precision,
                threads=self.threads,
                tile_workers=self.tile_workers(self.threads),
            )
        return self._views

    def check_size(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise ImageTooLargeError(
                f"The image is {width}x{height} pixels ({width * height} in total); "
                f"denoise accepts at most {self.max_pixels} pixels."
            )

    def run_tile(self, tile: NDArray[Any]) -> NDArray[np.float32]:
        """Denoise one HxWx3 tile (uint8 or float on [0, 1]) into unclipped floats.

        With several views, the tile is first padded to whole pixel-unshuffle
        cells at its bottom and right, so that every view keeps the cell grid
        anchored at the tile's top-left corner, as the tiles of a whole image are.
        """
        use_bf16 = self.precision == "bf16"
        views = self.views
        if views == 1:
            return self.forward(self.network, tile, use_bf16)

        height, width = tile.shape[:2]
        pad_bottom = round_up(height, self.scale) - height
        pad_right = round_up(width, self.scale) - width
        if pad_bottom or pad_right:
            tile = np.pad(tile, ((0, pad_bottom), (0, pad_right), (0, 0)), "edge")
        total = np.zeros(tile.shape, dtype=np.float32)
        for index in range(views):
            view = np.ascontiguousarray(to_view(tile, index))
            restored = self.forward(self.network, view, use_bf16)
            total += from_view(restored, index)
        total /= views
        return total[:height, :width]

    def forward(
        self, network: torch.nn.Module, tile: NDArray[Any], use_bf16: bool
    ) -> NDArray[np.float32]:
        values = tile.astype(np.float32, copy=True)
        if tile.dtype == np.uint8:
            values /= 255.0
        # Adding the batch axis before the permute gives it the stride of a
        # whole image. Added after, its stride is 3, and oneDNN then takes a
        # path about 2.5 times slower for int8 (measured on a 576x576 tile).
        tensor = torch.from_numpy(values)[None].permute(0, 3, 1, 2)

        height, width = tensor.shape[2:]
        pad_bottom = round_up(height, self.scale) - height
        pad_right = round_up(width, self.scale) - width
        if pad_bottom or pad_right:
            tensor = functional.pad(tensor, (0, pad_right, 0, pad_bottom), "replicate")

        tensor = tensor.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, use_bf16):
            restored = network(tensor).float()
        restored = restored[0, :, :height, :width].permute(1, 2, 0)
        return restored.numpy()

    def denoise_array(
        self,
        source: NDArray[Any],
        output: NDArray[Any] | None = None,
        deadline: float | None = None,
    ) -> NDArray[Any]:
        """Denoise an HxWx3 array tile by tile.

        ``source`` is uint8 or float32 on [0, 1] (float input may be unclipped
        noisy data). The result goes to ``output`` (allocated like ``source`` when
        None): float output stays unclipped, uint8 output is clipped and rounded.
        ``deadline`` is a time.monotonic() value; passing it raises
        DenoiseTimeoutError between tiles.
        """
        if source.ndim != 3 or source.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 array, got shape {source.shape}")
        height, width = source.shape[:2]
        self.check_size(width, height)
        if output is None:
            output = np.empty_like(source)

        size, overlap = self.tiles.tile_size, self.tiles.tile_overlap
        rows = tile_spans(height, size, overlap, self.scale)
        columns = tile_spans(width, size, overlap, self.scale)
        target = output

        def denoise_tile(span: tuple[Span, Span]) -> None:
            (top, bottom, in_top, in_bottom), (left, right, in_left, in_right) = span
            if deadline is not None and time.monotonic() > deadline:
                raise DenoiseTimeoutError(
                    f"Denoising the {width}x{height} image ran past its time "
                    f"budget of {time_budget_seconds(width * height):.0f} s."
                )
            restored = self.run_tile(source[in_top:in_bottom, in_left:in_right])
            core = restored[top - in_top : bottom - in_top, left - in_left :][
                :, : right - left
            ]
            if target.dtype == np.uint8:
                core = np.clip(np.rint(core * 255.0), 0, 255).astype(np.uint8)
            # Tile cores do not overlap, so threads write disjoint parts.
            target[top:bottom, left:right] = core

        # Views auto times the network on first use. Reading the views here times
        # it once, on this thread, and not in every tile thread at once.
        _ = self.views
        self.run_tiles(
            denoise_tile, [(row, column) for row in rows for column in columns]
        )
        return output

    def denoise_image(
        self, image: Image.Image, deadline: float | None = None
    ) -> Image.Image:
        """Denoise a Pillow image in mode RGB, RGBA, L or LA.

        Alpha is passed through untouched. Greyscale is denoised as RGB with equal
        channels and converted back to L. The ICC profile is kept.
        """
        self.check_size(image.width, image.height)
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            raise ValueError(
                f"convert the image to RGB, RGBA, L or LA first, got {image.mode}"
            )

        alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
        colour = image if image.mode == "RGB" else image.convert("RGB")
        pixels = np.asarray(colour, dtype=np.uint8)
        restored = self.denoise_array(pixels, deadline=deadline)
        result = Image.fromarray(restored, mode="RGB")
        del pixels, restored

        if image.mode in ("L", "LA"):
            result = result.convert("L")
        if alpha is not None:
            result.putalpha(alpha)
        icc = image.info.get("icc_profile")
        if icc:
            result.info["icc_profile"] = icc
        return result
