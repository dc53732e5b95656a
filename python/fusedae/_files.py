"""Files that appear complete or not at all."""
import os
import tempfile


def check_path(path, name="path"):
    """``path`` as a str: a str or any os.PathLike, else TypeError naming it."""
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError(f"{name}: expected a str or os.PathLike, got "
                        f"{type(path).__name__}") from None


def write_atomically(path, data):
    """Write ``data`` (bytes) to ``path`` via a temporary file renamed into place.

    The temporary file lives in the destination folder (a rename is atomic
    only within one file system); on any failure it is removed and ``path``
    is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fusedae-", suffix=".tmp")
    try:
        # mkstemp makes the file private to its owner; give it the mode a plain
        # open() would (0666 less the umask), read without changing the umask.
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask():
    """The process's umask (Linux exposes it in /proc; elsewhere the usual 022)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022
