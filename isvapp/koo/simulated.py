"""The mark of the merchant's own simulation: a header the simulator (``isvapp simulate``,
``isvapp-sim``) sends on every request, and the marketplace never does.

Why a mark: the Seller Console's debugging and the simulator both send ``testFlag=1``, but only the
console's makes a scenario count for publishing; the go-live page must tell them apart. Why it can
be trusted on a callback: only a holder of the Key can make a request that verifies, so a verified
request that carries the mark is the merchant's own. Requests that are not signed (the License
relay, the buyer's login) can carry it too; a stranger gains nothing by sending it, since the mark
only ever takes a request out of what counts as the marketplace's.
"""

HEADER = "X-Isvapp-Simulated"


def is_marked(headers):
    """Whether request headers (any mapping with .get) carry the mark; any non-empty value does."""
    return bool((headers.get(HEADER) or "").strip())
