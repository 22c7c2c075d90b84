"""Where datasets live (:func:`data_root`) and how CIFAR-10 gets there (:func:`fetch_cifar10`).

Downloads stream through :mod:`urllib` with a tqdm progress bar on stderr, are checked against
an MD5 sum and only appear under their final name once complete (temporary file + rename).
Archives are extracted with ``tarfile``'s ``"data"`` filter after every member has been checked
to stay inside the target folder, into a temporary folder that is renamed into place.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tqdm import tqdm

from cnnvis_gl.data.cifar10 import PY_DIRNAME
from cnnvis_gl.data.imagedata import one_line
from cnnvis_gl.errors import DataError
from cnnvis_gl.resources import cache_dir

__all__ = [
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "data_root",
    "download_file",
    "extract_tar",
    "fetch_cifar10",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


def data_root() -> Path:
    """Folder that holds the datasets (``<root>/cifar10`` for CIFAR-10).

    Returns
    -------
    Path
        ``$CNNVIS_DATA`` when set (a relative value is taken from the current directory),
        otherwise ``$XDG_CACHE_HOME/cnnvis_gl`` (when that is an absolute path) or
        ``~/.cache/cnnvis_gl``.  The folder is not created.
    """
    env = os.environ.get("CNNVIS_DATA", "").strip()
    if env:
        return Path(env).expanduser().absolute()
    return cache_dir()


def _md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: Path, md5: str | None, *, desc: str) -> Path:
    """Download ``url`` to ``dest``, verifying its MD5 sum.

    Parameters
    ----------
    url : str
        Any URL :func:`urllib.request.urlopen` handles (``https://``, ``http://``, ``file://``).
    dest : Path
        Final file name; its folder is created.  An existing ``dest`` whose checksum matches
        (or any existing ``dest`` when ``md5`` is ``None``) is kept and not downloaded again.
    md5 : str or None
        Expected hex MD5 of the file; ``None`` skips the check.
    desc : str
        Label of the progress bar (printed to stderr).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    DataError
        The download fails, is shorter than announced, or its checksum differs (the message
        names ``url`` and ``dest``).  No partial file is left behind.
    """
    dest = Path(dest).expanduser().absolute()
    expected = md5.lower() if md5 else None
    if dest.is_file() and (expected is None or _md5_of(dest) == expected):
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise DataError(one_line(f"cannot write to {dest.parent}: {e.strerror or e}")) from e
    tmp = Path(tmp_name)
    done = False
    try:
        h = hashlib.md5(usedforsecurity=False)
        written = 0
        total: int | None = None
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "cnnvis_gl"})
            try:
                with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as resp:
                    length = resp.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=desc,
                        file=sys.stderr,
                        mininterval=0.5,
                    ) as bar:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                            written += len(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                if isinstance(e, urllib.error.HTTPError):
                    e.close()  # it holds the open response
                reason = getattr(e, "reason", None) or e
                raise DataError(one_line(f"download of {url} to {dest} failed: {reason}")) from e
        if total is not None and written != total:
            raise DataError(
                f"download of {url} to {dest} is incomplete: got {written} of {total} bytes"
            )
        if expected is not None and h.hexdigest() != expected:
            raise DataError(
                f"checksum mismatch downloading {url} to {dest}: md5 {h.hexdigest()}, "
                f"expected {expected} (file deleted)"
            )
        os.replace(tmp, dest)
        done = True
    finally:
        if not done:
            tmp.unlink(missing_ok=True)
    return dest


def _check_member(member: tarfile.TarInfo, archive: Path, root: Path) -> None:
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    target = (root / name).resolve()
    unsafe = (
        name.startswith(("/", "\\"))
        or ".." in parts
        or (len(name) > 1 and name[1] == ":")
        or not (member.isfile() or member.isdir())  # no links, devices or fifos in a dataset
        or (target != root and root not in target.parents)
    )
    if unsafe:
        raise DataError(f"refusing to extract {archive}: unsafe member {name!r}")


def extract_tar(archive: Path, dest_dir: Path, folder: str) -> Path:
    """Safely extract ``folder/`` from a tar archive into ``dest_dir/folder``.

    Parameters
    ----------
    archive : Path
        A ``.tar``, ``.tar.gz``, ``.tar.bz2`` or ``.tar.xz`` file.
    dest_dir : Path
        Where ``folder`` appears; ``dest_dir / folder`` must not exist yet.
    folder : str
        Top-level folder expected in the archive.

    Returns
    -------
    Path
        ``dest_dir / folder``.

    Raises
    ------
    DataError
        The archive is unreadable, has a member that is absolute, contains ``..``, is a link or
        special file, or lacks ``folder``.  Nothing is left in ``dest_dir`` then.
    """
    archive = Path(archive).absolute()
    dest_dir = Path(dest_dir).absolute()
    final = dest_dir / folder
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
    try:
        root = tmp.resolve()
        try:
            with tarfile.open(archive, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(member, archive, root)
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataError(one_line(f"cannot extract {archive}: {e}")) from e
        src = tmp / folder
        if not src.is_dir():
            raise DataError(f"{archive} does not contain a {folder}/ folder")
        try:
            os.replace(src, final)
        except OSError as e:
            raise DataError(
                one_line(f"cannot move the extracted data to {final}: {e.strerror or e}")
            ) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def fetch_cifar10(root: Path, *, url: str = CIFAR10_URL, md5: str | None = CIFAR10_MD5) -> Path:
    """Download, verify and extract CIFAR-10 (python layout) into ``root``.

    Parameters
    ----------
    root : Path
        Target folder; receives the archive and ``cifar-10-batches-py/``.
    url : str
        Archive to fetch (the official one by default).
    md5 : str or None
        Its expected MD5 sum.

    Returns
    -------
    Path
        ``root / "cifar-10-batches-py"`` (returned at once when it already holds ``test_batch``).

    Raises
    ------
    DataError
        Download, checksum or extraction failure, or an incomplete ``cifar-10-batches-py``
        already in ``root``.
    """
    root = Path(root).expanduser().absolute()
    target = root / PY_DIRNAME
    if (target / "test_batch").is_file():
        return target
    if target.exists():
        raise DataError(f"{target} exists but has no test_batch: delete it and try again")
    name = PurePosixPath(urlparse(url).path).name or "cifar-10-python.tar.gz"
    archive = download_file(url, root / name, md5, desc="CIFAR-10")
    return extract_tar(archive, root, PY_DIRNAME)
