"""The marketplace's protocol generations, and the replay store's scopes, as values.

A generation is stored on every instance and callback row (``instances.generation``,
``callbacks.generation``) and sent in provisioning webhooks, so the values are the exact strings
stored since the first release: both enums are ``StrEnum``, whose members are those strings
(``==``, ``json.dumps``, ``str()``, f-strings and database binds all see the plain text). A row
read back holds a plain ``str``; ``Generation(row.generation)`` gives its properties.

Code asks a generation what it is (``is_license``, ``signing``) instead of comparing its spelling,
so the rules live here once (tests/test_generations.py keeps spellings out of the rest of isvapp).
"""

from __future__ import annotations

import enum


class Generation(enum.StrEnum):
    """The protocol generation an order arrived by (docs/protocol.md)."""

    G1 = "G1"  # SaaS: GET /produce with authToken
    G2 = "G2"  # SaaS: POST /produce with signature/timestamp/nonce
    LIC1 = "LIC1"  # License-G1: GET /license, G1 signing
    LIC2 = "LIC2"  # License-2.0: POST /license, G2 signing

    @property
    def is_license(self) -> bool:
        """A license product's order: its answer carries license documents."""
        return self in (Generation.LIC1, Generation.LIC2)

    @property
    def product_type(self) -> str:
        """The instance's ``product_type`` column: "license" or "saas"."""
        return "license" if self.is_license else "saas"

    @property
    def signing(self) -> Generation:
        """G1 or G2: whose signing, time window and order shape this generation uses."""
        return Generation.G1 if self in (Generation.G1, Generation.LIC1) else Generation.G2

    @property
    def fetches_order_details(self) -> bool:
        """A G2-signed order carries no details: they are fetched from the order-query API after it
        (G1-signed orders carry them inline)."""
        return self.signing is Generation.G2


class ReplayScope(enum.StrEnum):
    """The replay store's scope of a verified request (``signed_requests.scope``); its value also
    starts the replay token, so a spelling changed here would let old requests be obeyed again."""

    G2 = "g2"  # a G2 (or License-2.0) request: nonce + timestamp
    KIT = "kit"  # a G2 Kit request (x-sign headers)
    G1 = "g1"  # a G1 (or License-G1) request: its authToken
    G1_KIT = "g1kit"  # a G1 Kit request: its authToken header

    @property
    def is_kit(self) -> bool:
        """A Kit request: verified with the Kit's own key (kit_access_key)."""
        return self in (ReplayScope.KIT, ReplayScope.G1_KIT)

    @property
    def signing(self) -> Generation:
        """G1 or G2: whose time window an entry must outlive (background.maintenance)."""
        return Generation.G1 if self in (ReplayScope.G1, ReplayScope.G1_KIT) else Generation.G2
