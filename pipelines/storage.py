"""Storage URIs: the one place that builds filesystem clients, Zarr stores and GDAL settings.

A URI is a plain local path, a ``file://`` URL or ``s3://bucket/key``. S3 endpoint, region and
credentials come from the standard AWS environment variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` or
``AWS_DEFAULT_REGION``), so that code reaches a local test endpoint exactly as it reaches a real
bucket; explicit ``storage_options`` override them. Failures to reach or use storage raise
:class:`~pipelines.errors.StorageError` naming the URI (credentials redacted) and the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import fsspec

from pipelines.errors import StorageError

_SCHEMES = ("", "file", "s3")
# botocore's "standard" mode retries throttling, 500/502/503/504 and connection errors only.
S3_RETRIES = {"mode": "standard", "max_attempts": 10}
# mkstemp creates files readable by their owner only; written files get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)
_COPY_BUFFER = 16 * 2**20


def _scheme(uri: str) -> str:
    parts = urlsplit(str(uri))
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise StorageError(
            f"{redact(str(uri))}: unsupported URI scheme {scheme!r} (use a path, file:// or s3://)"
        )
    if "@" in parts.netloc:
        # A URI is echoed in logs, manifests and job specs: it must never carry a secret.
        raise StorageError(
            f"{redact(str(uri))}: credentials in URIs are not supported; set AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead"
        )
    return scheme


def _local_path(uri: str) -> str:
    """The filesystem path of a local URI (``file://`` stripped)."""
    uri = str(uri)
    return uri[len("file://") :] if uri.lower().startswith("file://") else uri


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names an object store rather than the local filesystem."""
    return _scheme(uri) not in ("", "file")


def absolute(uri: str) -> str:
    """``uri`` with a relative local path made absolute (against the working directory); URIs
    with a scheme (``s3://``, ``file://``, ``https://``) and absolute paths are returned as they
    are. Command lines call it once on every path they read, so Ray workers, whose working
    directory differs, and records that outlive the command mean the same file."""
    uri = str(uri)
    if "://" in uri or os.path.isabs(uri):
        return uri
    return os.path.abspath(uri)


def join(uri: str, *parts: str) -> str:
    """``uri`` with path ``parts`` appended, keeping its scheme (``join("s3://b/x", "y")``)."""
    base = str(uri)
    for part in parts:
        part = str(part).strip("/")
        if part:
            base = f"{base.rstrip('/')}/{part}"
    return base


def _s3_options(storage_options: dict[str, Any]) -> dict[str, Any]:
    env = os.environ
    options: dict[str, Any] = {
        # A worker must see objects written by others after it first listed a prefix.
        "use_listings_cache": False,
    }
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    # Credentials are passed explicitly when set, so that s3fs's instance cache (keyed by these
    # options) never hands out a client built with other credentials. Otherwise botocore's own
    # chain (config files, instance roles) applies.
    for option, variable in (
        ("key", "AWS_ACCESS_KEY_ID"),
        ("secret", "AWS_SECRET_ACCESS_KEY"),
        ("token", "AWS_SESSION_TOKEN"),
    ):
        if env.get(variable):
            options[option] = env[variable]
    # Transient failures (throttling, 5xx, dropped connections) are retried with exponential
    # backoff and jitter; permanent ones (403, 404) are not. AWS_MAX_ATTEMPTS and AWS_RETRY_MODE,
    # which botocore reads itself, win.
    if not (env.get("AWS_MAX_ATTEMPTS") or env.get("AWS_RETRY_MODE")):
        options["config_kwargs"] = {"retries": dict(S3_RETRIES)}
    options.update(storage_options)
    return options


def filesystem(uri: str, **storage_options: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem holding ``uri`` and the path of ``uri`` within it.

    Instances are cached per process, thread and options by fsspec; S3 listings are not cached, so
    a new object is visible at once.
    """
    if is_remote(uri):
        fs = fsspec.filesystem("s3", **_s3_options(storage_options))
        return fs, str(uri).split("://", 1)[1]
    return fsspec.filesystem("file", **storage_options), _local_path(uri)


def arrow_filesystem(uri: str) -> tuple[str, Any]:
    """``(path, pyarrow filesystem or None)`` for libraries that take pyarrow filesystems (Ray
    Train's ``RunConfig``). Local URIs give an absolute path and None; S3 gives a filesystem built
    from the AWS variables of this process, which pickles to workers with its endpoint."""
    if not is_remote(uri):
        return os.path.abspath(_local_path(uri)), None
    import pyarrow.fs

    env = os.environ
    options: dict[str, Any] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        options["endpoint_override"] = parts.netloc or parts.path
        options["scheme"] = parts.scheme or "https"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        options["access_key"] = env["AWS_ACCESS_KEY_ID"]
        options["secret_key"] = env["AWS_SECRET_ACCESS_KEY"]
        options["session_token"] = env.get("AWS_SESSION_TOKEN")
    return str(uri).split("://", 1)[1], pyarrow.fs.S3FileSystem(**options)


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


@contextlib.contextmanager
def _storage_errors(uri: str, action: str) -> Iterator[None]:
    """Turn client errors into a StorageError naming the URI and the reason."""
    try:
        yield
    except FileNotFoundError as err:
        raise StorageError(
            f"{redact(str(uri))}: cannot {action}: not found ({redact(str(err))})"
        ) from err
    except PermissionError as err:
        raise StorageError(
            f"{redact(str(uri))}: cannot {action}: access denied ({redact(str(err))})"
        ) from err
    except OSError as err:
        raise StorageError(f"{redact(str(uri))}: cannot {action}: {redact(str(err))}") from err
    except Exception as err:
        # botocore's errors are not OSErrors (s3fs translates only some of them).
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.exceptions import ConnectionError as EndpointUnreachable

        if not isinstance(err, (BotoCoreError, ClientError)):
            raise
        reason = redact(str(err))
        if isinstance(err, EndpointUnreachable):
            reason = f"cannot reach endpoint {redact(_endpoint())} ({reason})"
        raise StorageError(f"{redact(str(uri))}: cannot {action}: {reason}") from err


def exists(uri: str) -> bool:
    """Whether a file, object or directory (non-empty prefix on S3) exists at ``uri``."""
    fs, path = filesystem(uri)
    with _storage_errors(uri, "check existence"):
        return bool(fs.exists(path))


def read_bytes(uri: str) -> bytes:
    """The whole content of the file or object at ``uri``."""
    fs, path = filesystem(uri)
    with _storage_errors(uri, "read"):
        return fs.cat_file(path)


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` so that readers see the old content or the new, never a part.

    Locally: a temporary file in the same directory, flushed, then renamed over the target. On S3:
    a single PUT (objects appear whole).
    """
    if is_remote(uri):
        fs, path = filesystem(uri)
        with _storage_errors(uri, "write"):
            fs.pipe_file(path, bytes(data))
        return
    with _atomic_local_file(uri) as f:
        f.write(data)


def upload_file(local_path: str, uri: str) -> None:
    """Copy the local file ``local_path`` to ``uri`` in pieces, never whole in memory (a COG may
    be larger than RAM), as atomically as :func:`write_bytes`: on S3 a multipart upload, whose
    object appears only when complete."""
    if is_remote(uri):
        fs, path = filesystem(uri)
        with _storage_errors(uri, "write"):
            fs.put_file(local_path, path)
        return
    with open(local_path, "rb") as source, _atomic_local_file(uri) as f:
        shutil.copyfileobj(source, f, length=_COPY_BUFFER)


@contextlib.contextmanager
def _atomic_local_file(uri: str) -> Iterator[BinaryIO]:
    """A file to write, renamed over ``uri`` once written and synced; removed on failure."""
    path = _local_path(uri)
    with _storage_errors(uri, "write"):
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path)
        )
        try:
            with os.fdopen(fd, "wb") as f:
                os.fchmod(f.fileno(), 0o666 & ~_UMASK)
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise


def read_text(uri: str) -> str:
    """The UTF-8 text at ``uri``."""
    return read_bytes(uri).decode("utf-8")


def write_text(uri: str, text: str) -> None:
    """Write UTF-8 ``text`` to ``uri`` atomically (see :func:`write_bytes`)."""
    write_bytes(uri, text.encode("utf-8"))


def read_json(uri: str) -> Any:
    """The JSON document at ``uri``; a malformed document is a StorageError naming it."""
    text = read_text(uri)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise StorageError(f"{redact(str(uri))}: not valid JSON ({err})") from err


def write_json(uri: str, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``uri`` atomically."""
    write_text(uri, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def listdir(uri: str) -> list[str]:
    """Sorted names of the entries directly under ``uri``.

    A directory that does not exist lists as empty: object stores cannot tell it from an empty
    one. A missing bucket is an error.
    """
    fs, path = filesystem(uri)
    with _storage_errors(uri, "list"):
        try:
            entries = fs.ls(path, detail=False)
        except FileNotFoundError:
            if is_remote(uri) and not fs.exists(path.split("/", 1)[0]):
                raise
            return []
    return sorted(os.path.basename(entry.rstrip("/")) for entry in entries)


def find(uri: str) -> list[str]:
    """Paths relative to ``uri`` (``/``-separated, sorted) of every file beneath it, at any depth.

    One listing of the whole prefix on S3, rather than one request per folder. A directory that
    does not exist finds nothing; a missing bucket is an error.
    """
    fs, path = filesystem(uri)
    with _storage_errors(uri, "list"):
        found = fs.find(path)
    prefix = path.rstrip("/") + "/"
    return sorted(entry[len(prefix) :] for entry in found if entry.startswith(prefix))


def remove(uri: str, recursive: bool = False) -> None:
    """Delete the file or object at ``uri`` (a directory tree with ``recursive``); missing is fine."""
    fs, path = filesystem(uri)
    with _storage_errors(uri, "remove"):
        if not fs.exists(path):
            return
        fs.rm(path, recursive=recursive)


def zarr_store(uri: str, *, read_only: bool) -> Any:
    """A Zarr v3 store rooted at ``uri``: ``LocalStore`` locally, ``FsspecStore`` (async s3fs) on S3."""
    import zarr.storage

    if is_remote(uri):
        return zarr.storage.FsspecStore.from_url(
            str(uri), storage_options=_s3_options({}), read_only=read_only
        )
    return zarr.storage.LocalStore(_local_path(uri), read_only=read_only)


def gdal_path(uri: str) -> str:
    """The path GDAL opens for ``uri``: ``/vsis3/bucket/key`` on S3, the local path otherwise."""
    if is_remote(uri):
        return "/vsis3/" + str(uri).split("://", 1)[1]
    return _local_path(uri)


# Defaults only: a user's own GDAL settings win.
_GDAL_DEFAULTS = {
    # Opening one COG must not list its whole bucket prefix.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # GDAL retries 429/500/502/503/504 and dropped connections, never 403/404, with a delay
    # that doubles each time.
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "60",
    # GDAL's block cache defaults to 5% of RAM per process; with lock=False (a handle per dask
    # task) an ingest fills it with the whole raster, and every mapping worker would do the same.
    # Takes effect if set before the process's first GDAL read (workers: yes).
    "GDAL_CACHEMAX": "128",
}


def configure_gdal() -> None:
    """Point GDAL's ``/vsis3/`` at the AWS settings of this process, through environment variables.

    Environment variables rather than ``rasterio.Env`` because dask reads chunks from other threads,
    which do not see a thread-local GDAL configuration. With a custom endpoint
    (``AWS_ENDPOINT_URL``) sets ``AWS_S3_ENDPOINT`` (host:port), ``AWS_HTTPS`` and path-style
    addressing, each time from the current endpoint; retries and directory listing get defaults.
    Credentials and region GDAL reads from the AWS variables itself. Idempotent.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        os.environ["AWS_S3_ENDPOINT"] = parts.netloc or parts.path
        os.environ["AWS_HTTPS"] = "NO" if parts.scheme == "http" else "YES"
        os.environ["AWS_VIRTUAL_HOSTING"] = "FALSE"
    for key, value in _GDAL_DEFAULTS.items():
        os.environ.setdefault(key, value)


def gdal_env() -> contextlib.AbstractContextManager:
    """A rasterio environment for a burst of GDAL calls (one window's reads and warps) in this
    thread; nothing new where one is active.

    rasterio otherwise opens an environment per call (each ``reproject``, ``rasterize``), and
    with AWS keys in the environment each builds a boto3 session: about 10 ms a call, which
    made reading small windows 5x slower wherever credentials are set. GDAL reads the AWS
    variables itself (see :func:`configure_gdal`), so the environment needs no session.
    """
    import rasterio
    from rasterio.env import local
    from rasterio.session import DummySession

    if local._env:
        return contextlib.nullcontext()
    return rasterio.Env(session=DummySession())


_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][\w+.-]*://)[^/@\s]+@")
_SECRET_FIELD = re.compile(
    r"""(?ix)
    (?P<name>\b[\w-]*(?:secret|token|password|passwd|signature|credential|access[_-]?key)[\w-]*
      ["']?\s*[:=]\s*["']?)
    (?P<value>[^\s"',&;}\]]+)
    """
)
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")


def redact(text: str) -> str:
    """``text`` without credentials: URL userinfo, secret-looking fields and this process's keys."""
    text = _USERINFO.sub(r"\g<scheme>***@", str(text))
    text = _SECRET_FIELD.sub(r"\g<name>***", text)
    text = _ACCESS_KEY_ID.sub("***", text)
    # The literal values too, wherever they appear (e.g. quoted in an error message). Short values
    # are left alone: replacing a word like "test" everywhere would garble the text.
    for variable in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = os.environ.get(variable, "")
        if len(value) >= 8:
            text = text.replace(value, "***")
    return text
