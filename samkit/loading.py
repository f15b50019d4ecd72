"""
One loader by name for every model of the catalog (`samkit.models`).

`load_model(name, ...)` returns the network in eval mode on the CPU:
  - SAM-family names ("vit_t", "vit_b", "vit_l", "vit_h"): a `mobile_sam.modeling.Sam` built by
    `mobile_sam.sam_model_registry` from the official state dict (strict);
  - "mobilesamv2": MobileSAMv2 (`mobile_sam.build_mobilesamv2("efficientvit_l2", ...)`, a `Sam`): its image
    encoder's file (l2.pt; `checkpoint` replaces it) and the prompt-guided decoder's (always from the cache);
  - "fastsam-s", "fastsam-x", "objectaware": the ultralytics network inside the official pickle, read with
    ultralytics' restricted loader (`samkit.checkpoints.load_ultralytics_checkpoint`) from the verified cache or
    an explicit path only.
Weights come from `checkpoint` (an explicit file), else the checkpoint cache (`checkpoint_dir`, downloading only
when `download`), unless `random_weights` asks for the architecture with random weights (no file needed; masks
are meaningless), seeded by `seed` when given.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mobile_sam import build_mobilesamv2, sam_model_registry

from .checkpoints import (
    CheckpointDownloadError,
    CheckpointNotFoundError,
    ProgressCallback,
    load_ultralytics_checkpoint,
    resolve_checkpoint,
)
from .extras import ULTRALYTICS_USE, require
from .models import MOBILESAMV2_FAMILY, ModelInfo, model_info

# The encoder_type of `build_mobilesamv2` whose file the catalog's "mobilesamv2" is (MobileSAMv2's default).
MOBILESAMV2_ENCODER = "efficientvit_l2"

# The ultralytics architecture of each random-weight network: YOLOv8 segmentation at FastSAM's scales with one
# class (FastSAM segments class-agnostic "objects"); ObjectAwareModel is a YOLOv8-x segmentation network too.
_ULTRALYTICS_CONFIGS = {
    "fastsam-s": "yolov8s-seg.yaml",
    "fastsam-x": "yolov8x-seg.yaml",
    "objectaware": "yolov8x-seg.yaml",
}


def load_model(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    download: bool = False,
    random_weights: bool = False,
    seed: int | None = None,
    progress: ProgressCallback | bool | None = None,
) -> nn.Module:
    """The model called `name` (a catalog name, alias or file name) in eval mode on the CPU (see the module doc).

    Raises:
      ValueError: an unknown name, a file that is only part of a model ("mobilesamv2_decoder"), or both a checkpoint
        and random_weights.
      mobile_sam.build_sam.CheckpointError: a checkpoint is missing (the message says which file to put where),
        unreadable or of the wrong format.
    """
    info = model_info(name)
    if random_weights and checkpoint is not None:
        raise ValueError("give a checkpoint or random_weights=True, not both")
    owner = _owner(info)
    if owner is not None:
        raise ValueError(f"{info.filename} ({info.name}) is a part of {owner}: load {owner!r}, which reads it too")
    if random_weights:
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            return _architecture(info.name).eval()
    if info.needs:
        path, *parts = model_files(
            info.name, checkpoint, cache_dir=checkpoint_dir, download=download, progress=progress
        )
        return build_mobilesamv2(MOBILESAMV2_ENCODER, path, *parts).eval()
    path = resolve_checkpoint(info, path=checkpoint, cache_dir=checkpoint_dir, download=download, progress=progress)
    if info.is_state_dict:
        return sam_model_registry[info.name](path).eval()
    return load_ultralytics_checkpoint(path)


def ultralytics_architecture(name: str) -> nn.Module:
    """A randomly initialised ultralytics network of the catalog model `name` ("fastsam-s", "fastsam-x",
    "objectaware"), built from the YAML shipped inside ultralytics; nothing is downloaded."""
    require("ultralytics", ULTRALYTICS_USE)
    from ultralytics.nn.tasks import SegmentationModel, yaml_model_load

    key = model_info(name).name
    if key not in _ULTRALYTICS_CONFIGS:
        raise ValueError(f"{name!r} is not an ultralytics model; expected one of {', '.join(_ULTRALYTICS_CONFIGS)}")
    config = yaml_model_load(_ULTRALYTICS_CONFIGS[key])
    config["nc"] = 1
    with torch.no_grad():  # its constructor runs the network once (for the strides): keep no activations for autograd
        return SegmentationModel(config, verbose=False)


def _architecture(name: str) -> nn.Module:
    if name in sam_model_registry:
        return sam_model_registry[name](None)
    if model_info(name).family == MOBILESAMV2_FAMILY:
        return build_mobilesamv2(MOBILESAMV2_ENCODER)
    return ultralytics_architecture(name)


def model_files(
    name: str,
    checkpoint: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = True,
    progress: ProgressCallback | bool | None = None,
) -> list[Path]:
    """The files of model `name` that `load_model` reads: its own (`checkpoint`, else from the cache) and those of
    the entries it `needs` (from the cache), in that order, downloaded where allowed.

    Raises:
      CheckpointNotFoundError: a file is missing (or, for a model of several files, could not be downloaded); the
        message names every missing one.
      samkit.checkpoints.CheckpointError: a file does not match its recorded or published hash.
    """
    info = model_info(name)
    if not info.needs:
        return [resolve_checkpoint(info, path=checkpoint, cache_dir=cache_dir, download=download, progress=progress)]
    paths, missing = [], []
    for entry, explicit in ((info.name, checkpoint), *((part, None) for part in info.needs)):
        try:
            paths.append(
                resolve_checkpoint(entry, path=explicit, cache_dir=cache_dir, download=download, progress=progress)
            )
        except (CheckpointNotFoundError, CheckpointDownloadError) as error:
            missing.append(str(error))
    if missing:
        raise CheckpointNotFoundError(
            f"{info.label} is built from {len(info.needs) + 1} files; {len(missing)} missing:\n" + "\n\n".join(missing)
        )
    return paths


def _owner(info: ModelInfo) -> str | None:
    """The catalog model that `needs` this entry's file, if any (it is loaded through that model)."""
    from .models import MODELS

    return next((other.name for other in MODELS.values() if info.name in other.needs), None)
