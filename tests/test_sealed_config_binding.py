"""The attack of issue 14: seal state under one config, raise the per-trade limit to 10^9,
start again on the same platform with the same sealing key. The enclave must refuse to open
the state, with an error that names the config as the cause, on every backend."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from enclave.config import EnclaveConfig, load_config
from enclave.core import EnclaveCore, EnclaveError
from enclave.measurement import expected_sim_measurement
from enclave.platform.base import Measurement, Platform
from enclave.platform.sgx import SgxPlatform
from enclave.platform.sim import SimPlatform
from enclave.platform.sim_pki import load_sim_pki
from enclave.platform.tdx import TdxPlatform
from enclave.policy import NO_MODEL
from enclave.sealing import (
    MAGIC,
    SealedForAnotherConfig,
    SealedForAnotherMeasurement,
    SealedForAnotherModel,
    Sealer,
    SealingError,
    UnboundSealedState,
)
from enclave.server import make_policy
from tests.enclave_harness import EnclaveWorld
from tests.fake_tsm import FakeConfigfsTsm
from tests.manifest import vector_bytes
from tests.test_platform_sgx import fake_attestation_dir

RAISED_LIMIT = 10**9
TDX_QUOTE = vector_bytes("tdx-v4-phala-1.bin")

# A backend for a config: the same device and the same sealing key every time it is called.
PlatformFor = Callable[[EnclaveConfig], Platform]


def sim_backend(tmp_path: Path) -> PlatformFor:
    sim_dir = EnclaveWorld(tmp_path / "world").sim_dir
    return lambda config: SimPlatform(sim_dir, config_hash=config.config_hash(), model_hash=None)


def sgx_backend(tmp_path: Path) -> PlatformFor:
    device = fake_attestation_dir(tmp_path / "dev" / "attestation")
    return lambda config: SgxPlatform(device)


def tdx_backend(tmp_path: Path) -> PlatformFor:
    key_file = tmp_path / "sealing.key"
    key_file.write_bytes(secrets.token_bytes(32))
    key_file.chmod(0o600)

    def make(config: EnclaveConfig) -> Platform:
        # Each start is a fresh boot of the TD: a new kernel with registers as at launch.
        fake = FakeConfigfsTsm(tmp_path / f"tsm-{secrets.token_hex(4)}" / "report", TDX_QUOTE)
        return TdxPlatform(fake.base, key_file, ops=fake)

    return make


BACKENDS = {"sim": sim_backend, "sgx": sgx_backend, "tdx": tdx_backend}


def configs(tmp_path: Path) -> tuple[EnclaveConfig, EnclaveConfig]:
    world = EnclaveWorld(tmp_path / "configs")
    honest = load_config(world.config_path)
    world.write_config(max_notional_per_trade_usd=RAISED_LIMIT)
    raised = load_config(world.config_path)
    assert raised.guardrails.max_notional_per_trade_usd == RAISED_LIMIT
    return honest, raised


def started(platform_for: PlatformFor, config: EnclaveConfig) -> EnclaveCore:
    return EnclaveCore(platform_for(config), config, make_policy(config))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_state_sealed_under_one_config_never_opens_under_a_raised_limit(
    tmp_path: Path, backend: str
) -> None:
    platform_for = BACKENDS[backend](tmp_path)
    honest, raised = configs(tmp_path)
    sealed = started(platform_for, honest).open(b"")[0].sealed_state

    with pytest.raises(EnclaveError) as refused:
        started(platform_for, raised).open(sealed)

    assert refused.value.kind == "failed_precondition"
    assert isinstance(refused.value.__cause__, SealedForAnotherConfig)
    message = str(refused.value)
    assert "another config" in message
    assert honest.config_hash().hex() in message and raised.config_hash().hex() in message
    # The honest config still opens it: the refusal is about the config, not the blob.
    reopened, created = started(platform_for, honest).open(sealed)
    assert not created and reopened.sealed_state


@pytest.mark.parametrize("backend", ["sgx", "tdx"])
def test_the_measurement_alone_would_not_have_caught_it(tmp_path: Path, backend: str) -> None:
    """Why the config is bound explicitly: these backends' registers (the fake devices
    answer with fixed quotes) do not move with the config."""
    platform_for = BACKENDS[backend](tmp_path)
    honest, raised = configs(tmp_path)
    assert started(platform_for, honest).measurement == started(platform_for, raised).measurement


# -- the sealer alone ----------------------------------------------------------------------

KEY = bytes(range(32))
MEASUREMENT = Measurement(values={"mr_td": "11" * 48, "rtmr3": "22" * 48})
CONFIG_A = hashlib.sha256(b"config A").digest()
CONFIG_B = hashlib.sha256(b"config B").digest()
MODEL = hashlib.sha256(b"model").digest()


def sealer(
    config_hash: bytes = CONFIG_A,
    model_hash: bytes = MODEL,
    measurement: Measurement = MEASUREMENT,
    opens_version_1: bool = False,
) -> Sealer:
    return Sealer(
        KEY,
        measurement,
        config_hash=config_hash,
        model_hash=model_hash,
        opens_version_1=opens_version_1,
    )


def test_same_measurement_other_config_is_refused_naming_both_hashes() -> None:
    blob = sealer().seal(b"state")
    with pytest.raises(SealedForAnotherConfig, match=CONFIG_B.hex()) as refused:
        sealer(CONFIG_B).unseal(blob)
    assert CONFIG_A.hex() in str(refused.value)


def test_other_model_is_refused_as_such() -> None:
    blob = sealer().seal(b"state")
    with pytest.raises(SealedForAnotherModel, match="another model"):
        sealer(model_hash=NO_MODEL).unseal(blob)


def test_other_measurement_is_refused_as_such() -> None:
    blob = sealer().seal(b"state")
    other = Measurement(values={"mr_td": "11" * 48, "rtmr3": "33" * 48})
    with pytest.raises(SealedForAnotherMeasurement, match="another measurement"):
        sealer(measurement=other).unseal(blob)


def test_a_rewritten_header_does_not_open_under_another_config() -> None:
    """The header only names the config; the key itself is derived from it."""
    blob = sealer().seal(b"state")
    forged = blob.replace(CONFIG_A, CONFIG_B, 1)
    with pytest.raises(SealingError, match="failed authentication"):
        sealer(CONFIG_B).unseal(forged)


def test_the_blob_is_version_2_and_names_what_it_was_sealed_for() -> None:
    blob = sealer().seal(b"state")
    assert blob[:5] == MAGIC + b"\x02"
    assert blob[37:69] == CONFIG_A and blob[69:101] == MODEL


# -- version 1 blobs -------------------------------------------------------------------------


def version_1_blob(platform_key: bytes, measurement: Measurement, plaintext: bytes) -> bytes:
    """A blob exactly as the version 1 sealer made it (its layout and derivation)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    binding = measurement.digest_input()
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"tee-agent/seal/v1", info=binding
    ).derive(platform_key)
    header = MAGIC + b"\x01" + hashlib.sha256(binding).digest()
    nonce = secrets.token_bytes(12)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header + binding)


def test_version_1_opens_where_the_measurement_covered_config_and_model() -> None:
    blob = version_1_blob(KEY, MEASUREMENT, b"old state")
    assert sealer(opens_version_1=True).unseal(blob) == b"old state"


def test_version_1_is_refused_where_it_was_not_bound() -> None:
    blob = version_1_blob(KEY, MEASUREMENT, b"old state")
    with pytest.raises(UnboundSealedState, match="bound neither the config nor the model"):
        sealer().unseal(blob)


def test_version_1_of_another_measurement_is_refused_on_sim() -> None:
    other = Measurement(values={"mr_td": "11" * 48, "rtmr3": "33" * 48})
    blob = version_1_blob(KEY, other, b"old state")
    with pytest.raises(SealedForAnotherMeasurement):
        sealer(opens_version_1=True).unseal(blob)


def test_a_sim_enclave_opens_its_version_1_state_and_reseals_it_as_version_2(
    tmp_path: Path,
) -> None:
    world = EnclaveWorld(tmp_path)
    config = load_config(world.config_path)
    platform = SimPlatform(world.sim_dir, config_hash=config.config_hash(), model_hash=None)
    first = EnclaveCore(platform, config, make_policy(config))
    fresh = first.open(b"")[0].sealed_state
    plaintext = Sealer(
        load_sim_pki(world.sim_dir).sealing_secret,
        expected_sim_measurement(config.config_hash(), None),
        config_hash=config.config_hash(),
        model_hash=NO_MODEL,
    ).unseal(fresh)
    old = version_1_blob(
        platform.sealing_key(), expected_sim_measurement(config.config_hash(), None), plaintext
    )

    resealed, created = EnclaveCore(platform, config, make_policy(config)).open(old)

    assert not created
    assert resealed.sealed_state[4] == 2


@pytest.mark.parametrize("backend", ["sgx", "tdx"])
def test_version_1_state_is_refused_on_real_backends(tmp_path: Path, backend: str) -> None:
    platform_for = BACKENDS[backend](tmp_path)
    config, _ = configs(tmp_path)
    platform = platform_for(config)
    old = version_1_blob(platform.sealing_key(), platform.measurement(), b"{}")
    with pytest.raises(EnclaveError, match="version 1") as refused:
        EnclaveCore(platform, config, make_policy(config)).open(old)
    assert isinstance(refused.value.__cause__, UnboundSealedState)
