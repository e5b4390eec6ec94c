"""Ed25519 signing keys kept in files of the instance folder (or wherever a setting points):
the license documents' key (LICENSE_SIGNING_KEY) and the buyer login's (LOGIN_SIGNING_KEY).
"""

import os

from ..koo import licensedoc
from ..privatefiles import write_private_file

_signers = {}


def signing_key(path):
    """The Ed25519 key at ``path``, made on first use (mode 0600, never overwritten).

    Several workers may start at once: write_private_file links a private temporary into place,
    so exactly one key wins and nobody reads a half-written file. Nothing follows a symlink:
    link() fails on any entry at ``path``, a dangling symlink included, which is then refused
    with a clear message.
    """
    if path not in _signers:
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            try:
                write_private_file(path, licensedoc.new_private_key_pem())
            except FileExistsError:  # another worker's key won, or a link was planted there
                if os.path.islink(path) and not os.path.exists(path):
                    raise RuntimeError(
                        f"the signing key {path} is a dangling symbolic link; not written through it"
                    ) from None
        with open(path, "rb") as f:
            _signers[path] = licensedoc.load_private_key(f.read())
    return _signers[path]
