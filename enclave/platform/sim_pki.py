"""The simulated platform's PKI: an INSECURE root, a PCK-like chain and the QE keys.

`tee-agent sim init` makes these once per directory. The root's subject says plainly that it
is simulated and insecure; verifiers trust it only when it is passed to them by name. Private
keys and the sealing secret are written with 0600 permissions in a 0700 directory.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from attestation.trust import SIMULATED_ROOT_ORGANIZATION

ROOT_FILE = "root.pem"
PCK_CHAIN_FILE = "pck-chain.pem"
PCK_KEY_FILE = "pck-key.pem"
ATTESTATION_KEY_FILE = "attestation-key.pem"
SEALING_SECRET_FILE = "sealing-secret"  # noqa: S105 - a file name, not a secret
SEALING_SECRET_SIZE = 32

_ROOT_LIFETIME = timedelta(days=20 * 365)
_LEAF_LIFETIME = timedelta(days=10 * 365)


class SimPlatformError(Exception):
    """The simulated platform directory is missing, incomplete or unreadable."""


@dataclass(frozen=True)
class SimPki:
    """The simulated platform's keys and certificates, loaded from its directory."""

    directory: Path
    root_pem: bytes
    pck_chain_pem: bytes
    pck_key: ec.EllipticCurvePrivateKey
    attestation_key: ec.EllipticCurvePrivateKey
    sealing_secret: bytes

    def __repr__(self) -> str:  # keys never reach a log or an error message
        return f"SimPki(directory={str(self.directory)!r})"


def create_sim_pki(directory: Path, *, now: datetime | None = None) -> SimPki:
    """Make a new simulated platform in `directory` (created 0700 if missing).

    Raises:
        SimPlatformError: the directory already holds a simulated platform.
    """
    now = now or datetime.now(UTC)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    if (directory / ROOT_FILE).exists():
        raise SimPlatformError(
            f"{directory} already holds a simulated platform; refusing to replace its keys"
        )
    root_key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ec.generate_private_key(ec.SECP256R1())
    pck_key = ec.generate_private_key(ec.SECP256R1())
    attestation_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("tee-agent Simulated Root CA (INSECURE)")
    ca_name = _name("tee-agent Simulated PCK Platform CA (INSECURE)")
    root = _certificate(root_name, root_name, root_key, root_key, now, _ROOT_LIFETIME, ca=True)
    ca = _certificate(ca_name, root_name, ca_key, root_key, now, _ROOT_LIFETIME, ca=True)
    leaf_name = _name("tee-agent Simulated PCK Certificate (INSECURE)")
    leaf = _certificate(leaf_name, ca_name, pck_key, ca_key, now, _LEAF_LIFETIME, ca=False)
    pem = serialization.Encoding.PEM
    chain = b"".join(cert.public_bytes(pem) for cert in (leaf, ca, root))
    _write(directory / ROOT_FILE, root.public_bytes(pem), 0o644)
    _write(directory / PCK_CHAIN_FILE, chain, 0o644)
    _write(directory / PCK_KEY_FILE, _private_pem(pck_key), 0o600)
    _write(directory / ATTESTATION_KEY_FILE, _private_pem(attestation_key), 0o600)
    _write(directory / SEALING_SECRET_FILE, secrets.token_bytes(SEALING_SECRET_SIZE), 0o600)
    return load_sim_pki(directory)


def load_sim_pki(directory: Path) -> SimPki:
    """Load the simulated platform made by `create_sim_pki`.

    Raises:
        SimPlatformError: a file is missing or unreadable; the message names it.
    """
    try:
        root_pem = (directory / ROOT_FILE).read_bytes()
        chain_pem = (directory / PCK_CHAIN_FILE).read_bytes()
        pck_key = _load_key(directory / PCK_KEY_FILE)
        attestation_key = _load_key(directory / ATTESTATION_KEY_FILE)
        sealing_secret = (directory / SEALING_SECRET_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise SimPlatformError(
            f"{directory} is not a simulated platform: {Path(str(exc.filename)).name} is "
            "missing (make one with `tee-agent sim init --dir DIR`)"
        ) from None
    except OSError as exc:
        raise SimPlatformError(f"cannot read the simulated platform: {exc.strerror}") from None
    if len(sealing_secret) != SEALING_SECRET_SIZE:
        raise SimPlatformError(
            f"{directory / SEALING_SECRET_FILE} holds {len(sealing_secret)} bytes; "
            f"expected {SEALING_SECRET_SIZE}"
        )
    return SimPki(directory, root_pem, chain_pem, pck_key, attestation_key, sealing_secret)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError:
        raise SimPlatformError(f"{path} does not hold a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SimPlatformError(f"{path} does not hold a P-256 key")
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SIMULATED_ROOT_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    now: datetime,
    lifetime: timedelta,
    *,
    ca: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(signer, hashes.SHA256())


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(mode)
