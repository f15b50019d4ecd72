"""Cancelling a heavy job inside a model's forward pass (everything.scheduling.interruptible)."""

import threading

import pytest
import torch
from torch import nn

from mobile_sam.utils.cancel import Cancelled
from webapp.scheduling import JobControl, current_job, interruptible


class _Counting(nn.Module):
    """Two blocks; the job is cancelled between them, so the second must never run."""

    def __init__(self, control: JobControl) -> None:
        super().__init__()
        self.control = control
        self.first = nn.Sequential(nn.Linear(4, 4))
        self.second = nn.Sequential(nn.Linear(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first(x)
        self.control.cancel()
        return self.second(x)


def test_a_cancelled_job_stops_before_the_next_block():
    control = JobControl()
    model = interruptible(_Counting(control))
    calls = []
    model.second.register_forward_hook(lambda *_: calls.append("second"))
    with current_job(control), pytest.raises(Cancelled):
        model(torch.zeros(1, 4))
    assert calls == []


def test_threads_without_a_job_are_not_interrupted():
    control = JobControl()
    model = interruptible(_Counting(control))
    out = []
    worker = threading.Thread(target=lambda: out.append(model(torch.zeros(1, 4))))
    worker.start()
    worker.join()
    assert out and out[0].shape == (1, 4)


def test_modules_shared_with_other_networks_get_no_hook():
    from ultralytics.nn.modules import Conv
    from ultralytics.nn.tasks import SegmentationModel

    interruptible(SegmentationModel("yolov8n-seg.yaml", nc=1, verbose=False))
    fresh = SegmentationModel("yolov8n-seg.yaml", nc=1, verbose=False)
    assert not Conv.default_act._forward_pre_hooks
    assert not any(module._forward_pre_hooks for module in fresh.modules())
