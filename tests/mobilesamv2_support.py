"""MobileSAMv2 conformance data (tests/conformance_data/mobilesamv2): its random weights, written into a folder in
the official file formats, and the official outputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np

DATA_DIR = Path(__file__).resolve().parent / "conformance_data" / "mobilesamv2"


def random_weights() -> ModuleType:
    """`random_weights.py` beside the data: the procedure that the script and the tests share."""
    spec = importlib.util.spec_from_file_location("mobilesamv2_random_weights", DATA_DIR / "random_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_official_files(folder: Path) -> tuple[Path, Path]:
    """The random l2.pt and Prompt_guided_Mask_Decoder.pt of the conformance data, written into `folder`."""
    weights = random_weights()
    seed = json.loads((DATA_DIR / "masks.json").read_text())["seed"]
    encoder, decoder = folder / "l2.pt", folder / "Prompt_guided_Mask_Decoder.pt"
    weights.write_l2_checkpoint(encoder, seed)
    weights.write_prompt_guided_decoder(decoder, seed)
    return encoder, decoder


def write_checkpoint_folder(folder: Path) -> Path:
    """`folder` holding MobileSAMv2's three files under their official names: the random l2.pt and
    Prompt_guided_Mask_Decoder.pt (`write_official_files`) and the random detector as ObjectAwareModel.pt."""
    import shutil

    write_official_files(folder)
    shutil.copy(DATA_DIR / "objectaware_seed0.pt", folder / "ObjectAwareModel.pt")
    return folder


def write_truck_piece(path: Path, images_dir: Path) -> Path:
    """A 120x80 PNG piece of truck.jpg in which the random detector finds a few boxes (6)."""
    from PIL import Image

    from samkit.images import load_image

    Image.fromarray(load_image(images_dir / "truck.jpg")[600:680, 1600:1720]).save(path)
    return path


def read_rgb(path: Path) -> np.ndarray:
    """An image as MobileSAMv2's Inference.py reads it (cv2.imread, then BGR -> RGB)."""
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def official_masks() -> tuple[dict, np.ndarray]:
    """The case (boxes, order, areas, image) and Inference.py's masks (N, H, W) bool, in its order."""
    case = json.loads((DATA_DIR / "masks.json").read_text())
    width = case["size"][1]
    masks = np.unpackbits(np.load(DATA_DIR / "masks.npz")["masks"], axis=-1)[..., :width].astype(bool)
    return case, masks


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
