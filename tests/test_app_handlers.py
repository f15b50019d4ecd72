"""The app's event handlers, called directly with a random-weight MobileSAM (masks are meaningless)."""
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

import app
from app_images import photo, write_bad_inputs
from mobile_sam import SamPredictor
from mobile_sam.export import rle_to_mask
from mobile_sam.model_store import ModelStore

STATE, CANVAS, GALLERY, INFO, MASK_FILE, CUTOUT_FILE, COCO_FILE = range(7)


@pytest.fixture(scope="module")
def handlers() -> app.Handlers:
    config = app.AppConfig(random_weights=True, max_image_side=512, download=False)
    return app.Handlers(config, ModelStore("cpu", download=False))


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "small.png"
    Image.fromarray(photo((48, 72), seed=2)).save(path)
    return path


@pytest.fixture(scope="module")
def loaded(handlers, image_path):
    return handlers.load(str(image_path), True)


@pytest.fixture(scope="module")
def clicked(handlers, loaded):
    return handlers.add_click(loaded[STATE], app.MODE_FOREGROUND, 30, 20, True)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return write_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_loading_an_image_shows_it_and_encodes_it_once(handlers, loaded, image_path):
    state = loaded[STATE]
    np.testing.assert_array_equal(state.image, np.array(Image.open(image_path)))
    np.testing.assert_array_equal(loaded[CANVAS], state.image)
    assert "encoded in" in loaded[INFO]
    assert handlers.store.embedding("vit_t", True, state.image)[1]  # already cached


def test_a_foreground_click_gives_three_candidates_equal_to_the_predictor(handlers, clicked):
    state = clicked[STATE]
    predictor = SamPredictor(handlers.store.model("vit_t", True))
    predictor.set_image(state.image)
    masks, scores, _ = predictor.predict(point_coords=np.array([[30.0, 20.0]]), point_labels=np.array([1]))
    assert state.candidates and len(clicked[GALLERY]) == 3
    np.testing.assert_array_equal(state.masks, masks)
    np.testing.assert_allclose(state.scores, scores, atol=1e-6)
    assert state.selected == int(np.argmax(scores))


def test_candidate_captions_show_the_predicted_iou(clicked):
    captions = [caption for _, caption in clicked[GALLERY]]
    scores = clicked[STATE].scores
    assert all(f"{score:.3f}" in caption for score, caption in zip(scores, captions))


def test_the_canvas_shows_the_chosen_mask_and_the_marker_but_the_model_image_is_clean(loaded, clicked):
    state = clicked[STATE]
    mask = state.masks[state.selected]
    canvas = clicked[CANVAS]
    np.testing.assert_array_equal(state.image, loaded[STATE].image)  # markers never reach the model's image
    if mask.any():
        assert (canvas[mask] != state.image[mask]).any()
    assert (canvas[20, 30] != state.image[20, 30]).any()  # the marker


def test_choosing_another_candidate_changes_the_shown_mask(handlers, clicked):
    state = clicked[STATE]
    other = (state.selected + 1) % 3
    chosen = handlers.choose(state, other, True)
    assert chosen[STATE].selected == other
    mask_png = np.array(Image.open(chosen[MASK_FILE])) > 0
    np.testing.assert_array_equal(mask_png, state.masks[other])


def test_downloads_hold_the_chosen_mask_as_png_rgba_and_coco_rle(clicked):
    state = clicked[STATE]
    mask = state.masks[state.selected]
    np.testing.assert_array_equal(np.array(Image.open(clicked[MASK_FILE])) > 0, mask)
    cutout = np.array(Image.open(clicked[CUTOUT_FILE]))
    assert cutout.shape == (*mask.shape, 4)
    np.testing.assert_array_equal(cutout[..., 3] > 0, mask)
    document = json.loads(open(clicked[COCO_FILE]).read())
    np.testing.assert_array_equal(rle_to_mask(document["annotations"][0]["segmentation"]), mask)


def test_box_by_two_clicks_waits_for_the_second_corner(handlers, loaded):
    first = handlers.add_click(loaded[STATE], app.MODE_BOX, 5, 5, True)
    assert first[STATE].pending_corner == (5, 5) and first[STATE].masks is None
    second = handlers.add_click(first[STATE], app.MODE_BOX, 40, 30, True)
    assert second[STATE].boxes == ((5, 5, 40, 30),) and second[STATE].pending_corner is None
    assert second[STATE].masks is not None


def test_a_zero_area_box_gives_a_message_and_adds_nothing(handlers, loaded):
    first = handlers.add_click(loaded[STATE], app.MODE_BOX, 10, 10, True)
    second = handlers.add_click(first[STATE], app.MODE_BOX, 10, 30, True)
    assert second[STATE].boxes == () and "zero area" in second[INFO]


def test_a_dragged_box_is_added_like_a_clicked_one(handlers, loaded):
    out = handlers.drag_box(loaded[STATE], "[40, 30, 5, 5]", True)
    assert out[STATE].boxes == ((5, 5, 40, 30),) and out[STATE].masks is not None


def test_several_boxes_give_one_mask_per_box(handlers, loaded):
    state = handlers.drag_box(loaded[STATE], "[2, 2, 30, 30]", True)[STATE]
    out = handlers.drag_box(state, "[35, 5, 70, 40]", True)
    assert not out[STATE].candidates and out[STATE].masks.shape[0] == 2 and len(out[GALLERY]) == 2
    document = json.loads(open(out[COCO_FILE]).read())
    assert len(document["annotations"]) == 2


def test_undo_removes_the_last_prompt_and_clear_removes_all(handlers, clicked):
    state = handlers.add_click(clicked[STATE], app.MODE_BACKGROUND, 60, 40, True)[STATE]
    assert state.labels == (1, 0)
    undone = handlers.undo(state, True)[STATE]
    assert undone.points == ((30, 20),) and undone.labels == (1,)
    cleared = handlers.clear(state, True)
    assert cleared[STATE].points == () and cleared[STATE].masks is None
    np.testing.assert_array_equal(cleared[CANVAS], state.image)


def test_a_click_before_any_image_asks_for_an_image(handlers):
    out = handlers.add_click(app.SegmentState(), app.MODE_FOREGROUND, 1, 1, True)
    assert "Upload an image" in out[INFO] and out[CANVAS] is None


def test_only_background_points_give_a_message_instead_of_a_mask(handlers, loaded):
    out = handlers.add_click(loaded[STATE], app.MODE_BACKGROUND, 10, 10, True)
    assert out[STATE].masks is None and "Only background points" in out[INFO]


def test_random_weights_put_the_warning_in_every_message(handlers, loaded):
    assert "meaningless" in loaded[INFO]


@pytest.mark.parametrize("name", ["corrupt", "truncated"])
def test_unreadable_files_give_a_readable_message(handlers, bad_inputs, name):
    out = handlers.load(str(bad_inputs[name]), True)
    assert out[STATE].image is None and "Cannot read image" in out[INFO] and name in out[INFO]


@pytest.mark.parametrize("name", ["sixteen_bit", "grayscale", "rgba", "cmyk"])
def test_unusual_but_valid_images_are_read_as_rgb(handlers, bad_inputs, name):
    image, notice, scale = handlers.read_image(str(bad_inputs[name]))
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8 and notice == "" and scale == 1.0


def test_exif_rotated_photos_are_shown_upright(handlers, bad_inputs):
    assert handlers.read_image(str(bad_inputs["exif_rotated"]))[0].shape == (60, 40, 3)


def test_huge_images_are_downscaled_with_a_notice(handlers, bad_inputs):
    image, notice, scale = handlers.read_image(str(bad_inputs["huge"]))
    assert image.shape == (128, 512, 3) and "downscaled" in notice and scale == pytest.approx(512 / 1200)
    state = app.SegmentState(image=image, notice=notice)
    assert "downscaled" in handlers.render(state, True)[INFO]


def test_a_one_pixel_image_can_be_segmented(handlers, bad_inputs):
    state = handlers.load(str(bad_inputs["one_pixel"]), True)[STATE]
    out = handlers.add_click(state, app.MODE_FOREGROUND, 0, 0, True)
    assert out[STATE].masks.shape == (3, 1, 1)


def test_missing_weights_say_which_file_to_put_where(tmp_path, image_path):
    config = app.AppConfig(random_weights=False, download=False)
    out = app.Handlers(config, ModelStore("cpu", checkpoint_dir=tmp_path, download=False)).load(str(image_path), False)
    assert "mobile_sam.pt" in out[INFO] and str(tmp_path) in out[INFO] and "Random weights" in out[INFO]
    assert out[STATE].image is not None  # the image stays loaded: ticking random weights still works


def test_everything_returns_an_overlay_a_count_coco_json_and_a_zip_with_progress(handlers, image_path):
    fractions = []
    knobs = app.EverythingKnobs(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    overlay, summary, coco_path, zip_path = handlers.everything_ui(
        str(image_path), *knobs.__dict__.values(), True, progress=lambda fraction, desc=None: fractions.append(fraction)
    )
    annotations = json.loads(open(coco_path).read())["annotations"]
    assert overlay.shape == (48, 72, 3) and len(annotations) >= 1
    assert f"{len(annotations)} masks" in summary and fractions[-1] == 1.0
    with zipfile.ZipFile(zip_path) as archive:
        assert len(archive.namelist()) == len(annotations)
        first = np.array(Image.open(archive.open(archive.namelist()[0]))) > 0
    np.testing.assert_array_equal(first, rle_to_mask(annotations[0]["segmentation"]))


def test_compare_reports_miou_against_the_reference_for_every_model(handlers, clicked):
    state = clicked[STATE]
    cases = app.compare_prompts(state.prompts(), state.image.shape[:2])
    rows, masks = handlers.compare(state.image, cases, "vit_t", ["fastsam-s"], True)
    assert [row["model"] for row in rows] == ["vit_t", "fastsam-s"]
    assert rows[0]["miou"] is None and 0.0 <= rows[1]["miou"] <= 1.0
    assert masks["fastsam-s"][0].shape == state.image.shape[:2]
    assert all(row["encoder_ms"] > 0 and row["status"] == "ok" for row in rows)


def test_changing_the_click_mode_drops_a_half_drawn_box(handlers, loaded):
    pending = handlers.add_click(loaded[STATE], app.MODE_BOX, 5, 5, True)[STATE]
    assert handlers.change_mode(pending, True)[STATE].pending_corner is None


def test_the_status_panel_says_where_missing_weights_go(tmp_path):
    config = app.AppConfig(download=False)
    text = app.Handlers(config, ModelStore("cpu", checkpoint_dir=tmp_path, download=False)).status_markdown()
    for name in ("mobile_sam.pt", "sam_vit_b_01ec64.pth", "sam_vit_h_4b8939.pth", "FastSAM-x.pt"):
        assert name in text
    assert "**missing**" in text and "https://" in text and str(tmp_path) in text


def test_turning_random_weights_off_without_checkpoints_explains_what_to_download(tmp_path, loaded):
    config = app.AppConfig(download=False)
    other = app.Handlers(config, ModelStore("cpu", checkpoint_dir=tmp_path, download=False))
    out = other.change_weights(loaded[STATE], False)
    assert out[STATE].masks is None and "mobile_sam.pt" in out[INFO] and "meaningless" not in out[INFO]


def test_compare_tab_runs_the_seeded_random_point_protocol(handlers, clicked):
    gallery, table, figure, summary = handlers.compare_ui(
        clicked[STATE], "vit_t", ["FastSAM-s"], app.PROTOCOL_PROMPTS, 3, 0, True, progress=lambda *a, **k: None
    )
    assert "3 prompt(s)" in summary and [row[0] for row in table] == ["MobileSAM", "FastSAM-s"]
    assert len(gallery) == 2 and figure is not None
