"""A marketplace simulator: plays KooGallery against any isvapp-compatible server.

    isvapp-sim https://isv.example.com --key KEY --kit-key KIT_KEY --kit-public-key kit_public.pem
    .venv/bin/isvapp simulate http://127.0.0.1:8000        # keys from this app's config

It runs the Seller Console's debugging cases (and more) with only the keys the merchant has, and
checks what the console checks, saying why a step failed: result code, required fields, Body-Sign,
that appInfo decrypts with the key, the same instanceId for a retried order, idempotent deletes,
and the 5 s answer time. Every request carries testFlag=1 unless told otherwise, and the
simulator's mark (isvapp.koo.simulated) always, so the server shows what it did as "simulated
here", never as the Seller Console's debugging. A suite the server cannot serve on its settings
(license-relay without the open API's AK/SK) is skipped with a line saying how to run it. It depends
on the protocol layer (isvapp.koo) and the standard library only, never on the server's database.

Suites (--suite, repeatable; default all): period, onetime, payperuse, trial, cancel, change
(changeInstanceCheck, orderNotify, refreshInstance RENEWAL_CHANGE), seller-console (two full
debugging rounds with the console's MOCK order ids, testFlag 1; round 2 must get a live, new
instance), kit, license-g1, license-2, license-relay (the installed software through /relay/v1,
with --license-code). change and seller-console are G2 suites.

    --probes     requests the server must refuse (bad signature, stale timestamp, replays ...)
    --tolerance  correctly signed but oddly shaped requests it must accept: a number where a
                 string is expected (signed over the string-map form), null and "" fields, a
                 17-digit expireTime, an unknown scene, text/plain or no Content-Type, /produce/,
                 over 100 queried ids, odd G1 parameters, odd Kit lists and the /license Kit path

A module per family of suites: client (sending and checking), g2, g1, license, relay, kit, probes; this
one chooses and runs them and holds the two commands.
"""

import json
import os
import sys
from dataclasses import asdict

import click
from cryptography.hazmat.primitives import serialization
from flask.cli import with_appcontext

from ...koo.generations import Generation
from .client import DEADLINE_S, Reply, Simulator, Step  # noqa: F401
from .g1 import g1_onetime, g1_payperuse, g1_period, g1_trial
from .g2 import g2_cancel, g2_change, g2_onetime, g2_payperuse, g2_period, g2_trial, seller_console
from .kit import kit
from .license import license_2, license_g1
from .probes import probes, tolerance
from .relay import license_relay

SUITES = (
    "period",
    "onetime",
    "payperuse",
    "trial",
    "cancel",
    "change",
    "seller-console",
    "kit",
    "license-g1",
    "license-2",
    "license-relay",
)

SHARED = {
    "kit": kit,
    "license-g1": license_g1,
    "license-2": license_2,  # one generation each
    "license-relay": license_relay,
}
G2_SAAS = {
    "period": g2_period,
    "onetime": g2_onetime,
    "payperuse": g2_payperuse,
    "trial": g2_trial,
    "cancel": g2_cancel,
    "change": g2_change,
    "seller-console": seller_console,
}


G1_SAAS = {"period": g1_period, "onetime": g1_onetime, "payperuse": g1_payperuse, "trial": g1_trial}


def run(sim, suites=SUITES, generation="g2", with_probes=False, with_tolerance=False):
    """Run the chosen suites; G1 has no cancel-renewal scene (G2's UNSUBSCRIBE_RENEWAL_PERIOD only),
    and change and seller-console are G2's. ``with_probes``: requests the server must refuse;
    ``with_tolerance``: odd but correctly signed requests it must accept."""
    g2, g1 = (Generation.G2, G2_SAAS), (Generation.G1, G1_SAAS)
    tables = {"g2": [g2], "g1": [g1], "both": [g2, g1]}
    for label, table in tables[generation]:
        for name in suites:
            if name in table:
                sim.scenario = f"{name} {label}"
                table[name](sim)
    for name in suites:
        if name in SHARED:
            sim.scenario = name
            SHARED[name](sim)
    if with_probes:
        sim.scenario = "negative probes"
        probes(sim)
    if with_tolerance:
        sim.scenario = "tolerance probes"
        tolerance(sim)
    return sim


def report(sim, as_json=False):
    """The table (or JSON) of steps; a suite that could not run here gets a line of its own,
    "skipped <suite>: why, and how to run it", and does not fail the run."""
    if as_json:
        return json.dumps(
            {
                "ok": not sim.failed,
                "steps": [asdict(s) for s in sim.steps],
                "skipped": [asdict(s) for s in sim.skipped],
            },
            ensure_ascii=False,
            indent=1,
        )
    rows = [("scenario", "step", "expected", "got", "ms", "")] + [
        (s.scenario, s.step, s.expected, s.got, f"{s.ms:.0f}", "ok" if s.ok else "FAIL: " + s.reason) for s in sim.steps
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows]
    lines += [f"skipped {s.scenario}: {s.reason}" for s in sim.skipped]
    lines.append(
        f"{len(sim.steps) - len(sim.failed)} of {len(sim.steps)} steps passed"
        + (f"; {len(sim.skipped)} suite(s) skipped (see above)" if sim.skipped else "")
    )
    return "\n".join(lines)


def simulate_options(function):
    options = [
        click.argument("base_url"),
        click.option(
            "--suite",
            "suites",
            multiple=True,
            type=click.Choice(SUITES),
            help="Scenario suite (repeatable); default: all.",
        ),
        click.option("--generation", type=click.Choice(["g2", "g1", "both"]), default="g2", show_default=True),
        click.option("--probes", is_flag=True, help="Also send requests the server must refuse."),
        click.option(
            "--tolerance",
            is_flag=True,
            help="Also send correctly signed but oddly shaped requests the server must accept.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
        click.option(
            "--test-flag",
            type=click.Choice(["1", "0"]),
            default="1",
            show_default=True,
            help="1 marks everything as test data; 0 sends it as real orders.",
        ),
        click.option(
            "--kit-public-key",
            type=click.Path(exists=True, dir_okay=False),
            help="The Kit public key (PEM) registered in the Seller Console, to encrypt clientSecret.",
        ),
        click.option(
            "--license-code",
            default="PLXXXXXX",
            show_default=True,
            help="The license code the license-relay suite activates (the console's test code).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def execute(
    base_url,
    key,
    kit_key,
    suites,
    generation,
    probes_,
    as_json,
    test_flag,
    kit_public_key,
    tolerance_=False,
    license_code="PLXXXXXX",
):
    if not key:
        raise click.UsageError("the basic Key is needed (--key or KOO_ACCESS_KEY)")
    public = open(kit_public_key, "rb").read() if kit_public_key else None
    sim = Simulator(base_url, key, kit_key, public, test_flag)
    sim.license_code = license_code
    sim = run(sim, suites or SUITES, generation, probes_, tolerance_)
    click.echo(report(sim, as_json))
    sys.exit(1 if sim.failed else 0)


@click.command("isvapp-sim")
@simulate_options
@click.option("--key", envvar="KOO_ACCESS_KEY", help="The basic Key (or $KOO_ACCESS_KEY).")
@click.option("--kit-key", envvar="KOO_KIT_ACCESS_KEY", help="The Kit key (or $KOO_KIT_ACCESS_KEY; default: --key).")
def main(
    base_url, suites, generation, probes, tolerance, as_json, test_flag, kit_public_key, license_code, key, kit_key
):
    """Play the KooGallery marketplace against BASE_URL (e.g. https://isv.example.com).

    Suites: period, onetime, payperuse, trial, cancel, change (changeInstanceCheck, orderNotify,
    RENEWAL_CHANGE), seller-console (two debugging rounds with the console's MOCK orders), kit,
    license-g1, license-2, license-relay. --probes: requests to refuse; --tolerance: odd ones to accept."""
    execute(
        base_url, key, kit_key, suites, generation, probes, as_json, test_flag, kit_public_key, tolerance, license_code
    )


@click.command("simulate")
@simulate_options
@with_appcontext
def simulate_command(base_url, suites, generation, probes, tolerance, as_json, test_flag, kit_public_key, license_code):
    """Play the marketplace against BASE_URL with this app's keys (see also isvapp-sim).

    Suites and options as isvapp-sim: seller-console repeats the console's debugging rounds,
    --tolerance sends correctly signed odd requests the server must accept."""
    from flask import current_app

    settings = current_app.extensions["isvapp"]
    if kit_public_key is None:
        public = kit_public_key_pem(settings)
        if public is not None:
            kit_public_key = os.path.join(current_app.instance_path, "kit_public.pem")
            with open(kit_public_key, "wb") as f:
                f.write(public)
    execute(
        base_url,
        settings.access_key,
        settings.kit_access_key,
        suites,
        generation,
        probes,
        as_json,
        test_flag,
        kit_public_key,
        tolerance,
        license_code,
    )


def kit_public_key_pem(settings):
    """The public half of this app's Kit key (KOO_KIT_RSA_PRIVATE_KEY), as the Seller Console
    holds it, or None when there is no key file yet (`kit-keygen` makes it)."""
    path = settings.kit_rsa_private_key
    if not path or not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), None)
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
