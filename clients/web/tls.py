"""HTTPS for the console: ``[web] tls`` off, self-signed (a key and certificate made once and kept in the state
folder, so browsers that accepted it keep accepting it; its SHA-256 fingerprint is logged to compare with what a
browser shows), or the operator's own PEM files."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
from pathlib import Path

from emotiond.core.errors import UsageError
from emotiond.core.settings import WebSettings

log = logging.getLogger(__name__)
CERT_NAME, KEY_NAME = "web-cert.pem", "web-key.pem"
VALID_DAYS = 825  # the longest lifetime browsers accept for a certificate


def _alternative_names(host: str) -> list:
    from cryptography import x509

    names: list = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                   x509.IPAddress(ipaddress.ip_address("::1"))]
    dns = {socket.gethostname(), socket.getfqdn()}
    try:
        if not ipaddress.ip_address(host).is_unspecified:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        if host not in ("", "*"):
            dns.add(host)
    names += [x509.DNSName(name) for name in sorted(dns - {"localhost", ""}) if name.isascii()]
    return names


def make_self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """An ECDSA P-256 key (mode 0600) and a certificate for this machine's names, written to ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"emotiond on {socket.gethostname()}"[:64])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                   .add_extension(x509.SubjectAlternativeName(_alternative_names(host)), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    key_path, cert_path = folder / KEY_NAME, folder / CERT_NAME
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        out.write(key_pem)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def fingerprint(cert_path: Path) -> str:
    """SHA-256 of the certificate, as browsers show it (AB:CD:...)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    digest = x509.load_pem_x509_certificate(cert_path.read_bytes()).fingerprint(hashes.SHA256())
    return ":".join(f"{byte:02X}" for byte in digest)


def certificate_files(web: WebSettings) -> tuple[Path, Path] | None:
    """The certificate and key to serve with, made first if self-signed and missing; None when TLS is off."""
    if web.tls == "off":
        return None
    if web.tls == "files":
        assert web.tls_cert_file is not None and web.tls_key_file is not None
        return web.tls_cert_file, web.tls_key_file
    folder = web.users_path().parent
    cert_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    if not (cert_path.is_file() and key_path.is_file()):
        make_self_signed(folder, web.host)
        log.info("made a self-signed certificate for the web console: %s", cert_path)
    return cert_path, key_path


def server_context(web: WebSettings) -> ssl.SSLContext | None:
    """The TLS context to serve with (TLS 1.2 at least), or None when TLS is off; a clear error for bad files."""
    files = certificate_files(web)
    if files is None:
        return None
    cert_path, key_path = files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"web TLS: cannot load certificate {cert_path} and key {key_path}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None
    log.info("web console TLS certificate %s, SHA-256 fingerprint %s", cert_path, fingerprint(cert_path))
    return context
