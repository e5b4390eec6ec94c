"""The WSGI entry point gunicorn loads: ``gunicorn wsgi:app``.

It refuses to serve with a missing, placeholder or short SECRET_KEY: the pages' session cookies
are signed with it, and a guessable one lets anyone forge an admin session.
"""

import sys

from isvapp import create_app
from isvapp.background import watchdog
from isvapp.config import secret_key_problem
from isvapp.settings import settings_of

app = create_app()
_problem = secret_key_problem(settings_of(app).secret_key)
if _problem:
    app.logger.critical(_problem)
    print(f"isvapp: {_problem}", file=sys.stderr)
    raise SystemExit(3)

# The web process's own watch: the worker's silence is told even while the worker is down.
watchdog.start(app)
