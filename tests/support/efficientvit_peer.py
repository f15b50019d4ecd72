"""The official EfficientViT-SAM code (mit-han-lab/efficientvit), imported from an extracted snapshot.

Used as the peer of the speed benchmark and by the script that makes the conformance data
(tests/conformance_data/efficientvit). efficientvit's package __init__ files import its training and generation
code (timm, omegaconf, diffusers, triton, ...), which the SAM models never use and this project does not install;
only the modules the models need are imported here: efficientvit.models.{nn,efficientvit}.{act,norm,ops,backbone,
sam} and efficientvit.sam_model_zoo, plus Meta's segment_anything, which efficientvit's sam.py imports.
MobileSAMv2's copy of efficientvit is loaded the same way (`official_mobilesamv2`).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path


def official_efficientvit(efficientvit_root: Path, segment_anything_root: Path) -> tuple[types.ModuleType, ...]:
    """(efficientvit.models.efficientvit.sam, efficientvit.sam_model_zoo) from the snapshots' roots (the folders
    holding efficientvit/ and segment_anything/)."""
    _check(Path(efficientvit_root) / "efficientvit" / "sam_model_zoo.py", "--efficientvit-code")
    _check(Path(segment_anything_root) / "segment_anything" / "__init__.py", "--segment-anything-code")
    sys.path.insert(0, str(segment_anything_root))
    sys.path.insert(0, str(efficientvit_root))
    _load_efficientvit(Path(efficientvit_root))
    package = sys.modules["efficientvit.models.efficientvit"]
    for name in ("backbone", "sam"):
        module = importlib.import_module(f"efficientvit.models.efficientvit.{name}")
        for attr in module.__all__:
            setattr(package, attr, getattr(module, attr))
    return sys.modules["efficientvit.models.efficientvit.sam"], importlib.import_module("efficientvit.sam_model_zoo")


def official_mobilesamv2(mobilesamv2_root: Path) -> tuple[types.ModuleType, ...]:
    """MobileSAMv2's (mobilesamv2.build_sam, mobilesamv2.modeling, mobilesamv2.utils.transforms), from its
    MobileSAMv2/ folder; replaces any efficientvit loaded before (the two copies share the package name)."""
    root = Path(mobilesamv2_root)
    _check(root / "mobilesamv2" / "build_sam.py", "the MobileSAMv2 folder")
    sys.path.insert(0, str(root))
    _load_efficientvit(root)
    _forget("mobilesamv2")
    _package("mobilesamv2", root / "mobilesamv2")
    tinyvit = types.ModuleType("tinyvit.tiny_vit")
    tinyvit.TinyViT = None  # its tiny_vit encoder needs timm; the efficientvit_l2 encoder does not use it
    sys.modules["tinyvit"] = types.ModuleType("tinyvit")
    sys.modules["tinyvit.tiny_vit"] = tinyvit
    return (
        importlib.import_module("mobilesamv2.build_sam"),
        importlib.import_module("mobilesamv2.modeling"),
        importlib.import_module("mobilesamv2.utils.transforms"),
    )


def _check(path: Path, what: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {what} must be an extracted snapshot of the official code")


def _package(name: str, path: Path) -> types.ModuleType:
    """An empty package at `path` (its __init__ is not run)."""
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    sys.modules[name] = module
    return module


def _forget(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def _load_efficientvit(root: Path) -> None:
    """efficientvit.models.nn (act, norm, ops) from `root`, and empty efficientvit / models / efficientvit packages."""
    _forget("efficientvit")
    base = root / "efficientvit"
    _package("efficientvit", base)
    _package("efficientvit.models", base / "models")
    nn_package = _package("efficientvit.models.nn", base / "models" / "nn")
    triton_stub = types.ModuleType("efficientvit.models.nn.triton_rms_norm")
    triton_stub.TritonRMSNorm2dFunc = None  # only the "trms2d" norm needs triton, and no SAM model uses it
    sys.modules[triton_stub.__name__] = triton_stub
    for name in ("act", "norm", "ops"):
        module = importlib.import_module(f"efficientvit.models.nn.{name}")
        for attr in module.__all__:
            setattr(nn_package, attr, getattr(module, attr))
    _package("efficientvit.models.efficientvit", base / "models" / "efficientvit")
