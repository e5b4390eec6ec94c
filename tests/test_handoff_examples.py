"""The verification examples of docs/handoff.md, run for real against isvapp's own assertions.

Each example's code block is taken from the document as it stands, its ISSUER and APP_ID set to a
JWK Set served on 127.0.0.1, and run with a small driver that verifies, in order: a good token,
the same token again (a replay), an expired one, one for another audience, one from another
issuer, one signed by another key, one signed by another key under the real key's kid, and a
second good token (so the refusals are not a verifier that refuses everything). A language whose toolchain or library is not on this machine is skipped
with the reason.
"""

import base64
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from isvapp.domain import handoff
from isvapp.koo import jose

from .tiers import live_fixture

pytestmark = pytest.mark.any_database  # verifiers in other languages, against the hand-off's signatures

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "handoff.md"
DOC_ZH = ROOT / "docs" / "handoff.zh-CN.md"
APP_ID = "app-under-test"
TIMEOUT = 60
CASES = ["good", "replay", "expired", "other_audience", "other_issuer", "other_key", "forged_kid", "good_again"]

TENANT = {"id": "t-0001", "code": "acme", "name": "Acme Ltd"}
USER = {"userName": "alice", "name": "Alice", "role": "admin", "organizationCode": "org-1"}
INSTANCE = {
    "id": "inst-42",
    "state": "ACTIVE",
    "expireTime": "2031-01-01T00:00:00Z",
    "productId": "prod-7",
    "skuCode": "sku-basic",
}

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)


# --- the document ----------------------------------------------------------------------------------


def fenced_blocks(text):
    """(language tag, content) of each fenced block."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(text)]


def example(language):
    blocks = [code for tag, code in fenced_blocks(DOC.read_text(encoding="utf-8")) if tag == language]
    assert len(blocks) == 1, f"docs/handoff.md should have exactly one ```{language} block, has {len(blocks)}"
    return blocks[0]


def configured(source, issuer, app_id):
    """The example with its ISSUER and APP_ID constants set to these values."""
    for name, value in (("ISSUER", issuer), ("APP_ID", app_id)):
        pattern = re.compile(rf"(\b{name}\b[^=\n]*=\s*)([\"'])[^\"'\n]*\2")
        source, count = pattern.subn(lambda m, v=value: f"{m.group(1)}{m.group(2)}{v}{m.group(2)}", source, count=1)
        assert count == 1, f"no {name} constant with a string value in the example"
    return source


def headings(text):
    prose = FENCE.sub("", text)
    return [len(m.group(1)) for m in re.finditer(r"^(#{1,6}) ", prose, re.M)]


def test_the_two_handoff_documents_are_twins():
    english, chinese = DOC.read_text(encoding="utf-8"), DOC_ZH.read_text(encoding="utf-8")
    assert headings(english) and headings(chinese) == headings(english), "headings differ (levels, in order)"
    assert fenced_blocks(chinese) == fenced_blocks(english), "code blocks are not identical"
    assert [tag for tag, _ in fenced_blocks(english)] == ["python", "javascript", "java", "go"]
    assert english.splitlines()[2] == "[中文](handoff.zh-CN.md)"
    assert chinese.splitlines()[2] == "[English](handoff.md)"


# --- the issuer: a JWK Set on 127.0.0.1, and tokens ------------------------------------------------


@live_fixture(scope="module")
def issuer():
    """(issuer URL, signing key), with the key's JWK Set served at <issuer>/.well-known/jwks.json."""
    key = Ed25519PrivateKey.generate()
    body = json.dumps(jose.jwks(key)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/.well-known/jwks.json":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", key
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def tokens(issuer):
    url, key = issuer

    def sign(signing_key=key, iss=url, aud=APP_ID, now=None):
        return handoff.sign_assertion(
            signing_key, issuer=iss, audience=aud, tenant=TENANT, user=USER, instance=INSTANCE, now=now
        )

    def forged():
        """Signed by another key but naming the real key's kid: only the signature check refuses it."""
        claims = json.loads(_payload(sign()))
        return jwt.encode(
            claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": jose.key_id(key), "typ": "JWT"}
        )

    good = sign()
    return {
        "good": good,
        "replay": good,
        "expired": sign(now=time.time() - 120),
        "other_audience": sign(aud="another-app"),
        "other_issuer": sign(iss="https://other.example.com"),
        "other_key": sign(signing_key=Ed25519PrivateKey.generate()),
        "forged_kid": forged(),
        "good_again": sign(),
    }


def run(command, cwd, env=None):
    try:
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(map(str, command))} took more than {TIMEOUT} s: {exc.stderr}")


def check_outcomes(proc, tokens):
    """The driver prints one JSON line per case: {"case", "ok", "claims" or "error"}."""
    assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    outcomes = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            outcome = json.loads(line)
            outcomes[outcome["case"]] = outcome
    assert list(outcomes) == CASES, f"driver output:\n{proc.stdout}\n{proc.stderr}"
    for case in ("good", "good_again"):
        assert outcomes[case]["ok"], f"{case} token refused: {outcomes[case].get('error')}"
        claims = outcomes[case]["claims"]
        assert claims["user"]["userName"] == USER["userName"]
        assert claims["instance"]["id"] == INSTANCE["id"]
        assert claims["sub"] == f"{TENANT['id']}/{USER['userName']}"
        assert claims["jti"] == json.loads(_payload(tokens[case]))["jti"]
    for case in ("replay", "expired", "other_audience", "other_issuer", "other_key", "forged_kid"):
        assert not outcomes[case]["ok"], f"{case} token was accepted"
        assert outcomes[case]["error"], f"{case} refused without a reason"


def _payload(token):
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def write_tokens(tmp_path, tokens):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps([[case, tokens[case]] for case in CASES]))
    return path


# --- Python ----------------------------------------------------------------------------------------

PY_DRIVER = """\
import json, sys
from handoff_verify import verify
for case, token in json.load(open(sys.argv[1])):
    try:
        print(json.dumps({"case": case, "ok": True, "claims": verify(token)}))
    except Exception as exc:
        print(json.dumps({"case": case, "ok": False, "error": f"{type(exc).__name__}: {exc}"}))
"""


def test_python_example(tmp_path, issuer, tokens):
    (tmp_path / "handoff_verify.py").write_text(configured(example("python"), issuer[0], APP_ID))
    (tmp_path / "driver.py").write_text(PY_DRIVER)
    proc = run([sys.executable, "driver.py", str(write_tokens(tmp_path, tokens))], cwd=tmp_path)
    check_outcomes(proc, tokens)


# --- Node (jose) -----------------------------------------------------------------------------------

JS_DRIVER = """\
import { readFileSync } from 'node:fs';
import { verify } from './handoff_verify.mjs';
for (const [kase, token] of JSON.parse(readFileSync(process.argv[2], 'utf8'))) {
  try {
    console.log(JSON.stringify({ case: kase, ok: true, claims: await verify(token) }));
  } catch (err) {
    console.log(JSON.stringify({ case: kase, ok: false, error: `${err.name}: ${err.message}` }));
  }
}
"""


def test_node_example(tmp_path, issuer, tokens):
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not on PATH")
    (tmp_path / "package.json").write_text('{"name": "handoff-example", "private": true}')
    install = run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "jose"], cwd=tmp_path)
    if install.returncode != 0:
        pytest.skip(f"npm install jose failed: {install.stderr.strip()[-500:]}")
    (tmp_path / "handoff_verify.mjs").write_text(configured(example("javascript"), issuer[0], APP_ID))
    (tmp_path / "driver.mjs").write_text(JS_DRIVER)
    proc = run(["node", "driver.mjs", str(write_tokens(tmp_path, tokens))], cwd=tmp_path)
    check_outcomes(proc, tokens)


# --- Java (nimbus-jose-jwt) ------------------------------------------------------------------------

JAVA_DRIVER = """\
import java.nio.file.Files;
import java.nio.file.Path;

public class Driver {
    public static void main(String[] args) throws Exception {
        for (String line : Files.readAllLines(Path.of(args[0]))) {
            String[] caseAndToken = line.split(" ", 2);
            String outcome;
            try {
                outcome = "\\"ok\\": true, \\"claims\\": " + HandoffVerifier.verify(caseAndToken[1]).toString();
            } catch (Exception e) {
                String error = (e.getClass().getSimpleName() + ": " + e.getMessage()).replaceAll("[\\"\\\\\\\\]", "'");
                outcome = "\\"ok\\": false, \\"error\\": \\"" + error + "\\"";
            }
            System.out.println("{\\"case\\": \\"" + caseAndToken[0] + "\\", " + outcome + "}");
        }
    }
}
"""


def java_classpath():
    """The local nimbus-jose-jwt jar (and tink, jcip if there), or None."""
    nimbus = sorted(glob.glob("/usr/share/java/nimbus-jose-jwt*.jar"))
    if not nimbus:
        return None, False
    extra = [sorted(glob.glob(f"/usr/share/java/{name}*.jar")) for name in ("tink", "jcip-annotations")]
    tink = bool(extra[0])
    return ":".join([nimbus[-1]] + [jars[-1] for jars in extra if jars]), tink


def test_java_example(tmp_path, issuer, tokens):
    if not (shutil.which("java") and shutil.which("javac")):
        pytest.skip("java/javac are not on PATH")
    classpath, tink = java_classpath()
    if classpath is None:
        policy = (
            subprocess.run(
                ["apt-cache", "policy", "libnimbus-jose-jwt-java"], capture_output=True, text=True, timeout=TIMEOUT
            ).stdout.strip()
            if shutil.which("apt-cache")
            else ""
        )
        pytest.skip(
            "no nimbus-jose-jwt jar under /usr/share/java (Debian has no libnimbus-jose-jwt-java"
            f"{': ' + policy if policy else ''}) and Maven Central is not reachable, so the Java "
            "example can be neither compiled nor run"
        )
    (tmp_path / "HandoffVerifier.java").write_text(configured(example("java"), issuer[0], APP_ID))
    (tmp_path / "Driver.java").write_text(JAVA_DRIVER)
    compiled = run(
        ["javac", "-cp", classpath, "-d", str(tmp_path), "HandoffVerifier.java", "Driver.java"], cwd=tmp_path
    )
    assert compiled.returncode == 0, f"the Java example does not compile:\n{compiled.stderr}"
    if not tink:
        pytest.skip("the Java example compiles, but no tink jar (Ed25519 for nimbus) is here to run it")
    lines = tmp_path / "tokens.txt"
    lines.write_text("".join(f"{case} {tokens[case]}\n" for case in CASES))
    proc = run(["java", "-cp", f"{classpath}:{tmp_path}", "Driver", str(lines)], cwd=tmp_path)
    check_outcomes(proc, tokens)


# --- Go (golang-jwt + keyfunc) ---------------------------------------------------------------------

GO_DRIVER = """\
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var cases [][2]string
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	for _, c := range cases {
		out := map[string]any{"case": c[0]}
		if claims, err := verify(c[1]); err != nil {
			out["ok"], out["error"] = false, err.Error()
		} else {
			out["ok"], out["claims"] = true, claims
		}
		line, _ := json.Marshal(out)
		fmt.Println(string(line))
	}
}
"""

GO_MOD = """\
module handoffexample

go 1.21

require (
	github.com/MicahParks/keyfunc/v3 v3.3.5
	github.com/golang-jwt/jwt/v5 v5.2.1
)
"""


def test_go_example(tmp_path, issuer, tokens):
    if not shutil.which("go"):
        pytest.skip("go is not on PATH")
    source = configured(example("go"), issuer[0], APP_ID)
    source, count = re.subn(r"^package \w+", "package main", source, count=1, flags=re.M)
    assert count == 1, "the Go example has no package clause"
    (tmp_path / "handoff.go").write_text(source)
    (tmp_path / "main.go").write_text(GO_DRIVER)
    (tmp_path / "go.mod").write_text(GO_MOD)
    env = {**os.environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    tidy = run(["go", "mod", "tidy"], cwd=tmp_path, env=env)
    if tidy.returncode != 0:
        pytest.skip(
            "github.com/golang-jwt/jwt/v5 and github.com/MicahParks/keyfunc/v3 are not in the local "
            f"module cache and the Go proxy is not reachable: {tidy.stderr.strip()[-300:]}"
        )
    proc = run(["go", "run", ".", str(write_tokens(tmp_path, tokens))], cwd=tmp_path, env=env)
    check_outcomes(proc, tokens)
