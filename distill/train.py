"""Training the student on stored teacher embeddings. Modes:

- ``decoupled`` (the MobileSAM paper, section 3.2): the student encoder learns the teacher's embeddings (MSE);
- ``semi-coupled`` (the paper's ablation): the student encoder learns through the frozen copied mask decoder,
  with a mask loss (`losses.mask_loss`) against the decoder's masks from the teacher embedding, for random
  one-point prompts;
- ``decoder`` (`finetune-decoder`, the paper's optional second stage): the student encoder is frozen and its
  mask decoder learns to reproduce the teacher SAM's masks (teacher decoder on the teacher embedding) for
  random one-point prompts, with the same mask loss plus the MSE of its predicted IoU against the teacher's
  (`losses.decoder_loss`).

Optimizers (`build_optimizers`): AdamW, or Muon for the linear layers' weight matrices with AdamW for the rest.

One optimizer step = `accumulate` micro-batches of `batch_size` images per process. The data order of epoch e
is a seeded permutation (`data.epoch_order`), so step s fixes the position in the data; a checkpoint holds the
student, optimizer, scheduler, RNG states and step, and resuming from it reproduces the uninterrupted run.
Under `torchrun` the encoder is wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU) and each
process reads its own share of every epoch.
"""

from __future__ import annotations

import csv
import io
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mobile_sam.modeling import Sam
from mobile_sam.utils.atomic import atomic_write_bytes
from samkit.devices import resolve_device
from samkit.knobs import Rule, check_all
from samkit.models import MOBILE_SAM

from .data import StoreDataset, epoch_order
from .losses import decoder_loss, embedding_mse, mask_loss
from .models import (
    adopt_decoder,
    build_model,
    check_student_name,
    checkpoint_sha256,
    embedding_shape,
    freeze,
    output_norm,
    teacher_checkpoint,
)
from .prompting import decode_points, random_points
from .schedule import warmup_cosine
from .store import EmbeddingStore, StoreError

MODES = ("decoupled", "semi-coupled", "decoder")
OPTIMIZERS = ("adamw", "muon")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STUDENT_FILE = "mobile_sam.pt"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "train_log.csv"
PLOT_FILE = "loss.png"
UNUSED_ENCODER_PARTS = ("norm_head", "head")
LOG_FIELDS = ("step", "epoch", "lr", "loss", "seconds")
COUNT = Rule(integer=True, low=1)
# The rule of every numeric option of `TrainConfig` (the command line parses with the same rules).
RULES: dict[str, Rule] = {
    "epochs": COUNT,
    "steps": Rule(integer=True, low=1, none_ok=True),
    "batch_size": COUNT,
    "accumulate": COUNT,
    "lr": Rule(low=0.0, low_open=True),
    "output_lr_scale": Rule(low=0.0, low_open=True),
    "weight_decay": Rule(low=0.0),
    "warmup": Rule(integer=True, low=0),
    "min_lr_ratio": Rule(low=0.0, high=1.0),
    "seed": Rule(integer=True, low=0),
    "checkpoint_every": COUNT,
    "points_per_image": COUNT,
}
# Options that change the loss curve: a resumed run must use the same values.
_CURVE_FIELDS = (
    "student",
    "mode",
    "optimizer",
    "lr",
    "output_lr_scale",
    "weight_decay",
    "warmup",
    "min_lr_ratio",
    "batch_size",
    "accumulate",
    "seed",
    "points_per_image",
    "steps",
    "epochs",
    "precision",
)


@dataclass(frozen=True)
class TrainConfig:
    """Options of `train` (see `python -m distill train --help` for each)."""

    store: str
    output: str
    teacher_checkpoint: str | None = None
    images: str | None = None
    student: str = MOBILE_SAM
    init: str | None = None
    mode: str = "decoupled"
    epochs: int = 8
    steps: int | None = None
    batch_size: int = 8
    accumulate: int = 1
    optimizer: str = "adamw"
    lr: float = 1e-3
    output_lr_scale: float = 1.0
    weight_decay: float = 0.05
    warmup: int = 100
    min_lr_ratio: float = 0.01
    seed: int = 0
    precision: str = "auto"
    device: str = "auto"
    checkpoint_every: int = 100
    points_per_image: int = 4
    plot: bool = True
    progress: bool = True


@dataclass(frozen=True)
class TrainResult:
    """Where the outputs are and the per-step mean losses of the whole run (resumed part included)."""

    student_checkpoint: Path
    log: Path
    plot: Path | None
    losses: list[float]


def _check_config(config: TrainConfig) -> None:
    check_student_name(config.student)
    if config.mode not in MODES:
        raise ValueError(f"unknown mode {config.mode!r}; choose one of {', '.join(MODES)}")
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if config.precision not in PRECISIONS:
        raise ValueError(f"unknown precision {config.precision!r}; choose one of {', '.join(PRECISIONS)}")
    check_all(RULES, {name: getattr(config, name) for name in RULES})
    if config.mode == "decoder" and config.init is None:
        raise ValueError("fine-tuning the decoder needs the trained student's checkpoint (init)")
    if config.mode == "decoder" and config.output_lr_scale != 1:
        raise ValueError("output-lr-scale applies to the student encoder; finetune-decoder trains the mask decoder")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None: fp32). Mixed precision is CUDA-only."""
    if device.type != "cuda":
        if precision in ("bf16", "fp16"):
            raise ValueError(f"{precision} mixed precision needs a CUDA device; on {device.type} training runs in fp32")
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass(frozen=True)
class _Dist:
    rank: int
    world_size: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_name: str) -> tuple[_Dist, torch.device]:
    """Join the torchrun process group when WORLD_SIZE > 1; returns the process's place and device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if world_size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return _Dist(dist.get_rank(), world_size, local_rank), device
    return _Dist(0, 1, 0), device


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int, rank: int) -> None:
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)


def _write_log(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def plot_losses(rows: list[dict], path: Path, title: str) -> Path:
    """A PNG of loss per step (log scale), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.add_subplot()
    axes.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1)
    axes.set_yscale("log")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def build_optimizers(trainable: torch.nn.Module, config: TrainConfig) -> list[torch.optim.Optimizer]:
    """The optimizers of the learned parameters of `trainable`, all at the peak rate `config.lr`.

    adamw: AdamW for every parameter. muon: torch's Muon (momentum orthogonalised by Newton-Schulz steps;
    its step size matched to AdamW's update RMS, so the same --lr serves both) for the weight matrices of
    the linear layers (attention and MLP), AdamW for the rest (convolutions, norms, biases, attention-bias
    tables).

    With `config.output_lr_scale` != 1 the image encoder's output LayerNorm (`output_norm`: the per-channel
    scale and shift of the embedding) gets its own AdamW group at lr * output_lr_scale. Adam moves a
    parameter by about lr per step, so at lr 1e-3 a shift the size of a teacher's per-channel embedding means
    (about 0.5 for a random ViT-B) takes hundreds of steps; a larger rate for these 512 numbers lets a short
    run learn them.
    """
    learned = [p for p in trainable.parameters() if p.requires_grad]
    matrices = []
    if config.optimizer == "muon":
        matrices = [m.weight for m in trainable.modules() if isinstance(m, torch.nn.Linear) and m.weight.requires_grad]
    output = {id(p) for p in output_norm(trainable).parameters()} if config.output_lr_scale != 1 else set()
    matrix_ids = {id(m) for m in matrices}
    rest = [p for p in learned if id(p) not in matrix_ids]
    groups = [{"params": [p for p in rest if id(p) not in output], "lr": config.lr}]
    if output:
        groups.append({"params": [p for p in rest if id(p) in output], "lr": config.lr * config.output_lr_scale})
    optimizers = [torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)]
    if matrices:
        optimizers.append(
            torch.optim.Muon(matrices, lr=config.lr, weight_decay=config.weight_decay, adjust_lr_fn="match_rms_adamw")
        )
    return optimizers


class _Trainer:
    """The state of one training process (built by `train`)."""

    def __init__(self, config: TrainConfig, place: _Dist, device: torch.device) -> None:
        self.config, self.place, self.device = config, place, device
        store = EmbeddingStore(config.store, config.images)
        if len(store) == 0:
            raise StoreError(f"{config.store} holds no embeddings")
        index = store.index
        checkpoint = teacher_checkpoint(index.teacher, config.teacher_checkpoint)
        if checkpoint_sha256(checkpoint) != index.checkpoint_sha256:
            raise StoreError(f"{checkpoint} is not the teacher checkpoint the store {config.store} was made with")
        teacher = freeze(build_model(index.teacher, checkpoint))
        self.student = build_model(config.student, config.init)
        if embedding_shape(self.student) != tuple(index.embedding_shape) or self.student.image_size != index.image_size:
            raise ValueError(
                f"student {config.student} makes {embedding_shape(self.student)} embeddings from "
                f"{self.student.image_size}px input; the store holds {tuple(index.embedding_shape)} from "
                f"{index.image_size}px ({index.teacher})"
            )
        if config.mode == "decoder":  # the teacher's decoder is the target; the student's (from --init) learns
            teacher.image_encoder = torch.nn.Identity()
            self.reference = teacher.to(device)
        else:
            adopt_decoder(self.student, teacher)
            del teacher
        self.student.to(device)
        freeze(self.student)
        trainable = self.student.mask_decoder if config.mode == "decoder" else self.student.image_encoder
        trainable.train()
        trainable.requires_grad_(True)
        for unused in UNUSED_ENCODER_PARTS:  # TinyViT's classifier: in checkpoints, never run by SAM
            if hasattr(trainable, unused):
                getattr(trainable, unused).requires_grad_(False)
        self.dataset = StoreDataset(store)
        per_process = len(self.dataset) // place.world_size
        self.steps_per_epoch = per_process // (config.batch_size * config.accumulate)
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{len(self.dataset)} images cannot fill one step of {config.batch_size} x {config.accumulate} "
                f"images on each of {place.world_size} processes; lower --batch-size or --accumulate"
            )
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self.trainable = DistributedDataParallel(trainable) if place.world_size > 1 else trainable
        self.optimizers = build_optimizers(trainable, config)
        self.schedulers = [
            warmup_cosine(optimizer, config.warmup, self.total_steps, config.min_lr_ratio)
            for optimizer in self.optimizers
        ]
        self.amp_dtype = autocast_dtype(config.precision, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.rows: list[dict] = []
        self.step = 0

    # -- checkpoints -----------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "config": {k: asdict(self.config)[k] for k in _CURVE_FIELDS},
            "world_size": self.place.world_size,
            "step": self.step,
            "student": self.student.state_dict(),
            "optimizers": [optimizer.state_dict() for optimizer in self.optimizers],
            "schedulers": [scheduler.state_dict() for scheduler in self.schedulers],
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "log": self.rows,
        }

    def load(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)  # RNG states must stay on the CPU
        expected = {k: asdict(self.config)[k] for k in _CURVE_FIELDS}
        changed = {k: (state["config"].get(k), v) for k, v in expected.items() if state["config"].get(k) != v}
        if state["world_size"] != self.place.world_size:
            changed["processes"] = (state["world_size"], self.place.world_size)
        if changed:
            described = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"{path} was written with other training options ({described}); use another --out")
        self.student.load_state_dict(state["student"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
        for scheduler, saved in zip(self.schedulers, state["schedulers"], strict=True):
            scheduler.load_state_dict(saved)
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.rows = list(state["log"])

    def save(self, output: Path) -> None:
        if not self.place.main:
            return
        buffer = io.BytesIO()
        torch.save(self.state(), buffer)
        atomic_write_bytes(output / CHECKPOINT_FILE, buffer.getvalue())
        _write_log(output / LOG_FILE, self.rows)

    # -- one step --------------------------------------------------------------------------------------------
    def micro_batches(self, step: int) -> list[list[int]]:
        """The `accumulate` micro-batches (dataset indices) of optimizer step `step` in this process."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = epoch_order(self.dataset, epoch, self.config.seed, self.place.rank, self.place.world_size)
        size = self.config.batch_size
        first = position * self.config.accumulate
        return [order[(first + k) * size : (first + k + 1) * size] for k in range(self.config.accumulate)]

    def micro_loss(self, indices: list[int], generator: torch.Generator) -> torch.Tensor:
        samples = [self.dataset[i] for i in indices]
        inputs = torch.stack(
            [
                self.student.preprocess(image[:, : int(hw[0]), : int(hw[1])].to(self.device).float())
                for image, hw, _ in samples
            ]
        )
        target = torch.stack([t for _, _, t in samples]).to(self.device)
        autocast = torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        )
        mode = self.config.mode
        with autocast, torch.set_grad_enabled(mode != "decoder"):
            encoder = self.student.image_encoder if mode == "decoder" else self.trainable
            prediction = encoder(inputs).float()
        if mode == "decoupled":
            return embedding_mse(prediction, target)
        sizes = [tuple(int(v) for v in hw) for _, hw, _ in samples]
        points = random_points(sizes, self.config.points_per_image, generator).to(self.device)
        reference = self.reference if mode == "decoder" else self.student
        with torch.no_grad():
            teacher_logits, teacher_iou = decode_points(
                reference.prompt_encoder, reference.mask_decoder, target, points
            )
        decoder = self.trainable if mode == "decoder" else self.student.mask_decoder
        with autocast:
            student_logits, student_iou = decode_points(self.student.prompt_encoder, decoder, prediction, points)
        if mode == "decoder":
            return decoder_loss(student_logits, student_iou, teacher_logits, teacher_iou)
        return mask_loss(student_logits, teacher_logits)

    def run_step(self) -> float:
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step * 101 + self.place.rank)
        batches = self.micro_batches(self.step)
        total = 0.0
        for k, indices in enumerate(batches):
            last = k == len(batches) - 1
            syncing = last or not isinstance(self.trainable, DistributedDataParallel)
            context = self.trainable.no_sync() if not syncing else nullcontext()
            with context:
                loss = self.micro_loss(indices, generator)
                self.scaler.scale(loss / len(batches)).backward()
            total += float(loss.detach()) / len(batches)
        for optimizer in self.optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()
        for optimizer, scheduler in zip(self.optimizers, self.schedulers):
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        if self.place.world_size > 1:
            reduced = torch.tensor([total], device=self.device)
            dist.all_reduce(reduced)
            total = float(reduced) / self.place.world_size
        return total


def train(config: TrainConfig, should_stop: Callable[[int], bool] | None = None) -> TrainResult:
    """Train the student; resumes from `output`/checkpoint.pt when it exists (same options required).

    `should_stop(step)` is asked after each optimizer step; True saves a checkpoint and returns early (the
    outputs then describe the interrupted run). Writes mobile_sam.pt (full Sam state dict of the student),
    train_log.csv, loss.png and checkpoint.pt into `output`.
    """
    _check_config(config)
    place, device = _init_distributed(config.device)
    _seed_everything(config.seed, place.rank)
    output = Path(config.output)
    trainer = _Trainer(config, place, device)  # checks the store and the teacher before anything is written
    output.mkdir(parents=True, exist_ok=True)
    if (output / CHECKPOINT_FILE).exists():
        trainer.load(output / CHECKPOINT_FILE)
    started = time.perf_counter() - (trainer.rows[-1]["seconds"] if trainer.rows else 0.0)  # resumed: continue
    with tqdm(
        total=trainer.total_steps,
        initial=trainer.step,
        desc=f"train ({config.mode})",
        unit="step",
        disable=not (config.progress and place.main),
    ) as bar:
        while trainer.step < trainer.total_steps:
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            loss = trainer.run_step()
            trainer.step += 1
            trainer.rows.append(
                {
                    "step": trainer.step,
                    "epoch": (trainer.step - 1) // trainer.steps_per_epoch,
                    "lr": lr,
                    "loss": loss,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            )
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}")
            stop = should_stop is not None and should_stop(trainer.step)
            if stop or trainer.step % config.checkpoint_every == 0 or trainer.step == trainer.total_steps:
                trainer.save(output)
            if stop:
                break
    plot = None
    if place.main:
        atomic_write_bytes(output / STUDENT_FILE, _state_bytes(trainer.student))
        _write_log(output / LOG_FILE, trainer.rows)
        if config.plot:
            plot = plot_losses(trainer.rows, output / PLOT_FILE, f"{config.student} {config.mode} training")
    if place.world_size > 1:
        dist.barrier()
    return TrainResult(output / STUDENT_FILE, output / LOG_FILE, plot, [r["loss"] for r in trainer.rows])


def _state_bytes(model: Sam) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()
