"""Proposal quality as the field measures it: class-agnostic mask average recall at K proposals (AR@K).

This is COCO's proposal evaluation (pycocotools' `COCOeval` with `useCats=0`, `iouType="segm"`,
`maxDets=[10, 100, 1000]`), the measure MobileSAMv2 reports on LVIS, re-derived here:
- per image, proposals are ranked by score, highest first (equal scores keep their order in the result);
  the top K take part;
- at each IoU threshold 0.50, 0.55, ..., 0.95, the proposals in rank order are matched greedily: each takes the
  not yet matched ground-truth mask it overlaps most (ties: the later one, as COCOeval), if that IoU is at least
  the threshold;
- recall at a threshold is the matched ground-truth masks over all of them, pooled over the images; AR@K is its
  mean over the thresholds.
Crowd regions (`iscrowd: 1`) are not objects to find and are left out, as in COCO (they never change COCO's
recall). Images of the ground truth without proposals count their objects as missed. COCO's area ranges
(by the ground truth's `area`: all, small <= 32², medium 32²..96², large >= 96², both ends inclusive) give AR per
object size. Mask IoU is pycocotools' `mask.iou` (the field's definition, on RLE).

Proposals come in the formats this project writes or reads: a COCO dataset dict (`annotations.json` of
`python -m everything`; images matched to the ground truth by file name), a COCO results list
(`[{"image_id", "segmentation", "score"}]`; ids of the ground truth) or one image's result
(`results/NAME.json`: `{"file_name", "height", "width", "records"}`). Ground-truth images are named by
`file_name`, or by the last part of `coco_url` (LVIS has no `file_name`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from mobile_sam.utils.rle import compressed_rle

MAX_PROPOSALS = (10, 100, 1000)
# COCO's IoU thresholds, built as COCOeval builds them (0.5, 0.55, ..., 0.95).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
# COCO's area ranges in pixels (lower, upper), both inclusive; "all" is COCO's [0, 1e5²].
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}
# How proposals are ranked: "auto" is a proposal's `score` (COCO results; in this project's COCO files it is the
# predicted IoU), else its `predicted_iou` (this project's per-image results); "order" is the result's own order
# (first = best; e.g. MobileSAMv2's official output, sorted by area); any other name is that numeric field.
SCORE_AUTO = "auto"
SCORE_ORDER = "order"


class EvaluationError(ValueError):
    """A ground truth or a result that cannot be scored (the message says why)."""


@dataclass(frozen=True)
class ImageTruth:
    """The objects of one ground-truth image: N non-crowd masks (pycocotools' compressed RLE) and their `area`."""

    name: str
    height: int
    width: int
    masks: list[dict[str, Any]]
    areas: np.ndarray  # (N,) float64


@dataclass(frozen=True)
class ImageProposals:
    """The proposals of one image: P masks (compressed RLE) and their ranking scores, (P,) float64."""

    masks: list[dict[str, Any]]
    scores: np.ndarray


@dataclass(frozen=True)
class Recall:
    """Recall of one result against a ground truth.

    recall: (A, K, T) float64, recall in area range a with the top max_proposals[k] proposals per image at
    iou_thresholds[t]; NaN where the range holds no ground truth. objects: (A,) ground-truth masks per range.
    """

    max_proposals: tuple[int, ...]
    area_ranges: tuple[str, ...]
    iou_thresholds: np.ndarray
    recall: np.ndarray
    objects: np.ndarray
    images: int
    images_without_proposals: int

    def average_recall(self, area: str = "all") -> dict[int, float | None]:
        """AR@K of an area range, {K: AR} (None where the range holds no ground truth)."""
        values = self.recall[self.area_ranges.index(area)].mean(axis=1)
        return {k: (None if np.isnan(v) else float(v)) for k, v in zip(self.max_proposals, values)}


def image_name(image: Mapping[str, Any]) -> str:
    """A ground-truth image's name: its `file_name`, else the last part of its `coco_url` (LVIS)."""
    if image.get("file_name"):
        return str(image["file_name"])
    if image.get("coco_url"):
        return PurePosixPath(str(image["coco_url"])).name
    raise EvaluationError(f"ground-truth image {image.get('id')!r} has neither file_name nor coco_url")


def read_ground_truth(data: Mapping[str, Any]) -> dict[int, ImageTruth]:
    """The images of a COCO-format ground truth (instances JSON, as a dict) by image id."""
    if not isinstance(data, Mapping) or not isinstance(data.get("images"), list):
        raise EvaluationError("the ground truth is not a COCO instances file (no 'images' list)")
    if not isinstance(data.get("annotations"), list):
        raise EvaluationError("the ground truth is not a COCO instances file (no 'annotations' list)")
    sizes = {}
    for image in data["images"]:
        try:
            sizes[int(image["id"])] = (image_name(image), int(image["height"]), int(image["width"]))
        except (KeyError, TypeError, ValueError) as error:
            raise EvaluationError(f"ground-truth image entry without id/height/width: {image!r:.200}") from error
    masks: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in sizes}
    areas: dict[int, list[float]] = {image_id: [] for image_id in sizes}
    for annotation in data["annotations"]:
        image_id = annotation.get("image_id")
        if image_id not in sizes:
            raise EvaluationError(f"ground-truth annotation {annotation.get('id')!r} names unknown image {image_id!r}")
        if annotation.get("iscrowd", 0):
            continue
        _, height, width = sizes[image_id]
        rle = _truth_rle(annotation.get("segmentation"), height, width, annotation.get("id"))
        masks[image_id].append(rle)
        areas[image_id].append(float(annotation["area"]) if "area" in annotation else _rle_area(rle))
    return {
        image_id: ImageTruth(name, height, width, masks[image_id], np.asarray(areas[image_id], dtype=np.float64))
        for image_id, (name, height, width) in sizes.items()
    }


def read_proposals(data: Any, truth: Mapping[int, ImageTruth], score: str = SCORE_AUTO) -> dict[int, ImageProposals]:
    """The proposals of a result (any format of the module doc) by ground-truth image id, ranked by `score`.

    Raises EvaluationError for a result image the ground truth lacks, a mask of another size than its
    ground-truth image, or a proposal without the score asked for.
    """
    by_name = {image.name: image_id for image_id, image in truth.items()}
    grouped: dict[int, list[dict[str, Any]]] = {}
    if isinstance(data, list):
        for proposal in data:
            image_id = proposal.get("image_id") if isinstance(proposal, Mapping) else None
            if image_id not in truth:
                raise EvaluationError(f"a result names image id {image_id!r}, which the ground truth does not have")
            grouped.setdefault(image_id, []).append(proposal)
    elif isinstance(data, Mapping) and isinstance(data.get("annotations"), list) and "images" in data:
        names = {image["id"]: image.get("file_name") for image in data["images"]}
        missing = sorted({str(name) for name in names.values() if name not in by_name})
        if missing:
            raise EvaluationError(_missing_message(missing))
        grouped = {by_name[name]: [] for name in names.values()}
        for proposal in data["annotations"]:
            if proposal.get("image_id") not in names:
                raise EvaluationError(f"result annotation {proposal.get('id')!r} names unknown image")
            grouped[by_name[names[proposal["image_id"]]]].append(proposal)
    elif isinstance(data, Mapping) and isinstance(data.get("records"), list) and "file_name" in data:
        if data["file_name"] not in by_name:
            raise EvaluationError(_missing_message([str(data["file_name"])]))
        grouped = {by_name[data["file_name"]]: data["records"]}
    else:
        raise EvaluationError(
            "not a result: expected a COCO file with images and annotations, a COCO results list, "
            "or one image's result (file_name, height, width, records)"
        )
    return {image_id: _proposals(found, truth[image_id], score) for image_id, found in grouped.items()}


def iou_matrix(proposals: Sequence[dict[str, Any]], truth: Sequence[dict[str, Any]]) -> np.ndarray:
    """(P, G) mask IoU of P proposals and G ground-truth masks (compressed RLE of one size)."""
    if not proposals or not truth:
        return np.zeros((len(proposals), len(truth)), dtype=np.float64)
    from pycocotools import mask as mask_utils

    return np.asarray(mask_utils.iou(list(proposals), list(truth), [0] * len(truth)), dtype=np.float64)


def match_proposals(ious: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """(T, P) bool: whether the proposal of rank p finds an object at thresholds[t], matching greedily in rank order.

    ious: (P, G) IoU of the ranked proposals (best first) with the ground truth. Each proposal takes the unmatched
    object of highest IoU (the last of equals) if that IoU is at least the threshold (capped below 1, as COCOeval).
    """
    found = np.zeros((len(thresholds), ious.shape[0]), dtype=bool)
    for t, threshold in enumerate(thresholds):
        free = np.ones(ious.shape[1], dtype=bool)
        least = min(float(threshold), 1 - 1e-10)
        for p in np.flatnonzero((ious >= least).any(axis=1)):
            row = ious[p]
            candidates = np.flatnonzero(free & (row >= least))
            if len(candidates) == 0:
                continue
            best = candidates[np.flatnonzero(row[candidates] == row[candidates].max())[-1]]
            free[best] = False
            found[t, p] = True
    return found


def evaluate(
    proposals: Mapping[int, ImageProposals],
    truth: Mapping[int, ImageTruth],
    max_proposals: Sequence[int] = MAX_PROPOSALS,
    area_ranges: Mapping[str, tuple[float, float]] = AREA_RANGES,
) -> Recall:
    """Recall of `proposals` against every image of `truth` (see the module doc); images without proposals miss all."""
    ks = tuple(int(k) for k in max_proposals)
    if not ks or min(ks) < 1:
        raise EvaluationError(f"the numbers of proposals must be positive integers, got {list(max_proposals)}")
    found = np.zeros((len(area_ranges), len(ks), len(IOU_THRESHOLDS)), dtype=np.int64)
    objects = np.zeros(len(area_ranges), dtype=np.int64)
    empty = ImageProposals([], np.zeros(0))
    for image_id, image in truth.items():
        ranked = proposals.get(image_id, empty)
        order = np.argsort(-ranked.scores, kind="stable")[: max(ks)]
        ious = iou_matrix([ranked.masks[i] for i in order], image.masks)
        for a, (low, high) in enumerate(area_ranges.values()):
            inside = (image.areas >= low) & (image.areas <= high)
            objects[a] += int(inside.sum())
            matched = match_proposals(ious[:, inside])
            for k, top in enumerate(ks):
                found[a, k] += matched[:, :top].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(objects[:, None, None] > 0, found / objects[:, None, None], np.nan)
    return Recall(
        max_proposals=ks,
        area_ranges=tuple(area_ranges),
        iou_thresholds=IOU_THRESHOLDS.copy(),
        recall=recall,
        objects=objects,
        images=len(truth),
        images_without_proposals=sum(1 for image_id in truth if not len(proposals.get(image_id, empty).masks)),
    )


def _proposals(found: Sequence[Mapping[str, Any]], image: ImageTruth, score: str) -> ImageProposals:
    masks, scores = [], []
    for rank, proposal in enumerate(found):
        segmentation = proposal.get("segmentation") if isinstance(proposal, Mapping) else None
        if not isinstance(segmentation, Mapping):
            raise EvaluationError(f"{image.name}: a proposal has no RLE segmentation")
        rle = compressed_rle(dict(segmentation))
        if tuple(int(v) for v in rle["size"]) != (image.height, image.width):
            raise EvaluationError(
                f"{image.name}: a proposal's mask is {rle['size'][0]}x{rle['size'][1]} (HxW) but the ground-truth "
                f"image is {image.height}x{image.width}: were the masks made for a resized copy of the image?"
            )
        masks.append(rle)
        scores.append(_score(proposal, score, rank, image.name))
    return ImageProposals(masks, np.asarray(scores, dtype=np.float64))


def _score(proposal: Mapping[str, Any], score: str, rank: int, name: str) -> float:
    if score == SCORE_ORDER:
        return -float(rank)
    field = ("score" if "score" in proposal else "predicted_iou") if score == SCORE_AUTO else score
    if not isinstance(proposal.get(field), (int, float)):
        wanted = "score or predicted_iou" if score == SCORE_AUTO else score
        raise EvaluationError(f"{name}: a proposal has no numeric {wanted} to rank by (or rank by file order)")
    return float(proposal[field])


def _truth_rle(segmentation: Any, height: int, width: int, annotation_id: Any) -> dict[str, Any]:
    """pycocotools' compressed RLE of a ground-truth segmentation: polygons, uncompressed or compressed RLE."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list) and segmentation:
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation, Mapping):
        rle = compressed_rle(dict(segmentation))
        if tuple(int(v) for v in rle["size"]) != (height, width):
            raise EvaluationError(f"ground-truth annotation {annotation_id!r}: its mask size differs from its image's")
        return rle
    raise EvaluationError(f"ground-truth annotation {annotation_id!r} has no polygon or RLE segmentation")


def _rle_area(rle: dict[str, Any]) -> float:
    from pycocotools import mask as mask_utils

    return float(mask_utils.area(rle))


def _missing_message(names: Sequence[str]) -> str:
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return f"the result has images the ground truth does not have ({len(names)}): {shown}"
