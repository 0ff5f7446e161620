"""JSON in and out of the database, fast on the hot path and lossless at the edges.

A version document is written once per version, so its encoding is on the backup's hot path:
orjson encodes one in under a microsecond where `json` takes ten. orjson refuses what it cannot
write exactly (integers past 64 bits, non-string keys), and those documents go through `json`.
It would write NaN and Infinity as null, so `load_json` reads them as `NonFinite`, a float
orjson refuses: they too go through `json` and come out as they went in.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_COMPACT_SORTED = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class NonFinite(float):
    """NaN or ±Infinity read from stored JSON (which `json` accepts and orjson would null)."""


_DECODER = json.JSONDecoder(parse_constant=NonFinite)


def load_json(text: str | bytes) -> Any:
    """Parse stored JSON (drivers hand over UTF-8 bytes or str); NaN and Infinity become
    `NonFinite`. One decoder for every call: `json.loads` with options builds one per call."""
    return _DECODER.decode(text if isinstance(text, str) else bytes(text).decode("utf-8"))


def dump_sorted(document: Any) -> bytes:
    """Compact UTF-8 JSON with sorted keys: the same bytes whichever encoder writes them."""
    try:
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return _COMPACT_SORTED.encode(document).encode("utf-8")
