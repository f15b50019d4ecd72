"""Losses: embedding MSE (decoupled distillation) and SAM's mask loss against the teacher's masks.

Mask loss choice (semi-coupled training and decoder fine-tuning): SAM's own training loss, 20 * focal + dice
(the SAM paper, section 3 and appendix A), with the teacher's binarised mask (logit > 0) as the target. It is
what makes the student's *masks* agree with the teacher's, which is what the paper's mIoU measures; an MSE on
logits would also spend capacity on matching logit magnitudes far from the decision boundary that never change
a mask.

Decoder fine-tuning adds SAM's IoU-head term (MSE, weight 1), with the teacher's predicted IoU as the target
rather than the IoU against ground truth as in SAM: the paper's one-point metric keeps each model's
highest-scoring mask, so the student agrees with the teacher when it ranks its three masks as the teacher does.
Without the term the IoU head gets no gradient while its input tokens change, and its ranking drifts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FOCAL_WEIGHT = 20.0


def embedding_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error of two (B, C, h, w) embeddings, in float32."""
    return F.mse_loss(student.float(), teacher.float())


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al.), averaged over every pixel; `target` in {0, 1}, same shape as `logits`."""
    probability = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = probability * target + (1 - probability) * (1 - target)
    weight = alpha * target + (1 - alpha) * (1 - target)
    return (weight * ce * (1 - p_t) ** gamma).mean()


def dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice coefficient per mask (over the last two axes), averaged over masks."""
    probability = logits.sigmoid().flatten(-2)
    target = target.flatten(-2)
    numerator = 2 * (probability * target).sum(-1) + eps
    denominator = probability.sum(-1) + target.sum(-1) + eps
    return (1 - numerator / denominator).mean()


def mask_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """20 * focal + dice of the student's mask logits against the teacher's masks (teacher logit > 0).

    Both (..., H, W); the teacher side carries no gradient."""
    target = (teacher_logits.detach() > 0).float()
    logits = student_logits.float()
    return FOCAL_WEIGHT * focal_loss(logits, target) + dice_loss(logits, target)


def decoder_loss(
    student_logits: torch.Tensor, student_iou: torch.Tensor, teacher_logits: torch.Tensor, teacher_iou: torch.Tensor
) -> torch.Tensor:
    """`mask_loss` plus the MSE of the student's predicted IoU (...,) against the teacher's (no gradient)."""
    return mask_loss(student_logits, teacher_logits) + F.mse_loss(student_iou.float(), teacher_iou.detach().float())
