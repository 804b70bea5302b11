"""`avatar3d.process_map`: results in order from real spawned processes, exceptions
re-raised, and workers that die (killed from outside, or by their own job) cost a retry
or a clear error, never a hang or a process left behind. Synthetic-set rendering with
several workers goes through it."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from processes import gone_within, spawned_children

from avatar3d.process_map import WorkerDied, process_map


def slow_square(x: int) -> int:
    time.sleep(0.05 * (x % 3))  # unequal jobs: results come back out of order
    return x * x


def crash_on_seven(x: int) -> int:
    if x == 7:
        os._exit(3)  # as a segfault in native code would: no exception, the process is gone
    return x


def failing_initializer() -> None:
    raise OSError("no EGL display")


@pytest.mark.timeout(120)
def test_results_in_order_and_exceptions_reraised():
    assert list(process_map(slow_square, range(20), workers=2)) == [x * x for x in range(20)]
    with pytest.raises(ValueError, match="math domain error"):
        list(process_map(math.sqrt, [4.0, -1.0, 9.0], workers=2))
    with pytest.raises(OSError, match="no EGL display"):
        list(process_map(math.sqrt, [4.0], workers=1, initializer=failing_initializer))
    assert gone_within(lambda: spawned_children(os.getpid()), 10)


@pytest.mark.timeout(120)
def test_a_killed_worker_is_replaced_and_its_jobs_redone():
    results = process_map(slow_square, range(30), workers=2)
    first = [next(results) for _ in range(3)]
    victims = spawned_children(os.getpid())
    assert len(victims) == 2
    os.kill(victims[0], signal.SIGKILL)
    assert first + list(results) == [x * x for x in range(30)]
    assert gone_within(lambda: spawned_children(os.getpid()), 10)


@pytest.mark.timeout(120)
def test_a_job_that_kills_its_worker_every_time_is_an_error_not_a_hang():
    with pytest.raises(WorkerDied, match="job 7: its worker process died 2 times"):
        list(process_map(crash_on_seven, range(12), workers=2))
    assert gone_within(lambda: spawned_children(os.getpid()), 10)


@pytest.mark.timeout(300)
def test_synthetic_renders_with_two_workers_equal_one_worker(tmp_path: Path):
    import torch

    from avatar3d.synth import SetSpec, render_set

    spec = SetSpec("test", 3, views=2, seed=11)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = render_set(spec, workers=1)
        # rendering in this process leaves its torch threads as they were (a `chibi train
        # --workers 1` that rendered trained on one thread, resumed on two)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    two = render_set(spec, workers=2)
    assert one.keys() == two.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], two[key], err_msg=key)
    assert gone_within(lambda: spawned_children(os.getpid()), 10)
