"""Text that is safe to print on a terminal.

File names, document text, model output and server messages are untrusted: an escape sequence in
them can recolour or clear the screen, rewrite the window title, write the clipboard (OSC 52),
plant a fake hyperlink (OSC 8), and bidi overrides can make ``evil.exe‮fdp.pdf`` read as a PDF.
:func:`printable` removes escape sequences whole and makes every other control character
visible as an escape (``\\x07``, ``\\u202e``), so what is shown is what is there.
"""

from __future__ import annotations

import re

# Complete escape sequences (ECMA-48), 7-bit and 8-bit forms: CSI (ESC [ or 0x9B), parameters
# and a final byte; OSC/DCS/SOS/PM/APC strings with their terminator (BEL or ST: ESC \ or 0x9C);
# other ESC sequences (ESC 7, ESC c, ESC ( B). An incomplete one is not removed: its introducer is
# escaped like any control character, which leaves the rest as plain text (a stray C1 byte in
# mis-decoded text must not swallow the paragraph after it).
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
    r"|\x1b(?![\[\]PX^_])[\x20-\x2f]*[\x30-\x7e]"
)
# C0 and DEL, C1, bidi embeddings/overrides/isolates and marks, line and paragraph separators
# (some terminals and editors break lines on them).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def printable(text: str, *, newlines: bool = True) -> str:
    """``text`` with escape sequences removed and other control characters shown as visible
    escapes (``\\x07``, ``\\u202e``). Newlines and tabs are kept (``\\r\\n`` as ``\\n``, so
    Windows line ends do not show up as ``\\r``) unless ``newlines=False``, for one-line fields
    such as a file name."""
    if newlines:
        text = text.replace("\r\n", "\n")
    text = _SEQUENCE.sub("", text)
    keep = "\n\t" if newlines else ""
    return _CONTROL.sub(lambda m: m.group(0) if m.group(0) in keep else _escape(m.group(0)), text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
