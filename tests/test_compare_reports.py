"""Results round trips (CSV, JSON), markdown tables and figures."""

import json

import numpy as np
import pytest
from PIL import Image
from support.compare_support import DiskBackend, small_image

from compare.figures import plot_latency, plot_mask_grid, plot_miou_vs_distance
from compare.outputs import write_outputs
from compare.report import RANDOM_WEIGHTS_NOTE, markdown_report, miou_markdown, miou_rows
from compare.results import ComparisonResult, load_cases_csv, load_encoder_csv
from compare.runner import ProtocolSpec, run_comparison


@pytest.fixture(scope="module")
def run():
    images = [("a.png", small_image(seed=0)), ("b.png", small_image(seed=1))]
    return run_comparison(
        images,
        DiskBackend("ref", 20),
        [DiskBackend("same", 20), DiskBackend("small", 8)],
        ProtocolSpec("points2", distances=(20.0, 40.0), prompts_per_image=3),
        seed=0,
    )


def test_json_round_trip_restores_the_result(run, tmp_path):
    path = run.result.save_json(tmp_path / "r.json")
    assert ComparisonResult.load_json(path) == run.result


def test_json_is_plain_json(run, tmp_path):
    data = json.loads(run.result.save_json(tmp_path / "r.json").read_text())
    assert data["reference"] == "ref" and len(data["cases"]) == len(run.result.cases)


def test_cases_csv_round_trip_restores_the_records(run, tmp_path):
    path = run.result.save_cases_csv(tmp_path / "cases.csv")
    assert load_cases_csv(path) == run.result.cases


def test_encoder_csv_round_trip_restores_the_records(run, tmp_path):
    path = run.result.save_encoder_csv(tmp_path / "enc.csv")
    assert load_encoder_csv(path) == run.result.encoder_runs


def test_miou_rows_average_per_model_and_distance(run):
    rows = {(r.model, r.condition): r for r in miou_rows(run.result)}
    assert rows[("same", "d=20")].miou == 1.0 and rows[("same", "d=20")].count == 2 * 3
    expected = np.mean([c.iou for c in run.result.cases if c.model == "small" and c.condition == "d=40"])
    assert rows[("small", "d=40")].miou == pytest.approx(expected)


def test_miou_rows_leave_out_the_reference(run):
    assert all(r.model != "ref" for r in miou_rows(run.result))


def test_miou_markdown_has_a_row_per_compared_model(run):
    lines = miou_markdown(run.result).splitlines()
    assert len(lines) == 2 + 2 and lines[2].startswith("| same |") and lines[3].startswith("| small |")


def test_report_warns_about_random_weights(run):
    run.result.settings["random_weights"] = True
    try:
        assert RANDOM_WEIGHTS_NOTE in markdown_report(run.result)
    finally:
        run.result.settings["random_weights"] = False
    assert RANDOM_WEIGHTS_NOTE not in markdown_report(run.result)


def _png_size(path):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.size


def test_miou_figure_is_a_png(run, tmp_path):
    assert min(_png_size(plot_miou_vs_distance(run.result, tmp_path / "m.png"))) > 100


def test_latency_figure_is_a_png(run, tmp_path):
    assert min(_png_size(plot_latency(run.result, tmp_path / "l.png"))) > 100


def test_mask_grid_has_a_panel_per_model_and_example(run, tmp_path):
    w, h = _png_size(plot_mask_grid(run.examples, run.result.models, tmp_path / "g.png"))
    assert w > h  # three models side by side, two example rows


def test_write_outputs_writes_every_file_and_they_load_back(run, tmp_path):
    paths = write_outputs(run, tmp_path / "out")
    assert set(paths) == {"json", "cases_csv", "encoder_csv", "report", "latency", "miou_vs_distance", "masks"}
    assert ComparisonResult.load_json(paths["json"]) == run.result
    assert load_cases_csv(paths["cases_csv"]) == run.result.cases
    for key in ("latency", "miou_vs_distance", "masks"):
        _png_size(paths[key])
