//! REP (RFC 28): receives one request, hands the application its body, and sends the reply
//! back along the same envelope to the same peer.
//!
//! Built on [`Router`], as libzmq's `rep_t` is on `router_t`: a request is received with the
//! peer's routing id in front; everything up to and including the first empty frame (the
//! delimiter) is the envelope, saved whole; the rest is the body. A request without a
//! delimiter followed by at least one body frame is dropped. The reply gets the envelope
//! back and is routed to that peer only: if it is gone, or its pipe is full, the reply is
//! dropped, as in libzmq.

use std::sync::Arc;

use super::router::Router;
use super::Frame;
use super::{Msg, Pattern, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// A request waiting to be returned by `recv`.
type Request = (Vec<Frame>, Msg, Option<Arc<Metadata>>);

/// REP = [`Router`] + envelope.
#[derive(Debug, Default)]
pub struct Rep {
    router: Router,
    /// The envelope of the request being answered (`Some` between `recv` and `send`).
    envelope: Option<Vec<Frame>>,
    /// A well-formed request found by `can_recv`, not yet returned.
    ready: Option<Request>,
}

impl Rep {
    /// The next well-formed request: envelope (routing id first) and body.
    fn next_request(&mut self) -> Option<Request> {
        loop {
            let (msg, meta) = self.router.recv().ok().flatten()?;
            let mut frames = msg.into_frames();
            // The delimiter is the first empty frame that is not the last one.
            let last = frames.len() - 1;
            let Some(d) = frames[..last].iter().position(|f| f.is_empty()) else {
                continue;
            };
            let body = frames.split_off(d + 1);
            return Some((frames, Msg::from_frames(body), meta));
        }
    }
}

impl Pattern for Rep {
    fn attach(&mut self, peer: Peer) -> bool {
        self.router.attach(peer)
    }

    fn detach(&mut self, id: u64) {
        self.router.detach(id);
    }

    fn can_send(&mut self) -> Result<bool, SendError> {
        if self.envelope.is_none() {
            return Err(SendError::State);
        }
        Ok(true)
    }

    fn send(&mut self, msg: Msg, force: bool) -> Result<(), SendError> {
        let Some(mut frames) = self.envelope.take() else {
            return Err(SendError::State);
        };
        frames.extend(msg.into_frames());
        self.router.send(Msg::Many(frames), force)
    }

    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        if self.envelope.is_some() {
            return Err(RecvError::State);
        }
        let req = match self.ready.take() {
            Some(r) => Some(r),
            None => self.next_request(),
        };
        Ok(req.map(|(envelope, body, meta)| {
            self.envelope = Some(envelope);
            (body, meta)
        }))
    }

    fn can_recv(&mut self) -> bool {
        if self.envelope.is_some() {
            return false;
        }
        if self.ready.is_none() {
            self.ready = self.next_request();
        }
        self.ready.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};

    fn m(frames: &[&[u8]]) -> Msg {
        Msg::from_frames(frames.iter().map(|f| Frame::copy_from_slice(f)).collect())
    }

    #[test]
    fn rfc28_rep_shall_alternate_recv_and_send() {
        let mut r = Rep::default();
        let a = peer(1, 10);
        r.attach(a.clone());
        assert_eq!(r.can_send(), Err(SendError::State));
        assert_eq!(r.send(msg("x"), true), Err(SendError::State));
        assert_eq!(r.recv(), Ok(None));
        a.inp.push(m(&[b"", b"q1"])).unwrap();
        a.inp.push(m(&[b"", b"q2"])).unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("q1"));
        assert_eq!(r.recv(), Err(RecvError::State));
        assert!(!r.can_recv());
        assert_eq!(r.can_send(), Ok(true));
        r.send(msg("r1"), true).unwrap();
        assert_eq!(a.out.pop(), Some(m(&[b"", b"r1"])));
        assert!(r.can_recv());
        assert_eq!(r.recv().unwrap().unwrap().0, msg("q2"));
    }

    #[test]
    fn rfc28_rep_shall_preserve_envelope() {
        let mut r = Rep::default();
        let a = peer(1, 10);
        r.attach(a.clone());
        // Through a ROUTER/DEALER broker: two address frames, then the delimiter.
        a.inp
            .push(m(&[b"hop1", b"hop2", b"", b"body1", b"body2"]))
            .unwrap();
        let (body, _) = r.recv().unwrap().unwrap();
        assert_eq!(body, m(&[b"body1", b"body2"]));
        r.send(m(&[b"reply1", b"reply2"]), true).unwrap();
        assert_eq!(
            a.out.pop(),
            Some(m(&[b"hop1", b"hop2", b"", b"reply1", b"reply2"]))
        );
    }

    #[test]
    fn rfc28_rep_shall_reply_to_the_requesting_peer_only() {
        let mut r = Rep::default();
        let (a, c) = (peer(1, 10), peer(2, 10));
        r.attach(a.clone());
        r.attach(c.clone());
        c.inp.push(m(&[b"", b"from c"])).unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("from c"));
        r.send(msg("to c"), true).unwrap();
        assert!(a.out.is_empty());
        assert_eq!(c.out.pop(), Some(m(&[b"", b"to c"])));
    }

    #[test]
    fn rfc28_rep_shall_discard_malformed_requests() {
        let mut r = Rep::default();
        let a = peer(1, 10);
        r.attach(a.clone());
        a.inp.push(msg("no delimiter")).unwrap();
        a.inp.push(m(&[b"x", b"y"])).unwrap();
        a.inp.push(m(&[b"x", b""])).unwrap(); // delimiter without body
        a.inp.push(m(&[b"", b"ok"])).unwrap();
        assert!(r.can_recv());
        assert_eq!(r.recv().unwrap().unwrap().0, msg("ok"));
    }

    #[test]
    fn rfc28_rep_shall_drop_reply_if_peer_is_gone() {
        let mut r = Rep::default();
        let (a, c) = (peer(1, 10), peer(2, 10));
        r.attach(a.clone());
        r.attach(c.clone());
        a.inp.push(m(&[b"", b"q"])).unwrap();
        r.recv().unwrap().unwrap();
        a.inp.close();
        a.out.close_and_clear();
        r.detach(1);
        assert_eq!(r.send(msg("r"), true), Ok(()));
        assert!(c.out.is_empty());
        // Back to receiving.
        c.inp.push(m(&[b"", b"next"])).unwrap();
        assert_eq!(r.recv().unwrap().unwrap().0, msg("next"));
    }

    /// Two peers sharing crossed pipes: what one side sends, the other receives.
    fn link(a: u64, b: u64) -> (Peer, Peer) {
        let p = peer(a, 10);
        let q = Peer {
            id: b,
            out: p.inp.clone(),
            inp: p.out.clone(),
            routing_id: bytes::Bytes::new(),
            meta: None,
        };
        (p, q)
    }

    #[test]
    fn rfc28_req_rep_round_trip_over_linked_pipes() {
        use crate::pattern::req::Req;
        let mut req = Req::default();
        let mut rep = Rep::default();
        let (to_rep, from_req) = link(1, 2);
        req.attach(to_rep);
        rep.attach(from_req);
        for i in 0..3 {
            let q = format!("q{i}");
            assert_eq!(req.can_send(), Ok(true));
            req.send(msg(&q), true).unwrap();
            assert!(rep.can_recv());
            assert_eq!(rep.recv().unwrap().unwrap().0, msg(&q));
            rep.send(m(&[b"r", q.as_bytes()]), true).unwrap();
            assert!(req.can_recv());
            assert_eq!(req.recv().unwrap().unwrap().0, m(&[b"r", q.as_bytes()]));
        }
    }

    #[test]
    fn rfc28_req_correlate_round_trip_through_rep() {
        use crate::pattern::req::Req;
        use crate::pattern::PatternOpt;
        let mut req = Req::default();
        req.set_opt(PatternOpt::ReqCorrelate(true)).unwrap();
        let mut rep = Rep::default();
        let (to_rep, from_req) = link(1, 2);
        req.attach(to_rep);
        rep.attach(from_req);
        req.send(msg("q"), true).unwrap();
        // The request id travels in the envelope and comes back with the reply.
        assert_eq!(rep.recv().unwrap().unwrap().0, msg("q"));
        rep.send(msg("r"), true).unwrap();
        assert_eq!(req.recv().unwrap().unwrap().0, msg("r"));
    }
}
