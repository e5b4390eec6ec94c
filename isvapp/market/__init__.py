"""The other side of the wire: the marketplace's open-API client (openapi) that the merchant
calls and the tenants' identity providers' client (idp) that the buyer's login calls, and the
stand-ins that play them on loopback: the fake marketplace (fake), the fake IdP (fakeidp) and
the simulator (simulator, the `isvapp-sim` command; a module per product suite).

The client uses only koo and isvapp.outbound's delivery rules. The stand-ins speak to isvapp
over HTTP as the real marketplace (and a tenant's IdP) would; they import koo to sign, each other,
and (the fake IdP's command) the synced apps and users in storage; never the domain.
"""
