"""EfficientViT-SAM conformance data (tests/conformance_data/efficientvit): where it is, how its random weights are
made, and how its stored outputs are summarised.

The weights are not stored: `random_state_dict` makes them from the official key/shape list
(`state_dict_shapes.json`, written by the script from the official model) and a seed, the same way for the script
that runs the official code and for the tests. Embeddings and low-res logits are stored as a subset plus exact
statistics of the whole (`tensor_summary`), so that the data stays small.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path

import numpy as np
import torch

DATA_DIR = Path(__file__).resolve().parent / "conformance_data" / "efficientvit"
SHAPES_FILE = DATA_DIR / "state_dict_shapes.json"
VARIANTS = ("l0", "l1", "l2", "xl0", "xl1")
SEED = 0
# Random decoders give masks that are all or nothing; scaling the hypernetworks' last layers spreads the logits.
HYPERNETWORK_SCALE = 20.0
# Every EMBEDDING_CHANNEL_STRIDE-th channel of an embedding, and every LOGITS_STRIDE-th low-res row and column,
# are stored in full.
EMBEDDING_CHANNEL_STRIDE = 32
LOGITS_STRIDE = 4

# Agreement required with the official outputs (see the README beside the data).
EMBEDDING_RTOL = 1e-4  # relative to the embedding's scale (its largest magnitude)
LOGITS_ATOL = 1e-3
SCORES_ATOL = 1e-4
MIN_MASK_IOU = 0.999
WIDTH = 1072  # dogs.jpg

_TOKEN = re.compile(r"(embed|embeddings\.\d+|tokens?)\.weight$")
_HYPERNETWORK_OUT = re.compile(r"^mask_decoder\.output_hypernetworks_mlps\.\d+\.layers\.2\.weight$")


@cache
def official_shapes() -> dict[str, list[tuple[str, tuple[int, ...], str]]]:
    """Per variant: (key, shape, dtype) of every entry of the official model's state dict, in its order."""
    raw = json.loads(SHAPES_FILE.read_text())
    return {variant: [(k, tuple(shape), dtype) for k, shape, dtype in entries] for variant, entries in raw.items()}


def random_state_dict(variant: str, seed: int = SEED) -> dict[str, torch.Tensor]:
    """Deterministic random weights in the official key layout of EfficientViT-SAM `variant`.

    Drawn in key order from one generator: convolution / linear weights N(0, 1 / fan_in); embeddings and tokens
    and the prompt encoder's Gaussian frequencies N(0, 1); norm weights 1 + N(0, 0.01); biases and running means
    N(0, 0.01); running variances U(0.5, 1.5); batch counters 0. The hypernetworks' last layers are scaled by
    HYPERNETWORK_SCALE.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape, dtype in official_shapes()[variant]:
        if dtype != "float32":
            state[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
            continue
        if key.endswith("running_var"):
            value = torch.rand(shape, generator=generator) + 0.5
        elif _TOKEN.search(key) or key.endswith("positional_encoding_gaussian_matrix"):
            value = torch.randn(shape, generator=generator)
        elif len(shape) >= 2:
            value = torch.randn(shape, generator=generator) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith("weight"):
            value = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            value = 0.1 * torch.randn(shape, generator=generator)
        if _HYPERNETWORK_OUT.match(key):
            value *= HYPERNETWORK_SCALE
        state[key] = value
    return state


def image_encoder_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `image_encoder.*` entries of a full state dict (keys kept), as in MobileSAMv2's l2.pt."""
    return {k: v for k, v in state.items() if k.startswith("image_encoder.")}


def embedding_summary(embedding: torch.Tensor) -> dict[str, np.ndarray]:
    """(1, C, H, W) -> "subset": every EMBEDDING_CHANNEL_STRIDE-th channel in full (float32); "mean", "std",
    "min", "max": each channel's statistics over all pixels (float64)."""
    a = embedding.detach().cpu().double().numpy()[0]
    return {"subset": a[::EMBEDDING_CHANNEL_STRIDE].astype(np.float32), **_statistics(a.reshape(a.shape[0], -1))}


def logits_summary(low_res: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """(..., 256, 256) low-res logits -> "subset": every LOGITS_STRIDE-th row and column (float32); "mean",
    "std", "min", "max": each mask's statistics over all pixels (float64)."""
    a = np.asarray(low_res.detach().cpu() if isinstance(low_res, torch.Tensor) else low_res, dtype=np.float64)
    subset = a[..., ::LOGITS_STRIDE, ::LOGITS_STRIDE].astype(np.float32)
    return {"subset": subset, **_statistics(a.reshape(*a.shape[:-2], -1))}


def _statistics(rows: np.ndarray) -> dict[str, np.ndarray]:
    return {"mean": rows.mean(-1), "std": rows.std(-1), "min": rows.min(-1), "max": rows.max(-1)}


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Boolean masks (..., H, W) packed along W (`unpack_masks` restores them)."""
    return np.packbits(np.asarray(masks, dtype=bool), axis=-1)


def unpack_masks(packed: np.ndarray, width: int) -> np.ndarray:
    return np.unpackbits(packed, axis=-1)[..., :width].astype(bool)


# -- reading the data back (tests) ---------------------------------------------------------------------------------
@cache
def official_cases() -> dict:
    """cases.json: the inputs the official code was run on."""
    return json.loads((DATA_DIR / "cases.json").read_text())


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def official_outputs(name: str) -> dict[str, np.ndarray]:
    """The arrays of DATA_DIR/name.npz."""
    with np.load(DATA_DIR / f"{name}.npz") as arrays:
        return {k: arrays[k] for k in arrays.files}


def assert_embedding_matches(embedding: torch.Tensor, official: dict[str, np.ndarray]) -> None:
    """The stored channels in full and every channel's statistics, within EMBEDDING_RTOL of the scale."""
    ours = embedding.detach().double().numpy()[0]
    tol = EMBEDDING_RTOL * np.abs(official["embedding/subset"]).max()
    assert ours.shape == (256, 64, 64)
    np.testing.assert_allclose(ours[::EMBEDDING_CHANNEL_STRIDE], official["embedding/subset"], rtol=0, atol=tol)
    flat = ours.reshape(256, -1)
    for stat, value in (("mean", flat.mean(1)), ("std", flat.std(1)), ("min", flat.min(1)), ("max", flat.max(1))):
        np.testing.assert_allclose(value, official[f"embedding/{stat}"], rtol=0, atol=tol)


def assert_outputs_match(
    name: str, masks: np.ndarray, scores: np.ndarray, low_res: np.ndarray, official: dict[str, np.ndarray]
) -> None:
    """Predictor outputs of case `name` against the official ones: scores, the stored low-res logits and each
    mask's logit statistics, and every full-size mask (IoU)."""
    expected = unpack_masks(official[f"{name}/masks"], WIDTH)
    assert masks.shape == expected.shape and masks.dtype == bool
    np.testing.assert_allclose(scores, official[f"{name}/scores"], rtol=0, atol=SCORES_ATOL)
    low_res = np.asarray(low_res, dtype=np.float64)
    subset = low_res[..., ::LOGITS_STRIDE, ::LOGITS_STRIDE]
    np.testing.assert_allclose(subset, official[f"{name}/low_res_logits/subset"], rtol=0, atol=LOGITS_ATOL)
    flat = low_res.reshape(*low_res.shape[:-2], -1)
    np.testing.assert_allclose(flat.mean(-1), official[f"{name}/low_res_logits/mean"], rtol=0, atol=LOGITS_ATOL)
    np.testing.assert_allclose(flat.std(-1), official[f"{name}/low_res_logits/std"], rtol=0, atol=LOGITS_ATOL)
    for ours, theirs in zip(masks.reshape(-1, *masks.shape[-2:]), expected.reshape(-1, *masks.shape[-2:])):
        assert mask_iou(ours, theirs) >= MIN_MASK_IOU


def case_kwargs(name: str, official: dict[str, np.ndarray]) -> dict:
    """`predict` arguments of case `name`, as the official predictor got them."""
    case = next(c for c in official_cases()["cases"] if c["name"] == name)
    kwargs = {k: np.asarray(v) for k, v in case["args"].items()}
    if name == "refine_with_mask_input":
        kwargs.update(mask_input=official[f"{name}/in/mask_input"], multimask_output=False)
    kwargs["multimask_output"] = bool(kwargs["multimask_output"])
    return kwargs
