"""Textual key names → the bytes an xterm sends, so every key reaches the guest as typed.

Pure functions, no widget state: the console passes in whether the guest asked for
application cursor keys (DECCKM), which changes arrows/Home/End from ESC [ A to ESC O A.
"""

from __future__ import annotations

_CURSOR_FINALS = {"up": "A", "down": "B", "right": "C", "left": "D", "home": "H", "end": "F"}
_TILDE_CODES = {"insert": 2, "delete": 3, "pageup": 5, "pagedown": 6}
_FUNCTION_SS3 = {"f1": "P", "f2": "Q", "f3": "R", "f4": "S"}
_FUNCTION_TILDE = {
    "f5": 15, "f6": 17, "f7": 18, "f8": 19, "f9": 20, "f10": 21, "f11": 23, "f12": 24,
}
_PLAIN = {
    "enter": b"\r",
    "tab": b"\t",
    "shift+tab": b"\x1b[Z",
    "backspace": b"\x7f",
    "ctrl+backspace": b"\x08",
    "escape": b"\x1b",
    "space": b" ",
    "ctrl+space": b"\x00",
    "ctrl+@": b"\x00",
    "ctrl+at": b"\x00",
    "ctrl-at": b"\x00",
    "ctrl+backslash": b"\x1c",
    "ctrl+right_square_bracket": b"\x1d",
    "ctrl+circumflex_accent": b"\x1e",
    "ctrl+underscore": b"\x1f",
    "ctrl+left_square_bracket": b"\x1b",
}
# xterm modifier parameter: 1 + shift(1) + alt(2) + ctrl(4).
_MODIFIER_BITS = {"shift": 1, "alt": 2, "meta": 2, "ctrl": 4}


def _split_modifiers(key: str) -> tuple[int, str]:
    """("ctrl+shift+up") → (5, "up"): the xterm modifier bits and the bare key name."""
    parts = key.split("+")
    bits = 0
    while len(parts) > 1 and parts[0] in _MODIFIER_BITS:
        bits |= _MODIFIER_BITS[parts.pop(0)]
    return bits, "+".join(parts)


def encode_key(key: str, character: str | None, *, app_cursor_keys: bool = False) -> bytes | None:
    """The bytes for one Textual key event, or None if the key has no terminal encoding.

    Args:
        key: Textual's key name (`event.key`), e.g. "a", "ctrl+c", "shift+up", "f5".
        character: `event.character` (the printable text, if any).
        app_cursor_keys: the guest set DECCKM (ESC [?1h): unmodified cursor keys use SS3.
    """
    if key in _PLAIN:
        return _PLAIN[key]
    bits, bare = _split_modifiers(key)
    if bare in _CURSOR_FINALS:
        final = _CURSOR_FINALS[bare]
        if bits:
            return f"\x1b[1;{1 + bits}{final}".encode()
        return f"\x1bO{final}".encode() if app_cursor_keys else f"\x1b[{final}".encode()
    if bare in _TILDE_CODES:
        code = _TILDE_CODES[bare]
        return (f"\x1b[{code};{1 + bits}~" if bits else f"\x1b[{code}~").encode()
    if bare in _FUNCTION_SS3:
        final = _FUNCTION_SS3[bare]
        return (f"\x1b[1;{1 + bits}{final}" if bits else f"\x1bO{final}").encode()
    if bare in _FUNCTION_TILDE:
        code = _FUNCTION_TILDE[bare]
        return (f"\x1b[{code};{1 + bits}~" if bits else f"\x1b[{code}~").encode()
    if bits & 4 and len(bare) == 1 and bare.isascii() and bare.isalpha():
        code = bytes([ord(bare.lower()) & 0x1F])
        return b"\x1b" + code if bits & 2 else code
    if bits & 2 and bits & 4 == 0:
        # Alt/Meta + key: ESC prefix, as xterm does with metaSendsEscape.
        rest = encode_key(bare if not bits & 1 else f"shift+{bare}", character, app_cursor_keys=app_cursor_keys)
        if rest is None and len(bare) == 1:
            rest = bare.encode()
        return b"\x1b" + rest if rest else None
    if character is not None and character != "" and (character.isprintable() or character == " "):
        return character.encode("utf-8", "surrogateescape")
    if character is not None and len(character) == 1 and ord(character) < 0x20:
        return character.encode()  # a control character Textual did not name
    return None
