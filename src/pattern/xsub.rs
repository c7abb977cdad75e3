//! XSUB (RFC 29): receives everything from its publishers; what the application sends goes
//! upstream to all of them.
//!
//! Behaviour mirrored from libzmq 4.3 (`xsub.cpp`):
//! - a message whose first frame is `[0x01, prefix...]` subscribes: it is counted in a
//!   [`Trie`] and forwarded to every publisher (every time: duplicates are for the
//!   publisher side to filter, as `XPUB_VERBOSE` relies on);
//! - `[0x00, prefix...]` cancels one count, and is forwarded only when the last count goes;
//!   a cancel of a prefix not subscribed is dropped;
//! - subscriptions and cancels are queued even above the HWM (never lost); any other
//!   message is forwarded to every publisher with room (dropped for a full one);
//! - a new publisher is sent every subscribed prefix once, so subscriptions survive
//!   reconnection (a reconnected peer is a new attach);
//! - `recv` delivers every message (no filtering; see [`super::sub::Sub`] for that).

use std::sync::Arc;

use super::dist::Dist;
use super::fq::Fq;
use super::trie::Trie;
use super::Frame;
use super::{Msg, Pattern, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// XSUB = [`Fq`] + [`Dist`] of subscriptions and upstream messages + [`Trie`].
#[derive(Debug, Default)]
pub struct XSub {
    fq: Fq,
    dist: Dist,
    subs: Trie,
}

/// A single-frame subscription (`kind` 1) or cancel (`kind` 0) message.
pub(crate) fn subscription(kind: u8, prefix: &[u8]) -> Msg {
    let mut b = Vec::with_capacity(prefix.len() + 1);
    b.push(kind);
    b.extend_from_slice(prefix);
    Msg::One(Frame::from(b))
}

impl XSub {
    /// Applies an upstream message (from the application, or a SUB option) and forwards it
    /// as the module docs say.
    pub fn upstream(&mut self, msg: Msg) {
        let first = &msg.frames()[0];
        match first.first() {
            Some(1) => {
                self.subs.add(&first[1..]);
                self.dist.force_to_all(&msg);
            }
            Some(0) => {
                if self.subs.remove(&first[1..]) {
                    self.dist.force_to_all(&msg);
                }
            }
            _ => {
                self.dist.send_to_all(msg);
            }
        }
    }

    /// True if some subscription is a prefix of `data`.
    pub fn matches(&self, data: &[u8]) -> bool {
        self.subs.matches(data)
    }

    /// Number of distinct subscribed prefixes.
    pub fn topic_count(&self) -> usize {
        self.subs.len()
    }
}

impl Pattern for XSub {
    fn attach(&mut self, peer: Peer) -> bool {
        self.subs.for_each(|prefix| {
            peer.out.force_push(subscription(1, prefix));
        });
        self.fq.attach(peer.clone());
        self.dist.attach(peer);
        true
    }
    fn detach(&mut self, id: u64) {
        // Fq drops the peer once its closed inbound pipe is drained.
        self.dist.detach(id);
    }
    /// Always true: XSUB never blocks (subscriptions are never dropped, other messages are
    /// dropped per full publisher).
    fn can_send(&mut self) -> Result<bool, SendError> {
        Ok(true)
    }
    fn send(&mut self, msg: Msg, _force: bool) -> Result<(), SendError> {
        self.upstream(msg);
        Ok(())
    }
    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        Ok(self.fq.recv().map(|(m, _, meta)| (m, meta)))
    }
    fn can_recv(&mut self) -> bool {
        self.fq.can_recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};

    fn got(p: &Peer) -> Vec<Msg> {
        std::iter::from_fn(|| p.out.pop()).collect()
    }

    #[test]
    fn rfc29_xsub_shall_forward_subscriptions_to_all_publishers() {
        let mut x = XSub::default();
        let (a, b) = (peer(1, 10), peer(2, 10));
        x.attach(a.clone());
        x.attach(b.clone());
        assert_eq!(x.can_send(), Ok(true));
        x.send(subscription(1, b"t"), true).unwrap();
        x.send(subscription(1, b"t"), true).unwrap();
        assert_eq!(got(&a), vec![subscription(1, b"t"), subscription(1, b"t")]);
        assert_eq!(got(&b).len(), 2);
        // Only the last cancel is forwarded.
        x.send(subscription(0, b"t"), true).unwrap();
        assert!(a.out.is_empty());
        x.send(subscription(0, b"t"), true).unwrap();
        assert_eq!(got(&a), vec![subscription(0, b"t")]);
        // A cancel of nothing is dropped.
        x.send(subscription(0, b"t"), true).unwrap();
        assert!(a.out.is_empty());
    }

    #[test]
    fn rfc29_xsub_shall_resend_subscriptions_to_new_publishers() {
        let mut x = XSub::default();
        x.send(subscription(1, b"a"), true).unwrap();
        x.send(subscription(1, b"a"), true).unwrap();
        x.send(subscription(1, b"b"), true).unwrap();
        let a = peer(1, 10);
        x.attach(a.clone());
        assert_eq!(got(&a), vec![subscription(1, b"a"), subscription(1, b"b")]);
    }

    #[test]
    fn rfc29_xsub_shall_forward_other_messages_as_is() {
        let mut x = XSub::default();
        let (a, b) = (peer(1, 1), peer(2, 10));
        x.attach(a.clone());
        x.attach(b.clone());
        let m = Msg::from_frames(vec![Frame::from_static(b"hi"), Frame::from_static(b"2")]);
        x.send(m.clone(), true).unwrap();
        assert_eq!(b.out.pop(), Some(m.clone()));
        // a is full: data is dropped for it, subscriptions are not.
        x.send(m.clone(), true).unwrap();
        x.send(subscription(1, b"z"), true).unwrap();
        assert_eq!(got(&a), vec![m, subscription(1, b"z")]);
        x.send(Msg::One(Frame::new()), true).unwrap();
        assert_eq!(
            b.out.len(),
            3,
            "an empty message is data, not a subscription"
        );
    }

    #[test]
    fn rfc29_xsub_shall_not_filter() {
        let mut x = XSub::default();
        let a = peer(1, 10);
        x.attach(a.clone());
        a.inp.push(msg("anything")).unwrap();
        assert!(x.can_recv());
        assert_eq!(x.recv().unwrap().unwrap().0, msg("anything"));
        assert_eq!(x.recv(), Ok(None));
    }

    #[test]
    fn rfc29_xsub_to_xpub_forwarding_like_a_proxy() {
        use crate::pattern::xpub::XPub;
        let mut xs = XSub::default();
        let mut xp = XPub::default();
        let up = peer(1, 10);
        let down = Peer {
            id: 2,
            out: up.inp.clone(),
            inp: up.out.clone(),
            routing_id: bytes::Bytes::new(),
            meta: None,
        };
        xs.attach(up);
        xp.attach(down);
        xs.send(subscription(1, b"news"), true).unwrap();
        assert!(xp.can_recv());
        assert_eq!(xp.recv().unwrap().unwrap().0, subscription(1, b"news"));
        xp.send(msg("news: ok"), true).unwrap();
        xp.send(msg("other"), true).unwrap();
        assert_eq!(xs.recv().unwrap().unwrap().0, msg("news: ok"));
        assert_eq!(xs.recv(), Ok(None));
    }
}
