"""Model definitions: SAM's ViT, MobileSAM's TinyViT and EfficientViT-SAM's image encoders, prompt encoder,
mask decoder."""

from .efficientvit_sam import EfficientViTSamImageEncoder
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .sam import Sam
from .tiny_vit_sam import TinyViT
from .transformer import TwoWayTransformer

__all__ = [
    "EfficientViTSamImageEncoder",
    "ImageEncoderViT",
    "MaskDecoder",
    "PromptEncoder",
    "Sam",
    "TinyViT",
    "TwoWayTransformer",
]
