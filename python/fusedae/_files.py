"""Files that appear complete or not at all."""
import os
import tempfile


def write_atomically(path, data):
    """Write ``data`` (bytes) to ``path`` via a temporary file renamed into place.

    The temporary file lives in the destination folder (a rename is atomic
    only within one file system); on any failure it is removed and ``path``
    is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fusedae-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
