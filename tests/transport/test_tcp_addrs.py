"""socket_multiaddr builds the same multiaddr the text form gives, for both families."""

from __future__ import annotations

from multiaddr import Multiaddr

from p2pstack.host.host import split_peer_addr
from p2pstack.identity import KeyPair
from p2pstack.transport.tcp import socket_multiaddr


def test_socket_multiaddr_matches_the_text_form() -> None:
    cases = [
        (("127.0.0.1", 40123), "/ip4/127.0.0.1/tcp/40123"),
        (("10.1.2.3", 1), "/ip4/10.1.2.3/tcp/1"),
        (("::1", 65535, 0, 0), "/ip6/::1/tcp/65535"),
        (("2001:db8::7", 4001, 0, 0), "/ip6/2001:db8::7/tcp/4001"),
        (("fe80::1%eth0", 9, 0, 2), "/ip6/fe80::1/tcp/9"),
    ]
    for sockaddr, text in cases:
        built = socket_multiaddr(sockaddr)
        assert built == Multiaddr(text)
        assert str(built) == text
        assert built.value_for_protocol("tcp") == text.rsplit("/", 1)[1]


def test_split_peer_addr_of_a_string_is_reused_and_equal() -> None:
    peer = KeyPair.generate().peer_id
    text = f"/ip4/127.0.0.1/tcp/4001/p2p/{peer}"
    first = split_peer_addr(text)
    assert first == (peer, Multiaddr("/ip4/127.0.0.1/tcp/4001"))
    assert split_peer_addr(text) is first  # cached
    assert split_peer_addr(Multiaddr(text)) == first
    assert split_peer_addr("/ip4/127.0.0.1/tcp/4001") == (
        None,
        Multiaddr("/ip4/127.0.0.1/tcp/4001"),
    )
