"""socket_multiaddr builds the same multiaddr the text form gives, for both families."""

from __future__ import annotations

import pytest
from multiaddr import Multiaddr

from p2pstack.errors import ConfigError
from p2pstack.host.host import split_peer_addr
from p2pstack.identity import KeyPair, PeerID
from p2pstack.muxer.yamux import Yamux
from p2pstack.security.noise import Noise
from p2pstack.security.tls import Tls
from p2pstack.transport.tcp import TcpTransport, socket_multiaddr, split_tcp_addr
from p2pstack.upgrader import REMEMBERED_PEERS, Upgrader


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


def test_split_tcp_addr_answers_alike_when_cached() -> None:
    """Results are cached by binary form, refusals too; both repeat identically."""
    for _ in range(2):
        assert split_tcp_addr(Multiaddr("/ip4/10.0.0.1/tcp/4001")) == ("10.0.0.1", 4001, "ip4")
        assert split_tcp_addr(Multiaddr("/dns4/example.com/tcp/443")) == (
            "example.com",
            443,
            "dns4",
        )
        with pytest.raises(ConfigError):
            split_tcp_addr(Multiaddr("/ip4/10.0.0.1/udp/4001/quic-v1"))
    assert TcpTransport().can_dial(Multiaddr("/ip6/::1/tcp/5"))
    assert not TcpTransport().can_dial(Multiaddr("/ip6/::1/tcp/0"))
    assert not TcpTransport().can_dial(Multiaddr("/ip4/10.0.0.1/udp/4001/quic-v1"))


def test_the_upgrader_remembers_a_bounded_number_of_peers() -> None:
    key = KeyPair.generate()
    upgrader = Upgrader([Noise(key), Tls(key)], [Yamux()])
    peers = [KeyPair.generate().peer_id for _ in range(3)]
    for i, peer in enumerate(peers):
        upgrader._remember(peer, "/noise" if i else "/tls/1.0.0")
    assert upgrader.remembered_security(peers[0]) == "/tls/1.0.0"
    assert upgrader.remembered_security(peers[1]) == "/noise"
    assert upgrader.remembered_security(None) is None
    for _ in range(REMEMBERED_PEERS):
        upgrader._remember(PeerID.from_public_key(KeyPair.generate().public), "/noise")
    assert all(upgrader.remembered_security(peer) is None for peer in peers)
    only_noise = Upgrader([Noise(key)], [Yamux()])  # no choice, nothing to remember
    only_noise._remember(peers[0], "/noise")
    assert only_noise.remembered_security(peers[0]) is None
