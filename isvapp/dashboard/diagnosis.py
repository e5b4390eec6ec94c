"""Why a callback failed, in plain words: one fixed sentence per cause, never free text.

The merchant reads these on a failed callback's page and on the go-live checklist. Causes are
recognised from the result code and the message isvapp itself wrote (the protocol layer's
messages are stable), most specific first. Sentences are English here and translated on the
pages like every other text.
"""

from ..koo import codes

# (cause, result code, words in resultMsg or None, what to do)
CAUSES = [
    (
        "wrong_key",
        codes.AUTH_FAILED,
        ("does not match",),
        "The Key in isvapp does not match the Seller Console's Key for this product: copy the Key shown in "
        "the Seller Console into KOO_ACCESS_KEY (KOO_KIT_ACCESS_KEY for Kit sync) and restart.",
    ),
    (
        "unsigned",
        codes.AUTH_FAILED,
        ("is missing",),
        "The request carried no signature: it did not come from the marketplace, or a proxy dropped the "
        "query string or headers on the way (check nginx's proxy_pass).",
    ),
    (
        "replayed",
        codes.AUTH_FAILED,
        ("used before",),
        "A different request reused an earlier nonce: a replay, not the marketplace. Nothing was changed.",
    ),
    (
        "ambiguous_g1",
        codes.AUTH_FAILED,
        ("ambiguous",),
        "A G1 parameter held '&name=', so the signature could be read as other parameters: refused as an attack.",
    ),
    (
        "clock",
        codes.INVALID_PARAM,
        ("window",),
        "The request's time is too far from this server's clock: turn on time synchronisation (NTP, "
        "e.g. chrony) on this server.",
    ),
    (
        "bad_timestamp",
        codes.INVALID_PARAM,
        ("Unix milliseconds", "must be a time"),
        "The timestamp was not in the marketplace's form: the request did not come from the marketplace.",
    ),
    (
        "too_large",
        codes.INVALID_PARAM,
        ("larger than",),
        "The body was larger than this interface takes (KOO_MAX_BODY_BYTES, or KOO_KIT_MAX_BODY_BYTES for Kit).",
    ),
    (
        "not_here",
        codes.INVALID_PARAM,
        ("no marketplace interface", "not supported"),
        "The address or activity is not one isvapp serves: check the production URL registered in the "
        "Seller Console (https://<your domain>/produce, or /license for License products).",
    ),
    (
        "bad_field",
        codes.INVALID_PARAM,
        None,
        "A field the activity needs was missing or unusable; the message names it. If the marketplace "
        "really sent this, keep the callback and report it: isvapp should accept it.",
    ),
    (
        "no_instance",
        codes.INSTANCE_NOT_FOUND,
        None,
        "The instance is not known to this server (never created here, or released): check that the "
        "Seller Console points at this server and that the database was not replaced.",
    ),
    (
        "change_refused",
        codes.NO_RESOURCES,
        None,
        "Your provisioner's change_allowed refused this change; the message is its reason.",
    ),
    (
        "kit_secret",
        codes.APP_SECRET_ERROR,
        None,
        "The Kit clientSecret could not be decrypted: the public key in the Seller Console is not the one "
        "isvapp holds. Run `.venv/bin/isvapp kit-keygen` and paste the public key it prints.",
    ),
    (
        "database",
        codes.INTERNAL_ERROR,
        ("database",),
        "The database was busy or could not be written (disk full, read-only, locked by another "
        "program): check free disk space and that nothing else holds the database.",
    ),
    (
        "not_configured",
        codes.INTERNAL_ERROR,
        ("not configured",),
        "A key is not configured on this server: set KOO_ACCESS_KEY (and KOO_KIT_ACCESS_KEY for Kit).",
    ),
    (
        "internal",
        codes.INTERNAL_ERROR,
        None,
        "isvapp failed while answering: the server's log at this time has the details.",
    ),
]
SENTENCES = {cause: sentence for cause, _, _, sentence in CAUSES}


def explain(result_code, result_msg):
    """(cause, sentence) for a failed answer; None for a success or an unknown code."""
    if not result_code or result_code == codes.SUCCESS:
        return None
    message = result_msg or ""
    for cause, code, words, sentence in CAUSES:
        if code == result_code and (words is None or any(w in message for w in words)):
            return cause, sentence
    return None
