"""The tenant's identity provider, as an OAuth 2.0 client: the buyer's login for joint-operation
(联营) products (docs/protocol.md, "The buyer's login").

The IdP lives at the ``domainName`` tenantSync sent (a OneAccess-style IdP; Huawei's pages
zh-cn_topic_0070649123 oAuth2.0协议API and zh-cn_topic_0070649142 OAuth获取AccessToken):

    GET  {domain}/api/v1/oauth2/authorize   response_type=code, client_id, redirect_uri, scope, state
    POST {domain}/api/v1/oauth2/token       form: client_id, client_secret, code | refresh_token, grant_type
    GET  {domain}/api/v1/oauth2/userinfo    Authorization: Bearer, Accept: application/json

The protocol's pieces (the authorize URI, the token request's form, PKCE's S256 challenge) are
Authlib's; the HTTP goes out under isvapp.outbound's rules (https, or plain http to this host
only; the certificate verified; no redirects; one total deadline), because an IdP that redirected
the token request would carry the client secret to a host nobody registered.
"""

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from .. import outbound

AUTHORIZE_PATH = "/api/v1/oauth2/authorize"
TOKEN_PATH = "/api/v1/oauth2/token"
USERINFO_PATH = "/api/v1/oauth2/userinfo"
LOGOUT_PATH = "/api/v1/logout"
SCOPE = "get_user_info"
ANSWER_LIMIT = 256 * 1024  # a token or user info answer is well under a KiB
USER_FIELDS = ("userName", "name", "tenant", "organizationCode", "role")


class IdpError(Exception):
    """A login step the IdP did not complete: ``kind`` is "config", "network", "refused" (an
    OAuth error answer), or "garbage" (not the documented JSON); the message says which."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Client:
    base_url: str  # https://{domainName}
    client_id: str
    client_secret: str
    redirect_uri: str
    timeout_s: float = 5.0
    allow_loopback: bool = False  # LOGIN_ALLOW_LOOPBACK_IDP: the fake IdP on this host, for development


def base_url(domain_name, allow_loopback=False):
    """``domainName`` as tenantSync sends it, a bare host or a URL, as an https base.

    The host comes from the tenant's data and the login sends the app's client secret there, so
    it must be a public https host: not an IP address, not this host, not the private network
    (the address a name resolves to is checked again when connecting: ``peer_allowed``).
    ``allow_loopback`` (LOGIN_ALLOW_LOOPBACK_IDP, for development): this host too, over plain http."""
    text = (domain_name or "").strip().rstrip("/")
    if not text:
        raise IdpError("config", "the tenant has no domainName (tenantSync did not send one)")
    url = text if "://" in text else f"https://{text}"
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  a port that is not a number raises here
    except ValueError:
        raise IdpError("config", f"the tenant's domainName {text!r} is not a host name") from None
    if parts.path or parts.query or parts.fragment or not host:
        raise IdpError("config", f"the tenant's domainName {text!r} is not a host name")
    if allow_loopback and outbound.is_loopback(host):
        if parts.scheme not in ("http", "https"):
            raise IdpError("config", f"the tenant's domainName {text!r} is not an http(s) URL")
    elif parts.scheme != "https":
        raise IdpError("config", f"the tenant's domainName {text!r} is not https")
    elif outbound.is_loopback(host) or host.endswith(".localhost"):
        raise IdpError(
            "config",
            f"the tenant's domainName {text!r} is this host (LOGIN_ALLOW_LOOPBACK_IDP allows it in development)",
        )
    elif outbound.is_ip_literal(host):
        raise IdpError("config", f"the tenant's domainName {text!r} is an IP address, not a host name")
    return f"{parts.scheme}://{parts.netloc}"


def new_verifier():
    """A PKCE code verifier (RFC 7636: 43 to 128 unreserved characters) or a state value."""
    return generate_token(48)


def authorize_url(client, state, verifier=None):
    """Where the browser goes to log in; ``verifier``: PKCE (S256) when given."""
    extra = (
        {"code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"} if verifier else {}
    )
    return prepare_grant_uri(
        client.base_url + AUTHORIZE_PATH,
        client.client_id,
        "code",
        redirect_uri=client.redirect_uri,
        scope=SCOPE,
        state=state,
        **extra,
    )


def _json(status, raw, what):
    try:
        answer = json.loads(raw)
    except ValueError:
        raise IdpError("garbage", f"{what} answered HTTP {status} with something that is not JSON") from None
    except RecursionError:
        raise IdpError("garbage", f"{what} answered HTTP {status} with JSON nested too deeply") from None
    if not isinstance(answer, dict):
        raise IdpError("garbage", f"{what} answered HTTP {status} with JSON that is not an object")
    if status != 200 or "error" in answer:
        error = str(answer.get("error") or f"HTTP {status}")[:100]
        detail = str(answer.get("error_description") or "")[:200]
        raise IdpError("refused", f"{what}: {error}" + (f" ({detail})" if detail else ""))
    return answer


def peer_allowed(client):
    """The addresses an IdP connection may reach: public ones (and this host's, in development)."""
    return lambda address: outbound.is_public_address(address, allow_loopback=client.allow_loopback)


def _call(client, request, what):
    if not outbound.is_https_or_loopback(request.full_url):
        raise IdpError("config", f"{what}: the IdP must be reached over https")
    try:
        status, raw = outbound.exchange(request, client.timeout_s, ANSWER_LIMIT, what, peer_allowed(client))
    except outbound.Unanswered as error:
        raise IdpError("network", str(error)) from None
    return _json(status, raw, what)


def _token(client, grant_type, **fields):
    body = prepare_token_request(grant_type, client_id=client.client_id, client_secret=client.client_secret, **fields)
    request = urllib.request.Request(
        client.base_url + TOKEN_PATH,
        data=body.encode("utf-8"),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
    )
    answer = _call(client, request, "the IdP's token endpoint")
    if not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise IdpError("garbage", "the IdP's token endpoint answered without an access_token")
    return answer


def exchange_code(client, code, verifier=None):
    """The authorization code for tokens (the code works once; the IdP says so, not us)."""
    return _token(
        client,
        "authorization_code",
        code=code,
        redirect_uri=client.redirect_uri,
        **({"code_verifier": verifier} if verifier else {}),
    )


def refresh(client, refresh_token):
    """A new access token (and perhaps a new refresh token: the IdP may rotate it)."""
    return _token(client, "refresh_token", refresh_token=refresh_token)


def user_info(client, access_token):
    """The signed-in user: userName, name, tenant, organizationCode, role (all text)."""
    request = urllib.request.Request(
        client.base_url + USERINFO_PATH,
        method="GET",
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
    )
    answer = _call(client, request, "the IdP's userinfo endpoint")
    if not isinstance(answer.get("userName"), str) or not answer["userName"]:
        raise IdpError("garbage", "the IdP's userinfo answer has no userName")
    return {name: str(answer[name]) if answer.get(name) is not None else None for name in USER_FIELDS}


def logout_url(client, redirect_url):
    """The IdP's logout (documented by OneAccess, which the tenant IdPs are: SingleLogout.html)."""
    return client.base_url + LOGOUT_PATH + "?" + urllib.parse.urlencode({"redirect_url": redirect_url})
