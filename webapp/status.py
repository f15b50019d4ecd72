"""The "Models and weights" panel: each model's weights, with no server path in it."""

from __future__ import annotations

from samkit.checkpoints import checkpoint_status
from samkit.models import LABELS

from .messages import hide_paths
from .model_store import ModelStore


def weights_row(store: ModelStore, name: str) -> str:
    """One model's state in words: loaded, loading, downloading, on disk, missing (and where to get it)."""
    if not name.startswith("fastsam-"):
        status = store.status(name)
        if status.state not in ("available", "missing"):
            return f"**{status.state}**: {hide_paths(status.detail)}"
    found = checkpoint_status(name, cache_dir=store.checkpoint_dir)
    if found.present:
        return "**available**: on disk; loads on first use"
    how = "it is downloaded on first use" if store.may_download(name) else "downloads are off on this server"
    return (
        f"**missing**: {found.info.filename} is not in the checkpoint folder ({how}); to install it by hand, "
        f"download {found.info.url} into the folder given with --checkpoint-dir"
    )


def status_markdown(store: ModelStore, models: list[str]) -> str:
    rows = ["| model | weights |", "|---|---|"]
    rows += [f"| {LABELS.get(name, name)} | {weights_row(store, name)} |" for name in models]
    return "\n".join(rows)
