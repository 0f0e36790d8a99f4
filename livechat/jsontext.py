"""
JSON from outside (WebSocket messages, request bodies), read once for every
adapter: L{loads} is C{json.loads} that also refuses a lone surrogate.

JSON may spell one (C{"\\ud800"}) though no UTF-8 text can carry it: taken
in, it would be stored and then fail every later encoding of its message,
for every receiver and every replay of the chat.  Refused here, it is a bad
request like any other malformed JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def loads(data: bytes | str) -> Any:
    """C{json.loads(data)}; C{ValueError} for bad JSON and for a lone surrogate."""
    value = json.loads(data)
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if _SURROGATE_ESCAPE.search(raw) is not None:
        # Rare: escapes of the surrogate range, paired (one character once
        # read, which encodes) or lone (which does not).
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a \\uD800-\\uDFFF escape that is not half of a pair") from None
    return value
