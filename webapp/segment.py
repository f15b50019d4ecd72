"""
The segment-anything tab: an image encoded once, then clicks decoded on its cached embedding.

The canvas is drawn at display size (at most DISPLAY_SIDE, tiny images enlarged to MIN_DISPLAY_SIDE),
so a click costs one decode and one small drawing; click coordinates arrive in display pixels and
are mapped back to the image. Download files are written only when asked for.

With a `BrowserDecoding`, each encoded image is also offered to the page (`publish`): its embedding file
and decoder, so that the page shows masks under the cursor and answers clicks at once; the page learns
the prompts the server holds from `page_json`. The server's masks stay the source of the canvas, the
candidates, the downloads and the API.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from samkit.checkpoints import CheckpointError, checkpoint_status
from samkit.drawing import draw_prompts, mask_colors, overlay_masks
from samkit.images import ImageLoadError, limit_image_side
from samkit.models import MOBILE_SAM
from samkit.writers import ImageMasks, mask_records, save_cutout_png, save_mask_png, write_coco_json

from .browser_decoding import LOADING, BrowserDecoding, PageDecoder, ServerOnly
from .clicks import BACKGROUND, BOX, FOREGROUND, ClickPrompts
from .embedding_cache import image_key
from .image_session import ImageEmbedding, segment
from .messages import safe_stem, weights_message, with_banner
from .model_store import ModelStore
from .scheduling import Priority
from .sessions import Sessions, session_key
from .uploads import NO_IMAGE, read_upload

MODES = {"Foreground point": FOREGROUND, "Background point": BACKGROUND, "Box (drag, or click two corners)": BOX}
DISPLAY_SIDE = 1024
MIN_DISPLAY_SIDE = 64
THUMBNAIL_SIDE = 320
CANDIDATE_COLOR = np.array([[30, 144, 255]], dtype=np.uint8)


@dataclass(frozen=True)
class SegmentState:
    """One visitor's segment tab; replaced (never mutated) by every event."""

    image: np.ndarray | None = None  # HxWx3 uint8: what the model sees
    image_key: str = ""  # webapp.embedding_cache.image_key(image), computed once
    display: np.ndarray | None = None  # the image at display size
    name: str = ""
    notice: str = ""
    clicks: ClickPrompts = field(default_factory=ClickPrompts)
    masks: np.ndarray | None = None  # KxHxW bool
    scores: np.ndarray | None = None  # K
    candidates: bool = False  # the K masks are alternatives for one prompt (pick one), else one per box
    selected: int = 0
    encoder_text: str = ""
    decoder_ms: float | None = None
    message: str = ""
    page: PageDecoder | ServerOnly | None = None  # the page's decoder for this image (None: not offered)
    applied: int = 0  # the id of the last page action applied (canvas_actions)

    @property
    def display_scale(self) -> float:
        """Display pixels per image pixel."""
        return 1.0 if self.image is None else self.display.shape[1] / self.image.shape[1]

    def shown_masks(self) -> list[np.ndarray]:
        if self.masks is None:
            return []
        return [self.masks[self.selected]] if self.candidates else list(self.masks)


def display_image(image: np.ndarray) -> np.ndarray:
    """image resized for the canvas: longest side at most DISPLAY_SIDE, shortest at least MIN_DISPLAY_SIDE."""
    small, _ = limit_image_side(image, DISPLAY_SIDE)
    height, width = small.shape[:2]
    if min(height, width) >= MIN_DISPLAY_SIDE or max(height, width) >= DISPLAY_SIDE:
        return small
    factor = min(MIN_DISPLAY_SIDE / min(height, width), DISPLAY_SIDE / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(small, size, interpolation=cv2.INTER_NEAREST)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An HxW bool mask resized to size (H, W), nearest neighbour."""
    if mask.shape == size:
        return mask
    pixels = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)  # bool as 0/1 bytes, without a copy
    return cv2.resize(pixels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST).view(bool)


class SegmentTab:
    """The tab's events. Pure steps (`load_image`, `click`, ...) take and return a SegmentState;
    the `on_*` methods run them on the caller's session state under its lock and render."""

    def __init__(
        self,
        store: ModelStore,
        sessions: Sessions,
        priority: Priority,
        max_image_side: int,
        browser: BrowserDecoding | None = None,
    ) -> None:
        self.store, self.sessions, self.priority, self.max_image_side = store, sessions, priority, max_image_side
        self.browser = browser

    # ---- pure steps -------------------------------------------------------------------------------

    def load_image(self, path: str | None, random_weights: bool) -> SegmentState:
        """A new image: no prompts; encoded once (the embedding is cached for every later click)."""
        if path is None:
            return SegmentState()
        try:
            upload = read_upload(path, self.max_image_side)
        except (ImageLoadError, ValueError) as error:
            return SegmentState(message=str(error))
        state = SegmentState(
            image=upload.image,
            image_key=image_key(upload.image),
            display=display_image(upload.image),
            name=upload.name,
            notice=upload.notice,
        )
        try:
            return replace(state, encoder_text=_encoder_text(*self._embedding(state, random_weights)))
        except CheckpointError as error:
            return replace(state, message=weights_message(error))

    def click(self, state: SegmentState, mode: str, x: float, y: float, random_weights: bool) -> SegmentState:
        """A click at image pixel (x, y) in a MODES mode (or FOREGROUND/BACKGROUND/BOX)."""
        if state.image is None:
            return replace(state, message=NO_IMAGE)
        clicks = state.clicks if MODES.get(mode, mode) == BOX else state.clicks.without_pending_corner()
        clicks, message = clicks.click(MODES.get(mode, mode), x, y)
        return self._prompts_changed(state, clicks, message, random_weights)

    def drag_box(self, state: SegmentState, box: list[float], random_weights: bool) -> SegmentState:
        """A box dragged on the canvas, [x0, y0, x1, y1] in image pixels."""
        if state.image is None:
            return replace(state, message=NO_IMAGE)
        clicks, message = state.clicks.without_pending_corner().add_box(tuple(box))
        return self._prompts_changed(state, clicks, message, random_weights)

    def canvas_actions(self, state: SegmentState, mode: str, actions_json: str, random_weights: bool) -> SegmentState:
        """Clicks and dragged boxes queued by the page (webapp/drag_box.js), in display pixels, applied in order:
        JSON [{"click": [x, y], "id": n} | {"box": [x0, y0, x1, y1], "id": n}, ...] (the optional id, a positive
        integer, is remembered as `applied` for the page); anything else is ignored."""
        try:
            actions = json.loads(actions_json)
        except (TypeError, ValueError):
            return state
        for action in actions if isinstance(actions, list) else []:
            click = action.get("click") if isinstance(action, dict) else None
            box = action.get("box") if isinstance(action, dict) else None
            action_id = action.get("id") if isinstance(action, dict) else None
            if isinstance(action_id, int) and not isinstance(action_id, bool) and action_id > state.applied:
                state = replace(state, applied=action_id)
            try:
                if isinstance(click, list) and len(click) == 2:
                    x, y = (float(v) / state.display_scale for v in click)
                    state = self.click(state, mode, x, y, random_weights)
                elif isinstance(box, list) and len(box) == 4:
                    state = self.drag_box(state, [float(v) / state.display_scale for v in box], random_weights)
            except (TypeError, ValueError):
                continue
        return state

    def undo(self, state: SegmentState, random_weights: bool) -> SegmentState:
        clicks, message = state.clicks.undo()
        return self._prompts_changed(state, clicks, message, random_weights)

    def clear(self, state: SegmentState, random_weights: bool) -> SegmentState:
        return self._prompts_changed(state, state.clicks.clear(), "", random_weights)

    def choose(self, state: SegmentState, index: int) -> SegmentState:
        """Pick one of the multimask candidates."""
        if state.masks is None or not state.candidates or not 0 <= index < len(state.masks):
            return state
        return replace(state, selected=index, message="")

    def change_weights(self, state: SegmentState, random_weights: bool) -> SegmentState:
        """Encode with the other model (random or pretrained weights) and decode again."""
        if state.image is None:
            return state
        try:
            state = replace(state, encoder_text=_encoder_text(*self._embedding(state, random_weights)), message="")
        except CheckpointError as error:
            return replace(state, masks=None, scores=None, decoder_ms=None, message=weights_message(error))
        return self._decode(state, random_weights)

    # ---- the page's decoder -------------------------------------------------------------------------

    def publish(self, state: SegmentState, request: Any, random_weights: bool, again: bool = True) -> SegmentState:
        """Offer the page the current image (its embedding file in the session's folder, and its decoder); the
        session's previous image's link expires. With again=False, only an offer still being prepared is retried."""
        if self.browser is None:
            return state
        if not again and not (isinstance(state.page, ServerOnly) and state.page.reason == LOADING):
            return state
        session = session_key(request)
        if state.image is None:
            self.browser.forget(session)
            return replace(state, page=None)
        try:
            embedding, _ = self._embedding(state, random_weights)
            model = self.store.model(MOBILE_SAM, random_weights)
        except CheckpointError:
            self.browser.forget(session)
            return replace(state, page=None)
        folder = self.sessions.named_folder(request, "embedding")
        page = self.browser.publish(session, folder, model, MOBILE_SAM, embedding)
        self.sessions.enforce_cap()
        return replace(state, page=page)

    def page_json(self, state: SegmentState) -> str:
        """What the page's decoder needs (webapp/browser/segment_page.js), as JSON: the decoder's files or why the
        page must use the server ({"decoder": PageDecoder fields | null, "reason", "message"}), the image's (H, W),
        the prompts the server holds in its pixels ({"points", "labels", "boxes"} and the pending box "corner"),
        and the last page action applied."""
        clicks = state.clicks
        page = state.page
        return json.dumps(
            {
                "decoder": asdict(page) if isinstance(page, PageDecoder) else None,
                "reason": page.reason if isinstance(page, ServerOnly) else None,
                "message": page.message if isinstance(page, ServerOnly) else "",
                "image": None if state.image is None else list(state.image.shape[:2]),
                "prompts": {"points": clicks.points, "labels": clicks.labels, "boxes": clicks.boxes},
                "corner": clicks.pending_corner,
                "applied": state.applied,
            }
        )

    def loadable_model(self, random_weights: bool) -> object | None:
        """The tab's model with these weights, loaded (or already loaded) when that needs no download; else None."""
        if not random_weights and not checkpoint_status(MOBILE_SAM, self.store.checkpoint_dir).present:
            return None
        return self.store.model(MOBILE_SAM, random_weights)

    # ---- display ----------------------------------------------------------------------------------

    def render(self, state: SegmentState, random_weights: bool) -> tuple[Any, list, str, int | None]:
        """(canvas HxWx3 at display size or None, candidate gallery, info markdown, selected candidate)."""
        info = _info(state, random_weights)
        if state.image is None:
            return None, [], info, None
        size = state.display.shape[:2]
        shown = [resize_mask(mask, size) for mask in state.shown_masks()]
        colors = CANDIDATE_COLOR if state.candidates else mask_colors(len(shown), seed=0)
        canvas = overlay_masks(state.display, shown, colors=colors, antialiased=False) if shown else state.display
        clicks, scale = state.clicks, state.display_scale
        corner = None if clicks.pending_corner is None else tuple(v * scale for v in clicks.pending_corner)
        canvas = draw_prompts(
            canvas,
            np.array(clicks.points).reshape(-1, 2) * scale,
            clicks.labels,
            np.array(clicks.boxes).reshape(-1, 4) * scale,
            corner,
        )
        selected = state.selected if state.candidates else None
        return canvas, self._gallery(state), info, selected

    def _gallery(self, state: SegmentState) -> list[tuple[np.ndarray, str]]:
        if state.masks is None:
            return []
        thumbnail, _ = limit_image_side(state.display, THUMBNAIL_SIDE)
        colors = (
            np.repeat(CANDIDATE_COLOR, len(state.masks), 0)
            if state.candidates
            else mask_colors(len(state.masks), seed=0)
        )
        items = []
        for index, (mask, score) in enumerate(zip(state.masks, state.scores)):
            small = resize_mask(mask, thumbnail.shape[:2])
            if state.candidates:
                caption = f"#{index + 1} IoU {score:.3f}" + (" ✓" if index == state.selected else "")
            else:
                caption = f"box {index + 1} IoU {score:.3f}"
            items.append(
                (overlay_masks(thumbnail, [small], colors=colors[index : index + 1], antialiased=False), caption)
            )
        return items

    def write_downloads(self, state: SegmentState, request: Any) -> tuple[str, str, str]:
        """Mask PNG, RGBA cut-out PNG and COCO-RLE JSON of the shown masks, at the image's size."""
        shown = state.shown_masks()
        if not shown:
            raise ValueError("Click on the image first: there is no mask to download yet.")
        folder = self.sessions.new_folder(request)
        union = np.logical_or.reduce(shown)
        scores = [float(state.scores[state.selected])] if state.candidates else [float(s) for s in state.scores]
        stem = safe_stem(state.name)
        paths = (
            save_mask_png(union, folder / f"{stem}_mask.png"),
            save_cutout_png(state.image, union, folder / f"{stem}_cutout.png"),
            write_coco_json(
                folder / f"{stem}_masks.json",
                [ImageMasks(f"{stem}.png", *state.image.shape[:2], mask_records(shown, scores))],
            ),
        )
        self.sessions.enforce_cap()
        return tuple(str(path) for path in paths)

    # ---- model calls ------------------------------------------------------------------------------

    def _embedding(self, state: SegmentState, random_weights: bool) -> tuple[ImageEmbedding, bool]:
        return self.store.embedding(MOBILE_SAM, random_weights, state.image, state.image_key or None)

    def _prompts_changed(
        self, state: SegmentState, clicks: ClickPrompts, message: str, random_weights: bool
    ) -> SegmentState:
        state = replace(state, clicks=clicks, message=message)
        return self._decode(state, random_weights) if clicks.pending_corner is None else state

    def _decode(self, state: SegmentState, random_weights: bool) -> SegmentState:
        """Masks for the current prompts on the cached embedding (no prompts: no masks, no decoder time)."""
        cleared = replace(state, masks=None, scores=None, candidates=False, selected=0, decoder_ms=None)
        prompts = state.clicks.prompts()
        if state.image is None or prompts.is_empty():
            return cleared
        try:
            with self.priority.interactive():
                embedding, _ = self._embedding(state, random_weights)
                result = segment(embedding, prompts, multimask_output=True)  # checks the prompts (Prompts.checked)
        except CheckpointError as error:
            return replace(cleared, message=weights_message(error))
        except ValueError as error:
            return replace(cleared, message=str(error))
        message = state.message
        if len(result.unused_points):
            message = (
                f"{len(result.unused_points)} point(s) outside every box were not used "
                "(with several boxes, points refine the box they are in)."
            )
        return replace(
            state,
            masks=result.masks,
            scores=result.scores,
            candidates=result.candidates,
            selected=int(np.argmax(result.scores)) if result.candidates else 0,
            decoder_ms=1000 * result.decode_seconds,
            message=message,
        )


def _encoder_text(embedding: ImageEmbedding, cached: bool) -> str:
    how = "from the cache, first encoded in" if cached else "encoded in"
    return f"Image encoder: {how} {1000 * embedding.encode_seconds:.0f} ms"


def _info(state: SegmentState, random_weights: bool) -> str:
    if state.image is None:
        lines = ["Upload an image or pick an example, then click on the object you want."]
    else:
        clicks = state.clicks
        height, width = state.image.shape[:2]
        lines = [f"Image {width}x{height}; {len(clicks.points)} point(s), {len(clicks.boxes)} box(es)."]
    if state.notice:
        lines.append(f"ℹ️ {state.notice}")
    if state.message:
        lines.append(f"⚠️ **{state.message}**")
    timing = state.encoder_text
    if state.decoder_ms is not None:
        timing += f" · mask decoder: {state.decoder_ms:.0f} ms"
    if timing:
        lines.append(timing)
    return with_banner("\n\n".join(lines), random_weights)
