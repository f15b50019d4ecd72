"""The "Segment anything" tab's layout and events (handlers: `webapp.segment.SegmentTab`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr

from .segment import MODES, SegmentState
from .wiring import Wiring


def add_segment_tab(w: Wiring) -> None:
    """The tab: the canvas with click modes, undo and clear, the upload and examples, the candidates and
    downloads. Every event runs one step on the caller's session state under its lock."""
    seg, sessions, rw = w.parts.segment, w.parts.sessions, w.random_weights

    def update(request: gr.Request | None, random: bool, step: Callable[[SegmentState], SegmentState]) -> tuple:
        session = sessions.session(request)
        with session.lock:  # one event at a time per session: quick clicks all count
            state = step(session.state.get("segment", SegmentState()))
            session.state["segment"] = state
        canvas, gallery, info, selected = seg.render(state, random)
        return canvas, gr.Gallery(value=gallery, selected_index=selected), info

    def on_upload(path: Any, random: bool, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.load_image(path, random))

    def on_canvas(mode: str, actions_json: str, random: bool, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.canvas_actions(s, mode, actions_json, random))

    def on_weights(random: bool, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.change_weights(s, random))

    def on_undo(random: bool, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.undo(s, random))

    def on_clear(random: bool, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.clear(s, random))

    def on_pick(random: bool, event: gr.SelectData, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.choose(s, int(event.index)))

    def on_downloads(request: gr.Request) -> tuple[str, str, str]:
        state = sessions.session(request).state.get("segment", SegmentState())
        try:
            return seg.write_downloads(state, request)
        except ValueError as error:
            raise gr.Error(str(error), print_exception=False) from error

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
                info = gr.Markdown(seg.render(SegmentState(), w.config.random_weights)[2], elem_id="segment-info")
            with gr.Column(scale=2):
                upload = gr.File(label="Image (JPEG, PNG, WebP, TIFF ...)", type="filepath", elem_id="segment-upload")
                if w.examples:
                    gr.Examples([[p] for p in w.examples], inputs=[upload], label="Examples")
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
                        gr.DownloadButton(label, value=None) for label in ("Mask PNG", "Cut-out PNG", "COCO RLE JSON")
                    ]
        drag = gr.Textbox(visible="hidden", elem_id="segment-drag")
        drag_apply = gr.Button(visible="hidden", elem_id="segment-drag-apply")
        shown = [canvas, candidates, info]
        private, interactive = w.private, w.interactive
        upload.change(on_upload, [upload, rw], shown, **private, **w.encode)
        rw.change(on_weights, [rw], shown, **private, **w.encode)
        drag_apply.click(on_canvas, [mode, drag, rw], shown, trigger_mode="multiple", **private, **interactive)
        undo.click(on_undo, [rw], shown, trigger_mode="multiple", **private, **interactive)
        clear.click(on_clear, [rw], shown, trigger_mode="multiple", **private, **interactive)
        candidates.select(on_pick, [rw], shown, **private, **interactive)
        prepare.click(on_downloads, None, files, **private, **interactive)
