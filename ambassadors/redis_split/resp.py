"""RESP framing: where commands and replies begin and end.

The proxy forwards bytes; it never needs the payload as Python objects. The scanners here only
find frame boundaries (jumping over bulk payloads by their declared length) and pick out the
command name and a few short leading arguments that routing needs. Both scanners are resumable:
when a frame is incomplete they remember how far they got, so a large frame arriving in many
chunks is scanned once, not once per chunk.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

# Redis's own limits (proto-max-bulk-len, the multibulk cap, PROTO_INLINE_MAX_SIZE): a client
# cannot make us hold more than a real Redis would accept.
MAX_BULK = 512 * 1024 * 1024
MAX_MULTIBULK = 1024 * 1024
MAX_INLINE = 64 * 1024
# Routing looks at the name and a few options (SCRIPT LOAD, XREAD ... BLOCK, CLIENT SETNAME);
# arguments beyond these or longer than this are skipped, never copied.
PEEK_ARGS = 8
PEEK_LEN = 64
# Nesting/element cap for replies from upstream: a broken upstream must not make us loop forever.
MAX_REPLY_ELEMENTS = 1 << 31


class ProtocolError(Exception):
    """The client sent something that is not RESP; the reply is a RESP error, then close."""


# Not frozen: a frozen dataclass's __init__ goes through object.__setattr__ per field, and one
# Command is built per forwarded request.
@dataclass(slots=True)
class Command:
    """One request frame: ``data[start:end]`` in the scanned buffer."""

    start: int
    end: int
    name: bytes  # lower-case
    args: tuple[bytes, ...]  # the first PEEK_ARGS short arguments after the name, as sent
    argc: int  # number of arguments including the name
    # An inline command, as the RESP request that is forwarded instead of the line: Redis then
    # runs exactly the arguments the routing looked at. None: a RESP request, sent as it came.
    encoded: bytes | None


def _parse_length(buf: bytes | bytearray, start: int, eol: int, what: str) -> int:
    raw = buf[start:eol]
    if raw.isdigit() and eol - start <= 12:
        return int(raw)  # the common case, checked first
    # int() accepts "+1", " 1" and "1_0"; Redis does not, and neither do we.
    if not raw or not (raw.isdigit() or (raw[:1] == b"-" and raw[1:].isdigit())):
        raise ProtocolError(f"Protocol error: invalid {what} length")
    if len(raw) > 12:
        raise ProtocolError(f"Protocol error: invalid {what} length")
    return int(raw)


# Command names as sent -> lower case; clients send the same few names over and over, so the
# lowering (and the bytes object) is shared. Bounded: arbitrary names must not grow it forever.
_NAMES: dict[bytes, bytes] = {}
_NAMES_MAX = 4096


def lower_name(raw: bytes) -> bytes:
    name = _NAMES.get(raw)
    if name is None:
        name = raw.lower() or b"\x00"
        if len(_NAMES) < _NAMES_MAX:
            _NAMES[raw] = name
    return name


class RequestScanner:
    """Scans client requests: RESP multibulk arrays of bulk strings, or inline commands."""

    __slots__ = (
        "_argc",
        "_args",
        "_bulk_left",
        "_left",
        "_name",
        "_name_only",
        "_pos",
        "_start",
        "streaming",
    )

    def __init__(self, name_only: Container[bytes] = ()) -> None:
        # Commands routed by their name alone (the router says which): their arguments are
        # not copied out of the buffer, which is most of the scanning cost of a SET or GET.
        self._name_only = name_only
        self._start = -1  # start of the frame in progress, -1 when between frames
        self._pos = 0
        self._left = 0
        self._argc = 0
        self._name = b""
        self._args: list[bytes] = []
        self._bulk_left = 0
        self.streaming = False  # the frame in progress is being forwarded piecewise (advance)

    def rebase(self, consumed: int) -> None:
        """The caller dropped ``consumed`` bytes from the front of its buffer."""
        if self._start >= 0 or self.streaming:
            self._start -= consumed
            self._pos -= consumed

    def partial(self) -> Command | None:
        """The incomplete frame in progress, once its name is known: enough to route it before
        it has all arrived (``end`` is -1). None between frames or before the name."""
        if self._start < 0 or self.streaming or not self._name:
            return None
        return Command(self._start, -1, self._name, tuple(self._args), self._argc, None)

    @property
    def frame_start(self) -> int:
        return self._start

    def advance(self, buf: bytes | bytearray) -> tuple[int, bool]:
        """Streaming: consume the frame in progress as far as it is buffered, stepping into
        bulk payloads; returns ``(end, complete)``. The caller forwards the bytes up to ``end``,
        drops them and calls ``rebase``. (Payload bytes are counted, not inspected.)"""
        self.streaming = True
        n = len(buf)
        pos = self._pos
        while True:
            if self._bulk_left:
                take = min(self._bulk_left, n - pos)
                pos += take
                self._bulk_left -= take
                if self._bulk_left:
                    break
                self._left -= 1
            if not self._left:
                self._start = -1
                self._pos = pos
                self.streaming = False
                return pos, True
            if pos >= n:
                break
            if buf[pos] != 36:  # '$'
                raise ProtocolError(f"Protocol error: expected '$', got '{chr(buf[pos])}'")
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if n - pos > 32:
                    raise ProtocolError("Protocol error: invalid bulk length")
                break
            length = _parse_length(buf, pos + 1, eol, "bulk")
            if length < 0 or length > MAX_BULK:
                raise ProtocolError("Protocol error: invalid bulk length")
            pos = eol + 2
            self._bulk_left = length + 2
        self._pos = pos
        return pos, False

    def scan(self, buf: bytes | bytearray, pos: int) -> Command | None:
        """The next complete command at or after ``pos``, or None when more bytes are needed.

        ``pos`` is ignored while a frame is in progress (its position is remembered)."""
        if self._start < 0:
            # Blank lines between commands are ignored by Redis (no reply); so here.
            n = len(buf)
            while pos < n and buf[pos] in (13, 10):
                pos += 1
            if pos >= n:
                return None
            if buf[pos] != 42:  # not '*': an inline command
                return self._scan_inline(buf, pos)
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if n - pos > MAX_INLINE:
                    raise ProtocolError("Protocol error: too big mbulk count string")
                return None
            count = _parse_length(buf, pos + 1, eol, "multibulk")
            if count > MAX_MULTIBULK:
                raise ProtocolError("Protocol error: invalid multibulk length")
            if count <= 0:
                # "*0\r\n" and "*-1\r\n" are silently skipped by Redis: consume, no reply.
                self._start = -1
                return self.scan(buf, eol + 2)
            self._start = pos
            self._pos = eol + 2
            self._left = count
            self._argc = count
            self._name = b""
            self._args = []
        return self._scan_bulks(buf)

    def _scan_bulks(self, buf: bytes | bytearray) -> Command | None:
        # Hot loop: state lives in locals and is written back only when the frame is
        # incomplete (attribute access per argument was a large share of the per-command cost).
        n = len(buf)
        pos = self._pos
        left = self._left
        name = self._name
        args = self._args
        find = buf.find
        name_only = self._name_only
        peek = 0 if name and name in name_only else PEEK_ARGS
        while left:
            if pos >= n:
                self._pos, self._left, self._name = pos, left, name
                return None
            if buf[pos] != 36:  # '$'
                raise ProtocolError(f"Protocol error: expected '$', got '{chr(buf[pos])}'")
            eol = find(b"\r\n", pos)
            if eol < 0:
                if n - pos > 32:
                    raise ProtocolError("Protocol error: invalid bulk length")
                self._pos, self._left, self._name = pos, left, name
                return None
            raw = buf[pos + 1 : eol]
            if raw.isdigit() and eol - pos <= 13:
                length = int(raw)  # the common case, inline
            else:
                length = _parse_length(buf, pos + 1, eol, "bulk")
            if length < 0 or length > MAX_BULK:
                raise ProtocolError("Protocol error: invalid bulk length")
            start = eol + 2
            end = start + length
            if end + 2 > n:
                self._pos, self._left, self._name = pos, left, name
                return None
            if buf[end] != 13 or buf[end + 1] != 10:
                raise ProtocolError("Protocol error: bulk not terminated by CRLF")
            if not name:
                name = lower_name(bytes(buf[start:end]))
                if name in name_only:
                    peek = 0
            elif len(args) < peek:
                # Keep positions meaningful: a long argument is represented, not copied.
                args.append(bytes(buf[start:end]) if length <= PEEK_LEN else b"")
            pos = end + 2
            left -= 1
        self._left = 0
        self._name = name
        self._start, start = -1, self._start
        return Command(start, pos, name, tuple(args), self._argc, None)

    def _scan_inline(self, buf: bytes | bytearray, pos: int) -> Command | None:
        eol = buf.find(b"\n", pos)
        if eol < 0:
            if len(buf) - pos > MAX_INLINE:
                raise ProtocolError("Protocol error: too big inline request")
            return None
        if eol - pos > MAX_INLINE:
            raise ProtocolError("Protocol error: too big inline request")
        line = bytes(buf[pos:eol])
        if line.endswith(b"\r"):
            line = line[:-1]  # (Redis drops one CR before the LF, no more)
        words = split_inline(line)
        if not words:
            self._start = -1
            return self.scan(buf, eol + 1)
        return Command(
            start=pos,
            end=eol + 1,
            name=words[0].lower(),
            args=tuple(w for w in words[1 : 1 + PEEK_ARGS]),
            argc=len(words),
            encoded=encode_command(*words),
        )


# What plain ``bytes.split`` would not split as Redis does: quotes, a NUL, and \v and \f (blanks
# between arguments but not inside one).
_UNQUOTED_SPECIAL = re.compile(rb"[\"'\x00\x0b\x0c]")
_SPACE = frozenset(b" \t\n\r\x0b\x0c")  # C isspace()
_TOKEN_END = frozenset(b" \t\n\r")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")
_BACKSLASH, _DOUBLE_QUOTE, _SINGLE_QUOTE = b"\\\"'"


def split_inline(line: bytes) -> list[bytes]:
    """An inline command's arguments, split as Redis splits them (``sdssplitargs``): blanks
    separate arguments; "double quotes" take the escapes \\n \\r \\t \\b \\a \\xHH and a
    backslash before any other character; 'single quotes' take only \\'; a closing quote must
    end the argument.

    A NUL byte is refused: Redis looks for the end of an inline line with ``strchr``, which
    stops at a NUL, so it would never run the line and would take whatever followed on the
    connection as part of it until 64 KiB had piled up."""
    if _UNQUOTED_SPECIAL.search(line) is None:
        return line.split(None)  # no quotes: plain blank-separated words (the usual case)
    if b"\x00" in line:
        raise ProtocolError("Protocol error: NUL byte in an inline request")
    args: list[bytes] = []
    end = len(line)
    pos = 0
    while True:
        while pos < end and line[pos] in _SPACE:
            pos += 1
        if pos == end:
            return args
        current = bytearray()
        quote = 0  # the quote character the argument is inside, if any
        while True:
            char = line[pos] if pos < end else 0  # 0: the end of the line (no NUL in it)
            if quote:
                escape = _escape_at(line, pos, quote) if char == _BACKSLASH else None
                if escape is not None:
                    value, pos = escape
                    current.append(value)
                elif char == quote:
                    _closing_quote(line, pos + 1)
                    pos += 1
                    break
                elif char == 0:
                    raise ProtocolError("Protocol error: unbalanced quotes in request")
                else:
                    current.append(char)
            elif char in _TOKEN_END or char == 0:
                break
            elif char in (_DOUBLE_QUOTE, _SINGLE_QUOTE):
                quote = char
            else:
                current.append(char)
            pos += 1
        args.append(bytes(current))


def _escape_at(line: bytes, pos: int, quote: int) -> tuple[int, int] | None:
    """The byte that the backslash at ``pos`` and what follows it stand for inside ``quote``,
    and where that escape ends; None: the backslash is an ordinary character."""
    following = line[pos + 1 : pos + 2]
    if quote == _SINGLE_QUOTE:
        return (_SINGLE_QUOTE, pos + 1) if following == b"'" else None
    if following == b"x" and _is_hex(line, pos + 2):
        return int(line[pos + 2 : pos + 4], 16), pos + 3
    if following:
        return _ESCAPES.get(following[0], following[0]), pos + 1
    return None


def _is_hex(line: bytes, pos: int) -> bool:
    """Two hex digits at ``pos`` (the HH of \\xHH)."""
    return pos + 1 < len(line) and line[pos] in _HEX and line[pos + 1] in _HEX


def _closing_quote(line: bytes, after: int) -> None:
    if after < len(line) and line[after] not in _SPACE:
        raise ProtocolError("Protocol error: unbalanced quotes in request")


# Reply type bytes (RESP2 + RESP3).
_LINE_TYPES = frozenset(b"+-:_,#(")
_BULK_TYPES = frozenset(b"$!=")
_ARRAY_TYPES = frozenset(b"*~>")
_MAP_TYPES = frozenset(b"%|")
PUSH = 62  # '>'
ATTRIBUTE = 124  # '|'


class UpstreamProtocolError(Exception):
    """An upstream sent bytes that are not a RESP reply: the connection is unusable."""


class ReplyScanner:
    """Finds where the next complete reply ends. Resumable across partial reads.

    ``advance`` is the streaming variant: it also steps into a bulk payload that has only partly
    arrived, so a large reply can be passed on chunk by chunk instead of being held whole."""

    __slots__ = ("_bulk_left", "_left", "_pos", "_start", "_streaming")

    def __init__(self) -> None:
        self._start = -1
        self._pos = 0
        self._left = 0
        self._bulk_left = 0
        self._streaming = False

    def rebase(self, consumed: int) -> None:
        if self._start >= 0:
            self._start -= consumed
            self._pos -= consumed

    def scan(self, buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
        """``(start, end)`` of the next complete reply, or None when more bytes are needed.

        A RESP3 attribute (``|``) is returned together with the reply it annotates."""
        if self._start < 0:
            self._start = pos
            self._pos = pos
            self._left = 1
        n = len(buf)
        pos = self._pos
        left = self._left
        try:
            while left:
                if pos >= n:
                    return None
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                kind = buf[pos]
                if kind in _LINE_TYPES:
                    pos = eol + 2
                    left -= 1
                elif kind in _BULK_TYPES:
                    length = int(buf[pos + 1 : eol])
                    if length < 0:
                        pos = eol + 2
                    else:
                        end = eol + 2 + length + 2
                        if end > n:
                            return None
                        pos = end
                    left -= 1
                elif kind in _ARRAY_TYPES:
                    count = int(buf[pos + 1 : eol])
                    pos = eol + 2
                    left += max(count, 0) - 1
                elif kind in _MAP_TYPES:
                    count = int(buf[pos + 1 : eol])
                    pos = eol + 2
                    # An attribute is followed by the value it describes: count it too.
                    left += 2 * max(count, 0) - (1 if kind != ATTRIBUTE else 0)
                else:
                    raise UpstreamProtocolError(f"unexpected reply type byte {kind!r}")
                if left > MAX_REPLY_ELEMENTS:
                    raise UpstreamProtocolError("reply too large")
        except ValueError as exc:
            raise UpstreamProtocolError(f"bad length in reply: {exc}") from exc
        finally:
            self._pos = pos
            self._left = left
        start = self._start
        self._start = -1
        return start, pos

    def advance(self, buf: bytes | bytearray, pos: int) -> tuple[int, bool]:
        """Streaming: consume as much of the current reply as is buffered from ``pos`` (the
        caller hands ``buf[pos:end]`` on and may drop it); returns ``(end, complete)``.

        The first call continues where ``scan`` left off, so a reply can switch from being
        buffered to being streamed once it turns out to be large."""
        if not self._streaming:
            self._streaming = True
            if self._start >= 0:
                pos = self._pos  # elements before this are complete and part of the chunk
            else:
                self._left = 1
            self._bulk_left = 0
        n = len(buf)
        left = self._left
        try:
            while True:
                if self._bulk_left:
                    take = min(self._bulk_left, n - pos)
                    pos += take
                    self._bulk_left -= take
                    if self._bulk_left:
                        return pos, False
                    left -= 1
                if not left:
                    self._streaming = False
                    self._start = -1
                    return pos, True
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return pos, False
                kind = buf[pos]
                if kind in _LINE_TYPES:
                    pos = eol + 2
                    left -= 1
                elif kind in _BULK_TYPES:
                    length = int(buf[pos + 1 : eol])
                    pos = eol + 2
                    if length < 0:
                        left -= 1
                    else:
                        self._bulk_left = length + 2
                elif kind in _ARRAY_TYPES:
                    left += max(int(buf[pos + 1 : eol]), 0) - 1
                    pos = eol + 2
                elif kind in _MAP_TYPES:
                    count = int(buf[pos + 1 : eol])
                    left += 2 * max(count, 0) - (1 if kind != ATTRIBUTE else 0)
                    pos = eol + 2
                else:
                    raise UpstreamProtocolError(f"unexpected reply type byte {kind!r}")
        except ValueError as exc:
            raise UpstreamProtocolError(f"bad length in reply: {exc}") from exc
        finally:
            self._left = left

    @property
    def streaming(self) -> bool:
        return self._streaming


def error_reply(message: str) -> bytes:
    """A RESP error line; newlines would break framing, so they become spaces."""
    clean = message.replace("\r", " ").replace("\n", " ")
    if not clean.split(" ", 1)[0].isupper():
        clean = "ERR " + clean
    return b"-" + clean.encode() + b"\r\n"


def encode_command(*args: bytes | str | int) -> bytes:
    """A RESP multibulk request, for the ambassador's own control commands."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)
