"""Teacher and student models for distillation, by name.

Teachers are any SAM-family name of the catalog (`samkit.models.SAM_MODELS`) and students are ``vit_t``
(MobileSAM's TinyViT, 1024 input, (256, 64, 64) embeddings). ``test_vit`` and ``test_tinyvit`` are reduced
configurations of the same two encoder families (64x64 input, (256, 4, 4) embeddings, a small mask decoder)
for unit tests and quick smoke runs; a teacher and a student fit together when their embeddings have the
same shape (`embedding_shape`).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from torch import nn

from mobile_sam.build_sam import PROMPT_EMBED_DIM, VIT_PATCH_SIZE, load_state_dict_checked, read_state_dict
from mobile_sam.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TinyViT, TwoWayTransformer
from mobile_sam.modeling.common import LayerNorm2d
from samkit.checkpoints import sha256_file
from samkit.loading import load_model
from samkit.models import MOBILE_SAM, SAM_MODELS

TEST_IMAGE_SIZE = 64
TEST_TEACHER = "test_vit"
TEST_STUDENT = "test_tinyvit"
STUDENT_NAMES = (MOBILE_SAM, TEST_STUDENT)
TEACHER_NAMES = (*SAM_MODELS, TEST_TEACHER)

# The prompt encoder and mask decoder of a Sam, the parts the student borrows from the teacher.
DECODER_PREFIXES = ("prompt_encoder.", "mask_decoder.")


def _test_sam(image_encoder: nn.Module) -> Sam:
    """A reduced Sam around `image_encoder` (64x64 input, 4x4 embeddings, one-layer decoder transformer)."""
    side = TEST_IMAGE_SIZE // VIT_PATCH_SIZE
    return Sam(
        image_encoder=image_encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(side, side),
            input_image_size=(TEST_IMAGE_SIZE, TEST_IMAGE_SIZE),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=PROMPT_EMBED_DIM, mlp_dim=64, num_heads=2),
            transformer_dim=PROMPT_EMBED_DIM,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
    ).eval()


def _build_test_teacher() -> Sam:
    encoder = ImageEncoderViT(
        img_size=TEST_IMAGE_SIZE,
        patch_size=VIT_PATCH_SIZE,
        embed_dim=32,
        depth=2,
        num_heads=2,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        use_rel_pos=True,
        window_size=2,
        global_attn_indexes=(1,),
        out_chans=PROMPT_EMBED_DIM,
    )
    return _test_sam(encoder)


def _build_test_student() -> Sam:
    encoder = TinyViT(
        img_size=TEST_IMAGE_SIZE,
        embed_dims=(16, 16, 32, 32),
        depths=(1, 1, 1, 1),
        num_heads=(1, 1, 2, 2),
        window_sizes=(2, 2, 4, 2),
        num_classes=0,
        drop_path_rate=0.0,
    )
    return _test_sam(encoder)


def build_model(name: str, checkpoint: str | Path | None = None) -> Sam:
    """A Sam by teacher or student name, with random weights or `checkpoint` (a full Sam state dict, strict)."""
    if name == TEST_TEACHER:
        model = _build_test_teacher()
    elif name == TEST_STUDENT:
        model = _build_test_student()
    elif name in SAM_MODELS:
        return load_model(name, checkpoint=checkpoint, random_weights=checkpoint is None)
    else:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(TEACHER_NAMES)}")
    if checkpoint is not None:
        load_state_dict_checked(model, read_state_dict(checkpoint), name)
    return model


def check_student_name(name: str) -> str:
    """`name` if it names a student architecture, else a ValueError listing the students."""
    if name not in STUDENT_NAMES:
        raise ValueError(f"unknown student {name!r}; choose one of {', '.join(STUDENT_NAMES)}")
    return name


def embedding_shape(model: Sam) -> tuple[int, int, int]:
    """(C, h, w) of the model's image embedding: (256, 64, 64) for the real configurations."""
    h, w = model.prompt_encoder.image_embedding_size
    return (model.prompt_encoder.embed_dim, int(h), int(w))


def output_norm(encoder: nn.Module) -> nn.Module:
    """The image encoder's last layer, the LayerNorm2d of its neck whose weight and bias are the per-channel
    scale and shift of the embedding (TinyViT and ViT encoders alike)."""
    last = encoder.neck[-1]
    if not isinstance(last, LayerNorm2d):
        raise TypeError(f"{type(encoder).__name__}'s neck does not end in a LayerNorm2d")
    return last


def checkpoint_sha256(checkpoint: str | Path | None) -> str | None:
    """SHA-256 of a checkpoint file (None for random weights)."""
    return None if checkpoint is None else sha256_file(checkpoint)


def freeze(model: nn.Module) -> nn.Module:
    """Put `model` in eval mode with every parameter excluded from autograd (a teacher, a borrowed decoder)."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def adopt_decoder(student: Sam, teacher: Sam) -> Sam:
    """Copy `teacher`'s prompt encoder and mask decoder into `student` (strict: same architecture), so that the
    student's state dict is a full Sam in the official layout (mobile_sam.pt for vit_t). Returns `student`."""
    try:
        student.prompt_encoder.load_state_dict(teacher.prompt_encoder.state_dict())
        student.mask_decoder.load_state_dict(teacher.mask_decoder.state_dict())
    except RuntimeError as err:
        raise ValueError(f"the teacher's prompt encoder / mask decoder do not fit the student: {err}") from err
    return student


def teacher_checkpoint(name: str, path: str | Path | None) -> Path:
    """The teacher's checkpoint file: `path` when given, else the official file from the checkpoint cache
    (downloaded and verified on first use). The reduced test teacher has no official file."""
    from samkit.checkpoints import CheckpointError, resolve_checkpoint

    if path is not None:
        if Path(path).is_dir():
            raise ValueError(f"teacher checkpoint {path} is a folder: pass the checkpoint file itself")
        if not Path(path).is_file():
            raise FileNotFoundError(f"teacher checkpoint {path} does not exist")
        return Path(path)
    if name == TEST_TEACHER:
        raise ValueError(f"the {TEST_TEACHER} teacher has no official weights; pass its checkpoint file")
    try:
        return resolve_checkpoint(name)
    except CheckpointError as error:
        raise type(error)(f"{error}\nOr pass the teacher's file with --teacher-checkpoint FILE.") from error


def write_random_teacher(name: str, path: str | Path, seed: int = 0) -> Path:
    """Write a teacher with random weights drawn with `seed` (a full Sam state dict) to `path`, which must not
    exist: a teacher file for trying the whole method offline (its embeddings and masks are meaningless)."""
    import io

    import torch

    from mobile_sam.utils.atomic import atomic_write_bytes

    if name not in TEACHER_NAMES:
        raise ValueError(f"unknown teacher {name!r}; choose one of {', '.join(TEACHER_NAMES)}")
    if Path(path).exists():
        raise ValueError(f"{path} exists; give a new file name")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return atomic_write_bytes(path, buffer.getvalue())
