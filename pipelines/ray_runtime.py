"""Connecting to Ray: the cluster in RAY_ADDRESS when there is one, else a local one."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any


def init_ray(num_cpus: int | None = None) -> None:
    """Start or join Ray once per process; quiet Ray Data's own progress output (we show ours)."""
    import ray

    if not ray.is_initialized():
        local = not os.environ.get("RAY_ADDRESS")
        ray.init(
            num_cpus=num_cpus if local else None,
            include_dashboard=False if local else None,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    quiet_ray_data()


def quiet_ray_data() -> None:
    """No Ray Data progress output from datasets made in this process from now on."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def in_flight(
    tasks: Iterable[tuple[Hashable, Callable[[], Any]]], slots: int | None
) -> Iterator[tuple[Hashable, Any, BaseException | None]]:
    """Run Ray tasks keeping at most ``slots`` in flight (None: all at once); yields ``(key,
    result, None)`` or ``(key, None, error)`` as each finishes. A task is ``(key, submit)``:
    ``submit()`` starts it and returns its ObjectRef."""
    import ray

    pending = list(tasks)
    running: dict[Any, Hashable] = {}
    while pending or running:
        while pending and (slots is None or len(running) < slots):
            key, submit = pending.pop(0)
            running[submit()] = key
        (ref,), _ = ray.wait(list(running), num_returns=1)
        key = running.pop(ref)
        try:
            yield key, ray.get(ref), None
        except ray.exceptions.RayError as err:
            yield key, None, err


def task_error(err: BaseException) -> str:
    """The user's part of a Ray task's error: the exception raised in the task where there is
    one."""
    from pipelines.errors import LsmapError

    cause = getattr(err, "cause", None)
    if isinstance(cause, LsmapError):
        return str(cause)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return str(err).strip().splitlines()[0]
