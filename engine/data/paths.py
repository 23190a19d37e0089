"""Why a path given by the user leads nowhere: missing, a broken symbolic link, or a link loop.

``Path.exists()`` answers False for all three (it swallows the "too many levels of symbolic
links" error), so a message built on it alone calls a link loop "no such file". Every place
that reports a path it cannot follow asks :func:`unreachable_reason` instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


def unreachable_reason(path: str | os.PathLike, missing: str = "no such file or folder",
                       ) -> str | None:
    """None when ``path`` leads to a file or folder; else why not: ``missing`` when nothing is
    there, "a symbolic link loop ..." when following links comes back to a link already
    followed, "a broken symbolic link to TARGET" when the last link's target does not exist."""
    path = Path(path)
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return ("a symbolic link loop: following its links leads back to a link already "
                    "followed, never to a file")
        if path.is_symlink():
            return f"a broken symbolic link to {os.readlink(path)}, which does not exist"
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return missing
        return error.strerror or str(error)
    return None
