"""The compare tab and `/compare`: the user's prompts on every allowed model, through `compare.prepared`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from compare import FastSamBackend, MobileSamBackend, SamBackend
from compare.backends import Backend
from compare.fastsam_rules import DEFAULT_FASTSAM_RULES, FASTSAM_RULES_DESCRIPTIONS, check_rules
from compare.models import canonical_model_name
from samkit.checkpoints import CheckpointError
from samkit.drawing import draw_prompts, mask_colors, overlay_masks
from samkit.images import limit_image_side
from samkit.models import FASTSAM_MODELS, LABELS, MOBILE_SAM, names
from samkit.prompts import Prompts
from samkit.protocols import protocol_rng, random_point_cases

from .compare_prepared import ImageComparison, PreparedBackends, compare_on_image
from .heavy import run_heavy
from .messages import hide_paths
from .model_store import ModelStore
from .scheduling import HeavyLane, JobControl, current_job, interruptible
from .segment import THUMBNAIL_SIDE
from .segment import resize_mask as _resize_mask
from .sessions import Sessions

REFERENCES = (*reversed(names("sam")), MOBILE_SAM)  # largest first: the paper's reference leads
COMPARED = (MOBILE_SAM, *names("efficientvit_sam"), *FASTSAM_MODELS)


def user_prompts(prompts: Prompts, image_size: tuple[int, int]) -> list[Prompts]:
    """Prompts checked and clipped (Prompts.checked), split into one prompt per mask (one per box when there are
    several)."""
    groups, _ = prompts.checked(image_size).groups()
    return groups


def protocol_prompts(image_size: tuple[int, int], count: int, seed: int) -> list[Prompts]:
    """The seeded random-foreground-point protocol (samkit.protocols), count prompts."""
    return [case.prompt for case in random_point_cases(image_size, count, protocol_rng(seed, 0))]


class CompareTab:
    """Comparisons on the allowed models, with backends prepared once per image."""

    def __init__(
        self, store: ModelStore, sessions: Sessions, lane: HeavyLane, models: list[str], max_prompts: int
    ) -> None:
        self.store, self.sessions, self.lane, self.max_prompts = store, sessions, lane, max_prompts
        self.allowed = [canonical_model_name(name) for name in models]
        if MOBILE_SAM not in self.allowed:
            self.allowed.insert(0, MOBILE_SAM)
        self.prepared = PreparedBackends(self._prepare, max_items=4)

    def references(self) -> list[str]:
        return [name for name in REFERENCES if name in self.allowed]

    def compared(self) -> list[str]:
        return [name for name in COMPARED if name in self.allowed]

    def check(self, prompts: list[Prompts], reference: str, models: list[str]) -> tuple[str, list[str]]:
        """Canonical (reference, models), refusing models off the allow-list and too many prompts."""
        reference = canonical_model_name(reference)
        models = [canonical_model_name(name) for name in models]
        refused = [name for name in [reference, *models] if name not in self.allowed]
        if refused:
            raise ValueError(f"This server does not run {', '.join(refused)}; it runs {', '.join(self.allowed)}.")
        if len(prompts) > self.max_prompts:
            raise ValueError(
                f"{len(prompts)} prompts is more than this server's limit of {self.max_prompts} per comparison."
            )
        return reference, models

    async def answer(
        self,
        image: np.ndarray,
        prompts: list[Prompts],
        reference: str,
        models: list[str],
        random_weights: bool,
        request: Any,
        progress: Callable[..., Any] | None = None,
        fastsam_rules: str = DEFAULT_FASTSAM_RULES,
    ) -> ImageComparison:
        """Run the comparison in the heavy lane (cancelled with the calling task or the session); FastSAM's masks
        follow `fastsam_rules`."""
        reference, models = self.check(prompts, reference, models)
        check_rules(fastsam_rules)
        report = None if progress is None else (lambda fraction, text: progress(fraction, desc=text))

        def job(control: JobControl) -> ImageComparison:
            with current_job(control):
                return compare_on_image(
                    image,
                    prompts,
                    reference,
                    models,
                    self.prepared,
                    bool(random_weights),
                    cancel=control,
                    progress=report,
                    unavailable=(CheckpointError,),
                    fastsam_rules=fastsam_rules,
                )

        return await run_heavy(self.sessions, self.lane, request, job, progress)

    def _prepare(self, name: str, random_weights: Hashable, image: np.ndarray) -> tuple[Backend, float]:
        """A backend with image prepared: SAM-family encodings come from the store's shared cache."""
        device = self.store.device
        if name.startswith("fastsam-"):
            variant = name.removeprefix("fastsam-")
            module = interruptible(self.store.model(name, bool(random_weights)))
            with self.store.shared(("fastsam-lock", variant), threading.Lock):  # ultralytics' set-up touches the module
                backend = FastSamBackend(variant, model=module, device=device)
                return backend, backend.prepare(image)["encoder_ms"]
        interruptible(self.store.model(name, bool(random_weights)))
        embedding, _ = self.store.embedding(name, bool(random_weights), image)
        if name == MOBILE_SAM:
            backend = MobileSamBackend(predictor=embedding.predictor, device=device)
        else:
            backend = SamBackend(name, predictor=embedding.predictor, device=device)
        return backend, 1000 * embedding.encode_seconds


def gallery(
    comparison: ImageComparison, display: np.ndarray, scale: float, prompts: list[Prompts]
) -> list[tuple[np.ndarray, str]]:
    """Per model that ran: its masks over the display image with the prompts drawn, and a caption."""
    points = [p.point_coords for p in prompts if p.point_coords is not None]
    labels = [p.point_labels for p in prompts if p.point_labels is not None]
    boxes = [p.box for p in prompts if p.box is not None]
    markers = (
        np.concatenate(points) * scale if points else np.zeros((0, 2)),
        np.concatenate(labels) if labels else np.zeros((0,), np.int64),
        np.stack(boxes) * scale if boxes else np.zeros((0, 4)),
    )
    items = []
    for row in comparison.rows:
        masks = [_resize_mask(mask, display.shape[:2]) for mask in comparison.masks.get(row.model, [])]
        if not masks:
            continue
        shown = draw_prompts(overlay_masks(display, masks, colors=mask_colors(len(masks), seed=0)), *markers)
        caption = LABELS.get(row.model, row.model) + (
            " (reference)" if row.role == "reference" else f": mIoU {row.miou:.3f}"
        )
        items.append((limit_image_side(shown, THUMBNAIL_SIDE)[0], caption))
    return items


def table(comparison: ImageComparison) -> list[list[str]]:
    """The comparison's rows as display strings."""
    return [
        [
            LABELS.get(r.model, r.model),
            r.role,
            _fmt(r.miou, 3),
            _fmt(r.encoder_ms, 0),
            _fmt(r.decoder_ms, 1),
            _fmt(r.total_ms, 0),
            hide_paths(r.status),
        ]
        for r in comparison.rows
    ]


def summary(comparison: ImageComparison, prompt_count: int, fastsam_rules: str) -> str:
    """The line above the results: prompts, the reference, where encoder times come from and, when FastSAM ran,
    its prompt rules."""
    text = (
        f"{prompt_count} prompt(s), one mask each; mIoU is against {LABELS[comparison.rows[0].model]}. "
        "Encoder times come from the first encoding of this image (later runs reuse it)."
    )
    if any(row.model in FASTSAM_MODELS and row.status == "ok" for row in comparison.rows):
        text += (
            f" FastSAM's masks follow the {fastsam_rules!r} prompt rules: {FASTSAM_RULES_DESCRIPTIONS[fastsam_rules]}."
        )
    return text


def latency_figure(comparison: ImageComparison) -> Figure:
    """Stacked bars: encoder time plus decoder time for all prompts, per model that ran."""
    done = [row for row in comparison.rows if row.encoder_ms is not None]
    figure = Figure(figsize=(6, 3), dpi=100)
    axes = figure.add_subplot()
    names = [LABELS.get(row.model, row.model) for row in done]
    encoder = np.array([row.encoder_ms for row in done])
    decoder = np.array([row.total_ms - row.encoder_ms for row in done])
    axes.barh(names, encoder, label="image encoder")
    axes.barh(names, decoder, left=encoder, label="decoder (all prompts)")
    axes.set_xlabel("latency (ms)")
    axes.invert_yaxis()
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"
