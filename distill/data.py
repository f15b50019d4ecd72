"""Training samples from an embedding store: the resized image (uint8) and the teacher's embedding, and the
data order (a DistributedSampler permutation per epoch, so that a step number fixes the position exactly)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from mobile_sam.utils.transforms import ResizeLongestSide
from samkit.images import load_image

from .store import EmbeddingStore


class StoreDataset(Dataset):
    """Item i: (image (3, S, S) uint8 resized as the predictor does and zero-padded, (h, w) before padding,
    teacher embedding (C, h', w') float32). The model normalises and pads (`Sam.preprocess`) on its device."""

    def __init__(self, store: EmbeddingStore) -> None:
        self.store = store
        self.size = store.index.image_size
        self.transform = ResizeLongestSide(self.size)

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = self.transform.apply_image(load_image(self.store.image_path(i)))
        h, w = image.shape[:2]
        padded = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        padded[:h, :w] = image
        target = torch.from_numpy(np.array(self.store.embedding(i), dtype=np.float32))
        return torch.from_numpy(padded).permute(2, 0, 1), torch.tensor([h, w]), target


def epoch_order(dataset: Dataset, epoch: int, seed: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """This process's sample indices for `epoch`: a seeded permutation split across `world_size` processes
    (DistributedSampler with drop_last, so every process gets the same number)."""
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return list(sampler)
