"""`DIR/run.json`: what the results in an output folder were made with, so that a rerun reuses only matching ones.

    {"version": 1,
     "settings": {"pipeline" (`everything.pipelines`: grid, mobilesamv2 or mobilesam-boxes), "model", "weights"
                  (checkpoint SHA-256, one per file for MobileSAMv2, or "random (seed N)"), "prompts", "boxes"
                  (detector file SHA-256, or "caller boxes"), every knob (defaults included), "format", "overlay"},
     "inputs": {NAME: {"file": absolute path, "boxes_sha256": for caller boxes}}}

`open_run` compares a new run with the record: other settings are refused (what differs is named) unless
`restart`, which first removes the folder's earlier outputs; a NAME whose result exists but was made from
another file (or other caller boxes) is refused too. New NAMEs are added. The engine and device are not
settings: a run may resume another engine's results.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mobile_sam.utils.atomic import atomic_write_bytes

from .inputs import ImageInput
from .results import ANNOTATIONS_FILE, FAILURES_FILE, MASKS_FOLDER, RESULTS_FOLDER, result_path

RUN_FILE = "run.json"
RUN_VERSION = 1


class ResumeError(ValueError):
    """The output folder holds results made otherwise than this run would make them (the message says how)."""


def boxes_sha256(boxes: np.ndarray) -> str:
    """A stable hash of (N, 4) caller boxes (their float64 values in order)."""
    return hashlib.sha256(np.ascontiguousarray(boxes, dtype=np.float64).tobytes()).hexdigest()


def input_records(inputs: Sequence[ImageInput], boxes: Mapping[str, np.ndarray] | None) -> dict[str, dict[str, str]]:
    """The record of each input: its file, and the hash of its caller boxes when a boxes file gives them."""
    records = {}
    for item in inputs:
        record = {"file": item.source}
        if boxes is not None:
            record["boxes_sha256"] = boxes_sha256(boxes[item.name])
        records[item.name] = record
    return records


def open_run(out: Path, settings: dict[str, Any], inputs: dict[str, dict[str, str]], restart: bool) -> list[str]:
    """Check `out` against this run and record the run in `out/run.json`; returns the names already done.

    Raises:
      ResumeError: results made with other settings (and not `restart`), results of other files under
        this run's names, or results in `out` without a record (made before records were kept).
    """
    out = Path(out)
    path = out / RUN_FILE
    settings, inputs = json.loads(json.dumps(settings)), json.loads(json.dumps(inputs))  # as they read back
    if restart:
        remove_outputs(out)
    recorded = _read(path) if path.is_file() else None
    if recorded is None:
        if (out / RESULTS_FOLDER).exists() or (out / MASKS_FOLDER).exists():
            raise ResumeError(
                f"{out} holds results but no {RUN_FILE} saying how they were made; use another --out, "
                "or --restart to delete them"
            )
        recorded = {"version": RUN_VERSION, "settings": settings, "inputs": {}}
    changed = _differences(recorded["settings"], settings)
    if changed:
        raise ResumeError(
            f"{out} holds results made with other settings ({changed}); use another --out, or --restart to "
            "delete them and start again"
        )
    done = [name for name in inputs if result_path(out, name).is_file()]
    moved = [name for name in done if recorded["inputs"].get(name) != inputs[name]]
    if moved:
        described = "; ".join(_moved(name, recorded["inputs"].get(name, {}), inputs[name]) for name in moved[:10])
        raise ResumeError(
            f"{len(moved)} result(s) in {out} were made from other files or boxes under the same names ({described}); "
            "use another --out, or --restart to delete them"
        )
    recorded["inputs"].update(inputs)
    atomic_write_bytes(path, json.dumps(recorded, indent=1).encode("utf-8"))
    return done


def remove_outputs(out: Path) -> None:
    """Delete what earlier runs wrote into `out` (the layout's own entries only; anything else stays)."""
    out = Path(out)
    for folder in (RESULTS_FOLDER, MASKS_FOLDER):
        shutil.rmtree(out / folder, ignore_errors=True)
    for name in (RUN_FILE, ANNOTATIONS_FILE, FAILURES_FILE):
        (out / name).unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        recorded = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResumeError(f"cannot read {path} ({error}); use another --out, or --restart") from error
    if not isinstance(recorded, dict) or recorded.get("version") != RUN_VERSION:
        raise ResumeError(f"{path} is not a run record of version {RUN_VERSION}; use another --out, or --restart")
    return recorded


def _moved(name: str, before: Mapping[str, str], now: Mapping[str, str]) -> str:
    if before.get("file") == now["file"]:
        return f"{name}: other boxes for {now['file']}"
    return f"{name}: from {before.get('file', 'an unrecorded file')}, now {now['file']}"


def _differences(before: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> str:
    """'key: before -> now' for every setting that differs (nested dicts by their keys)."""
    parts = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            inner = _differences(a, b, f"{prefix}{key}.")
            if inner:
                parts.append(inner)
        elif a != b:
            parts.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return ", ".join(parts)
