"""WSGI targets for tests/live.py's LiveServer: the app wsgi.py makes, with one part broken on
purpose, for what only a broken part shows (an unexpected error and how it is reported).

    LiveServer(folder, app="tests.live_apps:relay_that_breaks()")
"""

import sys
from pathlib import Path


def relay_that_breaks():
    """/relay/v1/verify raises, its message quoting everything it was called with (the settings
    with their keys, the installation token): what a careless error message could leak."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from isvapp.domain import licensecodes
    from wsgi import app

    def verify(*args, **kwargs):
        raise RuntimeError(f"the relay broke on purpose, called with {args!r}")

    licensecodes.verify = verify
    return app
