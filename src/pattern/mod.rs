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

pub mod fq;
pub mod lb;
pub mod pair;
pub mod pipe;
pub mod pull;
pub mod push;

use std::sync::Arc;

use bytes::Bytes;

pub use pipe::{Msg, Notify, Pipe};

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
    /// True if `send` would succeed now; if not, the socket is woken when it may.
    fn can_send(&mut self) -> bool;
    /// Routes one whole message. With `force`, a message whose first frame was admitted by
    /// `can_send` is queued even above the HWM (it never blocks halfway).
    fn send(&mut self, msg: Msg, force: bool) -> Result<(), SendError>;
    /// The next whole message and the peer it came from, or `Ok(None)` if none is ready
    /// (the socket is then woken when one may be).
    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError>;
    /// True if `recv` would return a message now.
    fn can_recv(&mut self) -> bool;
}

/// The pattern for `socket_type`, or `None` if ferromq does not implement that type yet.
pub fn for_type(socket_type: SocketType) -> Option<Box<dyn Pattern>> {
    Some(match socket_type {
        SocketType::PAIR => Box::new(pair::Pair::default()),
        SocketType::PUSH => Box::new(push::Push::default()),
        SocketType::PULL => Box::new(pull::Pull::default()),
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
        Msg::One(Bytes::copy_from_slice(s.as_bytes()))
    }
}
