"""What runs in the background, held on the app: the job handlers by kind (and what a kind does
when a job of it dies), the periodic tasks the worker runs about every 30 s, the watchers of jobs
that fail or die, and the alerts whose message is written when it is read.

create_app makes one JobRegistry per app (``app.extensions["isvapp_jobs"]``) and fills it from
one list of the modules that own such work (register_jobs in isvapp/__init__.py), each through
its function ``register_jobs(registry)``. The worker (worker.py) and the alert messages (alerts) read
it from the app: nothing registers by being imported, and the order of imports changes nothing.
docs/architecture.md, "Adding a job kind", says what a new kind needs.
"""

from flask import current_app

KEY = "isvapp_jobs"


class JobRegistry:
    def __init__(self):
        self.handlers = {}  # job kind -> function(job)
        self.on_dead = {}  # job kind -> function(job), run in the transaction that makes the job dead
        self.ticks = []  # functions the worker calls about every 30 s (to schedule periodic jobs), in order
        self.failure_watchers = []  # function(row, error) for a failure the job is retried after
        self.dead_watchers = []  # function(row, error) for every job that dies
        self.outage_watchers = []  # function(error), outside any transaction, once per database outage
        self.renderers = {}  # alert kind -> function(alert, params, gettext) -> more parameters
        self.legacy_messages = {}  # alert kind -> (subject msgid, text msgid) of rows from before alerts kept theirs

    def handler(self, kind, function, on_dead=None):
        """``function(job)`` runs the jobs of ``kind``; ``on_dead(job)``, if given, runs in the
        transaction that makes one dead. One handler a kind: a second is a mistake, refused."""
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} has a handler already: {self.handlers[kind].__qualname__}")
        self.handlers[kind] = function
        if on_dead is not None:
            self.on_dead[kind] = on_dead

    def periodic(self, function):
        """``function()`` runs in the worker about every 30 s, after the ones registered before it."""
        self.ticks.append(function)

    def watch_failure(self, function):
        """``function(row, error)`` runs, in its transaction, for every failure a job is retried after."""
        self.failure_watchers.append(function)

    def watch_dead(self, function):
        """``function(row, error)`` runs, in its transaction, for every job that goes dead."""
        self.dead_watchers.append(function)

    def watch_outage(self, function):
        """``function(error)`` runs, outside any transaction, when the worker has not reached the
        database for worker.OUTAGE_REPORT_S seconds (once per outage): how alerts hear of what they
        cannot record there."""
        self.outage_watchers.append(function)

    def renderer(self, alert_kind, function, legacy=None):
        """``function(alert, params, gettext)`` adds parameters to an ``alert_kind`` alert's message
        when it is read; ``legacy``: the (subject, text) msgids of rows stored before alerts kept them."""
        self.renderers[alert_kind] = function
        if legacy is not None:
            self.legacy_messages[alert_kind] = legacy


def current():
    """The registry of the app in context."""
    return current_app.extensions[KEY]
