"""The programmatic API's hidden components and named endpoints (`/segment`, `/everything`, `/compare`,
`/compare_everything`) for
`gradio_client`: explicit inputs instead of clicks, JSON outputs (handlers: `webapp.api.Api`)."""

from __future__ import annotations

import json

import gradio as gr

from compare.fastsam_rules import DEFAULT_FASTSAM_RULES
from everything.pipelines import GRID_PIPELINE, PIPELINES
from samkit.models import APP_DETECTOR, FASTSAM_MODELS, MOBILE_SAM, PAPER_REFERENCE

from .everything_jobs import GRID, EverythingSettings
from .everything_layout import SLIDERS
from .everything_tab import AUTO
from .wiring import Wiring


def add_api(w: Wiring) -> None:
    """The hidden components and the four endpoints."""
    api = w.parts.api
    defaults = EverythingSettings()
    with gr.Column(visible=False):
        image = gr.File(type="filepath", label="image")
        prompts = gr.Textbox(label="prompts", value='{"points": [[x, y]], "labels": [1], "boxes": []}')
        multimask = gr.Checkbox(True, label="multimask")
        knobs = [gr.Number(getattr(defaults, name), label=name) for name in SLIDERS]
        knobs += [gr.Textbox(GRID, label="mode"), gr.Textbox(APP_DETECTOR, label="detector")]
        knobs += [gr.Textbox(AUTO, label="pipeline")]
        models = gr.Textbox(label="models", value=json.dumps([MOBILE_SAM, *FASTSAM_MODELS]))
        reference = gr.Textbox(label="reference", value=PAPER_REFERENCE)
        fastsam_rules = gr.Textbox(label="fastsam_rules", value=DEFAULT_FASTSAM_RULES)
        pipelines = gr.Textbox(label="pipelines", value=json.dumps(list(PIPELINES)))
        reference_pipeline = gr.Textbox(label="reference", value=GRID_PIPELINE)
        result, overlay = gr.JSON(label="result"), gr.Image(type="numpy", format="png", label="overlay")
        buttons = [gr.Button() for _ in range(4)]
    buttons[0].click(api.segment, [image, prompts, multimask], result, api_name="segment", **w.interactive)
    buttons[1].click(api.everything, [image, *knobs], [result, overlay], api_name="everything", **w.heavy)
    buttons[2].click(
        api.compare, [image, prompts, models, reference, fastsam_rules], result, api_name="compare", **w.heavy
    )
    buttons[3].click(
        api.compare_everything,
        [image, pipelines, reference_pipeline, *knobs[: len(SLIDERS)]],
        result,
        api_name="compare_everything",
        **w.heavy,
    )
