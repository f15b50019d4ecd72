"""Compare original SAM, MobileSAM, EfficientViT-SAM and FastSAM on the same images and prompts: mask agreement
(mIoU against a reference model, as in the MobileSAM paper) and latency split into encoder and decoder."""

from .backends import Backend, FastSamBackend, MaskResult, MobileSamBackend, SamBackend
from .params import ParameterCounts
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
    "SamBackend",
]
