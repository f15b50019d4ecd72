"""Write everything a comparison run produced into one folder."""

from __future__ import annotations

from pathlib import Path

from .figures import plot_latency, plot_mask_grid, plot_miou_vs_distance
from .report import markdown_report
from .runner import ComparisonRun


def write_outputs(run: ComparisonRun, out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, cases.csv, encoder.csv, report.md, latency.png, masks.png and, for the points2
    protocol, miou_vs_distance.png into `out_dir` (created if needed). Returns the paths by short name."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = run.result
    paths = {
        "json": result.save_json(out / "results.json"),
        "cases_csv": result.save_cases_csv(out / "cases.csv"),
        "encoder_csv": result.save_encoder_csv(out / "encoder.csv"),
    }
    report = out / "report.md"
    report.write_text(markdown_report(result))
    paths["report"] = report
    if result.cases:
        paths["latency"] = plot_latency(result, out / "latency.png")
    if any(c.protocol == "points2" for c in result.cases):
        paths["miou_vs_distance"] = plot_miou_vs_distance(result, out / "miou_vs_distance.png")
    if run.examples:
        random_weights = bool(result.settings.get("random_weights"))
        paths["masks"] = plot_mask_grid(run.examples, result.models, out / "masks.png", random_weights=random_weights)
    return paths
