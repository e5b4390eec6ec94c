"""The web process's own watch: the alerts that must not wait for what they are about.

An alert is delivered by a job, and jobs are the worker's; so the message that the worker has
stopped would wait for that worker. Each gunicorn worker therefore runs a small thread (started
by wsgi.py) that every ALERT_WATCH_EVERY_S seconds checks the worker's heartbeat, notes its
return, checks the disk, and itself runs the pending "direct_alert" jobs (alerts.DIRECT_KINDS).
The alert rows keep their grouping (one per kind and window, on every host) and the job queue's
claim lets one process deliver each, whichever comes first: a web process or a worker. When the
database itself cannot be reached, the message goes out without it (alerts.database_unreachable).
"""

import logging
import random
import threading
import time

from ..extensions import db
from ..settings import settings_of
from . import alerts, worker

log = logging.getLogger("isvapp.watchdog")
DIRECT_JOBS_PER_TURN = 10
DISK_EVERY_S = 300


class Watchdog:
    """One process's watch; :meth:`turn` is one round (tests call it directly)."""

    def __init__(self, app):
        self.app, self.me = app, f"{worker.worker_id()}:web"
        self.every_s = settings_of(app).alerts.watch_every_s
        self.stopping = threading.Event()
        self.last_disk = None

    def turn(self, now_monotonic=None):
        with self.app.app_context():
            try:
                alerts.check_worker_heartbeat()
                alerts.check_worker_recovered()
                if self.last_disk is None or (now_monotonic or 0) - self.last_disk >= DISK_EVERY_S:
                    alerts.check_disk()
                    self.last_disk = now_monotonic or 0
                for _ in range(DIRECT_JOBS_PER_TURN):
                    if worker.run_one(self.me, kinds=(alerts.DIRECT_JOB,)) is None:
                        break
            except worker.DATABASE_ERRORS as error:
                alerts.database_unreachable(settings_of(self.app), self.app.instance_path, "web", error)
            except Exception:  # noqa: BLE001  the watch must go on
                log.exception("watchdog turn failed")
            finally:
                db.session.remove()

    def run(self):
        # A random start: the processes of one server do not all look at the same moment.
        self.stopping.wait(random.uniform(0, min(self.every_s, 5)))
        while not self.stopping.is_set():
            self.turn(time.monotonic())
            self.stopping.wait(self.every_s)


def start(app):
    """Start this process's watch (a daemon thread: it ends with the process). None when
    ALERT_WATCH_EVERY_S is 0 (off)."""
    if not settings_of(app).alerts.watch_every_s:
        return None
    watchdog = Watchdog(app)
    threading.Thread(target=watchdog.run, name="isvapp-watchdog", daemon=True).start()
    return watchdog
