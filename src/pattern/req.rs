//! REQ (RFC 28): a [`Dealer`] that alternates strictly between sending one request and
//! receiving its reply.
//!
//! Behaviour mirrored from libzmq 4.3 (`req.cpp`):
//! - each request is prefixed with an empty delimiter frame (and, with `REQ_CORRELATE`, a
//!   4-byte request id frame before it, in native byte order as libzmq writes it; peers only
//!   echo it back);
//! - a reply is accepted only from the peer the request went to; messages from other peers,
//!   replies without the empty delimiter (followed by at least one body frame) and, with
//!   `REQ_CORRELATE`, replies whose id is not the current one are dropped. If that peer is
//!   detached, a reply from any peer is accepted (libzmq resets its reply pipe);
//! - before a request is sent, every message already queued is discarded, so a late reply
//!   to an earlier request is never taken for the next one;
//! - `send` while a reply is awaited fails with `EFSM`, unless `REQ_RELAXED` is set: then
//!   the old request is abandoned; `recv` with no request outstanding fails with `EFSM`.

use std::sync::Arc;

use super::dealer::Dealer;
use super::router::random_u32;
use super::Frame;
use super::{Msg, OptError, Pattern, PatternOpt, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// Upper bound on stale messages discarded before one request, so a flooding peer cannot
/// keep `send` busy forever.
const MAX_DISCARD: usize = 1 << 20;

/// REQ = [`Dealer`] + reply matching.
#[derive(Debug)]
pub struct Req {
    dealer: Dealer,
    /// A request was sent and its reply not yet received.
    awaiting: bool,
    /// The peer the outstanding request went to (`None`: accept from any).
    reply_peer: Option<u64>,
    /// Id of the last request (only sent with `correlate`).
    request_id: u32,
    strict: bool,
    correlate: bool,
    /// A matching reply found by `can_recv`, not yet returned.
    ready: Option<(Msg, Option<Arc<Metadata>>)>,
}

impl Default for Req {
    fn default() -> Self {
        Req {
            dealer: Dealer::default(),
            awaiting: false,
            reply_peer: None,
            request_id: random_u32(),
            strict: true,
            correlate: false,
            ready: None,
        }
    }
}

impl Req {
    /// Pops messages until one is a valid reply to the outstanding request; returns its body.
    fn next_reply(&mut self) -> Option<(Msg, Option<Arc<Metadata>>)> {
        loop {
            let (msg, from, meta) = self.dealer.recv_from()?;
            if self.reply_peer.is_some_and(|p| p != from) {
                continue;
            }
            let mut frames = msg.into_frames();
            let mut delim = 0;
            if self.correlate {
                if frames.len() < 2 || frames[0][..] != self.request_id.to_ne_bytes() {
                    continue;
                }
                delim = 1;
            }
            // The delimiter must be empty and followed by at least one body frame.
            if frames.len() < delim + 2 || !frames[delim].is_empty() {
                continue;
            }
            let body = frames.split_off(delim + 1);
            return Some((Msg::from_frames(body), meta));
        }
    }
}

impl Pattern for Req {
    fn attach(&mut self, peer: Peer) -> bool {
        self.dealer.attach(peer)
    }

    fn detach(&mut self, id: u64) {
        if self.reply_peer == Some(id) {
            self.reply_peer = None;
        }
        self.dealer.detach(id);
    }

    fn can_send(&mut self) -> Result<bool, SendError> {
        if self.awaiting && self.strict {
            return Err(SendError::State);
        }
        self.dealer.can_send()
    }

    fn send(&mut self, msg: Msg, force: bool) -> Result<(), SendError> {
        if self.awaiting {
            if self.strict {
                return Err(SendError::State);
            }
            // REQ_RELAXED: abandon the outstanding request.
            self.awaiting = false;
            self.ready = None;
        }
        // Anything queued now answers an earlier request: discard it before the new request
        // can be answered.
        let mut n = 0;
        while n < MAX_DISCARD && self.dealer.recv_from().is_some() {
            n += 1;
        }
        let id = self.request_id.wrapping_add(1);
        let prefix = if self.correlate { 2 } else { 1 };
        let mut frames = Vec::with_capacity(msg.frames().len() + prefix);
        if self.correlate {
            frames.push(Frame::copy_from_slice(&id.to_ne_bytes()));
        }
        frames.push(Frame::new());
        frames.extend(msg.into_frames());
        match self.dealer.send_to_any(Msg::Many(frames), force) {
            Ok(peer) => {
                self.request_id = id;
                self.reply_peer = peer;
                self.awaiting = true;
                Ok(())
            }
            Err(SendError::WouldBlock(back)) => {
                let mut frames = back.into_frames();
                let body = frames.split_off(prefix.min(frames.len()));
                Err(SendError::WouldBlock(Msg::from_frames(body)))
            }
            Err(e) => Err(e),
        }
    }

    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        if !self.awaiting {
            return Err(RecvError::State);
        }
        let reply = match self.ready.take() {
            Some(r) => Some(r),
            None => self.next_reply(),
        };
        if reply.is_some() {
            self.awaiting = false;
        }
        Ok(reply)
    }

    fn can_recv(&mut self) -> bool {
        if !self.awaiting {
            return false;
        }
        if self.ready.is_none() {
            self.ready = self.next_reply();
        }
        self.ready.is_some()
    }

    fn set_opt(&mut self, opt: PatternOpt<'_>) -> Result<(), OptError> {
        match opt {
            PatternOpt::ReqRelaxed(on) => self.strict = !on,
            PatternOpt::ReqCorrelate(on) => self.correlate = on,
            PatternOpt::ProbeRouter(_) => return self.dealer.set_opt(opt),
            _ => return Err(OptError::NotSupported),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};

    fn b(s: &str) -> Frame {
        Frame::copy_from_slice(s.as_bytes())
    }

    fn reply(frames: &[&[u8]]) -> Msg {
        Msg::from_frames(frames.iter().map(|f| Frame::copy_from_slice(f)).collect())
    }

    #[test]
    fn rfc28_req_shall_prefix_delimiter() {
        let mut r = Req::default();
        let a = peer(1, 10);
        r.attach(a.clone());
        assert_eq!(r.can_send(), Ok(true));
        r.send(Msg::from_frames(vec![b("x"), b("y")]), true)
            .unwrap();
        assert_eq!(a.out.pop(), Some(reply(&[b"", b"x", b"y"])));
    }

    #[test]
    fn rfc28_req_shall_alternate_send_and_recv() {
        let mut r = Req::default();
        let a = peer(1, 10);
        r.attach(a.clone());
        assert_eq!(r.recv(), Err(RecvError::State));
        assert!(!r.can_recv());
        r.send(msg("q1"), true).unwrap();
        assert_eq!(r.can_send(), Err(SendError::State));
        assert_eq!(r.send(msg("q2"), true), Err(SendError::State));
        assert_eq!(r.recv(), Ok(None));
        a.inp.push(reply(&[b"", b"r1"])).unwrap();
        assert!(r.can_recv());
        assert_eq!(r.recv().unwrap().unwrap().0, msg("r1"));
        assert_eq!(r.recv(), Err(RecvError::State));
        assert_eq!(r.can_send(), Ok(true));
    }

    #[test]
    fn rfc28_req_shall_round_robin_requests() {
        let mut r = Req::default();
        let (a, c) = (peer(1, 10), peer(2, 10));
        r.attach(a.clone());
        r.attach(c.clone());
        r.send(msg("1"), true).unwrap();
        a.inp.push(reply(&[b"", b"r"])).unwrap();
        r.recv().unwrap().unwrap();
        r.send(msg("2"), true).unwrap();
        assert_eq!(a.out.len(), 1);
        assert_eq!(c.out.len(), 1);
    }

    #[test]
    fn rfc28_req_shall_accept_reply_only_from_the_peer_asked() {
        let mut r = Req::default();
        let (a, c) = (peer(1, 10), peer(2, 10));
        r.attach(a.clone());
        r.attach(c.clone());
        r.send(msg("q"), true).unwrap();
        assert_eq!(a.out.len(), 1, "first request goes to the first peer");
        c.inp.push(reply(&[b"", b"impostor"])).unwrap();
        assert!(!r.can_recv());
        a.inp.push(reply(&[b"", b"genuine"])).unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("genuine"));
    }

    #[test]
    fn rfc28_req_shall_discard_reply_without_delimiter() {
        let mut r = Req::default();
        let a = peer(1, 10);
        r.attach(a.clone());
        r.send(msg("q"), true).unwrap();
        a.inp.push(msg("no envelope")).unwrap();
        a.inp.push(reply(&[b"x", b"bad delimiter"])).unwrap();
        a.inp.push(reply(&[b""])).unwrap(); // delimiter with no body
        a.inp.push(reply(&[b"", b"good", b"2"])).unwrap();
        assert_eq!(
            r.recv().unwrap().unwrap().0,
            Msg::from_frames(vec![b("good"), b("2")])
        );
    }

    #[test]
    fn rfc28_req_shall_block_without_peers() {
        let mut r = Req::default();
        assert_eq!(r.can_send(), Ok(false));
        assert_eq!(
            r.send(msg("q"), false),
            Err(SendError::WouldBlock(msg("q")))
        );
        // Nothing was sent, so no reply is awaited.
        assert_eq!(r.recv(), Err(RecvError::State));
    }

    #[test]
    fn req_stale_replies_are_discarded_before_a_new_request() {
        let mut r = Req::default();
        let a = peer(1, 10);
        r.attach(a.clone());
        r.send(msg("q1"), true).unwrap();
        a.inp.push(reply(&[b"", b"r1"])).unwrap();
        r.recv().unwrap().unwrap();
        a.inp.push(reply(&[b"", b"duplicate r1"])).unwrap();
        r.send(msg("q2"), true).unwrap();
        a.inp.push(reply(&[b"", b"r2"])).unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("r2"));
    }

    #[test]
    fn req_relaxed_allows_resend_and_abandons_old_request() {
        let mut r = Req::default();
        r.set_opt(PatternOpt::ReqRelaxed(true)).unwrap();
        let (a, c) = (peer(1, 10), peer(2, 10));
        r.attach(a.clone());
        r.attach(c.clone());
        r.send(msg("q1"), true).unwrap();
        assert_eq!(r.can_send(), Ok(true));
        r.send(msg("q2"), true).unwrap();
        assert_eq!(c.out.len(), 1);
        // The old peer's reply is no longer accepted; the new one's is.
        a.inp.push(reply(&[b"", b"late r1"])).unwrap();
        c.inp.push(reply(&[b"", b"r2"])).unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("r2"));
    }

    #[test]
    fn req_correlate_prefixes_id_and_drops_mismatched_replies() {
        let mut r = Req::default();
        r.set_opt(PatternOpt::ReqRelaxed(true)).unwrap();
        r.set_opt(PatternOpt::ReqCorrelate(true)).unwrap();
        let a = peer(1, 10);
        r.attach(a.clone());
        r.send(msg("q1"), true).unwrap();
        let q1 = a.out.pop().unwrap();
        let f1 = q1.frames();
        assert_eq!(f1.len(), 3);
        assert_eq!(f1[0].len(), 4);
        assert!(f1[1].is_empty());
        r.send(msg("q2"), true).unwrap();
        let q2 = a.out.pop().unwrap();
        let id2 = q2.frames()[0].clone();
        assert_ne!(f1[0], id2);
        // Same peer, but the reply to q1 carries the old id: dropped.
        a.inp
            .push(Msg::from_frames(vec![f1[0].clone(), b(""), b("r1")]))
            .unwrap();
        assert!(!r.can_recv());
        a.inp.push(reply(&[b"", b"no id"])).unwrap();
        assert!(!r.can_recv());
        a.inp
            .push(Msg::from_frames(vec![id2, b(""), b("r2")]))
            .unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("r2"));
    }

    #[test]
    fn req_relaxed_without_correlate_keeps_same_peer_reply() {
        // libzmq: without REQ_CORRELATE a reply from the peer asked is taken as is.
        let mut r = Req::default();
        r.set_opt(PatternOpt::ReqRelaxed(true)).unwrap();
        let a = peer(1, 10);
        r.attach(a.clone());
        r.send(msg("q1"), true).unwrap();
        r.send(msg("q2"), true).unwrap();
        a.inp.push(reply(&[b"", b"r"])).unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("r"));
    }

    #[test]
    fn req_reply_peer_detached_accepts_any_peer() {
        let mut r = Req::default();
        let (a, c) = (peer(1, 10), peer(2, 10));
        r.attach(a.clone());
        r.attach(c.clone());
        r.send(msg("q"), true).unwrap();
        r.detach(1);
        c.inp.push(reply(&[b"", b"from c"])).unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("from c"));
    }

    #[test]
    fn req_refuses_foreign_options() {
        let mut r = Req::default();
        assert_eq!(
            r.set_opt(PatternOpt::RouterMandatory(true)),
            Err(OptError::NotSupported)
        );
        assert_eq!(r.set_opt(PatternOpt::ProbeRouter(true)), Ok(()));
    }
}
