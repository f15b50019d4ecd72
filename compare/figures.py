"""Figures of a comparison (matplotlib, no display needed): mIoU vs point distance, latency bars, a mask grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .report import miou_rows
from .results import ComparisonResult, MaskExample

_RANDOM_NOTE = "random weights: masks and mIoU are meaningless"
_RANDOM_LATENCY_NOTE = "random weights: FastSAM finds few or no objects, so its time is understated"


def _title(text: str, result_settings: dict, note: str = _RANDOM_NOTE) -> str:
    return f"{text}\n({note})" if result_settings.get("random_weights") else text


def plot_miou_vs_distance(result: ComparisonResult, path: str | Path) -> Path:
    """Line plot of mIoU against the points2 distance, one line per model (the paper's Table 7 as a figure)."""
    rows = [r for r in miou_rows(result) if r.protocol == "points2"]
    if not rows:
        raise ValueError("the result has no points2 cases to plot against distance")
    distance_of = {(c.protocol, c.condition): c.distance for c in result.cases}
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for model in result.models:
        points = sorted((distance_of[(r.protocol, r.condition)], r.miou) for r in rows if r.model == model)
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=model)
    ax.set_xlabel("distance between foreground and background point (px)")
    ax.set_ylabel(f"mIoU vs {result.reference}")
    ax.set_ylim(0.0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(_title("Two-point prompts (paper Table 7)", result.settings), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_latency(result: ComparisonResult, path: str | Path) -> Path:
    """Stacked bars per model: median encoder time plus median per-prompt decoder time (milliseconds)."""
    models = list(result.models)
    enc = np.array([result.encoder_stats(m).median_ms for m in models])
    dec = np.array([result.decoder_stats(m).median_ms for m in models])
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    x = np.arange(len(models))
    ax.bar(x, enc, label="encoder (per image)")
    ax.bar(x, dec, bottom=enc, label="decoder (per prompt)")
    for xi, total in zip(x, enc + dec):
        ax.annotate(f"{total:.0f} ms", (xi, total), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, models)
    ax.set_ylabel("median latency (ms)")
    device = result.settings.get("device", "?")
    threads = result.settings.get("threads", "?")
    ax.set_title(_title(f"Latency on {device}, {threads} threads", result.settings, _RANDOM_LATENCY_NOTE), fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def _overlay(
    rgb: np.ndarray, mask: np.ndarray, max_side: int, color: Sequence[float] = (0.12, 0.56, 1.0)
) -> np.ndarray:
    """The image with the mask tinted, shrunk (nearest pixel) so its longest side is at most `max_side`."""
    step = max(1, int(np.ceil(max(rgb.shape[:2]) / max_side)))
    out = rgb[::step, ::step].astype(np.float64) / 255.0
    small = mask[::step, ::step]
    out[small] = 0.45 * out[small] + 0.55 * np.asarray(color)
    return out


def _draw_prompt(ax, prompt: dict) -> None:
    points = np.asarray(prompt.get("points", []), dtype=np.float64).reshape(-1, 2)
    labels = np.asarray(prompt.get("labels", []))
    for label, color in ((1, "lime"), (0, "red")):
        sel = points[labels == label]
        if len(sel):
            ax.scatter(sel[:, 0], sel[:, 1], c=color, marker="*", s=120, edgecolors="white", linewidths=0.8)
    for x0, y0, x1, y1 in prompt.get("boxes", []):
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="yellow", linewidth=1.5)


def plot_mask_grid(
    examples: Sequence[MaskExample],
    models: Sequence[str],
    path: str | Path,
    random_weights: bool = False,
    max_side: int = 240,
) -> Path:
    """A grid of masks: one row per example prompt, one column per model, IoU vs the reference in each title.

    Images are shown at most `max_side` pixels on their longest side (prompts stay in original-pixel coordinates).
    """
    if not examples:
        raise ValueError("no examples to draw")
    rows, cols = len(examples), len(models)
    fig = Figure(figsize=(2.6 * cols, 2.3 * rows + (0.4 if random_weights else 0)), dpi=80)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, example in enumerate(examples):
        h, w = example.rgb.shape[:2]
        for c, model in enumerate(models):
            ax = axes[r][c]
            ax.imshow(_overlay(example.rgb, example.masks[model], max_side), extent=(-0.5, w - 0.5, h - 0.5, -0.5))
            _draw_prompt(ax, example.prompt)
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            label = f"{example.image}\n{model}" if c == 0 else f"\n{model}"
            ax.set_title(f"{label}, IoU {example.ious[model]:.2f}", fontsize=7)
            ax.set_axis_off()
    if random_weights:
        fig.suptitle(_RANDOM_NOTE, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
