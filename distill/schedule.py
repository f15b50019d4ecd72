"""The learning-rate schedule: linear warm-up from 0, then cosine decay to `min_ratio` of the peak."""

from __future__ import annotations

import math

import torch


def warmup_cosine_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """The multiplier of the peak learning rate for optimizer step `step` (0-based) of `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, min_ratio: float = 0.0
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying `warmup_cosine_factor` (its state_dict resumes exactly)."""
    if total < 1 or warmup < 0:
        raise ValueError(f"need total >= 1 and warmup >= 0 steps, got {total} and {warmup}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine_factor(step, warmup, total, min_ratio)
    )
