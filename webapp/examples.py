"""Keeping the example images served: Gradio's cache cleaning must not delete their cached copies."""

from __future__ import annotations

import gradio as gr


def keep_example_copies(demo: gr.Blocks) -> None:
    """
    Mark every file Gradio copied into its cache while the app was built (the examples' copies) as
    kept, so `delete_cache` removes only visitors' uploads and results. Call after building, before launch.
    """
    built = set().union(*demo.temp_file_sets) if demo.temp_file_sets else set()
    for block in demo.blocks.values():
        if isinstance(block, gr.Dataset):
            block.keep_in_cache.update(built)
            return
    demo.keep_in_cache.update(built)
