"""Follow a growing run directory: notice new snapshots, load and verify them in the background.

The viewer's follow mode (``cnnvis view RUN --follow``) uses a :class:`Follower`: a daemon thread
polls the run directory, opens each new snapshot, verifies every array (so a snapshot that is
listed but damaged never reaches the UI), and queues it.  A damaged snapshot is skipped with a
warning and retried only if its folder changes.  The UI thread calls :meth:`Follower.poll`
between frames; it never blocks.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from ..errors import SnapshotError
from . import store
from .snapshot import Run, Snapshot


class Follower:
    """Background loader of the snapshots of ``run_dir`` as they appear.

    Parameters
    ----------
    run_dir:
        The run directory (it may not hold a manifest yet: the follower waits for it).
    interval:
        Seconds between polls of the directory.
    prepare:
        Optional function run on the background thread for each loaded snapshot (e.g. the
        layout); its result is queued beside the snapshot.
    """

    def __init__(
        self,
        run_dir: str | Path,
        interval: float = 0.5,
        prepare: Callable[[Snapshot], object] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.interval = interval
        #: loading or preparing a snapshot right now (the UI leaves it more of the CPU)
        self.working = False
        self.prepare = prepare
        self.run: Run | None = None
        self.loaded: list[int] = []
        self.skipped: dict[int, str] = {}  # step -> why
        self._tried: dict[int, float] = {}  # step -> mtime of the folder when it failed
        self._out: queue.Queue[tuple[Snapshot, object]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cnnvis-follow", daemon=True)

    def start(self) -> Follower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> Follower:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def poll(self) -> list[tuple[Snapshot, object]]:
        """The snapshots (and prepared results) loaded since the last call, oldest first."""
        out = []
        while True:
            try:
                out.append(self._out.get_nowait())
            except queue.Empty:
                return out

    def check_now(self) -> int:
        """Scan once on the calling thread; returns how many snapshots were queued."""
        if self.run is None:
            if not (self.run_dir / store.MANIFEST_NAME).exists():
                return 0
            self.run = Run(self.run_dir)
        n = 0
        for step in self.run.steps():
            if step in self.loaded:
                continue
            folder = store.step_dir(self.run_dir, step)
            try:
                mtime = folder.stat().st_mtime
            except OSError:
                continue
            if self._tried.get(step) == mtime:
                continue
            self.working = True
            try:
                self.run.snapshot(step).arrays.load_all()  # verify every file, off the UI thread
                # queue a fresh lazy view: verified arrays are not kept (large ones are memory
                # maps, each holding a file descriptor; a long run would exhaust them)
                snap = self.run.snapshot(step)
                prepared = self.prepare(snap) if self.prepare is not None else None
            except SnapshotError as e:
                self._tried[step] = mtime
                self.skipped[step] = str(e)
                warnings.warn(f"skipping snapshot {step} of {self.run_dir}: {e}", stacklevel=2)
                continue
            finally:
                self.working = False
            self.loaded.append(step)
            self.skipped.pop(step, None)
            self._out.put((snap, prepared))
            n += 1
        return n

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_now()
            except SnapshotError as e:  # e.g. a manifest being replaced: try again next time
                warnings.warn(f"cannot read {self.run_dir}: {e}", stacklevel=2)
            self._stop.wait(self.interval)
