"""The paper's evaluation: mIoU between the teacher SAM's and the student SAM's masks for the same seeded
prompts on held-out images (one random point, and Table 7's two points a fixed distance apart), plus the MSE
between their image embeddings. Prompts and metrics are `compare`'s (compare.protocols, compare.metrics).

One-point rule (as in compare's backends): a single point asks for three masks and keeps the highest-scoring
one; two points ask for one mask. Seeds: image i's one-point prompts come from `protocol_rng(seed, i)`, its
point pairs from `protocol_rng(seed + 1, i)`, so each protocol's prompts do not depend on the other's options.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mobile_sam.modeling import Sam
from mobile_sam.predictor import SamPredictor
from mobile_sam.utils.atomic import atomic_write_bytes
from samkit.devices import resolve_device
from samkit.images import load_image
from samkit.knobs import Rule, check_all
from samkit.metrics import mask_iou, mean_iou
from samkit.models import MOBILE_SAM
from samkit.prompts import Prompts
from samkit.protocols import PAPER_DISTANCES, point_pair_cases, protocol_rng, random_point_cases

from .encoding import encode_images
from .models import build_model, checkpoint_sha256, freeze, teacher_checkpoint
from .store import EmbeddingStore, StoreError

REPORT_FILE = "report.md"
RESULTS_FILE = "results.json"
PLOT_FILE = "miou.png"


@dataclass
class EvalResult:
    """mIoU per protocol and condition ("point/all", "points2/d=100", ...), embedding MSE, counts."""

    miou: dict[str, float]
    counts: dict[str, int]
    embedding_mse: float
    images: int
    skipped_prompts: int = 0
    per_image_mse: list[float] = field(default_factory=list)


def predictor_from_embedding(model: Sam, embedding: torch.Tensor, original_size: tuple[int, int]) -> SamPredictor:
    """A SamPredictor whose image is set from a stored (C, h, w) embedding instead of running the encoder."""
    predictor = SamPredictor(model)
    h, w = original_size
    predictor.original_size = (int(h), int(w))
    predictor.input_size = predictor.transform.get_preprocess_shape(h, w, model.image_size)
    predictor.features = embedding[None].to(model.device, torch.float32)
    predictor.dense_pe = model.prompt_encoder.get_dense_pe()
    predictor.is_image_set = True
    return predictor


@torch.no_grad()
def segment(predictor: SamPredictor, prompt: Prompts) -> np.ndarray:
    """The (H, W) bool mask for `prompt` (one point: best of three; otherwise one mask)."""
    multimask = prompt.box is None and prompt.num_points == 1
    masks, scores, _ = predictor.predict(
        point_coords=prompt.point_coords, point_labels=prompt.point_labels, box=prompt.box, multimask_output=multimask
    )
    return masks[int(np.argmax(scores))]


def _cases(size: tuple[int, int], index: int, seed: int, points: int, distances: Sequence[float], pairs: int):
    """The seeded prompts of image `index`; distances that do not fit the image are left out (counted)."""
    cases = random_point_cases(size, points, protocol_rng(seed, index)) if points else []
    skipped = 0
    rng = protocol_rng(seed + 1, index)
    for distance in distances:
        try:
            cases += point_pair_cases(size, [distance], pairs, rng)
        except ValueError:
            skipped += pairs
    return cases, skipped


# The rule of every numeric option of `evaluate` (the command line parses with the same rules).
RULES: dict[str, Rule] = {
    "seed": Rule(integer=True, low=0),
    "points_per_image": Rule(integer=True, low=0),
    "pairs_per_distance": Rule(integer=True, low=1),
}
DISTANCE = Rule(low=0.0, low_open=True)


def evaluate(
    store: str | Path,
    student: Sam,
    teacher: Sam,
    seed: int = 0,
    points_per_image: int = 10,
    distances: Sequence[float] = PAPER_DISTANCES,
    pairs_per_distance: int = 2,
    images: str | Path | None = None,
    show_progress: bool = True,
) -> EvalResult:
    """Compare `student` with `teacher` on the held-out images of `store` (teacher embeddings stored there)."""
    check_all(RULES, {"seed": seed, "points_per_image": points_per_image, "pairs_per_distance": pairs_per_distance})
    distances = [DISTANCE.check("distance", d) for d in distances]
    held_out = EmbeddingStore(store, images)
    if len(held_out) == 0:
        raise StoreError(f"{store} holds no embeddings")
    ious: dict[str, list[float]] = defaultdict(list)
    mses: list[float] = []
    skipped = 0
    for i in tqdm(range(len(held_out)), desc="eval", unit="img", disable=not show_progress):
        record = held_out.index.images[i]
        image = load_image(held_out.image_path(i))
        if tuple(image.shape[:2]) != tuple(record.original_size):
            raise StoreError(f"{held_out.image_path(i)} changed size since it was embedded")
        teacher_embedding = torch.from_numpy(np.array(held_out.embedding(i), dtype=np.float32))
        student_embedding = torch.from_numpy(encode_images(student, [image])[0])
        mses.append(float(((student_embedding - teacher_embedding) ** 2).mean()))
        teacher_predictor = predictor_from_embedding(teacher, teacher_embedding, record.original_size)
        student_predictor = predictor_from_embedding(student, student_embedding, record.original_size)
        cases, lost = _cases(record.original_size, i, seed, points_per_image, distances, pairs_per_distance)
        skipped += lost
        for case in cases:
            iou = mask_iou(segment(teacher_predictor, case.prompt), segment(student_predictor, case.prompt))
            ious[f"{case.protocol}/{case.condition}"].append(iou)
    return EvalResult(
        miou={key: mean_iou(values) for key, values in ious.items()},
        counts={key: len(values) for key, values in ious.items()},
        embedding_mse=float(np.mean(mses)),
        images=len(held_out),
        skipped_prompts=skipped,
        per_image_mse=mses,
    )


def load_pair(
    store: str | Path,
    student_checkpoint: str | Path | None,
    student_name: str = MOBILE_SAM,
    teacher_checkpoint_path: str | Path | None = None,
    device: str = "auto",
) -> tuple[Sam, Sam]:
    """(student, teacher) for `evaluate`: the teacher named by the store (its checkpoint hash checked)."""
    index = EmbeddingStore(store).index
    path = teacher_checkpoint(index.teacher, teacher_checkpoint_path)
    if checkpoint_sha256(path) != index.checkpoint_sha256:
        raise StoreError(f"{path} is not the teacher checkpoint the store {store} was made with")
    target = resolve_device(device)
    teacher = freeze(build_model(index.teacher, path)).to(target)
    student = freeze(build_model(student_name, student_checkpoint)).to(target)
    return student, teacher


def format_report(result: EvalResult, title: str) -> str:
    """The markdown report: mIoU table per protocol/condition and the embedding MSE."""
    lines = [
        f"# {title}",
        "",
        f"Held-out images: {result.images}. Embedding MSE (student vs teacher): {result.embedding_mse:.4g}.",
        "",
        "| protocol | condition | prompts | mIoU |",
        "|---|---|---:|---:|",
    ]
    for key in sorted(result.miou, key=lambda k: (k.split("/")[0] != "point", k)):
        protocol, condition = key.split("/", 1)
        lines.append(f"| {protocol} | {condition} | {result.counts[key]} | {result.miou[key]:.4f} |")
    if result.skipped_prompts:
        lines += [
            "",
            f"{result.skipped_prompts} two-point prompts were left out: their distance does not fit the image.",
        ]
    return "\n".join(lines) + "\n"


def plot_miou(result: EvalResult, path: Path, title: str) -> Path:
    """A bar chart of mIoU per protocol/condition (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    keys = sorted(result.miou, key=lambda k: (k.split("/")[0] != "point", k))
    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.add_subplot()
    axes.bar(range(len(keys)), [result.miou[k] for k in keys])
    axes.set_xticks(range(len(keys)), [k.replace("/all", "") for k in keys], rotation=30, ha="right")
    axes.set_ylim(0, 1)
    axes.set_ylabel("mIoU teacher vs student")
    axes.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def write_report(result: EvalResult, output: str | Path, title: str) -> Path:
    """report.md, results.json and miou.png in `output`; returns the report's path."""
    folder = Path(output)
    atomic_write_bytes(folder / RESULTS_FILE, json.dumps(asdict(result), indent=1).encode("utf-8"))
    plot_miou(result, folder / PLOT_FILE, title)
    return atomic_write_bytes(folder / REPORT_FILE, format_report(result, title).encode("utf-8"))
