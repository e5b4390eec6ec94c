"""The other side of the wire: the marketplace's open-API client (openapi) that the merchant
calls, and the stand-ins that play the marketplace on loopback, the fake marketplace (fake) and
the simulator (simulator, the `isvapp-sim` command; a module per product suite).

The client uses only koo and isvapp.outbound's delivery rules. The stand-ins speak to isvapp
over HTTP as the real marketplace (and a tenant's IdP) would; they import koo to sign, and each
other, never the domain.
"""
