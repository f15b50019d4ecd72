"""The "Segment everything" tab's layout and events (handlers: `webapp.everything_tab.EverythingTab`)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from everything.pipelines import BOXES_PIPELINE, MOBILESAMV2_PIPELINE
from samkit.models import APP_DETECTOR, DETECTORS

from .api import HANDLED
from .everything_jobs import GRID, LIMITS, OBJECTS, EverythingSettings
from .everything_tab import AUTO
from .messages import hide_paths, with_banner
from .wiring import Wiring

# The knobs a visitor sets, with their labels and slider steps (their limits are `LIMITS`).
SLIDERS = {
    "points_per_side": ("Points per side", 1),
    "pred_iou_thresh": ("Predicted-IoU threshold", 0.01),
    "stability_score_thresh": ("Stability-score threshold", 0.01),
    "box_nms_thresh": ("Box NMS threshold", 0.01),
    "crop_n_layers": ("Crop layers", 1),
    "min_mask_region_area": ("Minimum region area (px)", 10),
    "input_size": ("Input size (longest side, px)", 64),
}


def add_everything_tab(w: Wiring) -> None:
    """The tab: the image, the prompt mode and detector, the generator's knobs, Run and Stop, the overlay and
    the downloads."""
    parts = w.parts
    with gr.Tab("Segment everything", id="everything"):
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(label="Image", type="filepath", elem_id="everything-upload")
                if w.examples:
                    gr.Examples([[p] for p in w.examples], inputs=[upload], label="Examples")
                mode = gr.Radio(
                    [("Grid of points (official)", GRID), ("Objects (detector boxes)", OBJECTS)],
                    value=GRID,
                    label="Prompts",
                )
                pipeline = gr.Radio(
                    [
                        ("Automatic: MobileSAMv2 when its files are on this server", AUTO),
                        ("MobileSAMv2 (its encoder, decoder and detector)", MOBILESAMV2_PIPELINE),
                        ("Object-aware boxes with MobileSAM's decoder", BOXES_PIPELINE),
                    ],
                    value=AUTO,
                    label="Objects pipeline",
                )
                detector = gr.Dropdown(
                    list(DETECTORS), value=APP_DETECTOR, label="Detector (boxes with MobileSAM's decoder)"
                )
                defaults = EverythingSettings()
                knobs = [
                    gr.Slider(*LIMITS[name], getattr(defaults, name), step=step, label=label)
                    for name, (label, step) in SLIDERS.items()
                ]
                gr.Markdown(f"Jobs estimated over {w.config.max_everything_seconds:.0f} s are refused on this server.")
                with gr.Row():
                    run = gr.Button("Segment everything", variant="primary", elem_id="everything-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="everything-stop")
            with gr.Column(scale=3):
                overlay = gr.Image(
                    label="All masks", type="numpy", interactive=False, format="png", elem_id="everything-overlay"
                )
                summary = gr.Markdown(elem_id="everything-summary")
                with gr.Row():
                    files = [
                        gr.DownloadButton("COCO JSON", value=None),
                        gr.DownloadButton("ZIP of mask PNGs", value=None),
                    ]

        async def on_run(
            path: Any,
            how: str,
            which: str,
            boxes_from: str,
            pps: float,
            iou: float,
            stability: float,
            nms: float,
            crops: float,
            area: float,
            size: float,
            random: bool,
            request: gr.Request,
            progress=gr.Progress(),
        ) -> tuple:
            knob_values = (pps, iou, stability, nms, crops, area, size)
            try:
                settings = EverythingSettings.checked(**dict(zip(SLIDERS, knob_values)))
                answer = await parts.everything.answer(
                    path, settings, random, request, progress, how, boxes_from, which
                )
            except HANDLED as error:
                return None, with_banner(f"**{hide_paths(str(error))}**", random), None, None
            coco, archive = parts.everything.write_downloads(answer, request)
            return answer.result.overlay, with_banner(answer.summary(), random), coco, archive

        event = run.click(
            on_run,
            [upload, mode, pipeline, detector, *knobs, w.random_weights],
            [overlay, summary, *files],
            **w.private,
            **w.heavy,
        )
        w.stop_button(stop, event)
