//! The PLAIN mechanism (RFC 24, <https://rfc.zeromq.org/spec/24/>): clear-text user name and
//! password, checked by the server's [`Authenticator`](super::Authenticator).
//!
//! ```text
//! C: HELLO    username-size username password-size password
//! S: WELCOME                      (or ERROR "400" if refused, or nothing for 300)
//! C: INITIATE metadata
//! S: READY    metadata
//! ```
//!
//! Credentials travel in clear: PLAIN is only as private as the transport under it.

use bytes::{BufMut, Bytes, BytesMut};

use super::command::parse_metadata;
use super::mechanism::{Mechanism, MechanismKind, MechanismStatus};
use super::zap::{ZapReply, ZapRequest};
use super::{Command, Encoder, ProtoError};
use crate::Metadata;

const HELLO: &[u8] = b"HELLO";
const WELCOME: &[u8] = b"WELCOME";
const INITIATE: &[u8] = b"INITIATE";

/// Longest user name or password the HELLO command can carry.
pub const MAX_CREDENTIAL_LEN: usize = 255;

fn command(name: &'static [u8], body: Bytes) -> Command {
    Command::Unknown {
        name: Bytes::from_static(name),
        body,
    }
}

/// Builds the HELLO body after its name: `size username size password` (each truncated to
/// [`MAX_CREDENTIAL_LEN`] bytes).
pub fn hello_body(username: &[u8], password: &[u8]) -> Bytes {
    let u = &username[..username.len().min(MAX_CREDENTIAL_LEN)];
    let p = &password[..password.len().min(MAX_CREDENTIAL_LEN)];
    let mut b = BytesMut::with_capacity(2 + u.len() + p.len());
    b.put_u8(u.len() as u8);
    b.put_slice(u);
    b.put_u8(p.len() as u8);
    b.put_slice(p);
    b.freeze()
}

/// Parses a HELLO body (after its name) into user name and password. The body must end
/// exactly after the password, as libzmq requires.
pub fn parse_hello(body: &Bytes) -> Result<(Bytes, Bytes), ProtoError> {
    let ulen = usize::from(*body.first().ok_or(ProtoError::MalformedCommand)?);
    let user_end = 1 + ulen;
    let plen = usize::from(*body.get(user_end).ok_or(ProtoError::MalformedCommand)?);
    if body.len() != user_end + 1 + plen {
        return Err(ProtoError::MalformedCommand);
    }
    Ok((body.slice(1..user_end), body.slice(user_end + 1..)))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    SendHello,
    ExpectWelcome,
    SendInitiate,
    ExpectReady,
    Done,
}

/// PLAIN client: HELLO, wait for WELCOME, INITIATE with our properties, wait for READY.
pub struct PlainClient {
    username: Bytes,
    password: Bytes,
    our_props: Metadata,
    state: ClientState,
}

impl std::fmt::Debug for PlainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainClient")
            .field("username", &self.username)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl PlainClient {
    /// A client that will send these credentials and announce `our_props` in INITIATE.
    pub fn new(username: Bytes, password: Bytes, our_props: Metadata) -> Self {
        PlainClient {
            username,
            password,
            our_props,
            state: ClientState::SendHello,
        }
    }
}

impl Mechanism for PlainClient {
    fn kind(&self) -> MechanismKind {
        MechanismKind::Plain
    }

    fn poll_output(&mut self, enc: &mut Encoder) {
        match self.state {
            ClientState::SendHello => {
                enc.encode_command(&command(HELLO, hello_body(&self.username, &self.password)));
                self.state = ClientState::ExpectWelcome;
            }
            ClientState::SendInitiate => {
                let mut body = BytesMut::new();
                super::command::encode_metadata(&std::mem::take(&mut self.our_props), &mut body);
                enc.encode_command(&command(INITIATE, body.freeze()));
                self.state = ClientState::ExpectReady;
            }
            _ => {}
        }
    }

    fn handle_command(&mut self, cmd: Command) -> Result<MechanismStatus, ProtoError> {
        match (self.state, cmd) {
            (ClientState::Done, cmd) => Err(ProtoError::UnexpectedCommand(cmd.name_lossy())),
            (_, Command::Error(reason)) => Err(ProtoError::PeerError(reason)),
            (ClientState::ExpectWelcome, Command::Unknown { name, body }) if name == WELCOME => {
                if !body.is_empty() {
                    return Err(ProtoError::MalformedCommand);
                }
                self.state = ClientState::SendInitiate;
                Ok(MechanismStatus::InProgress)
            }
            (ClientState::ExpectReady, Command::Ready(props)) => {
                self.state = ClientState::Done;
                Ok(MechanismStatus::Ready(props))
            }
            (_, cmd) => Err(ProtoError::UnexpectedCommand(cmd.name_lossy())),
        }
    }

    fn output_done(&self) -> bool {
        !matches!(
            self.state,
            ClientState::SendHello | ClientState::SendInitiate
        )
    }

    fn handle_raw(&mut self, body: Bytes) -> Result<MechanismStatus, ProtoError> {
        // libzmq 4.3's PLAIN server spells its ERROR command "\x05ERROR" in C, where the hex
        // escape swallows the 'E': the frame starts with 0x5E "RROR" (a 94-byte name that
        // runs past the end). Read it as the ERROR it means, so that the reason ("400")
        // reaches the application; the handshake fails either way.
        if let Some(rest) = body.strip_prefix(LIBZMQ_PLAIN_ERROR) {
            if self.state != ClientState::Done {
                let len = usize::from(*rest.first().ok_or(ProtoError::MalformedCommand)?);
                let reason = rest.get(1..1 + len).ok_or(ProtoError::MalformedCommand)?;
                return Err(ProtoError::PeerError(
                    String::from_utf8_lossy(reason).into_owned(),
                ));
            }
        }
        self.handle_command(Command::parse(body)?)
    }
}

/// How libzmq 4.3's PLAIN server starts its ERROR command (see `PlainClient::handle_raw`).
const LIBZMQ_PLAIN_ERROR: &[u8] = b"\x5eRROR";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    ExpectHello,
    Authenticating,
    SendWelcome,
    ExpectInitiate,
    SendReady,
    Done,
}

/// PLAIN server: wait for HELLO, ask the authenticator, WELCOME, wait for INITIATE, READY.
#[derive(Debug)]
pub struct PlainServer {
    our_props: Metadata,
    request: ZapRequest,
    state: ServerState,
}

impl PlainServer {
    /// A server announcing `our_props` in READY; `request` carries the ZAP domain, address
    /// and identity (its mechanism and credentials are filled in from HELLO).
    pub fn new(our_props: Metadata, request: ZapRequest) -> Self {
        PlainServer {
            our_props,
            request,
            state: ServerState::ExpectHello,
        }
    }
}

impl Mechanism for PlainServer {
    fn kind(&self) -> MechanismKind {
        MechanismKind::Plain
    }

    fn poll_output(&mut self, enc: &mut Encoder) {
        match self.state {
            ServerState::SendWelcome => {
                enc.encode_command(&command(WELCOME, Bytes::new()));
                self.state = ServerState::ExpectInitiate;
            }
            ServerState::SendReady => {
                enc.encode_command(&Command::Ready(std::mem::take(&mut self.our_props)));
                self.state = ServerState::Done;
            }
            _ => {}
        }
    }

    fn handle_command(&mut self, cmd: Command) -> Result<MechanismStatus, ProtoError> {
        match (self.state, cmd) {
            (ServerState::ExpectHello, Command::Unknown { name, body }) if name == HELLO => {
                let (username, password) = parse_hello(&body)?;
                self.state = ServerState::Authenticating;
                let mut req = self.request.clone();
                req.mechanism = MechanismKind::Plain;
                req.credentials = vec![username, password];
                Ok(MechanismStatus::Authenticate(Box::new(req)))
            }
            (ServerState::ExpectInitiate, Command::Unknown { name, body }) if name == INITIATE => {
                let props = parse_metadata(&body)?;
                self.state = ServerState::SendReady;
                Ok(MechanismStatus::Ready(props))
            }
            (ServerState::Done | ServerState::SendReady, cmd) => {
                Err(ProtoError::UnexpectedCommand(cmd.name_lossy()))
            }
            (_, Command::Error(reason)) => Err(ProtoError::PeerError(reason)),
            (_, cmd) => Err(ProtoError::UnexpectedCommand(cmd.name_lossy())),
        }
    }

    fn auth_result(&mut self, reply: Option<&ZapReply>) -> Result<MechanismStatus, ProtoError> {
        if self.state != ServerState::Authenticating {
            return Err(ProtoError::UnexpectedCommand("ZAP reply".into()));
        }
        match reply {
            Some(_) => {
                self.state = ServerState::SendWelcome;
                Ok(MechanismStatus::InProgress)
            }
            // libzmq 4.3: a PLAIN server without a ZAP handler refuses every client.
            None => Err(ProtoError::AuthenticationFailed(
                "PLAIN server without an authenticator (ZAP handler)".into(),
            )),
        }
    }

    fn output_done(&self) -> bool {
        !matches!(
            self.state,
            ServerState::SendWelcome | ServerState::SendReady
        )
    }
}

/// Helpers shared by the security tests: run two handshakes against each other in memory.
#[cfg(test)]
pub(crate) mod test_util {
    use bytes::BytesMut;

    use crate::proto::{Encoder, Handshake, HandshakeStatus, PeerInfo, ProtoError};

    /// Everything `hs` wants to send now.
    pub(crate) fn output(hs: &mut Handshake) -> BytesMut {
        let mut enc = Encoder::new();
        hs.poll_output(&mut enc);
        let mut out = BytesMut::new();
        enc.drain_into(&mut out);
        out
    }

    /// Outcome of one side of [`run_pair`].
    pub(crate) type Side = Result<PeerInfo, ProtoError>;

    /// Exchanges bytes between `a` and `b` until both finished (done or failed) or nothing
    /// moves. Returns each side's outcome (`Err(ProtoError::UnexpectedMessage)` stands for
    /// "still in progress") and the bytes each side received after its handshake.
    pub(crate) fn run_pair(a: &mut Handshake, b: &mut Handshake) -> (Side, Side) {
        let mut to_a = BytesMut::new();
        let mut to_b = BytesMut::new();
        let mut ra: Option<Side> = None;
        let mut rb: Option<Side> = None;
        for _ in 0..20 {
            let oa = output(a);
            let ob = output(b);
            let moved = !oa.is_empty() || !ob.is_empty();
            to_b.extend_from_slice(&oa);
            to_a.extend_from_slice(&ob);
            if ra.is_none() {
                match a.handle_input(&mut to_a) {
                    Ok(HandshakeStatus::Done(p)) => ra = Some(Ok(p)),
                    Ok(HandshakeStatus::InProgress) => {}
                    Err(e) => ra = Some(Err(e)),
                }
            }
            if rb.is_none() {
                match b.handle_input(&mut to_b) {
                    Ok(HandshakeStatus::Done(p)) => rb = Some(Ok(p)),
                    Ok(HandshakeStatus::InProgress) => {}
                    Err(e) => rb = Some(Err(e)),
                }
            }
            if !moved && ra.is_some() && rb.is_some() {
                break;
            }
        }
        (
            ra.unwrap_or(Err(ProtoError::UnexpectedMessage)),
            rb.unwrap_or(Err(ProtoError::UnexpectedMessage)),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::test_util::{output, run_pair};
    use super::*;
    use crate::proto::greeting::Greeting;
    use crate::proto::{
        Authenticator, Handshake, HandshakeConfig, HandshakeStatus, MechanismConfig, SecurityConfig,
    };
    use crate::SocketType;

    fn cfg(socket_type: SocketType) -> HandshakeConfig {
        HandshakeConfig {
            socket_type,
            identity: Bytes::new(),
            as_server: false,
            max_msg_size: None,
        }
    }

    fn client(user: &str, pass: &str) -> Handshake {
        Handshake::new(cfg(SocketType::DEALER)).with_security(SecurityConfig {
            mechanism: MechanismConfig::PlainClient {
                username: Bytes::copy_from_slice(user.as_bytes()),
                password: Bytes::copy_from_slice(pass.as_bytes()),
            },
            ..SecurityConfig::default()
        })
    }

    /// Accepts admin/secret with user id "admin-id"; counts calls.
    fn authenticator(calls: Arc<AtomicUsize>) -> Arc<dyn Authenticator> {
        Arc::new(move |req: &ZapRequest| {
            calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(req.mechanism, MechanismKind::Plain);
            assert_eq!(req.domain, "global");
            assert_eq!(req.address, "10.0.0.7");
            match &req.credentials[..] {
                [u, p] if u == "admin" && p == "secret" => {
                    let mut r = ZapReply::ok("admin-id");
                    r.metadata.insert("X-Role", "root");
                    r
                }
                _ => ZapReply::denied("bad password"),
            }
        })
    }

    fn server(auth: Option<Arc<dyn Authenticator>>) -> Handshake {
        Handshake::new(cfg(SocketType::ROUTER)).with_security(SecurityConfig {
            mechanism: MechanismConfig::PlainServer,
            authenticator: auth,
            zap_domain: "global".into(),
            peer_address: "10.0.0.7".into(),
            defer_auth: false,
        })
    }

    #[test]
    fn hello_encoding() {
        // RFC 24: HELLO = "\x05HELLO" username-size username password-size password.
        let mut enc = Encoder::new();
        enc.encode_command(&command(HELLO, hello_body(b"admin", b"secret")));
        let mut out = BytesMut::new();
        enc.drain_into(&mut out);
        assert_eq!(&out[..], b"\x04\x13\x05HELLO\x05admin\x06secret");
        let body = Bytes::from_static(b"\x05admin\x06secret");
        assert_eq!(
            parse_hello(&body),
            Ok((Bytes::from_static(b"admin"), Bytes::from_static(b"secret")))
        );
        for bad in [
            &b""[..],
            b"\x05adm",
            b"\x05admin",
            b"\x05admin\x06secre",
            b"\x05admin\x06secretX",
        ] {
            assert_eq!(
                parse_hello(&Bytes::copy_from_slice(bad)),
                Err(ProtoError::MalformedCommand)
            );
        }
        // Over-long credentials are truncated to 255 bytes.
        let long = vec![b'x'; 300];
        let b = hello_body(&long, b"");
        assert_eq!(b.len(), 1 + 255 + 1);
        assert_eq!(parse_hello(&b).unwrap().0.len(), 255);
    }

    #[test]
    fn plain_ok() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut c = client("admin", "secret");
        let mut s = server(Some(authenticator(calls.clone())));
        let (rc, rs) = run_pair(&mut c, &mut s);
        let pc = rc.unwrap();
        let ps = rs.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(pc.socket_type, SocketType::ROUTER);
        assert_eq!(ps.socket_type, SocketType::DEALER);
        assert_eq!(ps.user_id, "admin-id");
        assert_eq!(ps.zap_properties.get_str("X-Role"), Some("root"));
        assert_eq!(ps.mechanism, MechanismKind::Plain);
        assert!(pc.user_id.is_empty());
        assert!(c.take_cipher().is_none() && s.take_cipher().is_none());
    }

    #[test]
    fn greeting_announces_plain_and_role() {
        let mut c = client("a", "b");
        let mut s = server(None);
        let gc = output(&mut c);
        let gs = output(&mut s);
        let mut g = [0u8; 64];
        g.copy_from_slice(&gc[..64]);
        let g = Greeting::parse(&g).unwrap();
        assert_eq!(g.mechanism_name(), b"PLAIN");
        assert!(!g.as_server);
        let mut h = [0u8; 64];
        h.copy_from_slice(&gs[..64]);
        let h = Greeting::parse(&h).unwrap();
        assert_eq!(h.mechanism_name(), b"PLAIN");
        assert!(h.as_server);
        assert_eq!(c.mechanism(), MechanismKind::Plain);
    }

    #[test]
    fn wrong_password_denied_with_error() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut c = client("admin", "guess");
        let mut s = server(Some(authenticator(calls)));
        let (rc, rs) = run_pair(&mut c, &mut s);
        assert!(
            matches!(rs, Err(ProtoError::AuthenticationFailed(ref w)) if w.starts_with("400")),
            "{rs:?}"
        );
        // RFC 24 / libzmq: the client receives ERROR with the ZAP status code.
        assert_eq!(rc, Err(ProtoError::PeerError("400".into())));
    }

    #[test]
    fn temporary_failure_closes_silently() {
        let auth: Arc<dyn Authenticator> = Arc::new(|_: &ZapRequest| {
            let mut r = ZapReply::denied("busy");
            r.status_code = "300".into();
            r
        });
        let mut c = client("admin", "secret");
        let mut s = server(Some(auth));
        let (rc, rs) = run_pair(&mut c, &mut s);
        assert!(matches!(rs, Err(ProtoError::AuthenticationFailed(_))));
        // No ERROR: the client is still waiting when the server closes.
        assert_eq!(rc, Err(ProtoError::UnexpectedMessage));
        assert!(output(&mut s).is_empty());
    }

    #[test]
    fn no_authenticator_refuses_like_libzmq() {
        let mut c = client("admin", "secret");
        let mut s = server(None);
        let (rc, rs) = run_pair(&mut c, &mut s);
        assert!(matches!(rs, Err(ProtoError::AuthenticationFailed(_))));
        assert_eq!(rc, Err(ProtoError::UnexpectedMessage));
    }

    #[test]
    fn mechanism_mismatch_refused() {
        let mut c = client("admin", "secret");
        let mut s = Handshake::new(cfg(SocketType::ROUTER));
        let (rc, rs) = run_pair(&mut c, &mut s);
        assert!(matches!(rc, Err(ProtoError::MechanismMismatch { .. })));
        assert!(matches!(rs, Err(ProtoError::MechanismMismatch { .. })));
    }

    #[test]
    fn server_steps_and_protocol_errors() {
        let req = ZapRequest {
            domain: String::new(),
            address: String::new(),
            identity: Bytes::new(),
            mechanism: MechanismKind::Plain,
            credentials: Vec::new(),
        };
        let mut s = PlainServer::new(Metadata::new(), req.clone());
        // INITIATE before HELLO.
        assert_eq!(
            s.handle_command(command(INITIATE, Bytes::new())),
            Err(ProtoError::UnexpectedCommand("INITIATE".into()))
        );
        let mut s = PlainServer::new(Metadata::new(), req.clone());
        assert!(s.output_done());
        let st = s
            .handle_command(command(HELLO, hello_body(b"u", b"p")))
            .unwrap();
        assert!(matches!(st, MechanismStatus::Authenticate(ref r) if r.credentials[0] == "u"));
        // Nothing else is accepted while authenticating.
        let mut s2 = PlainServer::new(Metadata::new(), req);
        let _ = s2.handle_command(command(HELLO, hello_body(b"u", b"p")));
        assert!(s2.handle_command(command(HELLO, Bytes::new())).is_err());
        assert_eq!(
            s.auth_result(Some(&ZapReply::ok(""))),
            Ok(MechanismStatus::InProgress)
        );
        assert!(!s.output_done());
        let mut enc = Encoder::new();
        s.poll_output(&mut enc);
        assert_eq!(enc.len(), 2 + 8, "WELCOME");
        assert!(s.auth_result(Some(&ZapReply::ok(""))).is_err());
        // Malformed INITIATE metadata.
        assert_eq!(
            s.handle_command(command(INITIATE, Bytes::from_static(b"\x03abc"))),
            Err(ProtoError::MalformedMetadata)
        );
    }

    #[test]
    fn client_protocol_errors() {
        let mut c = PlainClient::new(Bytes::new(), Bytes::new(), Metadata::new());
        let mut enc = Encoder::new();
        c.poll_output(&mut enc);
        // READY before WELCOME.
        assert_eq!(
            c.handle_command(Command::Ready(Metadata::new())),
            Err(ProtoError::UnexpectedCommand("READY".into()))
        );
        let mut c = PlainClient::new(Bytes::new(), Bytes::new(), Metadata::new());
        c.poll_output(&mut enc);
        assert_eq!(
            c.handle_command(command(WELCOME, Bytes::from_static(b"x"))),
            Err(ProtoError::MalformedCommand)
        );
        let mut c = PlainClient::new(Bytes::new(), Bytes::new(), Metadata::new());
        c.poll_output(&mut enc);
        assert_eq!(
            c.handle_command(Command::Error("400".into())),
            Err(ProtoError::PeerError("400".into()))
        );
        // libzmq 4.3's malformed PLAIN ERROR (captured from libzmq 4.3.5).
        let mut c = PlainClient::new(Bytes::new(), Bytes::new(), Metadata::new());
        c.poll_output(&mut enc);
        assert_eq!(
            c.handle_raw(Bytes::from_static(b"\x5eRROR\x03400")),
            Err(ProtoError::PeerError("400".into()))
        );
        assert_eq!(
            c.handle_raw(Bytes::from_static(b"\x5eRROR\x09400")),
            Err(ProtoError::MalformedCommand)
        );
    }

    #[test]
    fn byte_by_byte_delivery() {
        // The server is fed the client's bytes one at a time.
        let calls = Arc::new(AtomicUsize::new(0));
        let mut c = client("admin", "secret");
        let mut s = server(Some(authenticator(calls)));
        let mut to_s = BytesMut::new();
        let mut done = None;
        for _ in 0..10 {
            let out = output(&mut c);
            for byte in out.iter() {
                to_s.extend_from_slice(&[*byte]);
                if let HandshakeStatus::Done(p) = s.handle_input(&mut to_s).unwrap() {
                    done = Some(p);
                }
            }
            let mut back = output(&mut s);
            let _ = c.handle_input(&mut back);
        }
        assert_eq!(done.unwrap().user_id, "admin-id");
        assert!(c.is_done());
    }
}
