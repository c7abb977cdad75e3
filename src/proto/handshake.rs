//! The connection handshake: greeting exchange, then the security mechanism's handshake
//! (NULL, PLAIN or CURVE, see [`Handshake::with_security`]), then the socket-type check of
//! RFC 37.
//!
//! ```text
//! Greeting ──(peer greeting valid)──► Mechanism ──(peer READY valid)──► Done
//!     │                                   │
//!     └──────────── any error ────────────┴──► Failed (an ERROR command may be queued)
//! ```
//!
//! Usage, for each connection (both sides run the same code):
//!
//! 1. `let mut hs = Handshake::new(cfg);`
//! 2. loop: `hs.poll_output(&mut enc)`, write `enc` out; read into `buf`;
//!    `hs.handle_input(&mut buf)` until it returns `Done(peer)` or an error.
//! 3. On `Done`, call `poll_output` **once more** (our READY may still be pending when the
//!    peer's greeting and READY arrived together) and switch to a [`Decoder`] for the data
//!    frames; the bytes left in `buf` are the first of them.
//! 4. On `Err`, call `poll_output` once more and flush: it may yield an ERROR command.
//! 5. CURVE only: after `Done`, [`Handshake::take_cipher`] yields the [`FrameCipher`] that
//!    every later frame must go through, both ways (the bytes left in `buf` are already
//!    MESSAGE commands).

use bytes::{Bytes, BytesMut};

use super::codec::{FLAG_COMMAND, FLAG_LONG, FLAG_MORE, MAX_RESERVE};
use super::curve::{CurveClient, CurveServer, FrameCipher};
use super::greeting::{self, Greeting, GREETING_LEN};
use super::mechanism::{Mechanism, MechanismKind, MechanismStatus, NullMechanism};
use super::plain::{PlainClient, PlainServer};
use super::zap::{self, AuthOutcome, MechanismConfig, SecurityConfig, ZapReply, ZapRequest};
use super::{Decoder, Encoder, ProtoError};
use crate::{Metadata, SocketType};

/// Name of the property that carries the socket type (RFC 37).
pub const PROPERTY_SOCKET_TYPE: &str = "Socket-Type";
/// Name of the property that carries the routing id (RFC 37).
pub const PROPERTY_IDENTITY: &str = "Identity";

/// ERROR reason sent when the peer's socket type is missing, unknown or incompatible.
pub const REASON_INVALID_SOCKET_TYPE: &str = "Invalid socket type";

/// What our side of the handshake announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// Our socket type (sent as `Socket-Type`).
    pub socket_type: SocketType,
    /// Our routing id (`ZMQ_ROUTING_ID`), sent as `Identity` by REQ, DEALER and ROUTER.
    pub identity: Bytes,
    /// The as-server byte of our greeting (false for NULL, as libzmq sends).
    pub as_server: bool,
    /// Maximum frame size accepted during the handshake (`ZMQ_MAXMSGSIZE`; None = unlimited).
    pub max_msg_size: Option<u64>,
}

/// What we learned about the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's socket type.
    pub socket_type: SocketType,
    /// The peer's `Identity` property (empty if absent or empty).
    pub identity: Bytes,
    /// All properties of the peer's READY, including `Socket-Type`, `Identity` and any
    /// unknown ones (what `zmq_msg_gets` exposes in libzmq).
    pub metadata: Metadata,
    /// 0 = ZMTP 3.0 peer, 1 = 3.1 (or later) peer.
    pub minor_version: u8,
    /// The security mechanism of the connection.
    pub mechanism: MechanismKind,
    /// Server side of PLAIN/CURVE: the user id the authenticator returned (libzmq's
    /// `User-Id` message property); empty otherwise.
    pub user_id: Bytes,
    /// Server side of PLAIN/CURVE: the metadata of the authenticator's reply (libzmq adds
    /// these to the connection's message properties); empty otherwise.
    pub zap_properties: Metadata,
}

/// Result of [`Handshake::handle_input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// More bytes from the peer are needed.
    InProgress,
    /// The handshake succeeded.
    Done(PeerInfo),
}

#[derive(Debug)]
enum State {
    /// Waiting for the peer's 64-byte greeting.
    Greeting,
    /// Running the mechanism's handshake.
    Mechanism,
    /// Waiting for [`Handshake::resolve_auth`] (deferred authentication).
    Authenticating(Box<ZapRequest>),
    /// Finished; the peer info is kept for repeated calls.
    Done(PeerInfo),
    /// Failed with this error.
    Failed(ProtoError),
}

/// The handshake state machine of one connection (sans-IO).
#[derive(Debug)]
pub struct Handshake {
    cfg: HandshakeConfig,
    extra_props: Metadata,
    state: State,
    greeting_sent: bool,
    decoder: Decoder,
    mechanism: Option<Box<dyn Mechanism>>,
    peer_greeting: Option<Greeting>,
    error_to_send: Option<String>,
    security: SecurityConfig,
    user_id: Bytes,
    zap_properties: Metadata,
}

impl Handshake {
    /// A handshake announcing `cfg`, using the NULL mechanism.
    pub fn new(cfg: HandshakeConfig) -> Self {
        let decoder = Decoder::new(cfg.max_msg_size);
        Handshake {
            cfg,
            extra_props: Metadata::new(),
            state: State::Greeting,
            greeting_sent: false,
            decoder,
            mechanism: None,
            peer_greeting: None,
            error_to_send: None,
            security: SecurityConfig::default(),
            user_id: Bytes::new(),
            zap_properties: Metadata::new(),
        }
    }

    /// Selects the security mechanism, our role in it and its authenticator (the default is
    /// NULL). For PLAIN and CURVE the greeting's as-server byte follows the role, overriding
    /// [`HandshakeConfig::as_server`]. Call before the first [`Handshake::poll_output`].
    pub fn with_security(mut self, security: SecurityConfig) -> Self {
        self.security = security;
        self
    }

    /// CURVE: the cipher for every frame after the handshake, once it is done (None before,
    /// for other mechanisms, and after the first call).
    pub fn take_cipher(&mut self) -> Option<FrameCipher> {
        if !self.is_done() {
            return None;
        }
        self.mechanism.as_mut().and_then(|m| m.take_cipher())
    }

    /// Adds application properties to our READY (libzmq's `ZMQ_METADATA`, names conventionally
    /// starting with `X-`). They follow `Socket-Type` and `Identity`.
    pub fn with_properties(mut self, props: Metadata) -> Self {
        for (name, value) in props.iter() {
            self.extra_props.insert(name, value.clone());
        }
        self
    }

    /// The security mechanism this side uses.
    pub fn mechanism(&self) -> MechanismKind {
        self.security.mechanism.kind()
    }

    /// The peer's greeting, once received.
    pub fn peer_greeting(&self) -> Option<&Greeting> {
        self.peer_greeting.as_ref()
    }

    /// True once the handshake succeeded.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done(_))
    }

    /// True once the handshake failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Whether [`Handshake::poll_output`] would queue something now.
    pub fn has_pending_output(&self) -> bool {
        match &self.state {
            State::Failed(_) => self.error_to_send.is_some(),
            State::Greeting => !self.greeting_sent,
            State::Mechanism | State::Authenticating(_) | State::Done(_) => {
                !self.greeting_sent || self.mechanism.as_ref().is_some_and(|m| !m.output_done())
            }
        }
    }

    /// The properties our READY announces.
    fn our_properties(&self) -> Metadata {
        let mut md = Metadata::new();
        md.insert(PROPERTY_SOCKET_TYPE, self.cfg.socket_type.as_str());
        // libzmq 4.3 sends Identity for these types, even when it is empty.
        if matches!(
            self.cfg.socket_type,
            SocketType::REQ | SocketType::DEALER | SocketType::ROUTER
        ) {
            md.insert(PROPERTY_IDENTITY, self.cfg.identity.clone());
        }
        for (name, value) in self.extra_props.iter() {
            md.insert(name, value.clone());
        }
        md
    }

    fn send_greeting(&mut self, enc: &mut Encoder) {
        if !self.greeting_sent {
            let mech = &self.security.mechanism;
            let as_server = match mech {
                MechanismConfig::Null => self.cfg.as_server,
                _ => mech.is_server(),
            };
            let g = Greeting {
                mechanism: greeting::mechanism_field(mech.kind().name()),
                ..Greeting::null(as_server)
            };
            enc.encode_raw(&g.encode());
            self.greeting_sent = true;
        }
    }

    /// Moves whatever we must send now (greeting, READY, or ERROR before failing) into `enc`.
    pub fn poll_output(&mut self, enc: &mut Encoder) {
        match self.state {
            State::Failed(_) => {
                if let Some(reason) = self.error_to_send.take() {
                    self.send_greeting(enc);
                    enc.encode_command(&super::Command::Error(reason));
                }
            }
            State::Greeting => self.send_greeting(enc),
            State::Mechanism | State::Authenticating(_) | State::Done(_) => {
                self.send_greeting(enc);
                if let Some(m) = self.mechanism.as_mut() {
                    m.poll_output(enc);
                }
            }
        }
    }

    /// Records a failure; `reason` is the ERROR command to queue, if any.
    fn fail(&mut self, err: ProtoError, reason: Option<&str>) -> ProtoError {
        self.error_to_send = reason.map(str::to_owned);
        self.state = State::Failed(err.clone());
        err
    }

    /// Consumes handshake bytes from the front of `buf` (leaving any bytes after the peer's
    /// READY untouched: they are the first data frames). On Err, poll_output may still yield
    /// an ERROR command to flush before closing (at least for an incompatible socket type).
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<HandshakeStatus, ProtoError> {
        loop {
            match &self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Done(peer) => return Ok(HandshakeStatus::Done(peer.clone())),
                State::Authenticating(_) => return Ok(HandshakeStatus::InProgress),
                State::Greeting => {
                    if !self.handle_greeting(buf)? {
                        return Ok(HandshakeStatus::InProgress);
                    }
                }
                State::Mechanism => {
                    if !self.handle_mechanism(buf)? {
                        return Ok(HandshakeStatus::InProgress);
                    }
                }
            }
        }
    }

    /// Greeting step; Ok(true) when it completed.
    fn handle_greeting(&mut self, buf: &mut BytesMut) -> Result<bool, ProtoError> {
        let prefix = &buf[..buf.len().min(GREETING_LEN)];
        if let Err(e) = greeting::check_prefix(prefix) {
            // The peer does not speak ZMTP 3.x: it would not understand an ERROR command.
            return Err(self.fail(e, None));
        }
        let Some(raw) = buf.get(..GREETING_LEN) else {
            return Ok(false);
        };
        let mut bytes = [0u8; GREETING_LEN];
        bytes.copy_from_slice(raw);
        let g = match Greeting::parse(&bytes) {
            Ok(g) => g,
            Err(e) => return Err(self.fail(e, None)),
        };
        let _ = buf.split_to(GREETING_LEN);
        let ours = self.mechanism();
        match MechanismKind::from_name(g.mechanism_name()) {
            Some(kind) if kind == ours => {}
            Some(kind) if kind.is_supported() => {
                let err = ProtoError::MechanismMismatch {
                    ours: ours.name().to_owned(),
                    peer: kind.name().to_owned(),
                };
                return Err(self.fail(err, None));
            }
            _ => {
                let name = String::from_utf8_lossy(g.mechanism_name()).into_owned();
                return Err(self.fail(ProtoError::UnsupportedMechanism(name), None));
            }
        }
        self.peer_greeting = Some(g);
        match self.new_mechanism() {
            Ok(m) => self.mechanism = Some(m),
            Err(e) => return Err(self.fail(e, None)),
        }
        self.state = State::Mechanism;
        Ok(true)
    }

    /// The mechanism state machine for our configuration.
    fn new_mechanism(&self) -> Result<Box<dyn Mechanism>, ProtoError> {
        let props = self.our_properties();
        let request = ZapRequest {
            domain: self.security.zap_domain.clone(),
            address: self.security.peer_address.clone(),
            identity: self.cfg.identity.clone(),
            mechanism: self.mechanism(),
            credentials: Vec::new(),
        };
        Ok(match &self.security.mechanism {
            MechanismConfig::Null => {
                let null = NullMechanism::new(props);
                let zap = !self.security.zap_domain.is_empty()
                    && (self.security.authenticator.is_some() || self.security.defer_auth);
                if zap {
                    Box::new(null.with_zap(request))
                } else {
                    Box::new(null)
                }
            }
            MechanismConfig::PlainClient { username, password } => {
                Box::new(PlainClient::new(username.clone(), password.clone(), props))
            }
            MechanismConfig::PlainServer => Box::new(PlainServer::new(props, request)),
            MechanismConfig::CurveClient {
                server_key,
                secret_key,
            } => Box::new(CurveClient::new(*server_key, *secret_key, props)?),
            MechanismConfig::CurveServer { secret_key } => {
                Box::new(CurveServer::new(*secret_key, props, request)?)
            }
        })
    }

    /// Splits the next complete frame off `buf`: (flags, body). The mechanism sees command
    /// bodies unparsed (a CURVE READY carries a box, not properties).
    fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<(u8, Bytes)>, ProtoError> {
        let Some(&flags) = buf.first() else {
            return Ok(None);
        };
        if flags & !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND) != 0 {
            return Err(ProtoError::InvalidFlags(flags));
        }
        if flags & FLAG_COMMAND != 0 && flags & FLAG_MORE != 0 {
            return Err(ProtoError::CommandWithMore);
        }
        let (header_len, size) = if flags & FLAG_LONG != 0 {
            let Some(raw) = buf.get(1..9) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(raw);
            (9usize, u64::from_be_bytes(be))
        } else {
            let Some(&size) = buf.get(1) else {
                return Ok(None);
            };
            (2usize, u64::from(size))
        };
        let max = self.decoder.max_msg_size().unwrap_or(i64::MAX as u64);
        if size > max.min(i64::MAX as u64) {
            return Err(ProtoError::MessageTooLarge {
                size,
                max: max.min(i64::MAX as u64),
            });
        }
        let size = usize::try_from(size).map_err(|_| ProtoError::MessageTooLarge {
            size,
            max: usize::MAX as u64,
        })?;
        let total = header_len.saturating_add(size);
        if buf.len() < total {
            buf.reserve((total - buf.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        let mut frame = buf.split_to(total);
        let body = frame.split_off(header_len).freeze();
        Ok(Some((flags, body)))
    }

    /// Asks the authenticator (if any) about `req` and tells the mechanism.
    fn authenticate(&mut self, req: &ZapRequest) -> Result<MechanismStatus, ProtoError> {
        let reply = self
            .security
            .authenticator
            .as_ref()
            .map(|a| a.authenticate(req));
        self.auth_with(reply)
    }

    /// Tells the mechanism about `reply` (None: no authenticator); refusals fail here.
    fn auth_with(&mut self, reply: Option<ZapReply>) -> Result<MechanismStatus, ProtoError> {
        if let Some(reply) = &reply {
            if let AuthOutcome::Refused { why, error_reason } = zap::outcome(reply) {
                let err = ProtoError::AuthenticationFailed(why);
                return Err(self.fail(err, error_reason.as_deref()));
            }
            self.user_id = reply.user_id.clone();
            self.zap_properties = reply.metadata.clone();
        }
        let Some(mech) = self.mechanism.as_mut() else {
            return Err(self.fail(ProtoError::UnexpectedCommand("ZAP reply".into()), None));
        };
        mech.auth_result(reply.as_ref())
    }

    /// Mechanism step: handles complete command frames; Ok(true) when the state changed.
    fn handle_mechanism(&mut self, buf: &mut BytesMut) -> Result<bool, ProtoError> {
        loop {
            let (flags, body) = match self.next_frame(buf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(false),
                Err(e) => return Err(self.fail(e, Some("Protocol error"))),
            };
            if flags & FLAG_COMMAND == 0 {
                return Err(self.fail(ProtoError::UnexpectedMessage, Some("Protocol error")));
            }
            let Some(mech) = self.mechanism.as_mut() else {
                // Unreachable: the mechanism is created with the Mechanism state.
                return Err(self.fail(ProtoError::UnexpectedMessage, None));
            };
            let mut status = mech.handle_raw(body);
            if let Ok(MechanismStatus::Authenticate(req)) = status {
                if self.security.defer_auth {
                    self.state = State::Authenticating(req);
                    return Ok(false);
                }
                status = self.authenticate(&req);
                if self.is_failed() {
                    return status.map(|_| true);
                }
            }
            if self.apply_status(status)? {
                return Ok(true);
            }
        }
    }

    /// Acts on a mechanism's answer; Ok(true) when the handshake is done.
    fn apply_status(
        &mut self,
        status: Result<MechanismStatus, ProtoError>,
    ) -> Result<bool, ProtoError> {
        match status {
            Ok(MechanismStatus::InProgress) => Ok(false),
            Ok(MechanismStatus::Authenticate(_)) => {
                let e = ProtoError::UnexpectedCommand("ZAP".into());
                Err(self.fail(e, None))
            }
            Ok(MechanismStatus::Ready(props)) => {
                let peer = match self.check_peer(props) {
                    Ok(p) => p,
                    Err(e) => return Err(self.fail(e, Some(REASON_INVALID_SOCKET_TYPE))),
                };
                self.state = State::Done(peer);
                Ok(true)
            }
            Err(e @ (ProtoError::PeerError(_) | ProtoError::AuthenticationFailed(_))) => {
                Err(self.fail(e, None))
            }
            Err(e @ ProtoError::MalformedMetadata) => Err(self.fail(e, Some("Malformed metadata"))),
            Err(e) => Err(self.fail(e, Some("Protocol error"))),
        }
    }

    /// With [`SecurityConfig::defer_auth`]: the request the engine must forward to the ZAP
    /// handler (`inproc://zeromq.zap.01`) while [`Handshake::handle_input`] keeps answering
    /// `InProgress` without consuming anything.
    pub fn pending_auth(&self) -> Option<&ZapRequest> {
        match &self.state {
            State::Authenticating(req) => Some(req),
            _ => None,
        }
    }

    /// With [`SecurityConfig::defer_auth`]: the ZAP handler's reply to
    /// [`Handshake::pending_auth`], or None when there is no ZAP handler (PLAIN then
    /// refuses, CURVE accepts, as libzmq). Afterwards call [`Handshake::poll_output`] (WELCOME,
    /// READY or ERROR) and [`Handshake::handle_input`] again with the connection's buffer:
    /// bytes that arrived meanwhile are still in it. Errors if no request is pending.
    pub fn resolve_auth(&mut self, reply: Option<ZapReply>) -> Result<HandshakeStatus, ProtoError> {
        if !matches!(self.state, State::Authenticating(_)) {
            return Err(ProtoError::UnexpectedCommand("ZAP reply".into()));
        }
        self.state = State::Mechanism;
        let status = self.auth_with(reply);
        if self.is_failed() {
            return Err(status
                .err()
                .unwrap_or(ProtoError::AuthenticationFailed("refused".into())));
        }
        self.apply_status(status)?;
        match &self.state {
            State::Done(peer) => Ok(HandshakeStatus::Done(peer.clone())),
            _ => Ok(HandshakeStatus::InProgress),
        }
    }

    /// Checks the peer's properties (RFC 37 socket type rules) and builds its [`PeerInfo`].
    fn check_peer(&self, props: Metadata) -> Result<PeerInfo, ProtoError> {
        let raw = props
            .get(PROPERTY_SOCKET_TYPE)
            .ok_or(ProtoError::MissingSocketType)?;
        let peer_type = SocketType::from_name(raw).ok_or_else(|| {
            ProtoError::UnknownSocketType(String::from_utf8_lossy(raw).into_owned())
        })?;
        if !self.cfg.socket_type.is_compatible_with(peer_type) {
            return Err(ProtoError::IncompatibleSocketType {
                ours: self.cfg.socket_type,
                peer: peer_type,
            });
        }
        let identity = props.get(PROPERTY_IDENTITY).cloned().unwrap_or_default();
        let minor_version = self
            .peer_greeting
            .as_ref()
            .map_or(1, Greeting::effective_minor);
        Ok(PeerInfo {
            socket_type: peer_type,
            identity,
            metadata: props,
            minor_version,
            mechanism: self.mechanism(),
            user_id: self.user_id.clone(),
            zap_properties: self.zap_properties.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{parse_hex, Command, Frame, XorShift};

    fn cfg(socket_type: SocketType) -> HandshakeConfig {
        HandshakeConfig {
            socket_type,
            identity: Bytes::new(),
            as_server: false,
            max_msg_size: None,
        }
    }

    /// Everything `hs` wants to send now.
    fn output(hs: &mut Handshake) -> BytesMut {
        let mut enc = Encoder::new();
        hs.poll_output(&mut enc);
        let mut out = BytesMut::new();
        enc.drain_into(&mut out);
        out
    }

    /// Feeds `input` to a fresh handshake in the given chunks; returns the final status and
    /// the bytes left in the buffer.
    fn feed(
        config: HandshakeConfig,
        chunks: &[&[u8]],
    ) -> (Result<HandshakeStatus, ProtoError>, BytesMut, Handshake) {
        let mut hs = Handshake::new(config);
        let _ = output(&mut hs);
        let mut buf = BytesMut::new();
        let mut last = Ok(HandshakeStatus::InProgress);
        for c in chunks {
            buf.extend_from_slice(c);
            last = hs.handle_input(&mut buf);
            if last.is_err() {
                break;
            }
        }
        (last, buf, hs)
    }

    /// Runs `feed` whole, byte by byte and in random chunks; checks they agree.
    fn feed_all_ways(
        config: &HandshakeConfig,
        input: &[u8],
    ) -> (Result<HandshakeStatus, ProtoError>, BytesMut) {
        let (whole, rest, _) = feed(config.clone(), &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        // On success the leftover bytes must agree too; on error only the error matters
        // (how much was consumed before failing depends on the split).
        let same = |r: &Result<HandshakeStatus, ProtoError>, b: &BytesMut| {
            r == &whole && (whole.is_err() || b == &rest)
        };
        let (r, b, _) = feed(config.clone(), &bytes);
        assert!(
            same(&r, &b),
            "byte by byte: {r:?} {b:?} vs {whole:?} {rest:?}"
        );
        let mut rng = XorShift(0xDEAD_BEEF);
        for max in [2, 5, 11, 64, 100] {
            for _ in 0..8 {
                let chunks = rng.chunks(input, max);
                let (r, b, _) = feed(config.clone(), &chunks);
                assert!(
                    same(&r, &b),
                    "random chunks: {r:?} {b:?} vs {whole:?} {rest:?}"
                );
            }
        }
        (whole, rest)
    }

    fn done(r: Result<HandshakeStatus, ProtoError>) -> PeerInfo {
        match r {
            Ok(HandshakeStatus::Done(p)) => p,
            other => panic!("handshake not done: {other:?}"),
        }
    }

    /// Two handshakes driven against each other, with everything each side sent.
    struct Pair {
        ra: Result<HandshakeStatus, ProtoError>,
        rb: Result<HandshakeStatus, ProtoError>,
        ha: Handshake,
        hb: Handshake,
        sent_a: Vec<u8>,
        sent_b: Vec<u8>,
    }

    /// Drives two handshakes against each other through in-memory buffers.
    fn run_pair(a: HandshakeConfig, b: HandshakeConfig) -> Pair {
        let mut ha = Handshake::new(a);
        let mut hb = Handshake::new(b);
        let (mut to_a, mut to_b) = (BytesMut::new(), BytesMut::new());
        let (mut sent_a, mut sent_b) = (Vec::new(), Vec::new());
        let mut ra = Ok(HandshakeStatus::InProgress);
        let mut rb = Ok(HandshakeStatus::InProgress);
        for _ in 0..10 {
            let out_a = output(&mut ha);
            let out_b = output(&mut hb);
            sent_a.extend_from_slice(&out_a);
            sent_b.extend_from_slice(&out_b);
            to_b.extend_from_slice(&out_a);
            to_a.extend_from_slice(&out_b);
            if ra.is_ok() {
                ra = ha.handle_input(&mut to_a);
            }
            if rb.is_ok() {
                rb = hb.handle_input(&mut to_b);
            }
        }
        Pair {
            ra,
            rb,
            ha,
            hb,
            sent_a,
            sent_b,
        }
    }

    #[test]
    fn push_pull_pair() {
        let Pair {
            ra,
            rb,
            mut ha,
            hb,
            sent_a,
            sent_b,
        } = run_pair(cfg(SocketType::PUSH), cfg(SocketType::PULL));
        // Each side sent exactly its greeting and READY.
        assert_eq!(sent_a.len(), 64 + 28);
        assert_eq!(sent_b.len(), 64 + 28);
        let pa = done(ra);
        let pb = done(rb);
        assert_eq!(pa.socket_type, SocketType::PULL);
        assert_eq!(pb.socket_type, SocketType::PUSH);
        assert_eq!(pa.minor_version, 1);
        assert!(pa.identity.is_empty());
        assert_eq!(pb.metadata.get_str("Socket-Type"), Some("PUSH"));
        assert!(pb.metadata.get("Identity").is_none());
        assert!(!ha.has_pending_output() && !hb.has_pending_output());
        assert!(output(&mut ha).is_empty());
        assert!(ha.is_done());
    }

    #[test]
    fn dealer_router_identities() {
        let mut a = cfg(SocketType::DEALER);
        a.identity = Bytes::from_static(b"client-1");
        let Pair { ra, rb, .. } = run_pair(a, cfg(SocketType::ROUTER));
        // The ROUTER sends an empty Identity (as libzmq does).
        let pa = done(ra);
        assert!(pa.identity.is_empty());
        assert_eq!(pa.metadata.get("Identity").map(|v| v.len()), Some(0));
        assert_eq!(done(rb).identity, Bytes::from_static(b"client-1"));
    }

    #[test]
    fn push_push_both_fail_with_error_queued() {
        let Pair {
            ra,
            rb,
            ha,
            hb,
            sent_a,
            sent_b,
        } = run_pair(cfg(SocketType::PUSH), cfg(SocketType::PUSH));
        let error = parse_hex(include_str!("../../zmtp-spec/vectors/command-error.hex"));
        let ready = parse_hex(include_str!("../../zmtp-spec/vectors/ready-push.hex"));
        for sent in [&sent_a, &sent_b] {
            // greeting, READY, then ERROR "Invalid socket type".
            assert_eq!(sent.len(), 64 + ready.len() + error.len());
            assert_eq!(&sent[64..64 + ready.len()], &ready[..]);
            assert!(sent.ends_with(&error));
        }
        let expected = ProtoError::IncompatibleSocketType {
            ours: SocketType::PUSH,
            peer: SocketType::PUSH,
        };
        assert_eq!(ra, Err(expected.clone()));
        assert_eq!(rb, Err(expected.clone()));
        assert!(ha.is_failed() && hb.is_failed());
        // Failing before our greeting was ever polled: greeting then ERROR, no READY.
        let mut h = Handshake::new(cfg(SocketType::PUSH));
        let mut buf = BytesMut::from(&Greeting::null(false).encode()[..]);
        let mut enc = Encoder::new();
        enc.encode_command(&Command::Ready({
            let mut m = Metadata::new();
            m.insert("Socket-Type", "PUSH");
            m
        }));
        enc.drain_into(&mut buf);
        assert_eq!(h.handle_input(&mut buf), Err(expected.clone()));
        assert!(h.has_pending_output());
        let out = output(&mut h);
        // Greeting (never polled before), then the ERROR command only (no READY).
        let mut expected_out = Greeting::null(false).encode().to_vec();
        expected_out.extend(parse_hex(include_str!(
            "../../zmtp-spec/vectors/command-error.hex"
        )));
        assert_eq!(&out[..], &expected_out[..]);
        assert!(output(&mut h).is_empty(), "ERROR is sent once");
        // Sticky error.
        assert_eq!(h.handle_input(&mut BytesMut::new()), Err(expected));
    }

    #[test]
    fn peer_error_reported_without_error_reply() {
        let mut input = Greeting::null(false).encode().to_vec();
        input.extend(parse_hex(include_str!(
            "../../zmtp-spec/vectors/command-error.hex"
        )));
        let (r, _) = feed_all_ways(&cfg(SocketType::PUSH), &input);
        assert_eq!(r, Err(ProtoError::PeerError("Invalid socket type".into())));
        let (_, _, mut hs) = feed(cfg(SocketType::PUSH), &[&input]);
        assert!(!hs.has_pending_output());
        assert!(output(&mut hs).is_empty());
    }

    #[test]
    fn libzmq_push_transcript() {
        // Captured from libzmq 4.3.4: a PUSH socket's greeting, READY, then "hello".
        let input = parse_hex(include_str!(
            "../../zmtp-spec/vectors/handshake-null-push-to-pull.hex"
        ));
        let (r, rest) = feed_all_ways(&cfg(SocketType::PULL), &input);
        let peer = done(r);
        assert_eq!(peer.socket_type, SocketType::PUSH);
        assert_eq!(peer.minor_version, 1);
        assert_eq!(peer.metadata.len(), 1);
        // The data frame after READY is left in the buffer.
        assert_eq!(&rest[..], b"\x00\x05hello");
        let mut dec = Decoder::new(None);
        let mut rest = rest;
        assert_eq!(
            dec.decode(&mut rest),
            Ok(Some(Frame::Message {
                data: Bytes::from_static(b"hello"),
                more: false
            }))
        );
    }

    #[test]
    fn our_output_matches_libzmq() {
        // Our greeting differs from libzmq's only in the padding, which libzmq sets to its
        // routing-id length + 1 and which is not significant; READY is byte-identical.
        let libzmq = parse_hex(include_str!(
            "../../zmtp-spec/vectors/handshake-null-push-to-pull.hex"
        ));
        let mut hs = Handshake::new(cfg(SocketType::PUSH));
        let greeting = output(&mut hs);
        assert_eq!(greeting.len(), 64);
        assert_eq!(&greeting[..8], &libzmq[..8]);
        assert_eq!(&greeting[9..64], &libzmq[9..64]);
        let mut buf = BytesMut::from(&libzmq[..64]);
        // (A PUSH peer is incompatible, but READY is queued as soon as the greeting is in.)
        assert_eq!(hs.handle_input(&mut buf), Ok(HandshakeStatus::InProgress));
        let ready = output(&mut hs);
        assert_eq!(&ready[..], &libzmq[64..64 + 28]);
        assert_eq!(
            &ready[..],
            &parse_hex(include_str!("../../zmtp-spec/vectors/ready-push.hex"))[..]
        );

        let mut hs = Handshake::new(cfg(SocketType::DEALER));
        let _ = output(&mut hs);
        let mut buf = BytesMut::from(&libzmq[..64]);
        hs.handle_input(&mut buf).unwrap();
        assert_eq!(
            &output(&mut hs)[..],
            &parse_hex(include_str!(
                "../../zmtp-spec/vectors/ready-dealer-empty-identity.hex"
            ))[..]
        );

        let mut c = cfg(SocketType::DEALER);
        c.identity = Bytes::from_static(b"client-1");
        let mut hs = Handshake::new(c);
        let _ = output(&mut hs);
        let mut buf = BytesMut::from(&libzmq[..64]);
        hs.handle_input(&mut buf).unwrap();
        assert_eq!(
            &output(&mut hs)[..],
            &parse_hex(include_str!(
                "../../zmtp-spec/vectors/ready-dealer-identity.hex"
            ))[..]
        );
    }

    #[test]
    fn every_greeting_and_ready_vector_through_the_handshake() {
        let greetings = [
            (
                include_str!("../../zmtp-spec/vectors/greeting-null-3.1-client.hex"),
                1,
            ),
            (
                include_str!("../../zmtp-spec/vectors/greeting-libzmq-4.3.hex"),
                1,
            ),
            (
                include_str!("../../zmtp-spec/vectors/greeting-null-3.0.hex"),
                0,
            ),
        ];
        let readies = [
            (
                include_str!("../../zmtp-spec/vectors/ready-dealer-identity.hex"),
                &b"client-1"[..],
            ),
            (
                include_str!("../../zmtp-spec/vectors/ready-dealer-empty-identity.hex"),
                &b""[..],
            ),
        ];
        for (greeting, minor) in greetings {
            for (ready, identity) in readies {
                let mut input = parse_hex(greeting);
                input.extend(parse_hex(ready));
                input.extend_from_slice(b"\x01\x00\x00\x02hi");
                let (r, rest) = feed_all_ways(&cfg(SocketType::ROUTER), &input);
                let peer = done(r);
                assert_eq!(peer.socket_type, SocketType::DEALER);
                assert_eq!(peer.identity, identity);
                assert_eq!(peer.minor_version, minor);
                assert_eq!(&rest[..], b"\x01\x00\x00\x02hi");
            }
        }
    }

    #[test]
    fn zmtp_3_0_peer_accepted() {
        let mut input = parse_hex(include_str!(
            "../../zmtp-spec/vectors/greeting-null-3.0.hex"
        ));
        input.extend(parse_hex(include_str!(
            "../../zmtp-spec/vectors/ready-push.hex"
        )));
        let (r, rest) = feed_all_ways(&cfg(SocketType::PULL), &input);
        assert_eq!(done(r).minor_version, 0);
        assert!(rest.is_empty());
    }

    #[test]
    fn zmtp_2_0_peer_refused() {
        let input = parse_hex(include_str!(
            "../../zmtp-spec/vectors/greeting-2.0-refused.hex"
        ));
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &input);
        assert_eq!(
            r,
            Err(ProtoError::UnsupportedVersion { major: 1, minor: 0 })
        );
        // Refused without waiting for 64 bytes, and without an ERROR.
        let (r, _, mut hs) = feed(cfg(SocketType::PULL), &[&input[..11]]);
        assert!(matches!(
            r,
            Err(ProtoError::UnsupportedVersion { major: 1, .. })
        ));
        assert!(output(&mut hs).is_empty());
    }

    #[test]
    fn garbage_refused() {
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(r, Err(ProtoError::BadSignature));
        // ZMTP 1.0 style: 0xFF then a length, byte 9 bit 0 clear.
        let (r, _) = feed_all_ways(
            &cfg(SocketType::PULL),
            &[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x00],
        );
        assert_eq!(r, Err(ProtoError::BadSignature));
        let mut rng = XorShift(4242);
        for _ in 0..500 {
            let len = (rng.next() % 120) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if rng.next() % 2 == 0 && data.len() >= 64 {
                data[..64].copy_from_slice(&Greeting::null(false).encode());
            }
            let (r, _, _) = feed(cfg(SocketType::PULL), &[&data]);
            let _ = r;
        }
    }

    #[test]
    fn mutated_transcripts_never_panic() {
        // Valid transcripts with random bytes flipped, inserted or cut, fed in random chunks
        // to the handshake and then to a decoder: errors are fine, panics are not.
        let base = parse_hex(include_str!(
            "../../zmtp-spec/vectors/handshake-null-push-to-pull.hex"
        ));
        let mut rng = XorShift(0x1234_5678);
        for round in 0..3000 {
            let mut data = base.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = (rng.next() as usize) % data.len();
                match rng.next() % 4 {
                    0 => data[i] = rng.next() as u8,
                    1 => data[i] ^= 1 << (rng.next() % 8),
                    2 => data.insert(i, rng.next() as u8),
                    _ => data.truncate(i.max(1)),
                }
            }
            let chunks = rng.chunks(&data, 1 + round % 70);
            let c = cfg(if round % 2 == 0 {
                SocketType::PULL
            } else {
                SocketType::ROUTER
            });
            let mut hs = Handshake::new(c);
            let mut buf = BytesMut::new();
            let mut dec = Decoder::new(Some(1 << 16));
            let mut done = false;
            for chunk in chunks {
                buf.extend_from_slice(chunk);
                if !done {
                    match hs.handle_input(&mut buf) {
                        Ok(HandshakeStatus::Done(_)) => done = true,
                        Ok(HandshakeStatus::InProgress) => continue,
                        Err(_) => break,
                    }
                }
                while let Ok(Some(_)) = dec.decode(&mut buf) {}
            }
            let _ = output(&mut hs);
        }
    }

    #[test]
    fn mechanism_refused() {
        let mut g = Greeting::null(false);
        g.mechanism = greeting::mechanism_field("CURVE");
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &g.encode());
        assert_eq!(
            r,
            Err(ProtoError::MechanismMismatch {
                ours: "NULL".into(),
                peer: "CURVE".into()
            })
        );
        g.mechanism = greeting::mechanism_field("FOO");
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &g.encode());
        assert_eq!(r, Err(ProtoError::UnsupportedMechanism("FOO".into())));
    }

    fn greeting_then(cmd: &Command) -> Vec<u8> {
        let mut enc = Encoder::new();
        enc.encode_raw(&Greeting::null(false).encode());
        enc.encode_command(cmd);
        let mut out = BytesMut::new();
        enc.drain_into(&mut out);
        out.to_vec()
    }

    #[test]
    fn bad_ready_properties() {
        let mut md = Metadata::new();
        md.insert("X-Foo", "bar");
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &greeting_then(&Command::Ready(md)));
        assert_eq!(r, Err(ProtoError::MissingSocketType));

        let mut md = Metadata::new();
        md.insert("Socket-Type", "push");
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &greeting_then(&Command::Ready(md)));
        assert_eq!(r, Err(ProtoError::UnknownSocketType("push".into())));

        // Unknown properties are kept, names are case-insensitive.
        let mut md = Metadata::new();
        md.insert("socket-type", "PUSH");
        md.insert("X-Foo", "bar");
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &greeting_then(&Command::Ready(md)));
        let peer = done(r);
        assert_eq!(peer.metadata.get_str("X-Foo"), Some("bar"));
        assert_eq!(peer.socket_type, SocketType::PUSH);

        // Malformed metadata: value length past the end. An ERROR is queued.
        let mut input = Greeting::null(false).encode().to_vec();
        input.extend(parse_hex(
            "04 1a 05 5245414459 0b 536f636b65742d54797065 00000005 50555348",
        ));
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &input);
        assert_eq!(r, Err(ProtoError::MalformedMetadata));
        let (_, _, hs) = feed(cfg(SocketType::PULL), &[&input]);
        assert!(hs.has_pending_output());
    }

    #[test]
    fn unexpected_first_frames() {
        let (r, _) = feed_all_ways(
            &cfg(SocketType::PULL),
            &greeting_then(&Command::Subscribe(Bytes::from_static(b"x"))),
        );
        assert_eq!(r, Err(ProtoError::UnexpectedCommand("SUBSCRIBE".into())));
        let (r, _) = feed_all_ways(
            &cfg(SocketType::PULL),
            &greeting_then(&Command::Unknown {
                name: Bytes::from_static(b"HELLO"),
                body: Bytes::new(),
            }),
        );
        assert_eq!(r, Err(ProtoError::UnexpectedCommand("HELLO".into())));
        let mut input = Greeting::null(false).encode().to_vec();
        input.extend_from_slice(b"\x00\x02hi");
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &input);
        assert_eq!(r, Err(ProtoError::UnexpectedMessage));
        // A command with MORE during the handshake.
        let mut input = Greeting::null(false).encode().to_vec();
        input.extend_from_slice(b"\x05\x06\x05READY");
        let (r, _) = feed_all_ways(&cfg(SocketType::PULL), &input);
        assert_eq!(r, Err(ProtoError::CommandWithMore));
    }

    #[test]
    fn max_msg_size_applies_to_ready() {
        let mut c = cfg(SocketType::PULL);
        c.max_msg_size = Some(10);
        let mut input = Greeting::null(false).encode().to_vec();
        input.extend(parse_hex(include_str!(
            "../../zmtp-spec/vectors/ready-push.hex"
        )));
        let (r, _) = feed_all_ways(&c, &input);
        assert_eq!(r, Err(ProtoError::MessageTooLarge { size: 26, max: 10 }));
    }

    #[test]
    fn extra_properties_sent() {
        let mut md = Metadata::new();
        md.insert("X-Hello", "world");
        let mut a = Handshake::new(cfg(SocketType::PUSH)).with_properties(md);
        let mut b = Handshake::new(cfg(SocketType::PULL));
        let mut to_b = output(&mut a);
        let _ = output(&mut b);
        let mut to_a = BytesMut::from(&Greeting::null(false).encode()[..]);
        a.handle_input(&mut to_a).unwrap();
        to_b.extend_from_slice(&output(&mut a));
        let peer = done(b.handle_input(&mut to_b));
        assert_eq!(peer.metadata.get_str("X-Hello"), Some("world"));
        assert_eq!(
            peer.metadata.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["Socket-Type", "X-Hello"]
        );
    }

    #[test]
    fn done_then_poll_output_yields_ready() {
        // Peer greeting and READY arrive before we ever polled: Done, and our greeting and
        // READY still come out of poll_output afterwards.
        let mut hs = Handshake::new(cfg(SocketType::PULL));
        let mut input = BytesMut::from(
            &parse_hex(include_str!(
                "../../zmtp-spec/vectors/handshake-null-push-to-pull.hex"
            ))[..],
        );
        done(hs.handle_input(&mut input));
        assert!(hs.has_pending_output());
        let out = output(&mut hs);
        assert_eq!(out.len(), 64 + 28);
        assert_eq!(out[64], 0x04);
        assert!(!hs.has_pending_output());
        // Repeated calls keep answering Done without touching the buffer.
        done(hs.handle_input(&mut input));
        assert_eq!(&input[..], b"\x00\x05hello");
    }
}
