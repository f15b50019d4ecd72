"""The "Segment anything" tab's layout and events (handlers: `webapp.segment.SegmentTab`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gradio as gr

from .image_files import png_file
from .segment import MODES, SegmentState
from .wiring import Wiring

PAGE_UPDATE_JS = "(text) => { window.mobileSamSegment?.update(text); }"  # webapp/browser/segment_page.js


def add_segment_tab(w: Wiring) -> None:
    """The tab: the canvas with click modes, undo and clear, the upload and examples, the candidates and
    downloads, the page decoder's toggle. Every event runs one step on the caller's session state under its
    lock; a new image (upload, other weights) is offered to the page's decoder, whose hidden JSON
    (`SegmentTab.page_json`) goes with every answer."""
    seg, sessions, rw = w.parts.segment, w.parts.sessions, w.random_weights

    def update(
        request: gr.Request | None,
        random: bool,
        step: Callable[[SegmentState], SegmentState],
        new_image: bool = False,
    ) -> tuple:
        session = sessions.session(request)
        with session.lock:  # one event at a time per session: quick clicks all count
            before = session.state.get("segment", SegmentState())
            state = seg.publish(step(before), request, random, new_image)
            state = replace(state, applied=max(state.applied, before.applied))  # a new image keeps the page's count
            session.state["segment"] = state
        canvas, gallery, info, selected = seg.render(state, random)
        folder = sessions.named_folder(request, "canvas")  # fast PNG files (webapp.image_files)
        canvas = None if canvas is None else png_file(canvas, folder)
        gallery = [(png_file(thumbnail, folder), caption) for thumbnail, caption in gallery]
        return canvas, gr.Gallery(value=gallery, selected_index=selected), info, seg.page_json(state)

    def on_upload(path: Any, random: bool, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.load_image(path, random), new_image=True)

    def on_canvas(mode: str, actions_json: str, random: bool, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.canvas_actions(s, mode, actions_json, random))

    def on_weights(random: bool, request: gr.Request) -> tuple:
        return update(request, random, lambda s: seg.change_weights(s, random), new_image=True)

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
                    mode = gr.Radio(
                        list(MODES), value=next(iter(MODES)), label="Click mode", scale=3, elem_id="segment-mode"
                    )
                    undo = gr.Button("Undo", scale=1)
                    clear = gr.Button("Clear prompts", scale=1)
                with gr.Row(visible=w.parts.browser is not None):
                    gr.Checkbox(
                        True,
                        label="Preview masks under the cursor",
                        interactive=True,
                        elem_id="segment-preview",
                        scale=1,
                    )
                    gr.HTML("", elem_id="segment-decoder-notice", padding=False, scale=3)
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
        page = gr.Textbox(visible="hidden", elem_id="segment-decoder")
        shown = [canvas, candidates, info, page]
        private, interactive = w.private, w.interactive
        page.change(None, [page], None, js=PAGE_UPDATE_JS, queue=False, **private)
        upload.change(on_upload, [upload, rw], shown, **private, **w.encode)
        rw.change(on_weights, [rw], shown, **private, **w.encode)
        drag_apply.click(on_canvas, [mode, drag, rw], shown, trigger_mode="multiple", **private, **interactive)
        undo.click(on_undo, [rw], shown, trigger_mode="multiple", **private, **interactive)
        clear.click(on_clear, [rw], shown, trigger_mode="multiple", **private, **interactive)
        candidates.select(on_pick, [rw], shown, **private, **interactive)
        prepare.click(on_downloads, None, files, **private, **interactive)
