"""Select entries of requirements.lock by distribution name, hashes and markers kept.

The image installs the lock in two parts: llama-cpp-python alone in the builder stage
(built once into a wheel from its hash-checked source), and every other entry with
`pip install --require-hashes`. This writes either part to stdout:

    python deploy/lock_entries.py requirements.lock --only llama-cpp-python
    python deploy/lock_entries.py requirements.lock --without llama-cpp-python

An entry is a `name==version ...` line with its `--hash` continuation lines; `# via`
comments are dropped. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# A requirement line as uv writes it (scripts/lock): `name==version [; marker] \`.
_ENTRY_START = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


class LockEntryError(Exception):
    """A named distribution is not in the lock, or the lock has no entries."""


def normalize(name: str) -> str:
    """PEP 503 name normalization: runs of `-`, `_`, `.` become `-`, lowercase."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(text: str) -> list[tuple[str, str]]:
    """(normalized name, entry text with its hash lines) for each pinned entry, in order."""
    entries: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        match = _ENTRY_START.match(line)
        if match:
            entries.append((normalize(match[1]), [line]))
        elif entries and line.startswith("    --hash="):
            entries[-1][1].append(line)
    return [(name, "\n".join(lines)) for name, lines in entries]


def select(text: str, *, only: set[str] | None = None, without: set[str] | None = None) -> str:
    """The entries named in `only` (or all but those in `without`) as a requirements file.

    Raises:
        LockEntryError: a name in `only` or `without` has no entry in the lock.
    """
    entries = lock_entries(text)
    if not entries:
        raise LockEntryError("no `name==version` entries found: is this requirements.lock?")
    named = {normalize(n) for n in (only or set()) | (without or set())}
    missing = sorted(named - {name for name, _ in entries})
    if missing:
        raise LockEntryError(f"not in the lock: {', '.join(missing)}")
    wanted = {normalize(n) for n in only} if only is not None else None
    dropped = {normalize(n) for n in without or set()}
    kept = [
        entry
        for name, entry in entries
        if (wanted is None or name in wanted) and name not in dropped
    ]
    return "\n".join(kept) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path, help="requirements.lock")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--only", action="append", help="keep only this distribution")
    group.add_argument("--without", action="append", help="leave this distribution out")
    args = parser.parse_args(argv)
    try:
        text = args.lock.read_text(encoding="utf-8")
        only = set(args.only) if args.only else None
        without = set(args.without) if args.without else None
        sys.stdout.write(select(text, only=only, without=without))
    except (OSError, LockEntryError) as exc:
        print(f"lock_entries: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
