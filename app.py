"""
MobileSAM web demo: segment anything, segment everything, compare SAM / MobileSAM / FastSAM.

This file holds the layout and the event wiring only. Handlers live in `webapp/` (one module per
tab, per-session state, operator settings); the work is done by `mobile_sam`, `everything` and
`compare`. Three lanes keep the page responsive: clicks on a cached embedding ("interactive"),
image encoding ("encode"), and heavy jobs (segment everything, compare) that are budgeted,
queued with a bounded line, and stopped by the Stop buttons, a closed tab or an API cancel.

    python app.py --help
"""

from __future__ import annotations

from webapp.config import AppConfig, parse_args

if __name__ == "__main__":
    CONFIG = parse_args()  # --help and bad options answer before the slow imports below

import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from compare.models import LABELS  # noqa: E402
from everything.box_sources import DETECTOR_NAMES  # noqa: E402
from everything.jobs import GRID, LIMITS, OBJECTS, EverythingSettings  # noqa: E402
from mobile_sam.device import resolve_device  # noqa: E402
from mobile_sam.model_store import ModelStore  # noqa: E402
from webapp import compare_tab  # noqa: E402
from webapp.api import HANDLED  # noqa: E402
from webapp.examples import keep_example_copies  # noqa: E402
from webapp.messages import hide_paths, with_banner  # noqa: E402
from webapp.parts import Parts  # noqa: E402
from webapp.segment import MODES, SegmentState  # noqa: E402
from webapp.status import status_markdown  # noqa: E402

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
EXAMPLES = ("cat_chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")  # see assets/README.md
USER_PROMPTS = "My points and boxes (Segment anything tab)"
PROTOCOL_PROMPTS = "Random foreground points (seeded protocol)"
VIT_H_SECONDS = 184  # README, "Measured performance": SAM ViT-H image encoder on a 2-core CPU
RANDOM_BANNER = (
    '<div id="random-weights-banner" style="background:#b91c1c;color:white;padding:10px 14px;'
    'border-radius:8px;font-weight:600">Random weights: the models are randomly initialised, so every '
    "mask below is meaningless. Untick “Random weights” (with checkpoints installed) for real results.</div>"
)
SLIDERS = {
    "points_per_side": ("Points per side", 1),
    "pred_iou_thresh": ("Predicted-IoU threshold", 0.01),
    "stability_score_thresh": ("Stability-score threshold", 0.01),
    "box_nms_thresh": ("Box NMS threshold", 0.01),
    "crop_n_layers": ("Crop layers", 1),
    "min_mask_region_area": ("Minimum region area (px)", 10),
    "input_size": ("Input size (longest side, px)", 64),
}


def build_app(config: AppConfig, store: ModelStore | None = None, parts: Parts | None = None) -> gr.Blocks:
    """The Blocks app; store and parts default to new ones for config (tests pass their own)."""
    if store is None:
        store = new_store(config)
    parts = parts or Parts.create(config, store)
    seg, sessions = parts.segment, parts.sessions
    # Clicks show no progress overlay: it would cover the canvas and swallow the next clicks.
    interactive = {
        "concurrency_id": "interactive",
        "concurrency_limit": config.interactive_concurrency,
        "show_progress": "hidden",
    }
    encode = {"concurrency_id": "encode", "concurrency_limit": config.encode_concurrency}
    heavy = {"concurrency_id": "heavy", "concurrency_limit": None}  # bounded by parts.lane, which reports positions
    private = {"api_visibility": "private"}
    examples = [str(ASSETS_DIR / name) for name in EXAMPLES if (ASSETS_DIR / name).is_file()]

    def segment_update(request: gr.Request | None, rw: bool, step: Any) -> tuple:
        session = sessions.session(request)
        with session.lock:  # one event at a time per session: quick clicks all count
            state = step(session.state.get("segment", SegmentState()))
            session.state["segment"] = state
        canvas, gallery, info, selected = seg.render(state, rw)
        return canvas, gr.Gallery(value=gallery, selected_index=selected), info

    def on_upload(path, rw, request: gr.Request):
        return segment_update(request, rw, lambda s: seg.load_image(path, rw))

    def on_canvas(mode, actions_json, rw, request: gr.Request):
        return segment_update(request, rw, lambda s: seg.canvas_actions(s, mode, actions_json, rw))

    def on_weights(r, request: gr.Request):
        return segment_update(request, r, lambda s: seg.change_weights(s, r))

    def on_undo(r, request: gr.Request):
        return segment_update(request, r, lambda s: seg.undo(s, r))

    def on_clear(r, request: gr.Request):
        return segment_update(request, r, lambda s: seg.clear(s, r))

    def on_pick(r, event: gr.SelectData, request: gr.Request):
        return segment_update(request, r, lambda s: seg.choose(s, int(event.index)))

    def on_stop(request: gr.Request):
        sessions.cancel_jobs(request)

    def on_unload(request: gr.Request):
        sessions.end(request)

    def on_downloads(request: gr.Request):
        state = sessions.session(request).state.get("segment", SegmentState())
        try:
            return seg.write_downloads(state, request)
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from error

    with gr.Blocks(
        title="MobileSAM: Faster Segment Anything",
        delete_cache=(min(60, config.upload_max_age_s), config.upload_max_age_s),
    ) as demo:
        gr.Markdown(
            "# MobileSAM: Faster Segment Anything\nClick on an image to segment an object (MobileSAM, Zhang "
            "et al. 2023), segment everything in an image, or compare MobileSAM with SAM and FastSAM."
        )
        banner = gr.HTML(RANDOM_BANNER, visible=config.random_weights)
        rw = gr.Checkbox(
            config.random_weights, label="Random weights (try the interface without checkpoints; masks are meaningless)"
        )

        with gr.Tab("Segment anything", id="segment"):
            with gr.Row():
                with gr.Column(scale=3):
                    canvas = gr.Image(
                        label="Click to add prompts",
                        type="numpy",
                        interactive=False,
                        format="png",
                        elem_id="segment-canvas",
                        buttons=["fullscreen"],
                    )
                    with gr.Row():
                        mode = gr.Radio(list(MODES), value=next(iter(MODES)), label="Click mode", scale=3)
                        undo = gr.Button("Undo", scale=1)
                        clear = gr.Button("Clear prompts", scale=1)
                    info = gr.Markdown(seg.render(SegmentState(), config.random_weights)[2], elem_id="segment-info")
                with gr.Column(scale=2):
                    upload = gr.File(
                        label="Image (JPEG, PNG, WebP, TIFF ...)", type="filepath", elem_id="segment-upload"
                    )
                    if examples:
                        gr.Examples([[p] for p in examples], inputs=[upload], label="Examples")
                    candidates = gr.Gallery(
                        label="Masks with predicted IoU (click a candidate to choose it)",
                        columns=3,
                        height=230,
                        allow_preview=False,
                        elem_id="segment-candidates",
                    )
                    prepare = gr.Button("Prepare downloads", elem_id="segment-downloads")
                    with gr.Row():
                        files = [
                            gr.DownloadButton(label, value=None)
                            for label in ("Mask PNG", "Cut-out PNG", "COCO RLE JSON")
                        ]
            drag = gr.Textbox(visible="hidden", elem_id="segment-drag")
            drag_apply = gr.Button(visible="hidden", elem_id="segment-drag-apply")
            shown = [canvas, candidates, info]
            upload.change(on_upload, [upload, rw], shown, **private, **encode)
            rw.change(on_weights, [rw], shown, **private, **encode)
            drag_apply.click(on_canvas, [mode, drag, rw], shown, trigger_mode="multiple", **private, **interactive)
            undo.click(on_undo, [rw], shown, trigger_mode="multiple", **private, **interactive)
            clear.click(on_clear, [rw], shown, trigger_mode="multiple", **private, **interactive)
            candidates.select(on_pick, [rw], shown, **private, **interactive)
            prepare.click(on_downloads, None, files, **private, **interactive)

        with gr.Tab("Segment everything", id="everything"):
            with gr.Row():
                with gr.Column(scale=2):
                    every_upload = gr.File(label="Image", type="filepath", elem_id="everything-upload")
                    if examples:
                        gr.Examples([[p] for p in examples], inputs=[every_upload], label="Examples")
                    every_mode = gr.Radio(
                        [("Grid of points (official)", GRID), ("Objects (MobileSAMv2: detector boxes)", OBJECTS)],
                        value=GRID,
                        label="Prompts",
                    )
                    detector = gr.Dropdown(list(DETECTOR_NAMES), value="fastsam-s", label="Detector (objects mode)")
                    defaults = EverythingSettings()
                    knobs = [
                        gr.Slider(*LIMITS[name], getattr(defaults, name), step=step, label=label)
                        for name, (label, step) in SLIDERS.items()
                    ]
                    gr.Markdown(
                        f"Jobs estimated over {config.max_everything_seconds:.0f} s are refused on this server."
                    )
                    with gr.Row():
                        run_everything = gr.Button("Segment everything", variant="primary", elem_id="everything-run")
                        stop_everything = gr.Button("Stop", variant="stop", elem_id="everything-stop")
                with gr.Column(scale=3):
                    every_overlay = gr.Image(
                        label="All masks", type="numpy", interactive=False, format="png", elem_id="everything-overlay"
                    )
                    every_summary = gr.Markdown(elem_id="everything-summary")
                    with gr.Row():
                        every_files = [
                            gr.DownloadButton("COCO JSON", value=None),
                            gr.DownloadButton("ZIP of mask PNGs", value=None),
                        ]

            async def on_everything(
                path,
                how,
                boxes_from,
                pps,
                iou,
                stability,
                nms,
                crops,
                area,
                size,
                random,
                request: gr.Request,
                progress=gr.Progress(),
            ):
                knob_values = (pps, iou, stability, nms, crops, area, size)
                try:
                    settings = EverythingSettings.clamped(**dict(zip(SLIDERS, knob_values)))
                    answer = await parts.everything.answer(path, settings, random, request, progress, how, boxes_from)
                except HANDLED as error:
                    return None, with_banner(f"**{hide_paths(str(error))}**", random), None, None
                coco, archive = parts.everything.write_downloads(answer, request)
                return answer.result.overlay, with_banner(answer.summary(), random), coco, archive

            everything_event = run_everything.click(
                on_everything,
                [every_upload, every_mode, detector, *knobs, rw],
                [every_overlay, every_summary, *every_files],
                **private,
                **heavy,
            )
            stop_everything.click(on_stop, None, None, cancels=[everything_event], queue=False, **private)

        with gr.Tab("Compare", id="compare"):
            gr.Markdown(
                "Runs the image and prompts of the **Segment anything** tab on every chosen model. mIoU is measured "
                "against the reference SAM, as in the MobileSAM paper. Encodings are cached per image. Measured "
                f"on a 2-core CPU (README, Measured performance): SAM ViT-H's image encoder took {VIT_H_SECONDS} s "
                "per image, MobileSAM's well under a second."
            )
            with gr.Row():
                references = parts.compare.references()
                reference = gr.Dropdown([(LABELS[n], n) for n in references], value=references[0], label="Reference")
                compared = gr.CheckboxGroup(
                    [(LABELS[n], n) for n in parts.compare.compared()], value=["vit_t"], label="Models to compare"
                )
            with gr.Row():
                prompt_source = gr.Radio([USER_PROMPTS, PROTOCOL_PROMPTS], value=USER_PROMPTS, label="Prompts", scale=3)
                count = gr.Number(
                    8, label="Random points", precision=0, minimum=1, maximum=config.max_compare_prompts, scale=1
                )
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, scale=1)
                run_compare = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=1)
                stop_compare = gr.Button("Stop", variant="stop", elem_id="compare-stop", scale=1)
            compare_summary = gr.Markdown()
            compare_gallery = gr.Gallery(label="Masks per model", columns=4, height="auto", allow_preview=False)
            compare_table = gr.Dataframe(
                headers=[
                    "model",
                    "role",
                    "mIoU vs reference",
                    "encoder ms",
                    "decoder ms / prompt",
                    "total ms",
                    "status",
                ],
                interactive=False,
                label="Agreement and latency",
            )
            compare_plot = gr.Plot(label="Latency")

            async def on_compare(
                ref, models, source, n, seed_value, random, request: gr.Request, progress=gr.Progress()
            ):
                state = sessions.session(request).state.get("segment", SegmentState())
                if state.image is None:
                    return [], None, None, with_banner("**Load an image in the Segment anything tab first.**", random)
                size = state.image.shape[:2]
                try:
                    if source == PROTOCOL_PROMPTS:
                        cases = compare_tab.protocol_prompts(size, int(n), int(seed_value))
                    else:
                        cases = compare_tab.user_prompts(state.clicks.prompts(), size)
                    comparison = await parts.compare.answer(state.image, cases, ref, models, random, request, progress)
                except HANDLED as error:
                    return [], None, None, with_banner(f"**{hide_paths(str(error))}**", random)
                gallery = compare_tab.gallery(comparison, state.display, state.display_scale, cases)
                summary = (
                    f"{len(cases)} prompt(s), one mask each; mIoU is against {LABELS[comparison.rows[0].model]}. "
                    "Encoder times come from the first encoding of this image (later runs reuse it)."
                )
                return (
                    gallery,
                    compare_tab.table(comparison),
                    compare_tab.latency_figure(comparison),
                    with_banner(summary, random),
                )

            compare_event = run_compare.click(
                on_compare,
                [reference, compared, prompt_source, count, seed, rw],
                [compare_gallery, compare_table, compare_plot, compare_summary],
                **private,
                **heavy,
            )
            stop_compare.click(on_stop, None, None, cancels=[compare_event], queue=False, **private)

        with gr.Accordion("Models and weights", open=False):
            names = ["vit_t", *[n for n in parts.compare.allowed if n != "vit_t"]]
            status = gr.Markdown(status_markdown(store, names))
            gr.Button("Refresh").click(lambda: status_markdown(store, names), None, status, **private, queue=False)
            gr.Timer(3.0).tick(
                lambda: status_markdown(store, names), None, status, **private, queue=False, show_progress="hidden"
            )

        rw.change(lambda on: gr.update(visible=on), rw, banner, **private, queue=False)

        # Programmatic API (gradio_client): explicit inputs instead of clicks, JSON outputs.
        with gr.Column(visible=False):
            api_image = gr.File(type="filepath", label="image")
            api_prompts = gr.Textbox(label="prompts", value='{"points": [[x, y]], "labels": [1], "boxes": []}')
            api_multimask = gr.Checkbox(True, label="multimask")
            api_knobs = [gr.Number(getattr(defaults, name), label=name) for name in SLIDERS]
            api_knobs += [gr.Textbox(GRID, label="mode"), gr.Textbox("fastsam-s", label="detector")]
            api_models = gr.Textbox(label="models", value='["vit_t", "fastsam-s", "fastsam-x"]')
            api_reference = gr.Textbox(label="reference", value="vit_h")
            api_json, api_overlay = gr.JSON(label="result"), gr.Image(type="numpy", format="png", label="overlay")
            api_buttons = [gr.Button() for _ in range(3)]
        api_buttons[0].click(
            parts.api.segment, [api_image, api_prompts, api_multimask], api_json, api_name="segment", **interactive
        )
        api_buttons[1].click(
            parts.api.everything, [api_image, *api_knobs], [api_json, api_overlay], api_name="everything", **heavy
        )
        api_buttons[2].click(
            parts.api.compare,
            [api_image, api_prompts, api_models, api_reference],
            api_json,
            api_name="compare",
            **heavy,
        )
        demo.unload(on_unload)
        demo.load(None, None, None, js=(ASSETS_DIR.parent / "webapp" / "drag_box.js").read_text())

    keep_example_copies(demo)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.encode_concurrency)
    demo.mobile_sam_parts = parts  # for main()'s shutdown and the tests
    return demo


def new_store(config: AppConfig) -> ModelStore:
    return ModelStore(
        resolve_device(config.device),
        config.checkpoint_dir,
        config.download,
        config.embedding_cache_items,
        max_models=config.model_cache_items,
        download_large=config.download_large,
    )


def main(config: AppConfig) -> None:
    """Serve until Ctrl-C or SIGTERM, then stop every job and delete every visitor's files."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics must never download or pip-install at run time
    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((config.host, config.port))
    except OSError as error:
        raise SystemExit(
            f"error: --port {config.port} on --host {config.host} is not available ({error.strerror}); "
            "choose another with --port."
        ) from error
    try:
        demo = build_app(config, new_store(config))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from error
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    demo.launch(
        server_name=config.host,
        server_port=config.port,
        share=config.share,
        max_file_size=config.max_file_size,
        prevent_thread_lock=True,
    )
    while not stop.wait(0.5):
        pass
    print("Stopping: cancelling jobs and deleting session files ...", flush=True)
    demo.mobile_sam_parts.shutdown()
    demo.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # torch's worker threads are idle now; skip interpreter teardown, which can abort on them


if __name__ == "__main__":
    main(CONFIG)
