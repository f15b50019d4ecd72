"""MobileSAMv2's files in the model catalog: found in the checkpoint cache by `load_model("mobilesamv2")`, trusted on
first use, and every missing or wrong file named with where it goes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from mobilesamv2_support import write_official_files

from mobile_sam import build_mobilesamv2
from samkit.checkpoints import CheckpointError, CheckpointNotFoundError, ChecksumError, checkpoint_status
from samkit.loading import load_model
from samkit.models import MOBILESAMV2, MOBILESAMV2_DETECTOR, MOBILESAMV2_WEIGHTS_URL, MODELS, model_info


@pytest.fixture(scope="module")
def official_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_official_files(tmp_path_factory.mktemp("mobilesamv2_files"))


@pytest.fixture()
def cache(tmp_path: Path, official_files: tuple[Path, Path]) -> Path:
    """A checkpoint folder holding MobileSAMv2's two model files under their official names."""
    for file in official_files:
        (tmp_path / file.name).symlink_to(file)
    return tmp_path


def test_the_catalog_names_mobilesamv2s_files_as_the_official_code_reads_them() -> None:
    encoder, decoder, detector = MODELS[MOBILESAMV2], MODELS["mobilesamv2_decoder"], MODELS[MOBILESAMV2_DETECTOR]
    assert (encoder.filename, decoder.filename, detector.filename) == (
        "l2.pt",
        "Prompt_guided_Mask_Decoder.pt",
        "ObjectAwareModel.pt",
    )
    # The weights archive has no direct link (a Drive page): never downloaded; the decoder is a repository file.
    assert encoder.url == detector.url == MOBILESAMV2_WEIGHTS_URL
    assert not encoder.downloadable and not detector.downloadable
    assert decoder.downloadable and decoder.url.endswith("/MobileSAMv2/PromptGuidedDecoder/" + decoder.filename)
    assert encoder.sha256 is None and decoder.sha256 is None  # none published: trusted on first use
    assert encoder.needs == ("mobilesamv2_decoder",)
    assert model_info("l2.pt").name == MOBILESAMV2 and model_info("MobileSAMv2").name == MOBILESAMV2


def test_load_model_builds_mobilesamv2_from_the_cache(cache: Path, official_files: tuple[Path, Path]) -> None:
    loaded = load_model(MOBILESAMV2, checkpoint_dir=cache, download=False)
    built = build_mobilesamv2("efficientvit_l2", *official_files)
    ours, theirs = loaded.state_dict(), built.state_dict()
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)
    assert not loaded.training
    # Trusted on first use: both hashes are recorded, so the files now count as verified.
    assert checkpoint_status(MOBILESAMV2, cache).verified and checkpoint_status("mobilesamv2_decoder", cache).verified


def test_a_changed_file_is_refused_after_its_first_use(cache: Path, official_files: tuple[Path, Path]) -> None:
    load_model(MOBILESAMV2, checkpoint_dir=cache, download=False)
    decoder = cache / official_files[1].name
    decoder.unlink()
    shutil.copy(official_files[1], decoder)
    with open(decoder, "ab") as file:
        file.write(b"changed")
    with pytest.raises(ChecksumError, match="Prompt_guided_Mask_Decoder.pt does not match the copy recorded"):
        load_model(MOBILESAMV2, checkpoint_dir=cache, download=False)


def test_every_missing_file_is_named_with_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError) as error:
        load_model(MOBILESAMV2, checkpoint_dir=tmp_path, download=False)
    message = str(error.value)
    assert "2 missing" in message
    assert f"save it as\n  {tmp_path / 'l2.pt'}" in message and MOBILESAMV2_WEIGHTS_URL in message
    assert f"save it as\n  {tmp_path / 'Prompt_guided_Mask_Decoder.pt'}" in message
    assert MODELS["mobilesamv2_decoder"].url in message


def test_only_the_missing_file_is_named(cache: Path) -> None:
    (cache / "Prompt_guided_Mask_Decoder.pt").unlink()
    with pytest.raises(CheckpointNotFoundError) as error:
        load_model(MOBILESAMV2, checkpoint_dir=cache, download=False)
    assert "1 missing" in str(error.value) and "Prompt_guided_Mask_Decoder.pt" in str(error.value)
    assert "l2.pt is not in" not in str(error.value)


def test_a_decoder_file_of_the_wrong_format_says_so(cache: Path, tmp_path: Path) -> None:
    (cache / "Prompt_guided_Mask_Decoder.pt").unlink()
    torch.save({"mask_decoder.iou_token.weight": torch.zeros(1, 256)}, cache / "Prompt_guided_Mask_Decoder.pt")
    with pytest.raises(CheckpointError, match="is not a prompt-guided decoder.*a flat state dict of a whole model"):
        load_model(MOBILESAMV2, checkpoint_dir=cache, download=False)


def test_the_decoder_alone_is_not_a_model() -> None:
    with pytest.raises(ValueError, match="a part of mobilesamv2: load 'mobilesamv2'"):
        load_model("mobilesamv2_decoder")


def test_random_weights_need_no_file() -> None:
    model = load_model(MOBILESAMV2, random_weights=True, seed=0)
    again = load_model(MOBILESAMV2, random_weights=True, seed=0)
    assert torch.equal(model.mask_decoder.iou_token.weight, again.mask_decoder.iou_token.weight)
    assert type(model.image_encoder).__name__ == "EfficientViTSamImageEncoder"
