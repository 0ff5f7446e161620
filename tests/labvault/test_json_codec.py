"""Version documents are encoded fast, and never at the price of a changed value."""

from __future__ import annotations

import json
import math

import pytest

from labvault.json_codec import dump_sorted, load_json


@pytest.mark.parametrize("text", [
    '{"b": 1, "a": {"z": [1, 2.5, "é", null, true], "y": "\\u2028"}, "😀": "x", "é": 0}',
    '{"big": 123456789012345678901234567890, "neg": -123456789012345678901234567890}',
    '{"nan": NaN, "inf": Infinity, "minus": -Infinity}',
    '{"small": 1e-300, "exp": 1e16, "float": 0.1}',
])
def test_a_document_comes_out_sorted_compact_and_equal_to_what_json_writes(text: str) -> None:
    document = load_json(text.encode("utf-8"))
    out = dump_sorted(document)
    assert out == json.dumps(document, ensure_ascii=False, sort_keys=True,
                             separators=(",", ":")).encode("utf-8")
    assert list(json.loads(out)) == sorted(json.loads(out))


def test_values_orjson_cannot_hold_survive_the_round_trip() -> None:
    document = load_json('{"big": 123456789012345678901234567890, "nan": NaN, "inf": -Infinity}')
    again = json.loads(dump_sorted(document))
    assert again["big"] == 123456789012345678901234567890
    assert math.isnan(again["nan"]) and again["inf"] == -math.inf
