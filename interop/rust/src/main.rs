//! rust-libp2p interop peer for p2pstack (see interop/CONTRACT.md).
//!
//! One binary, configured from the environment, that acts as the test-plans
//! transport-interop listener or dialer. The listener serves rust-libp2p's own ping and
//! identify plus `/echo/1.0.0` and `/perf/1.0.0` (server side); the dialer measures
//! handshake+1RTT, ping RTTs, echo and perf and prints one JSON line on stdout.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    convert::Infallible,
    error::Error,
    future::{Ready, ready},
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::exit,
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    Multiaddr, PeerId, SwarmBuilder,
    core::{
        Endpoint,
        transport::PortUse,
        upgrade::{DeniedUpgrade, InboundUpgrade, UpgradeInfo},
    },
    gossipsub, identify, identity,
    multiaddr::Protocol,
    noise, ping,
    swarm::{
        ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
        NetworkBehaviour, Stream, StreamProtocol, SubstreamProtocol, Swarm, SwarmEvent, THandler,
        THandlerInEvent, THandlerOutEvent, ToSwarm,
        behaviour::toggle::Toggle,
        dial_opts::{DialOpts, PeerCondition},
        handler::{ConnectionEvent, FullyNegotiatedInbound},
    },
    tcp, tls, yamux,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type BoxError = Box<dyn Error + Send + Sync>;
type Res<T> = Result<T, BoxError>;

const PING: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");
const ECHO: StreamProtocol = StreamProtocol::new("/echo/1.0.0");
const PERF: StreamProtocol = StreamProtocol::new("/perf/1.0.0");
const CHUNK: usize = 64 * 1024;
const REDIS_KEY: &str = "listenerAddr";
const IDENTIFY_WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum TransportKind {
    Tcp,
    QuicV1,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Security {
    Noise,
    Tls,
}

#[derive(Debug)]
struct Config {
    transport: TransportKind,
    security: Option<Security>,
    is_dialer: bool,
    ip: IpAddr,
    redis_addr: String,
    timeout: Duration,
    handshake_count: usize,
    ping_count: usize,
    echo_bytes: Option<u64>,
    /// (upload, download)
    perf: Option<(u64, u64)>,
    /// Gossipsub mode (CONTRACT.md), when `gossipsub_topic` is set.
    gossip: Option<GossipConfig>,
}

#[derive(Debug)]
struct GossipConfig {
    topic: String,
    index: u64,
    /// Full multiaddrs, each split into (address without /p2p, peer id).
    connect: Vec<(Multiaddr, PeerId)>,
    publish: u64,
    expect: u64,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn env_u64(name: &str) -> Result<Option<u64>, String> {
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("{name}={v:?} is not a non-negative integer")),
    }
}

fn parse_config() -> Result<Config, String> {
    let transport = match env("transport").as_deref() {
        Some("tcp") => TransportKind::Tcp,
        Some("quic-v1") => TransportKind::QuicV1,
        Some(other) => return Err(format!("unsupported transport {other:?} (tcp, quic-v1)")),
        None => return Err("transport is required (tcp, quic-v1)".into()),
    };
    let security = match transport {
        // QUIC brings its own TLS 1.3 security and stream multiplexing.
        TransportKind::QuicV1 => None,
        TransportKind::Tcp => {
            let security = match env("security").as_deref() {
                Some("noise") => Security::Noise,
                Some("tls") => Security::Tls,
                Some(other) => {
                    return Err(format!(
                        "unsupported security {other:?} over tcp (noise, tls)"
                    ));
                }
                None => return Err("security is required for tcp (noise, tls)".into()),
            };
            match env("muxer").as_deref() {
                Some("yamux") => {}
                Some(other) => return Err(format!("unsupported muxer {other:?} (yamux)")),
                None => return Err("muxer is required for tcp (yamux)".into()),
            }
            Some(security)
        }
    };
    let gossip = parse_gossip_config()?;
    let is_dialer = match env("is_dialer").as_deref() {
        Some("true") => true,
        Some("false") => false,
        Some(other) => return Err(format!("is_dialer must be true or false, not {other:?}")),
        // Gossipsub mode has no dialer/listener role.
        None if gossip.is_some() => false,
        None => return Err("is_dialer is required (true, false)".into()),
    };
    // A gossipsub node serves like a listener (no ping::Behaviour), whatever is_dialer says.
    let is_dialer = is_dialer && gossip.is_none();
    let ip_text = env("ip").unwrap_or_else(|| "0.0.0.0".into());
    let ip: IpAddr = ip_text
        .parse()
        .map_err(|_| format!("ip={ip_text:?} is not an IP address"))?;
    let redis_addr = env("redis_addr").unwrap_or_else(|| "redis:6379".into());
    let timeout_secs = env_u64("test_timeout_seconds")?.unwrap_or(180);
    if timeout_secs == 0 {
        return Err("test_timeout_seconds must be >= 1".into());
    }
    let handshake_count = env_u64("handshake_count")?.unwrap_or(1);
    let ping_count = env_u64("ping_count")?.unwrap_or(1);
    if handshake_count == 0 || ping_count == 0 {
        return Err("handshake_count and ping_count must be >= 1".into());
    }
    let echo_bytes = env_u64("echo_bytes")?;
    let up = env_u64("perf_upload_bytes")?;
    let down = env_u64("perf_download_bytes")?;
    let perf = match (up, down) {
        (None, None) => None,
        (u, d) => Some((u.unwrap_or(0), d.unwrap_or(0))),
    };
    Ok(Config {
        transport,
        security,
        is_dialer,
        ip,
        redis_addr,
        timeout: Duration::from_secs(timeout_secs),
        handshake_count: handshake_count as usize,
        ping_count: ping_count as usize,
        echo_bytes,
        perf,
        gossip,
    })
}

fn parse_gossip_config() -> Result<Option<GossipConfig>, String> {
    let Some(topic) = env("gossipsub_topic") else {
        return Ok(None);
    };
    let index =
        env_u64("gossipsub_index")?.ok_or("gossipsub_index is required in gossipsub mode")?;
    let mut connect = Vec::new();
    for text in env("gossipsub_connect")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let addr: Multiaddr = text
            .parse()
            .map_err(|e| format!("gossipsub_connect entry {text:?} is not a multiaddr: {e}"))?;
        connect.push(strip_p2p(&addr).map_err(|e| format!("gossipsub_connect: {e}"))?);
    }
    Ok(Some(GossipConfig {
        topic,
        index,
        connect,
        publish: env_u64("gossipsub_publish")?.unwrap_or(1),
        expect: env_u64("gossipsub_expect")?.unwrap_or(0),
    }))
}

// ---------------------------------------------------------------------------------------
// Inbound /echo/1.0.0, /perf/1.0.0 and (listener only) /ipfs/ping/1.0.0: a small
// behaviour whose handler hands every negotiated inbound stream to its own tokio task, so
// there is no per-connection limit on concurrent streams and no queue that could drop one.
//
// Why the listener answers pings itself instead of through ping::Behaviour: in
// libp2p-ping 0.48 the handler, after answering one inbound ping, stores a fresh
// `recv_ping` future for the next one without polling it. Over yamux the connection task
// is woken by every incoming frame anyway, but over QUIC nothing wakes it, so the second
// ping on a stream sits unanswered until the handler's own 15 s ping timer fires (seen
// here: RTTs of 15000 ms for every few pings on quic-v1). See README.md.
// ---------------------------------------------------------------------------------------

struct ServeProtocols(Vec<StreamProtocol>);

impl UpgradeInfo for ServeProtocols {
    type Info = StreamProtocol;
    type InfoIter = std::vec::IntoIter<StreamProtocol>;

    fn protocol_info(&self) -> Self::InfoIter {
        self.0.clone().into_iter()
    }
}

impl InboundUpgrade<Stream> for ServeProtocols {
    type Output = (Stream, StreamProtocol);
    type Error = Infallible;
    type Future = Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        ready(Ok((stream, protocol)))
    }
}

struct ServeHandler {
    serve_ping: bool,
}

impl ConnectionHandler for ServeHandler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Infallible;
    type InboundProtocol = ServeProtocols;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<ServeProtocols> {
        let mut protocols = vec![ECHO, PERF];
        if self.serve_ping {
            protocols.push(PING);
        }
        SubstreamProtocol::new(ServeProtocols(protocols), ())
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, (), Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn on_connection_event(&mut self, event: ConnectionEvent<'_, ServeProtocols, DeniedUpgrade>) {
        if let ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
            protocol: (stream, protocol),
            ..
        }) = event
        {
            tokio::spawn(serve_stream(stream, protocol));
        }
    }
}

struct Serve {
    serve_ping: bool,
}

impl NetworkBehaviour for Serve {
    type ConnectionHandler = ServeHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(ServeHandler {
            serve_ping: self.serve_ping,
        })
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(ServeHandler {
            serve_ping: self.serve_ping,
        })
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

async fn serve_stream(mut stream: Stream, protocol: StreamProtocol) {
    let result = if protocol == ECHO {
        serve_echo(&mut stream).await
    } else if protocol == PERF {
        serve_perf(&mut stream).await
    } else {
        serve_ping(&mut stream).await
    };
    if let Err(e) = result {
        eprintln!("[rust] {protocol} stream failed: {e}");
    }
}

/// Echo every byte until the remote closes its write side, then close ours.
async fn serve_echo(stream: &mut Stream) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n]).await?;
    }
    stream.close().await
}

/// ping.md server: answer each 32-byte payload with the same bytes, until EOF.
async fn serve_ping(stream: &mut Stream) -> io::Result<()> {
    let mut payload = [0u8; 32];
    loop {
        let mut have = 0;
        while have < payload.len() {
            let n = stream.read(&mut payload[have..]).await?;
            if n == 0 {
                if have == 0 {
                    return stream.close().await;
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            have += n;
        }
        stream.write_all(&payload).await?;
        stream.flush().await?;
    }
}

/// perf.md server: read the u64 big-endian download size, drain the upload until EOF,
/// send that many bytes, close.
async fn serve_perf(stream: &mut Stream) -> io::Result<()> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    let to_send = u64::from_be_bytes(header);
    let mut buf = vec![0u8; CHUNK];
    while stream.read(&mut buf).await? != 0 {}
    buf.fill(0);
    let mut left = to_send;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    stream.close().await
}

// ---------------------------------------------------------------------------------------
// The node
// ---------------------------------------------------------------------------------------

#[derive(NetworkBehaviour)]
struct Behaviour {
    /// rust-libp2p's ping, on the dialer only (its first ping on each new connection is
    /// the handshake+1RTT sample; it also answers pings from the listener). The listener
    /// answers pings through `serve` (see above).
    ping: Toggle<ping::Behaviour>,
    identify: identify::Behaviour,
    /// Outbound streams for the dialer's own pings, echo and perf.
    streams: libp2p_stream::Behaviour,
    serve: Serve,
    /// Gossipsub mode only.
    gossipsub: Toggle<gossipsub::Behaviour>,
}

/// The gossipsub message id of the pubsub spec, go-libp2p-pubsub and p2pstack: the `from`
/// bytes followed by the `seqno` bytes, exactly as they are on the wire. (rust-libp2p's own
/// default is `from` in base58 followed by the seqno in decimal: the same fields, but ids
/// that no other implementation can match in IHAVE/IWANT/IDONTWANT.) Strict validation only
/// lets through a seqno of 8 bytes (decoded big-endian) or an empty one (None), so this
/// gives back the wire bytes.
fn wire_message_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    let mut id = message.source.map(|p| p.to_bytes()).unwrap_or_default();
    if let Some(seqno) = message.sequence_number {
        id.extend_from_slice(&seqno.to_be_bytes());
    }
    gossipsub::MessageId::new(&id)
}

fn make_gossipsub(key: &identity::Keypair) -> Res<gossipsub::Behaviour> {
    // Defaults (mesh D=6/5/12, heartbeat 1 s after a 5 s initial delay, flood_publish on,
    // /meshsub/1.3.0..1.0.0, no peer scoring, messages valid as soon as they decode) except
    // the contract's StrictSign (Strict validation + Signed authenticity) and message id.
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .message_id_fn(wire_message_id)
        .build()?;
    let behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), config)?;
    Ok(behaviour)
}

fn make_behaviour(key: &identity::Keypair, is_dialer: bool, gossip: bool) -> Res<Behaviour> {
    // rust-libp2p pings every connection right after it is established (that first ping
    // is the dialer's handshake+1RTT sample). The dialer sends its further pings itself,
    // one after another, so the periodic pinging is pushed far out of the run.
    let ping = is_dialer.then(|| {
        ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(3600)))
    });
    let gossipsub = if gossip {
        Some(make_gossipsub(key)?)
    } else {
        None
    };
    Ok(Behaviour {
        ping: Toggle::from(ping),
        identify: identify::Behaviour::new(identify::Config::new(
            "/ipfs/0.1.0".into(),
            key.public(),
        )),
        streams: libp2p_stream::Behaviour::new(),
        serve: Serve {
            serve_ping: !is_dialer,
        },
        gossipsub: Toggle::from(gossipsub),
    })
}

fn yamux_config() -> yamux::Config {
    let mut config = yamux::Config::default();
    config.set_max_num_streams(1024);
    config
}

fn build_swarm(cfg: &Config, key: &identity::Keypair) -> Res<Swarm<Behaviour>> {
    let is_dialer = cfg.is_dialer;
    let gossip = cfg.gossip.is_some();
    let idle = cfg.timeout + Duration::from_secs(30);
    let swarm_config = move |c: libp2p::swarm::Config| {
        c.with_idle_connection_timeout(idle)
            .with_max_negotiating_inbound_streams(1024)
    };
    let tcp_config = || tcp::Config::new().nodelay(true).listen_backlog(1024);
    let builder = SwarmBuilder::with_existing_identity(key.clone()).with_tokio();
    let swarm = match (cfg.transport, cfg.security) {
        (TransportKind::Tcp, Some(Security::Noise)) => builder
            .with_tcp(tcp_config(), noise::Config::new, yamux_config)?
            .with_behaviour(|k| make_behaviour(k, is_dialer, gossip))?
            .with_swarm_config(swarm_config)
            .build(),
        (TransportKind::Tcp, Some(Security::Tls)) => builder
            .with_tcp(tcp_config(), tls::Config::new, yamux_config)?
            .with_behaviour(|k| make_behaviour(k, is_dialer, gossip))?
            .with_swarm_config(swarm_config)
            .build(),
        (TransportKind::QuicV1, _) => builder
            .with_quic_config(|mut c| {
                c.max_concurrent_stream_limit = 1024;
                c
            })
            .with_behaviour(|k| make_behaviour(k, is_dialer, gossip))?
            .with_swarm_config(swarm_config)
            .build(),
        (TransportKind::Tcp, None) => return Err("tcp needs a security protocol".into()),
    };
    Ok(swarm)
}

async fn connect_redis(addr: &str, deadline: Instant) -> Res<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    // BLPOP blocks for up to the whole test timeout, so no response timeout.
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(None)
        .set_connection_timeout(Some(Duration::from_secs(5)));
    let mut attempt = 0u32;
    loop {
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(conn) => return Ok(conn),
            Err(e) if Instant::now() + Duration::from_millis(500) < deadline => {
                if attempt.is_multiple_of(20) {
                    eprintln!("[rust] redis at {addr} not reachable yet ({e}); retrying");
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("cannot connect to redis at {addr}: {e}").into()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Listener
// ---------------------------------------------------------------------------------------

/// The address to publish: the configured IP, or loopback when listening on "any".
fn publishable(addr: &Multiaddr, configured: IpAddr) -> bool {
    let ip = addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    });
    match (configured, ip) {
        (IpAddr::V4(c), Some(IpAddr::V4(a))) if c.is_unspecified() => a == Ipv4Addr::LOCALHOST,
        (IpAddr::V6(c), Some(IpAddr::V6(a))) if c.is_unspecified() => a == Ipv6Addr::LOCALHOST,
        (c, Some(a)) => c == a,
        (_, None) => false,
    }
}

/// `/ip4/<ip>/tcp/0` or `/ip4/<ip>/udp/0/quic-v1` (ip6 likewise).
fn listen_multiaddr(cfg: &Config) -> Res<Multiaddr> {
    let ip_part = match cfg.ip {
        IpAddr::V4(ip) => format!("/ip4/{ip}"),
        IpAddr::V6(ip) => format!("/ip6/{ip}"),
    };
    let listen = match cfg.transport {
        TransportKind::Tcp => format!("{ip_part}/tcp/0"),
        TransportKind::QuicV1 => format!("{ip_part}/udp/0/quic-v1"),
    };
    Ok(listen.parse()?)
}

async fn run_listener(cfg: Config) -> Res<()> {
    let deadline = Instant::now() + cfg.timeout;
    let mut redis = connect_redis(&cfg.redis_addr, deadline).await?;
    let key = identity::Keypair::generate_ed25519();
    let mut swarm = build_swarm(&cfg, &key)?;
    swarm.listen_on(listen_multiaddr(&cfg)?)?;
    eprintln!("[rust] listener peer id {}", swarm.local_peer_id());

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let timeout = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
    tokio::pin!(timeout);
    let mut published = false;
    loop {
        tokio::select! {
            _ = &mut timeout => {
                return Err(format!("test timeout of {:?} reached", cfg.timeout).into());
            }
            _ = sigterm.recv() => {
                eprintln!("[rust] SIGTERM, exiting");
                return Ok(());
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    eprintln!("[rust] listening on {address}");
                    if !published && publishable(&address, cfg.ip) {
                        let full = address.with(Protocol::P2p(*swarm.local_peer_id()));
                        let _: i64 = redis.rpush(REDIS_KEY, full.to_string()).await?;
                        eprintln!("[rust] published {full}");
                        published = true;
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                    eprintln!("[rust] connection from {peer_id} at {}", endpoint.get_remote_address());
                }
                SwarmEvent::ConnectionClosed { peer_id, cause: Some(cause), .. } => {
                    eprintln!("[rust] connection with {peer_id} closed: {cause}");
                }
                SwarmEvent::IncomingConnectionError { error, send_back_addr, .. } => {
                    eprintln!("[rust] incoming connection from {send_back_addr} failed: {error}");
                }
                SwarmEvent::ListenerError { error, .. } => {
                    eprintln!("[rust] listener error: {error}");
                }
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Gossipsub mode (CONTRACT.md, "Gossipsub mode")
// ---------------------------------------------------------------------------------------

/// No pause between publishes: the runner's publish-rate runs measure how fast they go. The
/// timer still hands control back to the swarm between two publishes.
const PUBLISH_PAUSE: Duration = Duration::ZERO;
const GOSSIP_PEERS_KEY: &str = "gossipsubPeers";
const GOSSIP_READY_KEY: &str = "gossipsubReady";
const GOSSIP_GO_KEY: &str = "gossipsubGo";

/// The tail of a peer id, as go-libp2p shows it in logs.
fn short(peer: &PeerId) -> String {
    let s = peer.to_string();
    format!("*{}", &s[s.len().saturating_sub(6)..])
}

/// A message as origin/seqno, for logs.
fn show_message(message: &gossipsub::Message) -> String {
    let origin = message
        .source
        .as_ref()
        .map(short)
        .unwrap_or_else(|| "?".into());
    format!("{origin}/{}", message.sequence_number.unwrap_or_default())
}

/// The distinct messages that other nodes published.
struct Inbox {
    expect: u64,
    ids: HashSet<gossipsub::MessageId>,
    data: BTreeSet<String>,
    /// When the `expect`-th one arrived (None while fewer have, and when expect is 0).
    reached: Option<Instant>,
}

impl Inbox {
    /// Records a message; returns false when its id was already known.
    fn add(&mut self, id: gossipsub::MessageId, data: String) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.data.insert(data);
        if self.ids.len() as u64 == self.expect {
            self.reached = Some(Instant::now());
        }
        true
    }

    fn complete(&self) -> bool {
        self.ids.len() as u64 >= self.expect
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Waiting for the listen address, to push it to gossipsubPeers.
    Listening,
    /// Waiting for the connections to gossipsub_connect.
    Dialing,
    /// Subscribed; waiting for a peer in the topic.
    FindingTopicPeer,
    /// Ready pushed; waiting for the gossipsubGo token.
    WaitingForGo,
    Publishing,
    /// Published everything; waiting for the expected messages (then serving).
    Receiving,
}

impl Phase {
    fn doing(self) -> &'static str {
        match self {
            Phase::Listening => "starting to listen",
            Phase::Dialing => "dialing gossipsub_connect",
            Phase::FindingTopicPeer => "waiting for a peer in the topic",
            Phase::WaitingForGo => "waiting for gossipsubGo",
            Phase::Publishing => "publishing",
            Phase::Receiving => "receiving",
        }
    }
}

fn gossip(swarm: &mut Swarm<Behaviour>) -> &mut gossipsub::Behaviour {
    swarm
        .behaviour_mut()
        .gossipsub
        .as_mut()
        .expect("gossipsub is enabled in gossipsub mode")
}

/// The node of CONTRACT.md's gossipsub mode. Ok(()) after a report and SIGTERM/SIGINT
/// (exit 0); an error otherwise (exit 1), after printing the JSON line with what arrived
/// when the run ended on the timeout or a signal.
async fn run_gossipsub(cfg: &Config, g: &GossipConfig) -> Res<()> {
    let deadline = Instant::now() + cfg.timeout;
    let mut redis = connect_redis(&cfg.redis_addr, deadline).await?;
    let key = identity::Keypair::generate_ed25519();
    let mut swarm = build_swarm(cfg, &key)?;
    let me = *swarm.local_peer_id();
    swarm.listen_on(listen_multiaddr(cfg)?)?;
    let topic = gossipsub::IdentTopic::new(g.topic.clone());
    let topic_hash = topic.hash();
    eprintln!(
        "[rust] gossipsub node {} ({}), topic {:?}, publish {}, expect {}",
        g.index, me, g.topic, g.publish, g.expect
    );

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let timeout = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
    tokio::pin!(timeout);
    let publish_timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(publish_timer);
    let (go_tx, mut go_rx) = tokio::sync::oneshot::channel::<Result<bool, String>>();
    let mut go_tx = Some(go_tx);

    let mut phase = Phase::Listening;
    let mut dialing: HashMap<ConnectionId, Multiaddr> = HashMap::new();
    let mut inbox = Inbox {
        expect: g.expect,
        ids: HashSet::new(),
        data: BTreeSet::new(),
        reached: None,
    };
    let mut published = 0u64;
    let mut go_time: Option<Instant> = None;
    let mut reported = false;
    let mut mesh_seen: BTreeSet<PeerId> = BTreeSet::new();
    let mut kinds_seen: HashMap<PeerId, String> = HashMap::new();

    let line = |inbox: &Inbox, published: u64, go_time: Option<Instant>| -> Value {
        let seconds = match (go_time, inbox.reached) {
            (Some(go), Some(last)) if last > go => (last - go).as_secs_f64(),
            _ => 0.0,
        };
        json!({
            "implementation": format!("rust-libp2p v{}", env!("LIBP2P_VERSION")),
            "gossipsubIndex": g.index,
            "peerId": me.to_string(),
            "published": published,
            "received": inbox.ids.len(),
            "expected": g.expect,
            "receivedData": inbox.data.iter().collect::<Vec<_>>(),
            "seconds": (seconds * 1e6).round() / 1e6,
        })
    };

    loop {
        tokio::select! {
            _ = &mut timeout => {
                if !reported {
                    println!("{}", line(&inbox, published, go_time));
                }
                return Err(format!(
                    "test timeout of {:?} reached while {} ({}/{} messages)",
                    cfg.timeout, phase.doing(), inbox.ids.len(), g.expect
                ).into());
            }
            _ = sigterm.recv() => {
                if reported {
                    eprintln!("[rust] SIGTERM, exiting");
                    return Ok(());
                }
                println!("{}", line(&inbox, published, go_time));
                return Err(format!("SIGTERM while {}", phase.doing()).into());
            }
            _ = sigint.recv() => {
                if reported {
                    eprintln!("[rust] SIGINT, exiting");
                    return Ok(());
                }
                println!("{}", line(&inbox, published, go_time));
                return Err(format!("SIGINT while {}", phase.doing()).into());
            }
            go = &mut go_rx, if phase == Phase::WaitingForGo => match go {
                Ok(Ok(true)) => {
                    go_time = Some(Instant::now());
                    let topic_peers = gossip(&mut swarm).all_peers()
                        .filter(|(_, topics)| topics.contains(&&topic_hash)).count();
                    let mesh = gossip(&mut swarm).mesh_peers(&topic_hash).count();
                    eprintln!("[rust] go; topic peers {topic_peers}, mesh peers {mesh}");
                    phase = Phase::Publishing;
                    publish_timer.as_mut().reset(tokio::time::Instant::now());
                }
                Ok(Ok(false)) => {
                    println!("{}", line(&inbox, published, go_time));
                    return Err("no gossipsubGo token before the timeout".into());
                }
                Ok(Err(e)) => return Err(format!("redis BLPOP {GOSSIP_GO_KEY}: {e}").into()),
                Err(_) => return Err("the BLPOP task ended without an answer".into()),
            },
            _ = &mut publish_timer, if phase == Phase::Publishing => {
                if published < g.publish {
                    let data = format!("{}:{}", g.index, published);
                    match gossip(&mut swarm).publish(topic.clone(), data.clone().into_bytes()) {
                        Ok(_) => {
                            published += 1;
                        }
                        Err(e) => {
                            println!("{}", line(&inbox, published, go_time));
                            return Err(format!("publish {data:?} failed: {e}").into());
                        }
                    }
                }
                if published < g.publish {
                    publish_timer.as_mut().reset(tokio::time::Instant::now() + PUBLISH_PAUSE);
                } else {
                    phase = Phase::Receiving;
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    eprintln!("[rust] listening on {address}");
                    if phase == Phase::Listening && publishable(&address, cfg.ip) {
                        let full = address.with(Protocol::P2p(me));
                        let _: i64 = redis.rpush(GOSSIP_PEERS_KEY, full.to_string()).await?;
                        eprintln!("[rust] pushed {full} to {GOSSIP_PEERS_KEY}");
                        for (addr, peer) in &g.connect {
                            let opts = DialOpts::peer_id(*peer).addresses(vec![addr.clone()]).build();
                            let id = opts.connection_id();
                            let full = addr.clone().with(Protocol::P2p(*peer));
                            match swarm.dial(opts) {
                                Ok(()) => {
                                    dialing.insert(id, full);
                                }
                                Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {
                                    eprintln!("[rust] already connected to {full}");
                                }
                                Err(e) => return Err(format!("dial {full}: {e}").into()),
                            }
                        }
                        phase = Phase::Dialing;
                    }
                }
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } => {
                    if let Some(addr) = dialing.remove(&connection_id) {
                        eprintln!("[rust] connected to {addr}");
                    } else {
                        eprintln!(
                            "[rust] connection with {peer_id} ({}) at {}",
                            if endpoint.is_dialer() { "outbound" } else { "inbound" },
                            endpoint.get_remote_address()
                        );
                    }
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    if let Some(addr) = dialing.remove(&connection_id) {
                        return Err(format!("dial {addr}: {error}").into());
                    }
                    eprintln!("[rust] outgoing connection failed: {error}");
                }
                SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                    eprintln!(
                        "[rust] connection with {peer_id} closed{}",
                        cause.map(|c| format!(": {c}")).unwrap_or_default()
                    );
                }
                SwarmEvent::IncomingConnectionError { error, send_back_addr, .. } => {
                    eprintln!("[rust] incoming connection from {send_back_addr} failed: {error}");
                }
                SwarmEvent::ListenerError { error, .. } => {
                    eprintln!("[rust] listener error: {error}");
                }
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => match event {
                    gossipsub::Event::Message { propagation_source, message_id, message } => {
                        if message.source == Some(me) {
                            eprintln!("[rust] own message {} came back via {}",
                                show_message(&message), short(&propagation_source));
                        } else {
                            let data = String::from_utf8_lossy(&message.data).into_owned();
                            let new = inbox.add(message_id, data.clone());
                            eprintln!(
                                "[rust] received {data:?}{}: {} via {}; {}/{}",
                                if new { "" } else { " (again)" },
                                show_message(&message), short(&propagation_source),
                                inbox.ids.len(), g.expect
                            );
                        }
                    }
                    gossipsub::Event::Subscribed { peer_id, topic } => {
                        eprintln!("[rust] topic {:?}: peer {} joined", topic.as_str(), short(&peer_id));
                    }
                    gossipsub::Event::Unsubscribed { peer_id, topic } => {
                        eprintln!("[rust] topic {:?}: peer {} left", topic.as_str(), short(&peer_id));
                    }
                    gossipsub::Event::GossipsubNotSupported { peer_id } => {
                        eprintln!("[rust] peer {peer_id} does not speak gossipsub");
                    }
                    gossipsub::Event::SlowPeer { peer_id, failed_messages } => {
                        eprintln!("[rust] slow peer {}: {failed_messages:?}", short(&peer_id));
                    }
                },
                _ => {}
            }
        }

        if phase == Phase::Dialing && dialing.is_empty() {
            gossip(&mut swarm).subscribe(&topic)?;
            eprintln!("[rust] subscribed to {:?}", g.topic);
            phase = Phase::FindingTopicPeer;
        }
        if phase == Phase::FindingTopicPeer
            && gossip(&mut swarm)
                .all_peers()
                .any(|(_, topics)| topics.contains(&&topic_hash))
        {
            let _: i64 = redis.rpush(GOSSIP_READY_KEY, g.index).await?;
            eprintln!("[rust] ready");
            phase = Phase::WaitingForGo;
            // BLPOP blocks its connection; the main loop sends nothing more to Redis.
            let mut conn = redis.clone();
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
                .max(0.1);
            let tx = go_tx.take().expect("gossipsubReady is pushed once");
            tokio::spawn(async move {
                let popped: redis::RedisResult<Option<(String, String)>> =
                    conn.blpop(GOSSIP_GO_KEY, wait).await;
                let _ = tx.send(popped.map(|p| p.is_some()).map_err(|e| e.to_string()));
            });
        }
        if phase == Phase::Receiving && !reported && inbox.complete() {
            let out = line(&inbox, published, go_time);
            println!("{out}");
            reported = true;
            eprintln!(
                "[rust] received {}/{} messages in {} s; serving until SIGTERM",
                inbox.ids.len(),
                g.expect,
                out["seconds"]
            );
        }

        // Log mesh changes and each peer's pubsub protocol.
        let gs = gossip(&mut swarm);
        let mesh: BTreeSet<PeerId> = gs.mesh_peers(&topic_hash).copied().collect();
        if mesh != mesh_seen {
            for p in mesh.difference(&mesh_seen) {
                eprintln!("[rust] mesh {:?} + {}", g.topic, short(p));
            }
            for p in mesh_seen.difference(&mesh) {
                eprintln!("[rust] mesh {:?} - {}", g.topic, short(p));
            }
            mesh_seen = mesh;
        }
        for (peer, kind) in gs.peer_protocol() {
            let kind = kind.to_string();
            if kinds_seen.get(peer) != Some(&kind) {
                eprintln!("[rust] pubsub peer {}: {kind}", short(peer));
                kinds_seen.insert(*peer, kind);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Dialer
// ---------------------------------------------------------------------------------------

enum Command {
    Dial(DialOpts),
    Disconnect(PeerId),
}

#[derive(Debug)]
enum Event {
    DialFailed(ConnectionId, String),
    Closed(ConnectionId),
    Ping(ConnectionId, Result<Duration, String>),
    Identified(PeerId, Box<identify::Info>),
}

/// Owns the swarm: runs commands from the dialer and forwards the events it needs.
async fn drive_swarm(
    mut swarm: Swarm<Behaviour>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Dial(opts)) => {
                    let id = opts.connection_id();
                    if let Err(e) = swarm.dial(opts) {
                        let _ = events.send(Event::DialFailed(id, e.to_string()));
                    }
                }
                Some(Command::Disconnect(peer)) => {
                    let _ = swarm.disconnect_peer_id(peer);
                }
                None => return,
            },
            event = swarm.select_next_some() => {
                let forward = match event {
                    SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                        Some(Event::DialFailed(connection_id, error.to_string()))
                    }
                    SwarmEvent::ConnectionClosed { connection_id, cause, .. } => {
                        if let Some(cause) = cause {
                            eprintln!("[rust] connection closed: {cause}");
                        }
                        Some(Event::Closed(connection_id))
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { connection, result, .. })) => {
                        Some(Event::Ping(connection, result.map_err(|e| e.to_string())))
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                        peer_id, info, ..
                    })) => Some(Event::Identified(peer_id, Box::new(info))),
                    SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Error {
                        peer_id, error, ..
                    })) => {
                        eprintln!("[rust] identify with {peer_id} failed: {error}");
                        None
                    }
                    _ => None,
                };
                if let Some(event) = forward {
                    let _ = events.send(event);
                }
            }
        }
    }
}

struct Prng(u64);

impl Prng {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Prng(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

fn median(samples: &[f64]) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

struct Dialer {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<Event>,
    control: libp2p_stream::Control,
    peer: PeerId,
    identify: Option<Box<identify::Info>>,
    rng: Prng,
}

impl Dialer {
    async fn next_event(&mut self) -> Res<Event> {
        let event = self.events.recv().await.ok_or("swarm task ended")?;
        if let Event::Identified(peer, info) = &event
            && *peer == self.peer
            && self.identify.is_none()
        {
            self.identify = Some(info.clone());
        }
        Ok(event)
    }

    /// Dial a fresh connection and wait for rust-libp2p's first ping on it.
    /// Returns (time from dial to ping result, ping RTT, connection).
    async fn handshake_sample(
        &mut self,
        addr: &Multiaddr,
    ) -> Res<(Duration, Duration, ConnectionId)> {
        let opts = DialOpts::peer_id(self.peer)
            .addresses(vec![addr.clone()])
            .condition(PeerCondition::Always)
            .build();
        let id = opts.connection_id();
        let start = Instant::now();
        self.commands
            .send(Command::Dial(opts))
            .map_err(|_| "swarm task ended")?;
        loop {
            match self.next_event().await? {
                Event::Ping(c, result) if c == id => {
                    let elapsed = start.elapsed();
                    let rtt = result.map_err(|e| format!("first ping failed: {e}"))?;
                    return Ok((elapsed, rtt, id));
                }
                Event::DialFailed(c, e) if c == id => {
                    return Err(format!("dial failed: {e}").into());
                }
                Event::Closed(c) if c == id => {
                    return Err("connection closed before its first ping".into());
                }
                _ => {}
            }
        }
    }

    async fn close_connection(&mut self, id: ConnectionId) -> Res<()> {
        self.commands
            .send(Command::Disconnect(self.peer))
            .map_err(|_| "swarm task ended")?;
        loop {
            if let Event::Closed(c) = self.next_event().await?
                && c == id
            {
                return Ok(());
            }
        }
    }

    async fn pings(&mut self, count: usize) -> Res<Vec<f64>> {
        let mut rtts = Vec::with_capacity(count);
        if count == 0 {
            return Ok(rtts);
        }
        let mut stream = self.control.open_stream(self.peer, PING).await?;
        let mut reply = [0u8; 32];
        for _ in 0..count {
            let payload = self.rng.bytes(32);
            let start = Instant::now();
            stream.write_all(&payload).await?;
            stream.flush().await?;
            stream.read_exact(&mut reply).await?;
            let rtt = start.elapsed();
            if reply[..] != payload[..] {
                return Err("ping reply does not match the payload".into());
            }
            rtts.push(millis(rtt));
        }
        let _ = stream.close().await;
        Ok(rtts)
    }

    async fn wait_identify(&mut self) -> Res<()> {
        let deadline = tokio::time::Instant::now() + IDENTIFY_WAIT;
        while self.identify.is_none() {
            match tokio::time::timeout_at(deadline, self.next_event()).await {
                Ok(event) => {
                    event?;
                }
                Err(_) => {
                    eprintln!("[rust] no identify from the listener within {IDENTIFY_WAIT:?}");
                    break;
                }
            }
        }
        Ok(())
    }

    async fn echo(&mut self, n: u64) -> Res<(bool, Duration)> {
        let data = self.rng.bytes(n as usize);
        let start = Instant::now();
        let stream = self.control.open_stream(self.peer, ECHO).await?;
        let (mut reader, mut writer) = stream.split();
        let send = async {
            for chunk in data.chunks(CHUNK) {
                writer.write_all(chunk).await?;
            }
            writer.close().await?;
            Ok::<_, io::Error>(())
        };
        let receive = async {
            let mut got = Vec::with_capacity(data.len());
            let mut buf = vec![0u8; CHUNK];
            loop {
                let k = reader.read(&mut buf).await?;
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
            Ok::<_, io::Error>(got)
        };
        let (sent, received) = futures::join!(send, receive);
        let elapsed = start.elapsed();
        sent.map_err(|e| format!("echo write failed: {e}"))?;
        let got = received.map_err(|e| format!("echo read failed: {e}"))?;
        if got.len() != data.len() {
            eprintln!(
                "[rust] echo: sent {} bytes, got {} back",
                data.len(),
                got.len()
            );
            return Ok((false, elapsed));
        }
        if got != data {
            let at = got.iter().zip(&data).position(|(a, b)| a != b).unwrap_or(0);
            eprintln!("[rust] echo: first differing byte at offset {at}");
            return Ok((false, elapsed));
        }
        Ok((true, elapsed))
    }

    /// perf.md client. Returns (upload time, download time, bytes downloaded).
    async fn perf(&mut self, upload: u64, download: u64) -> Res<(Duration, Duration, u64)> {
        let start = Instant::now();
        let mut stream = self.control.open_stream(self.peer, PERF).await?;
        stream.write_all(&download.to_be_bytes()).await?;
        let zeros = vec![0u8; CHUNK];
        let mut left = upload;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            stream.write_all(&zeros[..n]).await?;
            left -= n as u64;
        }
        stream.close().await?;
        let mut buf = vec![0u8; CHUNK];
        let mut first_byte: Option<Instant> = None;
        let mut received = 0u64;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            first_byte.get_or_insert_with(Instant::now);
            received += n as u64;
        }
        let end = Instant::now();
        let first = first_byte.unwrap_or(end);
        Ok((first - start, end - first, received))
    }
}

fn strip_p2p(addr: &Multiaddr) -> Res<(Multiaddr, PeerId)> {
    let mut peer = None;
    let mut bare = Multiaddr::empty();
    for p in addr.iter() {
        match p {
            Protocol::P2p(id) => peer = Some(id),
            other => bare.push(other),
        }
    }
    let peer = peer.ok_or_else(|| format!("address {addr} has no /p2p/ peer id"))?;
    Ok((bare, peer))
}

async fn run_dialer(cfg: &Config) -> Res<Value> {
    let deadline = Instant::now() + cfg.timeout;
    let mut redis = connect_redis(&cfg.redis_addr, deadline).await?;
    let key = identity::Keypair::generate_ed25519();
    let swarm = build_swarm(cfg, &key)?;
    let control = swarm.behaviour().streams.new_control();

    let popped: Option<(String, String)> =
        redis.blpop(REDIS_KEY, cfg.timeout.as_secs_f64()).await?;
    let (_, text) = popped.ok_or("no listener address in redis before the timeout")?;
    let listener: Multiaddr = text.trim().parse()?;
    eprintln!("[rust] dialing {listener}");
    let (addr, peer) = strip_p2p(&listener)?;

    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    tokio::spawn(drive_swarm(swarm, command_rx, event_tx));
    let mut d = Dialer {
        commands: command_tx,
        events: event_rx,
        control,
        peer,
        identify: None,
        rng: Prng::new(),
    };

    let mut handshakes = Vec::with_capacity(cfg.handshake_count);
    let mut pings = Vec::with_capacity(cfg.ping_count);
    for i in 0..cfg.handshake_count {
        let (elapsed, rtt, id) = d.handshake_sample(&addr).await?;
        handshakes.push(millis(elapsed));
        if i + 1 < cfg.handshake_count {
            d.close_connection(id).await?;
        } else {
            pings.push(millis(rtt));
        }
    }
    pings.extend(d.pings(cfg.ping_count - 1).await?);
    d.wait_identify().await?;

    let mut out = json!({
        "handshakePlusOneRTTMillis": median(&handshakes),
        "pingRTTMilllis": median(&pings),
        "handshakePlusOneRTTsMillis": handshakes,
        "pingRTTsMillis": pings,
        "implementation": format!("rust-libp2p v{}", env!("LIBP2P_VERSION")),
        "transport": match cfg.transport { TransportKind::Tcp => "tcp", TransportKind::QuicV1 => "quic-v1" },
        "security": match cfg.security { Some(Security::Noise) => json!("noise"), Some(Security::Tls) => json!("tls"), None => Value::Null },
        "muxer": if cfg.transport == TransportKind::Tcp { json!("yamux") } else { Value::Null },
        "remotePeer": peer.to_string(),
        "agentVersion": d.identify.as_ref().map(|i| json!(i.agent_version)).unwrap_or(Value::Null),
        "protocols": d.identify.as_ref().map(|i| i.protocols.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
    });

    if let Some(n) = cfg.echo_bytes {
        let (ok, elapsed) = d.echo(n).await?;
        if !ok {
            return Err(format!("echo of {n} bytes did not come back intact").into());
        }
        out["echoBytes"] = json!(n);
        out["echoOk"] = json!(ok);
        out["echoSeconds"] = json!(seconds(elapsed));
    }
    if let Some((up, down)) = cfg.perf {
        let (up_time, down_time, received) = d.perf(up, down).await?;
        if received != down {
            eprintln!("[rust] perf: asked for {down} bytes, received {received}");
        }
        out["perfUploadBytes"] = json!(up);
        out["perfDownloadBytes"] = json!(received);
        out["perfUploadSeconds"] = json!(seconds(up_time));
        out["perfDownloadSeconds"] = json!(seconds(down_time));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------

#[tokio::main]
async fn main() {
    let cfg = match parse_config() {
        Ok(cfg) => cfg,
        Err(reason) => {
            eprintln!("[rust] unsupported configuration: {reason}");
            exit(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .init();

    eprintln!(
        "[rust] rust-libp2p v{} {} {:?} {:?}",
        env!("LIBP2P_VERSION"),
        if cfg.gossip.is_some() {
            "gossipsub node"
        } else if cfg.is_dialer {
            "dialer"
        } else {
            "listener"
        },
        cfg.transport,
        cfg.security
    );
    if let Some(g) = &cfg.gossip {
        match run_gossipsub(&cfg, g).await {
            Ok(()) => exit(0),
            Err(e) => {
                eprintln!("[rust] gossipsub node failed: {e}");
                exit(1);
            }
        }
    } else if cfg.is_dialer {
        match tokio::time::timeout(cfg.timeout, run_dialer(&cfg)).await {
            Ok(Ok(result)) => {
                println!("{result}");
                exit(0);
            }
            Ok(Err(e)) => {
                eprintln!("[rust] dialer failed: {e}");
                exit(1);
            }
            Err(_) => {
                eprintln!("[rust] dialer: test timeout of {:?} reached", cfg.timeout);
                exit(1);
            }
        }
    } else {
        match run_listener(cfg).await {
            Ok(()) => exit(0),
            Err(e) => {
                eprintln!("[rust] listener failed: {e}");
                exit(1);
            }
        }
    }
}
