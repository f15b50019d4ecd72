"""`python -m compare`: see `compare.cli`."""

import os

# Nothing here needs ultralytics' network access (checkpoints come through samkit.checkpoints); without this,
# importing ultralytics probes the network and its predictor sends anonymous usage events.
os.environ.setdefault("YOLO_OFFLINE", "1")

from .cli import main  # noqa: E402  (after the environment is set)

raise SystemExit(main())
