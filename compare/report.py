"""Markdown tables of a comparison: mIoU per model and protocol condition, latency, parameters."""

from __future__ import annotations

from dataclasses import dataclass

from samkit.metrics import mean_iou

from .fastsam_rules import FASTSAM_RULES_DESCRIPTIONS
from .results import ComparisonResult

RANDOM_WEIGHTS_NOTE = (
    "**Random weights**: every model here has randomly initialised weights, so masks, mIoU values and scores are "
    "meaningless; only the timings and parameter counts describe the architectures (FastSAM's time grows with "
    "the number of objects it finds, few or none with random weights, so its time is understated)."
)


@dataclass(frozen=True)
class MiouRow:
    """mIoU of one model against the reference over the `count` prompts of one protocol condition."""

    model: str
    protocol: str
    condition: str
    miou: float
    count: int


def miou_rows(result: ComparisonResult) -> list[MiouRow]:
    """mIoU per (model, protocol, condition) for every model but the reference, in run order."""
    groups: dict[tuple[str, str, str], list[float]] = {}
    for case in result.cases:
        if case.model != result.reference:
            groups.setdefault((case.model, case.protocol, case.condition), []).append(case.iou)
    return [MiouRow(m, p, c, mean_iou(v), len(v)) for (m, p, c), v in groups.items()]


def _conditions(result: ComparisonResult) -> list[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for case in result.cases:
        seen.setdefault((case.protocol, case.condition), None)
    return list(seen)


def _label(protocol: str, condition: str) -> str:
    return protocol if condition == "all" else f"{protocol} {condition}"


def miou_markdown(result: ComparisonResult) -> str:
    """A markdown table: one row per model, one column per protocol condition, cells 'mIoU (n)'."""
    rows = {(r.model, r.protocol, r.condition): r for r in miou_rows(result)}
    conditions = _conditions(result)
    lines = [
        f"| model (mIoU vs {result.reference}) | " + " | ".join(_label(p, c) for p, c in conditions) + " |",
        "|---" * (len(conditions) + 1) + "|",
    ]
    for model in result.models:
        if model == result.reference:
            continue
        cells = []
        for p, c in conditions:
            row = rows.get((model, p, c))
            cells.append("—" if row is None else f"{row.miou:.3f} ({row.count})")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_markdown(result: ComparisonResult) -> str:
    """A markdown table of encoder and per-prompt decoder latency (median and p90, milliseconds) per model."""
    lines = [
        "| model | encoder median ms | encoder p90 ms | decoder median ms | decoder p90 ms | encoder + decoder ms |",
        "|---|---|---|---|---|---|",
    ]
    for model in result.models:
        enc = result.encoder_stats(model)
        dec = result.decoder_stats(model)
        lines.append(
            f"| {model} | {enc.median_ms:.1f} | {enc.p90_ms:.1f} | {dec.median_ms:.2f} | {dec.p90_ms:.2f} "
            f"| {enc.median_ms + dec.median_ms:.1f} |"
        )
    return "\n".join(lines)


def _millions(n: int) -> str:
    return f"{n / 1e6:.3f}M"


def parameters_markdown(parameters: dict[str, dict[str, int]], paper: dict[str, str] | None = None) -> str:
    """A markdown table of encoder / decoder / total parameters and the unused ones (e.g. TinyViT's classifier
    head, included in total); `paper` adds a column of quoted figures by model name."""
    header = "| model | encoder | decoder | total | unused (in total) |"
    rule = "|---|---|---|---|---|"
    if paper is not None:
        header, rule = header + " paper |", rule + "---|"
    lines = [header, rule]
    for model, counts in parameters.items():
        line = (
            f"| {model} | {_millions(counts['encoder'])} | {_millions(counts['decoder'])} | "
            f"{_millions(counts['total'])} | {_millions(counts.get('unused', 0))} |"
        )
        if paper is not None:
            line += f" {paper.get(model, '—')} |"
        lines.append(line)
    return "\n".join(lines)


def skipped_distances_note(result: ComparisonResult) -> str:
    """A sentence naming the points2 distances left out per image because they do not fit it ("" when none)."""
    skipped = result.settings.get("skipped_distances") or {}
    if not skipped:
        return ""
    sizes = result.settings.get("image_sizes") or {}

    def image(name: str) -> str:
        return f"{name} ({sizes[name][1]}x{sizes[name][0]})" if name in sizes else name

    parts = [f"{image(name)}: {', '.join(f'{d:g}' for d in distances)} px" for name, distances in skipped.items()]
    return "Distances that do not fit an image (longer than it can hold) were left out: " + "; ".join(parts) + "."


def fastsam_rules_note(result: ComparisonResult) -> str:
    """A sentence saying which rules chose FastSAM's masks ("" when FastSAM did not run)."""
    rules = result.settings.get("fastsam_rules")
    if rules is None:
        return ""
    return f"FastSAM's masks follow the {rules!r} prompt rules: {FASTSAM_RULES_DESCRIPTIONS.get(rules, rules)}."


def markdown_report(result: ComparisonResult) -> str:
    """The full report: a random-weights warning when it applies, mIoU, latency, parameters, settings."""
    parts = ["# Model comparison", ""]
    if result.settings.get("random_weights"):
        parts += [RANDOM_WEIGHTS_NOTE, ""]
    parts += ["## Mask agreement with the reference", "", miou_markdown(result), ""]
    for note in (skipped_distances_note(result), fastsam_rules_note(result)):
        if note:
            parts += [note, ""]
    parts += ["## Latency", "", latency_markdown(result), ""]
    if result.parameters:
        parts += ["## Parameters", "", parameters_markdown(result.parameters), ""]
    parts += ["## Settings", ""]
    parts += [f"- {key}: {value}" for key, value in result.settings.items()]
    return "\n".join(parts) + "\n"
