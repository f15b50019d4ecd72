"""What every tab's layout needs to wire its events: the server's parts and the shared event settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from .config import AppConfig
from .parts import Parts

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
EXAMPLES = ("cat_chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")  # see assets/README.md


@dataclass(frozen=True)
class Wiring:
    """The parts, the "Random weights" checkbox and the event settings of the three lanes.

    Clicks run in the "interactive" lane without a progress overlay (it would cover the canvas and swallow the
    next clicks); encodings in the "encode" lane; heavy jobs in the "heavy" lane, bounded by `parts.lane` (which
    reports positions in line). UI events are private; the API's are named.
    """

    config: AppConfig
    parts: Parts
    random_weights: gr.Checkbox
    examples: tuple[str, ...]

    @property
    def interactive(self) -> dict[str, Any]:
        return {
            "concurrency_id": "interactive",
            "concurrency_limit": self.config.interactive_concurrency,
            "show_progress": "hidden",
        }

    @property
    def encode(self) -> dict[str, Any]:
        return {"concurrency_id": "encode", "concurrency_limit": self.config.encode_concurrency}

    @property
    def heavy(self) -> dict[str, Any]:
        return {"concurrency_id": "heavy", "concurrency_limit": None}

    private = {"api_visibility": "private"}

    def stop_button(self, button: gr.Button, event: Any) -> None:
        """`button` cancels `event` (and every job of the caller's session)."""

        def on_stop(request: gr.Request) -> None:
            self.parts.sessions.cancel_jobs(request)

        button.click(on_stop, None, None, cancels=[event], queue=False, **self.private)


def example_paths() -> tuple[str, ...]:
    """The example photos that are present."""
    return tuple(str(ASSETS_DIR / name) for name in EXAMPLES if (ASSETS_DIR / name).is_file())
