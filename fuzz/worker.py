"""One target under atheris: `python -m fuzz.worker TARGET [libFuzzer arguments]`.

The project's packages are imported under atheris' instrumentation, so libFuzzer sees the
coverage of the parsers (and of the host's servicer threads) as it mutates the inputs.
`./fuzz/run` starts this; run it by hand to replay a finding:
`python -m fuzz.worker quotes fuzz/findings/quotes/crash-...`.
"""

from __future__ import annotations

import importlib
import sys

import atheris

from fuzz import TARGETS

INSTRUMENTED = ["attestation", "enclave", "host", "wire", "fuzz"]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        print(f"usage: python -m fuzz.worker TARGET [libFuzzer flags]; targets: {', '.join(TARGETS)}",
              file=sys.stderr)  # fmt: skip
        sys.exit(2)
    target = sys.argv[1]
    with atheris.instrument_imports(include=INSTRUMENTED):
        module = importlib.import_module(f"fuzz.{target}")
    prepare = getattr(module, "prepare", None)
    if prepare is not None:
        prepare()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], module.TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
