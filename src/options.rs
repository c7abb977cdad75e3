//! Socket options, with libzmq 4.3's defaults.
//!
//! Options are read when they take effect, as in libzmq: HWMs, `IMMEDIATE`, reconnect
//! intervals, `MAXMSGSIZE` and the routing id apply to connections made by `bind`/`connect`
//! calls made after they were set (the engine gets a snapshot at each call).

use bytes::Bytes;

use crate::SocketType;

/// All options of one socket. `-1` means "unset / infinite" where libzmq uses it so.
#[derive(Clone, Debug)]
pub struct Options {
    /// The socket type (read-only).
    pub socket_type: SocketType,
    /// Outbound HWM per peer, in messages (default 1000; 0 = unlimited).
    pub sndhwm: i32,
    /// Inbound HWM per peer, in messages (default 1000; 0 = unlimited).
    pub rcvhwm: i32,
    /// Milliseconds to keep delivering queued messages after close (-1 = forever, default).
    pub linger: i32,
    /// Receive timeout in ms (-1 = block forever, default).
    pub rcvtimeo: i32,
    /// Send timeout in ms (-1 = block forever, default).
    pub sndtimeo: i32,
    /// Routing id announced in the handshake (`Identity` property).
    pub routing_id: Bytes,
    /// First reconnect interval in ms (default 100; -1 = never reconnect).
    pub reconnect_ivl: i32,
    /// Maximum reconnect interval in ms for exponential backoff (0 = no backoff, default).
    pub reconnect_ivl_max: i32,
    /// Largest frame accepted from peers in bytes (-1 = unlimited, default).
    pub maxmsgsize: i64,
    /// Queue messages only on completed connections (default false).
    pub immediate: bool,
    /// Listen backlog (default 100).
    pub backlog: i32,
    /// Kernel send buffer size (-1 = OS default).
    pub sndbuf: i32,
    /// Kernel receive buffer size (-1 = OS default).
    pub rcvbuf: i32,
    /// Handshake timeout in ms (default 30000; 0 = none).
    pub handshake_ivl: i32,
    /// TCP connect timeout in ms (0 = OS default).
    pub connect_timeout: i32,
    /// Accept IPv6 (and IPv4-mapped) addresses on wildcard binds.
    pub ipv6: bool,
    /// SO_KEEPALIVE: -1 OS default, 0 off, 1 on.
    pub tcp_keepalive: i32,
    /// TCP_KEEPCNT (-1 = OS default).
    pub tcp_keepalive_cnt: i32,
    /// TCP_KEEPIDLE in seconds (-1 = OS default).
    pub tcp_keepalive_idle: i32,
    /// TCP_KEEPINTVL in seconds (-1 = OS default).
    pub tcp_keepalive_intvl: i32,
    /// ZMTP heartbeat interval in ms (0 = off).
    pub heartbeat_ivl: i32,
    /// TTL announced in PINGs, in ms (0 = none).
    pub heartbeat_ttl: i32,
    /// Most connections a bound socket accepts at once (0 = no limit, the default); more
    /// are closed as soon as they are accepted. A ferromq extension.
    pub max_connections: usize,
    /// PLAIN/CURVE servers: who checks clients' credentials (see
    /// [`crate::Socket::set_authenticator`]).
    pub authenticator: Option<AuthHandle>,
    /// ROUTER/DEALER: send an empty message first on every new connection.
    pub probe_router: bool,
    /// ROUTER: the routing id given to the peer of the next `connect` (then cleared).
    pub connect_routing_id: Option<Bytes>,
    /// Time without traffic after a PING before the peer is declared dead, in ms
    /// (-1 = same as `heartbeat_ivl`).
    pub heartbeat_timeout: i32,
    /// `ZMQ_AFFINITY` (stored only: one I/O thread per context; default 0).
    pub affinity: u64,
    /// `ZMQ_RATE`, multicast kbit/s (stored only; default 100).
    pub rate: i32,
    /// `ZMQ_RECOVERY_IVL`, multicast ms (stored only; default 10000).
    pub recovery_ivl: i32,
    /// `ZMQ_MULTICAST_HOPS` (stored only; default 1).
    pub multicast_hops: i32,
    /// `ZMQ_TOS`, IP type of service (stored only; default 0).
    pub tos: i32,
    /// `ZMQ_SOCKS_PROXY` (stored only; default empty).
    pub socks_proxy: String,
    /// `ZMQ_CONFLATE` (stored only; default false).
    pub conflate: bool,
    /// `ZMQ_MECHANISM`: the mechanism the security options select (default NULL).
    pub mechanism: crate::Mechanism,
    /// libzmq's `as_server`: the server role of PLAIN or CURVE (default false).
    pub as_server: bool,
    /// `ZMQ_PLAIN_USERNAME` (default empty).
    pub plain_username: String,
    /// `ZMQ_PLAIN_PASSWORD` (default empty).
    pub plain_password: String,
    /// `ZMQ_ZAP_DOMAIN` (default empty).
    pub zap_domain: String,
    /// `ZMQ_CURVE_PUBLICKEY`, raw (default all zero).
    pub curve_publickey: [u8; 32],
    /// `ZMQ_CURVE_SECRETKEY`, raw (default all zero).
    pub curve_secretkey: [u8; 32],
    /// `ZMQ_CURVE_SERVERKEY`, raw (default all zero).
    pub curve_serverkey: [u8; 32],
    /// `ZMQ_FD`: the notification descriptor, made by the first `Socket::get_fd` (default
    /// none).
    pub zmq_fd: Option<std::sync::Arc<crate::compat::ZmqFd>>,
}

/// A shared authenticator, as options hold it.
#[derive(Clone)]
pub struct AuthHandle(pub std::sync::Arc<dyn crate::proto::Authenticator>);

impl std::fmt::Debug for AuthHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authenticator")
    }
}

impl Options {
    /// libzmq's defaults for a socket of type `socket_type`.
    pub fn new(socket_type: SocketType) -> Options {
        Options {
            socket_type,
            sndhwm: 1000,
            rcvhwm: 1000,
            // libzmq's SUB and XSUB do not wait for pending subscriptions on close.
            linger: if matches!(socket_type, SocketType::SUB | SocketType::XSUB) {
                0
            } else {
                -1
            },
            rcvtimeo: -1,
            sndtimeo: -1,
            routing_id: Bytes::new(),
            reconnect_ivl: 100,
            reconnect_ivl_max: 0,
            maxmsgsize: -1,
            immediate: false,
            backlog: 100,
            sndbuf: -1,
            rcvbuf: -1,
            handshake_ivl: 30_000,
            connect_timeout: 0,
            ipv6: false,
            tcp_keepalive: -1,
            tcp_keepalive_cnt: -1,
            tcp_keepalive_idle: -1,
            tcp_keepalive_intvl: -1,
            heartbeat_ivl: 0,
            heartbeat_ttl: 0,
            heartbeat_timeout: -1,
            connect_routing_id: None,
            probe_router: false,
            authenticator: None,
            max_connections: 0,
            affinity: 0,
            rate: 100,
            recovery_ivl: 10_000,
            multicast_hops: 1,
            tos: 0,
            socks_proxy: String::new(),
            conflate: false,
            mechanism: crate::Mechanism::ZMQ_NULL,
            as_server: false,
            plain_username: String::new(),
            plain_password: String::new(),
            zap_domain: String::new(),
            curve_publickey: [0; 32],
            curve_secretkey: [0; 32],
            curve_serverkey: [0; 32],
            zmq_fd: None,
        }
    }

    /// `MAXMSGSIZE` as the protocol layer takes it.
    pub fn max_msg_size(&self) -> Option<u64> {
        u64::try_from(self.maxmsgsize).ok()
    }

    /// HWM as a pipe takes it (0 = unlimited).
    pub fn pipe_hwm(v: i32) -> usize {
        usize::try_from(v).unwrap_or(0)
    }
}
