"""The bad-input sweep: every command line and API endpoint against every kind of bad input.

Inputs: a missing path, a file that is not an image, a truncated image, a 1x1 image, a header claiming a huge image,
NaN, +-inf, negative, zero, out-of-range and wrong-type values. Each case expects either a clear refusal (exit
status 2 or a handled API error, with a message naming the problem), a per-image failure where a run goes on
(exit status 1, the image listed with its reason), or a correct result (checked). Never a traceback, never exit 0
with a wrong answer. Commands run in-process (`main(argv)`); models are the tiny test configurations or random
weights, refused cases stop before any model is built.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.compare_support import tiny_sam
from support.distill_support import save_teacher, write_images

REFUSED, FAILED, OK = 2, 1, 0


def huge_header_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A PNG whose header claims width x height pixels (a decompression bomb's header), without the pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The input files by kind (and folders holding one each, for the commands that take folders)."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    good = root / "good.png"
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(good)
    nonimage = root / "notes.jpg"
    nonimage.write_text("these are notes, not a picture")
    truncated = root / "truncated.jpg"
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(truncated, quality=90)
    truncated.write_bytes(truncated.read_bytes()[:300])
    one_pixel = root / "one_pixel.png"
    Image.fromarray(np.array([[[200, 30, 30]]], np.uint8)).save(one_pixel)
    huge = huge_header_png(root / "huge.png")
    found = {
        "root": root,
        "good": good,
        "missing": root / "missing.png",
        "nonimage": nonimage,
        "truncated": truncated,
        "one_pixel": one_pixel,
        "huge": huge,
    }
    for kind in ("nonimage", "truncated", "one_pixel", "huge"):  # one folder per kind, with a good image beside it
        folder = root / f"folder_{kind}"
        folder.mkdir()
        (folder / found[kind].name).write_bytes(found[kind].read_bytes())
        (folder / "good.png").write_bytes(good.read_bytes())
        found[f"folder_{kind}"] = folder
    checkpoint_text = root / "text.pt"
    checkpoint_text.write_text("not a checkpoint")
    found["text_checkpoint"] = checkpoint_text
    found["teacher"] = save_teacher(root / "teacher.pt")
    return found


def expand(template: list[str], files: dict[str, Path], out: Path) -> list[str]:
    """argv with {name} replaced by the file of that kind and {out} by a fresh output folder."""
    names = {**{k: str(v) for k, v in files.items()}, "out": str(out)}
    return [part.format(**names) for part in template]


def run_main(main: Callable, argv: list[str], capsys) -> tuple[int, str]:
    """(exit status, everything printed) of main(argv); an exception other than SystemExit fails the test."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text, text
    return code, text


def check(code: int, text: str, expected: int, message: str) -> None:
    assert code == expected, f"exit {code}, expected {expected}:\n{text[-2000:]}"
    assert re.search(message, text), f"{message!r} not in:\n{text[-2000:]}"


# -- python -m everything -------------------------------------------------------------------------------------
FAST = ["--random-weights", "--device", "cpu", "--points-per-side", "2", "--out", "{out}"]
OBJ = ["--random-weights", "--device", "cpu", "--prompts", "objects", "--detector", "{good}", "--out", "{out}"]
EVERYTHING = [
    ("missing path", ["{missing}", *FAST], REFUSED, "no such file or folder"),
    ("missing boxes file", ["{good}", "--boxes", "{missing}", "--random-weights", "--out", "{out}"], REFUSED,
     "cannot read the boxes file"),
    ("non-image boxes file", ["{good}", "--boxes", "{good}", "--random-weights", "--out", "{out}"], REFUSED,
     "cannot read the boxes file"),
    ("non-image", ["{folder_nonimage}", *FAST], FAILED, "notes.jpg.*not a recognised image format"),
    ("truncated", ["{folder_truncated}", *FAST], FAILED, "truncated.jpg.*corrupt or truncated"),
    ("huge header", ["{folder_huge}", *FAST], FAILED, "huge.png.*too large"),
    ("1x1", ["{one_pixel}", *FAST, "--pred-iou-thresh", "0", "--stability-score-thresh", "0"], OK, "1 images: 1 now"),
    ("nan threshold", ["{good}", *FAST, "--pred-iou-thresh", "nan"], REFUSED,
     r"--pred-iou-thresh: must be a number in \[0, 1\], got 'nan'"),
    ("nan stability", ["{good}", *FAST, "--stability-score-thresh", "nan"], REFUSED, "--stability-score-thresh"),
    ("nan nms", ["{good}", *FAST, "--box-nms-thresh", "nan"], REFUSED, "--box-nms-thresh"),
    ("nan offset", ["{good}", *FAST, "--stability-score-offset", "nan"], REFUSED, "--stability-score-offset"),
    ("+inf offset", ["{good}", *FAST, "--stability-score-offset", "inf"], REFUSED, "--stability-score-offset"),
    ("-inf nms", ["{good}", *FAST, "--box-nms-thresh", "-inf"], REFUSED, "--box-nms-thresh"),
    ("negative area", ["{good}", *FAST, "--min-mask-region-area", "-5"], REFUSED, "must be an integer >= 0"),
    ("negative overlap", ["{good}", *FAST, "--crop-overlap-ratio", "-1"], REFUSED, "--crop-overlap-ratio"),
    ("negative workers", ["{good}", *FAST, "--engine", "ray", "--num-workers", "-2"], REFUSED, "--num-workers"),
    ("zero points", ["{good}", *FAST, "--points-per-side", "0"], REFUSED, "--points-per-side"),
    ("zero batch", ["{good}", *FAST, "--points-per-batch", "0"], REFUSED, "--points-per-batch"),
    ("zero max boxes", ["{good}", *OBJ, "--max-boxes", "0"], REFUSED, "--max-boxes"),
    ("out-of-range crop layers", ["{good}", *FAST, "--crop-n-layers", "9"], REFUSED, r"integer in \[0, 5\]"),
    ("out-of-range stability", ["{good}", *FAST, "--stability-score-thresh", "1.5"], REFUSED, "--stability"),
    ("out-of-range overlap", ["{good}", *FAST, "--crop-overlap-ratio", "1"], REFUSED, "--crop-overlap-ratio"),
    ("out-of-range points", ["{good}", *FAST, "--points-per-side", "5000"], REFUSED, "--points-per-side"),
    ("crops divide points to none", ["{good}", *FAST, "--crop-n-layers", "1", "--crop-n-points-downscale-factor", "4"],
     REFUSED, "leaves no point in layer 1"),
    ("wrong type points", ["{good}", *FAST, "--points-per-side", "2.5"], REFUSED, "must be an integer"),
    ("wrong type text", ["{good}", *FAST, "--pred-iou-thresh", "high"], REFUSED, "--pred-iou-thresh"),
    ("wrong type workers", ["{good}", *FAST, "--num-workers", "two"], REFUSED, "--num-workers"),
    ("objects nan snap", ["{good}", *OBJ, "--border-snap", "nan"], REFUSED, "--border-snap"),
    ("knob of the other mode", ["{good}", *FAST, "--max-boxes", "3"], REFUSED, "not a setting of --prompts grid"),
    ("unknown detector", ["{good}", *OBJ[:-4], "--detector", "yolo9000", "--out", "{out}"], REFUSED, "--detector"),
    ("missing checkpoint", ["{good}", "--checkpoint", "{missing}", "--device", "cpu", "--out", "{out}"], REFUSED,
     "missing.png does not exist"),
]  # fmt: skip


@pytest.fixture()
def tiny_everything(monkeypatch):
    """The everything CLI's generators on a tiny random SAM (the inputs are what is tested, not the model)."""
    from everything.objects import ObjectAwareMaskGenerator
    from everything.spec import GRID, GeneratorSpec
    from mobile_sam import SamAutomaticMaskGenerator

    def build(spec: GeneratorSpec):
        if spec.prompts == GRID:
            return SamAutomaticMaskGenerator(tiny_sam(), output_mode="coco_rle", **spec.settings)
        return ObjectAwareMaskGenerator(tiny_sam(), None, output_mode="coco_rle", **spec.settings)

    monkeypatch.setattr(GeneratorSpec, "build", build)


@pytest.mark.parametrize(("case", "argv", "expected", "message"), EVERYTHING, ids=[c[0] for c in EVERYTHING])
def test_everything_cli(case, argv, expected, message, files, tmp_path, capsys, tiny_everything) -> None:
    from everything.__main__ import main

    out = tmp_path / "out"
    code, text = run_main(main, expand(argv, files, out), capsys)
    check(code, text, expected, message)
    if expected == REFUSED:
        assert not out.exists()  # refused before any work
    if expected == FAILED:
        coco = json.loads((out / "annotations.json").read_text())
        assert [image["file_name"] for image in coco["images"]] == ["good.png"]  # the good image beside it is done
        assert len(json.loads((out / "failures.json").read_text())) == 1
    if expected == OK:
        coco = json.loads((out / "annotations.json").read_text())
        assert [(i["file_name"], i["height"], i["width"]) for i in coco["images"]] == [("one_pixel.png", 1, 1)]
        # the official boxes end at the last pixel (inclusive): a one-pixel mask's XYWH box is [0, 0, 0, 0]
        assert coco["annotations"] and all(
            a["area"] in (0, 1) and a["bbox"] == [0, 0, 0, 0] for a in coco["annotations"]
        )


# -- python -m compare ----------------------------------------------------------------------------------------
TINY = ["--reference", "vit_b", "--models", "vit_l", "--random-weights", "--device", "cpu", "--warmup", "0"]
TINY += ["--out", "{out}"]
COMPARE = [
    ("missing path", ["{missing}", *TINY], REFUSED, "no such file"),
    ("non-image", ["{nonimage}", *TINY], REFUSED, "not a recognised image format"),
    ("truncated", ["{truncated}", *TINY], REFUSED, "corrupt or truncated"),
    ("huge header", ["{huge}", *TINY], REFUSED, "too large"),
    ("1x1 points2", ["{one_pixel}", *TINY], REFUSED, "no distance fits any image"),
    ("1x1 point", ["{one_pixel}", *TINY, "--protocol", "point", "--prompts-per-image", "2"], OK, r"\| vit_l \|"),
    ("nan distance", ["{good}", *TINY, "--distances", "nan"], REFUSED, "argument --distances"),
    ("+inf distance", ["{good}", *TINY, "--distances", "inf"], REFUSED, "argument --distances"),
    ("-inf distance", ["{good}", *TINY, "--distances", "-inf"], REFUSED, "argument --distances"),
    ("negative distance", ["{good}", *TINY, "--distances", "-5"], REFUSED, "argument --distances"),
    ("zero distance", ["{good}", *TINY, "--distances", "0"], REFUSED, "argument --distances"),
    ("zero prompts", ["{good}", *TINY, "--prompts-per-image", "0"], REFUSED, "--prompts-per-image"),
    ("negative seed", ["{good}", *TINY, "--seed", "-1"], REFUSED, "--seed"),
    ("zero repeats", ["{good}", *TINY, "--repeats", "0"], REFUSED, "--repeats"),
    ("negative warmup", ["{good}", *TINY, "--warmup", "-1"], REFUSED, "--warmup"),
    ("zero threads", ["{good}", *TINY, "--threads", "0"], REFUSED, "--threads"),
    ("wrong type prompts", ["{good}", *TINY, "--prompts-per-image", "many"], REFUSED, "--prompts-per-image"),
    ("out-of-range model", ["{good}", *TINY, "--models", "vit_z"], REFUSED, "vit_z"),
    ("missing prompts file", ["{good}", *TINY, "--protocol", "user", "--prompts", "{missing}"], REFUSED,
     "cannot read prompts file"),
    ("non-JSON prompts file", ["{good}", *TINY, "--protocol", "user", "--prompts", "{good}"], REFUSED,
     "cannot read prompts file"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "expected", "message"), COMPARE, ids=[c[0] for c in COMPARE])
def test_compare_cli(case, argv, expected, message, files, tmp_path, capsys) -> None:
    from compare.backends import SamBackend
    from compare.cli import main

    def factory(name, options):
        return SamBackend(name, model=tiny_sam(), device=options.device)

    out = tmp_path / "out"
    code, text = run_main(lambda a: main(a, factory=factory), expand(argv, files, out), capsys)
    check(code, text, expected, message)
    if expected == REFUSED:
        assert not out.exists()
    else:
        cases = json.loads((out / "results.json").read_text())["cases"]
        assert len(cases) == 2 * 2 and all(c["prompt"]["points"] == [[0.0, 0.0]] for c in cases)


@pytest.mark.parametrize("value", ["nan", "[[1, 2]]"])
def test_compare_user_prompts_with_bad_values(value, files, tmp_path, capsys) -> None:
    from compare.cli import main

    prompts = tmp_path / "prompts.json"
    prompts.write_text(f'{{"good.png": [{{"points": [[{value}, 3]], "labels": [1]}}]}}')
    argv = expand([str(files["good"]), *TINY, "--protocol", "user", "--prompts", str(prompts)], files, tmp_path / "o")
    code, text = run_main(main, argv, capsys)
    check(code, text, REFUSED, "prompts")


# -- python -m distill ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(files, tmp_path_factory) -> Path:
    from distill.__main__ import main

    images = tmp_path_factory.mktemp("distill_images")
    write_images(images, 2)
    folder = tmp_path_factory.mktemp("distill") / "store"
    argv = ["embed", str(images), "--out", str(folder), "--teacher", "test_vit", "--teacher-checkpoint"]
    assert main([*argv, str(files["teacher"]), "--device", "cpu", "--no-progress"]) == 0
    return folder


EMBED = ["--out", "{out}", "--teacher", "test_vit", "--teacher-checkpoint", "{teacher}", "--device", "cpu"]
TRAIN = ["train", "--store", "STORE", "--out", "{out}", "--teacher-checkpoint", "{teacher}", "--student"]
TRAIN += ["test_tinyvit", "--steps", "1", "--batch-size", "1", "--device", "cpu", "--no-progress", "--no-plot"]
EVAL = ["eval", "--store", "STORE", "--student", "test_tinyvit", "--teacher-checkpoint", "{teacher}", "--out", "{out}"]
EVAL += ["--device", "cpu", "--no-progress"]
DISTILL = [
    ("embed missing folder", ["embed", "{missing}", *EMBED], REFUSED, "does not exist"),
    ("embed a file", ["embed", "{good}", *EMBED], REFUSED, "is a file, not a folder"),
    ("embed non-image", ["embed", "{folder_nonimage}", *EMBED], OK, "1 embedded, 0 already stored, 1 unreadable"),
    ("embed truncated", ["embed", "{folder_truncated}", *EMBED], OK, "1 embedded, 0 already stored, 1 unreadable"),
    ("embed huge header", ["embed", "{folder_huge}", *EMBED], OK, "1 embedded, 0 already stored, 1 unreadable"),
    ("embed 1x1", ["embed", "{folder_one_pixel}", *EMBED], OK, "2 embedded, 0 already stored, 0 unreadable"),
    ("embed zero batch", ["embed", "{root}", *EMBED, "--batch-size", "0"], REFUSED, "--batch-size"),
    ("embed nan batch", ["embed", "{root}", *EMBED, "--batch-size", "nan"], REFUSED, "--batch-size"),
    ("embed negative shard", ["embed", "{root}", *EMBED, "--shard-size", "-1"], REFUSED, "--shard-size"),
    ("embed zero limit", ["embed", "{root}", *EMBED, "--limit", "0"], REFUSED, "--limit"),
    ("embed zero workers", ["embed", "{root}", *EMBED, "--workers", "0"], REFUSED, "--workers"),
    ("embed missing teacher", ["embed", "{root}", *EMBED[:-3], "{missing}", *EMBED[-2:]], REFUSED, "does not exist"),
    ("embed text teacher", ["embed", "{root}", *EMBED[:-3], "{text_checkpoint}", *EMBED[-2:]], REFUSED,
     "not a PyTorch file"),
    ("train nan lr", [*TRAIN, "--lr", "nan"], REFUSED, "--lr: must be a number > 0"),
    ("train +inf lr", [*TRAIN, "--lr", "inf"], REFUSED, "--lr"),
    ("train -inf weight decay", [*TRAIN, "--weight-decay", "-inf"], REFUSED, "--weight-decay"),
    ("train negative warmup", [*TRAIN, "--warmup", "-1"], REFUSED, "--warmup"),
    ("train zero steps", [*TRAIN, "--steps", "0"], REFUSED, "--steps"),
    ("train zero lr", [*TRAIN, "--lr", "0"], REFUSED, "--lr"),
    ("train out-of-range ratio", [*TRAIN, "--min-lr-ratio", "2"], REFUSED, "--min-lr-ratio"),
    ("train wrong type batch", [*TRAIN, "--batch-size", "eight"], REFUSED, "--batch-size"),
    ("train missing store", [*TRAIN[:2], "{missing}", *TRAIN[3:]], REFUSED, "no embedding store"),
    ("train missing teacher", [*TRAIN[:6], "{missing}", *TRAIN[7:]], REFUSED, "does not exist"),
    ("train text teacher", [*TRAIN[:6], "{text_checkpoint}", *TRAIN[7:]], REFUSED, "not the teacher checkpoint"),
    ("eval missing student", [*EVAL, "--student-checkpoint", "{missing}"], REFUSED, "does not exist"),
    ("eval text student", [*EVAL, "--student-checkpoint", "{text_checkpoint}"], REFUSED, "not a PyTorch file"),
    ("eval negative points", [*EVAL, "--student-checkpoint", "{teacher}", "--points", "-1"], REFUSED, "--points"),
    ("eval negative pairs", [*EVAL, "--student-checkpoint", "{teacher}", "--pairs", "-1"], REFUSED, "--pairs"),
    ("eval nan distance", [*EVAL, "--student-checkpoint", "{teacher}", "--distances", "nan"], REFUSED, "--distances"),
    ("eval negative seed", [*EVAL, "--student-checkpoint", "{teacher}", "--seed", "-1"], REFUSED, "--seed"),
    ("random teacher nan seed", ["random-teacher", "--teacher", "test_vit", "--seed", "nan", "--out", "{out}"],
     REFUSED, "--seed"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "argv", "expected", "message"), DISTILL, ids=[c[0] for c in DISTILL])
def test_distill_cli(case, argv, expected, message, files, store, tmp_path, capsys) -> None:
    from distill.__main__ import main
    from distill.store import read_index

    out = tmp_path / "out"
    argv = [str(store) if part == "STORE" else part for part in expand(argv, files, out)]
    code, text = run_main(main, [*argv, "--no-progress"] if argv[0] == "embed" else argv, capsys)
    check(code, text, expected, message)
    if expected == REFUSED:
        assert not out.exists()
    elif "1x1" in case:
        assert sorted(tuple(r.original_size) for r in read_index(out).images) == [(1, 1), (24, 32)]
    else:
        index = read_index(out)
        assert [r.path for r in index.images] == ["good.png"] and len(index.failures) == 1


# -- python -m mobile_sam.onnx export --------------------------------------------------------------------------
ONNX = [
    ("missing checkpoint", ["--checkpoint", "{missing}"], "missing.png does not exist"),
    ("folder checkpoint", ["--checkpoint", "{root}"], "is a folder"),
    ("non-checkpoint file", ["--checkpoint", "{text_checkpoint}"], "not a PyTorch file"),
    ("image as checkpoint", ["--checkpoint", "{good}"], "not a PyTorch file"),
    ("zero opset", ["--random-weights", "--opset", "0"], r"--opset: must be an integer in \[14, 20\]"),
    ("out-of-range opset", ["--random-weights", "--opset", "99"], "--opset"),
    ("nan opset", ["--random-weights", "--opset", "nan"], "--opset"),
    ("negative seed", ["--random-weights", "--seed", "-1"], "--seed"),
    ("wrong type seed", ["--random-weights", "--seed", "1e3"], "--seed"),
    ("out-of-range model", ["--random-weights", "--model", "vit_h"], "--model"),
    ("no weights", [], "one of the arguments --checkpoint --random-weights is required"),
]


@pytest.mark.parametrize(("case", "argv", "message"), ONNX, ids=[c[0] for c in ONNX])
def test_onnx_export_cli(case, argv, message, files, tmp_path, capsys) -> None:
    from mobile_sam.onnx.__main__ import main

    out = tmp_path / "out"
    code, text = run_main(main, ["export", "--out", str(out), *expand(argv, files, out)], capsys)
    check(code, text, REFUSED, message)
    assert not out.exists()


# -- python app.py ----------------------------------------------------------------------------------------------
APP = [
    ("nan budget", ["--max-everything-seconds", "nan"]),
    ("+inf budget", ["--max-everything-seconds", "inf"]),
    ("-inf budget", ["--max-everything-seconds", "-inf"]),
    ("negative queue", ["--heavy-queue", "-1"]),
    ("zero concurrency", ["--heavy-concurrency", "0"]),
    ("out-of-range port", ["--port", "70000"]),
    ("out-of-range image side", ["--max-image-side", "3"]),
    ("wrong type cache", ["--embedding-cache-items", "eight"]),
    ("wrong type boolean", ["--random-weights", "maybe"]),
]


@pytest.mark.parametrize(("case", "argv"), APP, ids=[c[0] for c in APP])
def test_app_options(case, argv, capsys) -> None:
    from webapp.config import parse_args

    code, text = run_main(parse_args, argv, capsys)
    check(code, text, REFUSED, "error: (argument )?--?" + re.escape(argv[0].lstrip("-")) + "|unrecognized")


# -- the API: /segment, /everything, /compare through their handler functions ---------------------------------
@pytest.fixture(scope="module")
def api():
    import app
    from webapp.model_store import ModelStore
    from webapp.parts import Parts

    config = app.AppConfig(random_weights=True, max_image_side=512, download=False)
    return Parts.create(config, ModelStore("cpu", download=False)).api


POINT = json.dumps({"points": [[0, 0]], "labels": [1]})
SEGMENT = [
    ("no image", None, POINT, "upload an image|no image|Upload"),
    ("missing path", "{missing}", POINT, "no such file|not found|does not exist"),
    ("non-image", "{nonimage}", POINT, "not a recognised image format"),
    ("truncated", "{truncated}", POINT, "corrupt or truncated"),
    ("huge header", "{huge}", POINT, "too large"),
    ("1x1", "{one_pixel}", POINT, None),
    ("nan point", "{good}", '{"points": [[NaN, 3]], "labels": [1]}', "NaN or infinite"),
    ("+inf point", "{good}", '{"points": [[Infinity, 3]], "labels": [1]}', "NaN or infinite"),
    ("-inf box", "{good}", '{"boxes": [[-Infinity, 0, 5, 5]]}', "NaN or infinite"),
    ("negative point", "{good}", '{"points": [[-5, 3]], "labels": [1]}', "outside"),
    ("zero-area box", "{good}", '{"boxes": [[4, 4, 4, 9]]}', "zero area"),
    ("out-of-range point", "{good}", '{"points": [[500, 3]], "labels": [1]}', "outside"),
    ("out-of-range label", "{good}", '{"points": [[5, 3]], "labels": [7]}', "labels must be 1"),
    ("wrong type prompts", "{good}", '{"points": "here"}', "points must"),
    ("not JSON", "{good}", "points at 5,3", "not valid JSON"),
]


def _path(template: str | None, files: dict[str, Path]) -> str | None:
    return None if template is None else template.format(**{k: str(v) for k, v in files.items()})


@pytest.mark.parametrize(("case", "image", "prompts", "message"), SEGMENT, ids=[c[0] for c in SEGMENT])
def test_segment_endpoint(case, image, prompts, message, files, api) -> None:
    import gradio as gr

    if message is None:
        result = api.segment(_path(image, files), prompts)
        assert result["image_size"] == [1, 1] and len(result["masks"]) == 3 and len(result["scores"]) == 3
        return
    with pytest.raises(gr.Error, match=message):
        api.segment(_path(image, files), prompts)


EVERYTHING_API = [
    ("no image", None, {}, "upload an image|no image|Upload"),
    ("missing path", "{missing}", {}, "no such file|not found|does not exist"),
    ("non-image", "{nonimage}", {}, "not a recognised image format"),
    ("truncated", "{truncated}", {}, "corrupt or truncated"),
    ("huge header", "{huge}", {}, "too large"),
    ("1x1", "{one_pixel}", {"points_per_side": 1, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}, None),
    ("nan threshold", "{good}", {"pred_iou_thresh": float("nan")}, r"pred_iou_thresh must be a number in \[0, 1\]"),
    ("+inf points", "{good}", {"points_per_side": float("inf")}, "points_per_side must be an integer"),
    ("-inf nms", "{good}", {"box_nms_thresh": float("-inf")}, "box_nms_thresh"),
    ("negative area", "{good}", {"min_mask_region_area": -5}, "min_mask_region_area must be an integer >= 0"),
    ("zero points", "{good}", {"points_per_side": 0}, "points_per_side"),
    ("out-of-range crops", "{good}", {"crop_n_layers": 4}, r"crop_n_layers must be in \[0, 3\] on this server"),
    ("wrong type points", "{good}", {"points_per_side": "many"}, "points_per_side must be an integer"),
    ("wrong type input size", "{good}", {"input_size": True}, "input_size must be an integer"),
    ("unknown mode", "{good}", {"mode": "everything"}, "mode"),
    ("unknown detector", "{good}", {"mode": "objects", "detector": "yolo9000"}, "Unknown detector"),
]


@pytest.mark.parametrize(("case", "image", "knobs", "message"), EVERYTHING_API, ids=[c[0] for c in EVERYTHING_API])
def test_everything_endpoint(case, image, knobs, message, files, api) -> None:
    import gradio as gr

    call = api.everything(_path(image, files), **knobs)
    if message is None:
        document, overlay = asyncio.run(call)
        assert [(i["height"], i["width"]) for i in document["images"]] == [(1, 1)] and overlay.shape == (1, 1, 3)
        return
    with pytest.raises(gr.Error, match=message):
        asyncio.run(call)


COMPARE_API = [
    ("no image", None, POINT, {}, "upload an image|no image|Upload"),
    ("missing path", "{missing}", POINT, {}, "no such file|not found|does not exist"),
    ("non-image", "{nonimage}", POINT, {}, "not a recognised image format"),
    ("truncated", "{truncated}", POINT, {}, "corrupt or truncated"),
    ("huge header", "{huge}", POINT, {}, "too large"),
    ("1x1 point outside", "{one_pixel}", '{"points": [[1, 0]], "labels": [1]}', {}, "outside"),
    ("nan point", "{good}", '{"points": [[NaN, 3]], "labels": [1]}', {}, "NaN or infinite"),
    ("+inf box", "{good}", '{"boxes": [[0, 0, Infinity, 5]]}', {}, "NaN or infinite"),
    ("negative point", "{good}", '{"points": [[-1, 3]], "labels": [1]}', {}, "outside"),
    ("no prompt", "{good}", "{}", {}, "at least one point or box"),
    ("out-of-range model", "{good}", POINT, {"models": '["vit_z"]'}, "vit_z"),
    ("wrong type models", "{good}", POINT, {"models": "[1, 2"}, "not a valid JSON list"),
    ("out-of-range fastsam rules", "{good}", POINT, {"fastsam_rules": "paper"}, "original, ultralytics"),
    ("out-of-range reference", "{good}", POINT, {"reference": "vit_z"}, "vit_z"),
]


@pytest.mark.parametrize(("case", "image", "prompts", "knobs", "message"), COMPARE_API, ids=[c[0] for c in COMPARE_API])
def test_compare_endpoint(case, image, prompts, knobs, message, files, api) -> None:
    import gradio as gr

    with pytest.raises(gr.Error, match=message):
        asyncio.run(api.compare(_path(image, files), prompts, **knobs))


def test_the_sweep_covers_every_kind_of_bad_input() -> None:
    """Each kind of input appears in the tables above (the count is printed for the record)."""
    tables = {"everything": EVERYTHING, "compare": COMPARE, "distill": DISTILL, "onnx": ONNX, "app": APP}
    tables |= {"/segment": SEGMENT, "/everything": EVERYTHING_API, "/compare": COMPARE_API}
    kinds = ("missing", "non-image", "truncated", "1x1", "huge", "nan", "+inf", "-inf", "negative", "zero",
             "out-of-range", "wrong type")  # fmt: skip
    names = " ".join(case[0] for table in tables.values() for case in table)
    assert [kind for kind in kinds if kind not in names] == []
    count = sum(len(table) for table in tables.values()) + 2  # + test_compare_user_prompts_with_bad_values
    print(f"bad-input sweep: {count} cases")
