"""json.loads with a bound on nesting depth, for JSON that arrives from outside.

The json module recurses once per nesting level. Under the default recursion limit deep
nesting raises RecursionError, but py_ecc (imported by eth_account, which the host and the
enclave use) raises the limit to 100000 at import, and then the C decoder overflows the
stack and the process dies before the limit is reached. Counting the depth first, without
recursion, refuses such input as a ValueError in every process.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Far deeper than any collateral or receipts file (TCB Info nests about 6 levels), far
# shallower than what strains the stack.
MAX_JSON_DEPTH = 100

_TOKEN = re.compile(r'["\[\]{}]')
# The rest of a string after its opening quote, in the unrolled form that never backtracks.
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def loads_bounded(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads, refusing arrays and objects nested more than `max_depth` levels deep.

    Raises:
        ValueError: the text is not JSON (json.JSONDecodeError), not in a JSON encoding
            (UnicodeDecodeError), or nested deeper than `max_depth`.
    """
    if isinstance(text, bytes):
        # The same decoding json.loads applies to bytes, done here so the scan sees text.
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    depth = 0
    position = 0
    while (token := _TOKEN.search(text, position)) is not None:
        char = token.group()
        position = token.end()
        if char == '"':
            rest = _STRING_REST.match(text, position)
            if rest is None:
                break  # an unterminated string: json.loads reports it
            position = rest.end()
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(
                    f"JSON nested too deeply: expected at most {max_depth} levels of arrays "
                    f"and objects, found more at character {token.start()}"
                )
        else:
            depth -= 1
    return json.loads(text)
