"""Distributed training with Ray Train: settings, the per-worker loop, the driver and its outputs.

``pipelines.training.run.train(TrainConfig(...))`` splits the chips, measures normalisation
statistics on the training split, trains on ``workers`` data-parallel Ray Train workers with a
checkpoint per epoch (reruns resume) and writes the best epoch's model bundle, ``metrics.json``
and ``loss_curve.png``. This package module imports only the settings, so that the CLI can read
their defaults without importing torch.
"""

from pipelines.training.config import TrainConfig, load_config_file

__all__ = ["TrainConfig", "load_config_file"]
