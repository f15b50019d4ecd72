"""Every public name that code written for the official `mobile_sam` package uses exists here, with a
compatible signature: the same parameters in the same order, of the same kind, with the same defaults
(extra parameters of ours must be keyword-only or optional and come after the official ones).

The expected signatures are copied by hand from the official MobileSAM source (`mobile_sam/**`), written
as Python parameter lists.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from typing import Any

import pytest
import torch
from torch import nn

# "module:qualified.name" -> the official parameter list (without self).
OFFICIAL_SIGNATURES = {
    "mobile_sam:build_sam_vit_h": "checkpoint=None",
    "mobile_sam:build_sam_vit_l": "checkpoint=None",
    "mobile_sam:build_sam_vit_b": "checkpoint=None",
    "mobile_sam:build_sam_vit_t": "checkpoint=None",
    "mobile_sam:build_sam": "checkpoint=None",
    "mobile_sam.build_sam:build_sam_vit_t": "checkpoint=None",
    "mobile_sam:SamPredictor.__init__": "sam_model",
    "mobile_sam.predictor:SamPredictor.set_image": "image, image_format='RGB'",
    "mobile_sam.predictor:SamPredictor.set_torch_image": "transformed_image, original_image_size",
    "mobile_sam.predictor:SamPredictor.predict": (
        "point_coords=None, point_labels=None, box=None, mask_input=None, multimask_output=True, return_logits=False"
    ),
    "mobile_sam.predictor:SamPredictor.predict_torch": (
        "point_coords, point_labels, boxes=None, mask_input=None, multimask_output=True, return_logits=False"
    ),
    "mobile_sam.predictor:SamPredictor.get_image_embedding": "",
    "mobile_sam.predictor:SamPredictor.reset_image": "",
    "mobile_sam:SamAutomaticMaskGenerator.__init__": (
        "model, points_per_side=32, points_per_batch=64, pred_iou_thresh=0.88, stability_score_thresh=0.95, "
        "stability_score_offset=1.0, box_nms_thresh=0.7, crop_n_layers=0, crop_nms_thresh=0.7, "
        "crop_overlap_ratio=512 / 1500, crop_n_points_downscale_factor=1, point_grids=None, "
        "min_mask_region_area=0, output_mode='binary_mask'"
    ),
    "mobile_sam.automatic_mask_generator:SamAutomaticMaskGenerator.generate": "image",
    "mobile_sam.automatic_mask_generator:SamAutomaticMaskGenerator.postprocess_small_regions": (
        "mask_data, min_area, nms_thresh"
    ),
    "mobile_sam.modeling:Sam.__init__": (
        "image_encoder, prompt_encoder, mask_decoder, pixel_mean=[123.675, 116.28, 103.53], "
        "pixel_std=[58.395, 57.12, 57.375]"
    ),
    "mobile_sam.modeling:Sam.forward": "batched_input, multimask_output",
    "mobile_sam.modeling:Sam.postprocess_masks": "masks, input_size, original_size",
    "mobile_sam.modeling:Sam.preprocess": "x",
    "mobile_sam.modeling:ImageEncoderViT.__init__": (
        "img_size=1024, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, "
        "out_chans=256, qkv_bias=True, norm_layer=nn.LayerNorm, act_layer=nn.GELU, use_abs_pos=True, "
        "use_rel_pos=False, rel_pos_zero_init=True, window_size=0, global_attn_indexes=()"
    ),
    "mobile_sam.modeling:ImageEncoderViT.forward": "x",
    "mobile_sam.modeling.tiny_vit_sam:TinyViT.__init__": (
        "img_size=224, in_chans=3, num_classes=1000, embed_dims=[96, 192, 384, 768], depths=[2, 2, 6, 2], "
        "num_heads=[3, 6, 12, 24], window_sizes=[7, 7, 14, 7], mlp_ratio=4., drop_rate=0., drop_path_rate=0.1, "
        "use_checkpoint=False, mbconv_expand_ratio=4.0, local_conv_size=3, layer_lr_decay=1.0"
    ),
    "mobile_sam.modeling:MaskDecoder.__init__": (
        "*, transformer_dim, transformer, num_multimask_outputs=3, activation=nn.GELU, iou_head_depth=3, "
        "iou_head_hidden_dim=256"
    ),
    "mobile_sam.modeling:MaskDecoder.forward": (
        "image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, multimask_output"
    ),
    "mobile_sam.modeling:MaskDecoder.predict_masks": (
        "image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings"
    ),
    "mobile_sam.utils.onnx:SamOnnxModel.__init__": (
        "model, return_single_mask, use_stability_score=False, return_extra_metrics=False"
    ),
    "mobile_sam.utils.onnx:SamOnnxModel.resize_longest_image_size": "input_image_size, longest_side",
    "mobile_sam.utils.onnx:SamOnnxModel.mask_postprocessing": "masks, orig_im_size",
    "mobile_sam.utils.onnx:SamOnnxModel.select_masks": "masks, iou_preds, num_points",
    "mobile_sam.utils.onnx:SamOnnxModel.forward": (
        "image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size"
    ),
    "mobile_sam.modeling:PromptEncoder.__init__": (
        "embed_dim, image_embedding_size, input_image_size, mask_in_chans, activation=nn.GELU"
    ),
    "mobile_sam.modeling:PromptEncoder.get_dense_pe": "",
    "mobile_sam.modeling:PromptEncoder.forward": "points, boxes, masks",
    "mobile_sam.modeling:TwoWayTransformer.__init__": (
        "depth, embedding_dim, num_heads, mlp_dim, activation=nn.ReLU, attention_downsample_rate=2"
    ),
    "mobile_sam.modeling:TwoWayTransformer.forward": "image_embedding, image_pe, point_embedding",
    "mobile_sam.modeling.tiny_vit_sam:TinyViT.forward": "x",
    "mobile_sam.modeling.tiny_vit_sam:TinyViT.forward_features": "x",
    "mobile_sam.modeling.tiny_vit_sam:TinyViT.no_weight_decay_keywords": "",
    "mobile_sam.modeling.tiny_vit_sam:TinyViT.set_layer_lr_decay": "layer_lr_decay",
    "mobile_sam.modeling.prompt_encoder:PositionEmbeddingRandom.__init__": "num_pos_feats=64, scale=None",
    "mobile_sam.modeling.prompt_encoder:PositionEmbeddingRandom.forward": "size",
    "mobile_sam.modeling.prompt_encoder:PositionEmbeddingRandom.forward_with_coords": "coords_input, image_size",
    "mobile_sam.modeling.common:MLPBlock.__init__": "embedding_dim, mlp_dim, act=nn.GELU",
    "mobile_sam.modeling.common:LayerNorm2d.__init__": "num_channels, eps=1e-6",
    "mobile_sam.modeling.mask_decoder:MLP.__init__": (
        "input_dim, hidden_dim, output_dim, num_layers, sigmoid_output=False"
    ),
    "mobile_sam.modeling.transformer:TwoWayAttentionBlock.__init__": (
        "embedding_dim, num_heads, mlp_dim=2048, activation=nn.ReLU, attention_downsample_rate=2, "
        "skip_first_layer_pe=False"
    ),
    "mobile_sam.modeling.transformer:Attention.__init__": "embedding_dim, num_heads, downsample_rate=1",
    "mobile_sam.modeling.image_encoder:Block.__init__": (
        "dim, num_heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=nn.LayerNorm, act_layer=nn.GELU, "
        "use_rel_pos=False, rel_pos_zero_init=True, window_size=0, input_size=None"
    ),
    "mobile_sam.modeling.image_encoder:Attention.__init__": (
        "dim, num_heads=8, qkv_bias=True, use_rel_pos=False, rel_pos_zero_init=True, input_size=None"
    ),
    "mobile_sam.modeling.image_encoder:window_partition": "x, window_size",
    "mobile_sam.modeling.image_encoder:get_rel_pos": "q_size, k_size, rel_pos",
    "mobile_sam.utils.transforms:ResizeLongestSide.__init__": "target_length",
    "mobile_sam.utils.transforms:ResizeLongestSide.apply_image": "image",
    "mobile_sam.utils.transforms:ResizeLongestSide.apply_coords": "coords, original_size",
    "mobile_sam.utils.transforms:ResizeLongestSide.apply_boxes": "boxes, original_size",
    "mobile_sam.utils.transforms:ResizeLongestSide.apply_image_torch": "image",
    "mobile_sam.utils.transforms:ResizeLongestSide.apply_coords_torch": "coords, original_size",
    "mobile_sam.utils.transforms:ResizeLongestSide.apply_boxes_torch": "boxes, original_size",
    "mobile_sam.utils.transforms:ResizeLongestSide.get_preprocess_shape": "oldh, oldw, long_side_length",
    "mobile_sam.utils.amg:MaskData.__init__": "**kwargs",
    "mobile_sam.utils.amg:MaskData.__setitem__": "key, item",
    "mobile_sam.utils.amg:MaskData.__getitem__": "key",
    "mobile_sam.utils.amg:MaskData.__delitem__": "key",
    "mobile_sam.utils.amg:MaskData.items": "",
    "mobile_sam.utils.amg:MaskData.filter": "keep",
    "mobile_sam.utils.amg:MaskData.cat": "new_stats",
    "mobile_sam.utils.amg:MaskData.to_numpy": "",
    "mobile_sam.utils.amg:is_box_near_crop_edge": "boxes, crop_box, orig_box, atol=20.0",
    "mobile_sam.utils.amg:box_xyxy_to_xywh": "box_xyxy",
    "mobile_sam.utils.amg:batch_iterator": "batch_size, *args",
    "mobile_sam.utils.amg:mask_to_rle_pytorch": "tensor",
    "mobile_sam.utils.amg:rle_to_mask": "rle",
    "mobile_sam.utils.amg:area_from_rle": "rle",
    "mobile_sam.utils.amg:calculate_stability_score": "masks, mask_threshold, threshold_offset",
    "mobile_sam.utils.amg:build_point_grid": "n_per_side",
    "mobile_sam.utils.amg:build_all_layer_point_grids": "n_per_side, n_layers, scale_per_layer",
    "mobile_sam.utils.amg:generate_crop_boxes": "im_size, n_layers, overlap_ratio",
    "mobile_sam.utils.amg:uncrop_boxes_xyxy": "boxes, crop_box",
    "mobile_sam.utils.amg:uncrop_points": "points, crop_box",
    "mobile_sam.utils.amg:uncrop_masks": "masks, crop_box, orig_h, orig_w",
    "mobile_sam.utils.amg:remove_small_regions": "mask, area_thresh, mode",
    "mobile_sam.utils.amg:coco_encode_rle": "uncompressed_rle",
    "mobile_sam.utils.amg:batched_mask_to_box": "masks",
}


def _resolve(target: str) -> Any:
    module_name, qualified = target.split(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualified.split("."):
        obj = inspect.getattr_static(obj, part) if inspect.isclass(obj) else getattr(obj, part)
    return obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj


def _official_parameters(spec: str) -> list[inspect.Parameter]:
    """The parameters of `def f(<spec>)`, defaults evaluated with `nn` in scope."""
    args = ast.parse(f"def f({spec}): pass").body[0].args
    kind = inspect.Parameter
    params = []
    defaults = [None] * (len(args.args) - len(args.defaults)) + list(args.defaults)
    for arg, default in zip(args.args, defaults):
        value = kind.empty if default is None else eval(ast.unparse(default), {"nn": nn})
        params.append(kind(arg.arg, kind.POSITIONAL_OR_KEYWORD, default=value))
    if args.vararg:
        params.append(kind(args.vararg.arg, kind.VAR_POSITIONAL))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        value = kind.empty if default is None else eval(ast.unparse(default), {"nn": nn})
        params.append(kind(arg.arg, kind.KEYWORD_ONLY, default=value))
    if args.kwarg:
        params.append(kind(args.kwarg.arg, kind.VAR_KEYWORD))
    return params


def _key(parameter: inspect.Parameter) -> tuple[str, inspect._ParameterKind]:
    """What a caller depends on: the name and kind (the name of *args or **kwargs is nobody's business)."""
    variadic = parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return ("" if variadic else parameter.name, parameter.kind)


def _same_default(ours: Any, official: Any) -> bool:
    if isinstance(ours, (list, tuple)) and isinstance(official, (list, tuple)):
        return list(ours) == list(official)
    return ours is official or ours == official


@pytest.mark.parametrize("target", sorted(OFFICIAL_SIGNATURES))
def test_official_name_exists_with_a_compatible_signature(target: str) -> None:
    ours = [p for p in inspect.signature(_resolve(target)).parameters.values() if p.name != "self"]
    official = _official_parameters(OFFICIAL_SIGNATURES[target])
    assert [_key(p) for p in ours[: len(official)]] == [_key(p) for p in official]
    for mine, theirs in zip(ours, official):
        assert _same_default(mine.default, theirs.default), f"{mine.name}: {mine.default!r} != {theirs.default!r}"
    for extra in ours[len(official) :]:
        assert extra.kind is inspect.Parameter.KEYWORD_ONLY or extra.default is not inspect.Parameter.empty, extra


def test_postprocess_small_regions_is_a_static_method() -> None:
    from mobile_sam.automatic_mask_generator import SamAutomaticMaskGenerator

    assert isinstance(inspect.getattr_static(SamAutomaticMaskGenerator, "postprocess_small_regions"), staticmethod)


def test_package_level_names_are_those_of_the_official_package() -> None:
    import mobile_sam
    from mobile_sam import modeling
    from mobile_sam.modeling import tiny_vit_sam

    for name in (
        "SamAutomaticMaskGenerator",
        "SamPredictor",
        "build_sam",
        "build_sam_vit_b",
        "build_sam_vit_h",
        "build_sam_vit_l",
        "build_sam_vit_t",
        "sam_model_registry",
    ):
        assert hasattr(mobile_sam, name), name
    assert set(mobile_sam.sam_model_registry) >= {"default", "vit_h", "vit_l", "vit_b", "vit_t"}
    for name in ("Sam", "ImageEncoderViT", "MaskDecoder", "PromptEncoder", "TwoWayTransformer", "TinyViT"):
        assert isinstance(getattr(modeling, name), type), name
    assert modeling.TinyViT is tiny_vit_sam.TinyViT
    assert importlib.import_module("mobile_sam.automatic_mask_generator").SamAutomaticMaskGenerator is (
        mobile_sam.SamAutomaticMaskGenerator
    )


def test_instance_attributes_the_official_code_reads() -> None:
    from mobile_sam import SamPredictor, sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry["vit_t"]()
    assert sam.prompt_encoder.num_point_embeddings == len(sam.prompt_encoder.point_embeddings) == 4
    assert sam.mask_threshold == 0.0 and sam.image_format == "RGB"
    assert sam.image_encoder.img_size == 1024
    predictor = SamPredictor(sam)
    assert predictor.model is sam and predictor.transform.target_length == 1024
    assert predictor.is_image_set is False and predictor.features is None
    assert predictor.device == torch.device("cpu")
