"""Files that hold secrets or buyers' data: created 0600, exclusively, never through a symlink,
and written whole or not at all. One way for the keys, the first config, the database file, the
backup copy and archives, and what a restore puts back.

Why each part: O_EXCL, so a file or symlink planted at the name is never written through (and a
file made by someone else is never taken for ours); O_NOFOLLOW, the same for the last component;
0600 from the start, not chmod-ed later; a private temporary beside the target, fsynced, then
linked (a second writer gets FileExistsError, nobody reads half a file) or renamed over it.
"""

import os
import uuid

EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def create_private(path):
    """A new file at ``path``, mode 0600, opened for writing: its descriptor. FileExistsError when
    anything is there, a symlink included (nothing is followed, truncated or replaced)."""
    return os.open(path, EXCLUSIVE, 0o600)


def write_private_file(path, data, replace=False):
    """Write ``data`` (bytes, or a function that writes to the binary file it is given) to ``path``
    whole: into a private temporary beside it, fsynced, then linked into place (FileExistsError
    when anything is at ``path``: the first writer wins) or, with ``replace``, renamed over what is
    there (an existing symlink at ``path`` is refused: it would be replaced, and a secret kept
    elsewhere through a link is its owner's to replace). Returns the size written."""
    if replace and os.path.islink(path):
        raise IsADirectoryError(f"{path} is a symbolic link; not written through it")
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    fd = create_private(temporary)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # the umask cannot widen what open() made, but be plain about it
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path, follow_symlinks=False)
        return os.path.getsize(path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)
