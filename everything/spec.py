"""`GeneratorSpec`: everything needed to build a mask generator, as plain data (sent to Ray workers).

The command line turns its flags into a spec; the single-process path and every Ray actor call
`spec.build()` to get their own model replica and generator.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator
from samkit.models import MOBILE_SAM, MOBILESAMV2, MOBILESAMV2_DETECTOR, SAM_MODELS

from .objects import ObjectAwareMaskGenerator
from .pipelines import BOXES_PIPELINE, GRID_PIPELINE, MOBILESAMV2_PIPELINE, OBJECT_PIPELINES, pipeline_settings
from .settings import GRID, OBJECTS, PROMPT_MODES

RANDOM_SEED = 0  # random weights are drawn with this seed: every worker and every resumed run gets the same ones


@dataclass(frozen=True)
class GeneratorSpec:
    """How to build a generator.

    prompts: "grid" (the official generator) or "objects" (box prompts from `detector`, a registry name or a file;
    None: the caller passes the boxes of every image); pipeline (`everything.pipelines`): "grid" with grid prompts,
    "mobilesam-boxes" (the default with objects) or "mobilesamv2"; model: the catalog name of the model (None:
    MobileSAM, or MobileSAMv2 in "mobilesamv2"; a SAM-family name otherwise); checkpoint: an explicit file of the
    model (in "mobilesamv2" its l2.pt; None: the checkpoint cache, `checkpoint_dir` or the default, downloading when
    `download`; "mobilesamv2" reads its decoder from there too); random_weights: no file of the model (meaningless
    masks, drawn with RANDOM_SEED; the detector still needs its file); device: "auto", "cpu", "cuda", ...;
    settings: keyword arguments of the generator's constructor, checked and completed with the pipeline's defaults
    (`everything.pipelines.pipeline_settings`).
    """

    model: str | None = None
    checkpoint: str | None = None
    checkpoint_dir: str | None = None
    download: bool = True
    random_weights: bool = False
    device: str = "auto"
    prompts: str = GRID
    detector: str | None = "objectaware"
    settings: dict[str, Any] = field(default_factory=dict)
    pipeline: str | None = None

    def __post_init__(self) -> None:
        if self.prompts not in PROMPT_MODES:
            raise ValueError(f"prompts must be one of {', '.join(PROMPT_MODES)}, got {self.prompts!r}")
        pipeline = self.pipeline or (GRID_PIPELINE if self.prompts == GRID else BOXES_PIPELINE)
        allowed = (GRID_PIPELINE,) if self.prompts == GRID else OBJECT_PIPELINES
        if pipeline not in allowed:
            raise ValueError(
                f"the pipeline of prompts {self.prompts!r} is one of {', '.join(allowed)}, got {pipeline!r}"
            )
        models = (MOBILESAMV2,) if pipeline == MOBILESAMV2_PIPELINE else SAM_MODELS
        model = self.model or (MOBILESAMV2 if pipeline == MOBILESAMV2_PIPELINE else MOBILE_SAM)
        if model not in models:
            raise ValueError(f"the model of the {pipeline} pipeline is one of {', '.join(models)}, got {model!r}")
        object.__setattr__(self, "pipeline", pipeline)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "settings", pipeline_settings(pipeline, self.settings))

    def resolved(self) -> GeneratorSpec:
        """The same spec with the checkpoint and detector files found (downloaded if allowed) now, so that
        workers built from it read files and never download."""
        from samkit.checkpoints import CheckpointNotFoundError, resolve_checkpoint
        from samkit.loading import model_files
        from samkit.models import DETECTORS

        checkpoint, detector, missing = self.checkpoint, self.detector, []
        if not self.random_weights:  # every file of the model (MobileSAMv2's decoder too), all missing ones named
            try:
                files = model_files(self.model, checkpoint, cache_dir=self.checkpoint_dir, download=self.download)
                checkpoint = str(files[0])
            except CheckpointNotFoundError as error:
                missing.append(str(error))
        if self.prompts == OBJECTS and detector is not None and detector.strip().lower() in DETECTORS:
            try:
                found = resolve_checkpoint(
                    detector.strip().lower(), cache_dir=self.checkpoint_dir, download=self.download
                )
                detector = str(found)
            except CheckpointNotFoundError as error:
                missing.append(str(error))
        if missing:
            raise CheckpointNotFoundError("\n\n".join(missing))
        return dataclasses.replace(self, checkpoint=checkpoint, detector=detector)

    def record(self) -> dict[str, Any]:
        """What the results depend on (for `everything.run_record`), of a `resolved` spec: the pipeline, the model,
        the SHA-256 of its weights (one per file: MobileSAMv2 has two) and of the detector file, the prompt mode and
        every setting."""
        from samkit.checkpoints import sha256_file
        from samkit.loading import model_files

        weights: str | dict[str, str] = f"random (seed {RANDOM_SEED})"
        if not self.random_weights:
            files = model_files(self.model, self.checkpoint, cache_dir=self.checkpoint_dir, download=False)
            hashes = {path.name: sha256_file(path) for path in files}
            weights = hashes if len(hashes) > 1 else next(iter(hashes.values()))
        boxes = None
        if self.prompts == OBJECTS:
            boxes = "caller boxes" if self.detector is None else f"detector {sha256_file(self.detector)}"
        return {
            "pipeline": self.pipeline,
            "model": self.model,
            "weights": weights,
            "prompts": self.prompts,
            "boxes": boxes,
            **self.settings,
        }

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
        if self.detector is not None and self.pipeline == MOBILESAMV2_PIPELINE:
            from samkit.checkpoints import resolve_checkpoint

            from .pipelines import mobilesamv2_detector

            path = resolve_checkpoint(
                MOBILESAMV2_DETECTOR,
                path=None if self.detector.strip().lower() == MOBILESAMV2_DETECTOR else self.detector,
                cache_dir=self.checkpoint_dir,
                download=False,
            )
            box_source = mobilesamv2_detector(path, device)
        elif self.detector is not None:
            from .box_sources import load_box_source

            box_source = load_box_source(
                self.detector, device=device, checkpoint_dir=self.checkpoint_dir, download=self.download
            )
        return ObjectAwareMaskGenerator(model, box_source, output_mode="coco_rle", **self.settings)
