"""Compare original SAM, MobileSAM and FastSAM on the same images and prompts: mask agreement (mIoU against a
reference model, as in the MobileSAM paper) and latency split into encoder and decoder."""

from .backends import Backend, FastSamBackend, MaskResult, MobileSamBackend, SamBackend
from .metrics import mask_iou, mean_iou
from .params import ParameterCounts
from .prompt import Prompt
from .results import CaseRecord, ComparisonResult, EncoderRecord, MaskExample

__all__ = [
    "Backend",
    "CaseRecord",
    "ComparisonResult",
    "EncoderRecord",
    "FastSamBackend",
    "MaskExample",
    "MaskResult",
    "MobileSamBackend",
    "ParameterCounts",
    "Prompt",
    "SamBackend",
    "mask_iou",
    "mean_iou",
]
