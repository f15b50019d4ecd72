"""`GeneratorSpec`: everything needed to build a mask generator, as plain data (sent to Ray workers).

The command line turns its flags into a spec; the single-process path and every Ray actor call
`spec.build()` to get their own model replica and generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator
from samkit.models import MOBILE_SAM

from .objects import ObjectAwareMaskGenerator
from .settings import GRID, OBJECTS, PROMPT_MODES


@dataclass(frozen=True)
class GeneratorSpec:
    """How to build a generator.

    model: a SAM-family catalog name (`samkit.models.SAM_MODELS`, MobileSAM by default); checkpoint: an
    explicit file (None: the checkpoint cache, `checkpoint_dir` or the default, downloading when `download`);
    random_weights: no file at all (meaningless masks); device: "auto", "cpu", "cuda", ...; prompts: "grid"
    (the official generator) or "objects" (MobileSAMv2's box prompts from `detector`, a registry name or a file);
    settings: keyword arguments of the generator's constructor.
    """

    model: str = MOBILE_SAM
    checkpoint: str | None = None
    checkpoint_dir: str | None = None
    download: bool = True
    random_weights: bool = False
    device: str = "auto"
    prompts: str = GRID
    detector: str = "objectaware"
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prompts not in PROMPT_MODES:
            raise ValueError(f"prompts must be one of {PROMPT_MODES}, got {self.prompts!r}")

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
        if self.prompts == OBJECTS and detector.strip().lower() in DETECTORS:
            detector = str(
                resolve_checkpoint(detector.strip().lower(), cache_dir=self.checkpoint_dir, download=self.download)
            )
        return dataclasses.replace(self, checkpoint=checkpoint, detector=detector)

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
        ).to(device)
        if self.prompts == GRID:
            return SamAutomaticMaskGenerator(model, output_mode="coco_rle", **self.settings)
        from .box_sources import load_box_source

        box_source = load_box_source(
            self.detector, device=device, checkpoint_dir=self.checkpoint_dir, download=self.download
        )
        return ObjectAwareMaskGenerator(model, box_source, output_mode="coco_rle", **self.settings)
