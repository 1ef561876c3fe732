"""The shared connection's reply splitter: however Redis's bytes are cut into reads, every lane
gets exactly its replies, in order; errors come alone; a piece of several can still be taken
one reply at a time."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from ambassadors.redis_split.shared import Lane, SharedConnection


@dataclass
class FakeNode:
    generation: int = 0
    address: str = "127.0.0.1:6379"


REPLIES = st.sampled_from(
    [
        b"+OK\r\n",
        b":42\r\n",
        b"$-1\r\n",
        b"$3\r\nbar\r\n",
        b"$0\r\n\r\n",
        b"$12\r\nline\r\nbreaks\r\n",
        b"-ERR wrong\r\n",
        b"-READONLY You can't write against a read only replica.\r\n",
        b"*2\r\n$1\r\na\r\n:1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
    ]
)

# One send: which of three lanes, and the replies its commands get.
SENDS = st.lists(
    st.tuples(st.integers(0, 2), st.lists(REPLIES, min_size=1, max_size=6)),
    min_size=1,
    max_size=12,
)


def make() -> tuple[SharedConnection, list[Lane]]:
    conn = SharedConnection(FakeNode(), 2)  # type: ignore[arg-type]
    return conn, [conn.attach() for _ in range(3)]


def drain(lane: Lane, whole_pieces: bool) -> list[bytes]:
    """Every reply the lane holds, one by one: pieces either cut by ``try_reply`` or taken
    whole and cut here by the test with the replies it expects (checked by the caller)."""
    out: list[bytes] = []
    while lane.ready:
        if whole_pieces and lane.ready > 1:
            out.append(lane.take_piece())
        else:
            reply = lane.try_reply()
            assert reply is not None
            out.append(reply)
    return out


def replay(
    conn: SharedConnection,
    lanes: list[Lane],
    sends: list[tuple[int, list[bytes]]],
    cuts: list[int],
    got: list[list[bytes]],
    whole_pieces: bool,
) -> list[list[bytes]]:
    """Each send's commands go out on its lane; Redis's replies to all of them then arrive cut
    into reads of the ``cuts`` sizes, and after each read every lane is drained into ``got``.
    Returns the replies each lane should have got, in order."""
    expected: list[list[bytes]] = [[], [], []]
    for index, replies in sends:
        lanes[index].send(b"ignored", len(replies))
        expected[index].extend(replies)
    stream = b"".join(reply for _, replies in sends for reply in replies)
    position = 0
    for cut in [*cuts, len(stream)]:
        conn.data_received(stream[position : position + cut])
        position += cut
        for index, lane in enumerate(lanes):
            got[index].extend(drain(lane, whole_pieces))
        if position >= len(stream):
            break
    return expected


@settings(max_examples=300, deadline=None)
@given(sends=SENDS, cuts=st.lists(st.integers(1, 40), max_size=30), whole=st.booleans())
def test_every_lane_gets_its_replies_in_order(
    sends: list[tuple[int, list[bytes]]], cuts: list[int], whole: bool
) -> None:
    conn, lanes = make()
    got: list[list[bytes]] = [[], [], []]
    expected = replay(conn, lanes, sends, cuts, got, whole)
    assert not conn.closed
    assert conn.owed == 0
    for index in range(3):
        assert b"".join(got[index]) == b"".join(expected[index])
        if not whole:
            assert got[index] == expected[index]


@settings(max_examples=300, deadline=None)
@given(
    sends=SENDS,
    cuts=st.lists(st.integers(1, 40), max_size=30),
    takes=st.lists(st.booleans(), min_size=1, max_size=20),
)
def test_replies_taken_straight_from_the_splitter_keep_their_order(
    sends: list[tuple[int, list[bytes]]], cuts: list[int], takes: list[bool]
) -> None:
    """A session may take a lane's replies as the splitter finds them (``Lane.direct``), or
    refuse them, which leaves them in the lane. Either way each lane's client gets exactly its
    replies, in order: the splitter offers replies only while none of the lane's wait before
    them, and only whole client writes' worth."""
    conn, lanes = make()
    got: list[list[bytes]] = [[], [], []]
    offers = iter(takes * 100)
    for index, lane in enumerate(lanes):

        def direct(lane: Lane, piece: bytes, count: int, index: int = index) -> bool:
            assert lane is lanes[index] and not lane.counts
            if not next(offers, False):
                return False
            got[index].append(piece)
            return True

        lane.direct = direct
    expected = replay(conn, lanes, sends, cuts, got, whole_pieces=True)
    assert conn.owed == 0
    for index in range(3):
        assert b"".join(got[index]) == b"".join(expected[index])


def test_an_error_reply_comes_alone_between_pieces() -> None:
    conn, lanes = make()
    lane = lanes[0]
    lane.send(b"ignored", 5)
    conn.data_received(b"+OK\r\n:1\r\n-ERR no\r\n$1\r\nx\r\n:2\r\n")
    assert lane.ready == 2
    assert lane.take_piece() == b"+OK\r\n:1\r\n"
    assert lane.ready == 1
    assert lane.take_piece() == b"-ERR no\r\n"
    assert lane.take_piece() == b"$1\r\nx\r\n:2\r\n"
    assert lane.ready == 0


def test_replies_nobody_asked_for_close_the_connection() -> None:
    conn, lanes = make()
    conn.data_received(b"+OK\r\n")
    assert conn.closed
    assert lanes[0].closed


def large_bulk(fill: bytes) -> bytes:
    """A 600 KiB bulk string reply: past the size at which a reply is streamed."""
    value = fill * (600 * 1024)
    return b"$%d\r\n%s\r\n" % (len(value), value)


def test_a_large_reply_is_streamed_in_parts() -> None:
    conn, lanes = make()
    lane = lanes[1]
    lane.send(b"ignored", 2)
    reply = large_bulk(b"v")
    conn.data_received(reply[: 550 * 1024])
    assert lane.streaming
    first, complete = lane.stream_chunk()
    assert not complete
    conn.data_received(reply[550 * 1024 :] + b"+OK\r\n")
    rest, complete = lane.stream_chunk()
    assert complete and first + rest == reply
    assert lane.try_reply() == b"+OK\r\n"


def test_replies_before_a_streamed_one_are_taken_first() -> None:
    conn, lanes = make()
    lane = lanes[0]
    lane.send(b"ignored", 3)
    large = large_bulk(b"v")
    conn.data_received(b":1\r\n:2\r\n" + large[: 550 * 1024])
    assert not lane.streaming  # the two small replies come first
    assert lane.take_piece() == b":1\r\n:2\r\n"
    assert lane.streaming
    first, complete = lane.stream_chunk()
    conn.data_received(large[550 * 1024 :])
    rest, complete = lane.stream_chunk()
    assert complete and first + rest == large


def test_replies_after_a_streamed_one_wait_for_it() -> None:
    """A large reply still being passed on when the next reply arrives: the next one is not
    handed out before the large one is complete."""
    conn, lanes = make()
    lane = lanes[0]
    lane.send(b"ignored", 2)
    large = large_bulk(b"w")
    conn.data_received(large[: 550 * 1024])
    first, complete = lane.stream_chunk()
    assert not complete
    conn.data_received(large[550 * 1024 :] + b":7\r\n")
    assert lane.streaming
    assert lane.try_reply() is None  # the large reply comes first
    rest, complete = lane.stream_chunk()
    assert complete and first + rest == large
    assert not lane.streaming
    assert lane.try_reply() == b":7\r\n"


def test_two_large_replies_in_a_row_keep_their_parts_apart() -> None:
    conn, lanes = make()
    lane = lanes[0]
    lane.send(b"ignored", 2)
    one = b"$%d\r\n%s\r\n" % (600 * 1024, b"1" * (600 * 1024))
    two = b"$%d\r\n%s\r\n" % (600 * 1024, b"2" * (600 * 1024))
    both = one + two
    cut = len(one) + 550 * 1024
    # The first arrives partly (streamed), then its end and the start of the second (streamed
    # too), all before the session takes anything.
    conn.data_received(both[: 550 * 1024])
    conn.data_received(both[550 * 1024 : cut])
    got_one, complete = lane.stream_chunk()
    assert complete and got_one == one
    conn.data_received(both[cut:])
    got_two, complete = lane.stream_chunk()
    assert complete and got_two == two
    assert lane.ready == 0 and not lane.streaming
