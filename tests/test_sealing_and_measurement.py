"""Sealing binds state to one measurement on one platform; the measurement binds code, config
and model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.measurement import (
    ZERO_REGISTER,
    enclave_code_digest,
    expected_sim_measurement,
    rtmr_extend,
)
from enclave.platform.base import Measurement
from enclave.sealing import Sealer, SealingError

KEY = bytes(range(32))
MEASUREMENT = Measurement(values={"mr_td": "11" * 48, "rtmr0": "22" * 48})
CONFIG_HASH = bytes(range(32))
MODEL_HASH = bytes(32)


def sealer_for(
    measurement: Measurement = MEASUREMENT, key: bytes = KEY, config_hash: bytes = CONFIG_HASH
) -> Sealer:
    return Sealer(key, measurement, config_hash=config_hash, model_hash=MODEL_HASH)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4096))
def test_seal_then_unseal_gives_back_the_plaintext(plaintext: bytes) -> None:
    sealer = sealer_for()
    blob = sealer.seal(plaintext)
    if len(plaintext) >= 16:  # shorter strings may turn up in random bytes by chance
        assert plaintext not in blob
    assert sealer_for().unseal(blob) == plaintext


def test_every_changed_byte_is_refused() -> None:
    sealer = sealer_for()
    blob = sealer.seal(b"state" * 20)
    for position in range(len(blob)):
        changed = blob[:position] + bytes([blob[position] ^ 0x80]) + blob[position + 1 :]
        with pytest.raises(SealingError):
            sealer.unseal(changed)


def test_every_truncation_is_refused() -> None:
    sealer = sealer_for()
    blob = sealer.seal(b"state")
    for size in range(len(blob)):
        with pytest.raises(SealingError):
            sealer.unseal(blob[:size])


def test_another_measurement_is_named_in_the_refusal() -> None:
    blob = sealer_for().seal(b"state")
    other = Measurement(values={"mr_td": "11" * 48, "rtmr0": "33" * 48})
    with pytest.raises(SealingError, match="another measurement"):
        sealer_for(other).unseal(blob)


def test_another_platform_key_fails_authentication() -> None:
    blob = sealer_for().seal(b"state")
    with pytest.raises(SealingError, match="failed authentication"):
        sealer_for(key=bytes(32)).unseal(blob)


def test_the_sealer_never_shows_its_key() -> None:
    sealer = sealer_for()
    assert KEY.hex() not in repr(sealer) and KEY.hex() not in str(sealer)


def test_rtmr_extend_is_sha384_of_register_and_padded_digest() -> None:
    digest = bytes(range(32))
    assert (
        rtmr_extend(ZERO_REGISTER, digest)
        == hashlib.sha384(ZERO_REGISTER + digest + bytes(16)).digest()
    )


def test_config_and_model_each_move_their_register() -> None:
    base = expected_sim_measurement(b"\x01" * 32, None).values
    other_config = expected_sim_measurement(b"\x02" * 32, None).values
    with_model = expected_sim_measurement(b"\x01" * 32, b"\x03" * 32).values
    assert base["mr_td"] == other_config["mr_td"] == enclave_code_digest().hex()
    assert base["rtmr0"] != other_config["rtmr0"]
    assert base["rtmr1"] == ZERO_REGISTER.hex() != with_model["rtmr1"]
    assert with_model["rtmr0"] == base["rtmr0"]


def test_a_changed_enclave_source_file_changes_mr_td(tmp_path: Path) -> None:
    """Copy the measured packages, change one byte of one file, measure again."""
    import shutil

    import tee_agent_rpc

    import attestation
    import enclave

    for package in (enclave, attestation, tee_agent_rpc):
        source = Path(package.__file__).parent
        shutil.copytree(
            source, tmp_path / source.name, ignore=shutil.ignore_patterns("__pycache__")
        )
    program = (
        "from enclave.measurement import enclave_code_digest; print(enclave_code_digest().hex())"
    )

    def measure() -> str:
        env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
        out = subprocess.run(
            [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, check=True
        )
        return out.stdout.decode().strip()

    original = measure()
    assert original == enclave_code_digest().hex()
    guardrails = tmp_path / "enclave" / "guardrails.py"
    guardrails.write_text(
        guardrails.read_text().replace("DAY_SECONDS = 86_400", "DAY_SECONDS = 86_401")
    )
    assert measure() != original
