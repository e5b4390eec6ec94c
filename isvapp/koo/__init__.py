"""The KooGallery protocol, pure: signing, crypto, envelopes, schemas. No Flask, no database.

Everything here works on bytes, strings and dicts so it can be checked against the reference's
test vectors in isolation and reused by the simulator, which plays the marketplace side.
"""
