"""The stand-ins: tools that play the other side on loopback, for development and the tests. None
of them runs in production, and nothing the production app imports imports them
(tests/test_imports.py checks both).

    fakemarket/   the marketplace's open API (`isvapp fake-market`)
    fakeidp/      a tenant's identity provider, for the buyer's login (`isvapp fake-idp`)
    simulator/    the marketplace's callbacks, suite by suite (`isvapp-sim`, `isvapp simulate`,
                  `isvapp fake-idp-tenant`)

They speak to isvapp over HTTP, as the marketplace and a tenant's IdP do. They import the protocol
(koo), the open API's paths (market.openapi), each other (the simulator runs the fake IdP for its
login) and, for `isvapp fake-idp`, the synced apps and users in storage: never the domain.
"""
