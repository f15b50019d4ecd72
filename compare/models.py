"""The models the comparison runs, by catalog name (`samkit.models`), and how to build their backends."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mobile_sam import sam_model_registry
from samkit.loading import ultralytics_architecture
from samkit.models import FASTSAM_MODELS, MOBILE_SAM, MODELS, SAM_MODELS, canonical_name, names

from .backends import Backend, FastSamBackend, MobileSamBackend, SamBackend
from .fastsam_rules import DEFAULT_FASTSAM_RULES
from .params import ParameterCounts, build_without_weights, fastsam_parameter_counts, sam_parameter_counts

# What the comparison runs: original SAM largest first (the paper's reference leads), MobileSAM, EfficientViT-SAM
# and FastSAM.
MODEL_NAMES = (*reversed(names("sam")), MOBILE_SAM, *names("efficientvit_sam"), *reversed(FASTSAM_MODELS))


def canonical_model_name(name: str) -> str:
    """The catalog name of a model the comparison runs; accepts aliases such as "mobile_sam" and "fastsam",
    case-insensitively."""
    try:
        key = canonical_name(name)
    except ValueError:
        key = None
    if key not in MODEL_NAMES:
        aliases = [alias for key in MODEL_NAMES for alias in MODELS[key].aliases]
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES + tuple(aliases))}")
    return key


@dataclass(frozen=True)
class BuildOptions:
    """How to build backends.

    checkpoints: explicit checkpoint files by model name (these win over the cache); checkpoint_dir: the
    checkpoint cache folder (None: the default); download: fetch missing official files;
    random_weights: build the architectures with random weights (no files needed, meaningless masks);
    num_threads: torch CPU threads that FastSAM must restore after ultralytics changes them;
    fastsam_rules: how FastSAM's prompts select its instances (`compare.fastsam_rules.FASTSAM_RULES`).
    """

    device: str | torch.device = "auto"
    checkpoint_dir: str | Path | None = None
    checkpoints: Mapping[str, str | Path] = field(default_factory=dict)
    random_weights: bool = False
    download: bool = False
    num_threads: int | None = None
    fastsam_rules: str = DEFAULT_FASTSAM_RULES


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
    if key == MOBILE_SAM:
        return MobileSamBackend(**common)
    if key in SAM_MODELS:
        return SamBackend(key, **common)
    return FastSamBackend(
        key.removeprefix("fastsam-"), num_threads=options.num_threads, rules=options.fastsam_rules, **common
    )


def architecture_parameter_counts(name: str) -> ParameterCounts:
    """Parameter counts from the model definition alone: no checkpoint, and no weight memory for the ViTs
    (they are built on the `meta` device)."""
    key = canonical_model_name(name)
    if key in FASTSAM_MODELS:
        return fastsam_parameter_counts(ultralytics_architecture(key))
    return sam_parameter_counts(build_without_weights(lambda: sam_model_registry[key](None)))
