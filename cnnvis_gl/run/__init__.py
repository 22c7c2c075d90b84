"""Run directories: a manifest plus one snapshot folder per recorded step (SPEC §9).

:mod:`cnnvis_gl.run.store` is the generic, pickle-free storage layer; it knows nothing of neural
networks.
"""

from cnnvis_gl.run.store import (
    SCHEMA_VERSION,
    StoredSnapshot,
    list_steps,
    open_snapshot,
    read_manifest,
    step_dir,
    write_manifest,
    write_snapshot,
)

__all__ = [
    "SCHEMA_VERSION",
    "StoredSnapshot",
    "list_steps",
    "open_snapshot",
    "read_manifest",
    "step_dir",
    "write_manifest",
    "write_snapshot",
]
