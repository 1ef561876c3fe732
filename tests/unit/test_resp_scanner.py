"""The RESP scanners: command boundaries and names from any chunking, RESP2/RESP3 replies,
malformed input refused with a protocol error, and fuzzing for crashes, hangs and memory."""

from __future__ import annotations

import contextlib
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ambassadors.redis_split.resp import (
    ProtocolError,
    ReplyScanner,
    RequestScanner,
    UpstreamProtocolError,
    encode_command,
    split_inline,
)


def scan_all(data: bytes, chunks: list[int] | None = None) -> list[tuple[bytes, int, bytes]]:
    """Feed ``data`` in chunks (sizes cycled from ``chunks``) the way the session does."""
    scanner = RequestScanner()
    buf = bytearray()
    found: list[tuple[bytes, int, bytes]] = []
    offset = 0
    sizes = chunks or [len(data) or 1]
    i = 0
    pos = 0
    while offset < len(data):
        size = max(1, sizes[i % len(sizes)])
        i += 1
        buf += data[offset : offset + size]
        offset += size
        while (command := scanner.scan(buf, pos)) is not None:
            found.append((command.name, command.argc, bytes(buf[command.start : command.end])))
            pos = command.end
        del buf[:pos]
        scanner.rebase(pos)
        pos = 0
    return found


def test_pipeline_of_multibulk_commands_is_split_at_command_boundaries() -> None:
    data = encode_command("SET", "k", "v" * 1000) + encode_command("GET", "k")
    data += encode_command("script", "LOAD", "return 1")
    for chunks in ([len(data)], [1], [3, 7], [1000]):
        found = scan_all(data, chunks)
        assert [(name, argc) for name, argc, _ in found] == [
            (b"set", 3),
            (b"get", 2),
            (b"script", 3),
        ]
        assert b"".join(frame for _, _, frame in found) == data


def test_inline_commands_and_blank_lines() -> None:
    found = scan_all(b"PING\r\n\r\nset a 1\nGET a\r\n")
    assert [(name, argc) for name, argc, _ in found] == [(b"ping", 1), (b"set", 3), (b"get", 2)]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (b"SET a 1", [b"SET", b"a", b"1"]),
        (b"  SET\ta   1  ", [b"SET", b"a", b"1"]),
        (b'SET k "hello world"', [b"SET", b"k", b"hello world"]),
        (b"SET k 'it''s'", None),  # a closing quote glued to the next one
        (b"SET k 'it\\'s'", [b"SET", b"k", b"it's"]),
        (b'SET k "a\\nb\\t\\x41\\x4g\\"q\\\\"', [b"SET", b"k", b'a\nb\tAx4g"q\\']),
        (b"SET k 'a\\nb'", [b"SET", b"k", b"a\\nb"]),  # no escapes in single quotes
        (b'SET k ""', [b"SET", b"k", b""]),
        (b'SET k"ey" v', [b"SET", b"key", b"v"]),  # a quote starts inside a word
        (b"SET \x0bk v", [b"SET", b"k", b"v"]),  # \v and \f are blanks before a word...
        (b"SET k\x0bj v", [b"SET", b"k\x0bj", b"v"]),  # ...but not inside one
        (b'SET "end\\', None),
    ],
)
def test_inline_arguments_split_as_redis_does(line: bytes, words: list[bytes] | None) -> None:
    """(tests/integration/test_redis_inline_split.py checks the same against Redis itself.)"""
    if words is None:
        with pytest.raises(ProtocolError, match="unbalanced quotes"):
            split_inline(line)
    else:
        assert split_inline(line) == words


@pytest.mark.parametrize("line", [b"SET a\x00b c", b'SET "a\x00b"', b"\x00"])
def test_a_nul_byte_in_an_inline_request_is_refused(line: bytes) -> None:
    """Redis would wait for the end of the line forever (strchr stops at the NUL)."""
    with pytest.raises(ProtocolError, match="NUL byte"):
        split_inline(line)


@given(st.binary(max_size=200))
def test_inline_splitting_never_fails_but_with_a_protocol_error(line: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        words = split_inline(line)
        assert all(isinstance(word, bytes) for word in words)


def test_peeked_arguments_are_short_ones_only() -> None:
    scanner = RequestScanner()
    data = encode_command("XREAD", "COUNT", "2", "BLOCK", "0", "STREAMS", "s", "x" * 100)
    command = scanner.scan(data, 0)
    assert command is not None
    assert command.args[:6] == (b"COUNT", b"2", b"BLOCK", b"0", b"STREAMS", b"s")
    assert command.args[6] == b""  # long argument: position kept, bytes not copied


@pytest.mark.parametrize(
    "data",
    [
        b"*1\r\n+PING\r\n",  # not a bulk
        b"*x\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$4\r\nPINGxx",  # bulk not terminated by CRLF
        b"*2000000\r\n",  # above the multibulk limit
        b'SET "unterminated value\r\n',
        b'SET "closing quote"glued\r\n',
        b"SET 'single'glued\r\n",
    ],
)
def test_malformed_requests_raise_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        scan_all(data)


def test_huge_declared_bulk_is_not_allocated() -> None:
    scanner = RequestScanner()
    tracemalloc.start()
    try:
        assert scanner.scan(b"*1\r\n$536870000\r\nabc", 0) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def replies(data: bytes, chunk: int) -> list[bytes]:
    scanner = ReplyScanner()
    buf = bytearray()
    out = []
    for i in range(0, len(data), chunk):
        buf += data[i : i + chunk]
        while (found := scanner.scan(buf, 0)) is not None:
            out.append(bytes(buf[found[0] : found[1]]))
            del buf[: found[1]]
    assert not buf
    return out


RESP3_REPLIES = [
    b"+OK\r\n",
    b"-ERR wrong\r\n",
    b":42\r\n",
    b"$5\r\nhello\r\n",
    b"$-1\r\n",
    b"*-1\r\n",
    b"*0\r\n",
    b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
    b"%2\r\n+a\r\n:1\r\n+b\r\n*2\r\n_\r\n#t\r\n",
    b"~1\r\n,1.5\r\n",
    b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n",
    b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1\r\n*1\r\n:2\r\n",
    b"!5\r\nERR x\r\n",
    b"=8\r\ntxt:abcd\r\n",
    b"(123456789012345678901234567890\r\n",
]


@pytest.mark.parametrize("chunk", [1, 2, 5, 4096])
def test_reply_scanner_frames_resp2_and_resp3(chunk: int) -> None:
    assert replies(b"".join(RESP3_REPLIES), chunk) == RESP3_REPLIES


def test_reply_scanner_rejects_garbage() -> None:
    with pytest.raises(UpstreamProtocolError):
        ReplyScanner().scan(b"?what\r\n", 0)


# -- fuzzing ---------------------------------------------------------------------------------

arguments = st.lists(st.binary(max_size=40), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    commands=st.lists(arguments, min_size=1, max_size=8),
    chunks=st.lists(st.integers(1, 64), min_size=1, max_size=5),
)
def test_fuzz_valid_pipelines_round_trip_under_any_chunking(
    commands: list[list[bytes]], chunks: list[int]
) -> None:
    data = b"".join(encode_command(*args) for args in commands)
    found = scan_all(data, chunks)
    assert [argc for _, argc, _ in found] == [len(args) for args in commands]
    assert [name for name, _, _ in found] == [(args[0].lower() or b"\x00") for args in commands]
    assert b"".join(frame for _, _, frame in found) == data


@settings(max_examples=500, deadline=1000)
@given(data=st.binary(max_size=2048), chunks=st.lists(st.integers(1, 300), min_size=1, max_size=4))
def test_fuzz_arbitrary_bytes_never_crash_or_hang(data: bytes, chunks: list[int]) -> None:
    """Any input either yields commands that tile the consumed bytes or a ProtocolError; never
    another exception, never a loop that does not terminate (hypothesis' deadline)."""
    try:
        found = scan_all(data, chunks)
    except ProtocolError:
        return
    for _, argc, frame in found:
        assert argc >= 1
        assert frame


@settings(max_examples=200, deadline=1000)
@given(prefix=st.binary(max_size=64), size=st.integers(0, 2**40))
def test_fuzz_declared_sizes_do_not_drive_memory(prefix: bytes, size: int) -> None:
    """Lengths the client declares are never allocated up front."""
    data = b"*2\r\n$3\r\nSET\r\n$%d\r\n" % size + prefix
    tracemalloc.start()
    try:
        with contextlib.suppress(ProtocolError):
            scan_all(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024


@settings(max_examples=300, deadline=1000)
@given(data=st.binary(max_size=1024))
def test_fuzz_reply_scanner_terminates(data: bytes) -> None:
    scanner = ReplyScanner()
    try:
        found = scanner.scan(data, 0)
    except UpstreamProtocolError:
        return
    if found is not None:
        assert 0 <= found[0] < found[1] <= len(data)


def stream(data: bytes, chunk: int, switch_after: int) -> list[bytes]:
    """Frame replies, switching a reply to streaming (``advance``) once ``switch_after`` bytes
    of it are buffered, the way the session does for large replies."""
    scanner = ReplyScanner()
    buf = bytearray()
    out: list[bytes] = []
    current = b""
    streaming = False
    for i in range(0, len(data), chunk):
        buf += data[i : i + chunk]
        while buf:
            if not streaming:
                found = scanner.scan(buf, 0)
                if found is not None:
                    out.append(bytes(buf[: found[1]]))
                    del buf[: found[1]]
                    continue
                if len(buf) < switch_after:
                    break
                streaming = True
            end, complete = scanner.advance(buf, 0)
            current += bytes(buf[:end])
            del buf[:end]
            if not complete:
                break
            out.append(current)
            current, streaming = b"", False
    assert not buf and not current
    return out


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
@pytest.mark.parametrize("switch_after", [1, 5, 20])
def test_streamed_replies_keep_their_boundaries(chunk: int, switch_after: int) -> None:
    big = b"$300\r\n" + b"x" * 300 + b"\r\n"
    replies_in = [*RESP3_REPLIES, big, b"*3\r\n" + big + b":1\r\n" + big, b"+after\r\n"]
    assert stream(b"".join(replies_in), chunk, switch_after) == replies_in


@settings(max_examples=200, deadline=1000)
@given(
    values=st.lists(st.binary(max_size=300), min_size=1, max_size=5),
    chunk=st.integers(1, 50),
    switch_after=st.integers(1, 40),
)
def test_fuzz_streaming_matches_whole_framing(
    values: list[bytes], chunk: int, switch_after: int
) -> None:
    replies_in = [b"$%d\r\n%s\r\n" % (len(v), v) for v in values]
    replies_in.append(b"*%d\r\n" % len(values) + b"".join(replies_in))
    assert stream(b"".join(replies_in), chunk, switch_after) == replies_in


def stream_requests(data: bytes, chunk: int, switch_after: int) -> list[tuple[bytes, bytes]]:
    """Split requests the way the session does, switching a large incomplete request to
    piecewise forwarding once its name is known: (name, forwarded bytes) per command."""
    scanner = RequestScanner()
    buf = bytearray()
    out: list[tuple[bytes, bytes]] = []
    streaming: tuple[bytes, bytearray] | None = None
    for i in range(0, len(data), chunk):
        buf += data[i : i + chunk]
        pos = 0
        while True:
            if streaming is not None:
                end, complete = scanner.advance(buf)
                streaming[1].extend(buf[pos:end])
                pos = end
                if not complete:
                    break
                out.append((streaming[0], bytes(streaming[1])))
                streaming = None
                continue
            command = scanner.scan(buf, pos)
            if command is None:
                partial = scanner.partial()
                if partial is not None and len(buf) - scanner.frame_start >= switch_after:
                    streaming = (partial.name, bytearray())
                    continue
                break
            out.append((command.name, bytes(buf[command.start : command.end])))
            pos = command.end
        del buf[:pos]
        scanner.rebase(pos)
    assert streaming is None and not buf
    return out


@settings(max_examples=300, deadline=1000)
@given(
    commands=st.lists(
        st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=4),
        min_size=1,
        max_size=5,
    ),
    chunk=st.integers(1, 64),
    switch_after=st.integers(1, 100),
)
def test_fuzz_streamed_requests_keep_their_boundaries(
    commands: list[list[bytes]], chunk: int, switch_after: int
) -> None:
    frames = [encode_command(*args) for args in commands]
    found = stream_requests(b"".join(frames), chunk, switch_after)
    assert [frame for _, frame in found] == frames
    assert [name for name, _ in found] == [args[0].lower() for args in commands]


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_names_routed_by_name_alone_skip_argument_copies(chunk: int) -> None:
    """Names the router routes by name alone get no peeked arguments; others still do, and
    frame boundaries are the same either way, however the bytes are chunked."""
    data = encode_command(b"SET", b"k", b"v") + encode_command(b"CLIENT", b"SETNAME", b"x")
    scanner = RequestScanner(name_only={b"set"})
    buf = bytearray()
    commands = []
    for i in range(0, len(data), chunk):
        buf += data[i : i + chunk]
        pos = commands[-1].end if commands else 0
        while (command := scanner.scan(buf, pos)) is not None:
            commands.append(command)
            pos = command.end
    assert [(c.name, c.args, c.argc, c.end - c.start) for c in commands] == [
        (b"set", (), 3, len(encode_command(b"SET", b"k", b"v"))),
        (b"client", (b"SETNAME", b"x"), 3, len(encode_command(b"CLIENT", b"SETNAME", b"x"))),
    ]
