"""
JSON from outside (WebSocket messages, request bodies), read once for every
adapter: L{loads} is C{json.loads} that also refuses a lone surrogate.
And JSON out, on the hot paths: L{encoder}.

JSON may spell one (C{"\\ud800"}) though no UTF-8 text can carry it: taken
in, it would be stored and then fail every later encoding of its message,
for every receiver and every replay of the chat.  Refused here, it is a bad
request like any other malformed JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json import encoder as _json
from typing import Any

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(data: bytes | str) -> Any:
    """
    C{json.loads(data)}, bytes as UTF-8 (strictly); C{ValueError} for bad
    JSON, bad UTF-8 (C{UnicodeDecodeError}) and a lone surrogate.
    """
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    value = json.loads(text)
    if _SURROGATE_ESCAPE.search(text) is not None:
        # Rare: escapes of the surrogate range, paired (one character once
        # read, which encodes) or lone (which does not).
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a \\uD800-\\uDFFF escape that is not half of a pair") from None
    return value


def encoder(
    *, compact: bool = False, sortKeys: bool = False, ensureAscii: bool = True
) -> Callable[[Any], str]:
    """
    C{json.JSONEncoder(...).encode} with these options, made once: the
    standard library's C encoder, built here rather than on each call as
    C{JSONEncoder.encode} does (a message's encoding costs half as much).
    No check for circular structures (they end in C{RecursionError}); our
    messages are trees.
    """
    separators = (",", ":") if compact else (", ", ": ")
    base = json.JSONEncoder(separators=separators, sort_keys=sortKeys, ensure_ascii=ensureAscii)
    make = getattr(_json, "c_make_encoder", None)
    if make is None:  # no C accelerator: the standard path
        return base.encode
    strings = _json.encode_basestring_ascii if ensureAscii else _json.encode_basestring
    encode = make(
        None, base.default, strings, None, separators[1], separators[0], sortKeys, False, True
    )
    join = "".join

    def encodeOne(value: Any) -> str:
        return join(encode(value, 0))

    return encodeOne
