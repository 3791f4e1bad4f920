from collections.abc import Callable, Collection

import pytest

from p2pstack.errors import (
    LocalProtocolError,
    MessageTooLarge,
    ProtocolNotSupported,
    RemoteProtocolError,
)
from p2pstack.multistream.machine import (
    DialerNegotiation,
    ListenerNegotiation,
    Negotiation,
    encode_message,
)

HEADER = b"\x13/multistream/1.0.0\n"
NA = bytes.fromhex("036e610a")

STEPS = [1, 2, 3, 1000]  # bytes per receive_data call; 1 = byte at a time


def msg(text: str) -> bytes:
    return encode_message(text)


def feed(machine: Negotiation, data: bytes, step: int, app: bytearray) -> None:
    """Feed ``data`` in ``step``-sized calls; bytes arriving after ``done`` go to ``app``."""
    for i in range(0, len(data), step):
        piece = data[i : i + step]
        if machine.done:
            app += piece
        else:
            machine.receive_data(piece)


class Link:
    """Joins a dialer and a listener; records every byte each one sent."""

    def __init__(self, dialer: DialerNegotiation, listener: ListenerNegotiation, step: int):
        self.dialer, self.listener, self.step = dialer, listener, step
        self.dialer_sent = bytearray()
        self.listener_sent = bytearray()
        self.dialer_app = bytearray()  # received by the dialer after it was done
        self.listener_app = bytearray()

    def run(self, dialer_app: bytes = b"", listener_app: bytes = b"") -> None:
        while True:
            to_listener = self.dialer.data_to_send()
            to_dialer = self.listener.data_to_send()
            # Each side's application may write as soon as that side is done (or, for a
            # lazy dialer, right after the proposal).
            if dialer_app and (self.dialer.done or not self.dialer_sent):
                to_listener, dialer_app = to_listener + dialer_app, b""
            if listener_app and self.listener.done:
                to_dialer, listener_app = to_dialer + listener_app, b""
            if not to_listener and not to_dialer:
                return
            self.dialer_sent += to_listener
            self.listener_sent += to_dialer
            feed(self.listener, to_listener, self.step, self.listener_app)
            feed(self.dialer, to_dialer, self.step, self.dialer_app)


def test_initial_bytes() -> None:
    assert msg("/multistream/1.0.0") == HEADER
    assert msg("na") == NA
    assert DialerNegotiation(["/echo/1.0.0"]).data_to_send() == HEADER + b"\x0c/echo/1.0.0\n"
    assert ListenerNegotiation({"/echo/1.0.0"}).data_to_send() == HEADER


@pytest.mark.parametrize("step", STEPS)
def test_first_protocol_accepted(step: int) -> None:
    link = Link(DialerNegotiation(["/echo/1.0.0"]), ListenerNegotiation({"/echo/1.0.0"}), step)
    link.run()
    assert link.dialer.done and link.listener.done
    assert link.dialer.protocol == link.listener.protocol == "/echo/1.0.0"
    assert link.listener_sent == HEADER + msg("/echo/1.0.0")
    assert link.dialer.unconsumed() == link.listener.unconsumed() == b""


@pytest.mark.parametrize("step", STEPS)
def test_na_fallback(step: int) -> None:
    link = Link(DialerNegotiation(["/a", "/b", "/c"]), ListenerNegotiation({"/c", "/d"}), step)
    link.run()
    assert link.dialer.protocol == link.listener.protocol == "/c"
    assert link.dialer_sent == HEADER + msg("/a") + msg("/b") + msg("/c")
    assert link.listener_sent == HEADER + NA + NA + msg("/c")


@pytest.mark.parametrize("step", STEPS)
def test_predicate(step: int) -> None:
    supported: Callable[[str], bool] = lambda p: p.startswith("/ok/")  # noqa: E731
    link = Link(DialerNegotiation(["/no/1", "/ok/2"]), ListenerNegotiation(supported), step)
    link.run()
    assert link.listener.protocol == "/ok/2"


@pytest.mark.parametrize("step", STEPS)
def test_all_refused(step: int) -> None:
    link = Link(DialerNegotiation(["/a", "/b"]), ListenerNegotiation({"/z"}), step)
    with pytest.raises(ProtocolNotSupported) as info:
        link.run()
    assert info.value.protocols == ("/a", "/b")
    assert not link.dialer.done and not link.listener.done
    with pytest.raises(LocalProtocolError):
        link.dialer.receive_data(NA)


@pytest.mark.parametrize("step", STEPS)
def test_leftover_application_bytes_preserved(step: int) -> None:
    app_up = b"client says hi" + HEADER  # looks like multistream, but is application data
    app_down = NA + b"server says hi"
    link = Link(DialerNegotiation(["/x"]), ListenerNegotiation({"/x"}), step)
    link.run(dialer_app=app_up, listener_app=app_down)
    assert link.listener.unconsumed() + link.listener_app == app_up
    assert link.dialer.unconsumed() + link.dialer_app == app_down


def test_leftover_in_one_chunk() -> None:
    listener = ListenerNegotiation({"/x"})
    listener.receive_data(HEADER + msg("/x") + b"payload")
    assert listener.done
    assert listener.unconsumed() == b"payload"
    assert listener.data_to_send() == HEADER + msg("/x")
    dialer = DialerNegotiation(["/x"])
    dialer.receive_data(HEADER + msg("/x") + b"reply")
    assert dialer.done and dialer.unconsumed() == b"reply"
    assert dialer.unconsumed() == b"reply"  # reading does not remove
    with pytest.raises(LocalProtocolError):
        dialer.receive_data(b"more")


@pytest.mark.parametrize("step", STEPS)
def test_lazy_na(step: int) -> None:
    # A lazy dialer pipelines application data after its single proposal; the listener
    # refuses. The dialer fails with ProtocolNotSupported; the listener, which reads the
    # application data as its next proposal, refuses the garbage.
    link = Link(DialerNegotiation(["/x"]), ListenerNegotiation({"/y"}), step)
    with pytest.raises((ProtocolNotSupported, RemoteProtocolError)):
        link.run(dialer_app=b"\x03ab")
    dialer = DialerNegotiation(["/x"])
    with pytest.raises(ProtocolNotSupported):
        feed(dialer, HEADER + NA, step, bytearray())


def oversize_message() -> bytes:
    # uvarint 1025 = 0x81 0x08
    return b"\x81\x08" + b"p" * 1024 + b"\n"


@pytest.mark.parametrize("step", STEPS)
def test_oversize_refused(step: int) -> None:
    with pytest.raises(MessageTooLarge):
        feed(ListenerNegotiation({"/x"}), HEADER + oversize_message(), step, bytearray())
    with pytest.raises(MessageTooLarge):
        feed(DialerNegotiation(["/x"]), HEADER + oversize_message(), step, bytearray())
    with pytest.raises(MessageTooLarge):
        feed(ListenerNegotiation({"/x"}), oversize_message(), step, bytearray())
    # refused on the prefix alone, before the body arrives
    with pytest.raises(MessageTooLarge):
        ListenerNegotiation({"/x"}).receive_data(HEADER + b"\x81\x08")


def test_largest_message_accepted() -> None:
    name = "/" + "p" * 1022  # 1023 chars + newline = 1024 bytes
    listener = ListenerNegotiation({name})
    listener.receive_data(HEADER + msg(name))
    assert listener.protocol == name
    with pytest.raises(LocalProtocolError):
        DialerNegotiation([name + "p"])


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize(
    "data",
    [
        msg("/multistream/2.0.0"),
        msg("/x"),  # a proposal where the header should be
        b"\x03abc",  # no trailing newline
        b"\x00",  # empty message: no newline either
        b"\x03\xff\xfe\n",  # not UTF-8
        b"\x80\x00",  # non-minimal length prefix
    ],
)
def test_bad_header_or_message(step: int, data: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        feed(ListenerNegotiation({"/x"}), data, step, bytearray())
    with pytest.raises(RemoteProtocolError):
        feed(DialerNegotiation(["/x"]), data, step, bytearray())


@pytest.mark.parametrize("data", [b"\x03abc", b"\x03\xff\xfe\n"])
def test_bad_message_after_header(data: bytes) -> None:
    listener = ListenerNegotiation({"/x"})
    with pytest.raises(RemoteProtocolError):
        listener.receive_data(HEADER + data)
    with pytest.raises(LocalProtocolError):
        listener.receive_data(msg("/x"))


def test_dialer_refuses_unexpected_answer() -> None:
    dialer = DialerNegotiation(["/x"])
    with pytest.raises(RemoteProtocolError):
        dialer.receive_data(HEADER + msg("/y"))


@pytest.mark.parametrize(
    ("supported", "expected"),
    [
        (["/a", "/b"], msg(msg("/a").decode() + msg("/b").decode())),
        (lambda p: p == "/a", NA),
    ],
)
def test_ls(supported: Collection[str] | Callable[[str], bool], expected: bytes) -> None:
    listener = ListenerNegotiation(supported)
    listener.receive_data(HEADER + msg("ls"))
    assert listener.data_to_send() == HEADER + expected
    assert not listener.done
    listener.receive_data(msg("/a"))
    assert listener.protocol == "/a"


def test_ls_reply_format() -> None:
    listener = ListenerNegotiation(["/a"])
    listener.data_to_send()
    listener.receive_data(HEADER + msg("ls"))
    # outer length 5: inner "\x03/a\n" (4 bytes) + the outer newline
    assert listener.data_to_send() == b"\x05\x03/a\n\n"


@pytest.mark.parametrize("command", ["na", "/multistream/1.0.0", "help", ""])
def test_unknown_commands_answered_na(command: str) -> None:
    listener = ListenerNegotiation(lambda p: p.startswith("/") or p == "")
    listener.data_to_send()
    listener.receive_data(HEADER + (b"\x01\n" if not command else msg(command)))
    assert listener.data_to_send() == NA
    assert not listener.done


@pytest.mark.parametrize("protocols", [[], [""], ["/a\n"], ["/ok", "/" + "x" * 1023]])
def test_dialer_misuse(protocols: list[str]) -> None:
    with pytest.raises(LocalProtocolError):
        DialerNegotiation(protocols)


def test_data_to_send_drains() -> None:
    dialer = DialerNegotiation(["/a"])
    assert dialer.data_to_send()
    assert dialer.data_to_send() == b""
    assert dialer.proposed == "/a" and dialer.protocol is None and not dialer.done
