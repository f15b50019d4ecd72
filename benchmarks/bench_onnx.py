"""ONNX Runtime against our torch path: same weights, same process, alternating runs.

Rows: the image encoder on one preprocessed 1024x1024 image, and decoding one point (multimask, through
the full predictor path: prompt transform, decoder, upscaling to the original size, threshold). Sides:
our torch `SamPredictor`, `OnnxPredictor` on the fp32 export, and on its dynamic-int8 quantization
(onnxruntime's `quantize_dynamic`, uint8 weights, as the official export script's --quantize-out). ONNX Runtime's
threads do not spin between runs (they would take the cores from the torch runs in between). Prints
medians, the ratio torch / side (> 1 means the side is faster than torch) and the agreement
of each side with torch (embedding max |diff|, mask IoU on the conformance prompts when
../shared/conformance is present, else on the benchmark point).

    python -m benchmarks.bench_onnx [--weights FILE] [--image PATH] [--runs 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = REPO.parent / "shared" / "conformance"
DEFAULT_WEIGHTS = CONFORMANCE / "mobile_sam_vit_t_seed0.pt"
DEFAULT_IMAGES = [CONFORMANCE / "dogs.jpg", REPO / "assets" / "coffee.jpg"]
TARGET_TORCH_OVER_ORT = 1.0  # issue 24: torch's one-point decode no slower than ONNX Runtime's


def _sides(weights: Path | None, out: Path, threads: int):
    from mobile_sam import SamPredictor, sam_model_registry
    from mobile_sam.onnx import OnnxPredictor
    from mobile_sam.onnx.export import export_sam

    torch.manual_seed(0)
    sam = sam_model_registry["vit_t"](weights).eval()
    if weights is None:
        with torch.no_grad():  # non-empty masks, as in the conformance weights
            for mlp in sam.mask_decoder.output_hypernetworks_mlps:
                mlp.layers[-1].weight.mul_(20)
    exported = export_sam(sam, out, model_type="vit_t", weights=str(weights or "random (seed 0)"))
    int8 = [_quantize(path) for path in (exported.encoder, exported.decoder)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # ONNX Runtime's pool threads spin after each run by default; with runs alternating in one process they would
    # hold the cores through the next torch run and double its time (README, Performance).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return {
        "torch": SamPredictor(sam),
        "onnx fp32": OnnxPredictor(exported.encoder, exported.decoder, session_options=options),
        "onnx int8": OnnxPredictor(*int8, session_options=options),
    }


def _quantize(path: Path) -> Path:
    """encoder.onnx -> encoder_int8.onnx with dynamic int8 (uint8) weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    destination = path.with_name(f"{path.stem}_int8{path.suffix}")
    quantize_dynamic(path, destination, weight_type=QuantType.QUInt8)
    return destination


def _encoder_call(name: str, predictor, preprocessed: np.ndarray) -> Callable[[], np.ndarray]:
    if name == "torch":
        tensor = torch.from_numpy(preprocessed)
        return lambda: torch.no_grad()(predictor.model.image_encoder)(tensor).numpy()
    return lambda: predictor.encoder.run(None, {"image": preprocessed})[0]


def _time(fn: Callable) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _prompts(point: np.ndarray) -> list[dict]:
    """The conformance predictor cases' arguments where available, else the benchmark point."""
    cases_file = CONFORMANCE / "vit_t_seed0.json"
    if not cases_file.is_file():
        return [{"point_coords": point, "point_labels": np.array([1])}]
    cases = json.loads(cases_file.read_text())["predictor_cases"]
    return [
        {k: np.asarray(v) for k, v in case["args"].items() if k not in ("mask_input", "boxes")}
        for case in cases
        if "boxes" not in case["args"] and "mask_input" not in case["args"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--weights",
        type=Path,
        default=DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.is_file() else None,
        help="vit_t checkpoint (default: the conformance weights, else random weights, seed 0)",
    )
    parser.add_argument("--image", type=Path, help="photo (default: the conformance dogs.jpg, else assets/coffee.jpg)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per side and row (default 7)")
    parser.add_argument("--threads", type=int, default=2, help="threads for torch and ONNX Runtime (default 2)")
    args = parser.parse_args()
    from samkit.images import load_image

    torch.set_num_threads(args.threads)
    image = load_image(args.image or next(p for p in DEFAULT_IMAGES if p.is_file()))
    with tempfile.TemporaryDirectory() as out:
        sides = _sides(args.weights, Path(out), args.threads)
        for predictor in sides.values():
            predictor.set_image(image)
        onnx_fp32 = sides["onnx fp32"]
        preprocessed = onnx_fp32._preprocess(onnx_fp32.transform.apply_image(image))
        point = np.array([[image.shape[1] * 0.45, image.shape[0] * 0.55]])
        rows = {
            "image encoder": {name: _encoder_call(name, p, preprocessed) for name, p in sides.items()},
            "decode 1 point (multimask)": {
                name: (lambda p=p: p.predict(point_coords=point, point_labels=np.array([1])))
                for name, p in sides.items()
            },
        }
        print(
            f"vit_t, weights {args.weights or 'random (seed 0)'}, image {image.shape[1]}x{image.shape[0]}, "
            f"{args.threads} threads, median of {args.runs} alternating runs (after one warm-up each)"
        )
        print(f"{'row':<30}" + "".join(f"{name:>14}" for name in sides) + "   torch/fp32   torch/int8")
        ratios = {}
        for row, calls in rows.items():
            for fn in calls.values():
                fn()
            samples: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.runs):
                for name, fn in calls.items():
                    samples[name].append(_time(fn))
            medians = {name: statistics.median(values) for name, values in samples.items()}
            ratios[row] = medians["torch"] / medians["onnx fp32"]
            print(
                f"{row:<30}"
                + "".join(f"{medians[n]:>11.1f} ms" for n in calls)
                + f"   {medians['torch'] / medians['onnx fp32']:>9.2f}x"
                + f"   {medians['torch'] / medians['onnx int8']:>9.2f}x"
            )

        decode = ratios["decode 1 point (multimask)"]
        print(
            f"target (issue 24): torch's one-point decode at most ONNX Runtime fp32's time: torch/fp32 {decode:.2f}x "
            f"({'met' if decode <= TARGET_TORCH_OVER_ORT else 'not met'}); load average {os.getloadavg()[0]:.1f}"
        )
        reference = sides["torch"].get_image_embedding().numpy()
        for name in ("onnx fp32", "onnx int8"):
            embedding_diff = np.abs(sides[name].get_image_embedding() - reference).max()
            ious = []
            for prompt in _prompts(point):
                torch_masks = sides["torch"].predict(**prompt)[0]
                side_masks = sides[name].predict(**prompt)[0]
                ious.extend(_mask_iou(a, b) for a, b in zip(side_masks, torch_masks))
            print(
                f"{name} vs torch: embedding max |diff| {embedding_diff:.2e}; mask IoU over {len(ious)} masks: "
                f"min {min(ious):.4f}, mean {np.mean(ious):.4f}"
            )


if __name__ == "__main__":
    main()
