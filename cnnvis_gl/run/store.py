"""Generic, pickle-free storage of a run directory: a JSON manifest and one folder per snapshot.

Layout::

    RUN/manifest.json                   {"format": "cnnvis-run", "schema_version": 1, ...}
    RUN/snapshots/step_000000200/       one folder per snapshot (9-digit zero-padded step)
        snapshot.json                   {"format": "cnnvis-snapshot", "schema_version": 1,
                                         "step": 200, "meta": {...},
                                         "arrays": {key: {"file", "dtype", "shape", "nbytes", "crc32"}}}
        <slug>-<hash>.npy               one ``.npy`` per array, written with ``allow_pickle=False``

This layer knows nothing of neural networks: callers put whatever JSON they like into the manifest
and into a snapshot's ``meta``, and named numeric arrays into each snapshot.

Crash and concurrency safety:

* A snapshot is written into ``snapshots/.tmp-step_XXXXXXXXX-<pid>-<token>/``; every file is
  fsynced, ``snapshot.json`` is written last, then the folder is renamed to ``step_XXXXXXXXX``.
  Readers list only ``step_*`` folders that hold a ``snapshot.json``, so they never see a
  half-written snapshot, and a crashed writer loses only the snapshot it was writing.
* Overwriting an existing step swaps the two folders atomically with ``renameat2(RENAME_EXCHANGE)``
  where the OS offers it (Linux); elsewhere the old folder is renamed to ``.trash-step_...`` and the
  new one renamed in, and readers bridge that short gap by falling back to the trash folder.
* ``.tmp-*`` / ``.trash-*`` folders left by a crashed writer are ignored by readers and cleaned up by
  the next writer once they are older than :data:`STALE_AGE_S`.
* Arrays are loaded lazily, memory-mapped, and verified on first access (header against
  ``snapshot.json``, file size, CRC-32 of the data bytes).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnnvis_gl.errors import SnapshotError

__all__ = [
    "SCHEMA_VERSION",
    "MANIFEST_NAME",
    "SNAPSHOTS_DIR",
    "SNAPSHOT_JSON",
    "STALE_AGE_S",
    "StoredSnapshot",
    "list_steps",
    "open_snapshot",
    "read_manifest",
    "step_dir",
    "write_manifest",
    "write_snapshot",
]

SCHEMA_VERSION = 1
MANIFEST_FORMAT = "cnnvis-run"
SNAPSHOT_FORMAT = "cnnvis-snapshot"
MANIFEST_NAME = "manifest.json"
#: Arrays at least this large are memory-mapped; smaller ones are read into memory, since every
#: memory map keeps a file descriptor open (a followed run of many snapshots would run out).
MMAP_MIN_BYTES = 1 << 20
SNAPSHOTS_DIR = "snapshots"
SNAPSHOT_JSON = "snapshot.json"
MAX_STEP = 999_999_999
STALE_AGE_S = 600.0
"""``.tmp-*`` / ``.trash-*`` folders older than this (seconds) are left by a dead writer."""

# Array kinds that may be stored: bool, signed/unsigned int, float, complex.
_NUMERIC_KINDS = frozenset("biufc")
_STEP_RE = re.compile(r"step_(\d{9})")
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_RESERVED_FIELDS = ("format", "schema_version")
# How long open_snapshot waits for a step that is being swapped in (non-atomic fallback only).
_SWAP_WAIT_S = 1.0


# ----------------------------------------------------------------------------------- helpers
def _step_name(step: int) -> str:
    return f"step_{step:09d}"


def _check_step(step: Any) -> int:
    if isinstance(step, bool):
        raise TypeError(f"step must be an int, not {step!r}")
    try:
        step = int(step.__index__())
    except AttributeError:
        raise TypeError(f"step must be an int, not {type(step).__name__}") from None
    if not 0 <= step <= MAX_STEP:
        raise ValueError(f"step must be in 0..{MAX_STEP}, not {step}")
    return step


def step_dir(run_dir: str | os.PathLike[str], step: int) -> Path:
    """The folder a complete snapshot of ``step`` lives in (it may not exist)."""
    return Path(run_dir) / SNAPSHOTS_DIR / _step_name(_check_step(step))


def _token() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


def _fsync_dir(path: Path) -> None:
    """Make renames/creations inside ``path`` durable (POSIX only; best effort)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    # NumPy scalars (a float32 loss, an int64 count) are common in caller metadata.
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serializable")


def finite_json(obj: Any) -> Any:
    """``obj`` with every number that is not finite (NaN, ±inf) as ``None``: snapshots are
    strict JSON, and their readers take null where a statistic is not a number (a diverged
    training run; the statistics' producers mark what was lost, e.g. a unit's
    ``nonfinite_fraction``)."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def _dumps(obj: Any, what: str) -> bytes:
    try:
        return json.dumps(obj, indent=1, default=_json_default).encode("utf-8") + b"\n"
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be JSON-serializable: {e}") from None


def _write_file_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: str | os.PathLike[str], doc: Any, prefix: str = ".tmp-") -> Path:
    """Write ``doc`` as indented JSON to ``path`` atomically: a temporary file beside it,
    fsynced, then renamed over it (readers see the old file or the new one, never a part)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".json.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_document(
    path: str | os.PathLike[str],
    fmt: str,
    version: int,
    parse: Callable[[dict[str, Any]], Any],
    what: str,
) -> Any:
    """Read a hand-editable file of a run (bookmarks, tours, annotations): JSON with
    ``"format": fmt`` and ``"version": version``, then ``parse(doc)``; ``what`` names such a
    file in messages ("a tour").  Anything wrong —
    unreadable, damaged, another format or version, or a ``ValueError`` from ``parse`` — is a
    :class:`SnapshotError` that names the file (and what ``parse`` said)."""
    path = Path(path)
    doc = _read_json(path, what.split(" ", 1)[1])
    try:
        if doc.get("format") != fmt:
            raise ValueError(f"not {what} (expected \"format\": \"{fmt}\")")
        if doc.get("version") != version:
            raise ValueError(f"version {doc.get('version')!r} (this cnnvis reads {version})")
        return parse(doc)
    except ValueError as e:
        raise SnapshotError(f"{path}: {e}") from None


def read_items(
    path: str | os.PathLike[str],
    fmt: str,
    version: int,
    key: str,
    parse_item: Callable[[Any, int], Any],
    what: str,
) -> list[Any]:
    """:func:`read_document` of a file holding a list under ``key`` (bookmarks, annotations),
    each item parsed by ``parse_item(item, index)``; ``[]`` when there is no such file."""

    def parse(doc: dict[str, Any]) -> list[Any]:
        items = doc.get(key)
        if not isinstance(items, list):
            raise ValueError(f"'{key}' must be a list")
        return [parse_item(d, k) for k, d in enumerate(items)]

    return read_document(path, fmt, version, parse, what) if Path(path).exists() else []


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"{path}: {what} not found") from None
    except OSError as e:
        raise SnapshotError(f"{path}: cannot read {what} ({e.strerror or e})") from None
    obj = loads_json(raw, path, what)
    if not isinstance(obj, dict):
        raise SnapshotError(f"{path}: {what} is not a JSON object")
    return obj


#: Deepest nesting of lists and objects accepted in a JSON file of a run (ours nest ~6 deep).
MAX_JSON_DEPTH = 64


def loads_json(raw: bytes, path: Path, what: str) -> Any:
    """Parse a run file's JSON; any damage (bad UTF-8, bad syntax, nesting deeper than
    :data:`MAX_JSON_DEPTH`) is a :class:`SnapshotError` naming the file."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SnapshotError(f"{path}: {what} is not valid JSON (not UTF-8 text: {e})") from None
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise SnapshotError(f"{path}: {what} nests {depth} levels deep (at most {MAX_JSON_DEPTH})")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as e:
        raise SnapshotError(f"{path}: {what} is not valid JSON ({e})") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def _json_depth(text: str) -> int:
    """Deepest bracket nesting outside strings (an upper bound of the JSON's depth)."""
    bare = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8"), dtype=np.uint8)
    step = np.isin(bare, (91, 123)).astype(np.int64) - np.isin(bare, (93, 125))  # [{ ]}
    return int(np.cumsum(step).max(initial=0))


#: Field of manifest.json and snapshot.json holding the CRC-32 of the rest of the document.
DOC_CRC = "doc_crc32"


def _doc_crc(doc: Mapping[str, Any]) -> int:
    body = {k: v for k, v in doc.items() if k != DOC_CRC}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF


def _sealed(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the CRC-32 of its contents (so that damage to any value is seen)."""
    return {**doc, DOC_CRC: _doc_crc(doc)}


def _check_seal(obj: Mapping[str, Any], path: Path) -> None:
    """A document's own CRC-32 (files written before it existed have none)."""
    crc = obj.get(DOC_CRC)
    if crc is None:
        return
    if isinstance(crc, bool) or not isinstance(crc, int) or crc != _doc_crc(obj):
        raise SnapshotError(
            f"{path}: contents do not match their CRC-32 ({DOC_CRC}): the file was damaged or "
            "edited by hand"
        )


def _check_header(obj: Mapping[str, Any], path: Path, fmt: str, what: str) -> None:
    if obj.get("format") != fmt:
        raise SnapshotError(
            f"{path}: not a {what} (format is {obj.get('format')!r}, expected {fmt!r})"
        )
    version = obj.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SnapshotError(f"{path}: invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise SnapshotError(
            f"{path}: written by a newer cnnvis_gl (schema {version} > {SCHEMA_VERSION}); upgrade"
        )


def _dir_age_s(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return None


# ---------------------------------------------------------------------------------- manifest
def write_manifest(run_dir: str | os.PathLike[str], fields: dict[str, Any]) -> Path:
    """Write ``RUN/manifest.json`` atomically (temp file + ``os.replace``); creates ``run_dir``.

    ``fields`` must be JSON-serializable; ``format`` and ``schema_version`` are set here.
    Returns the manifest's path.
    """
    if not isinstance(fields, Mapping):
        raise TypeError(f"manifest fields must be a dict, not {type(fields).__name__}")
    doc = {"format": MANIFEST_FORMAT, "schema_version": SCHEMA_VERSION}
    for name in _RESERVED_FIELDS:  # allowed only unchanged, so read -> modify -> write works
        if name in fields and fields[name] != doc[name]:
            raise ValueError(
                f"manifest field {name!r} is set by the store ({doc[name]!r}), not {fields[name]!r}"
            )
    doc.update((k, v) for k, v in fields.items() if k not in _RESERVED_FIELDS)
    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    data = _dumps(_sealed(doc), "manifest fields")
    path = run / MANIFEST_NAME
    tmp = run / f".{MANIFEST_NAME}.tmp-{_token()}"
    try:
        _write_file_durably(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(run)
    return path


def read_manifest(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``RUN/manifest.json``; the dict includes ``format`` and ``schema_version``."""
    path = Path(run_dir) / MANIFEST_NAME
    obj = _read_json(path, "run manifest")
    _check_header(obj, path, MANIFEST_FORMAT, "cnnvis run manifest")
    _check_seal(obj, path)
    obj.pop(DOC_CRC, None)  # a detail of the file, not a field
    return obj


# ---------------------------------------------------------------------------------- writing
def _file_name(key: str, taken: set[str]) -> str:
    slug = _SAFE_CHARS.sub("_", key).strip("_")[:80] or "array"
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    name = f"{slug}-{digest}"
    n = 1
    while name.lower() in taken:  # hash collision or case-insensitive file system
        n += 1
        name = f"{slug}-{digest}-{n}"
    taken.add(name.lower())
    return name + ".npy"


def _prepare_array(key: Any, value: Any) -> np.ndarray:
    if not isinstance(key, str) or not key:
        raise TypeError(f"array keys must be non-empty str, not {key!r}")
    arr = np.asarray(value)
    if arr.dtype.kind not in _NUMERIC_KINDS or arr.dtype.fields is not None:
        raise TypeError(
            f"array {key!r} has dtype {arr.dtype}; only bool/int/uint/float/complex arrays "
            "can be stored (no object, string or structured arrays)"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")
    return arr


def _dtype_text(dtype: np.dtype) -> str:
    """``float32``, or ``float32 (big-endian)`` for bytes in the other order."""
    if dtype.isnative or dtype.byteorder == "|":
        return dtype.name
    return f"{dtype.name} ({'big' if dtype.byteorder == '>' else 'little'}-endian)"


def _crc32(arr: np.ndarray) -> int:
    return zlib.crc32(arr.reshape(-1).view(np.uint8)) & 0xFFFFFFFF


def _cleanup_stale(snap_root: Path) -> None:
    """Remove ``.tmp-*`` / ``.trash-*`` folders a dead writer left behind (older than 10 min).

    A stale trash folder whose step folder is missing (the writer died between its two renames in
    the non-atomic fallback) is renamed back into place instead of being deleted.
    """
    try:
        entries = list(os.scandir(snap_root))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(".tmp-") or name.startswith(".trash-")):
            continue
        path = Path(entry.path)
        age = _dir_age_s(path)
        if age is None or age < STALE_AGE_S:
            continue
        if name.startswith(".trash-"):
            m = re.match(r"\.trash-(step_\d{9})-", name)
            if m and (path / SNAPSHOT_JSON).is_file():
                final = snap_root / m.group(1)
                if not final.exists():
                    try:
                        os.rename(path, final)
                        continue
                    except OSError:
                        pass
        shutil.rmtree(path, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns False when the OS or file system cannot do it; raises ``FileNotFoundError`` when one
    of the paths does not exist.
    """
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if os.name == "posix":
            try:
                fn = ctypes.CDLL(None, use_errno=True).renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
                fn.argtypes += [ctypes.c_uint]
                fn.restype = ctypes.c_int
                _renameat2 = fn
            except (OSError, AttributeError):
                pass
    if not _renameat2:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.ENOENT:
        raise FileNotFoundError(err, os.strerror(err), str(b))
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _is_exists_error(e: OSError) -> bool:
    return isinstance(e, FileExistsError) or e.errno in (errno.EEXIST, errno.ENOTEMPTY)


def _publish(tmp: Path, final: Path) -> None:
    """Move the complete folder ``tmp`` to ``final``, replacing an existing ``final``."""
    trash: list[Path] = []
    try:
        for _ in range(1000):
            try:
                os.rename(tmp, final)  # the common case: a new step
                return
            except OSError as e:
                if not _is_exists_error(e):
                    raise
            # ``final`` exists: swap atomically if the OS can, so readers always see one of them.
            try:
                if _exchange(tmp, final):
                    trash.append(tmp)  # now holds the old snapshot
                    return
            except FileNotFoundError:
                continue  # ``final`` vanished meanwhile (another writer): plain rename again
            # Fallback: old -> trash, new -> final.  Readers bridge the gap via the trash folder.
            old = final.parent / f".trash-{final.name}-{_token()}"
            try:
                os.utime(final)  # a fresh mtime, so no other writer takes the trash as stale
                os.rename(final, old)
            except FileNotFoundError:
                continue
            trash.append(old)
            try:
                os.rename(tmp, final)
                return
            except OSError as e:
                if not _is_exists_error(e):
                    try:  # put the old snapshot back rather than leave no step at all
                        os.rename(old, final)
                        trash.remove(old)
                    except OSError:
                        pass
                    raise
                # another writer published the same step in between: go round again
        raise SnapshotError(f"{final}: could not publish snapshot (too much contention)")
    finally:
        for path in trash:
            shutil.rmtree(path, ignore_errors=True)


def write_snapshot(
    run_dir: str | os.PathLike[str],
    step: int,
    arrays: Mapping[str, np.ndarray],
    meta: dict[str, Any],
) -> Path:
    """Write one snapshot (named numeric arrays + JSON ``meta``) and return its folder.

    Everything goes into a temporary folder, is fsynced, ``snapshot.json`` is written last, and the
    folder is renamed into place; an existing snapshot of the same step is replaced.  Raises
    ``TypeError`` / ``ValueError`` for arguments that cannot be stored (a non-str key, an object,
    string or structured array, non-JSON ``meta``, a step outside 0..999999999).
    """
    step = _check_step(step)
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be a dict of str -> ndarray, not {type(arrays).__name__}")
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict, not {type(meta).__name__}")
    prepared = {key: _prepare_array(key, value) for key, value in arrays.items()}
    meta = finite_json(meta)
    _dumps(meta, "snapshot meta")  # fail before touching the disk

    snap_root = Path(run_dir) / SNAPSHOTS_DIR
    snap_root.mkdir(parents=True, exist_ok=True)
    _cleanup_stale(snap_root)
    name = _step_name(step)
    tmp = snap_root / f".tmp-{name}-{_token()}"
    tmp.mkdir()
    try:
        entries: dict[str, dict[str, Any]] = {}
        taken: set[str] = {SNAPSHOT_JSON.lower()}
        for key, arr in prepared.items():
            fname = _file_name(key, taken)
            with open(tmp / fname, "wb") as f:
                np.save(f, arr, allow_pickle=False)
                f.flush()
                os.fsync(f.fileno())
            entries[key] = {
                "file": fname,
                "dtype": arr.dtype.name,
                "shape": list(arr.shape),
                "nbytes": int(arr.nbytes),
                "crc32": _crc32(arr),
            }
        doc = {
            "format": SNAPSHOT_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "step": step,
            "meta": meta,
            "arrays": entries,
        }
        _write_file_durably(tmp / SNAPSHOT_JSON, _dumps(_sealed(doc), "snapshot meta"))
        _fsync_dir(tmp)
        final = snap_root / name
        _publish(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(snap_root)
    return final


# ---------------------------------------------------------------------------------- reading
def _snap_root(run_dir: str | os.PathLike[str]) -> Path:
    run = Path(run_dir)
    if not run.is_dir():
        raise SnapshotError(f"{run}: run directory not found")
    return run / SNAPSHOTS_DIR


def list_steps(run_dir: str | os.PathLike[str]) -> list[int]:
    """Sorted steps of the complete snapshots in ``run_dir`` (``[]`` if there are none yet).

    Only ``step_XXXXXXXXX`` folders that hold a ``snapshot.json`` count; ``.tmp-*`` folders and
    other entries are ignored.  A ``.trash-step_X-*`` folder counts only while its step folder is
    missing, i.e. during (or after a crash in) the non-atomic overwrite fallback, so that a step
    being replaced never disappears from the listing.
    """
    root = _snap_root(run_dir)
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise SnapshotError(f"{root}: cannot list snapshots ({e.strerror or e})") from None
    steps: set[int] = set()
    pending: set[int] = set()  # steps seen only as complete trash folders
    for entry in entries:
        name = entry.name
        m = _STEP_RE.fullmatch(name)
        if m:
            if os.path.isfile(os.path.join(entry.path, SNAPSHOT_JSON)):
                steps.add(int(m.group(1)))
        elif name.startswith(".trash-step_"):
            m = _STEP_RE.match(name, len(".trash-"))
            if m and os.path.isfile(os.path.join(entry.path, SNAPSHOT_JSON)):
                pending.add(int(m.group(1)))
    return sorted(steps | pending)


def _trash_dirs(root: Path, step: int) -> list[Path]:
    """Trash folders of ``step`` holding a complete snapshot, newest first."""
    prefix = f".trash-{_step_name(step)}-"
    found = []
    try:
        for entry in os.scandir(root):
            if entry.name.startswith(prefix):
                try:
                    mtime = os.stat(os.path.join(entry.path, SNAPSHOT_JSON)).st_mtime
                except OSError:
                    continue
                found.append((mtime, Path(entry.path)))
    except OSError:
        return []
    return [p for _, p in sorted(found, reverse=True)]


def _dir_id(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _parse_entry(key: Any, ent: Any, json_path: Path) -> dict[str, Any]:
    where = f"{json_path}: array {key!r}"
    if not isinstance(key, str) or not isinstance(ent, dict):
        raise SnapshotError(f"{where}: malformed entry")
    fname = ent.get("file")
    if (
        not isinstance(fname, str)
        or not fname.endswith(".npy")
        or fname.startswith(".")
        or "/" in fname
        or "\\" in fname
        or fname != os.path.basename(fname)
    ):
        raise SnapshotError(f"{where}: invalid file name {fname!r}")
    try:
        dtype = np.dtype(ent.get("dtype"))
    except (TypeError, ValueError):
        raise SnapshotError(f"{where}: invalid dtype {ent.get('dtype')!r}") from None
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or not dtype.isnative:
        raise SnapshotError(f"{where}: dtype {ent.get('dtype')!r} is not a native numeric type")
    shape = ent.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**48 for n in shape
    ):
        raise SnapshotError(f"{where}: invalid shape {shape!r}")
    nbytes, crc = ent.get("nbytes"), ent.get("crc32")
    expect = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if expect >= 2**48:
        raise SnapshotError(f"{where}: shape {shape!r} is impossibly large")
    if isinstance(nbytes, bool) or nbytes != expect:
        raise SnapshotError(f"{where}: nbytes {nbytes!r} does not match {dtype.name}{shape}")
    if isinstance(crc, bool) or not isinstance(crc, int) or not 0 <= crc <= 0xFFFFFFFF:
        raise SnapshotError(f"{where}: invalid crc32 {crc!r}")
    return {
        "file": fname,
        "dtype": dtype.name,
        "shape": tuple(shape),
        "nbytes": nbytes,
        "crc32": crc,
    }


def _parse_snapshot_json(obj: dict[str, Any], json_path: Path, step: int) -> tuple[dict, dict]:
    _check_header(obj, json_path, SNAPSHOT_FORMAT, "cnnvis snapshot")
    _check_seal(obj, json_path)
    if obj.get("step") != step or isinstance(obj.get("step"), bool):
        raise SnapshotError(f"{json_path}: records step {obj.get('step')!r}, expected {step}")
    meta, arrays = obj.get("meta", {}), obj.get("arrays")
    if not isinstance(meta, dict):
        raise SnapshotError(f"{json_path}: 'meta' is not a JSON object")
    if not isinstance(arrays, dict):
        raise SnapshotError(f"{json_path}: 'arrays' is missing or not a JSON object")
    infos = {key: _parse_entry(key, ent, json_path) for key, ent in arrays.items()}
    files = [info["file"].lower() for info in infos.values()]
    if len(set(files)) != len(files):
        raise SnapshotError(f"{json_path}: two arrays share one file")
    return meta, infos


class StoredSnapshot:
    """One snapshot on disk.  Arrays are memory-mapped and verified on first access, then cached.

    Attributes: ``step``, ``path`` (the snapshot folder), ``meta`` (the caller's JSON).
    A read-only mapping: ``keys()``, ``snap[key]``, ``key in snap``, ``len(snap)``, iteration
    over keys, ``get``, ``items()`` / ``values()`` (lazy).
    """

    def __init__(
        self,
        step: int,
        path: Path,
        meta: dict[str, Any],
        infos: dict[str, dict[str, Any]],
        dir_id: tuple[int, int],
    ) -> None:
        self.step = step
        self.path = path
        self.meta = meta
        self._infos = infos
        self._dir_id = dir_id
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StoredSnapshot(step={self.step}, path={str(self.path)!r}, arrays={len(self)})"

    def keys(self) -> list[str]:
        return list(self._infos)

    def __iter__(self) -> Iterator[str]:
        return iter(self._infos)

    def __len__(self) -> int:
        return len(self._infos)

    def __contains__(self, key: object) -> bool:
        return key in self._infos

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self._infos else default

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        """(key, array) pairs; each array is loaded (and verified) as the iteration reaches it."""
        return ((key, self[key]) for key in self._infos)

    def values(self) -> Iterator[np.ndarray]:
        return (self[key] for key in self._infos)

    def info(self, key: str) -> dict[str, Any]:
        """``{"file", "dtype", "shape" (tuple), "nbytes", "crc32"}`` from ``snapshot.json``."""
        return dict(self._infos[key])

    def __getitem__(self, key: str) -> np.ndarray:
        arr = self._cache.get(key)
        if arr is not None:
            return arr
        info = self._infos[key]  # KeyError for an unknown key, like any mapping
        with self._lock:
            arr = self._cache.get(key)
            if arr is None:
                arr = self._load(info)
                self._cache[key] = arr
        return arr

    def load_all(self) -> dict[str, np.ndarray]:
        """Verify and load every array (memory-mapped)."""
        return {key: self[key] for key in self._infos}

    # -- internals
    def _replaced(self) -> bool:
        try:
            return _dir_id(self.path) != self._dir_id
        except OSError:
            return True

    def _replaced_error(self) -> SnapshotError:
        return SnapshotError(
            f"{self.path}: snapshot of step {self.step} was replaced or removed while open; "
            "open it again"
        )

    def _load(self, info: dict[str, Any]) -> np.ndarray:
        if self._replaced():
            raise self._replaced_error()
        try:
            return self._load_verified(self.path / info["file"], info)
        except SnapshotError:
            # A concurrent overwrite swapped the folder under us: say so instead of "corrupt".
            if self._replaced():
                raise self._replaced_error() from None
            raise

    @staticmethod
    def _load_verified(path: Path, info: dict[str, Any]) -> np.ndarray:
        dtype, shape = np.dtype(info["dtype"]), info["shape"]
        fmt = np.lib.format
        try:
            with open(path, "rb") as f:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    h_shape, fortran, h_dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    h_shape, fortran, h_dtype = fmt.read_array_header_2_0(f)
                else:
                    raise SnapshotError(f"{path}: unsupported .npy format version {version}")
                offset = f.tell()
                size = os.fstat(f.fileno()).st_size
        except FileNotFoundError:
            raise SnapshotError(f"{path}: array file is missing") from None
        except SnapshotError:
            raise
        except Exception as e:  # noqa: BLE001 - damaged header bytes: whatever the parser raised
            raise SnapshotError(f"{path}: not a valid .npy file ({type(e).__name__}: {e})") from None
        if h_dtype.hasobject:
            raise SnapshotError(
                f"{path}: holds a Python-object (pickle) array; refusing to load it"
            )
        # the header decides how the bytes read (dtype with its byte order, shape, order): it
        # must say exactly what snapshot.json says, whose entry the CRC belongs to
        if h_dtype != dtype or tuple(h_shape) != shape or fortran:
            order = " (Fortran order)" if fortran else ""
            raise SnapshotError(
                f"{path}: holds {_dtype_text(h_dtype)}{list(h_shape)}{order} but snapshot.json "
                f"says {_dtype_text(dtype)}{list(shape)}"
            )
        expected = offset + info["nbytes"]
        if size < expected:
            raise SnapshotError(f"{path}: truncated ({size} bytes, expected {expected})")
        if size > expected:
            raise SnapshotError(f"{path}: {size - expected} unexpected trailing bytes")
        try:
            if info["nbytes"] >= MMAP_MIN_BYTES:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            else:  # small: read into memory (each memory map holds a file descriptor)
                arr = np.load(path, allow_pickle=False)
                arr.flags.writeable = False
        except (ValueError, OSError, EOFError) as e:
            raise SnapshotError(f"{path}: cannot load array ({e})") from None
        if arr.dtype != h_dtype or arr.shape != shape:  # changed since the header was read
            raise SnapshotError(f"{path}: changed while being read")
        if _crc32(arr) != info["crc32"]:
            raise SnapshotError(f"{path}: CRC-32 mismatch (data corrupted)")
        return arr


# Read-only mapping protocol (keys/[]/in/len/iter/get/items/values); equality stays identity.
Mapping.register(StoredSnapshot)


def _read_snapshot_dir(path: Path, step: int) -> StoredSnapshot:
    """Open the snapshot folder ``path``; FileNotFoundError if it (or its json) is gone."""
    json_path = path / SNAPSHOT_JSON
    for _ in range(100):
        try:
            before = _dir_id(path)
            if not json_path.is_file():
                raise FileNotFoundError(errno.ENOENT, "no snapshot.json", str(json_path))
            raw = json_path.read_bytes()
            if _dir_id(path) != before:
                continue  # swapped by a concurrent overwrite while reading: read the new one
        except FileNotFoundError:
            raise
        except OSError as e:
            raise SnapshotError(f"{json_path}: cannot read ({e.strerror or e})") from None
        obj = loads_json(raw, json_path, "snapshot.json")
        if not isinstance(obj, dict):
            raise SnapshotError(f"{json_path}: snapshot.json is not a JSON object")
        meta, infos = _parse_snapshot_json(obj, json_path, step)
        return StoredSnapshot(step, path, meta, infos, before)
    raise SnapshotError(f"{json_path}: keeps changing while being read")


def open_snapshot(run_dir: str | os.PathLike[str], step: int) -> StoredSnapshot:
    """Open the complete snapshot of ``step``; arrays are loaded lazily.

    Raises SnapshotError if it does not exist, or if its ``snapshot.json`` is corrupt, of another
    format or of a newer schema.
    """
    step = _check_step(step)
    root = _snap_root(run_dir)
    final = root / _step_name(step)
    deadline = time.monotonic() + _SWAP_WAIT_S
    while True:
        try:
            return _read_snapshot_dir(final, step)
        except FileNotFoundError:
            pass
        # Not there.  In the non-atomic overwrite fallback the old folder is briefly a trash
        # folder: wait for the new one, then settle for the old one.
        trash = _trash_dirs(root, step)
        if not trash:
            raise SnapshotError(f"{final}: no snapshot of step {step}") from None
        if time.monotonic() < deadline:
            time.sleep(0.002)
            continue
        for path in trash:
            try:
                return _read_snapshot_dir(path, step)
            except FileNotFoundError:
                continue
        raise SnapshotError(f"{final}: no snapshot of step {step}") from None
