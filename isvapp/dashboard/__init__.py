"""The merchant's pages: every order, instance, license, tenant and callback, behind a login."""
