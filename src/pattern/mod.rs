//! Sans-IO messaging patterns: pipes and the routing helpers socket types are built from.
//!
//! Each socket type is a small composition of shared helpers, as in libzmq:
//! - [`pipe`]: the bounded queue per peer and direction (the only place the HWM lives);
//! - [`lb`]: load-balance outgoing messages over peers with room (PUSH, DEALER, REQ);
//! - [`fq`]: fair-queue incoming messages from all peers (PULL, DEALER, REP, SUB);
//! - one small module per socket type that composes them ([`pair`], [`push`], [`pull`]).
//!
//! Nothing here touches sockets, threads or clocks: the user thread calls these through
//! [`crate::Socket`], and the I/O thread (or an inproc peer) sits at the other end of the
//! pipes.

pub mod dealer;
pub mod dist;
pub mod fq;
pub mod frame;
pub mod lb;
pub mod pair;
pub mod pipe;
pub mod publ;
pub mod pull;
pub mod push;
pub mod rep;
pub mod req;
pub mod rotation;
pub mod router;
pub mod sub;
pub mod trie;
pub mod xpub;
pub mod xsub;

use std::sync::Arc;

use bytes::Bytes;

pub use frame::Frame;
pub use pipe::{DirectOutcome, DirectSink, Msg, Notify, Pipe};

use crate::metadata::Metadata;
use crate::SocketType;

/// What a socket knows about one peer: its pipes and what it announced in the handshake.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Unique within the process.
    pub id: u64,
    /// Socket -> peer.
    pub out: Arc<Pipe>,
    /// Peer -> socket.
    pub inp: Arc<Pipe>,
    /// The peer's routing id (its `Identity` property, or generated).
    pub routing_id: Bytes,
    /// The peer's metadata (attached to received messages), once the handshake is done.
    pub meta: Option<Arc<Metadata>>,
}

/// A received message with the metadata of the peer it came from.
pub type Received = (Msg, Option<Arc<Metadata>>);

/// Why a pattern refused a send.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// No peer can take the message now (HWM reached, or no peer): retry later.
    WouldBlock(Msg),
    /// This socket type does not send.
    NotSupported,
    /// The send/receive state machine forbids sending now (REQ/REP).
    State,
    /// ROUTER_MANDATORY: no such peer.
    Unroutable,
}

/// Why a pattern refused a receive.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum RecvError {
    /// This socket type does not receive.
    NotSupported,
    /// The send/receive state machine forbids receiving now (REQ/REP).
    State,
}

/// The routing logic of one socket type, driven by the user thread.
pub trait Pattern: Send {
    /// A peer's pipes are ready. Returns false if the pattern refuses the peer (a PAIR that
    /// already has one); the caller then closes the pipes.
    fn attach(&mut self, peer: Peer) -> bool;
    /// The peer's connection is gone. Queued inbound messages may still be delivered.
    fn detach(&mut self, id: u64);
    /// True if `send` would succeed now; if not, the socket is woken when it may. An error
    /// if this socket cannot send at all, or not in its current state.
    fn can_send(&mut self) -> Result<bool, SendError>;
    /// Admission of a multipart message by its first frame (the routing id for a ROUTER):
    /// `Ok(false)` to wait for room, an error to refuse at once (`ROUTER_MANDATORY` and an
    /// unknown peer). The default is [`Pattern::can_send`].
    fn admit(&mut self, first_frame: &[u8]) -> Result<bool, SendError> {
        let _ = first_frame;
        self.can_send()
    }
    /// Routes one whole message. With `force`, a message whose first frame was admitted by
    /// `can_send` is queued even above the HWM (it never blocks halfway).
    fn send(&mut self, msg: Msg, force: bool) -> Result<(), SendError>;
    /// The next whole message and the peer it came from, or `Ok(None)` if none is ready
    /// (the socket is then woken when one may be).
    fn recv(&mut self) -> Result<Option<Received>, RecvError>;
    /// True if `recv` would return a message now.
    fn can_recv(&mut self) -> bool;
    /// Sets a pattern-specific option. The default refuses every option (`EINVAL`).
    fn set_opt(&mut self, opt: PatternOpt<'_>) -> Result<(), OptError> {
        let _ = opt;
        Err(OptError::NotSupported)
    }
}

/// Options that only some socket types understand (libzmq gives `EINVAL` elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternOpt<'a> {
    /// SUB: add a prefix subscription.
    Subscribe(&'a [u8]),
    /// SUB: remove one count of a prefix subscription.
    Unsubscribe(&'a [u8]),
    /// REQ: allow sending a new request before the reply to the last one arrived.
    ReqRelaxed(bool),
    /// REQ: prefix requests with a request id and match replies against it.
    ReqCorrelate(bool),
    /// ROUTER: fail with `EHOSTUNREACH` instead of dropping unroutable messages.
    RouterMandatory(bool),
    /// ROUTER: a new peer with an existing routing id takes it over.
    RouterHandover(bool),
    /// ROUTER/DEALER: send an empty message to each new peer.
    ProbeRouter(bool),
    /// XPUB: pass every subscription (even duplicates) to the application.
    XpubVerbose(bool),
    /// XPUB: a message sent to each new subscriber (None = off).
    XpubWelcomeMsg(Option<&'a [u8]>),
    /// ROUTER: routing id to give the next peer connected to.
    ConnectRoutingId(&'a [u8]),
}

/// Why a pattern refused an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptError {
    /// This socket type has no such option.
    NotSupported,
    /// The value is invalid.
    Invalid,
}

/// The pattern for `socket_type`, or `None` if ferromq does not implement that type yet.
pub fn for_type(socket_type: SocketType) -> Option<Box<dyn Pattern>> {
    Some(match socket_type {
        SocketType::PAIR => Box::new(pair::Pair::default()),
        SocketType::PUSH => Box::new(push::Push::default()),
        SocketType::PULL => Box::new(pull::Pull::default()),
        SocketType::REQ => Box::new(req::Req::default()),
        SocketType::REP => Box::new(rep::Rep::default()),
        SocketType::DEALER => Box::new(dealer::Dealer::default()),
        SocketType::ROUTER => Box::new(router::Router::default()),
        SocketType::PUB => Box::new(publ::Pub::default()),
        SocketType::SUB => Box::new(sub::Sub::default()),
        SocketType::XPUB => Box::new(xpub::XPub::default()),
        SocketType::XSUB => Box::new(xsub::XSub::default()),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;
    use crate::pattern::pipe::NoNotify;

    /// A peer with fresh pipes of the given HWM and no-op notifiers.
    pub fn peer(id: u64, hwm: usize) -> Peer {
        Peer {
            id,
            out: Arc::new(Pipe::new(hwm, Arc::new(NoNotify), Arc::new(NoNotify))),
            inp: Arc::new(Pipe::new(hwm, Arc::new(NoNotify), Arc::new(NoNotify))),
            routing_id: Bytes::new(),
            meta: None,
        }
    }

    pub fn msg(s: &str) -> Msg {
        Msg::One(Frame::copy_from_slice(s.as_bytes()))
    }
}
