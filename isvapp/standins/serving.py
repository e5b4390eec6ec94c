"""Serving a stand-in on 127.0.0.1: in a thread beside a test or the simulator (:class:`Running`),
or in the foreground for a command (:func:`serve_forever`). Loopback only: a stand-in answers
anyone who asks, so it must never listen where others can reach it."""

import threading

from werkzeug.serving import make_server


class Running:
    """A stand-in served on 127.0.0.1 in a thread (for tests and the simulator)."""

    def __init__(self, app, port=0):
        self.app = app
        self.server = make_server("127.0.0.1", port, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # Polled often, so leaving (shutdown) takes a moment, not serve_forever's default half second.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.thread.join(5)


def serve_forever(app, port):
    """Serve ``app`` on 127.0.0.1:``port`` until the process is stopped (Ctrl-C)."""
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()
