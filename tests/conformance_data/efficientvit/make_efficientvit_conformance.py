"""Write the EfficientViT-SAM conformance data in this folder by running the OFFICIAL code (see README.md).

    python tests/conformance_data/efficientvit/make_efficientvit_conformance.py \\
        --efficientvit /tmp/efficientvit --segment-anything /tmp/segment-anything \\
        --mobilesamv2 /tmp/MobileSAM/MobileSAMv2

Each path is an extracted snapshot: mit-han-lab/efficientvit's root (holding efficientvit/), facebookresearch/
segment-anything's root (holding segment_anything/, which efficientvit imports), ChaoningZhang/MobileSAM's
MobileSAMv2 folder (holding efficientvit/ and mobilesamv2/). Only the modules the models need are imported
(tests/support/efficientvit_peer.py bypasses the package __init__ files that pull in training code, timm or triton);
nothing else of ours is used except tests/efficientvit_support.py (the random weights and the summaries).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/, for efficientvit_support
sys.path.insert(0, str(HERE.parents[2]))  # the repository, for tests.support.efficientvit_peer

import efficientvit_support as support  # noqa: E402

from tests.support.efficientvit_peer import official_efficientvit, official_mobilesamv2  # noqa: E402

IMAGE = HERE.parents[2].parent / "shared" / "conformance" / "dogs.jpg"

# Predictor cases: arguments of the official `predict` (original image pixels, XY / XYXY).
CASES = [
    {"name": "one_point_multi", "args": {"point_coords": [[480, 300]], "point_labels": [1], "multimask_output": True}},
    {
        "name": "points_single",
        "args": {"point_coords": [[480, 300], [700, 350]], "point_labels": [1, 0], "multimask_output": False},
    },
    {"name": "box_single", "args": {"box": [300, 150, 800, 500], "multimask_output": False}},
    {
        "name": "box_point_multi",
        "args": {
            "box": [300, 150, 800, 500],
            "point_coords": [[550, 320]],
            "point_labels": [1],
            "multimask_output": True,
        },
    },
    {"name": "refine_with_mask_input", "args": {"point_coords": [[480, 300]], "point_labels": [1]}},
]
# `predict_torch` with these boxes after the predictor's `apply_boxes_torch`, one mask each.
BATCHED_BOXES = [[100, 100, 400, 400], [500, 50, 1000, 580], [20, 300, 600, 600]]
# Variants run through every case; the others through `one_point_multi` only.
FULL_CASE_VARIANTS = ("l0", "xl0")
# The official automatic mask generator on the L0 model. Random weights predict IoUs below 0 and give large masks
# with near-identical boxes: no filter and no NMS keep every candidate.
AMG_CONFIG = {"points_per_side": 3, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
# Every AMG_MASK_STRIDE-th row and column of each automatic mask is stored.
AMG_MASK_STRIDE = 4


def write_shapes(zoo) -> None:
    shapes = {}
    for variant in support.VARIANTS:
        model = zoo.create_efficientvit_sam_model(f"efficientvit-sam-{variant}", pretrained=False)
        shapes[variant] = [
            [key, list(value.shape), str(value.dtype).removeprefix("torch.")]
            for key, value in model.state_dict().items()
        ]
    support.SHAPES_FILE.write_text(json.dumps(shapes, separators=(",", ":")) + "\n")
    support.official_shapes.cache_clear()


def run_predictor(sam_module, zoo, variant: str, image: np.ndarray, folder: Path) -> tuple[dict, dict]:
    """The official predictor on `image`: (arrays for the npz, the cases' record)."""
    path = folder / f"efficientvit_sam_{variant}.pt"
    torch.save({"state_dict": support.random_state_dict(variant)}, path)
    model = zoo.create_efficientvit_sam_model(f"efficientvit-sam-{variant}", pretrained=True, weight_url=str(path))
    predictor = sam_module.EfficientViTSamPredictor(model.eval())
    predictor.set_image(image)
    arrays = {"input_size": np.asarray(predictor.input_size)}
    arrays.update({f"embedding/{k}": v for k, v in support.embedding_summary(predictor.features).items()})
    cases = CASES if variant in FULL_CASE_VARIANTS else CASES[:1]
    for case in cases:
        kwargs = {k: np.asarray(v) for k, v in case["args"].items() if k != "multimask_output"}
        if case["name"] == "refine_with_mask_input":
            _, scores, low_res = predictor.predict(**kwargs, multimask_output=True)
            kwargs["mask_input"] = low_res[int(np.argmax(scores))][None]
            arrays[f"{case['name']}/in/mask_input"] = kwargs["mask_input"]
            masks, scores, low_res = predictor.predict(**kwargs, multimask_output=False)
        else:
            masks, scores, low_res = predictor.predict(**kwargs, multimask_output=case["args"]["multimask_output"])
        _store_outputs(arrays, case["name"], masks, scores, low_res)
    if variant in FULL_CASE_VARIANTS:
        boxes = predictor.apply_boxes_torch(torch.tensor(BATCHED_BOXES, dtype=torch.float))
        masks, scores, low_res = predictor.predict_torch(None, None, boxes=boxes, multimask_output=False)
        _store_outputs(arrays, "batched_boxes", masks.numpy(), scores.numpy(), low_res.numpy())
    return arrays, {"cases": [c["name"] for c in cases] + (["batched_boxes"] if variant in FULL_CASE_VARIANTS else [])}


def _store_outputs(arrays: dict, name: str, masks: np.ndarray, scores: np.ndarray, low_res: np.ndarray) -> None:
    arrays[f"{name}/masks"] = support.pack_masks(masks)
    arrays[f"{name}/scores"] = np.asarray(scores, dtype=np.float32)
    arrays.update({f"{name}/low_res_logits/{k}": v for k, v in support.logits_summary(low_res).items()})


def run_amg(sam_module, zoo, image: np.ndarray, folder: Path) -> dict[str, np.ndarray]:
    """The official generator's records, in its order, as arrays; masks subsampled and packed."""
    path = folder / "efficientvit_sam_l0.pt"
    model = zoo.create_efficientvit_sam_model("efficientvit-sam-l0", pretrained=True, weight_url=str(path)).eval()
    records = sam_module.EfficientViTSamAutomaticMaskGenerator(model, **AMG_CONFIG).generate(image)
    fields = ("area", "bbox", "predicted_iou", "stability_score", "point_coords", "crop_box")
    arrays = {field: np.asarray([record[field] for record in records]) for field in fields}
    masks = np.stack([record["segmentation"][::AMG_MASK_STRIDE, ::AMG_MASK_STRIDE] for record in records])
    return {**arrays, "masks_subset": support.pack_masks(masks)}


def run_mobilesamv2_l2(mobilesamv2_root: Path, image: np.ndarray, folder: Path) -> dict:
    """MobileSAMv2's L2 encoder on its predictor's input (ResizeLongestSide(1024), Sam.preprocess)."""
    build_sam, modeling, transforms = official_mobilesamv2(mobilesamv2_root)
    path = folder / "l2.pt"
    torch.save({"state_dict": support.image_encoder_state_dict(support.random_state_dict("l2"))}, path)
    encoder = build_sam.build_efficientvit_l2_encoder(str(path)).eval()
    sam = modeling.Sam(
        image_encoder=encoder,
        prompt_encoder=modeling.PromptEncoder(256, (64, 64), (1024, 1024), 16),
        mask_decoder=modeling.MaskDecoder(transformer_dim=256, transformer=modeling.TwoWayTransformer(2, 256, 8, 2048)),
    )
    resized = transforms.ResizeLongestSide(encoder.img_size).apply_image(image)
    x = sam.preprocess(torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None].float())
    with torch.no_grad():
        embedding = encoder(x)
    summary = {f"embedding/{k}": v for k, v in support.embedding_summary(embedding).items()}
    return {"input_size": np.asarray(resized.shape[:2]), **summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--efficientvit", type=Path, required=True, help="extracted mit-han-lab/efficientvit")
    parser.add_argument("--segment-anything", type=Path, required=True, help="extracted segment-anything")
    parser.add_argument("--mobilesamv2", type=Path, required=True, help="MobileSAM's MobileSAMv2 folder")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = np.array(Image.open(IMAGE).convert("RGB"))
    sam_module, zoo = official_efficientvit(args.efficientvit, args.segment_anything)
    write_shapes(zoo)
    record = {
        "image": IMAGE.name,
        "seed": support.SEED,
        "cases": CASES,
        "batched_boxes": BATCHED_BOXES,
        "amg_config": AMG_CONFIG,
        "amg_mask_stride": AMG_MASK_STRIDE,
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for variant in support.VARIANTS:
            arrays, cases = run_predictor(sam_module, zoo, variant, image, folder)
            np.savez_compressed(HERE / f"efficientvit_sam_{variant}.npz", **arrays)
            record["variants"][variant] = cases
            print(f"{variant}: {', '.join(cases['cases'])}", flush=True)
        amg = run_amg(sam_module, zoo, image, folder)
        np.savez_compressed(HERE / "amg_l0.npz", **amg)
        print(f"amg l0: {len(amg['area'])} records", flush=True)
        np.savez_compressed(HERE / "mobilesamv2_l2_encoder.npz", **run_mobilesamv2_l2(args.mobilesamv2, image, folder))
    (HERE / "cases.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
