"""
The model catalog: every model this project knows by name, once, with its label and its official file.

`sam_model_registry` (the library) builds the SAM-family architectures; this catalog says what each name is
called, where its official checkpoint comes from (URL, SHA-256) and which family it belongs to:
  - "mobile_sam", "sam", "efficientvit_sam": state dicts for `mobile_sam.sam_model_registry` (prompted by SAM's
    decoder architecture);
  - "mobilesamv2": MobileSAMv2's own files, read by `mobile_sam.build_mobilesamv2`: "mobilesamv2" is its default
    image encoder's file (l2.pt), which `needs` its prompt-guided decoder's ("mobilesamv2_decoder");
  - "fastsam": FastSAM (ultralytics YOLOv8-seg pickles), compared with SAM and used as a box detector;
  - "objectaware": MobileSAMv2's ObjectAwareModel (an ultralytics YOLOv8 pickle), a box detector.
Names are looked up case-insensitively, also by alias and by file name (`model_info`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

SAM_FAMILIES = ("mobile_sam", "sam", "efficientvit_sam")
ULTRALYTICS_FAMILIES = ("fastsam", "objectaware")
MOBILESAMV2_FAMILY = "mobilesamv2"


@dataclass(frozen=True)
class ModelInfo:
    """One model: its registry `name`, how people call it (`label`), its family and its official file.

    `url` is a direct download unless `downloadable` is False (then it is the page that links the file);
    `sha256` and `size` are None where not published; `paper` quotes the papers' parameter figures; `needs` names
    the other catalog entries whose files the model is built from too.
    """

    name: str
    label: str
    family: str
    filename: str
    url: str
    sha256: str | None
    size: int | None
    description: str
    downloadable: bool = True
    aliases: tuple[str, ...] = ()
    paper: str = ""
    needs: tuple[str, ...] = ()

    @property
    def is_state_dict(self) -> bool:
        """True for plain state dicts (`mobile_sam.build_sam.read_state_dict`); the others are ultralytics pickles."""
        return self.family in SAM_FAMILIES

    @property
    def is_large(self) -> bool:
        """True for the checkpoints of hundreds of MB and more (SAM's 0.4 to 2.5 GB, EfficientViT-SAM-XL's) that
        servers download only when allowed to."""
        return self.family == "sam" or self.name.startswith("efficientvit_sam_xl")


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
_FASTSAM_URL = "https://github.com/ultralytics/assets/releases/download/v8.3.0/"
# MobileSAMv2's prompt-guided decoder is a file of the official repository (PromptGuidedDecoder/); its other files
# (weight/l2.pt, weight/ObjectAwareModel.pt, ...) come in the archive its README links: a Google Drive page, no
# direct link.
MOBILESAMV2_WEIGHTS_URL = "https://drive.google.com/file/d/1dE-YAG-1mFCBmao2rHDp0n-PP4eH7SjE/view?usp=sharing"
_MOBILESAMV2_DECODER_URL = (
    "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/MobileSAMv2/PromptGuidedDecoder/"
    "Prompt_guided_Mask_Decoder.pt"
)
# The links of mit-han-lab/efficientvit's applications/efficientvit_sam/README.md (no hash is published).
_EFFICIENTVIT_SAM_URL = "https://huggingface.co/mit-han-lab/efficientvit-sam/resolve/main/"
# EfficientViT-SAM variants: encoder input side and the total parameters its README quotes.
_EFFICIENTVIT_SAM = {
    "l0": (512, "34.8M"),
    "l1": (512, "47.7M"),
    "l2": (512, "61.3M"),
    "xl0": (1024, "117.0M"),
    "xl1": (1024, "203.3M"),
}

MODELS: Mapping[str, ModelInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            ModelInfo(
                name="vit_t",
                label="MobileSAM",
                family="mobile_sam",
                filename="mobile_sam.pt",
                url="https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/weights/mobile_sam.pt",
                sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
                size=None,
                description="MobileSAM, TinyViT image encoder",
                aliases=("mobile_sam", "mobilesam"),
                paper="encoder 5.78M, decoder 3.876M, total 9.66M",
            ),
            ModelInfo(
                name="vit_b",
                label="SAM ViT-B",
                family="sam",
                filename="sam_vit_b_01ec64.pth",
                url=_SAM_URL + "sam_vit_b_01ec64.pth",
                sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                size=None,
                description="SAM, ViT-B image encoder",
                paper="encoder 86M (ViT-B)",
            ),
            ModelInfo(
                name="vit_l",
                label="SAM ViT-L",
                family="sam",
                filename="sam_vit_l_0b3195.pth",
                url=_SAM_URL + "sam_vit_l_0b3195.pth",
                sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                size=None,
                description="SAM, ViT-L image encoder",
                paper="encoder 307M (ViT-L)",
            ),
            ModelInfo(
                name="vit_h",
                label="SAM ViT-H",
                family="sam",
                filename="sam_vit_h_4b8939.pth",
                url=_SAM_URL + "sam_vit_h_4b8939.pth",
                sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                size=2_564_550_879,
                description="SAM, ViT-H image encoder",
                aliases=("default", "sam"),
                paper="encoder 632M (ViT-H); 611M in the MobileSAM README; decoder 3.876M",
            ),
            *(
                ModelInfo(
                    name=f"efficientvit_sam_{variant}",
                    label=f"EfficientViT-SAM-{variant.upper()}",
                    family="efficientvit_sam",
                    filename=f"efficientvit_sam_{variant}.pt",
                    url=f"{_EFFICIENTVIT_SAM_URL}efficientvit_sam_{variant}.pt",
                    sha256=None,
                    size=None,
                    description=f"EfficientViT-SAM-{variant.upper()}, EfficientViT image encoder at {side} px",
                    paper=f"total {total} (EfficientViT-SAM README)",
                )
                for variant, (side, total) in _EFFICIENTVIT_SAM.items()
            ),
            ModelInfo(
                name="mobilesamv2",
                label="MobileSAMv2",
                family=MOBILESAMV2_FAMILY,
                filename="l2.pt",
                url=MOBILESAMV2_WEIGHTS_URL,
                sha256=None,
                size=None,
                description="MobileSAMv2's image encoder (EfficientViT-SAM-L2), weight/l2.pt of its weights archive",
                downloadable=False,
                aliases=("mobile_sam_v2", "mobilesamv2_l2"),
                needs=("mobilesamv2_decoder",),
            ),
            ModelInfo(
                name="mobilesamv2_decoder",
                label="MobileSAMv2 prompt-guided decoder",
                family=MOBILESAMV2_FAMILY,
                filename="Prompt_guided_Mask_Decoder.pt",
                url=_MOBILESAMV2_DECODER_URL,
                sha256=None,
                size=None,
                description="MobileSAMv2's prompt encoder and mask decoder, trained for its detector's box prompts",
            ),
            ModelInfo(
                name="fastsam-s",
                label="FastSAM-s",
                family="fastsam",
                filename="FastSAM-s.pt",
                url=_FASTSAM_URL + "FastSAM-s.pt",
                sha256=None,
                size=None,
                description="FastSAM-s, YOLOv8-s segmentation (ultralytics)",
                aliases=("fastsam_s",),
                paper="—",
            ),
            ModelInfo(
                name="fastsam-x",
                label="FastSAM-x",
                family="fastsam",
                filename="FastSAM-x.pt",
                url=_FASTSAM_URL + "FastSAM-x.pt",
                sha256=None,
                size=None,
                description="FastSAM-x, YOLOv8-x segmentation (ultralytics)",
                aliases=("fastsam", "fastsam_x"),
                paper="total 68M",
            ),
            ModelInfo(
                name="objectaware",
                label="ObjectAwareModel (MobileSAMv2)",
                family="objectaware",
                filename="ObjectAwareModel.pt",
                url=MOBILESAMV2_WEIGHTS_URL,
                sha256=None,
                size=None,
                description="MobileSAMv2's object-aware box detector, YOLOv8 (ultralytics), weight/ObjectAwareModel.pt "
                "of its weights archive",
                downloadable=False,
            ),
        )
    }
)


def names(*families: str) -> tuple[str, ...]:
    """The catalog names of the given families, in catalog order."""
    return tuple(name for name, info in MODELS.items() if info.family in families)


# Names by role, in catalog order; MobileSAM is the default model everywhere.
MOBILE_SAM = next(name for name, info in MODELS.items() if info.family == "mobile_sam")
# MobileSAMv2 as its Inference.py runs it: the model (L2 encoder + prompt-guided decoder) and its detector.
MOBILESAMV2 = "mobilesamv2"
MOBILESAMV2_DETECTOR = "objectaware"
# The MobileSAM paper's teacher and the reference of its comparisons: original SAM with the ViT-H encoder.
PAPER_REFERENCE = "vit_h"
# The detector the app offers first: FastSAM-s needs no file beyond the downloadable FastSAM checkpoint.
APP_DETECTOR = "fastsam-s"
SAM_MODELS = names(*SAM_FAMILIES)
FASTSAM_MODELS = names("fastsam")
DETECTORS = names(*ULTRALYTICS_FAMILIES)
LABELS: Mapping[str, str] = MappingProxyType({name: info.label for name, info in MODELS.items()})


def model_info(name: str | ModelInfo) -> ModelInfo:
    """The catalog entry for a name, an alias or a file name ("vit_t", "mobile_sam", "mobile_sam.pt", ...),
    case-insensitively. A ModelInfo is returned as is (custom or test entries)."""
    if isinstance(name, ModelInfo):
        return name
    if not isinstance(name, str):
        raise TypeError(f"A model name must be a str, got {type(name).__name__}.")
    wanted = name.strip().lower()
    for info in MODELS.values():
        if wanted == info.name or wanted in info.aliases or wanted == info.filename.lower():
            return info
    known = ", ".join(MODELS)
    raise ValueError(f"Unknown model {name!r}; known models: {known} (or their aliases and file names).")


def canonical_name(name: str) -> str:
    """The registry name of a model given by name, alias or file name (see `model_info`)."""
    return model_info(name).name
