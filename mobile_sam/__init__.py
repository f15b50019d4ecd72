"""MobileSAM, SAM and EfficientViT-SAM: models, predictor and official checkpoints (a drop-in `segment_anything`
replacement).

Without PyTorch installed, only the ONNX Runtime predictor (`mobile_sam.onnx.OnnxPredictor`) and the
torch-free helpers are usable; the names below then raise an ImportError that says so.
"""

from importlib.util import find_spec as _find_spec

if _find_spec("torch") is not None:
    from .automatic_mask_generator import SamAutomaticMaskGenerator
    from .build_mobilesamv2 import build_mobilesamv2
    from .build_sam import (
        build_efficientvit_sam_l0,
        build_efficientvit_sam_l1,
        build_efficientvit_sam_l2,
        build_efficientvit_sam_xl0,
        build_efficientvit_sam_xl1,
        build_sam,
        build_sam_vit_b,
        build_sam_vit_h,
        build_sam_vit_l,
        build_sam_vit_t,
        sam_model_registry,
    )
    from .mobilesamv2 import segment_boxes
    from .predictor import SamPredictor
else:

    def __getattr__(name: str) -> object:
        if name in __all__:
            raise ImportError(
                f"mobile_sam.{name} needs PyTorch, which is not installed; without it only "
                "mobile_sam.onnx.OnnxPredictor (numpy + onnxruntime) is available"
            )
        raise AttributeError(f"module 'mobile_sam' has no attribute {name!r}")


__all__ = [
    "SamAutomaticMaskGenerator",
    "SamPredictor",
    "build_efficientvit_sam_l0",
    "build_efficientvit_sam_l1",
    "build_efficientvit_sam_l2",
    "build_efficientvit_sam_xl0",
    "build_efficientvit_sam_xl1",
    "build_mobilesamv2",
    "build_sam",
    "build_sam_vit_b",
    "build_sam_vit_h",
    "build_sam_vit_l",
    "build_sam_vit_t",
    "sam_model_registry",
    "segment_boxes",
]
