"""Connecting to Ray: the cluster in RAY_ADDRESS when there is one, else a local one."""

from __future__ import annotations

import logging
import os


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
