"""Segment everything: automatic mask generation with MobileSAM / SAM (the official results, faster)."""
from mobile_sam.automatic_mask_generator import DecodePoints, GenerationCancelled, SamAutomaticMaskGenerator

__all__ = ["DecodePoints", "GenerationCancelled", "SamAutomaticMaskGenerator"]
