"""Shared fixtures: where the conformance data and test photos live, and a quiet, offline environment."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the network and never phone home.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
CONFORMANCE_DIR = SHARED_DIR / "conformance"
IMAGES_DIR = SHARED_DIR / "images"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The official-implementation outputs in ../shared/conformance (skip where that folder is absent)."""
    if not (CONFORMANCE_DIR / "README.md").is_file():
        pytest.skip(f"conformance data not found at {CONFORMANCE_DIR} (it sits beside the repository in CI)")
    return CONFORMANCE_DIR


@pytest.fixture(scope="session")
def shared_images_dir() -> Path:
    """Real photos in ../shared/images (skip where that folder is absent)."""
    if not (IMAGES_DIR / "truck.jpg").is_file():
        pytest.skip(f"test photos not found at {IMAGES_DIR} (they sit beside the repository in CI)")
    return IMAGES_DIR
