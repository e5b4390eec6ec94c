"""TLS as a scanner sees it: protocol versions, cipher suites, the certificate, and old bugs.

sslyze makes the handshakes (it carries its own legacy OpenSSL, so it can still try SSLv2, SSLv3
and TLS 1.0 that the system's OpenSSL refuses to speak); this module only judges what it found.
The certificate is judged in three separate findings, so one fault does not hide another: the
chain (is it trusted, for any of the names it holds?), the hostname (does it hold this one?) and
the dates.
"""

import socket
import warnings
from datetime import timedelta
from ipaddress import ip_address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, rsa

from . import BAD, OK, WARN, Finding

NGINX_PROTOCOLS = "ssl_protocols TLSv1.2 TLSv1.3;"
NGINX_CIPHERS = (
    "ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305;"
)
ELB_POLICY = "on a Huawei Cloud ELB, give the HTTPS listener the security policy tls-1-2-fs-with-1-3"
EXPIRY_WARN_DAYS = 30

OLD_PROTOCOLS = (  # (scan attribute, finding id, name)
    ("ssl_2_0_cipher_suites", "tls.sslv2", "SSL 2.0"),
    ("ssl_3_0_cipher_suites", "tls.sslv3", "SSL 3.0"),
    ("tls_1_0_cipher_suites", "tls.tls1_0", "TLS 1.0"),
    ("tls_1_1_cipher_suites", "tls.tls1_1", "TLS 1.1"),
)
CURRENT_PROTOCOLS = (("tls_1_2_cipher_suites", "TLS 1.2"), ("tls_1_3_cipher_suites", "TLS 1.3"))
# Parts of an RFC cipher suite name that make it weak whatever the protocol: no encryption, no
# authentication, export-grade keys, broken ciphers (RC4, DES, 3DES: SWEET32, RC2, IDEA) and MD5.
WEAK_MARKS = ("_NULL_", "_anon_", "EXPORT", "RC4", "_DES_", "DES40", "3DES", "_RC2_", "_IDEA_", "_MD5")


def check(target):
    """The TLS findings for ``target`` (an :class:`isvapp.selfcheck.Target`)."""
    try:
        import sslyze  # noqa: F401  an extra: pip install 'isvapp[selfcheck]'
    except ImportError:
        return [
            Finding(
                "tls.not_checked",
                WARN,
                "TLS was not checked: sslyze is not installed here",
                "pip install 'isvapp[selfcheck]' into this virtual environment, then run the check again",
            )
        ]
    try:
        address = reachable_address(target)
    except OSError as error:
        return [_unreachable(target, error)]
    scan, failure = _scan(target, address)
    if scan is None:
        return [_unreachable(target, failure)]
    return protocols(scan) + ciphers(scan) + certificate(scan, target) + known_bugs(scan)


def _unreachable(target, error):
    return Finding(
        "tls.unreachable",
        BAD,
        f"no TLS handshake with {target.host}:{target.port}: {error}",
        "Check that the domain points at this host, that port 443 is open in the security group, and that nginx "
        "(or the ELB's HTTPS listener) is running with a certificate.",
    )


def reachable_address(target):
    """The first address of the host (or ``connect_to``) that accepts a TCP connection on the port."""
    infos = socket.getaddrinfo(target.address, target.port, type=socket.SOCK_STREAM)
    last = OSError(f"{target.address} has no address")
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.settimeout(target.timeout_s)
                sock.connect(sockaddr)
            return sockaddr[0]
        except OSError as error:
            last = error
    raise last


def _scan(target, address):
    """sslyze's results for the commands below, or (None, the reason it could not connect)."""
    from sslyze import (
        CertificateInfoExtraArgument,
        ScanCommand,
        ScanCommandsExtraArguments,
        Scanner,
        ServerConnectivityStatusEnum,
        ServerNetworkConfiguration,
        ServerNetworkLocation,
        ServerScanRequest,
    )

    commands = {
        ScanCommand.CERTIFICATE_INFO,
        ScanCommand.SSL_2_0_CIPHER_SUITES,
        ScanCommand.SSL_3_0_CIPHER_SUITES,
        ScanCommand.TLS_1_0_CIPHER_SUITES,
        ScanCommand.TLS_1_1_CIPHER_SUITES,
        ScanCommand.TLS_1_2_CIPHER_SUITES,
        ScanCommand.TLS_1_3_CIPHER_SUITES,
        ScanCommand.HEARTBLEED,
        ScanCommand.OPENSSL_CCS_INJECTION,
        ScanCommand.TLS_COMPRESSION,
        ScanCommand.SESSION_RENEGOTIATION,
        ScanCommand.ROBOT,
        ScanCommand.TLS_FALLBACK_SCSV,
    }
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(target.ca_file)) if target.ca_file else None
    )
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=target.host, port=target.port, ip_address=address),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=target.host, network_timeout=max(1, int(target.timeout_s))
        ),
        scan_commands=commands,
        scan_commands_extra_arguments=extra,
    )
    scanner = Scanner(per_server_concurrent_connections_limit=4)
    with warnings.catch_warnings():
        # sslyze's bundled trust stores hold a few old roots that today's cryptography warns about.
        warnings.simplefilter("ignore")
        scanner.queue_scans([request])
        (result,) = list(scanner.get_results())
    if result.connectivity_status != ServerConnectivityStatusEnum.COMPLETED:
        trace = result.connectivity_error_trace
        return None, (str(trace).strip().splitlines() or ["no connection"])[-1] if trace else "no connection"
    return result.scan_result, None


def _accepted(scan, attribute):
    """The cipher suites accepted with one protocol version; None when that scan failed."""
    attempt = getattr(scan, attribute)
    return None if attempt.result is None else attempt.result.accepted_cipher_suites


def protocols(scan):
    findings = []
    for attribute, finding_id, name in OLD_PROTOCOLS:
        accepted = _accepted(scan, attribute)
        if accepted:
            findings.append(
                Finding(
                    finding_id,
                    BAD,
                    f"{name} is offered ({len(accepted)} cipher suites): scanners flag every protocol before TLS 1.2",
                    f"nginx: {NGINX_PROTOCOLS} ({ELB_POLICY})",
                )
            )
    current = [name for attribute, name in CURRENT_PROTOCOLS if _accepted(scan, attribute)]
    if current == ["TLS 1.3"]:
        findings.append(
            Finding(
                "tls.no_tls1_2",
                WARN,
                "only TLS 1.3 is offered: clients that stop at TLS 1.2 (older Java among them) cannot connect",
                f"nginx: {NGINX_PROTOCOLS}",
            )
        )
    if not findings:
        findings.append(Finding("tls.protocols", OK, f"offered: {', '.join(current) or 'nothing'} (nothing older)"))
    return findings


def ciphers(scan):
    scans = [attribute for attribute, *_ in OLD_PROTOCOLS + CURRENT_PROTOCOLS]
    everything = [suite for attribute in scans for suite in (_accepted(scan, attribute) or ())]
    findings = []
    weak = sorted({s.cipher_suite.name for s in everything if any(m in s.cipher_suite.name for m in WEAK_MARKS)})
    # and anything else under 128 bits
    weak += sorted({s.cipher_suite.name for s in everything if 0 < s.cipher_suite.key_size < 128} - set(weak))
    if weak:
        findings.append(
            Finding(
                "tls.weak_cipher",
                BAD,
                f"weak cipher suites accepted: {_few(weak)}",
                f"nginx: {NGINX_CIPHERS} ({ELB_POLICY})",
            )
        )
    beast = sorted(
        {
            s.cipher_suite.name
            for attribute in ("ssl_3_0_cipher_suites", "tls_1_0_cipher_suites")
            for s in (_accepted(scan, attribute) or ())
            if "_CBC_" in s.cipher_suite.name
        }
    )
    if beast:
        findings.append(
            Finding(
                "tls.cbc_tls1_0",
                BAD,
                f"CBC cipher suites with TLS 1.0 or SSL 3.0 (BEAST): {_few(beast)}",
                f"turn TLS 1.0 off: {NGINX_PROTOCOLS}",
            )
        )
    static_rsa = sorted({s.cipher_suite.name for s in everything if s.cipher_suite.name.startswith("TLS_RSA_WITH_")})
    if static_rsa:
        findings.append(
            Finding(
                "tls.no_forward_secrecy",
                WARN,
                f"cipher suites without forward secrecy (RSA key exchange) accepted: {_few(static_rsa)}",
                f"nginx: {NGINX_CIPHERS}",
            )
        )
    small_dh = {
        (s.cipher_suite.name, s.ephemeral_key.size)
        for s in everything
        if s.ephemeral_key is not None and s.ephemeral_key.type_name == "DH" and s.ephemeral_key.size < 2048
    }
    if small_dh:
        findings.append(
            Finding(
                "tls.weak_dh",
                BAD if min(size for _, size in small_dh) < 1024 else WARN,
                f"Diffie-Hellman groups under 2048 bits (Logjam): {_few(sorted(f'{n} ({b} bits)' for n, b in small_dh))}",
                "drop the DHE suites (the ssl_ciphers line above has none), or ssl_dhparam with a 2048-bit group",
            )
        )
    if not findings:
        findings.append(
            Finding("tls.ciphers", OK, f"{len({s.cipher_suite.name for s in everything})} suites, none weak")
        )
    return findings


def _few(names, limit=6):
    names = list(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def certificate(scan, target):
    attempt = scan.certificate_info
    if attempt.result is None or not attempt.result.certificate_deployments:
        return [Finding("cert.unchecked", WARN, f"the certificate could not be read: {attempt.error_reason}")]
    deployment = attempt.result.certificate_deployments[0]
    chain = deployment.received_certificate_chain
    leaf = chain[0]
    return (
        [_chain(deployment, leaf, target)] + [_hostname(leaf, target.host)] + _dates(leaf, target.now) + _strength(leaf)
    )


def _names(leaf):
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return san.get_values_for_type(x509.DNSName), san.get_values_for_type(x509.IPAddress)


def _chain(deployment, leaf, target):
    """Trusted by the store (the --ca-file, else Mozilla's), for a name the certificate holds
    (the hostname is its own finding), at a moment it is valid (so are the dates)."""
    store_name = "Supplied CA file" if target.ca_file else "Mozilla"
    stores = [r.trust_store for r in deployment.path_validation_results if r.trust_store.name == store_name]
    dns, ips = _names(leaf)
    if not stores:
        return Finding("cert.chain", WARN, f"the {store_name} trust store was not available to check the chain")
    subject = x509.DNSName(dns[0]) if dns else x509.IPAddress(ips[0]) if ips else x509.DNSName(target.host)
    moment = min(target.now, leaf.not_valid_after_utc - timedelta(minutes=1))
    moment = max(moment, leaf.not_valid_before_utc + timedelta(minutes=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verdict = stores[0].verify_certificate_chain(deployment.received_certificate_chain_as_pem, subject, moment)
    where = "the CA file given" if target.ca_file else "the public CAs (Mozilla's list)"
    if verdict.was_validation_successful:
        return Finding(
            "cert.chain",
            OK,
            f"the chain is trusted by {where} ({len(deployment.received_certificate_chain)} certificates sent)",
        )
    return Finding(
        "cert.chain",
        BAD,
        f"the certificate chain is not trusted by {where}: not issued by one of them, or the intermediate "
        f"certificates are not sent ({verdict.validation_error})",
        "Use a certificate from a public CA (Huawei Cloud's SSL Certificate Manager, or Let's Encrypt through "
        "certbot) and send the whole chain: nginx's ssl_certificate names the fullchain file (the leaf, then the "
        "intermediates).",
    )


def hostname_matches(host, dns_names, ips):
    """RFC 6125: an exact DNS name (case-insensitive), or a wildcard standing for the whole
    leftmost label only; an IP address must be listed as one."""
    host = host.rstrip(".").lower()
    try:
        return ip_address(host) in ips
    except ValueError:
        pass
    for name in (n.rstrip(".").lower() for n in dns_names):
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:] and host.split(".", 1)[0]:
            return True
    return False


def _hostname(leaf, host):
    dns, ips = _names(leaf)
    if hostname_matches(host, dns, ips):
        return Finding("cert.hostname", OK, f"the certificate names {host}")
    held = ", ".join([*dns, *map(str, ips)]) or "no subjectAltName at all"
    return Finding(
        "cert.hostname",
        BAD,
        f"the certificate does not name {host} (it holds: {held})",
        f"Get a certificate for {host} (or a wildcard for its parent domain) and install it on nginx or the ELB.",
    )


def _dates(leaf, now):
    after, before = leaf.not_valid_after_utc, leaf.not_valid_before_utc
    renew = "Renew it (certbot renews by itself; Huawei Cloud's certificate manager can too) and reload nginx."
    if before > now:
        return [Finding("cert.expiry", BAD, f"the certificate is not valid until {before:%Y-%m-%d %H:%M} UTC", renew)]
    days = (after - now).total_seconds() / 86400
    if days < 0:
        return [Finding("cert.expiry", BAD, f"the certificate expired on {after:%Y-%m-%d} UTC", renew)]
    if days < EXPIRY_WARN_DAYS:
        return [Finding("cert.expiry", WARN, f"the certificate expires in {days:.0f} days ({after:%Y-%m-%d})", renew)]
    return [Finding("cert.expiry", OK, f"valid until {after:%Y-%m-%d} ({days:.0f} days)")]


def _strength(leaf):
    findings = []
    key = leaf.public_key()
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < 2048:
        findings.append(
            Finding(
                "cert.weak_key",
                BAD,
                f"the certificate's key has {key.key_size} bits",
                "Request a new certificate with a 2048-bit (or larger) RSA key, or an ECDSA P-256 key.",
            )
        )
    algorithm = leaf.signature_hash_algorithm
    if algorithm is not None and algorithm.name in ("md5", "sha1"):
        findings.append(
            Finding(
                "cert.weak_signature",
                BAD,
                f"the certificate is signed with {algorithm.name.upper()}",
                "Request a new certificate (every public CA signs with SHA-256 today).",
            )
        )
    return findings


def known_bugs(scan):
    """The OpenSSL and protocol bugs scanners still probe for; a check that could not run is a warning."""
    findings, clean, failed = [], [], []

    def judge(attribute, name, vulnerable, finding_id, severity, message, fix):
        attempt = getattr(scan, attribute)
        if attempt.result is None:
            failed.append(f"{name} ({attempt.error_reason})")
        elif vulnerable(attempt.result):
            findings.append(Finding(finding_id, severity, message, fix))
        else:
            clean.append(name)

    upgrade = "Upgrade OpenSSL and nginx from the distribution (apt-get upgrade), then restart nginx."
    judge(
        "heartbleed",
        "Heartbleed",
        lambda r: r.is_vulnerable_to_heartbleed,
        "tls.heartbleed",
        BAD,
        "vulnerable to Heartbleed",
        upgrade,
    )
    judge(
        "openssl_ccs_injection",
        "CCS injection",
        lambda r: r.is_vulnerable_to_ccs_injection,
        "tls.ccs_injection",
        BAD,
        "vulnerable to the OpenSSL CCS injection",
        upgrade,
    )
    judge(
        "tls_compression",
        "CRIME",
        lambda r: r.supports_compression,
        "tls.compression",
        BAD,
        "TLS compression is on (CRIME)",
        upgrade,
    )
    judge(
        "session_renegotiation",
        "insecure renegotiation",
        lambda r: not r.supports_secure_renegotiation,
        "tls.insecure_renegotiation",
        BAD,
        "insecure renegotiation is accepted",
        upgrade,
    )
    judge(
        "session_renegotiation",
        "client-initiated renegotiation",
        lambda r: r.is_vulnerable_to_client_renegotiation_dos,
        "tls.client_renegotiation",
        WARN,
        "client-initiated renegotiation is accepted (a denial-of-service lever)",
        upgrade,
    )
    judge(
        "robot",
        "ROBOT",
        lambda r: r.robot_result.name.startswith("VULNERABLE"),
        "tls.robot",
        BAD,
        "vulnerable to ROBOT (an RSA padding oracle)",
        f"{upgrade} Dropping the TLS_RSA_* suites removes the oracle: {NGINX_CIPHERS}",
    )
    judge(
        "tls_fallback_scsv",
        "downgrade protection",
        lambda r: not r.supports_fallback_scsv,
        "tls.no_fallback_scsv",
        WARN,
        "TLS_FALLBACK_SCSV is not supported (protocol downgrades go unnoticed)",
        upgrade,
    )
    if failed:
        findings.append(Finding("tls.scan_error", WARN, f"could not be checked: {', '.join(failed)}"))
    if clean:
        findings.append(Finding("tls.known_bugs", OK, f"not affected: {', '.join(clean)}"))
    return findings
