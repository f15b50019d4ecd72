"""
The app's operator settings: one `AppConfig`, every field on the command line and in the environment.

Each field `name` is the option `--name` (underscores as dashes) and the environment variable
`MOBILE_SAM_APP_NAME`; the command line wins over the environment, which wins over the default.
The host and port also follow Gradio's and Spaces' variables. This module imports nothing heavy,
so `python app.py --help` answers at once.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from samkit.extras import MissingExtraError, require
from samkit.knobs import Rule
from samkit.models import names

ENV_PREFIX = "MOBILE_SAM_APP_"


@dataclass(frozen=True)
class AppConfig:
    """Server, model and limit settings (see HELP for each)."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    device: str = "auto"
    checkpoint_dir: Path | None = None
    random_weights: bool = False
    models: str = ",".join(names("mobile_sam", "sam", "efficientvit_sam", "fastsam"))
    download: bool = True
    download_large: bool = False
    max_image_side: int = 2048
    max_file_size: str = "25mb"
    interactive_concurrency: int = 4
    encode_concurrency: int = 1
    heavy_concurrency: int = 1
    heavy_queue: int = 4
    queue_size: int = 64
    max_everything_seconds: float = 60.0
    max_compare_prompts: int = 32
    embedding_cache_items: int = 8
    model_cache_items: int = 3
    result_cache_items: int = 4
    session_disk_mb: int = 200
    session_ttl_s: int = 3600
    upload_max_age_s: int = 3600
    browser_decoder: bool = True
    cross_origin_isolation: bool = False
    decoder_cache_items: int = 4

    def model_list(self) -> list[str]:
        return [name.strip() for name in self.models.split(",") if name.strip()]


HELP = {
    "host": "address to listen on (0.0.0.0 for every interface; also $GRADIO_SERVER_NAME)",
    "port": "port to listen on (also $GRADIO_SERVER_PORT, then $PORT as on Hugging Face Spaces)",
    "share": "also open a public gradio.live link",
    "device": "auto, cpu, cuda, cuda:N or mps",
    "checkpoint_dir": "folder holding the checkpoints (default $MOBILE_SAM_CACHE_DIR or ~/.cache/mobile_sam)",
    "random_weights": "start with randomly initialised weights (no checkpoints needed; masks are meaningless)",
    "models": "comma-separated allow-list of the Compare tab's models (vit_t is always served)",
    "download": "download missing MobileSAM, EfficientViT-SAM-L and FastSAM checkpoints on first use (--no-download: "
    "never)",
    "download_large": "also download the large checkpoints (SAM ViT-B/L/H, 0.4 to 2.5 GB; EfficientViT-SAM-XL0/XL1) "
    "when a visitor asks for them",
    "max_image_side": "downscale uploaded images so their longest side is at most this many pixels",
    "max_file_size": "largest upload accepted, e.g. 25mb",
    "interactive_concurrency": "clicks decoded at once (the fast lane: cached embeddings only)",
    "encode_concurrency": "images encoded at once (uploads, the random-weights toggle)",
    "heavy_concurrency": "segment-everything and compare jobs run at once",
    "heavy_queue": "heavy jobs that may wait for a slot (more are refused with a message)",
    "queue_size": "Gradio's limit on queued events of every kind",
    "max_everything_seconds": "refuse segment-everything jobs estimated to take longer (seconds on a 2-core CPU)",
    "max_compare_prompts": "most prompts in one comparison (each runs on every model)",
    "embedding_cache_items": "image embeddings kept for every visitor (about 4 MB each)",
    "model_cache_items": "models kept in memory (pretrained and random-weight ones together)",
    "result_cache_items": "segment-everything results kept for instant re-download",
    "session_disk_mb": "most disk all visitors' download files may use together",
    "session_ttl_s": "a session's files and state are deleted after this many idle seconds",
    "upload_max_age_s": "Gradio's copies of uploads are deleted after this many seconds",
    "browser_decoder": "also decode masks in the visitor's browser (masks under the cursor, instant clicks; "
    "onnxruntime-web's files are fetched at start: npm ci, else the npm registry); --no-browser-decoder: the server "
    "answers every click alone",
    "cross_origin_isolation": "send the COOP/COEP headers that let the page's decoder use several threads (the page "
    "can then load nothing from other sites, and cannot be embedded in other sites' pages without those headers)",
    "decoder_cache_items": "decoder files for the page kept on disk in the checkpoint folder (one per model's weights, "
    "about 8 MB each)",
}


def _environment_default(name: str, default: Any) -> Any:
    if name == "host":
        return os.environ.get(ENV_PREFIX + "HOST") or os.environ.get("GRADIO_SERVER_NAME") or default
    if name == "port":
        for variable in (ENV_PREFIX + "PORT", "GRADIO_SERVER_PORT", "PORT"):
            if os.environ.get(variable):
                return os.environ[variable]
        return default
    return os.environ.get(ENV_PREFIX + name.upper(), default)


def _boolean(text: Any) -> bool:
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("1", "true", "yes", "on")


# The rule of every numeric option: a positive integer or a positive finite number (ports up to 65535).
POSITIVE = {"int": Rule(integer=True, low=1), "float": Rule(low=0.0, low_open=True)}
PORT = Rule(integer=True, low=1, high=65535)


def _number_rule(name: str, kind: str) -> Rule:
    return PORT if name == "port" else POSITIVE[kind]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="MobileSAM web demo (Gradio). Every option can also be set in the environment as "
        f"{ENV_PREFIX}<OPTION> (e.g. {ENV_PREFIX}MAX_EVERYTHING_SECONDS=30).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for item in fields(AppConfig):
        option = "--" + item.name.replace("_", "-")
        default = _environment_default(item.name, item.default)
        if item.type in ("bool", bool):
            parser.add_argument(
                option, action=argparse.BooleanOptionalAction, default=_boolean(default), help=HELP[item.name]
            )
        elif item.name == "checkpoint_dir":
            parser.add_argument(option, type=Path, default=Path(default) if default else None, help=HELP[item.name])
        elif item.type in ("int", "float"):
            rule = _number_rule(item.name, item.type)
            try:
                value = rule.parse(str(default))
            except argparse.ArgumentTypeError as error:
                raise argparse.ArgumentTypeError(f"{option[2:]}: {error}") from None
            parser.add_argument(option, type=rule.parse, default=value, help=HELP[item.name])
        else:
            parser.add_argument(option, default=default, help=HELP[item.name])
    return parser


def parse_args(argv: list[str] | None = None) -> AppConfig:
    """The command line and environment as an AppConfig (exits with a message on bad values)."""
    try:
        parser = build_parser()
    except (argparse.ArgumentTypeError, ValueError) as error:  # a bad environment value
        raise SystemExit(f"error in the environment ({ENV_PREFIX}...): {error}") from error
    args = parser.parse_args(argv)
    if args.max_image_side < 16:
        parser.error("--max-image-side must be at least 16")
    return AppConfig(**{item.name: getattr(args, item.name) for item in fields(AppConfig)})


def check_app_packages() -> None:
    """Exit with the command that installs the app's extra when gradio is missing (before anything imports it)."""
    try:
        require("gradio", "the app")
    except MissingExtraError as missing:
        raise SystemExit(f"error: {missing}") from None
