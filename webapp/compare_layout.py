"""The "Compare" tab's layout and events (handlers: `webapp.compare_tab.CompareTab`)."""

from __future__ import annotations

from typing import Any

import gradio as gr

from compare.fastsam_rules import DEFAULT_FASTSAM_RULES, FASTSAM_RULES, FASTSAM_RULES_DESCRIPTIONS
from everything.pipelines import GRID_PIPELINE, PIPELINES
from samkit.models import LABELS, MOBILE_SAM

from . import compare_tab, everything_compare
from .api import HANDLED
from .everything_jobs import LIMITS, EverythingSettings
from .messages import hide_paths, with_banner
from .segment import SegmentState
from .wiring import Wiring

NO_IMAGE = "**Load an image in the Segment anything tab first.**"
USER_PROMPTS = "My points and boxes (Segment anything tab)"
PROTOCOL_PROMPTS = "Random foreground points (seeded protocol)"
EVERYTHING_HEADERS = [
    "pipeline",
    "masks",
    "detector ms",
    "encoder ms",
    "decoder ms",
    "total ms",
    "recall@0.5",
    "recall@0.75",
    "mean best IoU",
    "status",
]
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
                return [], None, None, with_banner(NO_IMAGE, random)
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
        add_everything_section(w)


def add_everything_section(w: Wiring) -> None:
    """Segment everything, side by side: the pipelines, the reference, the grid's density and the image size, Run
    and Stop, each pipeline's masks and the table (handlers: `webapp.everything_compare`)."""
    parts, sessions = w.parts, w.parts.sessions
    gr.Markdown(
        "### Segment everything, side by side\nRuns segment-everything pipelines on the image of the **Segment "
        "anything** tab: the official grid of point prompts, MobileSAMv2 (its encoder, decoder and detector) and "
        "object-aware boxes with MobileSAM's decoder. Latency is split into detector, image encoder and decoder "
        "(with post-processing); agreement is measured on the reference's masks. A pipeline whose files are not on "
        "this server is skipped and says which. The jobs together must fit the segment-everything budget "
        f"({w.config.max_everything_seconds:.0f} s estimated)."
    )
    defaults = EverythingSettings()
    with gr.Row():
        pipelines = gr.CheckboxGroup(
            [(f"{name}: {text}", name) for name, text in PIPELINES.items()],
            value=list(PIPELINES),
            label="Pipelines",
            scale=3,
        )
        reference = gr.Radio(list(PIPELINES), value=GRID_PIPELINE, label="Reference", scale=1)
    with gr.Row():
        points = gr.Slider(
            *LIMITS["points_per_side"], defaults.points_per_side, step=1, label="Grid points per side", scale=2
        )
        size = gr.Slider(*LIMITS["input_size"], defaults.input_size, step=64, label="Input size (longest side, px)")
        run = gr.Button("Compare pipelines", variant="primary", elem_id="compare-everything-run", scale=1)
        stop = gr.Button("Stop", variant="stop", elem_id="compare-everything-stop", scale=1)
    summary = gr.Markdown()
    gallery = gr.Gallery(label="Masks per pipeline", columns=3, height="auto", allow_preview=False)
    table = gr.Dataframe(headers=EVERYTHING_HEADERS, interactive=False, label="Masks, latency and agreement")

    async def on_compare(
        chosen: list[str],
        ref: str,
        pps: float,
        side: float,
        random: bool,
        request: gr.Request,
        progress=gr.Progress(),
    ) -> tuple[Any, ...]:
        state = sessions.session(request).state.get("segment", SegmentState())
        if state.image is None:
            return [], None, with_banner(NO_IMAGE, random)
        try:
            settings = EverythingSettings.checked(points_per_side=pps, input_size=side)
            comparison, working, cached = await parts.everything_compare.answer(
                state.image, chosen, ref, settings, random, request, progress
            )
        except HANDLED as error:
            return [], None, with_banner(f"**{hide_paths(str(error))}**", random)
        return (
            everything_compare.overlays(comparison, working),
            everything_compare.table(comparison),
            with_banner(everything_compare.summary(comparison, cached), random),
        )

    event = run.click(
        on_compare,
        [pipelines, reference, points, size, w.random_weights],
        [gallery, table, summary],
        **w.private,
        **w.heavy,
    )
    w.stop_button(stop, event)
