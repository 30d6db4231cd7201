"""Text from documents and file names made safe to print on a terminal.

A file name or a paragraph may hold escape sequences (ESC [2J clears the screen, OSC sets the
window title, BEL rings) or bidirectional overrides that make text read differently from what
it is. rich's markup escaping does not touch them: they are replaced here before printing.
"""

from __future__ import annotations

import re

# C0 controls except \t and \n, DEL, C1 controls, and the bidi embedding/override/isolate marks.
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` with control characters shown as visible escapes (``\\x1b``); with
    ``newlines=False`` line breaks and tabs are escaped too (for one-line fields)."""
    pattern = _UNSAFE if newlines else re.compile(_UNSAFE.pattern[:-1] + r"\t\n]")
    return pattern.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)
