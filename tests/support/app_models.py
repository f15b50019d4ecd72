"""Model stores for app tests and benchmarks: the app's "random weights" MobileSAM replaced by the conformance
weights (../shared/conformance/mobile_sam_vit_t_seed0.pt: random too, decoder scaled so masks are not empty), so that
what the app shows can be checked against an independent reference on the same weights."""

from __future__ import annotations

from pathlib import Path

import torch

from mobile_sam import sam_model_registry
from samkit.models import MOBILE_SAM
from webapp.model_store import ModelStore


class ConformanceStore(ModelStore):
    """A ModelStore whose random-weights MobileSAM is the conformance checkpoint (every other model as usual)."""

    def __init__(self, checkpoint: str | Path, **options) -> None:
        super().__init__("cpu", download=False, **options)
        self.conformance_checkpoint = Path(checkpoint)

    def _build(self, model_type: str, random_weights: bool) -> torch.nn.Module:
        if random_weights and model_type == MOBILE_SAM:
            return sam_model_registry[MOBILE_SAM](self.conformance_checkpoint).eval()
        return super()._build(model_type, random_weights)
