"""Text shown to visitors: banners, readable errors without server paths, and safe file names."""

from __future__ import annotations

import re

import gradio as gr

RANDOM_NOTE = "**RANDOM WEIGHTS: these masks are meaningless.**\n\n"
# An absolute POSIX path (not inside a URL): only its last component is shown to visitors.
_SERVER_PATH = re.compile(r"(?<![\w:/.])/(?:[^\s/'\"()]+/)+([^\s/'\"()]*)")


def hide_paths(text: str) -> str:
    """text with every absolute server path reduced to its file name."""
    return _SERVER_PATH.sub(lambda match: match.group(1) or "the server's folder", text)


def weights_message(error: Exception) -> str:
    return hide_paths(str(error)) + "\nOr tick “Random weights” to try the interface without checkpoints."


def with_banner(text: str, random_weights: bool) -> str:
    return RANDOM_NOTE + text if random_weights else text


def user_error(error: Exception) -> gr.Error:
    """A handled error for an API caller: its message, no server paths, and no traceback in the log."""
    return gr.Error(hide_paths(str(error)), print_exception=False)


def safe_stem(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:64]
    return cleaned or "image"
