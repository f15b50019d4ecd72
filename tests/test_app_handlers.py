"""The app's tab handlers (webapp/), called directly with a random-weight MobileSAM (masks are meaningless)."""

import asyncio
import json
import zipfile

import numpy as np
import pytest
from PIL import Image
from support.app_images import photo, write_bad_inputs

import app
from mobile_sam import SamPredictor
from mobile_sam.utils.rle import rle_to_mask
from webapp import compare_tab
from webapp.everything_jobs import EverythingSettings
from webapp.model_store import ModelStore
from webapp.parts import Parts
from webapp.segment import SegmentState, resize_mask
from webapp.uploads import read_upload

FG, BG, BOX = "Foreground point", "Background point", "Box (drag, or click two corners)"
CANVAS, GALLERY, INFO, SELECTED = range(4)


@pytest.fixture(scope="module")
def parts() -> Parts:
    config = app.AppConfig(random_weights=True, max_image_side=512, download=False)
    return Parts.create(config, ModelStore("cpu", download=False))


@pytest.fixture(scope="module")
def seg(parts):
    return parts.segment


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.png"
    Image.fromarray(photo((48, 72), seed=2)).save(path)
    return path


@pytest.fixture(scope="module")
def loaded(seg, image_path) -> SegmentState:
    return seg.load_image(str(image_path), True)


@pytest.fixture(scope="module")
def clicked(seg, loaded) -> SegmentState:
    return seg.click(loaded, FG, 30, 20, True)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return write_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_loading_an_image_shows_it_and_encodes_it_once(seg, loaded, image_path):
    np.testing.assert_array_equal(loaded.image, np.array(Image.open(image_path)))
    assert "encoded in" in seg.render(loaded, True)[INFO]
    assert seg.store.embedding("vit_t", True, loaded.image)[1]  # already cached


def test_a_foreground_click_gives_three_candidates_equal_to_the_predictor(seg, clicked):
    predictor = SamPredictor(seg.store.model("vit_t", True))
    predictor.set_image(clicked.image)
    masks, scores, _ = predictor.predict(point_coords=np.array([[30.0, 20.0]]), point_labels=np.array([1]))
    assert clicked.candidates and len(seg.render(clicked, True)[GALLERY]) == 3
    np.testing.assert_array_equal(clicked.masks, masks)
    np.testing.assert_allclose(clicked.scores, scores, atol=1e-6)
    assert clicked.selected == int(np.argmax(scores))


def test_candidate_captions_show_the_predicted_iou(seg, clicked):
    captions = [caption for _, caption in seg.render(clicked, True)[GALLERY]]
    assert all(f"{score:.3f}" in caption for score, caption in zip(clicked.scores, captions))


def test_the_canvas_shows_the_chosen_mask_and_the_marker_but_the_model_image_is_clean(seg, loaded, clicked):
    scale = clicked.display_scale
    mask = resize_mask(clicked.masks[clicked.selected], clicked.display.shape[:2])
    canvas = seg.render(clicked, True)[CANVAS]
    np.testing.assert_array_equal(clicked.image, loaded.image)  # markers never reach the model's image
    if mask.any():
        assert (canvas[mask] != clicked.display[mask]).any()
    y, x = round(20 * scale), round(30 * scale)
    assert (canvas[y, x] != clicked.display[y, x]).any()  # the marker


def test_the_gallery_highlights_the_current_candidate_after_every_prompt(seg, clicked):
    other = seg.choose(clicked, (clicked.selected + 1) % 3)
    again = seg.click(other, FG, 10, 10, True)  # a new prompt: the best candidate is selected again
    assert seg.render(again, True)[SELECTED] == again.selected == int(np.argmax(again.scores))


def test_choosing_another_candidate_changes_the_downloaded_mask(seg, clicked):
    other = (clicked.selected + 1) % 3
    chosen = seg.choose(clicked, other)
    mask_path, _, _ = seg.write_downloads(chosen, None)
    np.testing.assert_array_equal(np.array(Image.open(mask_path)) > 0, clicked.masks[other])


def test_downloads_hold_the_chosen_mask_as_png_rgba_and_coco_rle(seg, clicked):
    mask = clicked.masks[clicked.selected]
    mask_path, cutout_path, coco_path = seg.write_downloads(clicked, None)
    np.testing.assert_array_equal(np.array(Image.open(mask_path)) > 0, mask)
    cutout = np.array(Image.open(cutout_path))
    assert cutout.shape == (*mask.shape, 4)
    np.testing.assert_array_equal(cutout[..., 3] > 0, mask)
    document = json.loads(open(coco_path).read())
    np.testing.assert_array_equal(rle_to_mask(document["annotations"][0]["segmentation"]), mask)


def test_box_by_two_clicks_waits_for_the_second_corner(seg, loaded):
    first = seg.click(loaded, BOX, 5, 5, True)
    assert first.clicks.pending_corner == (5, 5) and first.masks is None
    second = seg.click(first, BOX, 40, 30, True)
    assert second.clicks.boxes == ((5, 5, 40, 30),) and second.clicks.pending_corner is None
    assert second.masks is not None


def test_a_zero_area_box_gives_a_message_and_adds_nothing(seg, loaded):
    second = seg.click(seg.click(loaded, BOX, 10, 10, True), BOX, 10, 30, True)
    assert second.clicks.boxes == () and "zero area" in seg.render(second, True)[INFO]


def test_a_dragged_box_is_added_like_a_clicked_one(seg, loaded):
    out = seg.drag_box(loaded, [40, 30, 5, 5], True)
    assert out.clicks.boxes == ((5, 5, 40, 30),) and out.masks is not None


def test_several_boxes_give_one_mask_per_box(seg, loaded):
    out = seg.drag_box(seg.drag_box(loaded, [2, 2, 30, 30], True), [35, 5, 70, 40], True)
    assert not out.candidates and out.masks.shape[0] == 2 and len(seg.render(out, True)[GALLERY]) == 2
    document = json.loads(open(seg.write_downloads(out, None)[2]).read())
    assert len(document["annotations"]) == 2


def test_undo_removes_the_last_prompt_and_clear_removes_all(seg, clicked):
    state = seg.click(clicked, BG, 60, 40, True)
    assert state.clicks.labels == (1, 0)
    undone = seg.undo(state, True)
    assert undone.clicks.points == ((30, 20),) and undone.clicks.labels == (1,)
    cleared = seg.clear(state, True)
    assert cleared.clicks.points == () and cleared.masks is None
    np.testing.assert_array_equal(seg.render(cleared, True)[CANVAS], state.display)


def test_clear_removes_the_stale_decoder_latency(seg, clicked):
    assert "mask decoder" in seg.render(clicked, True)[INFO]
    info = seg.render(seg.clear(clicked, True), True)[INFO]
    assert "mask decoder" not in info and "Image encoder" in info


def test_a_click_before_any_image_asks_for_an_image(seg):
    out = seg.render(seg.click(SegmentState(), FG, 1, 1, True), True)
    assert "Upload an image" in out[INFO] and out[CANVAS] is None


def test_only_background_points_give_a_message_instead_of_a_mask(seg, loaded):
    out = seg.click(loaded, BG, 10, 10, True)
    assert out.masks is None and "Only background points" in seg.render(out, True)[INFO]


def test_a_click_in_another_mode_drops_a_half_drawn_box(seg, loaded):
    pending = seg.click(loaded, BOX, 5, 5, True)
    out = seg.click(pending, FG, 30, 20, True)
    assert out.clicks.pending_corner is None and out.clicks.points == ((30, 20),) and out.masks is not None


def test_random_weights_put_the_warning_in_every_message(seg, loaded):
    assert "meaningless" in seg.render(loaded, True)[INFO]


@pytest.mark.parametrize("name", ["corrupt", "truncated"])
def test_unreadable_files_give_a_readable_message(seg, bad_inputs, name):
    out = seg.load_image(str(bad_inputs[name]), True)
    info = seg.render(out, True)[INFO]
    assert out.image is None and "Cannot read image" in info and name in info


def test_a_file_that_is_not_an_image_gives_a_message(seg, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    out = seg.load_image(str(text), True)
    assert out.image is None and "Cannot read image 'notes.txt'" in seg.render(out, True)[INFO]


@pytest.mark.parametrize("name", ["sixteen_bit", "grayscale", "rgba", "cmyk"])
def test_unusual_but_valid_images_are_read_as_rgb(bad_inputs, name):
    upload = read_upload(str(bad_inputs[name]), 512)
    assert (
        upload.image.shape == (40, 60, 3)
        and upload.image.dtype == np.uint8
        and upload.notice == ""
        and upload.scale == 1.0
    )


def test_exif_rotated_photos_are_shown_upright(bad_inputs):
    assert read_upload(str(bad_inputs["exif_rotated"]), 512).image.shape == (60, 40, 3)


def test_huge_images_are_downscaled_with_a_notice(seg, bad_inputs):
    upload = read_upload(str(bad_inputs["huge"]), 512)
    assert (
        upload.image.shape == (128, 512, 3)
        and "downscaled" in upload.notice
        and upload.scale == pytest.approx(512 / 1200)
    )
    assert "downscaled" in seg.render(seg.load_image(str(bad_inputs["huge"]), True), True)[INFO]


def test_a_one_pixel_image_is_shown_enlarged_and_can_be_segmented(seg, bad_inputs):
    state = seg.load_image(str(bad_inputs["one_pixel"]), True)
    canvas = seg.render(state, True)[CANVAS]
    assert min(canvas.shape[:2]) >= 64  # the canvas does not collapse
    out = seg.click(state, FG, 0, 0, True)
    assert out.masks.shape == (3, 1, 1)


def test_large_images_are_drawn_at_display_size_and_clicks_map_back(seg, tmp_path):
    path = tmp_path / "large.png"
    Image.fromarray(photo((1536, 2048), seed=3)).save(path)
    parts = Parts.create(app.AppConfig(random_weights=True, max_image_side=2048), seg.store)
    state = parts.segment.load_image(str(path), True)
    clicked = parts.segment.click(state, FG, 1000, 700, True)
    canvas = parts.segment.render(clicked, True)[CANVAS]
    assert max(canvas.shape[:2]) == 1024 and clicked.masks.shape[1:] == (1536, 2048)
    assert state.display_scale == pytest.approx(0.5)


def test_missing_weights_say_which_file_to_get_without_server_paths(tmp_path, image_path):
    parts = Parts.create(app.AppConfig(download=False), ModelStore("cpu", checkpoint_dir=tmp_path, download=False))
    out = parts.segment.load_image(str(image_path), False)
    info = parts.segment.render(out, False)[INFO]
    assert "mobile_sam.pt" in info and str(tmp_path) not in info and "Random weights" in info
    assert out.image is not None  # the image stays loaded: ticking random weights still works


def test_everything_returns_an_overlay_a_count_coco_json_and_a_zip_with_progress(parts, image_path):
    fractions = []
    settings = EverythingSettings.checked(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    answer = asyncio.run(
        parts.everything.answer(
            str(image_path), settings, True, None, progress=lambda fraction, desc=None: fractions.append(fraction)
        )
    )
    coco_path, zip_path = parts.everything.write_downloads(answer, None)
    annotations = json.loads(open(coco_path).read())["annotations"]
    assert answer.result.overlay.shape == (48, 72, 3) and len(annotations) >= 1
    assert f"{len(annotations)} masks" in answer.summary() and fractions[-1] == 1.0
    with zipfile.ZipFile(zip_path) as archive:
        assert len(archive.namelist()) == len(annotations)
        first = np.array(Image.open(archive.open(archive.namelist()[0]))) > 0
    np.testing.assert_array_equal(first, rle_to_mask(annotations[0]["segmentation"]))
    again = asyncio.run(parts.everything.answer(str(image_path), settings, True, None))
    assert again.cached and again.result is answer.result and "from the cache" in again.summary()


def test_everything_downloads_agree_with_the_answer_in_the_uploaded_photos_pixels(parts, tmp_path):
    path = tmp_path / "street.jpg"
    Image.fromarray(photo((150, 200), seed=4)).save(path)
    settings = EverythingSettings.checked(
        points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, input_size=64
    )
    answer = asyncio.run(parts.everything.answer(str(path), settings, True, None))
    coco_path, zip_path = parts.everything.write_downloads(answer, None)
    document = json.loads(open(coco_path).read())
    assert coco_path.endswith("street_everything.json") and zip_path.endswith("street_masks.zip")
    assert document == json.loads(json.dumps(answer.coco()))
    assert document["images"][0] | {"id": 1} == {"id": 1, "file_name": "street.jpg", "height": 150, "width": 200}
    assert answer.result.working_size == (48, 64) and answer.result.overlay.shape == (48, 64, 3)
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(archive.namelist())
        assert len(names) == len(document["annotations"]) >= 1
        for name, annotation in zip(names, document["annotations"]):
            png = np.array(Image.open(archive.open(name))) > 0
            np.testing.assert_array_equal(png, rle_to_mask(annotation["segmentation"]))
            assert png.shape == (150, 200)


def test_compare_reports_miou_against_the_reference_for_every_model(parts, clicked):
    cases = compare_tab.user_prompts(clicked.clicks.prompts(), clicked.image.shape[:2])
    result = asyncio.run(parts.compare.answer(clicked.image, cases, "vit_t", ["fastsam-s"], True, None))
    assert [row.model for row in result.rows] == ["vit_t", "fastsam-s"]
    assert result.rows[0].miou is None and 0.0 <= result.rows[1].miou <= 1.0
    assert result.masks["fastsam-s"][0].shape == clicked.image.shape[:2]
    assert all(row.encoder_ms > 0 and row.status == "ok" for row in result.rows)


@pytest.mark.parametrize("rules", ["original", "ultralytics"])
def test_compare_fastsam_follows_the_chosen_rules_and_the_summary_says_which(parts, clicked, rules, monkeypatch):
    from support.fastsam_peer import ultralytics_selection

    from compare import FastSamBackend
    from compare.fastsam_rules import select_by_points
    from samkit.prompts import Prompts
    from webapp.compare_prepared import PreparedBackends

    def prepare(name, variant, image):  # FastSAM keeping every detection: random weights find none at conf 0.4
        if name != "fastsam-s":
            return parts.compare._prepare(name, variant, image)
        backend = FastSamBackend("s", model=parts.compare.store.model(name, True), image_size=128, confidence=0.0)
        return backend, backend.prepare(image)["encoder_ms"]

    monkeypatch.setattr(parts.compare, "prepared", PreparedBackends(prepare))
    instances = parts.compare.prepared.get("fastsam-s", True, clicked.image)[0].instances
    assert instances.shape[0] > 0
    y, x = np.argwhere(instances[0])[0]
    # a background then a foreground point on one pixel of an instance: "original" keeps it, "ultralytics" drops it
    cases = [Prompts.from_lists([[x, y], [x, y]], [0, 1]), *compare_tab.protocol_prompts(clicked.image.shape[:2], 2, 2)]
    result = asyncio.run(
        parts.compare.answer(clicked.image, cases, "vit_t", ["fastsam-s"], True, None, fastsam_rules=rules)
    )
    assert result.masks["fastsam-s"][0].any() == (rules == "original")
    for case, mask in zip(cases, result.masks["fastsam-s"]):
        if rules == "ultralytics":
            expected = ultralytics_selection(instances, case.point_coords, case.point_labels)
        else:
            expected = select_by_points(instances, case.point_coords, case.point_labels, "original")
        assert np.array_equal(mask, expected)
    assert f"FastSAM's masks follow the '{rules}' prompt rules" in compare_tab.summary(result, len(cases), rules)
    without = asyncio.run(parts.compare.answer(clicked.image, cases, "vit_t", ["vit_t"], True, None))
    assert "FastSAM" not in compare_tab.summary(without, len(cases), rules)


def test_compare_runs_the_seeded_random_point_protocol(parts, clicked):
    cases = compare_tab.protocol_prompts(clicked.image.shape[:2], 3, 0)
    result = asyncio.run(parts.compare.answer(clicked.image, cases, "vit_t", ["fastsam-s"], True, None))
    gallery = compare_tab.gallery(result, clicked.display, clicked.display_scale, cases)
    assert [row[0] for row in compare_tab.table(result)] == ["MobileSAM", "FastSAM-s"]
    assert len(gallery) == 2 and compare_tab.latency_figure(result) is not None
    assert all(len(masks) == 3 for masks in result.masks.values())


def test_compare_runs_efficientvit_sam_with_the_miou_of_its_own_predictor(parts, clicked):
    """EfficientViT-SAM-L0 (random weights) in the tab: its row's mIoU and masks are those of mobile_sam's
    SamPredictor on the store's models, one point asking for three masks and keeping the best."""
    assert {"efficientvit_sam_l0", "efficientvit_sam_xl0"} <= set(parts.compare.compared())
    cases = compare_tab.protocol_prompts(clicked.image.shape[:2], 2, 1)
    result = asyncio.run(parts.compare.answer(clicked.image, cases, "vit_t", ["efficientvit_sam_l0"], True, None))
    best = {}
    for name in ("vit_t", "efficientvit_sam_l0"):
        predictor = SamPredictor(parts.compare.store.model(name, True))
        predictor.set_image(clicked.image)
        best[name] = []
        for case in cases:
            masks, scores, _ = predictor.predict(case.point_coords, case.point_labels, multimask_output=True)
            best[name].append(masks[np.argmax(scores)])
    ious = [(a & b).sum() / (a | b).sum() for a, b in zip(best["efficientvit_sam_l0"], best["vit_t"])]
    row = result.rows[1]
    assert row.model == "efficientvit_sam_l0" and row.status == "ok" and row.miou == pytest.approx(np.mean(ious))
    assert all(np.array_equal(a, b) for a, b in zip(result.masks["efficientvit_sam_l0"], best["efficientvit_sam_l0"]))
    assert (
        row.encoder_ms > 0 and row.decoder_ms > 0 and row.total_ms == pytest.approx(row.encoder_ms + 2 * row.decoder_ms)
    )
    assert compare_tab.table(result)[1][0] == "EfficientViT-SAM-L0"


def test_compare_refuses_models_off_the_allow_list(image_path):
    parts = Parts.create(
        app.AppConfig(random_weights=True, models="vit_t,fastsam-s"), ModelStore("cpu", download=False)
    )
    with pytest.raises(ValueError, match="does not run vit_h"):
        parts.compare.check([], "vit_h", ["vit_t"])
    assert parts.compare.references() == ["vit_t"]


def test_the_status_panel_says_what_to_download_without_server_paths(tmp_path):
    from webapp.status import status_markdown

    text = status_markdown(
        ModelStore("cpu", checkpoint_dir=tmp_path, download=False), ["vit_t", "vit_b", "vit_h", "fastsam-x"]
    )
    for name in ("mobile_sam.pt", "sam_vit_b_01ec64.pth", "sam_vit_h_4b8939.pth", "FastSAM-x.pt"):
        assert name in text
    assert "**missing**" in text and "https://" in text and str(tmp_path) not in text


def test_turning_random_weights_off_without_checkpoints_explains_what_to_download(tmp_path, loaded):
    parts = Parts.create(app.AppConfig(download=False), ModelStore("cpu", checkpoint_dir=tmp_path, download=False))
    out = parts.segment.change_weights(loaded, False)
    info = parts.segment.render(out, False)[INFO]
    assert out.masks is None and "mobile_sam.pt" in info and "meaningless" not in info


def test_object_aware_mode_segments_from_detector_boxes(parts, image_path):
    settings = EverythingSettings()
    answer = asyncio.run(
        parts.everything.answer(str(image_path), settings, True, None, mode="objects", detector="fastsam-s")
    )
    assert answer.result.overlay.shape == (48, 72, 3) and "masks in" in answer.summary()
    grid = asyncio.run(
        parts.everything.answer(str(image_path), EverythingSettings.checked(points_per_side=4), True, None)
    )
    assert grid.result is not answer.result  # separate cache entries per mode
    with pytest.raises(ValueError, match="Unknown detector"):
        asyncio.run(parts.everything.answer(str(image_path), settings, True, None, mode="objects", detector="yolo"))


def test_everything_reuses_the_embedding_the_segment_tab_computed(parts, loaded, image_path, monkeypatch):
    encoder = parts.store.model("vit_t", True).image_encoder

    def no_second_encoding(*args, **kwargs):
        raise AssertionError("the image was encoded again")

    monkeypatch.setattr(encoder, "forward", no_second_encoding)
    settings = EverythingSettings.checked(points_per_side=3, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    answer = asyncio.run(parts.everything.answer(str(image_path), settings, True, None))
    assert not answer.cached and answer.result.image_size == loaded.image.shape[:2]


def test_queued_canvas_clicks_and_boxes_are_all_applied_in_order(seg, loaded):
    assert loaded.display_scale == pytest.approx(4 / 3)  # 48x72 is shown at 64x96; actions come in display pixels
    actions = [{"click": [12 + 12 * i, 24]} for i in range(5)] + [{"box": [8, 8, 48, 40]}]
    out = seg.canvas_actions(loaded, FG, json.dumps(actions), True)
    np.testing.assert_allclose(out.clicks.points, [(9.0 + 9 * i, 18.0) for i in range(5)])
    np.testing.assert_allclose(out.clicks.boxes, [(6, 6, 36, 30)])
    assert seg.canvas_actions(loaded, FG, "not json", True) is loaded
    assert seg.canvas_actions(loaded, FG, '[{"click": ["a", 1]}, 3]', True).clicks.points == ()


def test_the_everything_comparison_is_budgeted_and_cached(parts, loaded):
    from everything.pipelines import PIPELINES
    from webapp import everything_compare
    from webapp.everything_jobs import BudgetExceeded

    settings = EverythingSettings.checked(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    first, working, cached = asyncio.run(
        parts.everything_compare.answer(loaded.image, ["grid"], "grid", settings, True, None)
    )
    again, _, from_cache = asyncio.run(
        parts.everything_compare.answer(loaded.image, ["grid"], "grid", settings, True, None)
    )
    assert not cached and from_cache and again is first
    assert working.shape == loaded.image.shape
    assert everything_compare.table(first)[0][:2] == ["grid", str(len(first.runs[0].records))]
    assert [caption for _, caption in everything_compare.overlays(first, working)] == [
        f"grid: {len(first.runs[0].records)} masks"
    ]
    heavy = EverythingSettings.checked(points_per_side=64, crop_n_layers=3, input_size=2048)
    with pytest.raises(BudgetExceeded, match="in 3 jobs"):
        asyncio.run(parts.everything_compare.answer(loaded.image, list(PIPELINES), "grid", heavy, True, None))
    with pytest.raises(ValueError, match="must be one of the chosen pipelines"):
        asyncio.run(parts.everything_compare.answer(loaded.image, ["grid"], "mobilesamv2", settings, True, None))
