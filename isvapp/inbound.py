"""Inbound HTTP bodies: how much each route reads, chunked bodies included, and how a JSON body is read.

Every blueprint that reads a body has a limit of its own (one setting each, ``settings.bodies``),
applied in one place before any view runs:

- a Content-Length over the limit is refused before a byte of the body is read;
- a chunked body (no Content-Length: the relay is public, and anyone may send one) is read up to
  one byte past the limit and refused there, instead of being read whole and parsed: 6 MiB of
  ``[{},{},...]`` sent to the relay used to raise the worker's memory by 137 MiB. Werkzeug's own
  cap stops reading at the limit without saying so (the route then sees a cut body), so the
  chunked body is read here, and the route reads what was kept.

Refusals are RequestEntityTooLarge (413) with a message naming the limit, or ClientDisconnected
(400) for a chunked body that cannot be read to its end (what Werkzeug's own reader says of it):
the marketplace routes turn them into their envelope, the APIs into JSON, the pages show them. JSON bodies are read
by ``json_object`` (isvapp.koo.strictjson: one parser, one set of refusals, a body nested too
deeply among them).
"""

import io

from flask import current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from .koo import strictjson
from .settings import settings_of

KIT_MARK = "/produceAPI/"  # the produce blueprint's Kit sync routes: KOO_KIT_MAX_BODY_BYTES
UNREADABLE = "the body could not be read to its end (a chunk that is not well formed, or the sender went away)"


class TooLarge(RequestEntityTooLarge):
    def __init__(self, limit):
        super().__init__(f"the body is over {limit} bytes, the most this address takes")


def body_limits(settings):
    """{blueprint: bytes, "kit": bytes}, read once when the app is made."""
    bodies = settings.bodies
    return {
        "produce": bodies.produce,
        "relay": bodies.relay,
        "productapi": bodies.productapi,
        "dashboard": bodies.dashboard,
        "login": bodies.login,
        "kit": bodies.other if bodies.kit is None else bodies.kit,
    }


def limit_body():
    """Before every view: this route's limit, enforced on the body whatever its framing."""
    name = request.blueprint
    limits = current_app.extensions["isvapp_body_limits"]
    limit = limits["kit"] if name == "produce" and KIT_MARK in request.path else limits.get(name)
    if limit is None:
        return
    request.max_content_length = limit
    length = request.content_length
    if length is not None:
        if length > limit:
            raise TooLarge(limit)
        return
    environ = request.environ
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower() and environ.get("wsgi.input_terminated"):
        try:
            data = environ["wsgi.input"].read(limit + 1)
        except Exception:  # noqa: BLE001  the client's bytes, whatever the server's reader raises of them
            # (gunicorn's ParseException family is no OSError: Werkzeug's own reader let it through
            # as a 500, and the marketplace routes answered 000005 to a stranger's broken chunk)
            raise ClientDisconnected(UNREADABLE) from None
        if len(data) > limit:
            raise TooLarge(limit)
        environ["wsgi.input"] = io.BytesIO(data)  # what the route reads; the server's stream stays unread


def json_object():
    """The request's body as a JSON object, whatever its Content-Type says (lenient about shape);
    strictjson.Malformed names what is wrong with it."""
    return strictjson.loads_object(request.get_data(cache=True))


def init_app(app):
    """After the callback log's own start (a refusal here is logged like any other)."""
    app.extensions["isvapp_body_limits"] = body_limits(settings_of(app))
    app.before_request(limit_body)
