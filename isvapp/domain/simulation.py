"""Whether the request being served is the merchant's own simulation (isvapp.koo.simulated).

The route decides, once it knows who sent the request (a marketplace callback: once it verified),
with :func:`mark`; the domain asks :func:`current` when it records what the request made: the
callback log row, the instance, the jobs that would otherwise ask the marketplace about an order
it never saw (domain.orderdetails, background.uploads), and the License relay's codes. Outside a
request (the worker, a command) nothing is simulated.

The simulator's buyer login is recorded apart from the buyers' (KitUser.last_login_at) by
:func:`record_login`, in a status item: the Kit suite deletes its users when it is done, and the
go-live page must still show that the login was simulated here, and when.
"""

from flask import g, request

from ..background import status
from ..koo.simulated import is_marked

LOGIN_ITEM = "simulated_login"  # StatusItem: the last buyer login the simulator made


def mark():
    """Read the mark from the current request's headers; returns it."""
    g.isvapp_simulated = is_marked(request.headers)
    return g.isvapp_simulated


def current():
    return bool(g.get("isvapp_simulated", False))


def record_login(tenant_id, user_name):
    """A buyer login the simulator made (call it, in no transaction of the caller's, instead of
    setting KitUser.last_login_at when :func:`current` is true): the go-live page's "simulated here"."""
    status.report(LOGIN_ITEM, {"tenant": tenant_id, "user": user_name})
