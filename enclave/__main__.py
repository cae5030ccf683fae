"""`python -m enclave`: serve the enclave, or manage the simulated platform.

    python -m enclave serve --socket DIR/enclave.sock --config FILE [--platform sim --sim-dir D]
        [--platform tdx [--sealing-key-source dstack-kms|file] [--sealing-key-file F]]
        [--lock FILE] [--host-pipe-fd N] [--die-with-parent PID]
    python -m enclave sim init [--dir D]
    python -m enclave sim quote --dir D --report-data HEX [--config FILE] [--out FILE]
        [--event-log-out FILE]
    python -m enclave measure --config FILE
    python -m enclave replay-decision RECEIPT --config FILE [--model GGUF] [--json]

`tee-agent enclave ...`, `tee-agent sim ...` and `tee-agent replay-decision ...` run the same
commands. Exit codes: 0 done, 1 refused (a replayed decision that differs), 2 bad input.
`measure` prints one JSON object on one line, as `replay-decision --json` does; either
prints `{"error": ...}` on stdout (beside the `error: ...` line on stderr) when it fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import NoReturn

from enclave.config import ConfigError, load_config
from enclave.platform.base import PlatformError
from enclave.policy import ModelError

DEFAULT_SIM_DIR = Path("var/sim-platform")


class _Misuse(SystemExit):
    """argparse's exit (code 2) for a command line it cannot use, with its message."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its subparsers too), whose exit for misuse carries the message."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise _Misuse(f"{self.prog}: {message}")


def build_parser(prog: str = "python -m enclave") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="The tee-agent enclave process.")
    parser.add_argument("--verbose", action="store_true", help="log more")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the enclave on a unix socket")
    serve.add_argument("--socket", type=Path, required=True, help="socket path in a 0700 dir")
    serve.add_argument("--config", type=Path, required=True, help="measured config (TOML)")
    serve.add_argument("--platform", choices=["sim", "tdx", "sgx"], default="sim")
    serve.add_argument("--sim-dir", type=Path, default=DEFAULT_SIM_DIR)
    serve.add_argument("--tsm-base", type=Path, help="configfs-tsm report directory (tdx)")
    serve.add_argument(
        "--sealing-key-source",
        choices=["dstack-kms", "file"],
        help="where TDX gets its sealing key (default: dstack-kms; file with --sealing-key-file)",
    )
    serve.add_argument("--sealing-key-file", type=Path, help="KMS-provisioned key (tdx)")
    serve.add_argument(
        "--dstack-endpoint", help="dstack guest agent socket or URL (tdx; default: as its SDKs)"
    )
    serve.add_argument(
        "--tdx-measurements", type=Path, help="tdx_guest sysfs measurements directory (tdx)"
    )
    serve.add_argument("--rtmr3-log", type=Path, help="event log of our RTMR3 extensions (tdx)")
    serve.add_argument(
        "--ccel", type=Path, help="the firmware's CCEL event log, served without dstack (tdx)"
    )
    serve.add_argument("--gramine-base", type=Path, help="Gramine /dev/attestation (sgx)")
    serve.add_argument("--model", type=Path, help="GGUF model for the LLM policy")
    serve.add_argument(
        "--lock", type=Path, help="hold this lock file while serving; refuse if it is held"
    )
    serve.add_argument(
        "--host-pipe-fd", type=int, help="inherited pipe from the host: stop at its end of file"
    )
    serve.add_argument(
        "--die-with-parent", type=int, metavar="PID", help="(Linux) stop when this parent exits"
    )

    sim = commands.add_parser("sim", help="the simulated TEE platform").add_subparsers(
        dest="sim_command", required=True
    )
    init = sim.add_parser("init", help="make a simulated platform (INSECURE root, keys)")
    init.add_argument("--dir", type=Path, default=DEFAULT_SIM_DIR)
    quote = sim.add_parser("quote", help="make a simulated quote for the enclave measurement")
    quote.add_argument("--dir", type=Path, default=DEFAULT_SIM_DIR)
    quote.add_argument("--report-data", required=True, help="64 bytes as 128 hex digits")
    quote.add_argument("--config", type=Path, help="measured config; rtmr0 stays zero without")
    quote.add_argument("--out", type=Path, help="write the quote here instead of hex to stdout")
    quote.add_argument(
        "--event-log-out",
        type=Path,
        metavar="FILE",
        help="also write the platform's event log (dstack JSON form) here, for "
        "`verify quote --event-log`",
    )

    measure = commands.add_parser("measure", help="print the simulated measurement for a config")
    measure.add_argument("--config", type=Path, required=True)
    measure.add_argument("--model", type=Path, help="model file (rtmr1); default: none")

    replay = commands.add_parser(
        "replay-decision", help="recompute a receipt's LLM decision and compare its hash"
    )
    replay.add_argument("receipt", type=Path, help="receipt JSON with decision_json, input_json")
    replay.add_argument("--config", type=Path, required=True, help="the measured config")
    replay.add_argument("--model", type=Path, help="the GGUF model (default: SmolLM2-135M)")
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m enclave") -> int:
    """Run one enclave command; returns its exit code (0 ok, 1 refused, 2 bad input)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(prog).parse_args(argv)
    except _Misuse as exc:
        # The command comes first, after the only top-level option, --verbose.
        if "--json" in argv or [a for a in argv if a != "--verbose"][:1] == ["measure"]:
            _print_json({"error": exc.message})
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "measure":
            return _measure(args)
        if args.command == "replay-decision":
            return _replay(args)
        if args.sim_command == "init":
            return _sim_init(args)
        return _sim_quote(args)
    except (ConfigError, PlatformError, ModelError, OSError, ValueError) as exc:
        return _fail(args, f"error: {exc}")
    except Exception as exc:
        logging.getLogger("tee_agent.enclave").debug("internal error", exc_info=True)
        return _fail(args, f"internal error: {type(exc).__name__}: {exc}")


def _print_json(value: object) -> None:
    """The one line of JSON `measure` and `replay-decision --json` print."""
    print(json.dumps(value, separators=(", ", ": ")), flush=True)


def _fail(args: argparse.Namespace, line: str) -> int:
    """`line` on stderr and, where the output is JSON, `{"error": ...}` on stdout; exit 2."""
    print(line, file=sys.stderr)
    if args.command == "measure" or getattr(args, "json", False):
        _print_json({"error": line.removeprefix("error: ")})
    return 2


def _serve(args: argparse.Namespace) -> int:
    from enclave.core import EnclaveCore
    from enclave.exclusive_lock import LockBusy, hold_exclusive_lock
    from enclave.host_watch import HostGone, die_with_parent, watch_host_pipe
    from enclave.server import PlatformChoice, ServeError, make_platform, make_policy, serve_forever

    if args.host_pipe_fd is not None:
        watch_host_pipe(args.host_pipe_fd)
    try:
        if args.die_with_parent is not None:
            die_with_parent(args.die_with_parent)
        # Before anything else, and before the socket of an enclave still serving is replaced.
        lock = hold_exclusive_lock(args.lock, "an enclave") if args.lock else None
    except LockBusy as exc:
        print(f"error: another enclave runs on this state: {exc}", file=sys.stderr)
        return 2
    except HostGone as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = load_config(args.config)
    policy = make_policy(config, args.model)
    platform = make_platform(
        PlatformChoice(
            args.platform,
            args.sim_dir,
            args.tsm_base,
            args.sealing_key_file,
            args.gramine_base,
            sealing_key_source=args.sealing_key_source,
            dstack_endpoint=args.dstack_endpoint,
            tdx_measurements=args.tdx_measurements,
            rtmr3_log=args.rtmr3_log,
            ccel=args.ccel,
        ),
        config,
        policy,
    )
    try:
        serve_forever(args.socket, EnclaveCore(platform, config, policy))
    except ServeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if lock is not None:
            lock.release()
    return 0


def _sim_init(args: argparse.Namespace) -> int:
    from enclave.platform.sim_pki import SimPlatformError, create_sim_pki

    try:
        pki = create_sim_pki(args.dir)
    except SimPlatformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"simulated platform made in {pki.directory} (INSECURE: for development and tests)")
    print(f"its root, to pass to verifiers by name: {pki.directory / 'root.pem'}")
    return 0


def _sim_quote(args: argparse.Namespace) -> int:
    from enclave.platform.sim import SimPlatform

    try:
        report_data = bytes.fromhex(args.report_data)
    except ValueError:
        raise ValueError(
            f"--report-data: expected 64 bytes as 128 hex digits, found {args.report_data!r}"
        ) from None
    config_hash = load_config(args.config).config_hash() if args.config else None
    platform = SimPlatform(args.dir, config_hash=config_hash, model_hash=None)
    quote = platform.quote(report_data)
    if args.event_log_out:
        args.event_log_out.write_bytes(platform.event_log())
        print(f"wrote the event log to {args.event_log_out}", file=sys.stderr)
    if args.out:
        args.out.write_bytes(quote)
        print(f"wrote {len(quote)} bytes to {args.out}", file=sys.stderr)
    else:
        print(quote.hex())
    return 0


def _measure(args: argparse.Namespace) -> int:
    from enclave.measurement import expected_sim_measurement

    config = load_config(args.config)
    model_hash = None
    if args.model:
        from enclave.llm_policy import sha256_file

        model_hash = sha256_file(args.model)
    measurement = expected_sim_measurement(config.config_hash(), model_hash)
    _print_json({"config_hash": config.config_hash().hex(), **measurement.values})
    return 0


def _replay(args: argparse.Namespace) -> int:
    from enclave.llm_policy import packaged_model
    from enclave.replay import ReplayError, load_recorded_decision, replay_decision

    model = args.model or packaged_model()
    if model is None:
        return _fail(args, "error: pass --model PATH (no packaged model is installed)")
    try:
        result = replay_decision(
            load_recorded_decision(args.receipt), load_config(args.config), model
        )
    except ReplayError as exc:
        return _fail(args, f"error: {exc}")
    if args.json:
        _print_json(result.__dict__)
    else:
        print(f"{'MATCH' if result.matches else 'MISMATCH'}: {result.detail}")
        if not result.matches:
            print(f"  recorded: {result.recorded}\n  replayed: {result.replayed}")
    return 0 if result.matches else 1


if __name__ == "__main__":
    # `tee-agent sim ...` runs this module; its usage lines then name `tee-agent`.
    sys.exit(main(prog=os.environ.get("TEE_AGENT_PROG", "python -m enclave")))
