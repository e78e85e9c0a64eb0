"""Command-line arguments the tests pass to the ``rsvg`` commands."""

from __future__ import annotations

from collections.abc import Iterable


def set_args(items: Iterable[str]) -> list[str]:
    """``["--set", item, ...]``: one config override per item, as ``rsvg train --set section.key=value`` takes them."""
    return [arg for item in items for arg in ("--set", item)]
