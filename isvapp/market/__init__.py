"""The other side of the wire, as isvapp reaches it: the marketplace's open-API client (openapi)
that the merchant calls and the tenants' identity providers' client (idp) that the buyer's login
calls. The stand-ins that play them on loopback are in isvapp/standins, outside the runtime.

The clients use only koo and isvapp.outbound's delivery rules.
"""
