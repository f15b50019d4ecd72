"""The Gradio Blocks of the app: the banner, the three tabs, the models panel and the API, wired to the parts;
`serve` launches them with what the page's decoder needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from samkit.devices import resolve_device
from samkit.models import MOBILE_SAM

from .api_layout import add_api
from .compare_layout import add_compare_tab
from .config import AppConfig
from .everything_layout import add_everything_tab
from .examples import keep_example_copies
from .model_store import ModelStore
from .parts import Parts
from .segment_layout import add_segment_tab
from .status import status_markdown
from .web_assets import CrossOriginIsolation
from .wiring import Wiring, example_paths

DRAG_BOX_JS = Path(__file__).with_name("drag_box.js")
PAGE_MODULE = "segment_page.js"  # webapp/browser/: the segment tab's masks in the page
RANDOM_BANNER = (
    '<div id="random-weights-banner" style="background:#b91c1c;color:white;padding:10px 14px;'
    'border-radius:8px;font-weight:600">Random weights: the models are randomly initialised, so every '
    "mask below is meaningless. Untick “Random weights” (with checkpoints installed) for real results.</div>"
)


def new_store(config: AppConfig) -> ModelStore:
    """The server's model store, as the config says."""
    return ModelStore(
        resolve_device(config.device),
        config.checkpoint_dir,
        config.download,
        config.embedding_cache_items,
        max_models=config.model_cache_items,
        download_large=config.download_large,
    )


def build_app(config: AppConfig, store: ModelStore | None = None, parts: Parts | None = None) -> gr.Blocks:
    """The Blocks app; store and parts default to new ones for config (tests pass their own)."""
    store = store or new_store(config)
    parts = parts or Parts.create(config, store)
    with gr.Blocks(
        title="MobileSAM: Faster Segment Anything",
        delete_cache=(min(60, config.upload_max_age_s), config.upload_max_age_s),
    ) as demo:
        gr.Markdown(
            "# MobileSAM: Faster Segment Anything\nClick on an image to segment an object (MobileSAM, Zhang "
            "et al. 2023), segment everything in an image, or compare MobileSAM with SAM and FastSAM."
        )
        banner = gr.HTML(RANDOM_BANNER, visible=config.random_weights)
        random_weights = gr.Checkbox(
            config.random_weights, label="Random weights (try the interface without checkpoints; masks are meaningless)"
        )
        wiring = Wiring(config, parts, random_weights, example_paths())
        add_segment_tab(wiring)
        add_everything_tab(wiring)
        add_compare_tab(wiring)
        _add_models_panel(wiring, store)
        random_weights.change(lambda on: gr.update(visible=on), random_weights, banner, **wiring.private, queue=False)
        add_api(wiring)

        def on_unload(request: gr.Request) -> None:
            parts.sessions.end(request)

        demo.unload(on_unload)
        demo.load(None, None, None, js=DRAG_BOX_JS.read_text())
    keep_example_copies(demo)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.encode_concurrency)
    demo.mobile_sam_parts = parts  # for the entry point's shutdown and the tests
    return demo


def serve(demo: gr.Blocks, **launch_options: Any) -> Any:
    """`demo.launch(**launch_options)` with the page's decoder (unless the config turned it off): its routes, the page
    module in the head, the cross-origin isolation headers when the config asks for them; onnxruntime-web's files
    and the served model's decoder are prepared in the background (a visitor never waits for them: until they are
    ready, the server answers alone)."""
    parts: Parts = demo.mobile_sam_parts
    if parts.browser is not None:
        parts.browser.start(warm=parts.warm_model)
        app_kwargs = {"routes": parts.browser.routes()}
        if parts.config.cross_origin_isolation:
            app_kwargs["middleware"] = [Middleware(CrossOriginIsolation)]
        module = parts.browser.assets.module_url(PAGE_MODULE)
        launch_options = {
            **launch_options,
            "app_kwargs": {**launch_options.get("app_kwargs", {}), **app_kwargs},
            "head": f'<script type="module">import("{module}");</script>',
        }
    return demo.launch(**launch_options)


def _add_models_panel(w: Wiring, store: ModelStore) -> None:
    """Each served model's weights: loaded, downloading, on disk or missing (refreshed every 3 s)."""
    names = [MOBILE_SAM, *[n for n in w.parts.compare.allowed if n != MOBILE_SAM]]
    with gr.Accordion("Models and weights", open=False):
        status = gr.Markdown(status_markdown(store, names))
        gr.Button("Refresh").click(lambda: status_markdown(store, names), None, status, **w.private, queue=False)
        gr.Timer(3.0).tick(
            lambda: status_markdown(store, names), None, status, **w.private, queue=False, show_progress="hidden"
        )
