"""The results of a comparison run, with CSV and JSON round trips."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .timing import TimingStats


@dataclass(frozen=True)
class CaseRecord:
    """One model's answer to one prompt, compared with the reference model's mask for the same prompt.

    `iou` is against the reference model (1.0 for the reference itself); `decoder_ms` is the prompt-to-mask time;
    `prompt` is `Prompts.to_dict()`; `distance` is the point distance of the points2 protocol, else None.
    """

    image: str
    case: int
    protocol: str
    condition: str
    model: str
    iou: float
    score: float
    decoder_ms: float
    mask_area: int
    prompt: dict[str, Any]
    distance: float | None = None


@dataclass(frozen=True)
class EncoderRecord:
    """One timed `prepare(image)` (image encoding; FastSAM: its network pass and mask post-processing)."""

    image: str
    model: str
    run: int
    encoder_ms: float


@dataclass
class ComparisonResult:
    """Everything a comparison run measured.

    Attributes:
        reference: name of the reference model (the paper's "ground truth": original SAM).
        models: names of every model run, the reference first.
        cases: one CaseRecord per (prompt, model).
        encoder_runs: the timed encoder runs, per image and model (warm-up runs are not recorded).
        parameters: per model, {"encoder", "decoder", "total", "unused"} parameter counts.
        settings: how the run was made (seed, protocol, device, threads, random_weights, ...).
    """

    reference: str
    models: list[str]
    cases: list[CaseRecord] = field(default_factory=list)
    encoder_runs: list[EncoderRecord] = field(default_factory=list)
    parameters: dict[str, dict[str, int]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def encoder_stats(self, model: str) -> TimingStats:
        """Median / p90 of the model's timed encoder runs."""
        return TimingStats.from_samples([r.encoder_ms for r in self.encoder_runs if r.model == model])

    def decoder_stats(self, model: str) -> TimingStats:
        """Median / p90 of the model's per-prompt decoder times."""
        return TimingStats.from_samples([r.decoder_ms for r in self.cases if r.model == model])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (inverse: `from_dict`)."""
        return {
            "reference": self.reference,
            "models": list(self.models),
            "settings": self.settings,
            "parameters": self.parameters,
            "cases": [asdict(c) for c in self.cases],
            "encoder_runs": [asdict(r) for r in self.encoder_runs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComparisonResult:
        """Rebuild a result from `to_dict` output."""
        return cls(
            reference=data["reference"],
            models=list(data["models"]),
            cases=[CaseRecord(**c) for c in data["cases"]],
            encoder_runs=[EncoderRecord(**r) for r in data["encoder_runs"]],
            parameters={k: dict(v) for k, v in data["parameters"].items()},
            settings=dict(data["settings"]),
        )

    def save_json(self, path: str | Path) -> Path:
        """Write the whole result as JSON."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> ComparisonResult:
        """Read a result written by `save_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def save_cases_csv(self, path: str | Path) -> Path:
        """Write one CSV row per (prompt, model); `prompt` is a JSON string, a missing `distance` an empty cell."""
        path = Path(path)
        names = [f.name for f in fields(CaseRecord)]
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            for case in self.cases:
                row = asdict(case)
                row["prompt"] = json.dumps(row["prompt"])
                row["distance"] = "" if row["distance"] is None else row["distance"]
                writer.writerow(row)
        return path

    def save_encoder_csv(self, path: str | Path) -> Path:
        """Write one CSV row per timed encoder run."""
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(EncoderRecord)])
            writer.writeheader()
            writer.writerows(asdict(r) for r in self.encoder_runs)
        return path


def load_cases_csv(path: str | Path) -> list[CaseRecord]:
    """Read the rows written by `ComparisonResult.save_cases_csv`."""
    with Path(path).open(newline="") as f:
        return [
            CaseRecord(
                image=row["image"],
                case=int(row["case"]),
                protocol=row["protocol"],
                condition=row["condition"],
                model=row["model"],
                iou=float(row["iou"]),
                score=float(row["score"]),
                decoder_ms=float(row["decoder_ms"]),
                mask_area=int(row["mask_area"]),
                prompt=json.loads(row["prompt"]),
                distance=None if row["distance"] == "" else float(row["distance"]),
            )
            for row in csv.DictReader(f)
        ]


def load_encoder_csv(path: str | Path) -> list[EncoderRecord]:
    """Read the rows written by `ComparisonResult.save_encoder_csv`."""
    with Path(path).open(newline="") as f:
        return [
            EncoderRecord(
                image=row["image"], model=row["model"], run=int(row["run"]), encoder_ms=float(row["encoder_ms"])
            )
            for row in csv.DictReader(f)
        ]


@dataclass(frozen=True)
class MaskExample:
    """The masks of every model for one prompt, kept for the side-by-side figure (not written to CSV/JSON).

    Attributes:
        image: image name; `rgb` its HxWx3 uint8 pixels.
        prompt: the prompt as `Prompts.to_dict()`.
        masks: per model, the HxW boolean mask; `ious`: per model, IoU with the reference mask.
    """

    image: str
    rgb: np.ndarray
    prompt: dict[str, Any]
    masks: dict[str, np.ndarray]
    ious: dict[str, float]
