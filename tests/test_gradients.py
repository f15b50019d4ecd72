"""Gradients work where the official package gives them: `predictor.features` feeds a training loop, and
the modules run as `Sam.forward` runs them train end to end (public APIs use `torch.no_grad`, never
`torch.inference_mode`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mobile_sam import SamPredictor
from mobile_sam.modeling import MaskDecoder, PromptEncoder, Sam, TinyViT, TwoWayTransformer


def _tiny_sam() -> Sam:
    """A small SAM (64 px input, 4x4 embedding grid) with random weights: every module of the real one."""
    torch.manual_seed(0)
    return Sam(
        image_encoder=TinyViT(
            img_size=64,
            embed_dims=(16, 16, 32, 32),
            depths=(1, 1, 1, 1),
            num_heads=(1, 1, 2, 2),
            window_sizes=(2, 2, 2, 2),
            num_classes=0,
            drop_path_rate=0.0,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=256, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=16
        ),
        mask_decoder=MaskDecoder(
            transformer_dim=256,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=64, num_heads=2),
        ),
    )


def test_fine_tuning_the_mask_decoder_on_predictor_features_lowers_the_loss() -> None:
    sam = _tiny_sam().eval()
    predictor = SamPredictor(sam)
    predictor.set_image(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8))
    features = predictor.features
    assert not features.is_inference() and not features.requires_grad

    point = torch.as_tensor(predictor.transform.apply_coords(np.array([[20.0, 15.0]]), predictor.original_size))
    with torch.no_grad():
        sparse, dense = sam.prompt_encoder(
            points=(point[None].float(), torch.ones(1, 1, dtype=torch.int)), boxes=None, masks=None
        )
    target = torch.zeros(1, 1, 16, 16)
    target[..., 3:9, 4:12] = 1.0
    optimizer = torch.optim.SGD(sam.mask_decoder.parameters(), lr=0.05)
    losses = []
    for _ in range(3):
        low_res, _ = sam.mask_decoder(
            image_embeddings=features,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )
        loss = F.binary_cross_entropy_with_logits(low_res, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(later < earlier for earlier, later in zip(losses, losses[1:])) and losses[-1] < 0.98 * losses[0], losses


def test_gradients_flow_through_every_module_as_sam_forward_chains_them() -> None:
    sam = _tiny_sam().train()
    image = torch.rand(1, 3, 48, 64) * 255
    embeddings = sam.image_encoder(sam.preprocess(image))
    sparse, dense = sam.prompt_encoder(
        points=(torch.tensor([[[20.0, 30.0]]]), torch.ones(1, 1, dtype=torch.int)), boxes=None, masks=None
    )
    low_res, iou = sam.mask_decoder(
        image_embeddings=embeddings,
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=True,
    )
    masks = sam.postprocess_masks(low_res, (48, 64), (48, 64))
    (masks.sigmoid().mean() + iou.mean()).backward()
    for name, module in (
        ("image_encoder", sam.image_encoder),
        ("prompt_encoder", sam.prompt_encoder),
        ("mask_decoder", sam.mask_decoder),
    ):
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


def test_a_prepared_image_decodes_with_gradients_as_forward_does() -> None:
    """`MaskDecoder.prepare_image` + `decode_prepared` (the predictor's path, factored tokens) work with autograd on:
    same logits as `forward`, and gradients reach the decoder's weights."""
    sam = _tiny_sam().eval()
    decoder = sam.mask_decoder
    generator = torch.Generator().manual_seed(3)
    embedding = torch.randn(1, 256, 4, 4, generator=generator)
    points = torch.rand(3, 1, 2, generator=generator) * 64
    sparse, dense = sam.prompt_encoder(points=(points, torch.ones(3, 1, dtype=torch.int)), boxes=None, masks=None)
    image_pe = sam.prompt_encoder.get_dense_pe()
    expected, _ = decoder(embedding, image_pe, sparse, dense, multimask_output=True)
    image = decoder.prepare_image(embedding, image_pe, dense[:1])
    scores, hyper_in, tokens = decoder.decode_prepared(image, sparse, multimask_output=True)
    low_res = decoder.upscale_masks(hyper_in, tokens)
    torch.testing.assert_close(low_res, expected, atol=1e-4, rtol=1e-4)
    (low_res.square().mean() + scores.mean()).backward()
    assert decoder.transformer.layers[1].cross_attn_token_to_image.q_proj.weight.grad.abs().sum() > 0
    assert decoder.output_upscaling[0].weight.grad.abs().sum() > 0
