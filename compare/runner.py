"""Run a comparison: every model on the same images and prompts, masks compared with the reference model's."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mobile_sam.utils.cancel import CancelFlag, raise_if_cancelled
from samkit.metrics import mask_iou
from samkit.prompts import Prompts
from samkit.protocols import (
    PAPER_DISTANCES,
    PROTOCOLS,
    PairDoesNotFit,
    PromptCase,
    jittered_box,
    pair_fits,
    point_pair_cases,
    protocol_rng,
    random_point_cases,
    user_cases,
)

from .backends import Backend
from .results import CaseRecord, ComparisonResult, EncoderRecord, MaskExample

# Called as on_mask(model name, image name, case index, HxW bool mask) for every mask.
MaskCallback = Callable[[str, str, int, np.ndarray], None]


@dataclass(frozen=True)
class ProtocolSpec:
    """Which prompts to use.

    name: "points2" (paper Table 7: a foreground and a background point `distances` apart), "point" (one random
    point), "box" (a box jittered around the reference mask of one random point) or "user" (`user_prompts`, by
    image name). prompts_per_image: prompts per image, per distance for points2.
    """

    name: str
    distances: tuple[float, ...] = PAPER_DISTANCES
    prompts_per_image: int = 20
    user_prompts: Mapping[str, Sequence[Prompts]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {self.name!r}; expected one of {', '.join(PROTOCOLS)}")
        if self.name != "user" and self.prompts_per_image < 1:
            raise ValueError(f"prompts_per_image must be at least 1, got {self.prompts_per_image}")


@dataclass(frozen=True)
class ComparisonRun:
    """A comparison's measurements and, for figures, the masks of the first prompt of each image."""

    result: ComparisonResult
    examples: list[MaskExample]


def _protocol_cases(
    spec: ProtocolSpec, image_name: str, image_size: tuple[int, int], rng: np.random.Generator
) -> tuple[list[PromptCase], list[float]]:
    """The image's prompts and, for points2, the distances left out because no pair that far apart fits it
    (checked before any draw, so the prompts of the other distances do not depend on them)."""
    if spec.name == "points2":
        cases, skipped = [], []
        for distance in spec.distances:
            if pair_fits(image_size, distance):
                try:
                    cases += point_pair_cases(image_size, [distance], spec.prompts_per_image, rng)
                    continue
                except PairDoesNotFit:  # within the diagonal, but too close to it to find a pair
                    pass
            skipped.append(float(distance))
        return cases, skipped
    if spec.name in ("point", "box"):
        return random_point_cases(image_size, spec.prompts_per_image, rng), []
    if not spec.user_prompts.get(image_name):
        raise ValueError(f"no user prompts for image {image_name!r} (prompts are matched by file name)")
    return user_cases([prompt.checked(image_size) for prompt in spec.user_prompts[image_name]]), []


def check_distances_fit(images: Sequence[tuple[str, np.ndarray]], spec: ProtocolSpec) -> None:
    """Refuse a points2 run in which no distance fits any image (it would measure nothing)."""
    if spec.name != "points2":
        return
    if not any(pair_fits(rgb.shape[:2], d) for _, rgb in images for d in spec.distances):
        largest = max(math.hypot(rgb.shape[1] - 1, rgb.shape[0] - 1) for _, rgb in images)
        raise ValueError(
            f"no distance fits any image: the distances are {', '.join(f'{d:g}' for d in spec.distances)} px, "
            f"the longest image diagonal is {largest:.0f} px"
        )


def _box_cases(reference: Backend, point_cases: list[PromptCase], rng: np.random.Generator) -> list[PromptCase]:
    """Boxes jittered around the reference's masks for the points; points with an empty mask give no box."""
    cases = []
    for case in point_cases:
        box = jittered_box(reference.segment(case.prompt).mask, rng)
        if box is not None:
            cases.append(PromptCase("box", "all", Prompts.from_lists(boxes=box)))
    return cases


def run_comparison(
    images: Sequence[tuple[str, np.ndarray]],
    reference: Backend,
    models: Sequence[Backend],
    spec: ProtocolSpec,
    *,
    seed: int = 0,
    warmup: int = 1,
    repeats: int = 1,
    progress: Callable[[str], None] | None = None,
    cancel: CancelFlag | None = None,
    on_mask: MaskCallback | None = None,
) -> ComparisonRun:
    """Run `reference` and `models` on every image and prompt.

    Arguments:
        images: (name, HxWx3 uint8 RGB) pairs; names must be unique.
        reference: the model whose masks count as ground truth (the paper uses original SAM, ViT-H).
        models: the models compared with it.
        spec: the prompt protocol. Prompts depend only on (seed, image index) and, for "box", the reference.
        warmup: untimed prepare + segment runs per model on the first image, before anything is timed.
        repeats: timed `prepare` runs per image and model (the encoder is timed `repeats` times per image);
            each prompt's `segment` is timed once.
        progress: called with a description after each (image, model) pair.
        cancel: checked before each (image, model) pair; once `cancel.is_set()`, raises Cancelled.
        on_mask: called with every mask (the result keeps only the first prompt's masks per image).
    Returns:
        The result (records, timings, parameter counts, settings) and one mask example per image.
    """
    backends = [reference, *models]
    names = [b.name for b in backends]
    if len(set(names)) != len(names):
        raise ValueError(f"model names must be unique, got {names}")
    image_names = [name for name, _ in images]
    if len(set(image_names)) != len(image_names):
        raise ValueError(f"image names must be unique, got {image_names}")
    if warmup < 0 or repeats < 1:
        raise ValueError(f"warmup must be >= 0 and repeats >= 1, got {warmup} and {repeats}")

    result = ComparisonResult(reference=reference.name, models=names)
    result.parameters = {b.name: b.parameter_counts().to_dict() for b in backends}
    check_distances_fit(images, spec)
    examples: list[MaskExample] = []
    skipped = 0
    skipped_distances: dict[str, list[float]] = {}
    for index, (image_name, rgb) in enumerate(images):
        rng = protocol_rng(seed, index)
        cases, left_out = _protocol_cases(spec, image_name, rgb.shape[:2], rng)
        if left_out:
            skipped_distances[image_name] = left_out
        reference_masks: list[np.ndarray] = []
        example_masks: dict[str, np.ndarray] = {}
        example_ious: dict[str, float] = {}
        for backend in backends:
            raise_if_cancelled(cancel, "the comparison")
            if index == 0:
                for _ in range(warmup):
                    backend.prepare(rgb)
                    if cases:
                        backend.segment(cases[0].prompt)
            for run in range(repeats):
                encoder_ms = backend.prepare(rgb)["encoder_ms"]
                result.encoder_runs.append(EncoderRecord(image_name, backend.name, run, encoder_ms))
            if backend is reference and spec.name == "box":
                point_count = len(cases)
                cases = _box_cases(reference, cases, rng)
                skipped += point_count - len(cases)
            for case_index, case in enumerate(cases):
                answer = backend.segment(case.prompt)
                if backend is reference:
                    reference_masks.append(answer.mask)
                if on_mask is not None:
                    on_mask(backend.name, image_name, case_index, answer.mask)
                iou = mask_iou(answer.mask, reference_masks[case_index])
                result.cases.append(
                    CaseRecord(
                        image=image_name,
                        case=case_index,
                        protocol=case.protocol,
                        condition=case.condition,
                        model=backend.name,
                        iou=iou,
                        score=answer.score,
                        decoder_ms=answer.timings["decoder_ms"],
                        mask_area=int(np.count_nonzero(answer.mask)),
                        prompt=case.prompt.to_dict(),
                        distance=case.distance,
                    )
                )
                if case_index == 0:
                    example_masks[backend.name] = answer.mask
                    example_ious[backend.name] = iou
            if progress is not None:
                progress(f"{image_name}: {backend.name}")
        if cases:
            examples.append(MaskExample(image_name, rgb, cases[0].prompt.to_dict(), example_masks, example_ious))
    result.settings = {
        "protocol": spec.name,
        "distances": list(spec.distances) if spec.name == "points2" else None,
        "prompts_per_image": spec.prompts_per_image if spec.name != "user" else None,
        "seed": seed,
        "warmup": warmup,
        "repeats": repeats,
        "images": image_names,
        "image_sizes": {name: [int(v) for v in rgb.shape[:2]] for name, rgb in images},
        "skipped_prompts": skipped,
    }
    if skipped_distances:
        result.settings["skipped_distances"] = skipped_distances
    return ComparisonRun(result=result, examples=examples)
