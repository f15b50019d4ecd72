"""`GeneratorSpec`: everything needed to build a mask generator, as plain data (sent to Ray workers).

The command line turns its flags into a spec; the single-process path and every Ray actor call
`spec.build()` to get their own model replica and generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator
from samkit.models import MOBILE_SAM, SAM_MODELS

from .objects import ObjectAwareMaskGenerator
from .settings import GRID, OBJECTS, check_settings

RANDOM_SEED = 0  # random weights are drawn with this seed: every worker and every resumed run gets the same ones


@dataclass(frozen=True)
class GeneratorSpec:
    """How to build a generator.

    model: a SAM-family catalog name (`samkit.models.SAM_MODELS`, MobileSAM by default); checkpoint: an
    explicit file (None: the checkpoint cache, `checkpoint_dir` or the default, downloading when `download`);
    random_weights: no file at all (meaningless masks, drawn with RANDOM_SEED); device: "auto", "cpu", "cuda", ...;
    prompts: "grid" (the official generator) or "objects" (MobileSAMv2's box prompts from `detector`, a registry
    name or a file; None: the caller passes the boxes of every image); settings: keyword arguments of the
    generator's constructor, checked and completed with the defaults (`everything.settings.check_settings`).
    """

    model: str = MOBILE_SAM
    checkpoint: str | None = None
    checkpoint_dir: str | None = None
    download: bool = True
    random_weights: bool = False
    device: str = "auto"
    prompts: str = GRID
    detector: str | None = "objectaware"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in SAM_MODELS:
            raise ValueError(f"model must be one of {', '.join(SAM_MODELS)}, got {self.model!r}")
        object.__setattr__(self, "settings", check_settings(self.prompts, self.settings))

    def resolved(self) -> GeneratorSpec:
        """The same spec with the checkpoint and detector files found (downloaded if allowed) now, so that
        workers built from it read files and never download."""
        from samkit.checkpoints import resolve_checkpoint
        from samkit.models import DETECTORS

        checkpoint = self.checkpoint
        if not self.random_weights:
            checkpoint = str(
                resolve_checkpoint(self.model, path=checkpoint, cache_dir=self.checkpoint_dir, download=self.download)
            )
        detector = self.detector
        if self.prompts == OBJECTS and detector is not None and detector.strip().lower() in DETECTORS:
            detector = str(
                resolve_checkpoint(detector.strip().lower(), cache_dir=self.checkpoint_dir, download=self.download)
            )
        return dataclasses.replace(self, checkpoint=checkpoint, detector=detector)

    def record(self) -> dict[str, Any]:
        """What the results depend on (for `everything.run_record`), of a `resolved` spec: the model, the SHA-256 of
        its weights and of the detector file, the prompt mode and every setting."""
        from samkit.checkpoints import sha256_file

        weights = f"random (seed {RANDOM_SEED})" if self.random_weights else sha256_file(self.checkpoint)
        boxes = None
        if self.prompts == OBJECTS:
            boxes = "caller boxes" if self.detector is None else f"detector {sha256_file(self.detector)}"
        return {"model": self.model, "weights": weights, "prompts": self.prompts, "boxes": boxes, **self.settings}

    def build(self) -> SamAutomaticMaskGenerator | ObjectAwareMaskGenerator:
        """The model (in eval mode, on the device) and its generator; output records are COCO RLE."""
        from samkit.devices import resolve_device
        from samkit.loading import load_model

        device = resolve_device(self.device)
        model = load_model(
            self.model,
            checkpoint=self.checkpoint,
            checkpoint_dir=self.checkpoint_dir,
            download=self.download,
            random_weights=self.random_weights,
            seed=RANDOM_SEED if self.random_weights else None,
        ).to(device)
        if self.prompts == GRID:
            return SamAutomaticMaskGenerator(model, output_mode="coco_rle", **self.settings)
        box_source = None
        if self.detector is not None:
            from .box_sources import load_box_source

            box_source = load_box_source(
                self.detector, device=device, checkpoint_dir=self.checkpoint_dir, download=self.download
            )
        return ObjectAwareMaskGenerator(model, box_source, output_mode="coco_rle", **self.settings)
