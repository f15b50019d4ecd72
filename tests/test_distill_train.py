"""distill train / finetune-decoder on the reduced configuration: exact resume, frozen parts, strict loading."""

from __future__ import annotations

import csv
import hashlib
import math

import pytest
import torch
from support.distill_support import make_store, save_teacher

from distill.models import TEST_STUDENT, TEST_TEACHER, adopt_decoder, build_model
from distill.schedule import warmup_cosine
from distill.store import StoreError
from distill.train import TrainConfig, train
from mobile_sam import sam_model_registry
from mobile_sam.build_sam import read_state_dict


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    _, teacher, store = make_store(tmp, count=6)
    return tmp, teacher, store


def _config(setup, name: str, **overrides) -> TrainConfig:
    tmp, teacher, store = setup
    options = dict(
        store=str(store),
        output=str(tmp / name),
        teacher_checkpoint=str(teacher),
        student=TEST_STUDENT,
        steps=4,
        batch_size=1,
        accumulate=2,
        lr=3e-3,
        warmup=2,
        seed=3,
        checkpoint_every=2,
        plot=False,
        progress=False,
        device="cpu",
    )
    options.update(overrides)
    return TrainConfig(**options)


def _encoder_state(path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in read_state_dict(path).items() if k.startswith("image_encoder.")}


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_interrupted_and_resumed_run_reproduces_the_uninterrupted_run(setup, optimizer):
    full = train(_config(setup, f"full_{optimizer}", optimizer=optimizer))
    interrupted = train(_config(setup, f"resumed_{optimizer}", optimizer=optimizer), should_stop=lambda step: step == 2)
    assert len(interrupted.losses) == 2
    resumed = train(_config(setup, f"resumed_{optimizer}", optimizer=optimizer))
    assert len(full.losses) == 4
    assert resumed.losses == full.losses  # bit-identical curve (CPU, fp32, same seed and data order)
    a, b = _encoder_state(full.student_checkpoint), _encoder_state(resumed.student_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader(resumed.log.open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 5))
    assert [float(r["loss"]) for r in rows] == pytest.approx(full.losses)


def test_decoupled_training_lowers_the_loss_and_writes_a_strictly_loadable_sam(setup):
    result = train(_config(setup, "long", steps=12, batch_size=2, accumulate=1, plot=True))
    assert sum(result.losses[-3:]) / 3 < 0.8 * sum(result.losses[:3]) / 3
    assert result.plot is not None and result.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    student = build_model(TEST_STUDENT, result.student_checkpoint)  # strict: every key and shape
    teacher = read_state_dict(setup[1])
    for key, value in student.state_dict().items():
        if key.startswith(("prompt_encoder.", "mask_decoder.")):
            assert torch.equal(value, teacher[key]), key  # the teacher's decoder, copied unchanged


def test_teacher_file_is_untouched_and_semi_coupled_training_moves_only_the_encoder(setup):
    tmp, teacher_path, _ = setup
    digest = hashlib.sha256(teacher_path.read_bytes()).hexdigest()
    torch.manual_seed(11)
    torch.save(build_model(TEST_STUDENT).state_dict(), tmp / "init.pt")
    result = train(_config(setup, "semi", mode="semi-coupled", steps=2, init=str(tmp / "init.pt")))
    assert hashlib.sha256(teacher_path.read_bytes()).hexdigest() == digest
    teacher, initial = read_state_dict(teacher_path), read_state_dict(tmp / "init.pt")
    written = read_state_dict(result.student_checkpoint)
    decoder_keys = [k for k in written if k.startswith(("prompt_encoder.", "mask_decoder."))]
    assert decoder_keys and all(torch.equal(written[k], teacher[k]) for k in decoder_keys)
    changed = [k for k in written if k.startswith("image_encoder.") and not torch.equal(initial[k], written[k])]
    assert changed  # the mask loss reached the encoder through the frozen decoder


def test_semi_coupled_gradients_reach_only_the_encoder(setup):
    from distill.train import _Dist, _Trainer

    trainer = _Trainer(_config(setup, "grads", mode="semi-coupled"), _Dist(0, 1, 0), torch.device("cpu"))
    for optimizer in trainer.optimizers:
        optimizer.step = lambda *a, **k: None  # keep the gradients visible after the step
        optimizer.zero_grad = lambda *a, **k: None
    trainer.run_step()
    encoder = [p.grad for p in trainer.student.image_encoder.parameters()]
    assert any(g is not None and g.abs().sum() > 0 for g in encoder)
    frozen = list(trainer.student.prompt_encoder.parameters()) + list(trainer.student.mask_decoder.parameters())
    assert all(p.grad is None and not p.requires_grad for p in frozen)


def test_finetune_decoder_changes_only_the_decoder(setup):
    stage1 = train(_config(setup, "stage1", steps=2))
    result = train(_config(setup, "decoder", mode="decoder", init=str(stage1.student_checkpoint), steps=3))
    before, after = read_state_dict(stage1.student_checkpoint), read_state_dict(result.student_checkpoint)
    for key in before:
        if key.startswith(("image_encoder.", "prompt_encoder.")):
            assert torch.equal(before[key], after[key]), key
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("mask_decoder."))
    # the IoU head learns too (the teacher's predicted IoU is its target), or its ranking would drift
    assert any(
        not torch.equal(before[k], after[k]) for k in before if k.startswith("mask_decoder.iou_prediction_head.")
    )
    assert all(math.isfinite(v) for v in result.losses)


def test_decoder_loss_adds_the_iou_mse_to_the_mask_loss() -> None:
    from distill.losses import decoder_loss, mask_loss

    generator = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 8, 8, generator=generator), torch.randn(2, 3, 8, 8, generator=generator)
    student_iou, teacher_iou = torch.rand(2, 3, generator=generator), torch.rand(2, 3, generator=generator)
    expected = mask_loss(student, teacher) + ((student_iou - teacher_iou) ** 2).mean()
    torch.testing.assert_close(decoder_loss(student, student_iou, teacher, teacher_iou), expected)


def test_full_size_student_checkpoint_loads_into_vit_t_strictly(tmp_path):
    torch.manual_seed(0)
    student = adopt_decoder(build_model("vit_t"), build_model("vit_b"))
    torch.save(student.state_dict(), tmp_path / "mobile_sam.pt")
    loaded = sam_model_registry["vit_t"](checkpoint=tmp_path / "mobile_sam.pt")
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_warmup_then_cosine_schedule():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    scheduler = warmup_cosine(optimizer, warmup=4, total=14, min_ratio=0.1)
    rates = []
    for _ in range(14):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    expected = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 10)) for k in range(10)]
    assert rates[4:] == pytest.approx(expected)


def test_output_lr_scale_multiplies_the_first_step_of_the_output_norm_only(setup, tmp_path):
    # From the same start, the first AdamW step (weight decay off) is lr_t * g / (|g| + eps) for the same
    # gradient g: with output_lr_scale 10 the output norm's weight and bias (neck.3) move 10 x as far, and
    # every other parameter moves exactly as with one rate.
    torch.manual_seed(0)
    initial = adopt_decoder(build_model(TEST_STUDENT), build_model(TEST_TEACHER, setup[1]))
    init_path = tmp_path / "init.pt"
    torch.save(initial.state_dict(), init_path)
    moves = {}
    for scale in (1.0, 10.0):
        result = train(
            _config(
                setup,
                f"scale{scale}",
                steps=1,
                accumulate=1,
                weight_decay=0.0,
                output_lr_scale=scale,
                init=str(init_path),
            )
        )
        after = read_state_dict(result.student_checkpoint)
        moves[scale] = {
            f"image_encoder.{n}": after[f"image_encoder.{n}"] - p for n, p in initial.image_encoder.named_parameters()
        }
    output = {"image_encoder.neck.3.weight", "image_encoder.neck.3.bias"}
    for key, plain in moves[1.0].items():
        if key in output:
            assert plain.abs().min() > 0
            torch.testing.assert_close(moves[10.0][key], 10 * plain, rtol=1e-4, atol=1e-9)
        else:
            torch.testing.assert_close(moves[10.0][key], plain, rtol=1e-4, atol=1e-9)


def test_muon_orthogonalises_the_first_update_of_weight_matrices(setup):
    # Muon's first step on a linear layer's weight matrix with gradient g = U S V^T is
    # -lr_t * 0.2 * sqrt(max(rows, cols)) * U S' V^T (lr matched to AdamW's update RMS), where the
    # Newton-Schulz iteration maps every singular value not much smaller than the largest to S'_ii in about
    # [0.5, 1.5] (torch's Muon documentation); lr_t = lr * warm-up factor 1/2 here. Every other parameter
    # takes an AdamW step, +-lr_t (an AdamW step on a matrix fails the check: its S'_ii reach 10 and more).
    from distill.train import _Dist, _Trainer

    config = _config(setup, "muon_step", steps=1, accumulate=1, weight_decay=0.0, optimizer="muon")
    trainer = _Trainer(config, _Dist(0, 1, 0), torch.device("cpu"))
    adamw, muon = trainer.optimizers
    assert isinstance(adamw, torch.optim.AdamW) and isinstance(muon, torch.optim.Muon)
    learned = {name: p for name, p in trainer.student.image_encoder.named_parameters() if p.requires_grad}
    before = {name: p.detach().clone() for name, p in learned.items()}
    gradients = {}
    muon_step = muon.step

    def recording_step(*args, **kwargs):
        gradients.update({name: p.grad.clone() for name, p in learned.items()})
        return muon_step(*args, **kwargs)

    muon.step = recording_step
    trainer.run_step()
    lr_t = config.lr / 2
    encoder = trainer.student.image_encoder
    linear = {f"{name}.weight" for name, m in encoder.named_modules() if isinstance(m, torch.nn.Linear)}
    matrices = [name for name in learned if name in linear]
    assert len(matrices) > 4 and any(p.ndim == 2 and name not in linear for name, p in learned.items())
    for name, parameter in learned.items():
        step = parameter.detach() - before[name]
        if name not in linear:  # attention-bias tables too, although 2-D
            moved = step.abs()[gradients[name].abs() > 1e-6]
            torch.testing.assert_close(moved, torch.full_like(moved, lr_t), rtol=1e-2, atol=0)
            continue
        u, singular, vh = torch.linalg.svd(gradients[name].double(), full_matrices=False)
        strong = singular > 1e-2 * singular[0]
        scale = lr_t * 0.2 * max(parameter.shape) ** 0.5
        mapped = torch.einsum("ri,rc,ic->i", u, -step.double() / scale, vh)[strong]
        assert mapped.min() > 0.4 and mapped.max() < 1.6, name


def test_bad_options_and_mismatched_inputs_give_clear_errors(setup, tmp_path):
    with pytest.raises(ValueError, match="CUDA"):
        train(_config(setup, "bf16", precision="bf16"))
    with pytest.raises(ValueError, match="checkpoint"):
        train(_config(setup, "nodecoder", mode="decoder"))
    with pytest.raises(ValueError, match="batch"):
        train(_config(setup, "huge", batch_size=4))
    other = save_teacher(tmp_path / "other.pt", seed=5)
    with pytest.raises(StoreError, match="not the teacher checkpoint"):
        train(_config(setup, "other", teacher_checkpoint=str(other)))
    with pytest.raises(ValueError, match="makes"):
        train(_config(setup, "vit_t", student="vit_t"))
    with pytest.raises(ValueError, match="unknown optimizer"):
        train(_config(setup, "sgd", optimizer="sgd"))
    with pytest.raises(ValueError, match="output_lr_scale must be a number > 0, got 0.0"):
        train(_config(setup, "scale", output_lr_scale=0.0))
    for name, value in (("lr", math.inf), ("weight_decay", math.nan), ("min_lr_ratio", 2.0), ("steps", 0)):
        with pytest.raises(ValueError, match=f"{name} must be"):
            train(_config(setup, "bad", **{name: value}))
    train(_config(setup, "changed", steps=1))
    with pytest.raises(ValueError, match="lr"):
        train(_config(setup, "changed", steps=1, lr=1e-2))


def test_the_logged_seconds_add_up_across_a_resume(setup, monkeypatch):
    """train_log.csv's `seconds` is the run's training time so far: a resumed run continues the count."""
    clock = iter(range(0, 10_000, 10))  # every reading of the clock is 10 s after the previous one
    monkeypatch.setattr("distill.train.time.perf_counter", lambda: next(clock))
    first = train(_config(setup, "seconds", steps=2), should_stop=lambda step: step == 1)
    train(_config(setup, "seconds", steps=2))
    with open(first.log) as file:
        seconds = [float(row["seconds"]) for row in csv.DictReader(file)]
    assert len(seconds) == 2 and seconds[1] > seconds[0] > 0
    assert seconds[1] == 2 * seconds[0]  # one step's 10 s after the first step's 10 s


def test_a_resume_with_other_options_names_the_out_option(setup):
    train(_config(setup, "other_options", steps=2), should_stop=lambda step: step == 1)
    with pytest.raises(ValueError, match="use another --out") as error:
        train(_config(setup, "other_options", steps=2, lr=1e-2))
    assert "--output" not in str(error.value)
