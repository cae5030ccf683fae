"""Trust anchors: the vendor roots this package pins, and roots a caller adds by name.

The pinned roots ship inside the package (`attestation/roots/`) and are checked against the
SHA-256 fingerprints below when loaded, so a modified file is refused rather than trusted.
The simulated root made by `tee-agent sim init` is never pinned: it is trusted only when a
caller passes it explicitly (`--trust-root`).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from attestation.errors import CertificateChainError

# SHA-256 of the DER encoding of each pinned root. Sources: Intel SGX Root CA
# (https://certificates.trustedservices.intel.com/IntelSGXRootCA.der), AWS Nitro Enclaves
# Root-G1 (https://aws-nitro-enclaves.amazonaws.com/AWS_NitroEnclaves_Root-G1.zip), AMD
# ARK-Milan (https://kdsintf.amd.com/vcek/v1/Milan/cert_chain).
INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
AWS_NITRO_ROOT_G1_SHA256 = "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
AMD_ARK_MILAN_SHA256 = "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd"

# The organization name every simulated root carries in its subject. It labels evidence as
# simulated in reports; it never makes anything trusted.
SIMULATED_ROOT_ORGANIZATION = "tee-agent simulated TEE (INSECURE, not a real TEE)"


# The one deprecation warning cryptography gives for certificates whose serial number is not
# positive (RFC 5280 section 4.1.2.2). It is silenced only around certificate loading.
SERIAL_WARNING_PATTERN = "Parsed a serial number which wasn't positive"
# What cryptography raises on a malformed certificate or CRL, parsed under
# strict_x509_parsing: mostly ValueError, but a name attribute whose string type does not
# fit its OID (a BIT STRING other than x500UniqueIdentifier) is a TypeError, a version other
# than v1/v3 InvalidVersion (not a ValueError), an unknown algorithm UnsupportedAlgorithm.
MALFORMED_X509 = (
    ValueError,
    TypeError,
    UserWarning,
    x509.DuplicateExtension,
    x509.InvalidVersion,
    UnsupportedAlgorithm,
)


@contextmanager
def strict_x509_parsing() -> Iterator[None]:
    """Turn cryptography's warnings about malformed names into errors (UserWarning raised).

    Only the serial-number deprecation warning stays silent: real AMD VCEKs have serial 0.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings(
            "ignore", message=SERIAL_WARNING_PATTERN, category=CryptographyDeprecationWarning
        )
        yield


@contextmanager
def quiet_serial_number_warning() -> Iterator[None]:
    """Silence exactly cryptography's "serial number which wasn't positive" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=SERIAL_WARNING_PATTERN, category=CryptographyDeprecationWarning
        )
        yield


@dataclass(frozen=True)
class TrustAnchors:
    """Roots each kind of evidence may chain to, as DER bytes."""

    intel_roots: frozenset[bytes]
    nitro_roots: frozenset[bytes]
    amd_arks: frozenset[bytes]
    # Certificates between a VCEK and the ARK (the ASK of each product line).
    amd_asks: tuple[bytes, ...]
    # Roots the caller passed by name (a simulated root, a private test root).
    extra_roots: frozenset[bytes] = field(default_factory=frozenset)

    # Each union is made once per instance (it is frozen): verifiers key caches on them.
    @functools.cached_property
    def dcap_roots(self) -> frozenset[bytes]:
        return self.intel_roots | self.extra_roots

    @functools.cached_property
    def nitro_trusted(self) -> frozenset[bytes]:
        return self.nitro_roots | self.extra_roots

    @functools.cached_property
    def amd_trusted(self) -> frozenset[bytes]:
        return self.amd_arks | self.extra_roots

    def with_extra_roots(self, roots_der: list[bytes]) -> TrustAnchors:
        """A copy that also trusts `roots_der`, as the caller explicitly asked."""
        return TrustAnchors(
            intel_roots=self.intel_roots,
            nitro_roots=self.nitro_roots,
            amd_arks=self.amd_arks,
            amd_asks=self.amd_asks,
            extra_roots=self.extra_roots | frozenset(roots_der),
        )


@functools.cache
def default_trust_anchors() -> TrustAnchors:
    """The pinned vendor roots, loaded once from the package and checked by fingerprint."""
    intel = _pinned("intel_sgx_root_ca.der", INTEL_SGX_ROOT_CA_SHA256)
    nitro = _pinned("aws_nitro_root_g1.pem", AWS_NITRO_ROOT_G1_SHA256)
    ask, ark = _load_package_file("amd_ask_ark_milan.pem")
    if hashlib.sha256(ark).hexdigest() != AMD_ARK_MILAN_SHA256:
        raise CertificateChainError("bundled AMD ARK-Milan does not match its pinned fingerprint")
    return TrustAnchors(
        intel_roots=frozenset([intel]),
        nitro_roots=frozenset([nitro]),
        amd_arks=frozenset([ark]),
        amd_asks=(ask,),
    )


def _pinned(name: str, sha256_hex: str) -> bytes:
    (der,) = _load_package_file(name)
    if hashlib.sha256(der).hexdigest() != sha256_hex:
        raise CertificateChainError(f"bundled root {name} does not match its pinned fingerprint")
    return der


def _load_package_file(name: str) -> list[bytes]:
    data = resources.files("attestation").joinpath("roots").joinpath(name).read_bytes()
    return certificates_from_bytes(data, source=name)


def certificates_from_bytes(data: bytes, *, source: str) -> list[bytes]:
    """DER encodings of the certificates in `data` (PEM with one or more, or one DER).

    Raises:
        CertificateChainError: no certificate can be read from `data`.
    """
    try:
        with quiet_serial_number_warning():
            if b"-----BEGIN CERTIFICATE-----" in data:
                certificates = x509.load_pem_x509_certificates(data)
            else:
                certificates = [x509.load_der_x509_certificate(data)]
    except MALFORMED_X509 as exc:
        raise CertificateChainError(
            f"{source}: expected PEM or DER certificate(s), could not read them ({exc})"
        ) from None
    return [cert.public_bytes(Encoding.DER) for cert in certificates]


def load_trust_root_file(path: Path) -> list[bytes]:
    """Read the root certificate(s) a caller names with `--trust-root`.

    Raises:
        CertificateChainError: the file cannot be read or holds no certificate.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateChainError(f"cannot read trust root {path}: {exc.strerror}") from None
    return certificates_from_bytes(data, source=str(path))


def is_simulated_root(certificate: x509.Certificate) -> bool:
    """True when the certificate's subject names it a tee-agent simulated root."""
    names = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return any(name.value == SIMULATED_ROOT_ORGANIZATION for name in names)
