"""The refused ticks of one Ingest, summarised for one receipt.

A refused tick (but a duplicate) is evidence the agent saw and rejected it, so it must
reach a receipt; one receipt per tick, though, lets a single client grow the enclave's
pending output by about 0.8 KB a tick, without bound. So every Ingest that refuses ticks
writes exactly one receipt for them: verdict "ticks_refused:<count>", and as its input the
counts by reason, the first and last refused seq, and the whole of the first and last
refused ticks. Its size is bounded whatever the batch holds (the reasons are a fixed set).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from wire.ticks import DUPLICATE_SEQ, Tick

VERDICT_PREFIX = "ticks_refused:"


@dataclass
class RefusalTally:
    """Counts refused ticks by reason, and keeps the first and the last of them."""

    by_reason: Counter[str] = field(default_factory=Counter)
    first: Tick | None = None
    last: Tick | None = None

    def add(self, tick: Tick, reason: str) -> None:
        """Count `tick` as refused for `reason`; duplicates are counted but not kept as
        evidence (a replayed tick is not a new observation)."""
        self.by_reason[reason] += 1
        if reason == DUPLICATE_SEQ:
            return
        if self.first is None:
            self.first = tick
        self.last = tick

    @property
    def evidence(self) -> int:
        """Refused ticks that need a receipt: all but the duplicates."""
        if self.first is None:  # none kept as evidence: none refused, or only duplicates
            return 0
        return sum(count for reason, count in self.by_reason.items() if reason != DUPLICATE_SEQ)

    def verdict(self) -> str:
        return f"{VERDICT_PREFIX}{self.evidence}"

    def input_json(self) -> str:
        """The receipt's input: canonical JSON of the counts and the first and last tick."""
        assert self.first is not None and self.last is not None
        summary = {
            "by_reason": dict(sorted(self.by_reason.items())),
            "first_seq": self.first.seq,
            "last_seq": self.last.seq,
            "first": self.first.as_dict(),
            "last": self.last.as_dict(),
        }
        return json.dumps(summary, sort_keys=True, separators=(",", ":"))
