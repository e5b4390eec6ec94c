"""The baseline: a bare Flask app answering a constant on the same gunicorn settings as isvapp."""

from flask import Flask, Response

app = Flask(__name__)
BODY = b'{"resultCode":"000000","resultMsg":"success.","instanceId":"bare"}'


@app.route("/produce", methods=["GET", "POST"])
def produce():
    return Response(BODY, 200, content_type="application/json;charset=UTF-8")
