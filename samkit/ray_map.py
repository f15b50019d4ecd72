"""One way to run work over many items on Ray Data: a pool of actors, rows back as they finish.

Both dataset engines (segment everything over images, distillation's teacher embeddings) call `ray_map`: Ray is
imported only here, inside the call; a local Ray is started (and stopped afterwards) unless one is already
running in this process or `address` names a cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from .extras import MissingExtraError, install_command, require


def import_ray() -> Any:
    """The `ray` module with Ray Data, or a `MissingExtraError` (an ImportError) that names the extra to install."""
    ray = require("ray", "--engine ray")
    if not hasattr(ray, "is_initialized"):
        place = getattr(ray, "__file__", None) or next(iter(getattr(ray, "__path__", [])), "?")
        raise MissingExtraError(
            f"the 'ray' imported from {place} is not Ray (a folder named 'ray' in the working directory?); "
            f"run from another folder, or install Ray Data with {install_command('ray')}"
        )
    require("ray.data", "--engine ray")
    return ray


@contextmanager
def ray_map(
    items: Sequence[Mapping[str, Any]],
    actor: type,
    actor_kwargs: Mapping[str, Any],
    *,
    workers: int | None = None,
    batch_size: int = 1,
    use_gpus: bool = True,
    address: str | None = None,
) -> Iterator[Iterator[dict[str, Any]]]:
    """Run `actor(**actor_kwargs)(batch)` over `items` (dicts of plain values) with a pool of actors; yields an
    iterator over the result rows, in the order they finish. Batches are numpy dicts of `batch_size` rows.

    With `use_gpus` and GPUs in the cluster, each actor holds one GPU (default: one actor per GPU); otherwise
    actors share the CPUs (default: half as many actors as CPUs). Ray shuts down when the block ends if this
    call started it.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if use_gpus else 0
        cpus = int(resources.get("CPU", 1))
        workers = workers or (gpus if gpus else max(1, cpus // 2))
        results = ray.data.from_items([dict(item) for item in items]).map_batches(
            actor,
            fn_constructor_kwargs=dict(actor_kwargs),
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(items)))),
            num_cpus=1 if gpus else max(1, cpus // workers),
            num_gpus=1 if gpus else 0,
        )
        yield results.iter_rows()
    finally:
        if started:
            ray.shutdown()
