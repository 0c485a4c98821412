"""TLS for the admission webhook: a project-generated CA and serving certificate.

kopf's own self-signed certificates need oscrypto, which fails on OpenSSL 3; these come from
`cryptography`. File names follow a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt), so
the same directory layout works locally (generated here) and in a cluster (a mounted Secret).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.crt"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"


@dataclass(frozen=True)
class CertPaths:
    cafile: Path
    certfile: Path
    keyfile: Path


def paths(directory: Path) -> CertPaths:
    return CertPaths(directory / CA_FILE, directory / CERT_FILE, directory / KEY_FILE)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: list[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _covers(cert_path: Path, hosts: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    remaining = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return set(_san(hosts)) <= set(san) and remaining > dt.timedelta(days=7)


def ensure_certs(directory: Path, hosts: list[str], *, days: int = 365) -> CertPaths:
    """Reuse the certificates in `directory` when they cover `hosts`; else write new ones.

    `hosts` are DNS names or IP addresses for the serving certificate's SANs, e.g.
    ["127.0.0.1"] locally or ["tftj-webhook.tftj-system.svc"] in a cluster.
    """
    found = paths(directory)
    if found.cafile.exists() and found.keyfile.exists() and _covers(found.certfile, hosts):
        return found
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("tftj-webhook-ca"))
        .issuer_name(_name("tftj-webhook-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    found.cafile.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    found.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    found.keyfile.chmod(0o600)
    return found


def load_or_generate(directory: Path, hosts: list[str]) -> CertPaths:
    """A read-only directory holding all three files is a mounted Secret: used as it is (its
    owner, the Helm chart or cert-manager, made it for the Service's name). Anything else is a
    local setup: ensure_certs()."""
    found = paths(directory)
    complete = all(p.is_file() for p in (found.cafile, found.certfile, found.keyfile))
    if complete and not os.access(directory, os.W_OK):
        return found
    return ensure_certs(directory, hosts)
