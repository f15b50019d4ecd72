"""
MobileSAM web demo: segment anything, segment everything, compare SAM / MobileSAM / FastSAM.

This file only wires Gradio events to library calls (`mobile_sam`, `everything`, `compare`) and
formats their results. Per-user state lives in `gr.State`; models and image embeddings are shared
read-only through one `ModelStore` created in `main()`.

    python app.py --help
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import weakref
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from matplotlib.figure import Figure

from compare import FastSamBackend, MobileSamBackend, Prompt, SamBackend, mask_iou, mean_iou
from compare.backends import fastsam_architecture, load_fastsam_checkpoint
from compare.protocols import protocol_rng, random_point_cases
from everything import SamAutomaticMaskGenerator
from everything.export import ImageMasks, coco_dict, write_mask_pngs
from everything.export import overlay_masks as overlay_records
from mobile_sam.checkpoints import CheckpointError, checkpoint_status, resolve_checkpoint
from mobile_sam.device import resolve_device
from mobile_sam.embedding_cache import EmbeddingCache, image_key
from mobile_sam.export import (
    atomic_write_bytes,
    mask_records,
    mask_to_rle,
    save_coco_json,
    save_cutout_png,
    save_mask_png,
)
from mobile_sam.image import ImageLoadError, limit_image_side, load_image
from mobile_sam.model_store import ModelStore
from mobile_sam.prompts import Prompts
from mobile_sam.session import segment
from mobile_sam.visualize import draw_prompts, mask_colors, overlay_masks

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
MODEL_CALLS = "model"  # the concurrency id shared by every event that runs a model
MODE_FOREGROUND = "Foreground point"
MODE_BACKGROUND = "Background point"
MODE_BOX = "Box (drag, or click two corners)"
MODES = (MODE_FOREGROUND, MODE_BACKGROUND, MODE_BOX)
THUMBNAIL_SIDE = 320
NO_IMAGE = "Upload an image or pick an example first."
EXAMPLES = ("cat_chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg")  # see assets/README.md
REFERENCES = {"SAM ViT-H (as in the paper)": "vit_h", "SAM ViT-L": "vit_l", "SAM ViT-B": "vit_b"}
COMPARED = {"MobileSAM": "vit_t", "FastSAM-s": "fastsam-s", "FastSAM-x": "fastsam-x"}
MODEL_NAMES = {"vit_t": "MobileSAM", "vit_b": "SAM ViT-B", "vit_l": "SAM ViT-L", "vit_h": "SAM ViT-H",
               "fastsam-s": "FastSAM-s", "fastsam-x": "FastSAM-x"}
USER_PROMPTS = "My points and boxes (Segment anything tab)"
PROTOCOL_PROMPTS = "Random foreground points (seeded protocol)"
RANDOM_BANNER = (
    '<div id="random-weights-banner" style="background:#b91c1c;color:white;padding:10px 14px;'
    'border-radius:8px;font-weight:600">Random weights: the models are randomly initialised, so every '
    "mask below is meaningless. Untick “Random weights” (with checkpoints installed) for real results.</div>"
)


@dataclass(frozen=True)
class AppConfig:
    """Server and model settings (the command line maps onto these)."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    device: str = "auto"
    checkpoint_dir: Path | None = None
    random_weights: bool = False
    max_image_side: int = 2048
    download: bool = True
    model_concurrency: int = 2
    queue_size: int = 64
    max_file_size: str = "25mb"
    embedding_cache_items: int = 8


@dataclass(frozen=True)
class SegmentState:
    """One user's segment-anything session; replaced (never mutated) by every event."""

    image: np.ndarray | None = None  # HxWx3 uint8, upright and size-limited: what the model sees
    name: str = ""
    notice: str = ""
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    pending_corner: tuple[float, float] | None = None
    undo: tuple[tuple, ...] = ()  # earlier (points, labels, boxes, pending_corner) snapshots
    masks: np.ndarray | None = None  # KxHxW bool
    scores: np.ndarray | None = None  # K
    candidates: bool = False  # the K masks are alternatives for one prompt (pick one) or one per box
    selected: int = 0
    timing: str = ""
    message: str = ""

    def prompts(self) -> Prompts:
        return Prompts.from_lists(self.points, self.labels, self.boxes)

    def snapshot(self) -> tuple:
        return (self.points, self.labels, self.boxes, self.pending_corner)

    def with_prompts(self, **changes: Any) -> "SegmentState":
        """A state with changed prompts, remembering the current ones for undo."""
        return replace(self, undo=(self.undo + (self.snapshot(),))[-100:], message="", **changes)


@dataclass(frozen=True)
class EverythingKnobs:
    """The automatic mask generator's settings exposed in the UI."""

    points_per_side: int = 32
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    crop_n_layers: int = 0
    min_mask_region_area: int = 0
    input_size: int = 1024


@dataclass
class Handlers:
    """The functions behind every event, with the shared model store (tests call them directly)."""

    config: AppConfig
    store: ModelStore
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mobile-sam-app-")))
    fastsam_prepared: EmbeddingCache = field(default_factory=lambda: EmbeddingCache(4))

    def __post_init__(self) -> None:
        weakref.finalize(self, shutil.rmtree, str(self.work_dir), True)  # download files go with the app

    # ---- images -------------------------------------------------------------------------------

    def read_image(self, path: str | None) -> tuple[np.ndarray, str, float]:
        """
        Load an uploaded file upright as RGB, downscaled to max_image_side.

        Returns:
          (np.ndarray): HxWx3 uint8.
          (str): a notice for the user when the image was downscaled, else "".
          (float): the scale applied (multiply original pixel coordinates by it).
        """
        if path is None:
            raise ValueError(NO_IMAGE)
        try:
            image = load_image(path)
        except ImageLoadError as error:  # name the file as the user knows it, not the server's temp path
            raise ImageLoadError(str(error).replace(str(path), Path(path).name)) from error
        except ImportError as error:
            # Once ultralytics is imported (FastSAM), PIL.Image.open tries to import an optional HEIF
            # plugin for files Pillow cannot identify; without it, the file is simply unreadable.
            raise ImageLoadError(f"Cannot read image '{Path(path).name}': not a recognised image format.") from error
        height, width = image.shape[:2]
        image, scale = limit_image_side(image, self.config.max_image_side)
        notice = ""
        if scale != 1.0:
            notice = (
                f"The image ({width}x{height}) was downscaled to {image.shape[1]}x{image.shape[0]} "
                f"(longest side {self.config.max_image_side} px, set with --max-image-side)."
            )
        return image, notice, scale

    def encoder_timing(self, image: np.ndarray, random_weights: bool) -> str:
        """Encode image with MobileSAM (or find it in the cache) and describe the encoder latency."""
        return _encoder_text(*self.store.embedding("vit_t", random_weights, image))

    # ---- segment anything: events ----------------------------------------------------------------

    def load(self, path: str | None, random_weights: bool, request: gr.Request | None = None) -> tuple:
        """A new image: reset the prompts and encode it once."""
        if path is None:
            return self.render(SegmentState(), random_weights, request)
        try:
            image, notice, _ = self.read_image(path)
        except (ImageLoadError, ValueError) as error:
            return self.render(SegmentState(message=str(error)), random_weights, request)
        state = SegmentState(image=image, name=Path(path).stem, notice=notice)
        try:
            state = replace(state, timing=self.encoder_timing(image, random_weights))
        except CheckpointError as error:
            state = replace(state, message=_weights_message(error))
        return self.render(state, random_weights, request)

    def click(
        self, state: SegmentState, mode: str, random_weights: bool, event: gr.SelectData, request: gr.Request | None = None
    ) -> tuple:
        """A click on the image: add a point, or a box corner in box mode."""
        x, y = (float(v) for v in event.index)
        return self.add_click(state, mode, x, y, random_weights, request)

    def add_click(
        self, state: SegmentState, mode: str, x: float, y: float, random_weights: bool, request: gr.Request | None = None
    ) -> tuple:
        if state.image is None:
            return self.render(replace(state, message=NO_IMAGE), random_weights, request)
        if mode == MODE_BOX:
            if state.pending_corner is None:
                state = state.with_prompts(pending_corner=(x, y))
                return self.render(replace(state, message="Now click the opposite corner of the box."), random_weights, request)
            return self.add_box(state, (*state.pending_corner, x, y), random_weights, request)
        label = 0 if mode == MODE_BACKGROUND else 1
        state = state.with_prompts(points=state.points + ((x, y),), labels=state.labels + (label,), pending_corner=None)
        return self.render(self.decode(state, random_weights), random_weights, request)

    def drag_box(self, state: SegmentState, box_json: str, random_weights: bool, request: gr.Request | None = None) -> tuple:
        """A box dragged on the image (sent by the page's script as JSON [x0, y0, x1, y1])."""
        if state.image is None:
            return self.render(replace(state, message=NO_IMAGE), random_weights, request)
        try:
            box = [float(v) for v in json.loads(box_json)]
            if len(box) != 4:
                raise ValueError
        except (TypeError, ValueError):
            return self.render(replace(state, message="Could not read the dragged box."), random_weights, request)
        return self.add_box(replace(state, pending_corner=None), tuple(box), random_weights, request)

    def add_box(self, state: SegmentState, box: tuple, random_weights: bool, request: gr.Request | None = None) -> tuple:
        x0, y0, x1, y1 = box
        if abs(x1 - x0) < 1 or abs(y1 - y0) < 1:
            state = state.with_prompts(pending_corner=None)
            message = "That box has zero area: its corners must differ in both x and y. Try again."
            return self.render(replace(state, message=message), random_weights, request)
        normalised = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        state = state.with_prompts(boxes=state.boxes + (normalised,), pending_corner=None)
        return self.render(self.decode(state, random_weights), random_weights, request)

    def undo(self, state: SegmentState, random_weights: bool, request: gr.Request | None = None) -> tuple:
        if not state.undo:
            return self.render(replace(state, message="Nothing to undo."), random_weights, request)
        points, labels, boxes, pending = state.undo[-1]
        state = replace(state, points=points, labels=labels, boxes=boxes, pending_corner=pending, undo=state.undo[:-1], message="")
        return self.render(self.decode(state, random_weights), random_weights, request)

    def clear(self, state: SegmentState, random_weights: bool, request: gr.Request | None = None) -> tuple:
        state = state.with_prompts(points=(), labels=(), boxes=(), pending_corner=None)
        return self.render(self.decode(state, random_weights), random_weights, request)

    def pick(self, state: SegmentState, random_weights: bool, event: gr.SelectData, request: gr.Request | None = None) -> tuple:
        """Choose one of the multimask candidates (a click in the candidates gallery)."""
        return self.choose(state, int(event.index), random_weights, request)

    def choose(self, state: SegmentState, index: int, random_weights: bool, request: gr.Request | None = None) -> tuple:
        if state.masks is None or not state.candidates or not 0 <= index < len(state.masks):
            return self.render(state, random_weights, request)
        return self.render(replace(state, selected=index, message=""), random_weights, request)

    def change_mode(self, state: SegmentState, random_weights: bool, request: gr.Request | None = None) -> tuple:
        """Another click mode: drop a half-drawn box; nothing else changes (no re-render)."""
        if state.pending_corner is None:
            return tuple(gr.skip() for _ in range(7))
        return self.render(replace(state, pending_corner=None, message=""), random_weights, request)

    def change_weights(self, state: SegmentState, random_weights: bool, request: gr.Request | None = None) -> tuple:
        """The random-weights toggle changed: encode with the other model and decode again."""
        if state.image is None:
            return self.render(state, random_weights, request)
        try:
            state = replace(state, timing=self.encoder_timing(state.image, random_weights), message="")
        except CheckpointError as error:
            return self.render(replace(state, masks=None, scores=None, message=_weights_message(error)), random_weights, request)
        return self.render(self.decode(state, random_weights), random_weights, request)

    # ---- segment anything: model calls and display -------------------------------------------------

    def decode(self, state: SegmentState, random_weights: bool) -> SegmentState:
        """Masks for the current prompts (the image embedding comes from the cache)."""
        cleared = replace(state, masks=None, scores=None, candidates=False, selected=0)
        prompts = state.prompts()
        if state.image is None or prompts.is_empty():
            return cleared
        try:
            embedding, cached = self.store.embedding("vit_t", random_weights, state.image)
            result = segment(embedding, prompts, multimask_output=True)
        except CheckpointError as error:
            return replace(cleared, message=_weights_message(error))
        except ValueError as error:
            return replace(cleared, message=str(error))
        timing = f"{_encoder_text(embedding, cached)} · mask decoder: {1000 * result.decode_seconds:.0f} ms"
        message = state.message
        if len(result.unused_points):
            message = f"{len(result.unused_points)} point(s) outside every box were not used (with several boxes, points refine the box they are in)."
        return replace(
            state,
            masks=result.masks,
            scores=result.scores,
            candidates=result.candidates,
            selected=int(np.argmax(result.scores)) if result.candidates else 0,
            timing=timing,
            message=message,
        )

    def render(self, state: SegmentState, random_weights: bool, request: gr.Request | None = None) -> tuple:
        """All outputs of the segment-anything tab for a state."""
        if state.image is None:
            info = _format_info(state, random_weights)
            return (state, None, [], info, None, None, None)
        shown = self.chosen_masks(state)
        canvas = overlay_masks(state.image, shown, colors=self.colors(state, len(shown))) if len(shown) else state.image
        canvas = draw_prompts(canvas, state.points, state.labels, state.boxes, state.pending_corner)
        gallery = self.gallery(state)
        files: tuple = (None, None, None)
        if len(shown):
            files = self.write_downloads(state, shown, request)
        return (state, canvas, gallery, _format_info(state, random_weights), *files)

    def chosen_masks(self, state: SegmentState) -> list[np.ndarray]:
        if state.masks is None:
            return []
        if state.candidates:
            return [state.masks[state.selected]]
        return list(state.masks)

    def colors(self, state: SegmentState, count: int) -> np.ndarray:
        if state.candidates:
            return np.array([[30, 144, 255]], dtype=np.uint8)
        return mask_colors(count, seed=0)

    def gallery(self, state: SegmentState) -> list[tuple[np.ndarray, str]]:
        if state.masks is None:
            return []
        colors = mask_colors(len(state.masks), seed=0) if not state.candidates else np.tile([[30, 144, 255]], (len(state.masks), 1))
        items = []
        for index, (mask, score) in enumerate(zip(state.masks, state.scores)):
            thumbnail = _thumbnail(overlay_masks(state.image, [mask], colors=colors[index : index + 1].astype(np.uint8)))
            if state.candidates:
                chosen = " ✓" if index == state.selected else ""
                caption = f"#{index + 1} IoU {score:.3f}{chosen}"
            else:
                caption = f"box {index + 1} IoU {score:.3f}"
            items.append((thumbnail, caption))
        return items

    def write_downloads(self, state: SegmentState, masks: list[np.ndarray], request: gr.Request | None) -> tuple[str, str, str]:
        """Mask PNG, RGBA cut-out PNG and COCO-RLE JSON of the shown masks (overwritten per session)."""
        folder = self.session_dir(request)
        union = np.logical_or.reduce(masks)
        scores = [float(state.scores[state.selected])] if state.candidates else [float(s) for s in state.scores]
        stem = _safe_stem(state.name)
        mask_path = save_mask_png(union, folder / f"{stem}_mask.png")
        cutout_path = save_cutout_png(state.image, union, folder / f"{stem}_cutout.png")
        coco_path = save_coco_json(mask_records(masks, scores), state.image.shape[:2], folder / f"{stem}_masks.json", f"{stem}.png")
        return str(mask_path), str(cutout_path), str(coco_path)

    def session_dir(self, request: gr.Request | None, keep: int = 3) -> Path:
        """A new folder for one render's files; only the session's last few folders are kept."""
        session = self.work_dir / _safe_stem(getattr(request, "session_hash", None) or "direct")
        session.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=session))
        older = sorted((p for p in session.iterdir() if p != folder), key=lambda p: p.stat().st_mtime)
        for stale in older[: max(0, len(older) - keep + 1)]:
            shutil.rmtree(stale, ignore_errors=True)
        return folder

    # ---- segment everything -------------------------------------------------------------------

    def everything(
        self,
        path: str | None,
        knobs: EverythingKnobs,
        random_weights: bool,
        progress: Any = None,
    ) -> tuple[np.ndarray, list[dict], dict, str]:
        """
        Run the automatic mask generator on an uploaded image.

        Returns:
          (np.ndarray): the overlay (HxWx3 uint8, seeded colours and contours, at the generator's input size).
          (list[dict]): the generator's records (segmentation as HxW bool).
          (dict): the COCO dataset dict of the records (everything.export.coco_dict).
          (str): a summary line with the mask count and latency.
        """
        image, notice, _ = self.read_image(path)
        image, _ = limit_image_side(image, int(knobs.input_size))
        model = self.store.model("vit_t", random_weights)
        generator = SamAutomaticMaskGenerator(
            model,
            points_per_side=int(knobs.points_per_side),
            pred_iou_thresh=float(knobs.pred_iou_thresh),
            stability_score_thresh=float(knobs.stability_score_thresh),
            box_nms_thresh=float(knobs.box_nms_thresh),
            crop_n_layers=int(knobs.crop_n_layers),
            min_mask_region_area=int(knobs.min_mask_region_area),
            output_mode="binary_mask",
        )
        start = time.perf_counter()
        records = generator.generate(image, progress=progress)
        seconds = time.perf_counter() - start
        overlay = overlay_records(image, records, seed=0)
        height, width = image.shape[:2]
        coco = coco_dict([ImageMasks(f"{_safe_stem(Path(path).stem)}.png", height, width, records)])
        summary = f"{len(records)} masks in {seconds:.2f} s on a {width}x{height} image."
        if notice:
            summary += " " + notice
        return overlay, records, coco, summary

    def everything_ui(self, path: str | None, *values: Any, request: gr.Request | None = None, progress: gr.Progress = gr.Progress()) -> tuple:
        """The everything tab's button: overlay, summary and the COCO JSON / PNG ZIP downloads."""

        *knob_values, random_weights = values
        try:
            overlay, records, coco, summary = self.everything(
                path, EverythingKnobs(*knob_values), random_weights,
                progress=lambda fraction: progress(fraction, desc="Segmenting everything"),
            )
        except (ImageLoadError, ValueError, CheckpointError) as error:
            return None, _with_banner(f"**{error}**", random_weights), None, None
        folder = self.session_dir(request)
        stem = _safe_stem(Path(path).stem)
        coco_path = folder / f"{stem}_everything.json"
        atomic_write_bytes(coco_path, json.dumps(coco).encode())
        zip_path = folder / f"{stem}_masks.zip"
        with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for png in write_mask_pngs(folder / "masks", records):
                archive.write(png, png.name)
        return overlay, _with_banner(summary, random_weights), str(coco_path), str(zip_path)

    # ---- compare ----------------------------------------------------------------------------------

    def prepared_backend(self, name: str, image: np.ndarray, random_weights: bool) -> tuple[Any, float]:
        """
        A backend of the compare package with image already prepared, and its encoder time in ms.

        SAM-family encodings come from the shared embedding cache; FastSAM's prepared instances
        are cached per image too, so a second comparison on the same image runs no encoder.
        """

        if name.startswith("fastsam-"):
            variant = name.split("-", 1)[1]
            module = self.store.shared(("fastsam", variant, random_weights), lambda: self.fastsam_module(variant, random_weights))
            lock = self.store.shared(("fastsam-lock", variant), threading.Lock)

            def prepare() -> tuple[Any, float]:
                with lock:  # ultralytics' predictor set-up touches the shared module
                    backend = FastSamBackend(variant, model=module, device=self.store.device)
                    return backend, backend.prepare(image)["encoder_ms"]

            return self.fastsam_prepared.get_or_compute((image_key(image), variant, random_weights), prepare)[0]
        model = self.store.model(name, random_weights)
        embedding, _ = self.store.embedding(name, random_weights, image)
        backend_type = MobileSamBackend if name == "vit_t" else SamBackend
        backend = backend_type(model=model, device=self.store.device) if name == "vit_t" else backend_type(name, model=model, device=self.store.device)
        backend.predictor = embedding.predictor  # prepared once, shared read-only
        return backend, 1000 * embedding.encode_seconds

    def fastsam_module(self, variant: str, random_weights: bool) -> Any:

        if random_weights:
            return fastsam_architecture(variant).eval()
        path = resolve_checkpoint(f"fastsam-{variant}", cache_dir=self.store.checkpoint_dir, download=self.store.download)
        return load_fastsam_checkpoint(path)

    def compare(
        self, image: np.ndarray, cases: list[Any], reference: str, models: list[str], random_weights: bool, progress: Any = None
    ) -> tuple[list[dict], dict[str, list[np.ndarray]]]:
        """
        Run the same prompts (compare.Prompt, one mask each) on the reference and the compared models.

        Returns:
          (list[dict]): one row per model: model, role, miou (vs the reference, None for it),
            encoder_ms, decoder_ms (mean per prompt), total_ms, status.
          (dict): model name -> its masks, one HxW bool mask per prompt.
        """

        if not cases:
            raise ValueError("Add at least one point or box first.")
        names = [reference] + [name for name in dict.fromkeys(models) if name != reference]
        rows, masks = [], {}
        for index, name in enumerate(names):
            if progress is not None:
                progress(index / len(names), f"{name}: encoding the image (cached after the first time)")
            role = "reference" if index == 0 else "compared"
            try:
                backend, encoder_ms = self.prepared_backend(name, image, random_weights)
            except CheckpointError as error:
                if index == 0:
                    raise
                rows.append({"model": name, "role": role, "miou": None, "encoder_ms": None, "decoder_ms": None,
                             "total_ms": None, "status": _weights_message(error)})
                continue
            results = [backend.segment(case) for case in cases]
            masks[name] = [result.mask for result in results]
            decoder_ms = float(np.mean([result.timings["decoder_ms"] for result in results]))
            miou = None if index == 0 else mean_iou(mask_iou(a, b) for a, b in zip(masks[name], masks[reference]))
            rows.append({"model": name, "role": role, "miou": miou, "encoder_ms": encoder_ms, "decoder_ms": decoder_ms,
                         "total_ms": encoder_ms + decoder_ms * len(cases), "status": "ok"})
        if progress is not None:
            progress(1.0, "done")
        return rows, masks

    def compare_ui(
        self, state: SegmentState, reference: str, models: list[str], source: str, count: int, seed: int,
        random_weights: bool, progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """The compare tab's button: masks side by side, the table and the latency chart."""
        if state.image is None:
            return [], None, None, _with_banner("**Load an image in the Segment anything tab first.**", random_weights)
        try:
            if source == PROTOCOL_PROMPTS:

                cases = [case.prompt for case in random_point_cases(state.image.shape[:2], int(count), protocol_rng(int(seed), 0))]
            else:
                cases = compare_prompts(state.prompts(), state.image.shape[:2])
            rows, masks = self.compare(
                state.image, cases, REFERENCES.get(reference, reference),
                [COMPARED.get(m, m) for m in models], random_weights,
                progress=lambda fraction, desc: progress(fraction, desc=desc),
            )
        except (ValueError, CheckpointError) as error:
            return [], None, None, _with_banner(f"**{error}**", random_weights)
        gallery = []
        for row in rows:
            if row["model"] in masks:
                shown = masks[row["model"]]
                overlay = overlay_masks(state.image, shown, colors=mask_colors(len(shown), seed=0))
                overlay = draw_prompts(overlay, *_case_markers(cases))
                name = MODEL_NAMES.get(row["model"], row["model"])
                caption = name + (" (reference)" if row["role"] == "reference" else f": mIoU {row['miou']:.3f}")
                gallery.append((_thumbnail(overlay), caption))
        table = [[MODEL_NAMES.get(row["model"], row["model"]), row["role"], _fmt(row["miou"], 3), _fmt(row["encoder_ms"], 0), _fmt(row["decoder_ms"], 1),
                  _fmt(row["total_ms"], 0), row["status"]] for row in rows]
        summary = (
            f"{len(cases)} prompt(s), one mask each; mIoU is against {MODEL_NAMES.get(rows[0]['model'], rows[0]['model'])}. "
            "Encoder times come from the first encoding of this image (later runs reuse it)."
        )
        return gallery, table, _latency_figure(rows), _with_banner(summary, random_weights)

    def api_compare(self, path: str | None, prompts_json: str, models_json: str, reference: str) -> list[dict]:
        """/compare: the table rows (mIoU against the reference and latencies) for prompts on an image."""
        try:
            image, notice, scale = self.read_image(path)
            prompts = Prompts.from_json(prompts_json)
            prompts = Prompts.from_lists(prompts.points * scale, prompts.labels, prompts.boxes * scale)
            models = json.loads(models_json) if models_json and models_json.strip().startswith("[") else [
                m.strip() for m in (models_json or "").split(",") if m.strip()
            ]
            rows, _ = self.compare(image, compare_prompts(prompts, image.shape[:2]), reference or "vit_h", models, self.config.random_weights)
        except (ImageLoadError, ValueError, CheckpointError) as error:
            raise gr.Error(str(error)) from error
        return rows

    # ---- programmatic API -------------------------------------------------------------------------

    def api_segment(self, path: str | None, prompts_json: str, multimask: bool) -> dict:
        """/segment: masks (COCO RLE) and predicted IoU for prompts in the uploaded image's pixels."""
        try:
            image, notice, scale = self.read_image(path)
            prompts = Prompts.from_json(prompts_json)
            prompts = Prompts.from_lists(prompts.points * scale, prompts.labels, prompts.boxes * scale)
            prompts.validate(image.shape[:2])
            embedding, _ = self.store.embedding("vit_t", self.config.random_weights, image)
            result = segment(embedding, prompts, bool(multimask))
        except (ImageLoadError, ValueError, CheckpointError) as error:
            raise gr.Error(str(error)) from error
        return {
            "masks": [mask_to_rle(mask) for mask in result.masks],
            "scores": [float(score) for score in result.scores],
            "candidates": result.candidates,
            "image_size": list(image.shape[:2]),
            "scale": scale,
            "notice": notice,
            "random_weights": self.config.random_weights,
            "encoder_ms": 1000 * embedding.encode_seconds,
            "decoder_ms": 1000 * result.decode_seconds,
        }

    def api_everything(self, path: str | None, *knob_values: Any) -> tuple[dict, np.ndarray]:
        """/everything: the COCO dataset dict of all masks (plus a summary) and the overlay."""
        try:
            overlay, _, coco, summary = self.everything(path, EverythingKnobs(*knob_values), self.config.random_weights)
        except (ImageLoadError, ValueError, CheckpointError) as error:
            raise gr.Error(str(error)) from error
        return {**coco, "summary": summary, "random_weights": self.config.random_weights}, overlay

    # ---- status -----------------------------------------------------------------------------------

    def status_markdown(self) -> str:
        """The models-and-weights panel: one row per model with its weights' state."""
        rows = ["| model | weights |", "|---|---|"]
        for model_type in ("vit_t", "vit_b", "vit_l", "vit_h"):
            status = self.store.status(model_type)
            rows.append(f"| {MODEL_NAMES[model_type]} | **{status.state}**: {status.detail} |")
        for name in ("fastsam-s", "fastsam-x"):
            found = checkpoint_status(name, cache_dir=self.store.checkpoint_dir)
            if found.present:
                text = f"**available**: on disk at {found.path}; loads on first use"
            else:
                text = (f"**missing**: {found.info.filename} is not in {found.path.parent}; to install it by hand, "
                        f"download {found.info.url} and save it as {found.path}")
            rows.append(f"| {MODEL_NAMES[name]} | {text} |")
        return "\n".join(rows)


def build_app(config: AppConfig, store: ModelStore | None = None) -> gr.Blocks:
    """The Blocks app; store defaults to a new ModelStore for config (tests pass their own)."""
    if store is None:
        store = ModelStore(resolve_device(config.device), config.checkpoint_dir, config.download, config.embedding_cache_items)
    handlers = Handlers(config, store)
    heavy = {"concurrency_id": MODEL_CALLS, "concurrency_limit": config.model_concurrency}
    examples = [ASSETS_DIR / name for name in EXAMPLES if (ASSETS_DIR / name).is_file()]

    with gr.Blocks(title="MobileSAM: Faster Segment Anything", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# MobileSAM: Faster Segment Anything\n"
            "Click on an image to segment an object (MobileSAM, Zhang et al. 2023), segment everything "
            "in an image, or compare MobileSAM with SAM and FastSAM."
        )
        banner = gr.HTML(RANDOM_BANNER, visible=config.random_weights)
        random_weights = gr.Checkbox(
            value=config.random_weights,
            label="Random weights (try the interface without checkpoints; masks are meaningless)",
        )

        with gr.Tab("Segment anything", id="segment"):
            state = gr.State(SegmentState())
            with gr.Row():
                with gr.Column(scale=3):
                    canvas = gr.Image(
                        label="Click to add prompts", type="numpy", interactive=False, format="png",
                        elem_id="segment-canvas", buttons=["fullscreen"],
                    )
                    with gr.Row():
                        mode = gr.Radio(list(MODES), value=MODE_FOREGROUND, label="Click mode", scale=3)
                        undo = gr.Button("Undo", scale=1)
                        clear = gr.Button("Clear prompts", scale=1)
                    info = gr.Markdown(_format_info(SegmentState(), config.random_weights), elem_id="segment-info")
                with gr.Column(scale=2):
                    upload = gr.File(label="Image (JPEG, PNG, WebP, TIFF ...)", file_types=["image"], type="filepath", elem_id="segment-upload")
                    if examples:
                        gr.Examples([[str(p)] for p in examples], inputs=[upload], label="Examples")
                    candidates = gr.Gallery(
                        label="Masks with predicted IoU (click a candidate to choose it)", columns=3, height=230,
                        allow_preview=False, elem_id="segment-candidates",
                    )
                    with gr.Row():
                        mask_file = gr.DownloadButton("Mask PNG", value=None)
                        cutout_file = gr.DownloadButton("Cut-out PNG", value=None)
                        coco_file = gr.DownloadButton("COCO RLE JSON", value=None)
            drag = gr.Textbox(visible="hidden", elem_id="segment-drag")
            drag_apply = gr.Button(visible="hidden", elem_id="segment-drag-apply")
            outputs = [state, canvas, candidates, info, mask_file, cutout_file, coco_file]
            private = {"api_visibility": "private"}
            upload.change(handlers.load, [upload, random_weights], outputs, **private, **heavy)
            canvas.select(handlers.click, [state, mode, random_weights], outputs, **private, **heavy)
            drag_apply.click(handlers.drag_box, [state, drag, random_weights], outputs, **private, **heavy)
            undo.click(handlers.undo, [state, random_weights], outputs, **private, **heavy)
            clear.click(handlers.clear, [state, random_weights], outputs, **private, **heavy)
            candidates.select(handlers.pick, [state, random_weights], outputs, **private)
            mode.change(handlers.change_mode, [state, random_weights], outputs, **private)
            random_weights.change(handlers.change_weights, [state, random_weights], outputs, **private, **heavy)

        with gr.Tab("Segment everything", id="everything"):
            with gr.Row():
                with gr.Column(scale=2):
                    every_upload = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="everything-upload")
                    if examples:
                        gr.Examples([[str(p)] for p in examples], inputs=[every_upload], label="Examples")
                    defaults = EverythingKnobs()
                    knobs = [
                        gr.Slider(4, 64, defaults.points_per_side, step=1, label="Points per side"),
                        gr.Slider(0.0, 1.0, defaults.pred_iou_thresh, step=0.01, label="Predicted-IoU threshold"),
                        gr.Slider(0.0, 1.0, defaults.stability_score_thresh, step=0.01, label="Stability-score threshold"),
                        gr.Slider(0.1, 1.0, defaults.box_nms_thresh, step=0.01, label="Box NMS threshold"),
                        gr.Slider(0, 3, defaults.crop_n_layers, step=1, label="Crop layers"),
                        gr.Slider(0, 10000, defaults.min_mask_region_area, step=10, label="Minimum region area (px)"),
                        gr.Slider(256, 2048, defaults.input_size, step=64, label="Input size (longest side, px)"),
                    ]
                    run_everything = gr.Button("Segment everything", variant="primary", elem_id="everything-run")
                with gr.Column(scale=3):
                    every_overlay = gr.Image(label="All masks", type="numpy", interactive=False, format="png", elem_id="everything-overlay")
                    every_summary = gr.Markdown(elem_id="everything-summary")
                    with gr.Row():
                        every_coco = gr.DownloadButton("COCO JSON", value=None)
                        every_zip = gr.DownloadButton("ZIP of mask PNGs", value=None)
            run_everything.click(
                handlers.everything_ui, [every_upload, *knobs, random_weights],
                [every_overlay, every_summary, every_coco, every_zip], **private, **heavy,
            )

        with gr.Tab("Compare", id="compare"):
            gr.Markdown(
                "Runs the image and prompts of the **Segment anything** tab on every chosen model. "
                "mIoU is measured against the reference SAM, as in the MobileSAM paper. "
                "SAM ViT-H takes about a minute per image on a 2-core CPU; encodings are cached per image."
            )
            with gr.Row():
                reference = gr.Dropdown(list(REFERENCES), value=next(iter(REFERENCES)), label="Reference")
                compared = gr.CheckboxGroup(list(COMPARED), value=["MobileSAM"], label="Models to compare")
            with gr.Row():
                prompt_source = gr.Radio([USER_PROMPTS, PROTOCOL_PROMPTS], value=USER_PROMPTS, label="Prompts", scale=3)
                protocol_count = gr.Number(8, label="Random points", precision=0, minimum=1, maximum=64, scale=1)
                protocol_seed = gr.Number(0, label="Seed", precision=0, minimum=0, scale=1)
                run_compare = gr.Button("Compare", variant="primary", elem_id="compare-run", scale=1)
            compare_summary = gr.Markdown()
            compare_gallery = gr.Gallery(label="Masks per model", columns=4, height="auto", allow_preview=False)
            compare_table = gr.Dataframe(
                headers=["model", "role", "mIoU vs reference", "encoder ms", "decoder ms / prompt", "total ms", "status"],
                interactive=False, label="Agreement and latency",
            )
            compare_plot = gr.Plot(label="Latency")
            run_compare.click(
                handlers.compare_ui, [state, reference, compared, prompt_source, protocol_count, protocol_seed, random_weights],
                [compare_gallery, compare_table, compare_plot, compare_summary], **private, **heavy,
            )

        with gr.Accordion("Models and weights", open=False):
            status = gr.Markdown(handlers.status_markdown())
            refresh = gr.Button("Refresh")
            refresh.click(handlers.status_markdown, None, status, **private, queue=False)
            gr.Timer(3.0).tick(handlers.status_markdown, None, status, **private, queue=False, show_progress="hidden")

        random_weights.change(lambda on: gr.update(visible=on), random_weights, banner, **private, queue=False)

        # Programmatic API (gradio_client): explicit inputs instead of clicks, JSON outputs.
        with gr.Column(visible=False):
            api_image = gr.File(type="filepath", label="image")
            api_prompts = gr.Textbox(label="prompts", value='{"points": [[x, y]], "labels": [1], "boxes": []}')
            api_multimask = gr.Checkbox(True, label="multimask")
            api_segment_out = gr.JSON(label="masks and scores")
            api_knobs = [
                gr.Number(defaults.points_per_side, label="points_per_side", precision=0),
                gr.Number(defaults.pred_iou_thresh, label="pred_iou_thresh"),
                gr.Number(defaults.stability_score_thresh, label="stability_score_thresh"),
                gr.Number(defaults.box_nms_thresh, label="box_nms_thresh"),
                gr.Number(defaults.crop_n_layers, label="crop_n_layers", precision=0),
                gr.Number(defaults.min_mask_region_area, label="min_mask_region_area", precision=0),
                gr.Number(defaults.input_size, label="input_size", precision=0),
            ]
            api_everything_out = gr.JSON(label="COCO records")
            api_everything_overlay = gr.Image(type="numpy", format="png", label="overlay")
            api_segment_button = gr.Button()
            api_compare_models = gr.Textbox(label="models", value='["vit_t", "fastsam-s", "fastsam-x"]')
            api_compare_reference = gr.Textbox(label="reference", value="vit_h")
            api_compare_out = gr.JSON(label="table")
            api_compare_button = gr.Button()
            api_everything_button = gr.Button()
        api_segment_button.click(
            handlers.api_segment, [api_image, api_prompts, api_multimask], api_segment_out, api_name="segment", **heavy
        )
        api_everything_button.click(
            handlers.api_everything, [api_image, *api_knobs], [api_everything_out, api_everything_overlay],
            api_name="everything", **heavy,
        )
        api_compare_button.click(
            handlers.api_compare, [api_image, api_prompts, api_compare_models, api_compare_reference], api_compare_out,
            api_name="compare", **heavy,
        )
        demo.load(None, None, None, js=_DRAG_BOX_JS)

    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.model_concurrency)
    return demo


_DRAG_BOX_JS = r"""
() => {
  // Box by dragging on the segment-anything image: sends [x0, y0, x1, y1] in image pixels.
  const root = () => document.querySelector('#segment-canvas');
  let start = null, suppressClick = false;
  const toImage = (img, ev) => {
    const r = img.getBoundingClientRect();
    const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight, 1);
    const dx = (r.width - img.naturalWidth * scale) / 2, dy = (r.height - img.naturalHeight * scale) / 2;
    return [Math.round((ev.clientX - r.left - dx) / scale), Math.round((ev.clientY - r.top - dy) / scale)];
  };
  document.addEventListener('mousedown', (ev) => {
    const img = root() && root().querySelector('img');
    if (!img || ev.target !== img) return;
    start = {img, x: ev.clientX, y: ev.clientY, p: toImage(img, ev)};
    ev.preventDefault();
  }, true);
  document.addEventListener('mouseup', (ev) => {
    if (!start) return;
    const moved = Math.hypot(ev.clientX - start.x, ev.clientY - start.y);
    const mode = document.querySelector('input[type=radio][value^="Box"]');
    const img = root() && root().querySelector('img');
    if (moved > 6 && mode && mode.checked && img) {
      const p = toImage(img, ev);
      const box = document.querySelector('#segment-drag textarea, #segment-drag input');
      if (box) {
        box.value = JSON.stringify([start.p[0], start.p[1], p[0], p[1]]);
        box.dispatchEvent(new Event('input', {bubbles: true}));
        setTimeout(() => document.querySelector('#segment-drag-apply')?.click(), 50);
        suppressClick = true;
      }
    }
    start = null;
  }, true);
  document.addEventListener('click', (ev) => {
    if (suppressClick) { suppressClick = false; ev.stopPropagation(); ev.preventDefault(); }
  }, true);
}
"""


def compare_prompts(prompts: Prompts, image_size: tuple[int, int]) -> list[Any]:
    """The user's prompts as compare.Prompt objects, one per mask (one per box when there are several)."""

    prompts.validate(image_size)
    groups, _ = prompts.groups()
    return [
        Prompt(group.points if len(group.points) else None, group.labels if len(group.points) else None, group.box)
        for group in groups
    ]


def _case_markers(cases: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, labels and boxes of compare prompts, for draw_prompts."""
    points = [case.point_coords for case in cases if case.point_coords is not None]
    labels = [case.point_labels for case in cases if case.point_labels is not None]
    boxes = [case.box for case in cases if case.box is not None]
    return (
        np.concatenate(points) if points else np.zeros((0, 2)),
        np.concatenate(labels) if labels else np.zeros((0,), np.int64),
        np.stack(boxes) if boxes else np.zeros((0, 4)),
    )


def _encoder_text(embedding: Any, cached: bool) -> str:
    how = "from the cache, first encoded in" if cached else "encoded in"
    return f"Image encoder: {how} {1000 * embedding.encode_seconds:.0f} ms"


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _latency_figure(rows: list[dict]) -> Figure:
    """Stacked bars: encoder time per image plus decoder time for all prompts, per model."""
    done = [row for row in rows if row["encoder_ms"] is not None]
    figure = Figure(figsize=(6, 3), dpi=100)
    axes = figure.add_subplot()
    names = [row["model"] for row in done]
    encoder = np.array([row["encoder_ms"] for row in done])
    decoder = np.array([row["total_ms"] - row["encoder_ms"] for row in done])
    axes.barh([MODEL_NAMES.get(name, name) for name in names], encoder, label="image encoder")
    axes.barh([MODEL_NAMES.get(name, name) for name in names], decoder, left=encoder, label="decoder (all prompts)")
    axes.set_xlabel("latency (ms)")
    axes.invert_yaxis()
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure


def _format_info(state: SegmentState, random_weights: bool) -> str:
    lines = []
    if state.image is None:
        lines.append("Upload an image or pick an example, then click on the object you want.")
    else:
        lines.append(f"Image {state.image.shape[1]}x{state.image.shape[0]}; {len(state.points)} point(s), {len(state.boxes)} box(es).")
    if state.notice:
        lines.append(f"ℹ️ {state.notice}")
    if state.message:
        lines.append(f"⚠️ **{state.message}**")
    if state.timing:
        lines.append(state.timing)
    return _with_banner("\n\n".join(lines), random_weights)


def _with_banner(text: str, random_weights: bool) -> str:
    if random_weights:
        return "**RANDOM WEIGHTS: these masks are meaningless.**\n\n" + text
    return text


def _weights_message(error: Exception) -> str:
    return f"{error}\nOr tick “Random weights” to try the interface without checkpoints."


def _thumbnail(image: np.ndarray) -> np.ndarray:
    small, _ = limit_image_side(image, THUMBNAIL_SIDE)
    return small


def _safe_stem(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:64]
    return cleaned or "image"


def parse_args(argv: list[str] | None = None) -> AppConfig:
    """The command line (ports default to $GRADIO_SERVER_PORT, then $PORT, as on Hugging Face Spaces)."""
    env_port = os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or "7860"
    parser = argparse.ArgumentParser(description="MobileSAM web demo (Gradio).")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="address to listen on (0.0.0.0 for every interface; default $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(env_port),
                        help="port to listen on (default $GRADIO_SERVER_PORT, else $PORT, else 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="folder holding the checkpoints (default $MOBILE_SAM_CACHE_DIR or ~/.cache/mobile_sam)")
    parser.add_argument("--random-weights", action="store_true",
                        help="start with randomly initialised weights (no checkpoints needed; masks are meaningless)")
    parser.add_argument("--max-image-side", type=int, default=AppConfig.max_image_side,
                        help="downscale uploaded images so their longest side is at most this many pixels")
    parser.add_argument("--no-download", action="store_true", help="never download missing checkpoints")
    args = parser.parse_args(argv)
    if args.max_image_side < 16:
        parser.error("--max-image-side must be at least 16")
    return AppConfig(
        host=args.host, port=args.port, share=args.share, device=args.device, checkpoint_dir=args.checkpoint_dir,
        random_weights=args.random_weights, max_image_side=args.max_image_side, download=not args.no_download,
    )


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics must never download or pip-install at run time
    try:
        device = resolve_device(config.device)
    except ValueError as error:
        raise SystemExit(f"--device {config.device}: {error}") from error
    store = ModelStore(device, config.checkpoint_dir, config.download, config.embedding_cache_items)
    demo = build_app(config, store)
    demo.launch(server_name=config.host, server_port=config.port, share=config.share, max_file_size=config.max_file_size)


if __name__ == "__main__":
    main()
