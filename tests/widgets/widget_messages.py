"""Reading what a widget sent on ipywidgets' dummy comm."""

from __future__ import annotations

import json


def sent(widget) -> list[dict]:
    """The messages ``widget`` sent to the browser since it was made (or last cleared)."""
    return [kwargs.get("data", args[0] if args else None) for args, kwargs in widget.comm.messages]


def size(message: dict) -> int:
    """A message's size in bytes as JSON (what the comm puts on the wire, before the header)."""
    return len(json.dumps(message, separators=(",", ":")).encode())
