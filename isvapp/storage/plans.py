"""Running what the domain decided: a plan of writes, in one write transaction, in one call.

The domain decides what one activity writes (the claims, the rows, the event, its jobs, the
answer) and hands over a list of :class:`~isvapp.storage.statements.Write`; this binds them
before the write lock is taken and runs them under it: lean on SQLite (no ORM session), on the
session's connection elsewhere. A claim that is already taken stops the plan and rolls it back:
what then (a repeated order, another key's row, a resend) is the domain's to decide again.
"""

from .statements import bind_write, run_bound
from .transactions import lean_available, lean_write_transaction, write_transaction


class _Taken(Exception):
    def __init__(self, claim):
        super().__init__(claim)
        self.claim = claim


def run_plan(writes):
    """Run ``writes`` in one durable write transaction. None when every write was made; else the
    ``claim`` of the first that was already taken (and nothing was written)."""
    bound = [(w.claim, None if w.late is not None else bind_write(w), w) for w in writes]  # before the lock
    try:
        with lean_write_transaction() if lean_available() else write_transaction():
            for claim, statement, write in bound:
                if run_bound(statement or bind_write(write)) is None and claim:
                    raise _Taken(claim)
    except _Taken as taken:
        return taken.claim
    return None
