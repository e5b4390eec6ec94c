"""Whether the request being served is the merchant's own simulation (isvapp.koo.simulated).

The route decides, once it knows who sent the request (a marketplace callback: once it verified),
with :func:`mark`; the domain asks :func:`current` when it records what the request made: the
callback log row, the instance, the jobs that would otherwise ask the marketplace about an order
it never saw (domain.orderdetails, background.uploads), and the License relay's codes. Outside a
request (the worker, a command) nothing is simulated.
"""

from flask import g, request

from ..koo.simulated import is_marked


def mark():
    """Read the mark from the current request's headers; returns it."""
    g.isvapp_simulated = is_marked(request.headers)
    return g.isvapp_simulated


def current():
    return bool(g.get("isvapp_simulated", False))
