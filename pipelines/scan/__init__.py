"""Post-event scans: watch regions for new imagery, map it, and report new landslides.

See :mod:`pipelines.scan.config` for the watch list, :mod:`pipelines.scan.ledger` for what makes
reruns and overlapping runs safe, :mod:`pipelines.scan.compare` for what counts as new.
"""

from pipelines.scan.config import WatchList, load_watchlist, parse_watchlist
from pipelines.scan.run import scan, scan_region

__all__ = ["WatchList", "load_watchlist", "parse_watchlist", "scan", "scan_region"]
