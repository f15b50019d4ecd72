"""The "Compare" tab's layout and events (handlers: `webapp.compare_tab.CompareTab`)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from compare.fastsam_rules import DEFAULT_FASTSAM_RULES, FASTSAM_RULES, FASTSAM_RULES_DESCRIPTIONS
from samkit.models import LABELS, MOBILE_SAM

from . import compare_tab
from .api import HANDLED
from .messages import hide_paths, with_banner
from .segment import SegmentState
from .wiring import Wiring

USER_PROMPTS = "My points and boxes (Segment anything tab)"
PROTOCOL_PROMPTS = "Random foreground points (seeded protocol)"
TABLE_HEADERS = ["model", "role", "mIoU vs reference", "encoder ms", "decoder ms / prompt", "total ms", "status"]


def add_compare_tab(w: Wiring) -> None:
    """The tab: the reference and the compared models, the prompts (the visitor's, or the seeded protocol),
    Run and Stop, the masks, the table and the latency plot."""
    parts, sessions = w.parts, w.parts.sessions
    with gr.Tab("Compare", id="compare"):
        gr.Markdown(
            "Runs the image and prompts of the **Segment anything** tab on every chosen model. mIoU is measured "
            "against the reference SAM, as in the MobileSAM paper. Encodings are cached per image. On a 2-core CPU "
            "SAM ViT-H's image encoder takes minutes per image, MobileSAM's well under a second (README, "
            "Performance)."
        )
        with gr.Row():
            references = parts.compare.references()
            reference = gr.Dropdown([(LABELS[n], n) for n in references], value=references[0], label="Reference")
            compared = gr.CheckboxGroup(
                [(LABELS[n], n) for n in parts.compare.compared()], value=[MOBILE_SAM], label="Models to compare"
            )
            rules = gr.Radio(
                list(FASTSAM_RULES),
                value=DEFAULT_FASTSAM_RULES,
                label="FastSAM prompt rules",
                info="; ".join(f"{name}: {text}" for name, text in FASTSAM_RULES_DESCRIPTIONS.items()),
                elem_id="compare-fastsam-rules",
            )
        with gr.Row():
            source = gr.Radio([USER_PROMPTS, PROTOCOL_PROMPTS], value=USER_PROMPTS, label="Prompts", scale=3)
            count = gr.Number(
                8, label="Random points", precision=0, minimum=1, maximum=w.config.max_compare_prompts, scale=1
            )
            seed = gr.Number(0, label="Seed", precision=0, minimum=0, scale=1)
            run = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=1)
            stop = gr.Button("Stop", variant="stop", elem_id="compare-stop", scale=1)
        summary = gr.Markdown()
        gallery = gr.Gallery(label="Masks per model", columns=4, height="auto", allow_preview=False)
        table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, label="Agreement and latency")
        plot = gr.Plot(label="Latency")

        async def on_compare(
            ref: str,
            models: list[str],
            prompts_from: str,
            n: float,
            seed_value: float,
            fastsam_rules: str,
            random: bool,
            request: gr.Request,
            progress=gr.Progress(),
        ) -> tuple[Any, ...]:
            state = sessions.session(request).state.get("segment", SegmentState())
            if state.image is None:
                return [], None, None, with_banner("**Load an image in the Segment anything tab first.**", random)
            size = state.image.shape[:2]
            try:
                if prompts_from == PROTOCOL_PROMPTS:
                    cases = compare_tab.protocol_prompts(size, int(n), int(seed_value))
                else:
                    cases = compare_tab.user_prompts(state.clicks.prompts(), size)
                comparison = await parts.compare.answer(
                    state.image, cases, ref, models, random, request, progress, fastsam_rules
                )
            except HANDLED as error:
                return [], None, None, with_banner(f"**{hide_paths(str(error))}**", random)
            text = compare_tab.summary(comparison, len(cases), fastsam_rules)
            return (
                compare_tab.gallery(comparison, state.display, state.display_scale, cases),
                compare_tab.table(comparison),
                compare_tab.latency_figure(comparison),
                with_banner(text, random),
            )

        event = run.click(
            on_compare,
            [reference, compared, source, count, seed, rules, w.random_weights],
            [gallery, table, plot, summary],
            **w.private,
            **w.heavy,
        )
        w.stop_button(stop, event)
