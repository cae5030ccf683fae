"""Plain seeded mutations of seed inputs, for a short fuzz pass without atheris
(tests/test_fuzz_smoke.py): the kinds of edits libFuzzer makes, far fewer of them."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

# Values that sit on edges: lengths, counts and integers near their limits.
INTERESTING = (
    b"\x00",
    b"\xff",
    b"\x7f",
    b"\x80",
    b"\x00\x00",
    b"\xff\xff",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x80",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    b"-1",
    b"1e999",
    b"NaN",
    b'""',
    b"[]",
    b"{}",
    b"null",
)


def mutate(data: bytes, rng: random.Random, others: Sequence[bytes] = ()) -> bytes:
    """`data` with one to four random edits: bit flips, byte sets, inserts, deletes,
    duplicated or spliced ranges, truncation, edge values."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            index = rng.randrange(len(out))
            out[index] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif kind == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif kind == 3 and out:
            del out[at : at + rng.randint(1, 16)]
        elif kind == 4 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 32)]
        elif kind == 5 and others:
            other = rng.choice(others)
            start = rng.randrange(len(other) + 1)
            out[at:] = other[start:]
        elif kind == 6:
            del out[at:]
        else:
            value = rng.choice(INTERESTING)
            out[at : at + len(value)] = value
    return bytes(out)


def inputs(seeds: Sequence[bytes], count: int, seed: int) -> Iterator[bytes]:
    """The seeds, then `count` inputs: mostly mutated seeds, some random bytes."""
    rng = random.Random(seed)  # noqa: S311 (reproducible test inputs, not secrets)
    yield from seeds
    for _ in range(count):
        if not seeds or rng.random() < 0.1:
            yield rng.randbytes(rng.randint(0, 64))
        else:
            yield mutate(rng.choice(seeds), rng, seeds)
