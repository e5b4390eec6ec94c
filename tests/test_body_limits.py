"""Every route that reads a body reads at most its own limit, chunked bodies too, and a body nested
too deeply is a 400 naming the problem (issue 33, review point 1). Through a real gunicorn.

A chunked body has no Content-Length to refuse up front: the limit holds only if the route stops
reading at it. The proof used here needs no clock: the body is sent without its last chunk, so a
route that reads it whole can never answer, and one that stops at its limit answers at once.
"""

import json
import select
import socket
import time

import pytest
import requests
from bench.abuse import MIB, peak_rss_mib, tiny_objects, worker_pids
from isvapp import create_app
from isvapp.domain import apitokens
from isvapp.koo import codes
from isvapp.koo.signing import g2_signed_request, kit_signed_request

from .helpers import KEY, KIT_KEY
from .live import LIVE_SECRET_KEY, LiveServer
from .tiers import live_fixture

ANSWER_WAIT_S = 20  # a bounded wait for an answer; the refusal comes long before it
NESTED = b'{"license":' + b"[" * 1100 + b"]" * 1100 + b"}"  # 2.2 KB, 1,100 deep


@live_fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("limits")
    env = {
        "ISVAPP_KOO_ACCESS_KEY": KEY,
        "ISVAPP_KOO_KIT_ACCESS_KEY": KIT_KEY,
        "ISVAPP_KOO_KIT_MAX_BODY_BYTES": str(MIB),  # below the 6 MiB sent, to see the Kit routes' own limit
    }
    with LiveServer(folder, workers=1, env=env) as live:
        app = create_app(
            {
                "TESTING": True,
                "INSTANCE_PATH": str(folder),
                "SECRET_KEY": LIVE_SECRET_KEY,
                "SQLALCHEMY_DATABASE_URI": live.database_uri,
            }
        )
        with app.app_context():
            live.bearer = apitokens.create_token("limits", apitokens.ALL_SCOPES, "p-1")
        yield live
        log = (folder / "gunicorn.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def post_chunked(server, path, chunks, headers=None, finish=True):
    """POST ``chunks`` with Transfer-Encoding: chunked over a raw socket; stops sending once an
    answer is there or the server stops reading. Returns (status or None, body, bytes sent)."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WAIT_S)
    sent = 0
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.settimeout(2)  # a send that waits this long: the server is not reading any more
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered already
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
            else:
                if finish:
                    sock.sendall(b"0\r\n\r\n")
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(ANSWER_WAIT_S)
        raw = b""
        deadline = time.monotonic() + ANSWER_WAIT_S
        while time.monotonic() < deadline:
            try:
                part = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not part:
                break
            raw += part
            head_end = raw.find(b"\r\n\r\n")
            if head_end >= 0:
                length = [
                    int(line.split(b":", 1)[1])
                    for line in raw[:head_end].split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                if length and len(raw) >= head_end + 4 + length[0]:
                    break
    finally:
        sock.close()
    if not raw.startswith(b"HTTP/"):
        return None, b"", sent
    return int(raw.split(b" ", 2)[1]), raw.split(b"\r\n\r\n", 1)[1], sent


def pieces(body, size=64 * 1024):
    return [body[i : i + size] for i in range(0, len(body), size)]


JSON = {"Content-Type": "application/json"}
# (path, headers, what the answer must say): each route with a limit below 6 MiB. /produce's
# timestamp is now, so that its signature is checked over the body.
ROUTES = [
    ("/relay/v1/activate", JSON, (413, "4096 bytes")),
    ("/relay/v1/verify", JSON, (413, "4096 bytes")),
    ("/relay/v1/usage", JSON, (413, "4096 bytes")),
    ("/api/v1/usage", "bearer", (413, "65536 bytes")),
    ("/admin/login", {"Content-Type": "application/x-www-form-urlencoded"}, (413, "65536 bytes")),
    ("/produce?signature=00&timestamp={now}&nonce=n", {}, (200, "larger than 1048576 bytes")),
    ("/produce/produceAPI/v2/allOrgSync", {}, (200, "larger than 1048576 bytes")),
    ("/license/produceAPI/allOrgSync", {"authToken": "AAAA"}, (200, "larger than 1048576 bytes")),
]


@pytest.mark.parametrize("path, headers, expected", ROUTES, ids=[r[0].split("?")[0] for r in ROUTES])
def test_a_chunked_body_over_the_routes_limit_is_refused_before_it_ends(server, path, headers, expected):
    """6 MiB of [{},{},...], chunked, and never finished: only a route that stops at its limit answers."""
    if headers == "bearer":
        headers = {"Authorization": f"Bearer {server.bearer}", **JSON}
    path = path.replace("{now}", str(int(time.time() * 1000)))
    status, body, sent = post_chunked(server, path, pieces(tiny_objects(6 * MIB)), headers, finish=False)
    assert status is not None, f"{path}: no answer while the body had not ended (read to its end?), {sent} bytes sent"
    words = body.decode()
    assert status == expected[0] and expected[1] in words, (path, status, words)
    if status == 200:
        assert json.loads(body)["resultCode"] == codes.INVALID_PARAM


def test_six_mib_chunked_to_the_relay_leaves_the_workers_memory_where_it_was(server):
    """The review's figure: the worker's peak grew 138 MiB from one such request."""
    [worker] = worker_pids(server.proc.pid)
    before = peak_rss_mib(worker)
    body = pieces(tiny_objects(6 * MIB))
    answers = [post_chunked(server, "/relay/v1/activate", body, JSON)[0] for _ in range(2)]
    grown = peak_rss_mib(worker) - before
    print(f"answers {answers}; worker VmHWM {before:.1f} MiB -> {before + grown:.1f} MiB (+{grown:.1f})")
    assert grown < 32, grown
    assert set(answers) <= {413, None}, answers  # None: the server closed before the client read (a reset)


JSON_ROUTES = [
    ("/relay/v1/activate", {}),
    ("/relay/v1/verify", {}),
    ("/relay/v1/usage", {}),
    ("/api/v1/usage", "bearer"),
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("path, headers", JSON_ROUTES, ids=[r[0] for r in JSON_ROUTES])
def test_a_body_nested_too_deeply_is_a_400_that_says_so(server, path, headers, chunked):
    if headers == "bearer":
        headers = {"Authorization": f"Bearer {server.bearer}"}
    headers = {**headers, **JSON}
    if chunked:
        status, body, _ = post_chunked(server, path, [NESTED], headers)
    else:
        import requests

        answer = requests.post(server.url + path, data=NESTED, headers=headers, timeout=10)
        status, body = answer.status_code, answer.content
    assert status == 400, (status, body[:300])
    found = json.loads(body)
    assert found["error"] == "invalid_request" and "nested too deeply" in found["message"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_signed_body_nested_too_deeply_is_refused_by_name_on_every_marketplace_route(server, chunked):
    deep = b'{"activity":"newInstance","x":' + b"[" * 1100 + b"]" * 1100 + b"}"
    raw, query = g2_signed_request(KEY, deep)
    kit_raw, kit_headers = kit_signed_request(KIT_KEY, deep)
    for path, headers, body in (
        ("/produce?" + "&".join(f"{k}={v}" for k, v in query.items()), {}, raw),
        ("/produce/produceAPI/v2/tenantSync", kit_headers, kit_raw),
    ):
        if chunked:
            status, answer, _ = post_chunked(server, path, [body], {**headers, **JSON})
        else:
            reply = requests.post(server.url + path, data=body, headers=headers, timeout=10)
            status, answer = reply.status_code, reply.content
        found = json.loads(answer)
        assert status == 200 and found["resultCode"] == codes.INVALID_PARAM, (path, answer[:300])
        assert "nested" in found["resultMsg"], (path, found)


# --- in process: each blueprint's own limit, and the refusals' words -----------------------------------


@pytest.mark.parametrize(
    "path, setting",
    [
        ("/produce", "KOO_MAX_BODY_BYTES"),
        ("/license/produceAPI/v2/tenantSync", "KOO_KIT_MAX_BODY_BYTES"),
        ("/relay/v1/verify", "LICENSE_RELAY_MAX_BODY_BYTES"),
        ("/api/v1/usage", "API_MAX_BODY_BYTES"),
        ("/admin/login", "ADMIN_MAX_BODY_BYTES"),
        ("/logout", "LOGIN_MAX_BODY_BYTES"),
    ],
)
@pytest.mark.parametrize(
    "app_config",
    [
        {
            "KOO_MAX_BODY_BYTES": 1001,
            "KOO_KIT_MAX_BODY_BYTES": 1002,
            "LICENSE_RELAY_MAX_BODY_BYTES": 1003,
            "API_MAX_BODY_BYTES": 1004,
            "ADMIN_MAX_BODY_BYTES": 1005,
            "LOGIN_MAX_BODY_BYTES": 1006,
        }
    ],
)
def test_every_route_that_reads_a_body_has_its_own_limit(app, path, setting):
    from flask import request

    with app.test_request_context(path, method="POST", data=b"x"):
        app.preprocess_request()
        assert request.max_content_length == app.config[setting]


def test_the_kit_limit_is_max_content_length_unless_set(app):
    from isvapp.inbound import body_limits

    assert body_limits(app.extensions["isvapp"])["kit"] == app.config["MAX_CONTENT_LENGTH"] == 16 * MIB


def test_api_bodies_over_the_limit_or_not_an_object_are_refused_by_name(app):
    with app.app_context():
        bearer = apitokens.create_token("x", apitokens.ALL_SCOPES, "p-1")
    api, auth = app.test_client(), {"Authorization": f"Bearer {bearer}"}
    for path, headers in (("/api/v1/usage", auth), ("/relay/v1/activate", {})):
        big = api.post(path, data=b"[" + b" " * 70_000 + b"]", headers=headers)
        assert big.status_code == 413 and "over" in big.get_json()["message"], path
        for body, words in (
            (b"", "is empty"),
            (b"[1]", "must be a JSON object"),
            (b'{"a": 1, "a": 2}', 'repeats the key "a"'),
            (b"{nope", "not valid JSON"),
        ):
            refused = api.post(path, data=body, headers=headers)
            assert refused.status_code == 400 and words in refused.get_json()["message"], (path, body)


def broken_chunks(server, path, headers):
    """A chunked body whose second chunk size is not hex: the server's reader fails mid-body."""
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_WAIT_S) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"2\r\n{}\r\nzz\r\nabc\r\n0\r\n\r\n")
        raw = b""
        while True:
            part = sock.recv(65536)
            if not part:
                break
            raw += part
    return int(raw.split(b" ", 2)[1]), raw.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "path, expected",
    [("/relay/v1/activate", 400), ("/admin/login", 400), ("/produce?signature=00&timestamp=1&nonce=n", 200)],
)
def test_a_broken_chunked_body_is_a_clear_refusal_not_an_internal_error(server, path, expected):
    status, body = broken_chunks(server, path.replace("timestamp=1", f"timestamp={int(time.time() * 1000)}"), JSON)
    assert status == expected, (status, body[:300])
    if status == 200:
        answer = json.loads(body)
        assert answer["resultCode"] == codes.INVALID_PARAM and "body" in answer["resultMsg"], answer
    elif path.startswith("/relay"):
        assert "body" in json.loads(body)["message"]
