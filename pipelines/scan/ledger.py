"""What a region's scans have done, and who is scanning it now.

```
<output>/<region>/
  _ledger.json        {"region": ..., "images": {<image-id>: record}}: finished images only
  _lock/<n>.json      the scan working on the region now (owner, renewed_at)
  <image-id>/         one folder of results per image
```
An image enters the ledger only after all its outputs are written, and the ledger is replaced
whole (atomic write), so a scan killed at any point leaves either the old ledger or the new one;
the next run redoes whatever the ledger does not list, and the mapper resumes from its markers.

Overlapping runs (a slow scan and the next scheduled one) must not work on a region at once: the
ledger is read, changed and written back, and a later image is compared with an earlier one. A
scan holds the region's lock while it works. Taking it is an exclusive create (``O_EXCL``-like
hard link locally, ``If-None-Match: *`` on S3), so of two scans exactly one wins. The holder
renews it every ``timeout / 4``; a lock not renewed for ``timeout`` belongs to a scan that died
and the next scan takes over by creating the next generation ``<n+1>.json``, again exclusively.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import tempfile
import threading
import uuid

from pipelines import storage
from pipelines.errors import StorageError

LEDGER_NAME = "_ledger.json"
LOCK_DIR = "_lock"

log = logging.getLogger(__name__)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def read_ledger(root: str) -> dict[str, dict]:
    """Finished images of the region at ``root``: image id -> record (empty before any scan)."""
    uri = storage.join(root, LEDGER_NAME)
    if not storage.exists(uri):
        return {}
    document = storage.read_json(uri)
    images = document.get("images") if isinstance(document, dict) else None
    if not isinstance(images, dict):
        raise StorageError(f"{storage.redact(uri)}: not an lsmap scan ledger (no 'images' mapping)")
    return images


def write_ledger(root: str, region: str, images: dict[str, dict]) -> None:
    """Replace the region's ledger atomically."""
    storage.write_json(storage.join(root, LEDGER_NAME), {"region": region, "images": images})


def create_exclusive(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` only if nothing is there; FileExistsError otherwise.

    Readers never see a partial file: locally a complete temporary file is hard-linked into place
    (``link`` fails if the target exists); on S3 a single conditional PUT.
    """
    fs, path = storage.filesystem(uri)
    try:
        if storage.is_remote(uri):
            fs.pipe_file(path, data, mode="create")
            return
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.link(tmp, path)
        finally:
            os.remove(tmp)
    except FileExistsError:
        raise
    except OSError as err:
        raise StorageError(f"{storage.redact(uri)}: cannot create it: {err}") from err


class RegionLock:
    """The lock of one region (see the module docstring); use :meth:`acquire` and :meth:`release`."""

    def __init__(self, root: str, timeout_s: float = 900.0) -> None:
        if timeout_s <= 0:
            raise ValueError(f"lock timeout must be positive, got {timeout_s}")
        self.directory = storage.join(root, LOCK_DIR)
        self.timeout_s = timeout_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.generation: int | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def _uri(self, generation: int) -> str:
        return storage.join(self.directory, f"{generation}.json")

    def _record(self) -> bytes:
        now = _now().isoformat(timespec="milliseconds")
        return json.dumps({"owner": self.owner, "renewed_at": now}).encode()

    def _generations(self) -> list[int]:
        names = storage.listdir(self.directory)
        stems = (name[: -len(".json")] for name in names if name.endswith(".json"))
        return sorted(int(stem) for stem in stems if stem.isdigit())

    def _read(self, generation: int) -> dict | None:
        try:
            record = json.loads(storage.read_bytes(self._uri(generation)))
        except (StorageError, ValueError):
            return None  # released (deleted) since it was listed, or not a lock record
        return record if isinstance(record, dict) else None

    def _stale(self, record: dict) -> bool:
        try:
            renewed = datetime.datetime.fromisoformat(record["renewed_at"])
        except (KeyError, TypeError, ValueError):
            return True
        return (_now() - renewed).total_seconds() > self.timeout_s

    def acquire(self) -> dict | None:
        """Take the lock: None when taken, else the record of the scan that holds it."""
        generations = self._generations()
        generation = 0
        if generations:
            record = self._read(generations[-1])
            if record is not None and not self._stale(record):
                return record
            generation = generations[-1] + 1
        try:
            create_exclusive(self._uri(generation), self._record())
        except FileExistsError:
            return self._read(generation) or {"owner": "another scan"}
        self.generation = generation
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="lsmap-scan-lock", daemon=True)
        self._renewer.start()
        return None

    def _renew(self) -> None:
        interval = self.timeout_s / 4
        while not self._stop.wait(interval):
            try:
                storage.write_bytes(self._uri(self.generation), self._record())
            except StorageError as err:
                # Not fatal: the lock lives until the timeout, and the scan's outputs are safe to
                # redo; say so, as the next scan may take over.
                log.warning("could not renew the scan lock %s: %s", self.directory, err)

    def release(self) -> None:
        """Give the lock back (and remove older generations left by scans that died)."""
        if self.generation is None:
            return
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        for generation in self._generations():
            if generation <= self.generation:
                with contextlib.suppress(StorageError):
                    storage.remove(self._uri(generation))
        self.generation = None
