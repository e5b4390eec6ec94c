"""The verification examples of docs/license-documents.md, run against isvapp's own documents.

Each example's code block is taken from the document as it stands, its public key replaced by a
test key's, and run with a small driver on: a good document, one with no end (a one-time
purchase), an expired one, one whose claims were altered, one signed by another key, one in the
old ISVLIC1 format, and a good one again (so the refusals are not a verifier that refuses
everything). A language whose toolchain or library is not on this machine is skipped with the
reason.
"""

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from isvapp.koo import jose, licensedoc

pytestmark = pytest.mark.live  # every test here starts a server, a process or a browser

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "license-documents.md"
DOC_ZH = ROOT / "docs" / "license-documents.zh-CN.md"
TIMEOUT = 120
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
PEM_BODY = re.compile(r"-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=]+\n-----END PUBLIC KEY-----")
GOOD = {"good", "no_end", "good_again"}


def blocks(path):
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(path.read_text(encoding="utf-8"))]


def example(language):
    found = [code for tag, code in blocks(DOC) if tag == language]
    assert len(found) == 1, f"docs/license-documents.md should have one ```{language} block, has {len(found)}"
    return found[0]


def with_key(source, key):
    """The example with the documented public key replaced by ``key``'s (PEM and JWK alike)."""
    pem = licensedoc.public_key_pem(key).strip()
    source, pems = PEM_BODY.subn(lambda _: pem, source)
    source, xs = re.subn(
        r'\\"x\\": \\"[A-Za-z0-9_-]+\\"', lambda _: f'\\"x\\": \\"{jose.jwks(key)["keys"][0]["x"]}\\"', source
    )
    assert pems + xs == 1, "the example should hold its public key once"
    return source


def payload(**times):
    return {
        "license": "lic-0001",
        "instance": "inst-42",
        "order": "CS0001",
        "product": "prod-7",
        "issued": "2026-12-04T00:00:00Z",
        **times,
    }


@pytest.fixture(scope="module")
def key():
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def documents(key):
    good = licensedoc.sign_document(key, payload(effective="2026-12-04T00:00:00Z", expires="2031-01-01T00:00:00Z"))
    header, body, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["product"] = "prod-8"
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    legacy_body = base64.urlsafe_b64encode(json.dumps(payload(), separators=(",", ":")).encode()).rstrip(b"=")
    legacy = b"ISVLIC1." + legacy_body
    legacy += b"." + base64.urlsafe_b64encode(key.sign(legacy)).rstrip(b"=")
    return {
        "good": good,
        "no_end": licensedoc.sign_document(key, payload()),
        "expired": licensedoc.sign_document(key, payload(expires="2026-01-01T00:00:00Z")),
        "altered": f"{header}.{altered}.{signature}",
        "other_key": licensedoc.sign_document(Ed25519PrivateKey.generate(), payload(expires="2031-01-01T00:00:00Z")),
        "legacy": legacy.decode(),
        "good_again": good,
    }


def run(args, cwd):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


def check_outcomes(proc, documents):
    assert proc.returncode == 0, proc.stderr
    outcomes = {o["case"]: o for o in map(json.loads, proc.stdout.splitlines())}
    assert set(outcomes) == set(documents), proc.stdout
    for case, outcome in outcomes.items():
        assert outcome["ok"] is (case in GOOD), f"{case}: {outcome}"
    assert outcomes["good"]["claims"]["product"] == "prod-7" and outcomes["good"]["claims"]["sub"] == "inst-42"


def write_documents(folder, documents):
    path = folder / "documents.json"
    path.write_text(json.dumps(list(documents.items())))
    return path


def test_the_two_documents_are_twins():
    english, chinese = DOC.read_text(encoding="utf-8"), DOC_ZH.read_text(encoding="utf-8")
    assert blocks(DOC) == blocks(DOC_ZH), "code blocks are not identical"
    prose = [re.findall(r"^(#{1,6}) ", FENCE.sub("", text), re.M) for text in (english, chinese)]
    assert prose[0] == prose[1], "headings differ"


def test_isvapps_own_verifier_reads_every_genuine_document_old_and_new(key, documents):
    for case in ("good", "no_end", "expired", "legacy"):  # it checks signatures; times are the software's
        assert licensedoc.verify_document(licensedoc.public_key_pem(key), documents[case])["instance"] == "inst-42"
    for case in ("altered", "other_key"):
        with pytest.raises(ValueError):
            licensedoc.verify_document(licensedoc.public_key_pem(key), documents[case])


PY_DRIVER = """\
import json, sys
from license_verify import verify_license
for case, document in json.load(open(sys.argv[1])):
    try:
        print(json.dumps({"case": case, "ok": True, "claims": verify_license(document)}))
    except Exception as exc:
        print(json.dumps({"case": case, "ok": False, "error": f"{type(exc).__name__}: {exc}"}))
"""


def test_python_example(tmp_path, key, documents):
    (tmp_path / "license_verify.py").write_text(with_key(example("python"), key))
    (tmp_path / "driver.py").write_text(PY_DRIVER)
    check_outcomes(run([sys.executable, "driver.py", str(write_documents(tmp_path, documents))], tmp_path), documents)


JS_DRIVER = """\
import { readFileSync } from 'node:fs';
import { verifyLicense } from './license_verify.mjs';
for (const [kase, document] of JSON.parse(readFileSync(process.argv[2], 'utf8'))) {
  try {
    console.log(JSON.stringify({ case: kase, ok: true, claims: await verifyLicense(document) }));
  } catch (err) {
    console.log(JSON.stringify({ case: kase, ok: false, error: `${err.name}: ${err.message}` }));
  }
}
"""


def test_node_example(tmp_path, key, documents):
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not on PATH")
    (tmp_path / "package.json").write_text('{"name": "license-example", "private": true}')
    install = run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", "jose"], tmp_path)
    if install.returncode != 0:
        pytest.skip(f"npm install jose failed: {install.stderr.strip()[-500:]}")
    (tmp_path / "license_verify.mjs").write_text(with_key(example("javascript"), key))
    (tmp_path / "driver.mjs").write_text(JS_DRIVER)
    check_outcomes(run(["node", "driver.mjs", str(write_documents(tmp_path, documents))], tmp_path), documents)


@pytest.mark.parametrize("language", ["java", "go"])
def test_the_java_and_go_examples_hold_their_key_once(language, key):
    """Java's nimbus-jose-jwt with tink and Go's golang-jwt are neither in Debian's packages nor
    reachable from here, so these two are not run: only that each holds the key once, where the
    merchant pastes theirs."""
    held = {"java": jose.jwks(key)["keys"][0]["x"], "go": licensedoc.public_key_pem(key).strip()}[language]
    assert held in with_key(example(language), key)
