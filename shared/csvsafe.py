"""CSV cells that a spreadsheet will not run as formulas (OSM names, for one, are editable by anyone)."""

from __future__ import annotations

import re

__all__ = ["safe_cell"]

# A cell starting with one of these is read as a formula by Excel, LibreOffice and Sheets.
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def safe_cell(value: object) -> object:
    """Prefix a formula-like text cell with `'` (OWASP CSV injection); numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_TRIGGERS) and not _NUMBER.match(value):
        return "'" + value
    return value
