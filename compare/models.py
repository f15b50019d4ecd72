"""The models the comparison knows by name, how to build their backends, and their parameter counts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mobile_sam import sam_model_registry

from .backends import Backend, FastSamBackend, MobileSamBackend, SamBackend, fastsam_architecture
from .params import ParameterCounts, build_without_weights, fastsam_parameter_counts, sam_parameter_counts

SAM_MODELS = ("vit_h", "vit_l", "vit_b")
MOBILE_SAM_MODEL = "vit_t"
FASTSAM_MODELS = ("fastsam-x", "fastsam-s")
MODEL_NAMES = (*SAM_MODELS, MOBILE_SAM_MODEL, *FASTSAM_MODELS)
# How people call them (the app's labels, figures); the checkpoint registry (mobile_sam.checkpoints) has the files.
LABELS = {
    "vit_t": "MobileSAM",
    "vit_b": "SAM ViT-B",
    "vit_l": "SAM ViT-L",
    "vit_h": "SAM ViT-H",
    "fastsam-s": "FastSAM-s",
    "fastsam-x": "FastSAM-x",
}
_ALIASES = {
    "default": "vit_h",
    "sam": "vit_h",
    "mobile_sam": "vit_t",
    "mobilesam": "vit_t",
    "fastsam": "fastsam-x",
    "fastsam_x": "fastsam-x",
    "fastsam_s": "fastsam-s",
}


def canonical_model_name(name: str) -> str:
    """The registry name of a model ("vit_h", "vit_l", "vit_b", "vit_t", "fastsam-x", "fastsam-s"); accepts
    aliases such as "mobile_sam" and "fastsam", case-insensitively."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in MODEL_NAMES:
        known = ", ".join(MODEL_NAMES + tuple(_ALIASES))
        raise ValueError(f"unknown model {name!r}; known models: {known}")
    return key


@dataclass(frozen=True)
class BuildOptions:
    """How to build backends.

    checkpoints: explicit checkpoint files by model name (these win over the cache); checkpoint_dir: the
    checkpoint cache folder (None: `mobile_sam`'s default); download: fetch missing official files;
    random_weights: build the architectures with random weights (no files needed, meaningless masks);
    num_threads: torch CPU threads that FastSAM must restore after ultralytics changes them.
    """

    device: str | torch.device = "auto"
    checkpoint_dir: str | Path | None = None
    checkpoints: Mapping[str, str | Path] = field(default_factory=dict)
    random_weights: bool = False
    download: bool = False
    num_threads: int | None = None


BackendFactory = Callable[[str, BuildOptions], Backend]


def build_backend(name: str, options: BuildOptions) -> Backend:
    """The backend for a model name (see `canonical_model_name`), built as `options` say."""
    key = canonical_model_name(name)
    common = {
        "checkpoint": options.checkpoints.get(key),
        "checkpoint_dir": options.checkpoint_dir,
        "download": options.download,
        "random_weights": options.random_weights,
        "device": options.device,
    }
    if key == MOBILE_SAM_MODEL:
        return MobileSamBackend(**common)
    if key in SAM_MODELS:
        return SamBackend(key, **common)
    return FastSamBackend(key.removeprefix("fastsam-"), num_threads=options.num_threads, **common)


def architecture_parameter_counts(name: str) -> ParameterCounts:
    """Parameter counts from the model definition alone: no checkpoint, and no weight memory for the ViTs
    (they are built on the `meta` device)."""
    key = canonical_model_name(name)
    if key in FASTSAM_MODELS:
        return fastsam_parameter_counts(fastsam_architecture(key.removeprefix("fastsam-")))
    return sam_parameter_counts(build_without_weights(lambda: sam_model_registry[key](None)))
