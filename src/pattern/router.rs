//! ROUTER (RFC 28): fair-queues messages from all peers, prefixing each with the routing id
//! of the peer it came from, and routes each outgoing message to the peer named by its first
//! frame.
//!
//! Behaviour mirrored from libzmq 4.3 (`router.cpp`):
//! - a peer that announced a routing id (its `Identity` property) is known by it; any other
//!   peer gets a generated 5-byte id: `0x00` then a big-endian `u32` from a counter that
//!   starts at a random value;
//! - a second peer announcing an id already in use is refused (the connection is dropped),
//!   unless `ROUTER_HANDOVER` is set: then the new peer takes the id, and the old one gets a
//!   generated id for what it still has queued and is disconnected;
//! - a message to an unknown peer, or to one whose pipe is full, is dropped silently; with
//!   `ROUTER_MANDATORY` the send fails with `EHOSTUNREACH` (unknown or gone) or `EAGAIN`
//!   (full) instead;
//! - a message that is only a routing id (no body frame) is dropped silently, even with
//!   `ROUTER_MANDATORY`;
//! - `PROBE_ROUTER` sends an empty message to each new peer.
//!
//! `CONNECT_ROUTING_ID` belongs to a `connect()` call, which only the socket layer sees: it
//! sets [`Peer::routing_id`] of the peer it connects to, and this type uses it like an
//! announced id.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use bytes::Bytes;

use super::fq::Fq;
use super::Frame;
use super::{Msg, OptError, Pattern, PatternOpt, Peer, Pipe, RecvError, SendError};
use crate::metadata::Metadata;

/// A random `u32` from the OS (a hash-seeded value if the OS has none to give).
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_ok() {
        return u32::from_ne_bytes(b);
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish() as u32
}

/// What ROUTER knows of each peer whose messages it may still deliver.
#[derive(Debug)]
struct Name {
    routing_id: Bytes,
    inp: Arc<Pipe>,
}

/// ROUTER = [`Fq`] + a routing-id map.
#[derive(Debug)]
pub struct Router {
    fq: Fq,
    /// Routing id -> peer, for sending.
    by_rid: HashMap<Bytes, Peer>,
    /// Peer id -> routing id, for receiving; kept after `detach` until the peer's queued
    /// messages are delivered.
    names: HashMap<u64, Name>,
    /// Detached peers whose inbound pipe still holds messages.
    leaving: Vec<u64>,
    next_rid: u32,
    mandatory: bool,
    handover: bool,
    probe: bool,
}

impl Default for Router {
    fn default() -> Self {
        Router {
            fq: Fq::default(),
            by_rid: HashMap::new(),
            names: HashMap::new(),
            leaving: Vec::new(),
            next_rid: random_u32(),
            mandatory: false,
            handover: false,
            probe: false,
        }
    }
}

impl Router {
    /// A fresh `0x00` + big-endian counter id that no attached peer uses.
    fn generate_rid(&mut self) -> Bytes {
        loop {
            let mut b = [0u8; 5];
            b[1..].copy_from_slice(&self.next_rid.to_be_bytes());
            self.next_rid = self.next_rid.wrapping_add(1);
            let rid = Bytes::copy_from_slice(&b);
            if !self.by_rid.contains_key(&rid) {
                return rid;
            }
        }
    }

    /// The routing id under which peer `id` is known, if it is attached or still has
    /// messages to deliver.
    pub fn routing_id(&self, id: u64) -> Option<&Bytes> {
        self.names.get(&id).map(|n| &n.routing_id)
    }

    /// Forgets detached peers whose queued messages have all been delivered.
    fn purge_leaving(&mut self) {
        let names = &mut self.names;
        self.leaving.retain(|id| match names.get(id) {
            Some(n) if !n.inp.is_done() => true,
            _ => {
                names.remove(id);
                false
            }
        });
    }
}

impl Pattern for Router {
    fn attach(&mut self, peer: Peer) -> bool {
        let rid = if peer.routing_id.is_empty() {
            self.generate_rid()
        } else {
            let rid = peer.routing_id.clone();
            if self.by_rid.contains_key(&rid) {
                if !self.handover {
                    return false;
                }
                // Handover: the old peer keeps a generated name for what it still has
                // queued, and is disconnected (a closed `out` pipe tells the engine).
                let fresh = self.generate_rid();
                if let Some(old) = self.by_rid.remove(&rid) {
                    if let Some(n) = self.names.get_mut(&old.id) {
                        n.routing_id = fresh;
                    }
                    old.out.close();
                }
            }
            rid
        };
        if self.probe {
            peer.out.force_push(Msg::One(Frame::new()));
        }
        self.names.insert(
            peer.id,
            Name {
                routing_id: rid.clone(),
                inp: peer.inp.clone(),
            },
        );
        self.fq.attach(peer.clone());
        self.by_rid.insert(rid, peer);
        true
    }

    fn detach(&mut self, id: u64) {
        let Some(name) = self.names.get(&id) else {
            return;
        };
        if self.by_rid.get(&name.routing_id).map(|p| p.id) == Some(id) {
            self.by_rid.remove(&name.routing_id);
        }
        if name.inp.is_done() {
            self.names.remove(&id);
        } else if !self.leaving.contains(&id) {
            self.leaving.push(id);
        }
    }

    /// Always true: a ROUTER never blocks on the first frame; where the message can go is
    /// decided by [`Pattern::send`] (see the module docs).
    fn can_send(&mut self) -> Result<bool, SendError> {
        Ok(true)
    }

    /// With `ROUTER_MANDATORY`, the routing id frame is checked at once, as libzmq does:
    /// an unknown or departed peer is `Unroutable`, a full one waits for room.
    fn admit(&mut self, first_frame: &[u8]) -> Result<bool, SendError> {
        if !self.mandatory {
            return Ok(true);
        }
        match self.by_rid.get(first_frame) {
            Some(peer) if !peer.out.is_closed() => Ok(peer.out.has_room()),
            _ => Err(SendError::Unroutable),
        }
    }

    /// Routes by the first frame. `force` is ignored: as in libzmq, a full peer's message is
    /// dropped (or refused with `ROUTER_MANDATORY`) as a whole.
    fn send(&mut self, msg: Msg, _force: bool) -> Result<(), SendError> {
        let mut frames = msg.into_frames();
        if frames.len() < 2 {
            return Ok(());
        }
        let body = frames.split_off(1);
        let rid = frames.pop().unwrap_or_default();
        let Some(peer) = self.by_rid.get(&rid[..]) else {
            return if self.mandatory {
                Err(SendError::Unroutable)
            } else {
                Ok(())
            };
        };
        match peer.out.push(Msg::from_frames(body)) {
            Ok(()) => Ok(()),
            Err(_) if !self.mandatory => Ok(()),
            Err(_) if peer.out.is_closed() => Err(SendError::Unroutable),
            Err(back) => {
                let mut frames = back.into_frames();
                frames.insert(0, rid);
                Err(SendError::WouldBlock(Msg::Many(frames)))
            }
        }
    }

    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        loop {
            let Some((msg, id, meta)) = self.fq.recv() else {
                self.purge_leaving();
                return Ok(None);
            };
            let Some(name) = self.names.get(&id) else {
                continue; // cannot happen: every peer in `fq` is named
            };
            let mut frames = Vec::with_capacity(msg.frames().len() + 1);
            frames.push(name.routing_id.clone().into());
            frames.extend(msg.into_frames());
            if !self.leaving.is_empty() {
                self.purge_leaving();
            }
            return Ok(Some((Msg::Many(frames), meta)));
        }
    }

    fn can_recv(&mut self) -> bool {
        self.fq.can_recv()
    }

    fn set_opt(&mut self, opt: PatternOpt<'_>) -> Result<(), OptError> {
        match opt {
            PatternOpt::RouterMandatory(on) => self.mandatory = on,
            PatternOpt::RouterHandover(on) => self.handover = on,
            PatternOpt::ProbeRouter(on) => self.probe = on,
            _ => return Err(OptError::NotSupported),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};

    fn named(id: u64, name: &str) -> Peer {
        let mut p = peer(id, 10);
        p.routing_id = Bytes::copy_from_slice(name.as_bytes());
        p
    }

    fn frames(m: &Msg) -> Vec<&[u8]> {
        m.frames().iter().map(|f| &f[..]).collect()
    }

    fn to(rid: &[u8], body: &str) -> Msg {
        Msg::from_frames(vec![
            Frame::copy_from_slice(rid),
            Frame::copy_from_slice(body.as_bytes()),
        ])
    }

    #[test]
    fn rfc28_router_shall_prefix_generated_5_byte_routing_id() {
        let mut r = Router::default();
        let (a, b) = (peer(1, 10), peer(2, 10));
        assert!(r.attach(a.clone()));
        assert!(r.attach(b.clone()));
        a.inp.push(msg("from a")).unwrap();
        b.inp.push(msg("from b")).unwrap();
        let (ma, _) = r.recv().unwrap().unwrap();
        let (mb, _) = r.recv().unwrap().unwrap();
        let (ida, idb) = (ma.frames()[0].clone(), mb.frames()[0].clone());
        assert_eq!(ida.len(), 5);
        assert_eq!(ida[0], 0);
        assert_eq!(idb[0], 0);
        let na = u32::from_be_bytes(ida[1..].try_into().unwrap());
        let nb = u32::from_be_bytes(idb[1..].try_into().unwrap());
        assert_eq!(nb, na.wrapping_add(1));
        assert_eq!(frames(&ma)[1], b"from a");
        // Replies route back by that id.
        r.send(to(&idb, "to b"), true).unwrap();
        assert_eq!(b.out.pop(), Some(msg("to b")));
        assert!(a.out.is_empty());
    }

    #[test]
    fn rfc28_router_shall_use_peer_announced_identity() {
        let mut r = Router::default();
        let a = named(1, "alice");
        assert!(r.attach(a.clone()));
        a.inp
            .push(Msg::from_frames(vec![
                Frame::from_static(b""),
                Frame::from_static(b"hi"),
            ]))
            .unwrap();
        let (m, _) = r.recv().unwrap().unwrap();
        assert_eq!(frames(&m), vec![&b"alice"[..], b"", b"hi"]);
        r.send(to(b"alice", "yo"), true).unwrap();
        assert_eq!(a.out.pop(), Some(msg("yo")));
    }

    #[test]
    fn rfc28_router_shall_drop_unroutable_silently() {
        let mut r = Router::default();
        let a = named(1, "a");
        r.attach(a.clone());
        assert_eq!(r.can_send(), Ok(true));
        assert_eq!(r.send(to(b"nobody", "x"), true), Ok(()));
        // Lone routing id: dropped, never delivered as an empty message.
        assert_eq!(r.send(msg("a"), true), Ok(()));
        assert!(a.out.is_empty());
    }

    #[test]
    fn router_mandatory_unroutable_and_full() {
        let mut r = Router::default();
        r.set_opt(PatternOpt::RouterMandatory(true)).unwrap();
        let mut a = peer(1, 1);
        a.routing_id = bytes::Bytes::from_static(b"a");
        r.attach(a.clone());
        assert_eq!(r.send(to(b"nobody", "x"), true), Err(SendError::Unroutable));
        r.send(to(b"a", "1"), true).unwrap();
        // Full: EAGAIN with the whole message handed back.
        assert_eq!(
            r.send(to(b"a", "2"), true),
            Err(SendError::WouldBlock(to(b"a", "2")))
        );
        a.out.pop();
        r.send(to(b"a", "2"), true).unwrap();
        r.detach(1);
        assert_eq!(r.send(to(b"a", "3"), true), Err(SendError::Unroutable));
    }

    #[test]
    fn router_full_peer_drops_without_mandatory() {
        let mut r = Router::default();
        let mut a = peer(1, 1);
        a.routing_id = bytes::Bytes::from_static(b"a");
        r.attach(a.clone());
        r.send(to(b"a", "1"), true).unwrap();
        assert_eq!(r.send(to(b"a", "2"), true), Ok(()));
        assert_eq!(a.out.len(), 1);
    }

    #[test]
    fn router_mandatory_admits_by_routing_id() {
        let mut r = Router::default();
        r.set_opt(PatternOpt::RouterMandatory(true)).unwrap();
        assert_eq!(r.admit(b"nobody"), Err(SendError::Unroutable));
        r.attach(named(1, "a"));
        assert_eq!(r.admit(b"a"), Ok(true));
        let mut plain = Router::default();
        assert_eq!(plain.admit(b"nobody"), Ok(true));
    }

    #[test]
    fn router_duplicate_identity_refused_without_handover() {
        let mut r = Router::default();
        assert!(r.attach(named(1, "x")));
        assert!(!r.attach(named(2, "x")));
        r.detach(1);
        assert!(r.attach(named(3, "x")));
    }

    #[test]
    fn router_handover_new_peer_takes_the_identity() {
        let mut r = Router::default();
        r.set_opt(PatternOpt::RouterHandover(true)).unwrap();
        let old = named(1, "x");
        let new = named(2, "x");
        assert!(r.attach(old.clone()));
        old.inp.push(msg("old")).unwrap();
        assert!(r.attach(new.clone()));
        assert!(old.out.is_closed(), "old peer is disconnected");
        r.send(to(b"x", "hello"), true).unwrap();
        assert_eq!(new.out.pop(), Some(msg("hello")));
        // The old peer's queued message still arrives, under a generated id.
        let (m, _) = r.recv().unwrap().unwrap();
        assert_eq!(m.frames()[0].len(), 5);
        assert_eq!(m.frames()[0][0], 0);
        assert_eq!(&m.frames()[1][..], b"old");
        // Its later detach does not unroute the new peer.
        r.detach(1);
        r.send(to(b"x", "again"), true).unwrap();
        assert_eq!(new.out.pop(), Some(msg("again")));
    }

    #[test]
    fn router_probe_sends_empty_message_to_new_peer() {
        let mut r = Router::default();
        r.set_opt(PatternOpt::ProbeRouter(true)).unwrap();
        let a = peer(1, 10);
        r.attach(a.clone());
        assert_eq!(a.out.pop(), Some(Msg::One(Frame::new())));
    }

    #[test]
    fn router_delivers_queued_messages_of_a_detached_peer() {
        let mut r = Router::default();
        let a = named(1, "a");
        r.attach(a.clone());
        a.inp.push(msg("last words")).unwrap();
        a.inp.close();
        r.detach(1);
        let (m, _) = r.recv().unwrap().unwrap();
        assert_eq!(frames(&m), vec![&b"a"[..], b"last words"]);
        assert_eq!(r.recv().unwrap(), None);
        assert!(r.routing_id(1).is_none(), "forgotten once drained");
    }

    #[test]
    fn router_multipart_body_is_kept_whole() {
        let mut r = Router::default();
        let a = named(1, "a");
        r.attach(a.clone());
        let m = Msg::from_frames(vec![
            Frame::from_static(b"a"),
            Frame::from_static(b"1"),
            Frame::from_static(b"2"),
        ]);
        r.send(m, true).unwrap();
        let got = a.out.pop().unwrap();
        assert_eq!(frames(&got), vec![&b"1"[..], b"2"]);
    }

    #[test]
    fn router_refuses_foreign_options() {
        let mut r = Router::default();
        assert_eq!(
            r.set_opt(PatternOpt::Subscribe(b"x")),
            Err(OptError::NotSupported)
        );
    }

    #[test]
    fn rfc28_dealer_probe_reaches_router_as_empty_message() {
        use crate::pattern::dealer::Dealer;
        let mut d = Dealer::default();
        d.set_opt(PatternOpt::ProbeRouter(true)).unwrap();
        let mut r = Router::default();
        let p = peer(1, 10);
        let q = Peer {
            id: 2,
            out: p.inp.clone(),
            inp: p.out.clone(),
            routing_id: bytes::Bytes::from_static(b"dealer"),
            meta: None,
        };
        d.attach(p);
        r.attach(q);
        let (m, _) = r.recv().unwrap().unwrap();
        assert_eq!(frames(&m), vec![&b"dealer"[..], b""]);
        // The ROUTER can now address the DEALER first.
        r.send(to(b"dealer", "welcome"), true).unwrap();
        assert_eq!(d.recv().unwrap().unwrap().0, msg("welcome"));
    }
}
