"""Ed25519 signing keys kept in files of the instance folder (or wherever a setting points):
the license documents' key (LICENSE_SIGNING_KEY) and the buyer login's (LOGIN_SIGNING_KEY).
"""

import os
import uuid

from ..koo import licensedoc

_signers = {}


def signing_key(path):
    """The Ed25519 key at ``path``, made on first use (mode 0600, never overwritten).

    Several workers may start at once: the key is written to a private temporary file (created
    exclusively, O_EXCL|O_NOFOLLOW, 0600) and linked into place, so exactly one key wins and
    nobody reads a half-written file. Neither step follows a symlink: link() fails on any entry
    at ``path``, a dangling symlink included, which is then refused with a clear message.
    """
    if path not in _signers:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            temporary = f"{path}.{uuid.uuid4().hex}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    os.fchmod(f.fileno(), 0o600)
                    f.write(licensedoc.new_private_key_pem())
                    f.flush()
                    os.fsync(f.fileno())
                os.link(temporary, path, follow_symlinks=False)
            except FileExistsError:
                if os.path.islink(path) and not os.path.exists(path):
                    raise RuntimeError(
                        f"the signing key {path} is a dangling symbolic link; not written through it"
                    ) from None
            finally:
                os.unlink(temporary)
        with open(path, "rb") as f:
            _signers[path] = licensedoc.load_private_key(f.read())
    return _signers[path]
