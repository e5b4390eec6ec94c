"""What the fake marketplace keeps between calls, for the tests to look at: every call, the usage
records pushed, the license codes activated, queried and reported, the licenses uploaded. One lock
guards it all: the server answers in threads."""

import threading


class MarketState:
    """The fake marketplace's memory (``app.extensions["fake_market"]``)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []  # (method, path) of every request, answered or not
        self.usage = {}  # metering_sn -> the usage record pushed
        self.activated = {}  # license code -> how many times it was activated
        self.queries = []  # the bodies of license queries (v2: {"licenses": [codes]})
        self.software_usage = []  # the bodies of usage-statistics reports
        self.uploads = {}  # event id -> [each license file uploaded for it, as bytes]

    def record_call(self, method, path):
        with self.lock:
            self.calls.append((method, path))

    def take_usage(self, records):
        """Keep the records not pushed before; returns the marketplace's error record for each
        one whose metering_sn it has already (error_code 005), which it keeps as it was."""
        errors = []
        with self.lock:
            for record in records:
                sn = record.get("metering_sn")
                if sn in self.usage:
                    errors.append({"metering_sn": sn, "error_code": "005", "error_msg": "duplicate SDR id"})
                else:
                    self.usage[sn] = record
        return errors

    def count_activation(self, code):
        with self.lock:
            self.activated[code] = self.activated.get(code, 0) + 1

    def record_query(self, body):
        with self.lock:
            self.queries.append(body)

    def record_software_usage(self, body):
        with self.lock:
            self.software_usage.append(body)

    def record_upload(self, event_id, raw):
        with self.lock:
            self.uploads.setdefault(event_id, []).append(raw)
