"""The public API through gradio_client against the app served on 127.0.0.1 (random-weight MobileSAM)."""

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from support.app_images import photo, write_bad_inputs
from support.app_server import served_app

import app
from mobile_sam import SamAutomaticMaskGenerator, SamPredictor
from mobile_sam.utils.rle import rle_to_mask
from webapp.model_store import ModelStore

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

MAX_SIDE = 512


@pytest.fixture(scope="module")
def server():
    store = ModelStore("cpu", download=False)
    config = app.AppConfig(random_weights=True, max_image_side=MAX_SIDE, download=False, max_file_size="1mb")
    with served_app(config, store) as url:
        yield url, store


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server[0], verbose=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for seed in range(8):
        path = folder / f"photo{seed}.png"
        Image.fromarray(photo((40 + 4 * seed, 56), seed=seed)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return write_bad_inputs(tmp_path_factory.mktemp("bad"))


def _segment(client: Client, path, prompts: dict, multimask: bool = True) -> dict:
    return client.predict(handle_file(str(path)), json.dumps(prompts), multimask, api_name="/segment")


def _direct(store: ModelStore, path, **prompt) -> tuple[np.ndarray, np.ndarray]:
    predictor = SamPredictor(store.model("vit_t", random_weights=True))
    predictor.set_image(np.array(Image.open(path).convert("RGB")))
    masks, scores, _ = predictor.predict(**prompt)
    return masks, scores


def _masks(result: dict) -> np.ndarray:
    return np.stack([rle_to_mask(rle) for rle in result["masks"]])


def test_the_api_lists_exactly_the_public_endpoints(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert endpoints == {"/segment", "/everything", "/compare", "/compare_everything"}


def test_segment_returns_the_masks_and_scores_of_a_direct_predictor_call(server, client, images):
    result = _segment(client, images[0], {"points": [[20, 15]], "labels": [1]})
    masks, scores = _direct(server[1], images[0], point_coords=np.array([[20.0, 15.0]]), point_labels=np.array([1]))
    np.testing.assert_array_equal(_masks(result), masks)
    np.testing.assert_allclose(result["scores"], scores, atol=1e-6)
    assert result["candidates"] and result["random_weights"]


def test_segment_gives_one_mask_per_box(client, images):
    result = _segment(client, images[1], {"boxes": [[2, 2, 20, 20], [25, 10, 50, 35]]})
    assert len(result["masks"]) == 2 and not result["candidates"]


def test_segment_everything_returns_coco_records_and_an_overlay(client, images):
    document, overlay = client.predict(
        handle_file(str(images[2])), 4, 0.0, 0.0, 0.7, 0, 0, 1024, api_name="/everything"
    )
    assert document["images"][0]["height"] == 48 and document["images"][0]["width"] == 56
    assert len(document["annotations"]) >= 1 and "masks in" in document["summary"]
    assert rle_to_mask(document["annotations"][0]["segmentation"]).shape == (48, 56)
    assert np.array(Image.open(overlay)).shape[:2] == (48, 56)


def test_compare_returns_a_row_per_model_with_miou_and_latency(client, images):
    rows = client.predict(
        handle_file(str(images[3])),
        json.dumps({"points": [[10, 10]], "labels": [1]}),
        '["fastsam-s"]',
        "vit_t",
        api_name="/compare",
    )
    assert [row["model"] for row in rows] == ["vit_t", "fastsam-s"]
    assert 0.0 <= rows[1]["miou"] <= 1.0 and rows[1]["encoder_ms"] > 0 and rows[0]["decoder_ms"] > 0


def test_compare_everything_gives_each_pipelines_masks_latency_and_agreement(server, client, images):
    knobs = (4, 0.0, 0.0, 0.7, 0, 0, 1024)  # the grid's: points per side, filters off, NMS, crops, area, size
    result = client.predict(
        handle_file(str(images[4])), "grid, mobilesam-boxes", "grid", *knobs, api_name="/compare_everything"
    )
    grid = SamAutomaticMaskGenerator(
        server[1].model("vit_t", random_weights=True),
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    ).generate(np.array(Image.open(images[4]).convert("RGB")))
    assert result["random_weights"] and result["note"] == "random weights: meaningless masks"
    assert [row["pipeline"] for row in result["rows"]] == ["grid", "mobilesam-boxes"]
    reference, boxes = result["rows"]
    assert (reference["status"], reference["masks"], reference["recall_50"]) == ("reference", len(grid), 1.0)
    assert boxes["status"] == "ok" and boxes["detector_ms"] > 0 and reference["encoder_ms"] > 0
    with pytest.raises(AppError, match="too large for this server"):
        client.predict(handle_file(str(images[4])), "grid", "grid", 64, 0.88, 0.95, 0.7, 3, 0, 2048,
                       api_name="/compare_everything")  # fmt: skip
    with pytest.raises(AppError, match="Unknown pipeline 'mobilesamv3'"):
        client.predict(handle_file(str(images[4])), "grid,mobilesamv3", "grid", api_name="/compare_everything")


@pytest.mark.parametrize("name", ["corrupt", "truncated"])
def test_unreadable_uploads_give_a_readable_error(client, bad_inputs, name):
    with pytest.raises(AppError, match=f"Cannot read image '{bad_inputs[name].name}'"):
        _segment(client, bad_inputs[name], {"points": [[1, 1]], "labels": [1]})


@pytest.mark.parametrize("name", ["sixteen_bit", "grayscale", "rgba", "cmyk"])
def test_unusual_formats_are_segmented(client, bad_inputs, name):
    result = _segment(client, bad_inputs[name], {"points": [[30, 20]], "labels": [1]})
    assert result["image_size"] == [40, 60] and len(result["masks"]) == 3


def test_exif_rotated_uploads_are_segmented_upright(client, bad_inputs):
    result = _segment(client, bad_inputs["exif_rotated"], {"points": [[20, 50]], "labels": [1]})
    assert result["image_size"] == [60, 40]


def test_huge_uploads_are_downscaled_and_prompts_follow(client, bad_inputs):
    result = _segment(client, bad_inputs["huge"], {"points": [[1100, 250]], "labels": [1]})
    assert result["image_size"] == [128, 512] and "downscaled" in result["notice"]
    assert result["scale"] == pytest.approx(128 / 300)


def test_a_one_pixel_upload_is_segmented(client, bad_inputs):
    result = _segment(client, bad_inputs["one_pixel"], {"points": [[0, 0]], "labels": [1]})
    assert result["image_size"] == [1, 1]


def test_prompts_without_an_image_give_a_readable_error(client):
    with pytest.raises(AppError, match="Upload an image"):
        client.predict(None, json.dumps({"points": [[1, 1]], "labels": [1]}), True, api_name="/segment")


def test_a_zero_area_box_gives_a_readable_error(client, images):
    with pytest.raises(AppError, match="zero area"):
        _segment(client, images[0], {"boxes": [[5, 5, 5, 30]]})


def test_malformed_prompt_json_gives_a_readable_error(client, images):
    with pytest.raises(AppError, match="not valid JSON"):
        client.predict(handle_file(str(images[0])), "{points", True, api_name="/segment")


def test_uploads_over_the_size_limit_are_refused(client, tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 1_000_000
    with pytest.raises(Exception, match="(?i)size|large|exceed"):
        _segment(client, big, {"points": [[1, 1]], "labels": [1]})


def test_eight_concurrent_clients_each_get_the_masks_for_their_own_inputs(server, images):
    url, store = server
    results: dict[int, dict] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            point = [10 + 3 * index, 12 + 2 * index]
            results[index] = _segment(Client(url, verbose=False), images[index], {"points": [point], "labels": [1]})
        except BaseException as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors and len(results) == 8
    for index in range(8):
        point = np.array([[10.0 + 3 * index, 12.0 + 2 * index]])
        masks, scores = _direct(store, images[index], point_coords=point, point_labels=np.array([1]))
        np.testing.assert_array_equal(_masks(results[index]), masks, err_msg=f"client {index}")
        np.testing.assert_allclose(results[index]["scores"], scores, atol=1e-6, err_msg=f"client {index}")
    after = _segment(Client(url, verbose=False), images[0], {"points": [[5, 5]], "labels": [1]})
    assert len(after["masks"]) == 3


def test_out_of_bounds_points_are_reported_in_the_callers_coordinates(client, bad_inputs):
    with pytest.raises(AppError, match=r"Point \(1300, 250\) lies outside the 1200x300 image"):
        _segment(client, bad_inputs["huge"], {"points": [[1300, 250]], "labels": [1]})


def test_masks_of_a_downscaled_upload_say_their_size(client, bad_inputs):
    result = _segment(client, bad_inputs["huge"], {"points": [[1100, 250]], "labels": [1]})
    assert result["mask_size"] == [128, 512] and result["original_size"] == [300, 1200]
    assert rle_to_mask(result["masks"][0]).shape == (128, 512) and "mask_size" in result["notice"]


def test_handled_errors_are_not_logged_with_a_traceback(client, images, capfd):
    capfd.readouterr()
    for _ in range(3):
        with pytest.raises(AppError):
            _segment(client, images[0], {"points": [[-5, 5]], "labels": [1]})
    assert "Traceback" not in "".join(capfd.readouterr())


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ((0, 0.88, 0.95, 0.7, 0, 0, 512), "points_per_side must be an integer in \\[1, 1024\\], got 0"),
        ((4, -1.0, 0.95, 0.7, 0, 0, 512), "pred_iou_thresh must be a number in \\[0, 1\\], got -1.0"),
        ((4, 0.88, 7.0, 0.7, 0, 0, 512), "stability_score_thresh must be a number in \\[0, 1\\]"),
        ((4, 0.88, 0.95, 0.7, -3, 0, 512), "crop_n_layers must be an integer in \\[0, 5\\]"),
        ((4, 0.88, 0.95, 0.7, 0, -10, 512), "min_mask_region_area must be an integer >= 0"),
        ((4, 0.88, 0.95, 0.7, 0, 0, 16), "input_size must be in \\[64, 2048\\] on this server"),
        ((65, 0.88, 0.95, 0.7, 0, 0, 512), "points_per_side must be in \\[1, 64\\] on this server"),
        ((4.5, 0.88, 0.95, 0.7, 0, 0, 512), "points_per_side must be an integer"),
    ],
)
def test_everything_settings_out_of_range_are_refused_with_their_rule(client, images, knobs, message):
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(images[2])), *knobs, api_name="/everything")


# -- /everything on a photo larger than the working copy: masks in the uploaded image's pixels -------------------
WORKING_SIDE = 128
EVERYTHING_KNOBS = (4, 0.0, 0.0, 0.7, 0, 0, WORKING_SIDE)  # every candidate kept, working copy's longest side 128


def _working_masks(store: ModelStore, upload: np.ndarray) -> list[dict]:
    """The official grid generator's records on the working copy, made here with OpenCV's INTER_AREA resize."""
    from mobile_sam import SamAutomaticMaskGenerator

    height, width = upload.shape[:2]
    scale = WORKING_SIDE / max(height, width)
    working = cv2.resize(upload, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    generator = SamAutomaticMaskGenerator(
        store.model("vit_t", random_weights=True),
        points_per_side=4,
        points_per_batch=16,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
        box_nms_thresh=0.7,
    )
    return generator.generate(working)


def test_everything_gives_masks_in_the_uploaded_photos_pixels(server, client, tmp_path):
    from pycocotools import mask as mask_utils

    path = tmp_path / "wide.jpg"
    Image.fromarray(photo((300, 420), seed=11)).save(path, quality=95)
    upload = np.array(Image.open(path).convert("RGB"))
    document, overlay = client.predict(handle_file(str(path)), *EVERYTHING_KNOBS, api_name="/everything")
    working = _working_masks(server[1], upload)

    assert document["images"][0] | {"id": 1} == {"id": 1, "file_name": "wide.jpg", "height": 300, "width": 420}
    assert document["mask_size"] == [300, 420] and document["original_size"] == [300, 420]
    assert document["working_size"] == [91, 128] and document["mask_resize"] == "nearest"
    assert np.array(Image.open(overlay)).shape[:2] == (91, 128)
    assert "91" in document["summary"] and "420x300" in document["summary"]
    assert len(document["annotations"]) == len(working) >= 1
    for annotation, record in zip(document["annotations"], working):
        rle = dict(annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode())
        mask = mask_utils.decode(rle).astype(bool)  # pycocotools' own decoder
        assert mask.shape == (300, 420)
        resized = np.array(Image.fromarray(record["segmentation"]).resize((420, 300), Image.NEAREST))
        assert (mask & resized).sum() / max((mask | resized).sum(), 1) >= 0.99
        assert annotation["area"] == mask.sum()
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # the generator's XYWH convention: (x1, y1) is the last pixel inside
        expected = [columns[0], rows[0], columns[-1] - columns[0], rows[-1] - rows[0]]
        assert annotation["bbox"] == [int(v) for v in expected]
        np.testing.assert_allclose(
            annotation["point_coords"], np.multiply(record["point_coords"], [420 / 128, 300 / 91])
        )
        assert annotation["crop_box"] == [0, 0, 420, 300]
        assert annotation["predicted_iou"] == pytest.approx(record["predicted_iou"], abs=1e-5)


def test_everything_on_an_upload_over_the_side_limit_gives_the_servers_copy_and_says_so(client, bad_inputs):
    document, _ = client.predict(handle_file(str(bad_inputs["huge"])), *EVERYTHING_KNOBS, api_name="/everything")
    assert document["mask_size"] == [128, 512] and document["original_size"] == [300, 1200]
    assert (document["images"][0]["height"], document["images"][0]["width"]) == (128, 512)
    assert rle_to_mask(document["annotations"][0]["segmentation"]).shape == (128, 512)
    assert "downscaled" in document["notice"] and "downscaled" in document["summary"]
