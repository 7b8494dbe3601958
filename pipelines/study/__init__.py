"""The paper's protocol as one job: base models x losses, best losses, attention, loss curves.

``pipelines.study.run.run_study(StudyConfig(...))`` trains every run of the grid as a Ray task
(several at once where the cluster has room), then builds Tables 1-3 and Fig. 4 from the runs'
``metrics.json``. This package module imports only the settings and the (pure) table building,
so that the CLI can read their defaults without importing torch or Ray.
"""

from pipelines.study.config import StudyConfig
from pipelines.study.tables import RunMetrics, StudyTables, Table, best_losses, build_tables

__all__ = ["RunMetrics", "StudyConfig", "StudyTables", "Table", "best_losses", "build_tables"]
