"""Train the blind colour denoiser on CBSD432 with resumable checkpoints.

Start or continue a run (the checkpoint is created when missing, resumed otherwise)::

    nice -n 19 python -m pixtools_worker_ml.train --datasets-dir DIR --minutes 140

Every ``--checkpoint-minutes`` the run writes the full training state (weights,
Adam moments, LR schedule, EMA weights, step, numpy and torch RNG states) to
``--checkpoint``, so a resumed run continues the same batch sequence. Each validation
appends one JSON line to the metrics log. When the EMA weights beat the best mean
validation PSNR so far, they are exported to ``--export-weights`` (state_dict plus an
architecture JSON), the file that the inference code loads.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import structlog
import torch

from pixtools_worker_ml.data import (
    DATASETS_ENV,
    PatchSampler,
    ValidationSet,
    build_validation_set,
    load_images,
    psnr_uint8,
    resolve_datasets_dir,
    to_eight_bit,
)
from pixtools_worker_ml.model import (
    DenoiseNet,
    ModelConfig,
    count_parameters,
    deepen,
)
from pixtools_worker_ml.runtime import (
    configure_threads,
    resolve_precision,
    to_channels_last,
)
from pixtools_worker_ml.weights_io import load_weights, save_weights

logger = structlog.get_logger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = PACKAGE_DIR.parent / "training" / "checkpoint.pt"
DEFAULT_WEIGHTS = PACKAGE_DIR / "weights" / "denoise.pt"
VALIDATION_SIGMAS = (15, 25, 50)
CHECKPOINT_FORMAT = 1
# Gradient norms of the mean squared error measured 0.005-0.008 on trained weights,
# so clipping at 0.02 only limits outliers. Without it (and with a peak LR of 1e-3)
# one run diverged at step 1800 and its ReLUs died: the output became the input.
GRADIENT_CLIP_NORM = 0.02
# A step whose loss exceeds this multiple of the running mean loss is skipped,
# at most SPIKE_MAX_SKIPS times in a row, so a real shift of the loss still trains.
SPIKE_FACTOR = 4.0
SPIKE_MAX_SKIPS = 50
SPIKE_MIN_STEP = 200


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters fixed for the whole run and stored in the checkpoint."""

    batch_size: int = 24
    patch_size: int = 80
    lr: float = 5e-4
    min_lr: float = 1e-5
    warmup_steps: int = 500
    total_steps: int = 60_000
    max_sigma: float = 55.0
    ema_decay: float = 0.999
    seed: int = 20240611
    validation_images: int = 12
    validation_crop: int = 160
    validation_every: int = 500
    init_weights: str = ""
    """Exported weights the run started from ("" for a random start)."""
    clip_fraction: float = 0.0
    """Share of noisy patches clipped to [0, 1] and rounded to 8 bits."""


def learning_rate_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from ``lr`` to ``min_lr`` at total_steps."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.min_lr / config.lr
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def skip_step(loss: float, running_loss: float, step: int, consecutive: int) -> bool:
    """Return True for a non-finite loss or a spike over the running mean loss."""
    if not math.isfinite(loss):
        return True
    spike = (
        step >= SPIKE_MIN_STEP
        and running_loss > 0.0
        and loss > SPIKE_FACTOR * running_loss
    )
    return spike and consecutive < SPIKE_MAX_SKIPS


class LearningRateSchedule:
    """Picklable LambdaLR factor so the scheduler state survives a checkpoint."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config

    def __call__(self, step: int) -> float:
        return learning_rate_factor(step, self.config)


class StopFlag:
    """Set by SIGTERM/SIGINT so the loop saves a checkpoint before exiting."""

    def __init__(self) -> None:
        self.stop = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        logger.info("stop_signal_received", signal=signum)
        self.stop = True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])

    files = parser.add_argument_group("files")
    files.add_argument(
        "--datasets-dir", help=f"folder with CBSD432 and CBSD68 (or {DATASETS_ENV})"
    )
    files.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    files.add_argument(
        "--log", type=Path, help="metrics JSONL file (default: beside the checkpoint)"
    )
    files.add_argument("--export-weights", type=Path, default=DEFAULT_WEIGHTS)
    files.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue from --checkpoint when it exists (default: on)",
    )
    files.add_argument(
        "--export-only",
        action="store_true",
        help="export the checkpoint's current EMA weights and exit (the best "
        "validated weights are exported during training)",
    )

    run = parser.add_argument_group("run (may change between resumed runs)")
    run.add_argument(
        "--minutes", type=float, default=140.0, help="wall-clock limit of this run"
    )
    run.add_argument("--max-steps", type=int, help="stop at this global step")
    run.add_argument(
        "--checkpoint-minutes",
        type=float,
        default=10.0,
        help="minutes between checkpoints",
    )
    run.add_argument("--threads", type=int, help="torch threads (default: CPU share)")
    # NOTE: only cpu has been run; cuda uses the same code with bf16 autocast.
    run.add_argument("--device", default="cpu", help="torch device: cpu or cuda")
    run.add_argument("--precision", default="auto", help="auto, bf16 or fp32")
    run.add_argument(
        "--total-steps",
        type=int,
        help=f"length of the cosine LR schedule in steps (default "
        f"{defaults.total_steps}); on resume it replaces the stored value",
    )

    fixed = parser.add_argument_group("hyperparameters (stored in the checkpoint)")
    fixed.add_argument("--batch-size", type=int, default=defaults.batch_size)
    fixed.add_argument(
        "--patch-size", type=int, default=defaults.patch_size, help="pixels"
    )
    fixed.add_argument("--lr", type=float, default=defaults.lr, help="peak Adam LR")
    fixed.add_argument("--min-lr", type=float, default=defaults.min_lr)
    fixed.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    fixed.add_argument(
        "--max-sigma",
        type=float,
        default=defaults.max_sigma,
        help="largest training noise sigma on the 0-255 scale",
    )
    fixed.add_argument(
        "--clip-fraction",
        type=float,
        default=defaults.clip_fraction,
        help="share of noisy patches clipped and rounded to 8 bits, as in a saved "
        "noisy photo; validation then also scores 8-bit inputs and exports by the "
        "mean of both scores",
    )
    fixed.add_argument("--seed", type=int, default=defaults.seed)
    fixed.add_argument(
        "--validation-every",
        type=int,
        default=defaults.validation_every,
        help="steps between validations",
    )
    fixed.add_argument(
        "--init-weights",
        type=Path,
        help="start a new run from exported weights (with their JSON) instead of "
        "a random initialisation",
    )
    fixed.add_argument("--width", type=int, default=ModelConfig().width)
    fixed.add_argument("--blocks", type=int, default=ModelConfig().blocks)
    return parser.parse_args(argv)


class Trainer:
    """One training run: model, optimiser, schedule, EMA, sampler and bookkeeping."""

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        sampler: PatchSampler,
        validation: ValidationSet,
        device: torch.device,
        use_bf16: bool,
    ) -> None:
        self.model_config = model_config
        self.config = train_config
        self.sampler = sampler
        self.validation = validation
        self.device = device
        self.use_bf16 = use_bf16
        torch.manual_seed(train_config.seed)
        self.model = to_channels_last(DenoiseNet(model_config).to(device))
        self.ema = to_channels_last(DenoiseNet(model_config).to(device))
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_config.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, LearningRateSchedule(train_config)
        )
        self.step = 0
        self.elapsed_seconds = 0.0
        self.best_psnr = -math.inf
        self.best_step = -1
        self.skipped_steps = 0
        self.running_loss = 0.0
        self.consecutive_skips = 0

    def autocast(self) -> torch.autocast:
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16
        )

    def train_step(self) -> float | None:
        noisy_np, clean_np = self.sampler.sample(self.config.batch_size)
        noisy = torch.from_numpy(noisy_np).to(self.device)
        noisy = noisy.contiguous(memory_format=torch.channels_last)
        clean = torch.from_numpy(clean_np).to(self.device)

        with self.autocast():
            restored = self.model(noisy)
        loss = torch.mean((restored.float() - clean) ** 2)

        self.optimizer.zero_grad(set_to_none=True)
        value = float(loss.item())
        if skip_step(value, self.running_loss, self.step, self.consecutive_skips):
            self.skipped_steps += 1
            self.consecutive_skips += 1
            logger.warning(
                "loss_spike_skipped",
                step=self.step,
                loss=value,
                running_loss=self.running_loss,
                skipped=self.skipped_steps,
            )
            self.step += 1
            self.scheduler.step()
            return None
        self.consecutive_skips = 0
        if self.running_loss == 0.0:
            self.running_loss = value
        self.running_loss = 0.99 * self.running_loss + 0.01 * value

        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRADIENT_CLIP_NORM)
        self.optimizer.step()
        self.scheduler.step()
        self.update_ema()
        self.step += 1
        return value

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the EMA weights towards the current ones (decay warms up)."""
        decay = min(self.config.ema_decay, (1.0 + self.step) / (10.0 + self.step))
        current = self.model.state_dict()
        for name, ema_value in self.ema.state_dict().items():
            if ema_value.is_floating_point():
                ema_value.lerp_(current[name], 1.0 - decay)
            else:
                ema_value.copy_(current[name])

    @torch.inference_mode()
    def validate(self, eight_bit: bool = False) -> dict[int, float]:
        """Return the EMA weights' mean PSNR per sigma on the validation crops.

        With ``eight_bit`` the noisy crops are clipped and rounded to 8 bits first.
        """
        self.ema.eval()
        scores: dict[int, float] = {}
        for sigma, (noisy_np, clean_np) in self.validation.pairs.items():
            values = []
            for noisy_one, clean_one in zip(noisy_np, clean_np, strict=True):
                if eight_bit:
                    noisy_one = to_eight_bit(noisy_one)
                noisy = torch.from_numpy(noisy_one[None]).to(self.device)
                noisy = noisy.contiguous(memory_format=torch.channels_last)
                with self.autocast():
                    restored = self.ema(noisy).float().cpu().numpy()[0]
                values.append(psnr_uint8(restored, clean_one))
            scores[sigma] = float(np.mean(values))
        return scores

    def start_from(self, model: DenoiseNet) -> None:
        """Copy exported weights into the model and its EMA before step 0.

        Weights with fewer blocks than this run are deepened with identity blocks
        (see ``deepen``), so a trained network grows and keeps its output.
        """
        at_run_depth = replace(model.config, blocks=self.model_config.blocks)
        too_deep = model.config.blocks > self.model_config.blocks
        if at_run_depth != self.model_config or too_deep:
            raise SystemExit(
                f"--init-weights has architecture {model.config}, but this run "
                f"uses {self.model_config}; pass the same --width and at least as "
                "many --blocks"
            )
        if model.config.blocks < self.model_config.blocks:
            logger.info(
                "init_weights_deepened",
                blocks=model.config.blocks,
                new_blocks=self.model_config.blocks,
            )
            model = deepen(model, self.model_config.blocks)
        self.model.load_state_dict(model.state_dict())
        self.ema.load_state_dict(model.state_dict())

    def state_dict(self) -> dict[str, Any]:
        scheduler_state = self.scheduler.state_dict()
        # The schedule is rebuilt from train_config on load, so only plain values
        # are stored and the checkpoint loads with torch.load(weights_only=True).
        scheduler_state["lr_lambdas"] = [None]
        return {
            "format": CHECKPOINT_FORMAT,
            "model_config": self.model_config.to_dict(),
            "train_config": asdict(self.config),
            "step": self.step,
            "elapsed_seconds": self.elapsed_seconds,
            "best_psnr": self.best_psnr,
            "best_step": self.best_step,
            "skipped_steps": self.skipped_steps,
            "running_loss": self.running_loss,
            "consecutive_skips": self.consecutive_skips,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": scheduler_state,
            "sampler_rng": self.sampler.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.elapsed_seconds = float(state["elapsed_seconds"])
        self.best_psnr = float(state["best_psnr"])
        self.best_step = int(state["best_step"])
        self.skipped_steps = int(state["skipped_steps"])
        self.running_loss = float(state.get("running_loss", 0.0))
        self.consecutive_skips = int(state.get("consecutive_skips", 0))


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write the checkpoint atomically so a crash never leaves a truncated file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise SystemExit(f"unsupported checkpoint format in {path}")
    return state


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def export_checkpoint_weights(state: dict[str, Any], weights_path: Path) -> None:
    """Export the current EMA weights of a checkpoint dictionary for inference."""
    config = ModelConfig.from_dict(state["model_config"])
    metadata = {
        "step": state["step"],
        "training_seconds": round(state["elapsed_seconds"], 1),
        "source": "checkpoint EMA weights (not validated at export)",
    }
    save_weights(state["ema"], config, weights_path, metadata)


def configure_logging() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(sort_keys=True),
        ]
    )


def run_validation(
    trainer: Trainer, metrics_path: Path, weights_path: Path, loss: float | None
) -> None:
    """Score the EMA weights, export them when they beat the best, log the result.

    A run that clips part of its training patches is scored on float and on 8-bit
    noisy crops, and the export criterion is the mean of both means.
    """
    scores = trainer.validate()
    mean = float(np.mean(list(scores.values())))
    record: dict[str, Any] = {
        "step": trainer.step,
        "elapsed_seconds": round(trainer.elapsed_seconds, 1),
        "lr": trainer.scheduler.get_last_lr()[0],
        "train_loss": loss,
        "psnr": {str(k): round(v, 4) for k, v in scores.items()},
        "psnr_mean": round(mean, 4),
    }
    criterion = mean
    if trainer.config.clip_fraction > 0.0:
        eight_bit = trainer.validate(eight_bit=True)
        eight_bit_mean = float(np.mean(list(eight_bit.values())))
        record["psnr_8bit"] = {str(k): round(v, 4) for k, v in eight_bit.items()}
        record["psnr_8bit_mean"] = round(eight_bit_mean, 4)
        criterion = (mean + eight_bit_mean) / 2.0
        record["criterion"] = round(criterion, 4)

    improved = criterion > trainer.best_psnr
    if improved:
        trainer.best_psnr = criterion
        trainer.best_step = trainer.step
        metadata = {
            "step": trainer.step,
            "validation_psnr_mean": round(mean, 4),
            "validation_psnr": record["psnr"],
            "training_seconds": round(trainer.elapsed_seconds, 1),
        }
        if "psnr_8bit" in record:
            metadata["validation_psnr_8bit"] = record["psnr_8bit"]
        save_weights(
            trainer.ema.state_dict(), trainer.model_config, weights_path, metadata
        )
    record["exported"] = improved
    append_metrics(metrics_path, record)
    logger.info("validation", **record)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = configure_threads(args.threads)

    if args.export_only:
        export_checkpoint_weights(load_checkpoint(args.checkpoint), args.export_weights)
        logger.info("weights_exported", path=str(args.export_weights))
        return 0

    datasets_dir = resolve_datasets_dir(args.datasets_dir)
    metrics_path = args.log or args.checkpoint.with_name("metrics.jsonl")
    resume_state = None
    if args.resume and args.checkpoint.exists():
        resume_state = load_checkpoint(args.checkpoint)
        model_config = ModelConfig.from_dict(resume_state["model_config"])
        train_config = TrainConfig(**resume_state["train_config"])
        if (
            args.total_steps is not None
            and args.total_steps != train_config.total_steps
        ):
            logger.info(
                "total_steps_changed",
                stored=train_config.total_steps,
                requested=args.total_steps,
            )
            train_config = replace(train_config, total_steps=args.total_steps)
    else:
        model_config = ModelConfig(width=args.width, blocks=args.blocks)
        train_config = TrainConfig(
            batch_size=args.batch_size,
            patch_size=args.patch_size,
            lr=args.lr,
            min_lr=args.min_lr,
            warmup_steps=args.warmup_steps,
            total_steps=args.total_steps or TrainConfig().total_steps,
            max_sigma=args.max_sigma,
            clip_fraction=args.clip_fraction,
            seed=args.seed,
            validation_every=args.validation_every,
            init_weights=str(args.init_weights or ""),
        )

    device = torch.device(args.device)
    use_bf16 = device.type == "cpu" and resolve_precision(args.precision) == "bf16"
    if device.type == "cuda":
        use_bf16 = args.precision != "fp32" and torch.cuda.is_bf16_supported()

    started = time.monotonic()
    sampler = PatchSampler(
        load_images(datasets_dir / "CBSD432"),
        patch_size=train_config.patch_size,
        max_sigma=train_config.max_sigma,
        seed=train_config.seed,
        clip_fraction=train_config.clip_fraction,
    )
    validation = build_validation_set(
        datasets_dir / "CBSD68",
        count=train_config.validation_images,
        crop=train_config.validation_crop,
        sigmas=VALIDATION_SIGMAS,
    )
    trainer = Trainer(model_config, train_config, sampler, validation, device, use_bf16)
    if resume_state is not None:
        trainer.load_state_dict(resume_state)
    elif args.init_weights is not None:
        trainer.start_from(load_weights(args.init_weights))
    logger.info(
        "training_started",
        resumed=resume_state is not None,
        step=trainer.step,
        threads=threads,
        device=str(device),
        bf16=use_bf16,
        parameters=count_parameters(trainer.model),
        model=model_config.to_dict(),
        config=asdict(train_config),
        data_seconds=round(time.monotonic() - started, 1),
    )

    stop_flag = StopFlag()
    signal.signal(signal.SIGTERM, stop_flag.handle)
    signal.signal(signal.SIGINT, stop_flag.handle)

    deadline = time.monotonic() + args.minutes * 60.0
    last_checkpoint = time.monotonic()
    losses: list[float] = []
    window_start = time.monotonic()
    window_first_step = trainer.step
    while not stop_flag.stop and time.monotonic() < deadline:
        if args.max_steps is not None and trainer.step >= args.max_steps:
            break
        step_start = time.monotonic()
        loss = trainer.train_step()
        trainer.elapsed_seconds += time.monotonic() - step_start
        if loss is not None:
            losses.append(loss)

        if trainer.step % 100 == 0:
            window = time.monotonic() - window_start
            logger.info(
                "train_progress",
                step=trainer.step,
                loss=float(np.mean(losses[-100:])) if losses else None,
                lr=trainer.scheduler.get_last_lr()[0],
                # A resumed run's first window may hold fewer than 100 steps.
                steps_per_second=round((trainer.step - window_first_step) / window, 3),
            )
            window_start = time.monotonic()
            window_first_step = trainer.step

        if trainer.step % train_config.validation_every == 0:
            mean_loss = float(np.mean(losses)) if losses else None
            run_validation(trainer, metrics_path, args.export_weights, mean_loss)
            losses = []

        if time.monotonic() - last_checkpoint >= args.checkpoint_minutes * 60.0:
            save_checkpoint(trainer.state_dict(), args.checkpoint)
            logger.info(
                "checkpoint_saved", step=trainer.step, path=str(args.checkpoint)
            )
            last_checkpoint = time.monotonic()

    save_checkpoint(trainer.state_dict(), args.checkpoint)
    logger.info(
        "training_stopped",
        step=trainer.step,
        best_psnr=trainer.best_psnr,
        best_step=trainer.best_step,
        path=str(args.checkpoint),
    )
    return 0


if __name__ == "__main__":
    configure_logging()
    sys.exit(main())
