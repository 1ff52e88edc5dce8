"""JSON read through orjson (answers and manifests run to megabytes; the standard library is several times
slower), with the standard library reading what orjson refuses (NaN and Infinity literals, integers beyond
64 bits, a lone surrogate escape), so what a document means never depends on the decoder."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: str | bytes) -> Any:
    """The document in `data` (bytes are UTF-8); ValueError when neither decoder reads it."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
