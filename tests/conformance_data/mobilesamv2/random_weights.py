"""Deterministic random weights for MobileSAMv2's files, in the official formats.

One procedure, used by `make_mobilesamv2_conformance.py` (to run the official code) and by the tests (to run
ours), so that no weight file is committed: every tensor is drawn from `weights_spec.json` (each file's keys,
shapes and dtypes, as the official modules' `state_dict()` lists them) and a seed.

Each tensor has its own generator, seeded by the seed and the key's CRC-32, so a tensor does not depend on the
others. Values are scaled so that activations stay of order one through the networks: convolution and linear
weights N(0, 1 / fan_in), norm weights 1 + N(0, 0.1^2), biases N(0, 0.05^2), BatchNorm running variances in
[0.5, 1.5], embeddings and SAM's positional-encoding matrix N(0, 1). The mask decoder's hypernetwork outputs are
multiplied by `HYPER_SCALE`, and its upscaled features' last bias shifted by `UPSCALING_BIAS_SHIFT` (which
centres them), so that the masks cover between a third and two thirds of the image and differ from box to box.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import torch

SPEC_FILE = Path(__file__).with_name("weights_spec.json")
HYPER_SCALE = 20.0
UPSCALING_BIAS_SHIFT = -0.25
_DTYPES = {"float32": torch.float32, "int64": torch.int64}


def random_tensor(key: str, shape: list[int], dtype: str, seed: int) -> torch.Tensor:
    """The tensor for `key` (a state-dict key, prefixes included) of `shape` and `dtype`."""
    if dtype == "int64":  # BatchNorm's num_batches_tracked
        return torch.zeros(shape, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(key.encode()))
    normal = torch.randn(shape, generator=generator, dtype=_DTYPES[dtype])
    name = key.rsplit(".", 1)[-1]
    if name == "running_var":
        return 0.5 + torch.rand(shape, generator=generator)
    if name == "running_mean":
        return 0.1 * normal
    if name == "positional_encoding_gaussian_matrix" or "embed" in key or "token" in key:
        return normal
    if key == "output_upscaling.3.bias":
        return 0.05 * normal + UPSCALING_BIAS_SHIFT
    if name == "bias":
        return 0.05 * normal
    if len(shape) <= 1:  # norm weights
        return 1.0 + 0.1 * normal
    fan_in = math.prod(shape[1:])
    tensor = normal / math.sqrt(fan_in)
    if key.startswith("output_hypernetworks_mlps.") and key.endswith("layers.2.weight"):
        tensor = HYPER_SCALE * tensor
    return tensor


def random_state_dict(entries: list[list], seed: int) -> dict[str, torch.Tensor]:
    """A state dict of [key, shape, dtype] entries."""
    return {key: random_tensor(key, shape, dtype, seed) for key, shape, dtype in entries}


def load_spec() -> dict:
    """`weights_spec.json`: {"efficientvit_l2": entries, "PromtEncoder": entries, "MaskDecoder": entries}."""
    return json.loads(SPEC_FILE.read_text())


def write_l2_checkpoint(path: Path, seed: int) -> None:
    """An `l2.pt` as MobileSAMv2 reads it: {"state_dict": {"image_encoder." + key: tensor}}."""
    state = random_state_dict(load_spec()["efficientvit_l2"], seed)
    torch.save({"state_dict": {f"image_encoder.{key}": value for key, value in state.items()}}, path)


def write_prompt_guided_decoder(path: Path, seed: int) -> None:
    """A `Prompt_guided_Mask_Decoder.pt`: {"PromtEncoder": state dict, "MaskDecoder": state dict}."""
    spec = load_spec()
    torch.save({part: random_state_dict(spec[part], seed) for part in ("PromtEncoder", "MaskDecoder")}, path)
