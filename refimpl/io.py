"""Checkpoint and JSON files (DESIGN.md sec. 6: checkpoints hold every array and the RNG state).

- :func:`save_checkpoint`, :func:`load_checkpoint`: one ``.npz`` of named float64 /
  bool arrays plus a JSON metadata record tagged with a format string; a truncated,
  foreign or other-version file raises :class:`CheckpointError`.  What the arrays and
  the metadata hold is the trainer's business (:meth:`refimpl.train.Trainer.save`).
- :func:`json_default`, :func:`write_json`: JSON with NumPy scalars and arrays as plain
  numbers and lists.
- :func:`atomic_write`: every file here is written atomically: into a temporary file in
  the same folder, flushed and fsynced, then renamed over the target.  An interrupt, a
  kill or a full disk at any moment leaves either the previous complete file or the new
  complete one, never a truncated file.
"""
from __future__ import annotations

import contextlib
import json
import os

import numpy as np

__all__ = ["CheckpointError", "atomic_write", "json_default", "load_checkpoint",
           "save_checkpoint", "write_json"]


class CheckpointError(ValueError):
    """A checkpoint file is truncated, foreign or of another version."""


def json_default(o):
    """``json.dump(..., default=json_default)``: NumPy scalars and arrays as
    plain numbers and lists."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


@contextlib.contextmanager
def atomic_write(path, mode="w", **open_kwargs):
    """Open a temporary file beside ``path`` for writing; on a clean exit flush, fsync
    and rename it over ``path`` (POSIX ``rename`` is atomic), then fsync the folder.

    On an exception the temporary file is removed and ``path`` is untouched.  The
    temporary name is fixed (``path + ".partial"``), so one left behind by a killed
    process is simply overwritten by the next write.
    """
    path = os.fspath(path)
    tmp = path + ".partial"
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    folder = os.path.dirname(os.path.abspath(path))
    with contextlib.suppress(OSError):  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json(path, obj, *, indent=1):
    """Write ``obj`` as JSON (NumPy values through :func:`json_default`), atomically
    (:func:`atomic_write`); returns ``path``."""
    text = json.dumps(obj, indent=indent, default=json_default)  # fail before touching path
    with atomic_write(path) as fh:
        fh.write(text)
    return path


def save_checkpoint(path, arrays, meta, format):
    """Write ``arrays`` (name -> ndarray) and ``meta`` (JSON-serializable, tagged with
    ``format``) to one ``.npz`` at ``path``, atomically (:func:`atomic_write`: the
    previous checkpoint stays until the new one is complete); returns ``path`` as a
    string."""
    meta = {**meta, "format": format}
    arrays = {**arrays, "__meta__": np.array(json.dumps(meta, default=json_default))}
    path = str(path)
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def load_checkpoint(path, format):
    """Read a file written by :func:`save_checkpoint`: ``(arrays, meta)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    CheckpointError
        The file is truncated, not a refimpl checkpoint, or of another format.
    """
    try:
        with np.load(str(path), allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError, OSError
        reason = str(exc)
        if isinstance(exc, ValueError) and "allow_pickle" in reason:
            # np.load takes a file that is neither a zip nor an .npy for a pickle; its
            # advice (load it unsafely) is wrong for a checkpoint.
            reason = "not an .npz archive"
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from exc
    if "__meta__" not in data:
        raise CheckpointError(f"{path}: not a refimpl checkpoint (no metadata)")
    try:
        meta = json.loads(str(data.pop("__meta__")))
    except ValueError as exc:
        raise CheckpointError(f"{path}: not a refimpl checkpoint (unreadable metadata)") from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a refimpl checkpoint (metadata is not a record)")
    if meta.get("format") != format:
        raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {format!r}")
    return data, meta
