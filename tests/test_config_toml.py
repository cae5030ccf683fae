"""The one TOML writer of the enclave config (`enclave.config_toml.config_toml`): what it writes
reads back to the same config and the same config hash, every key and table is commented,
decimals stay exact, and what `tee-agent init` and the devnet kit write is, value for
value, what they wrote before the writer existed (pinned config hashes)."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from devnet.dex import Dex
from devnet.enclave_config import enclave_config_toml
from enclave.config import (
    ConfigError,
    EnclaveConfig,
    FewShotExample,
    LlmPolicyConfig,
    load_config,
    parse_config,
)
from enclave.config_toml import config_toml
from host.agent_directory import enclave_config_text
from tests.enclave_harness import config_toml as harness_config

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "examples").glob("enclave*.toml"))
# The RFC 8032 test key, as in the examples: a fixed owner makes the hashes reproducible.
OWNER = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
HEADER = "A header line.\n\nAnother, after a blank one."


def _address(n: int) -> str:
    return to_checksum_address(keccak(n.to_bytes(32, "big"))[12:])


# A deployment at made-up addresses: the config only reads them.
DEX = Dex(
    chain_id=31337,
    weth=_address(1),
    usd=_address(2),
    wbtc=_address(3),
    factory=_address(4),
    router=_address(5),
    eth_usd_pair=_address(6),
    btc_usd_pair=_address(7),
    init_code_hash=bytes(32),
)
VAULT = _address(8)

# What the devnet kit writes, by the arguments its callers give (the demo, `tee-agent run`
# on a chain, the tests), and values whose text must survive exactly.
DEVNET_ARGUMENTS: dict[str, dict[str, Any]] = {
    "devnet-rule": {},
    "devnet-llm": {"policy": "llm"},
    "devnet-demo-rule": {"short_window": 4, "long_window": 12},
    "devnet-demo-llm": {"policy": "llm", "short_window": 4, "long_window": 12},
    "devnet-run-chain": {
        "clock": "wall",
        "decision_interval_seconds": 0,
        "min_seconds_between_trades": 0,
        "short_window": 2,
        "long_window": 4,
    },
    "devnet-exact-decimals": {
        "policy": "llm",
        "twap_window_seconds": 600,
        "twap_max_age_seconds": 600,
        "max_twap_deviation_bps": 5000,
        "max_notional_per_trade_usd": "250.0",
        "max_notional_per_day_usd": Decimal("1E+4"),
        "max_fee_per_gas_gwei": Decimal("12.50"),
        "max_price_move_percent": "7.5",
        "trade_fraction": Decimal("0.1"),
        "llm_model_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "llm_strategy": 'Say "hold".\nAlways.\\ \t',
    },
}

# Config hashes of what the two hand-made TOML writers (host/init_command.py's
# enclave_config_text and host/chain/localnet.py's enclave_config_toml) wrote for these
# inputs, computed with them before config_toml replaced them, and before the schema
# gained the [vault] table and market.price_move_window_seconds: what is written now,
# without those, still hashes to them. The owner key of "devnet-exact-decimals" is given in
# upper case: the kit writes it in lower case.
PINNED_BEFORE_THE_VAULT = {
    "init": "3a892a092793624d3c517fa427be2c488747ceaaf1f588d7d8f91ce525e15d5d",
    "devnet-rule": "769ebcf995dc07b2cbbf1679cc5751032a45c941569061c7b20c06bda686d600",
    "devnet-llm": "d85d7d73cd5faf096bb1acff04829afa25c2ec584a4a8fb7e00269ab68fe115a",
    "devnet-demo-rule": "1a9174d1280e2ebf4f5fc5d5cbc4bb040a4af0b381d580070061823e3ddf686d",
    "devnet-demo-llm": "287f67ee336a42951fa415d0c1233db7567c10a1db476cbf7853e4c1cf5bd7af",
    "devnet-run-chain": "c6cf3bbd0a67abfd7191e2e5f0707e6aea681d2ad3098fbfbfde56e8883d2e40",
    "devnet-exact-decimals": "15d3245690fed1224719ea112fe7ceb26d917f30b3f4af74592140bde6f18249",
}
# The hashes of the whole configs when those keys arrived (vault at VAULT), before the
# schema gained market.max_seq_gap and market.max_timestamp_gap_seconds: what is written
# now, without those, still hashes to them.
PINNED_BEFORE_THE_GAPS = {
    "init": "37a991ea189af2d3040dd978bb9e27c27d77498abc9133d7b64784b7def9acf9",
    "devnet-rule": "769cd8248e4d8becba820b8aab262bb1a53aa4a0b7ba52d572d8161f14509c38",
    "devnet-llm": "148bafbe9621e07ea7a3d1923dbe80138451670c695b6a8eef2da1dea07ab803",
    "devnet-demo-rule": "92f535ab14e79e524fd3a1573d5e0236a6753413f6512319be0604101b06d040",
    "devnet-demo-llm": "06cc51471a798256ec58005a9f5cae3599dabbe5567e65fdc287fca93cf6e349",
    "devnet-run-chain": "2a344a42ce07ae169cb6c90a31916791fbf4eeff1ece03eec4fb08f9340e15a3",
    "devnet-exact-decimals": "e2e53ede3cebb91e6dfbf57bb0fa28aa3d709174cb71a2d525ddd0ae6d1439e3",
}
# And the hashes of the whole configs, pinned when the gaps arrived, before the schema gained
# chain.replace_after_blocks: what is written now, without it, still hashes to them.
PINNED_BEFORE_THE_REPLACEMENTS = {
    "init": "6dba8bd148489bcbdd7e3351039c2e81e6dc8d8506a534f5f0168490fa2afd4b",
    "devnet-rule": "ec2c83d721e57223e341bd29f223300544217e15daa7b5a09f05eb3aeb42fba3",
    "devnet-llm": "968069e6d9182f6896a38be4a9c5fc3d206e9bb8e9a88583d24de13ab008901e",
    "devnet-demo-rule": "8d972c254bb26f3bc2e77ead754496b03a144d8578c719a04bacce44e4d5928f",
    "devnet-demo-llm": "a0694cff6ae597f57039894d9ee9caae8cab941e2e7b2c613b788f1514f8963e",
    "devnet-run-chain": "2e4faa63a4c5cefb9d9f576f0d87787fe1eca8c334c61fba423f8df3af92347a",
    "devnet-exact-decimals": "e228b19e91a59d25d8ce747e40c78f96291d3d8363ce28523b7e8a15592a7eb4",
}

# The hashes of the whole configs, pinned when chain.replace_after_blocks arrived, before
# the LLM policy's market view became configurable ([policy.llm] view, the trend alone by
# default) and its answer shrank to the action and a rationale (new examples and strategy).
PINNED_BEFORE_THE_SHORT_VIEW = {
    "init": "33bc315e82347d130e4a6a76f2961a47c1c4e09281c476a5d976f13b28a8d589",
    "devnet-rule": "330dde8ce07b4e7dc3a1b72ffd07ed430cdd3e59c5b211dd078db225d632e8c5",
    "devnet-llm": "c2e9a22729054c4d5350c8dd28cf6989b9f69a2af8d5a2fa29048820c144cde4",
    "devnet-demo-rule": "2be246a77d997fb8184ff7b3b18f197c245bcd588549f9f9c7162421247b7d5f",
    "devnet-demo-llm": "ad243b6b1e10e4f903af5842153f44e1b5f446e54b12b2c57327faee10ccde48",
    "devnet-run-chain": "132f5a9b9f3563bb82af3fa4450ac2074779c51afc30cdab8a18bb4b6fe8ab12",
    "devnet-exact-decimals": "833ba0b1f4ace680982abfed29ec663cae3bc1d4e43174f8525d75d256553c11",
}


# What the devnet kit wrote as [policy.llm] before the short view (with its own strategy).
LLM_TABLE_BEFORE = json.loads(
    (REPO / "tests" / "vectors" / "llm_table_before_the_short_view.json").read_text()
)

# The hashes of the whole configs, pinned when the short view arrived.
PINNED_HASHES = {
    "init": "33bc315e82347d130e4a6a76f2961a47c1c4e09281c476a5d976f13b28a8d589",
    "devnet-rule": "330dde8ce07b4e7dc3a1b72ffd07ed430cdd3e59c5b211dd078db225d632e8c5",
    "devnet-llm": "5e5f386cdf8b94b816613c6922ad1c8127c3c40f6c99e7dabd0af125880fb3e2",
    "devnet-demo-rule": "2be246a77d997fb8184ff7b3b18f197c245bcd588549f9f9c7162421247b7d5f",
    "devnet-demo-llm": "144c70fe4cea03244ffcfa0931d58684953dd1b84fc7d3f05e76fb82c6a43cf0",
    "devnet-run-chain": "132f5a9b9f3563bb82af3fa4450ac2074779c51afc30cdab8a18bb4b6fe8ab12",
    "devnet-exact-decimals": "9786185e458f245fafede9ae7e70b5e678ecfd6d981ead0c79d6e53785be772c",
}


def values_before_the_short_view(name: str) -> dict[str, Any]:
    """The written config's values with [policy.llm] as it was before the short view."""
    values: dict[str, Any] = parse_config(written(name), source=name).model_dump(mode="json")
    llm = values["policy"]["llm"]
    if llm is not None:
        before = dict(LLM_TABLE_BEFORE, model_sha256=llm["model_sha256"])
        if "llm_strategy" in DEVNET_ARGUMENTS[name]:
            before["strategy"] = llm["strategy"]
        values["policy"]["llm"] = before
    return values


def written(name: str) -> str:
    """The TOML that init or the devnet kit writes for the named inputs."""
    if name == "init":
        return enclave_config_text(OWNER)
    owner = OWNER.upper() if name == "devnet-exact-decimals" else OWNER
    return enclave_config_toml(DEX, owner, vault=VAULT, **DEVNET_ARGUMENTS[name])


def assert_round_trip(config: EnclaveConfig, text: str) -> None:
    again = parse_config(text, source="written")
    assert again == config
    assert again.canonical_bytes() == config.canonical_bytes()
    assert again.config_hash() == config.config_hash()


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_the_example_configs_round_trip(path: Path) -> None:
    config = load_config(path)
    text = config_toml(config, header=HEADER)
    assert_round_trip(config, text)
    # And writing what was read back gives the same text.
    assert config_toml(parse_config(text), header=HEADER) == text


@pytest.mark.parametrize("name", sorted(PINNED_HASHES))
def test_init_and_devnet_write_what_they_wrote_before(name: str) -> None:
    text = written(name)
    config = parse_config(text, source=name)
    assert config.config_hash().hex() == PINNED_HASHES[name]
    assert_round_trip(config, config_toml(config, header=HEADER))
    # Only the header tells the writers apart: the header ends at the first blank line.
    assert config_toml(config, header=HEADER).split("\n\n", 1)[1] == text.split("\n\n", 1)[1]


@pytest.mark.parametrize("name", sorted(PINNED_BEFORE_THE_VAULT))
def test_only_the_vault_and_the_price_move_window_are_new(name: str) -> None:
    values = values_before_the_short_view(name)
    del values["vault"]
    del values["chain"]["replace_after_blocks"]
    for key in ("price_move_window_seconds", "max_seq_gap", "max_timestamp_gap_seconds"):
        del values["market"][key]
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == PINNED_BEFORE_THE_VAULT[name]


@pytest.mark.parametrize("name", sorted(PINNED_BEFORE_THE_GAPS))
def test_only_the_gaps_are_new_since_the_vault(name: str) -> None:
    values = values_before_the_short_view(name)
    assert (values["market"]["max_seq_gap"], values["market"]["max_timestamp_gap_seconds"]) == (
        10**12,
        604_800,
    )
    del values["market"]["max_seq_gap"]
    del values["market"]["max_timestamp_gap_seconds"]
    del values["chain"]["replace_after_blocks"]
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == PINNED_BEFORE_THE_GAPS[name]


@pytest.mark.parametrize("name", sorted(PINNED_BEFORE_THE_REPLACEMENTS))
def test_only_replace_after_blocks_is_new_since_the_gaps(name: str) -> None:
    text = written(name)
    values = values_before_the_short_view(name)
    assert values["chain"]["replace_after_blocks"] == 3
    assert "replace_after_blocks = 3" in text  # written, with its description above it
    del values["chain"]["replace_after_blocks"]
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == PINNED_BEFORE_THE_REPLACEMENTS[name]


@pytest.mark.parametrize("name", sorted(PINNED_BEFORE_THE_SHORT_VIEW))
def test_only_the_llm_view_and_answer_are_new_since_replace_after_blocks(name: str) -> None:
    values = values_before_the_short_view(name)
    canonical = json.dumps(values, sort_keys=True, separators=(",", ":")).encode()
    assert hashlib.sha256(canonical).hexdigest() == PINNED_BEFORE_THE_SHORT_VIEW[name]
    llm = parse_config(written(name), source=name).policy.llm
    if llm is not None:  # what changed: the view, the rationale's bound, the prompt
        assert (llm.view, llm.rationale_max_chars) == (["trend"], 32)
        assert all(json.loads(example.market) for example in llm.examples)


@pytest.mark.parametrize("name", ["init", "devnet-rule", "devnet-exact-decimals"])
def test_the_vault_table_is_written_and_reads_back(name: str) -> None:
    text = written(name)
    config = parse_config(text, source=name)
    raw = tomllib.loads(text)
    assert raw["vault"] == config.vault.model_dump()
    assert raw["market"]["price_move_window_seconds"] == 3600
    # Its own header comment, right after [chain]'s keys, and a comment above every key.
    assert "\n[vault] # The GuardedVault that holds the funds" in text
    assert text.index("[chain]") < text.index("[vault]") < text.index("[tokens")
    if name == "init":
        assert config.vault.address == "0x0000000000000000000000000000000000000000"
    else:
        assert config.vault.address == VAULT
    if name == "devnet-exact-decimals":
        assert raw["vault"] == {
            "address": VAULT,
            "twap_window_seconds": 600,
            "twap_max_age_seconds": 600,
            "max_twap_deviation_bps": 5000,
        }
    else:
        assert (
            config.vault.twap_window_seconds,
            config.vault.twap_max_age_seconds,
            config.vault.max_twap_deviation_bps,
        ) == (1800, 7200, 300)
    assert_round_trip(config, config_toml(config, header=HEADER))


def test_the_header_opens_the_file_as_comments() -> None:
    text = config_toml(load_config(EXAMPLES[0]), header=HEADER)
    assert text.startswith("# A header line.\n#\n# Another, after a blank one.\n\n[chain]")
    init = enclave_config_text(OWNER)
    assert init.startswith("# tee-agent enclave configuration, written by `tee-agent init`.")
    assert "owner.key" in init.split("\n\n")[0]
    devnet = written("devnet-rule")
    assert devnet.startswith("# tee-agent enclave configuration for a local Uniswap V2")


@pytest.mark.parametrize("name", ["init", "devnet-llm"])
def test_every_table_and_every_key_carries_a_comment(name: str) -> None:
    lines = written(name).splitlines()
    keys = tables = 0
    for index, line in enumerate(lines):
        if line.startswith("["):
            tables += 1
            assert re.fullmatch(r"\[\[?[\w.]+\]\]? # \S.*", line), line
        elif re.match(r"^\w+ = ", line):
            keys += 1
            assert lines[index - 1].startswith("# "), line
    assert tables >= 7 and keys >= 25


def test_decimals_are_exact_and_never_floats() -> None:
    text = written("devnet-exact-decimals")
    raw = tomllib.loads(text)
    rails, market = raw["guardrails"], raw["market"]
    # Integral text as a TOML integer; anything else as its exact text.
    assert rails["max_slippage_bps"] == 100 and rails["min_seconds_between_trades"] == 3600
    assert rails["max_notional_per_trade_usd"] == "250.0"
    assert rails["max_notional_per_day_usd"] == "1E+4"
    assert rails["max_fee_per_gas_gwei"] == "12.50"
    assert market["max_price_move_percent"] == "7.5"
    assert raw["policy"]["rule"]["trade_fraction"] == "0.1"
    assert raw["policy"]["llm"]["timeout_seconds"] == 30
    config = parse_config(text)
    assert str(config.guardrails.max_notional_per_trade_usd) == "250.0"
    assert not re.search(r"= -?\d+\.\d", text), "a float was written"


def test_a_float_is_refused_rather_than_rounded() -> None:
    config = load_config(EXAMPLES[0])
    # model_copy does not validate: the only way a float gets into a config.
    broken = config.model_copy(
        update={"market": config.market.model_copy(update={"max_price_move_percent": 0.1})}
    )
    with pytest.raises(TypeError, match="float"):
        config_toml(broken, header="")


@settings(max_examples=60, deadline=None)
@given(
    strategy=st.text(min_size=1, max_size=200),
    market=st.text(min_size=2, max_size=100),
    decision=st.text(min_size=2, max_size=100),
)
def test_any_text_round_trips(strategy: str, market: str, decision: str) -> None:
    base = load_config(REPO / "examples" / "enclave-llm.toml")
    assert base.policy.llm is not None
    llm = LlmPolicyConfig(
        strategy=strategy,
        examples=[FewShotExample(market=market, decision=decision)],
        model_sha256=base.policy.llm.model_sha256,
    )
    config = base.model_copy(update={"policy": base.policy.model_copy(update={"llm": llm})})
    assert_round_trip(config, config_toml(config, header=HEADER))


# -- the vault's settings -------------------------------------------------------------------


def test_the_vault_table_is_required() -> None:
    text = harness_config(OWNER)
    start = text.index("[vault]")
    without = text[:start] + text[text.index("[tokens.WETH]") :]
    with pytest.raises(ConfigError, match=r"^config: vault: Field required$"):
        parse_config(without)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"twap_window_seconds": 59}, "vault.twap_window_seconds: Input should be greater than or equal to 60"),
        ({"twap_window_seconds": 7201}, "twap_max_age_seconds (7200) must be at least twap_window_seconds (7201)"),
        ({"twap_max_age_seconds": 1799}, "twap_max_age_seconds (1799) must be at least twap_window_seconds (1800)"),
        ({"max_twap_deviation_bps": 0}, "vault.max_twap_deviation_bps: Input should be greater than or equal to 1"),
        ({"max_twap_deviation_bps": 5001}, "vault.max_twap_deviation_bps: Input should be less than or equal to 5000"),
        ({"address": "0x1234"}, "vault.address: Value error, expected a 0x-prefixed 20-byte hex address"),
        ({"price_move_window_seconds": 0}, "market.price_move_window_seconds: Input should be greater than or equal to 1"),
        ({"price_move_window_seconds": 31_536_001}, "market.price_move_window_seconds: Input should be less than or equal to 31536000"),
    ],
)  # fmt: skip
def test_vault_and_window_settings_out_of_range_are_refused(
    settings: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config(harness_config(OWNER, **settings))
    assert problem in str(refused.value)


def test_vault_settings_at_their_bounds_are_accepted() -> None:
    config = parse_config(
        harness_config(
            OWNER,
            twap_window_seconds=60,
            twap_max_age_seconds=60,
            max_twap_deviation_bps=5000,
            price_move_window_seconds=31_536_000,
        )
    )
    assert (config.vault.twap_window_seconds, config.vault.twap_max_age_seconds) == (60, 60)
    assert config.vault.max_twap_deviation_bps == 5000
    assert (
        parse_config(harness_config(OWNER, max_twap_deviation_bps=1)).vault.max_twap_deviation_bps
        == 1
    )
