"""Certificates made at test time with `cryptography`: a private CA, a server certificate it signs,
and a self-signed one that nothing vouches for.

Nothing is checked in: every run makes fresh keys (EC P-256, fast) in a
directory of its own, and the PEM files are what a real deployment would have.
"""

import ipaddress
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its key as PEM files (`cert` is what MAIL_TLS_CA_FILE takes for a CA)."""

    cert: Path
    key: Path


def _name(common_name):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailjobs tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _subject_alt_names(hosts):
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write(directory, stem, certificate, key):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return CertFiles(cert_path, key_path)


def _builder(subject, issuer, public_key):
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
    )


def _server_extensions(builder, hosts):
    return (
        builder.add_extension(_subject_alt_names(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )


class PrivateCA:
    """A certificate authority of our own, as a company's internal mail relay would use."""

    def __init__(self, directory, name="mailjobs test CA"):
        self.directory = Path(directory)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        self.certificate = (
            _builder(subject, subject, self.key.public_key())
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
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.files = _write(self.directory, "ca", self.certificate, self.key)

    def issue(self, stem, hosts):
        """A server certificate for `hosts` (names or IP addresses), signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        certificate = (
            _server_extensions(_builder(_name(hosts[0]), self.certificate.subject, key.public_key()), hosts)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return _write(self.directory, stem, certificate, key)


def self_signed(directory, stem, hosts):
    """A server certificate for `hosts` that signs itself: no CA anyone trusts vouches for it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(hosts[0])
    certificate = _server_extensions(_builder(subject, subject, key.public_key()), hosts).sign(key, hashes.SHA256())
    return _write(directory, stem, certificate, key)
