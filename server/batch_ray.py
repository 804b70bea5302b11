"""The Ray engine of `chibi batch`: Ray Data `map_batches` over a stateful actor pool.

Each actor builds one `Converter` (models loaded once per actor) and converts
a batch of (key, path) rows; the driver iterates the results as they stream
back and writes them with the same atomic writer and ledger as the local
engine. Without an address a local Ray of `workers` CPUs is started (and shut
down at the end); with one, the job joins that cluster and uses one actor per
CPU there unless `workers` says otherwise. Actors read the photos from their
paths, so on a real cluster INPUT must be mounted at the same path on every
node (OUTPUT is written only by the driver), and chibi-avatar must be installed
there too. Photos never enter Ray's object store, which may spill to disk; only
the results (avatar files) do.

A photo that crashes an actor's process makes Ray restart the actor and retry;
if that keeps failing, the job stops with `engine_failed` (everything finished
is saved; the local engine isolates such a photo as `worker_crashed`).
Ray 2.49 prints one `core_worker.cc ... constructor arguments in the object
store` line per job: Ray Data's own actor pool triggers it (ray issue 53727).

Needs the `ray` extra: pip install "chibi-avatar[ray]".
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np

from avatar3d.errors import ChibiError

from .batch import JobOptions
from .batch_local import Converter, Task

MAX_BLOCKS = 10_000  # Ray Data schedules one task per block: keep that bounded


class RayConverter:
    """Ray Data actor: one Converter per actor; a batch of rows in, pickled results out.

    Results travel as one pickled blob per row, because a result holds nested
    bytes (one file per face) that Arrow columns do not carry naturally.
    """

    def __init__(self, options: dict[str, Any]):
        self.converter = Converter(JobOptions(**options))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tasks = [
            (os.fsdecode(bytes(k)), os.fsdecode(bytes(p)))
            for k, p in zip(batch["key"], batch["path"], strict=True)
        ]
        results = self.converter.convert_many(tasks)
        blobs = np.empty(len(results), dtype=object)
        blobs[:] = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in results]
        return {"result": blobs}


def run_ray(
    tasks: list[Task], options: JobOptions, workers: int | None = None,
    address: str | None = None, chunk: int = 2,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """Convert `tasks` on Ray; yields one result dict per task as batches finish.

    Uses the Ray already initialised in this process if there is one (tests start
    one per module), else starts a local one or joins `address`.
    """
    try:
        import ray
        import ray.data  # configures Ray Data's loggers, adjusted below
    except ImportError:
        raise ChibiError(
            "not_available", 'the Ray engine needs the ray extra: pip install ".[ray]"'
        ) from None
    from .process_setup import usable_cores

    if not tasks:
        return
    started = False
    # no usage report to Ray's servers from an operator's batch job (it can opt back in)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        common = {"include_dashboard": False, "logging_level": logging.WARNING,
                  "log_to_driver": False}  # fmt: skip
        if address:
            ray.init(address=address, **common)
        else:
            # "local": a new Ray of our own, even if a `ray start` cluster runs on this host
            ray.init(address="local", num_cpus=workers or usable_cores(), **common)
        started = True
    try:
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        # The driver shows one bar for the whole job: Ray Data's console INFO lines and its
        # object-store sizing advice would break it (they still go to Ray's session logs).
        for handler in logging.getLogger("ray.data").handlers:
            if "File" not in type(handler).__name__:
                handler.setLevel(logging.ERROR)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        dataset = ray.data.from_items(
            # bytes, not str: Arrow strings must be UTF-8 and a file name need not be
            [{"key": os.fsencode(key), "path": os.fsencode(path)} for key, path in tasks],
            # One block per batch (up to a cap): results reach the driver, hence the disk
            # and the progress bar, as each batch ends rather than a whole large block.
            override_num_blocks=min(MAX_BLOCKS, -(-len(tasks) // chunk)),
        )
        results = dataset.map_batches(
            RayConverter,
            fn_constructor_kwargs={"options": options.to_dict()},
            batch_size=chunk,
            batch_format="numpy",
            concurrency=actors,
            num_cpus=1,
        )
        try:
            for row in results.iter_rows():
                yield pickle.loads(row["result"])
        except ray.exceptions.RayError as exc:  # e.g. an actor that kept dying
            raise ChibiError(
                "engine_failed",
                f"the Ray job failed ({type(exc).__name__}: {str(exc)[:300]}); finished "
                "photos are saved: rerun to resume, or use --engine local to isolate a photo",
            ) from exc
    finally:
        if started:
            ray.shutdown()
