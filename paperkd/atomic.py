"""Write a file so that readers see either the old content or the new one, never a half-written file.

The bytes go to a temporary file in the same folder, are flushed to disk, and the temporary file is renamed over the
target: a rename within one filesystem is atomic on POSIX. A crash before the rename leaves the previous file intact
(and at worst a stray `.tmp-*` file, which nothing reads).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside `path`; on a clean exit, flush, fsync and rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[IO], object], mode: str = "wb") -> Path:
    """`write(f)` into a temporary file, then rename it over `path`."""
    with atomic_open(path, mode) as f:
        write(f)
    return Path(path)
