"""The mask decoder's reassociated attention and per-image decoding compute SAM's plain decoder maths."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mobile_sam import sam_model_registry
from mobile_sam.modeling.transformer import Attention, TwoWayTransformer
from mobile_sam.utils.transforms import ResizeLongestSide


def plain_attention(attention: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SAM's attention as written in the paper's code: project, split heads, softmax, merge, project."""
    heads = attention.num_heads

    def split(x: torch.Tensor) -> torch.Tensor:
        batch, tokens, channels = x.shape
        return x.reshape(batch, tokens, heads, channels // heads).transpose(1, 2)

    q, k, v = split(attention.q_proj(q)), split(attention.k_proj(k)), split(attention.v_proj(v))
    attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    out = attn @ v
    batch, _, tokens, head_dim = out.shape
    return attention.out_proj(out.transpose(1, 2).reshape(batch, tokens, heads * head_dim))


def plain_transformer(
    transformer: TwoWayTransformer, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's two-way transformer as written in the paper's code, on image tokens (1, HW, C), their positional
    encoding (1, HW, C) and B prompts' tokens (B, N, C): the prompt tokens (B, N, C) and image tokens (B, HW, C)."""
    queries, keys = tokens, image.expand(tokens.shape[0], -1, -1)
    for i, block in enumerate(transformer.layers):
        if i == 0:
            queries = block.norm1(plain_attention(block.self_attn, queries, queries, queries))
        else:
            q = queries + tokens
            queries = block.norm1(queries + plain_attention(block.self_attn, q, q, queries))
        t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
        queries = block.norm2(queries + plain_attention(t2i, queries + tokens, keys + image_pe, keys))
        queries = block.norm3(queries + block.mlp(queries))
        keys = block.norm4(keys + plain_attention(i2t, keys + image_pe, queries + tokens, queries))
    final = transformer.final_attn_token_to_image
    queries = transformer.norm_final_attn(queries + plain_attention(final, queries + tokens, keys + image_pe, keys))
    return queries, keys


@pytest.fixture(scope="module")
def attention() -> Attention:
    torch.manual_seed(0)
    return Attention(256, 8, downsample_rate=2).eval()


@pytest.fixture(scope="module")
def model(conformance_dir: Path):
    return sam_model_registry["vit_t"](conformance_dir / "mobile_sam_vit_t_seed0.pt")


@torch.no_grad()
def test_few_queries_over_shared_image_tokens_match_plain_attention(attention: Attention) -> None:
    generator = torch.Generator().manual_seed(1)
    queries = torch.randn(3, 7, 256, generator=generator)
    image = torch.randn(1, 4096, 256, generator=generator)
    expected = plain_attention(attention, queries, image.expand(3, -1, -1), image.expand(3, -1, -1))
    torch.testing.assert_close(attention(queries, image, image), expected, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_image_tokens_over_few_keys_with_residual_match_plain_attention(attention: Attention) -> None:
    generator = torch.Generator().manual_seed(2)
    image = torch.randn(1, 4096, 256, generator=generator)
    tokens = torch.randn(3, 7, 256, generator=generator)
    residual = torch.randn(3, 4096, 256, generator=generator)
    expected = residual + plain_attention(attention, image.expand(3, -1, -1), tokens, tokens)
    torch.testing.assert_close(attention(image, tokens, tokens, residual=residual), expected, atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_first_block_on_projected_image_matches_plain_block() -> None:
    torch.manual_seed(3)
    transformer = TwoWayTransformer(depth=1, embedding_dim=256, num_heads=8, mlp_dim=512).eval()
    block = transformer.layers[0]
    generator = torch.Generator().manual_seed(4)
    image, image_pe = torch.randn(1, 4096, 256, generator=generator), torch.randn(1, 4096, 256, generator=generator)
    tokens = torch.randn(5, 7, 256, generator=generator)

    queries = block.norm1(plain_attention(block.self_attn, tokens, tokens, tokens))
    keys = image.expand(5, -1, -1)
    t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
    queries = block.norm2(queries + plain_attention(t2i, queries + tokens, keys + image_pe, keys))
    queries = block.norm3(queries + block.mlp(queries))
    expected_keys = block.norm4(keys + plain_attention(i2t, keys + image_pe, queries + tokens, queries))

    got_queries, got_keys = block(tokens, image, tokens, image_pe, block.project_image(image, image_pe))
    torch.testing.assert_close(got_queries, queries, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_keys, expected_keys, atol=1e-5, rtol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("prompt_tokens", [3, 7])
def test_factored_image_tokens_are_the_plain_transformers(model, prompt_tokens: int) -> None:
    """More prompts than go at once (FACTORED_CHUNK), their tokens formed, cropped and projected."""
    transformer = model.mask_decoder.transformer
    generator = torch.Generator().manual_seed(6)
    embedding = torch.randn(1, 256, 64, 64, generator=generator)
    image_pe = model.prompt_encoder.get_dense_pe()
    tokens = torch.randn(11, prompt_tokens, 256, generator=generator)
    expected_queries, expected_keys = plain_transformer(
        transformer, embedding.flatten(2).transpose(1, 2), image_pe.flatten(2).transpose(1, 2), tokens
    )
    state = transformer.run_blocks(transformer.prepare_image(embedding, image_pe, project=True), tokens)
    image_tokens = state.output_tokens()
    torch.testing.assert_close(transformer.final_tokens(state), expected_queries, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(image_tokens.dense().flatten(1, 2), expected_keys, atol=1e-4, rtol=1e-4)
    grid = expected_keys.unflatten(1, (64, 64))
    torch.testing.assert_close(image_tokens.select(torch.tensor([9, 2])).crop(5, 7).dense(), grid[[9, 2], :5, :7])
    weight, bias = torch.randn(32, 256, generator=generator), torch.randn(32, generator=generator)
    projected = image_tokens.crop(40, 64).project(weight, bias)
    torch.testing.assert_close(projected, grid[:, :40] @ weight.T + bias, atol=1e-3, rtol=1e-4)


@torch.no_grad()
def test_a_shared_embedding_decodes_many_prompts_as_copies_of_it(model) -> None:
    """`MaskDecoder.forward` with a batch-1 embedding and enough prompt tokens to project the image once."""
    generator = torch.Generator().manual_seed(7)
    embedding = torch.randn(1, 256, 64, 64, generator=generator)
    sparse, dense = torch.randn(6, 4, 256, generator=generator), torch.randn(1, 256, 64, 64, generator=generator)
    decoder, image_pe = model.mask_decoder, model.prompt_encoder.get_dense_pe()
    masks, iou = decoder(embedding, image_pe, sparse, dense, True)
    expected_masks, expected_iou = decoder(
        embedding.repeat(6, 1, 1, 1), image_pe, sparse, dense.repeat(6, 1, 1, 1), True
    )
    torch.testing.assert_close(masks, expected_masks, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(iou, expected_iou, atol=1e-5, rtol=1e-4)


def test_projecting_a_batch_of_images_is_rejected() -> None:
    transformer = TwoWayTransformer(depth=1, embedding_dim=64, num_heads=8, mlp_dim=128)
    with pytest.raises(ValueError, match="batch-1"):
        transformer.prepare_image(torch.zeros(2, 64, 4, 4), torch.zeros(1, 64, 4, 4), project=True)


@pytest.mark.parametrize("multimask_output", [True, False])
def test_per_image_decoding_matches_forward_with_copied_embeddings(model, multimask_output: bool) -> None:
    generator = torch.Generator().manual_seed(5)
    embedding = torch.randn(1, 256, 64, 64, generator=generator)
    points = torch.rand(5, 1, 2, generator=generator, dtype=torch.float64) * 1000
    labels = torch.ones(5, 1, dtype=torch.int)
    decoder, image_pe = model.mask_decoder, model.prompt_encoder.get_dense_pe()
    selected = slice(1, None) if multimask_output else slice(0, 1)
    with torch.inference_mode():
        sparse, dense = model.prompt_encoder(points=(points, labels), boxes=None, masks=None)
        expected_masks, expected_iou = decoder(
            embedding.repeat(5, 1, 1, 1), image_pe, sparse, dense.contiguous(), multimask_output
        )
        iou, state = decoder.decode_iou(decoder.prepare_image(embedding, image_pe, dense[:1]), sparse)
        some = torch.tensor([3, 0])
        masks = decoder.upscale_masks(*decoder.decode_mask_tokens(state, some, multimask_output))
        every = decoder.upscale_masks(*decoder.decode_mask_tokens(state, slice(None), multimask_output))
        prepared_iou, *upscale_inputs = decoder.decode_prepared(
            decoder.prepare_image(embedding, image_pe, dense[:1]), sparse, multimask_output
        )
        prepared_masks = decoder.upscale_masks(*upscale_inputs)
    torch.testing.assert_close(iou[:, selected], expected_iou, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(masks, expected_masks[some], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(every, expected_masks, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(prepared_iou, expected_iou, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(prepared_masks, expected_masks, atol=1e-4, rtol=1e-4)


def test_per_image_decoding_matches_the_official_predictor(model, conformance_dir: Path) -> None:
    data = np.load(conformance_dir / "vit_t_predictor_seed0.npz")
    point = ResizeLongestSide(1024).apply_coords(data["one_point_multi/in/point_coords"], (603, 1072))
    decoder = model.mask_decoder
    with torch.inference_mode():
        sparse, dense = model.prompt_encoder(
            points=(torch.as_tensor(point)[None], torch.ones(1, 1, dtype=torch.int)), boxes=None, masks=None
        )
        image = decoder.prepare_image(torch.from_numpy(data["embedding"]), model.prompt_encoder.get_dense_pe(), dense)
        iou, state = decoder.decode_iou(image, sparse)
        low_res = decoder.upscale_masks(*decoder.decode_mask_tokens(state, torch.tensor([0]), multimask_output=True))
    np.testing.assert_allclose(iou[0, 1:].numpy(), data["one_point_multi/scores"], atol=1e-4)
    np.testing.assert_allclose(low_res[0].numpy(), data["one_point_multi/low_res_logits"], atol=1e-3)


def test_per_image_decoding_of_a_one_block_transformer_matches_forward() -> None:
    """A one-block transformer (its only block makes the factored tokens) decodes a prepared image as forward does."""
    from mobile_sam.modeling import MaskDecoder, PromptEncoder

    torch.manual_seed(0)
    prompt_encoder = PromptEncoder(
        embed_dim=32, image_embedding_size=(16, 16), input_image_size=(256, 256), mask_in_chans=4
    )
    decoder = MaskDecoder(
        transformer_dim=32,
        transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=2),
        iou_head_hidden_dim=32,
    ).eval()
    generator = torch.Generator().manual_seed(7)
    embedding = torch.randn(1, 32, 16, 16, generator=generator)
    points = torch.rand(4, 1, 2, generator=generator) * 256
    with torch.inference_mode():
        sparse, dense = prompt_encoder(points=(points, torch.ones(4, 1, dtype=torch.int)), boxes=None, masks=None)
        image_pe = prompt_encoder.get_dense_pe()
        expected, _ = decoder(embedding.repeat(4, 1, 1, 1), image_pe, sparse, dense.contiguous(), True)
        _, state = decoder.decode_iou(decoder.prepare_image(embedding, image_pe, dense[:1]), sparse)
        some = torch.tensor([2, 0, 3])
        masks = decoder.upscale_masks(*decoder.decode_mask_tokens(state, some, True))
    torch.testing.assert_close(masks, expected[some], atol=1e-4, rtol=1e-4)


def _official_upscaling(decoder, hyper_in: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
    upscaled = decoder.output_upscaling(image_tokens)
    return (hyper_in @ upscaled.flatten(2)).view(len(hyper_in), hyper_in.shape[1], *upscaled.shape[2:])


@pytest.mark.parametrize("grad", [False, True])
def test_upscaling_is_the_official_output_upscaling_and_hypernetwork_product(model, grad: bool) -> None:
    """Without autograd the second transposed convolution, its bias and GELU run as one oneDNN product on a CPU;
    with autograd as separate steps: both give the official `output_upscaling` then `hyper_in @ upscaled`."""
    torch.manual_seed(0)
    decoder = model.mask_decoder
    image_tokens, hyper_in = torch.randn(3, 256, 16, 24), torch.randn(3, 4, 32)
    with torch.no_grad():
        expected = _official_upscaling(decoder, hyper_in, image_tokens)  # (3, 4, 64, 96)
    with torch.set_grad_enabled(grad):
        masks = decoder.upscale_masks(hyper_in.requires_grad_(grad), image_tokens)
    torch.testing.assert_close(masks.detach(), expected, atol=1e-4, rtol=1e-4)
    assert masks.requires_grad == grad


class _Upscaling(torch.nn.Module):
    """`MaskDecoder.upscale_masks` as a module, for torch.export and torch.compile."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, hyper_in: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder.upscale_masks(hyper_in, image_tokens)


def test_an_exported_upscaling_holds_only_portable_ops(model) -> None:
    """torch.export without autograd records the plain product and GELU (an ONNX exporter cannot convert oneDNN's
    fused product), and the exported program gives the official values."""
    torch.manual_seed(0)
    hyper_in, image_tokens = torch.randn(3, 4, 32), torch.randn(3, 256, 16, 24)
    with torch.no_grad():
        program = torch.export.export(_Upscaling(model.mask_decoder), (hyper_in, image_tokens))
        targets = [str(node.target) for node in program.graph.nodes if node.op == "call_function"]
        assert not [target for target in targets if "mkldnn" in target]
        masks = program.module()(hyper_in, image_tokens)
        expected = _official_upscaling(model.mask_decoder, hyper_in, image_tokens)
    torch.testing.assert_close(masks, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile's CPU code generation needs a C++ compiler")
def test_the_upscaling_compiles_without_autograd(model) -> None:
    """torch.compile (inductor) of the upscaling without autograd: inductor cannot lower oneDNN's fused product on
    a weight that is not a graph constant, so the compiled graph must hold the plain ops."""
    torch.manual_seed(0)
    hyper_in, image_tokens = torch.randn(3, 4, 32), torch.randn(3, 256, 16, 24)
    with torch.no_grad():
        masks = torch.compile(_Upscaling(model.mask_decoder))(hyper_in, image_tokens)
        expected = _official_upscaling(model.mask_decoder, hyper_in, image_tokens)
    torch.testing.assert_close(masks, expected, atol=1e-4, rtol=1e-4)
