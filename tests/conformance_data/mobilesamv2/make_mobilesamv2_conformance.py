r"""Make the MobileSAMv2 conformance data: official outputs for fixed random weights in the official formats.

Runs the official MobileSAMv2 code (ChaoningZhang/MobileSAM, folder `MobileSAMv2/`, extracted to a path given on
the command line) on the CPU and writes, beside this script:

- `weights_spec.json`: the keys, shapes and dtypes of the official L2 image encoder and of the prompt-guided
  decoder's two state dicts (`random_weights.py` draws the weights from it and a seed);
- `masks.json` and `masks.npz`: fixed boxes on `dogs.jpg`, and the masks that the official `Inference.py` makes
  for them with the random L2 encoder + prompt-guided decoder, in its order (largest area first); the boxes are
  those of 40 candidates whose masks' areas differ pairwise by 0.1% of the image at least (so that a mask a few
  pixels off cannot change the order);
- `objectaware_seed0.pt`: a small random YOLOv8-seg detector saved by the bundled old ultralytics (8.0.120) in the
  layout of a finished ultralytics training run, as `ObjectAwareModel.pt` is;
- `detector.json`: the boxes that the official `ObjectAwareModel` predictor finds with it on `truck.jpg`, called
  as `Inference.py` calls it.

Usage (from the repository root, with the official repository's `MobileSAMv2/` folder extracted to /tmp):
    FILES=$(git --git-dir=$MIRROR ls-tree -r --name-only HEAD MobileSAMv2 | grep -v '\.pt$')  # .pt blobs: absent
    git --git-dir=$MIRROR archive HEAD $FILES | tar -x -C /tmp
    python tests/conformance_data/mobilesamv2/make_mobilesamv2_conformance.py --official /tmp/MobileSAMv2

The official code is patched at run time only where it cannot run here:
- its imports of `timm` (TinyViT's DropPath, to_2tuple, trunc_normal_, register_model), `torchpack`, `onnxsim` and
  `pkg_resources` (none installed) are served by stubs: none of them is used on the inference path (DropPath is
  an identity at drop rate 0, the initialisers' values are overwritten by the loaded weights);
- `torch.load` defaults to `weights_only=False`, as it did when the code was written (the bundled ultralytics
  unpickles its checkpoints with it; only files made here are read);
- the bundled ultralytics keeps its settings in a temporary folder (`YOLO_CONFIG_DIR`), not the user's;
- `torch.Tensor.cuda` is the identity when no GPU is present (`Inference.py` calls `.cuda()` on the boxes);
- `Inference.py` is run with its detector replaced by one that returns the fixed boxes (float32, as the detector's
  are), and its plotting function replaced by one that records the masks it is given; `torch.argsort` records
  the order it returns. Its paths are relative: it runs in a temporary folder laid out as it expects.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.abc
import importlib.machinery
import json
import math
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import random_weights  # noqa: E402

SEED = 0
MASK_IMAGE = "dogs.jpg"  # 1072x603
MASK_COUNT = 24  # boxes kept of 40 candidates: those whose masks' areas differ pairwise by MIN_AREA_GAP at least
MIN_AREA_GAP = 0.001  # of the image's area
DETECTOR_IMAGE = "truck.jpg"  # 1800x1200: letterboxed to 1024x704, where the two pads differ by a pixel
# Inference.py's detector call (its argparse defaults).
DETECTOR_ARGS = dict(retina_masks=True, imgsz=1024, conf=0.4, iou=0.9)
DETECTOR_SCALE = [0.33, 0.0625, 1024]  # depth, width, max channels: a small YOLOv8-seg (the real one is larger)


# -- run-time patches ----------------------------------------------------------------------------------------------
class _Stub:
    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, *args, **kwargs) -> _Stub:
        return _Stub()


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Stub


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves every module under `ROOTS` as a stub whose attributes are dummy classes."""

    ROOTS = ("timm", "torchpack", "onnxsim", "pkg_resources")

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.ROOTS:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _StubModule(spec.name)

    def exec_module(self, module) -> None:
        module.__path__ = []


class _DropPath(torch.nn.Module):
    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def patch_imports(official: Path) -> None:
    """Make the official code importable here (see the module docstring)."""
    import packaging.version

    sys.meta_path.insert(0, _StubFinder())
    import pkg_resources
    import timm.models.layers
    import timm.models.registry

    pkg_resources.parse_version = packaging.version.parse
    timm.models.layers.DropPath = _DropPath
    timm.models.layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    timm.models.layers.trunc_normal_ = torch.nn.init.trunc_normal_
    timm.models.registry.register_model = lambda function: function
    if not torch.cuda.is_available():
        torch.Tensor.cuda = lambda self, *args, **kwargs: self
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # the torch.load default the official code was written for
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="yolo-config-")  # the old ultralytics' settings
    sys.path.insert(0, str(official))


def read_rgb(path: Path) -> np.ndarray:
    """The image as Inference.py reads it: cv2.imread, then BGR -> RGB."""
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def image_digest(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()


# -- weights --------------------------------------------------------------------------------------------------------
def official_spec() -> dict:
    """Keys, shapes and dtypes of the official modules' state dicts."""
    from mobilesamv2 import build_sam

    # The official L2 builder insists on reading a checkpoint: let it read an empty one and load nothing.
    load, load_state_dict = torch.load, torch.nn.Module.load_state_dict
    torch.load = lambda *args, **kwargs: {"state_dict": {}}
    torch.nn.Module.load_state_dict = lambda *args, **kwargs: None
    try:
        encoder = build_sam.build_efficientvit_l2_encoder("unused")
    finally:
        torch.load, torch.nn.Module.load_state_dict = load, load_state_dict
    decoder = build_sam.build_PromptGuidedDecoder()

    def entries(module: torch.nn.Module) -> list:
        return [
            [key, list(value.shape), str(value.dtype).removeprefix("torch.")]
            for key, value in module.state_dict().items()
        ]

    return {
        "efficientvit_l2": entries(encoder),
        "PromtEncoder": entries(decoder["PromtEncoder"]),
        "MaskDecoder": entries(decoder["MaskDecoder"]),
    }


# -- Inference.py on fixed boxes ----------------------------------------------------------------------------------
def candidate_boxes(width: int, height: int, count: int = 40) -> list[list[float]]:
    """Boxes XYXY in original pixels (multiples of 0.5, exact in float32) of several sizes, some touching the image
    border, the first one the whole image."""
    generator = np.random.default_rng(SEED)
    boxes = [[0.0, 0.0, float(width), float(height)]]
    for _ in range(count - 1):
        w, h = generator.uniform(0.08, 0.6) * width, generator.uniform(0.08, 0.6) * height
        x0, y0 = generator.uniform(-0.05 * width, width - 0.9 * w), generator.uniform(-0.05 * height, height - 0.9 * h)
        box = np.clip([x0, y0, x0 + w, y0 + h], 0, [width, height, width, height])
        boxes.append((np.round(box * 2) / 2).tolist())
    return boxes


def well_separated(areas: np.ndarray, gap: float, count: int) -> list[int]:
    """Indices (ascending) of at most `count` masks whose areas differ pairwise by at least `gap` pixels, so that
    a mask a few pixels off cannot change the order by area."""
    kept: list[int] = []
    for index in np.argsort(-areas, kind="stable"):
        if len(kept) < count and all(abs(areas[index] - areas[other]) >= gap for other in kept):
            kept.append(int(index))
    return sorted(kept)


def run_inference(official: Path, image_path: Path, boxes: list[list[float]]) -> tuple:
    """Inference.py's masks (N, H, W) bool in its order, and that order (indices into boxes)."""
    with tempfile.TemporaryDirectory() as folder:
        return _run_inference(official, image_path, boxes, Path(folder))


def _run_inference(official: Path, image_path: Path, boxes: list[list[float]], work: Path) -> tuple:
    (work / "weight").mkdir()
    (work / "PromptGuidedDecoder").mkdir()
    (work / "images").mkdir()
    random_weights.write_l2_checkpoint(work / "weight" / "l2.pt", SEED)
    random_weights.write_prompt_guided_decoder(work / "PromptGuidedDecoder" / "Prompt_guided_Mask_Decoder.pt", SEED)
    (work / "images" / image_path.name).write_bytes(image_path.read_bytes())

    import matplotlib

    matplotlib.use("Agg")
    import Inference

    class FixedBoxDetector:
        """Stands in for ObjectAwareModel: its results' first element has boxes.xyxy (N, 4) float32."""

        def __init__(self, path: str) -> None:
            self.calls = []

        def __call__(self, image, **kwargs):
            result = types.SimpleNamespace(boxes=types.SimpleNamespace(xyxy=torch.tensor(boxes, dtype=torch.float32)))
            return [result]

    shown, orders = [], []
    argsort = torch.argsort

    def recording_argsort(*args, **kwargs):
        orders.append(argsort(*args, **kwargs))
        return orders[-1]

    Inference.ObjectAwareModel = FixedBoxDetector
    Inference.show_anns = lambda anns: shown.append(anns.clone())
    Inference.plt.savefig = lambda *args, **kwargs: None
    Inference.plt.show = lambda *args, **kwargs: None
    argv = sys.argv
    sys.argv = ["Inference.py", "--img_path", "./images/", "--output_dir", "./", "--encoder_type", "efficientvit_l2"]
    try:
        args = Inference.parse_args()  # the official defaults
    finally:
        sys.argv = argv
    cwd = os.getcwd()
    os.chdir(work)
    torch.argsort = recording_argsort
    try:
        Inference.main(args)
    finally:
        torch.argsort = argsort
        os.chdir(cwd)
    (masks,) = shown
    (order,) = orders
    return masks.bool().numpy(), order.numpy()


# -- the detector ---------------------------------------------------------------------------------------------------
def make_detector(path: Path, image: np.ndarray) -> None:
    """A random YOLOv8-seg (one class) saved as ultralytics 8.0.120 saves a finished run (`strip_optimizer`): the
    EMA network in fp16 without gradients under "model", the training arguments under "train_args".

    Weights: convolutions N(0, 2 / fan_in), BatchNorm statistics of `image` (H, W, 3) uint8 resized to 1024x704
    (so every layer has unit scale there), the head's last convolutions scaled so that on it the class logits have
    mean -2 and std 1.2 and the box distributions' logits std 2: about a tenth of the anchors pass conf 0.4, none
    saturates, and the boxes have every size, many reaching the border.
    """
    import cv2
    from ultralytics.nn.modules import Detect
    from ultralytics.nn.tasks import SegmentationModel
    from ultralytics.yolo.cfg import get_cfg
    from ultralytics.yolo.utils import DEFAULT_CFG, DEFAULT_CFG_DICT, DEFAULT_CFG_KEYS, ROOT, yaml_load

    config = yaml_load(ROOT / "models" / "v8" / "yolov8-seg.yaml")
    config["scales"] = {"t": DETECTOR_SCALE}
    config["scale"] = "t"
    torch.manual_seed(SEED)
    model = SegmentationModel(config, nc=1, verbose=False)
    head = model.model[-1]
    assert isinstance(head, Detect)
    generator = torch.Generator().manual_seed(SEED)
    # The statistics below are measured on the image resized to 1024x704 (about the detector's input), its channels
    # in the order the network sees them when Inference.py calls it.
    batch = torch.from_numpy(cv2.resize(np.ascontiguousarray(image[..., ::-1]), (1024, 704)))
    batch = batch.permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d) and module is not head.dfl.conv:  # DFL's conv is fixed (0..15)
                fan_in = math.prod(module.weight.shape[1:])
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * math.sqrt(2.0 / fan_in))
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None  # the running statistics become those of the batch
        model.train()
        model(batch)
        model.eval()
        # The head's last convolutions, scaled so that their outputs on the batch have the wanted mean and std.
        for branch, mean, std in ((head.cv3, -2.0, 1.2), (head.cv2, 0.0, 2.0)):
            for level in branch:
                final, outputs = level[-1], []
                hook = final.register_forward_hook(lambda module, inputs, output, into=outputs: into.append(output))
                model(batch)
                hook.remove()
                (output,) = outputs
                scale = std / output.std()
                final.weight.mul_(scale)
                final.bias.copy_(mean - (output.mean((0, 2, 3)) - final.bias) * scale)
    model.names = {0: "object"}
    model.nc = 1
    model.args = get_cfg(DEFAULT_CFG, {"task": "segment", "mode": "train", "imgsz": 1024, "data": "sa1b.yaml"})
    model.half()
    for parameter in model.parameters():
        parameter.requires_grad = False
    train_args = {**DEFAULT_CFG_DICT, **vars(model.args)}
    checkpoint = {
        "epoch": -1,
        "best_fitness": None,
        "model": model,
        "ema": None,
        "updates": None,
        "optimizer": None,
        "train_args": {key: value for key, value in train_args.items() if key in DEFAULT_CFG_KEYS},
        "date": "2023-12-01T00:00:00",
        "version": "8.0.120",
    }
    torch.save(checkpoint, path)


def run_detector(checkpoint: Path, image: np.ndarray) -> dict:
    """The official ObjectAwareModel's boxes, called as Inference.py calls it (the RGB image, on the CPU)."""
    from mobilesamv2.promt_mobilesamv2 import ObjectAwareModel

    (result,) = ObjectAwareModel(str(checkpoint))(image, device="cpu", **DETECTOR_ARGS)
    boxes = result.boxes
    return {"xyxy": boxes.xyxy.tolist(), "conf": boxes.conf.tolist(), "cls": boxes.cls.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="the official MobileSAMv2/ folder")
    parser.add_argument("--images", type=Path, default=HERE.parents[2].parent / "shared", help="the shared folder")
    args = parser.parse_args()
    patch_imports(args.official.resolve())
    out = HERE

    spec = official_spec()
    (out / "weights_spec.json").write_text(json.dumps(spec, indent=0) + "\n")

    mask_image = args.images / "conformance" / MASK_IMAGE
    rgb = read_rgb(mask_image)
    height, width = rgb.shape[:2]
    candidates = candidate_boxes(width, height)
    masks, order = run_inference(args.official.resolve(), mask_image, candidates)
    areas = np.empty(len(candidates))
    areas[order] = masks.reshape(len(masks), -1).sum(1)
    boxes = [candidates[i] for i in well_separated(areas, MIN_AREA_GAP * width * height, MASK_COUNT)]
    masks, order = run_inference(args.official.resolve(), mask_image, boxes)
    np.savez_compressed(out / "masks.npz", masks=np.packbits(masks, axis=-1), order=order)
    cases = {
        "image": MASK_IMAGE,
        "image_rgb_sha256": image_digest(rgb),
        "size": [height, width],
        "seed": SEED,
        "encoder_type": "efficientvit_l2",
        "boxes": boxes,
        "order": order.tolist(),
        "areas": masks.reshape(len(masks), -1).sum(1).tolist(),
    }
    (out / "masks.json").write_text(json.dumps(cases, indent=1) + "\n")

    detector = out / "objectaware_seed0.pt"
    truck = read_rgb(args.images / "images" / DETECTOR_IMAGE)
    make_detector(detector, truck)
    found = run_detector(detector, truck)
    record = {
        "checkpoint": detector.name,
        "image": DETECTOR_IMAGE,
        "image_rgb_sha256": image_digest(truck),
        "call": DETECTOR_ARGS,
        "detections": found,
    }
    (out / "detector.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{len(masks)} masks, {len(found['xyxy'])} detector boxes written to {out}")


if __name__ == "__main__":
    main()
