//! Security mechanisms (RFC 23 section "Authentication and Confidentiality").
//!
//! After the greetings, the two peers run the handshake of the mechanism they both announced.
//! Each mechanism is a small state machine behind the [`Mechanism`] trait: the
//! [`Handshake`](super::Handshake) feeds it the peer's commands and lets it queue its own, and
//! it reports the peer's properties once the peer is ready. NULL is here; PLAIN
//! ([`super::plain`]) and CURVE ([`super::curve`]) are further implementations.

use bytes::Bytes;

use super::curve::FrameCipher;
use super::zap::{ZapReply, ZapRequest};
use super::{Command, Encoder, ProtoError};
use crate::Metadata;

/// The security mechanisms named by the ZMTP specifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MechanismKind {
    /// No security (RFC 23): both peers just exchange READY.
    Null,
    /// Clear-text user name and password (RFC 24).
    Plain,
    /// CurveZMQ (RFC 25, RFC 26).
    Curve,
}

impl MechanismKind {
    /// The name as it appears in the greeting.
    pub fn name(self) -> &'static str {
        match self {
            MechanismKind::Null => "NULL",
            MechanismKind::Plain => "PLAIN",
            MechanismKind::Curve => "CURVE",
        }
    }

    /// The mechanism named `name` (exact, upper case), if known.
    pub fn from_name(name: &[u8]) -> Option<MechanismKind> {
        [
            MechanismKind::Null,
            MechanismKind::Plain,
            MechanismKind::Curve,
        ]
        .into_iter()
        .find(|m| m.name().as_bytes() == name)
    }

    /// Whether ferromq implements this mechanism.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            MechanismKind::Null | MechanismKind::Plain | MechanismKind::Curve
        )
    }
}

/// Progress of a mechanism handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MechanismStatus {
    /// More commands are expected from the peer.
    InProgress,
    /// The peer is ready; these are the properties it announced.
    Ready(Metadata),
    /// The server has the client's credentials: the handshake must answer with
    /// [`Mechanism::auth_result`] before anything else.
    Authenticate(Box<ZapRequest>),
}

/// A security mechanism's handshake state machine, started once the greetings are exchanged.
pub trait Mechanism: Send + std::fmt::Debug {
    /// Which mechanism this is.
    fn kind(&self) -> MechanismKind;

    /// Queues the commands we must send now (if any) into `enc`.
    fn poll_output(&mut self, enc: &mut Encoder);

    /// Handles one command from the peer.
    ///
    /// Mechanisms do not interpret the properties (the handshake checks `Socket-Type`);
    /// an ERROR from the peer must yield [`ProtoError::PeerError`].
    fn handle_command(&mut self, cmd: Command) -> Result<MechanismStatus, ProtoError>;

    /// Whether we have sent everything the mechanism requires (our READY, for NULL).
    fn output_done(&self) -> bool;

    /// Handles the body of one command frame from the peer (name included). The default
    /// parses it as a [`Command`] and calls [`Mechanism::handle_command`]; CURVE overrides it
    /// because its READY carries a box, not properties.
    fn handle_raw(&mut self, body: Bytes) -> Result<MechanismStatus, ProtoError> {
        self.handle_command(Command::parse(body)?)
    }

    /// The answer to a [`MechanismStatus::Authenticate`]: the authenticator's reply, or None
    /// when there is no authenticator. Only server mechanisms ask.
    fn auth_result(&mut self, reply: Option<&ZapReply>) -> Result<MechanismStatus, ProtoError> {
        let _ = reply;
        Err(ProtoError::UnexpectedCommand("ZAP reply".into()))
    }

    /// The cipher for the traffic after the handshake (CURVE only), once it is done.
    fn take_cipher(&mut self) -> Option<FrameCipher> {
        None
    }
}

/// The NULL mechanism: each side sends READY with its properties; the peer's READY must be
/// its first command.
///
/// With a ZAP domain (RFC 27: "NULL with a domain"), the peer's READY is first checked by the
/// authenticator, and our READY is sent only once it agreed.
#[derive(Debug)]
pub struct NullMechanism {
    our_props: Metadata,
    ready_sent: bool,
    peer_ready: bool,
    /// The request to authenticate the peer with, while not yet answered.
    zap: Option<Box<ZapRequest>>,
    /// The peer's READY properties, kept while the authenticator decides.
    peer_props: Option<Metadata>,
}

impl NullMechanism {
    /// A NULL handshake that will announce `our_props` in its READY.
    pub fn new(our_props: Metadata) -> Self {
        NullMechanism {
            our_props,
            ready_sent: false,
            peer_ready: false,
            zap: None,
            peer_props: None,
        }
    }

    /// Authenticates the peer with `request` (mechanism NULL, no credentials) before
    /// answering its READY.
    pub fn with_zap(mut self, request: ZapRequest) -> Self {
        self.zap = Some(Box::new(request));
        self
    }
}

impl Mechanism for NullMechanism {
    fn kind(&self) -> MechanismKind {
        MechanismKind::Null
    }

    fn poll_output(&mut self, enc: &mut Encoder) {
        // With ZAP, our READY waits until the peer is accepted.
        if !self.ready_sent && self.zap.is_none() {
            let props = std::mem::take(&mut self.our_props);
            enc.encode_command(&Command::Ready(props));
            self.ready_sent = true;
        }
    }

    fn handle_command(&mut self, cmd: Command) -> Result<MechanismStatus, ProtoError> {
        if self.peer_ready {
            return Err(ProtoError::UnexpectedCommand(cmd.name_lossy()));
        }
        match cmd {
            Command::Ready(props) => {
                self.peer_ready = true;
                match &self.zap {
                    Some(req) => {
                        let req = req.clone();
                        self.peer_props = Some(props);
                        Ok(MechanismStatus::Authenticate(req))
                    }
                    None => Ok(MechanismStatus::Ready(props)),
                }
            }
            Command::Error(reason) => Err(ProtoError::PeerError(reason)),
            other => Err(ProtoError::UnexpectedCommand(other.name_lossy())),
        }
    }

    fn auth_result(&mut self, reply: Option<&ZapReply>) -> Result<MechanismStatus, ProtoError> {
        // Refusals were handled by the handshake; here the peer is accepted (or there is no
        // authenticator, and NULL then accepts, as libzmq does).
        let _ = reply;
        self.zap = None;
        match self.peer_props.take() {
            Some(props) => Ok(MechanismStatus::Ready(props)),
            None => Err(ProtoError::UnexpectedCommand("ZAP reply".into())),
        }
    }

    fn output_done(&self) -> bool {
        self.ready_sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn names() {
        for m in [
            MechanismKind::Null,
            MechanismKind::Plain,
            MechanismKind::Curve,
        ] {
            assert_eq!(MechanismKind::from_name(m.name().as_bytes()), Some(m));
        }
        assert_eq!(MechanismKind::from_name(b"null"), None);
        assert!(MechanismKind::Null.is_supported());
        assert!(MechanismKind::Curve.is_supported());
    }

    #[test]
    fn null_mechanism_steps() {
        let mut m = NullMechanism::new(Metadata::new());
        assert!(!m.output_done());
        let mut enc = Encoder::new();
        m.poll_output(&mut enc);
        assert!(m.output_done());
        assert_eq!(enc.len(), 2 + 6);
        m.poll_output(&mut enc);
        assert_eq!(enc.len(), 2 + 6, "READY is sent once");
        assert_eq!(
            m.handle_command(Command::Ready(Metadata::new())),
            Ok(MechanismStatus::Ready(Metadata::new()))
        );
        assert_eq!(
            m.handle_command(Command::Ready(Metadata::new())),
            Err(ProtoError::UnexpectedCommand("READY".into()))
        );
        let mut m = NullMechanism::new(Metadata::new());
        assert_eq!(
            m.handle_command(Command::Subscribe(Bytes::new())),
            Err(ProtoError::UnexpectedCommand("SUBSCRIBE".into()))
        );
        assert_eq!(
            m.handle_command(Command::Error("no".into())),
            Err(ProtoError::PeerError("no".into()))
        );
    }
}
