"""The simulated TEE: Intel TDX v4 quotes signed exactly as DCAP signs them, by software.

Quotes carry the measurement of `enclave.measurement` and are signed with the simulated
platform's attestation key, its QE report signed by the simulated PCK key, so `attestation/`
verifies them on the same code path as real TDX quotes; only the root differs, and that
root is trusted only when a verifier names it. Nothing here is secure: the keys are files.
"""

from __future__ import annotations

from pathlib import Path

from attestation.formats.dcap import SgxReportBody, TdReport10
from attestation.formats.dcap_encode import build_tdx_v4_quote
from enclave.measurement import expected_sim_measurement, sim_event_log
from enclave.platform.base import REPORT_DATA_SIZE, Measurement, PlatformError
from enclave.platform.sim_pki import SimPlatformError, load_sim_pki

# The simulated quoting enclave's identity (an SGX report body like a real TD QE's).
_SIM_QE_ISV_PROD_ID = 2
_SIM_QE_MR_SIGNER = bytes.fromhex("51" * 32)


class SimPlatform:
    """A simulated TDX platform backed by the files `tee-agent sim init` made."""

    name = "sim"
    simulated = True

    def __init__(
        self, directory: Path, *, config_hash: bytes | None, model_hash: bytes | None
    ) -> None:
        """Load the simulated platform in `directory` for this config and model.

        Raises:
            PlatformError: the directory is not a simulated platform.
        """
        try:
            self._pki = load_sim_pki(directory)
        except SimPlatformError as exc:
            raise PlatformError(str(exc)) from None
        self._measurement = expected_sim_measurement(config_hash, model_hash)
        self._event_log = sim_event_log(config_hash, model_hash)

    def __repr__(self) -> str:
        return f"SimPlatform(directory={str(self._pki.directory)!r})"

    def measurement(self) -> Measurement:
        return self._measurement

    def quote(self, report_data: bytes) -> bytes:
        if len(report_data) != REPORT_DATA_SIZE:
            raise PlatformError(
                f"report_data must be {REPORT_DATA_SIZE} bytes, got {len(report_data)}"
            )
        values = {name: bytes.fromhex(value) for name, value in self._measurement.values.items()}
        body = TdReport10(
            tee_tcb_svn=bytes(16),
            mr_seam=bytes(48),
            mr_signer_seam=bytes(48),
            seam_attributes=bytes(8),
            td_attributes=bytes(8),
            xfam=bytes(8),
            mr_td=values["mr_td"],
            mr_config_id=bytes(48),
            mr_owner=bytes(48),
            mr_owner_config=bytes(48),
            rtmr0=values["rtmr0"],
            rtmr1=values["rtmr1"],
            rtmr2=values["rtmr2"],
            rtmr3=values["rtmr3"],
            report_data=report_data,
        )
        qe_report = SgxReportBody(
            cpu_svn=bytes(16),
            misc_select=bytes(4),
            isv_ext_prod_id=bytes(16),
            attributes=bytes(16),
            mr_enclave=bytes(32),
            mr_signer=_SIM_QE_MR_SIGNER,
            config_id=bytes(64),
            isv_prod_id=_SIM_QE_ISV_PROD_ID,
            isv_svn=0,
            config_svn=0,
            isv_family_id=bytes(16),
            report_data=bytes(64),
        )
        return build_tdx_v4_quote(
            body=body,
            attestation_key=self._pki.attestation_key,
            qe_report=qe_report,
            pck_key=self._pki.pck_key,
            pck_chain_pem=self._pki.pck_chain_pem,
        )

    def event_log(self) -> bytes:
        return self._event_log

    def sealing_key(self) -> bytes:
        return self._pki.sealing_secret
