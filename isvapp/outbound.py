"""Outbound HTTP (webhooks, alert robots, the marketplace's open API, the tenant's IdP): the same rules for all.

- https only, except to this host (127.0.0.0/8, ::1, localhost): bodies carry buyers' passwords
  and robot keys. Checked on the URL, and again on the address a plain http connection reached:
  a hosts file or resolver may point the name localhost elsewhere;
- redirects are never followed: a 3xx is a failed delivery, retried by the durable job (urllib
  would turn a POST into a bodiless GET that "succeeds", and the message would be lost);
- one total deadline per delivery, not only per socket read: a receiver trickling bytes cannot
  hold the worker.
"""

import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

_LOOPBACK_NAMES = ("localhost",)


def is_loopback(host):
    host = (host or "").rstrip(".").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def is_ip_literal(host):
    try:
        ipaddress.ip_address((host or "").strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def is_public_address(address, allow_loopback=False):
    """True for an address on the public internet (not private, loopback, link-local, reserved,
    or an IPv4 one of those behind ::ffff:); ``allow_loopback``: this host too."""
    try:
        ip = ipaddress.ip_address((address or "").split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped or ip
    return bool(ip.is_global or (allow_loopback and ip.is_loopback))


class RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is a failed delivery: following it would resend (or, for 301/302/303, turn the POST
    into a bodiless GET that "succeeds") somewhere WEBHOOK_URL does not name, losing the event."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # urllib then raises HTTPError for the 3xx itself


class Delivery:
    """One delivery's total deadline: a timer shuts the connection's socket down when it passes.

    Socket timeouts bound each read, not their sum: a receiver sending one byte every few seconds
    (in the headers or the body) would otherwise hold the worker for as long as it likes. Shutting
    the socket down from the timer wakes the blocked read at once; the delivery then fails.
    """

    def __init__(self, timeout_s, peer_allowed=None):
        self.timeout_s = timeout_s
        self.peer_allowed = peer_allowed  # None, or a test of the address actually connected to
        self.deadline = time.monotonic() + timeout_s
        self.expired = False
        self._sockets, self._lock, self._done = [], threading.Lock(), False
        self._timer = threading.Timer(timeout_s, self._expire)
        self._timer.daemon = True

    def remaining(self):
        return self.deadline - time.monotonic()

    def connection_class(self, base):
        delivery, plain = self, not issubclass(base, http.client.HTTPSConnection)

        class Connection(base):  # type: ignore[valid-type, misc]  # whichever class is passed in
            def connect(self):
                self.timeout = max(
                    0.001,
                    min(
                        self.timeout or delivery.timeout_s,  # type: ignore[has-type]
                        delivery.remaining(),
                    ),
                )
                super().connect()
                delivery._track(self.sock)
                peer = self.sock.getpeername()[0]
                if plain and not is_loopback(peer):  # before a byte of the request is sent
                    self.sock.close()
                    raise ConnectionRefusedError(
                        f"{self.host} is not this host: plain http goes only to a loopback address"
                    )
                if delivery.peer_allowed is not None and not delivery.peer_allowed(peer):
                    self.sock.close()
                    # the name, not the address: the message may reach a page
                    raise ConnectionRefusedError(f"{self.host} is not a public address")

        return Connection

    def _track(self, sock):
        with self._lock:
            self._sockets.append(sock)
            late = self.expired
        if late:
            self._shutdown(sock)

    def _expire(self):
        with self._lock:
            if self._done:
                return
            self.expired = True
            sockets = list(self._sockets)
            for sock in sockets:  # under the lock: finish() cannot close them meanwhile
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock):
        try:
            # The plain socket's shutdown, also for an SSLSocket: it leaves the TLS object alone
            # (another thread is reading with it) and only ends the connection underneath.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def start(self):
        self._timer.start()

    def finish(self):
        with self._lock:
            self._done = True
        self._timer.cancel()


def _tracking_handler(base, delivery):
    class Handler(base):  # type: ignore[valid-type, misc]  # whichever class is passed in
        def do_open(self, http_class, req, **kwargs):
            return super().do_open(delivery.connection_class(http_class), req, **kwargs)

    return Handler


def is_https_or_loopback(url):
    """True for an https URL with a host, or a plain http URL to this host."""
    parts = urllib.parse.urlsplit(str(url))
    scheme = parts.scheme.lower()
    return bool(scheme == "https" and parts.hostname) or (scheme == "http" and is_loopback(parts.hostname))


def opener_for(delivery, context=None):
    """An opener that refuses redirects and ties every connection to ``delivery``'s deadline
    (``context``: the TLS settings for https, the default verifying one when None)."""
    return urllib.request.build_opener(
        RefuseRedirects,
        _tracking_handler(urllib.request.HTTPHandler, delivery),
        _tracking_handler(urllib.request.HTTPSHandler, delivery)(context=context),
    )


def verifying_context():
    """TLS that checks the certificate chain and the host name (CERT_REQUIRED and check_hostname,
    spelled out rather than trusted to a default)."""
    context = ssl.create_default_context()
    context.verify_mode, context.check_hostname = ssl.CERT_REQUIRED, True
    return context


class Unanswered(Exception):
    """No usable HTTP answer: ``kind`` is "network" (unreachable, or the deadline passed:
    ``timed_out``) or "redirect" (a 3xx, never followed: its ``status`` and ``location``); the
    message names what happened."""

    def __init__(self, kind, message, timed_out=False, status=None, location=None):
        super().__init__(message)
        self.kind, self.timed_out, self.status, self.location = kind, timed_out, status, location


def exchange(request, timeout_s, limit, what, peer_allowed=None):
    """Send ``request`` under these rules (no redirects, one total deadline, strict TLS) and read
    at most ``limit`` bytes of the answer: (HTTP status, body), error statuses included, since
    APIs put their error codes in those bodies. ``what`` names the call in error messages.
    ``peer_allowed``: a test of the address each connection really reached (after the name was
    resolved), for hosts named by someone else's data: is_public_address refuses a name that
    resolves to this host or the private network."""
    delivery = Delivery(timeout_s, peer_allowed)
    opener = opener_for(delivery, context=verifying_context())
    delivery.start()
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read(limit)
        if delivery.expired:
            raise TimeoutError("no whole answer in time")
        return status, raw
    except urllib.error.HTTPError as error:
        if 300 <= error.code < 400:
            location = (error.headers.get("Location") or "?")[:200]
            error.close()
            raise Unanswered(
                "redirect",
                f"HTTP {error.code} from {what}: a redirect, not followed",
                status=error.code,
                location=location,
            ) from None
        raw = error.read(limit)
        error.close()
        return error.code, raw
    except (urllib.error.URLError, OSError) as error:
        if (
            delivery.expired
            or isinstance(error, TimeoutError)
            or isinstance(getattr(error, "reason", None), TimeoutError)
        ):
            raise Unanswered("network", f"{what}: no answer within {timeout_s:g} s", timed_out=True) from None
        raise Unanswered("network", f"{what}: {getattr(error, 'reason', error)}") from None
    finally:
        delivery.finish()
