"""Segment everything: automatic mask generation with MobileSAM / SAM.

`SamAutomaticMaskGenerator` gives the official grid generator's results (faster); `ObjectAwareMaskGenerator`
is MobileSAMv2's object-aware mode (box prompts from a detector, `load_box_source`), a different algorithm.
"""

from mobile_sam.automatic_mask_generator import DecodePoints, SamAutomaticMaskGenerator
from mobile_sam.utils.cancel import Cancelled

from .box_sources import Detections, load_box_source
from .objects import ObjectAwareMaskGenerator

__all__ = [
    "DecodePoints",
    "Detections",
    "Cancelled",
    "ObjectAwareMaskGenerator",
    "SamAutomaticMaskGenerator",
    "load_box_source",
]
