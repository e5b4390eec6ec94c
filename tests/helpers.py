"""What several test modules share: keys, order bodies, answer checks, the Marketplace that plays the
other side against the test client, and small local stand-ins (chat robots, a mailbox).

Fixtures live in conftest.py; live processes in live.py. A test module imports from these, never
from another test module (tests/test_imports.py checks it).
"""

import email
import email.policy
import json
import re
import time
import uuid

from werkzeug.wrappers import Request, Response

KEY = "a1b2c3d4-0000-1111-2222-333344445555"  # the reference's made-up key


# --- G2 orders --------------------------------------------------------------------------------------


def new_order(order="CS2211181819B4LVS", line=None, business=None, test_flag="0"):
    return {
        "activity": "newInstance",
        "orderId": order,
        "orderLineId": line or f"{order}-000001",
        "businessId": business or str(uuid.uuid4()),
        "testFlag": test_flag,
    }


# --- the merchant's pages ---------------------------------------------------------------------------


PASSWORD = "correct horse battery"


def token(html):
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client, name="boss", password=PASSWORD):
    page = client.get("/admin/login").get_data(as_text=True)
    return client.post("/admin/login", data={"name": name, "password": password, "csrf_token": token(page)})


# --- alert channels: the chat robots and a mailbox, served locally ---------------------------------


WECOM_KEY = "wecom-key-0123456789abcdef"
DING_TOKEN = "ding-token-0123456789abcdef"
DING_SECRET = "SECding0123456789abcdefsecret"
FEISHU_HOOK = "feishu-hook-0123456789abcdef"
FEISHU_SECRET = "feishu-secret-0123456789"


class Robots:
    """WeCom, DingTalk and Feishu on one local server: records each POST, answers from a script."""

    def __init__(self):
        self.received = {"wecom": [], "dingtalk": [], "feishu": []}
        self.script = {"wecom": [], "dingtalk": [], "feishu": []}  # answers to give before the ok one

    OK = {
        "wecom": {"errcode": 0, "errmsg": "ok"},
        "dingtalk": {"errcode": 0, "errmsg": "ok"},
        "feishu": {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {}, "msg": "success"},
    }

    def __call__(self, environ, start_response):
        request = Request(environ)
        channel = request.path.strip("/").split("/")[0]
        self.received[channel].append(
            {
                "path": request.path,
                "args": request.args.to_dict(),
                "json": json.loads(request.get_data()),
                "content_type": request.content_type,
                "at": time.time(),
            }
        )
        answer = self.script[channel].pop(0) if self.script[channel] else self.OK[channel]
        if isinstance(answer, int):
            return Response("boom", answer)(environ, start_response)
        return Response(json.dumps(answer), 200, content_type="application/json")(environ, start_response)


def robot_config(robots):
    return {
        "ALERT_WECOM_URL": f"{robots.base}/wecom/cgi-bin/webhook/send?key={WECOM_KEY}",
        "ALERT_DINGTALK_URL": f"{robots.base}/dingtalk/robot/send?access_token={DING_TOKEN}",
        "ALERT_DINGTALK_SECRET": DING_SECRET,
        "ALERT_FEISHU_URL": f"{robots.base}/feishu/open-apis/bot/v2/hook/{FEISHU_HOOK}",
        "ALERT_FEISHU_SECRET": FEISHU_SECRET,
        "JOB_RETRY_BASE_S": 0,
    }


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  aiosmtpd's hook name
        self.messages.append(
            (
                envelope.mail_from,
                list(envelope.rcpt_tos),
                email.message_from_bytes(envelope.content, policy=email.policy.default),
            )
        )
        return "250 OK"
