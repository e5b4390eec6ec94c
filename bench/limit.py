"""The physical limit for a durable, signed, idempotent newInstance on this machine: the baseline.

The least a conformant G2 newInstance must do, and nothing else, under the same gunicorn:
check the signature over the raw body; in one BEGIN IMMEDIATE transaction on SQLite in WAL with
synchronous=FULL, claim the nonce and the order line with INSERT ... ON CONFLICT DO NOTHING (a
repeated order reads its stored answer); send a Body-Signed answer. BEGIN IMMEDIATE is retried
the way isvapp retries it, the log is checkpointed as isvapp's is and the page cache is as
large, so the two differ only in what isvapp does on top.
"""

import base64
import hashlib
import hmac
import json
import os
import random
import sqlite3
import time

from flask import Flask, Response, request
from isvapp.config import DEFAULTS

KEY = os.environ.get("ISVAPP_KOO_ACCESS_KEY", "bench-key-0000-1111")
app = Flask(__name__)
_db = []


def connection():
    if not _db:
        path = os.path.join(os.environ.get("ISVAPP_INSTANCE_PATH", "."), "limit.sqlite")
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        # isvapp's checkpoint and cache settings (measured: the first speeds this app up too, by
        # about 7%), so the two differ only in what isvapp does on top.
        conn.execute(f"PRAGMA wal_autocheckpoint={int(DEFAULTS['SQLITE_WAL_AUTOCHECKPOINT'])}")
        conn.execute(f"PRAGMA cache_size={-int(DEFAULTS['SQLITE_CACHE_MIB']) * 1024}")
        conn.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, seen_at REAL)")
        conn.execute("CREATE TABLE IF NOT EXISTS orders (line TEXT PRIMARY KEY, instance_id TEXT, answer BLOB)")
        _db.append(conn)
    return _db[0]


def _hmac(key, message):
    return hmac.new(key.encode(), message if isinstance(message, bytes) else message.encode(), hashlib.sha256)


def answer(body):
    sign = base64.b64encode(_hmac(KEY, body).digest()).decode()
    return Response(
        body,
        200,
        content_type="application/json;charset=UTF-8",
        headers={"Body-Sign": f'sign_type="HMAC-SHA256", signature="{sign}"'},
    )


@app.route("/produce", methods=["GET", "POST"])
def produce():
    if request.method == "GET":
        return answer(b'{"resultCode":"000000","resultMsg":"success."}')
    raw = request.get_data()
    args = request.args
    nonce, timestamp = args.get("nonce", ""), args.get("timestamp", "")
    expected = _hmac(KEY, KEY + nonce + timestamp + _hmac(KEY, raw).hexdigest()).hexdigest()
    if not hmac.compare_digest(expected, args.get("signature", "").lower()):
        return answer(b'{"resultCode":"000001","resultMsg":"authentication failed"}')
    order = json.loads(raw)
    line = f"{order['orderId']}|{order['orderLineId']}"
    body = json.dumps(
        {"resultCode": "000000", "resultMsg": "success.", "instanceId": order["businessId"]}, separators=(",", ":")
    ).encode()
    conn = connection()
    deadline = time.monotonic() + 3
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                return answer(b'{"resultCode":"000005","resultMsg":"database busy"}')
            time.sleep(random.uniform(0.0001, 0.0006))
    try:
        if conn.execute("INSERT INTO nonces VALUES (?, ?) ON CONFLICT DO NOTHING", (nonce, time.time())).rowcount == 0:
            conn.execute("ROLLBACK")
            return answer(b'{"resultCode":"000001","resultMsg":"nonce has been used before"}')
        if (
            conn.execute(
                "INSERT INTO orders VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (line, order["businessId"], body)
            ).rowcount
            == 0
        ):
            body = conn.execute("SELECT answer FROM orders WHERE line = ?", (line,)).fetchone()[0]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return answer(body)
