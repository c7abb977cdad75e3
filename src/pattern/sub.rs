//! SUB (RFC 29): receives the messages of its publishers that match its subscriptions;
//! never sends.
//!
//! Built on [`XSub`], as libzmq's `sub_t` is on `xsub_t`: the `SUBSCRIBE` option sends
//! `[0x01, prefix...]` upstream every time (the publisher keeps one subscription per peer
//! and prefix), `UNSUBSCRIBE` removes one count and sends `[0x00, prefix...]` only when the
//! last count goes. A new publisher gets every subscribed prefix once. Received messages
//! whose first frame matches no subscription are dropped (publishers filter too; this is
//! the defence against one that does not).

use std::sync::Arc;

use super::xsub::{subscription, XSub};
use super::{Msg, OptError, Pattern, PatternOpt, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// SUB = [`XSub`] + filtering on receive.
#[derive(Debug, Default)]
pub struct Sub {
    xsub: XSub,
    /// A matching message found by `can_recv`, not yet returned.
    ready: Option<(Msg, Option<Arc<Metadata>>)>,
}

impl Sub {
    fn next_match(&mut self) -> Option<(Msg, Option<Arc<Metadata>>)> {
        loop {
            let (msg, meta) = self.xsub.recv().ok().flatten()?;
            if self.xsub.matches(&msg.frames()[0]) {
                return Some((msg, meta));
            }
        }
    }
}

impl Pattern for Sub {
    fn attach(&mut self, peer: Peer) -> bool {
        self.xsub.attach(peer)
    }
    fn detach(&mut self, id: u64) {
        self.xsub.detach(id);
    }
    fn can_send(&mut self) -> Result<bool, SendError> {
        Err(SendError::NotSupported)
    }
    fn send(&mut self, _msg: Msg, _force: bool) -> Result<(), SendError> {
        Err(SendError::NotSupported)
    }
    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        if let Some(m) = self.ready.take() {
            return Ok(Some(m));
        }
        Ok(self.next_match())
    }
    fn can_recv(&mut self) -> bool {
        if self.ready.is_none() {
            self.ready = self.next_match();
        }
        self.ready.is_some()
    }
    fn set_opt(&mut self, opt: PatternOpt<'_>) -> Result<(), OptError> {
        match opt {
            PatternOpt::Subscribe(prefix) => self.xsub.upstream(subscription(1, prefix)),
            PatternOpt::Unsubscribe(prefix) => self.xsub.upstream(subscription(0, prefix)),
            _ => return Err(OptError::NotSupported),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};
    use crate::pattern::Frame;
    use bytes::Bytes;

    fn got(p: &Peer) -> Vec<Msg> {
        std::iter::from_fn(|| p.out.pop()).collect()
    }

    #[test]
    fn rfc29_sub_shall_not_send() {
        let mut s = Sub::default();
        assert_eq!(s.can_send(), Err(SendError::NotSupported));
        assert_eq!(s.send(msg("x"), true), Err(SendError::NotSupported));
    }

    #[test]
    fn rfc29_sub_shall_send_subscriptions_to_publishers() {
        let mut s = Sub::default();
        let a = peer(1, 10);
        s.attach(a.clone());
        s.set_opt(PatternOpt::Subscribe(b"t")).unwrap();
        s.set_opt(PatternOpt::Subscribe(b"t")).unwrap();
        assert_eq!(got(&a), vec![subscription(1, b"t"), subscription(1, b"t")]);
        s.set_opt(PatternOpt::Unsubscribe(b"t")).unwrap();
        assert!(a.out.is_empty(), "one count remains");
        s.set_opt(PatternOpt::Unsubscribe(b"t")).unwrap();
        assert_eq!(got(&a), vec![subscription(0, b"t")]);
    }

    #[test]
    fn rfc29_sub_shall_resubscribe_on_attach() {
        let mut s = Sub::default();
        s.set_opt(PatternOpt::Subscribe(b"a")).unwrap();
        s.set_opt(PatternOpt::Subscribe(b"")).unwrap();
        let first = peer(1, 10);
        s.attach(first.clone());
        assert_eq!(
            got(&first),
            vec![subscription(1, b""), subscription(1, b"a")]
        );
        // The connection drops and comes back as a new peer: same subscriptions again.
        s.detach(1);
        let again = peer(2, 10);
        s.attach(again.clone());
        assert_eq!(
            got(&again),
            vec![subscription(1, b""), subscription(1, b"a")]
        );
    }

    #[test]
    fn rfc29_sub_subscriptions_pass_the_hwm() {
        let mut s = Sub::default();
        let a = peer(1, 1);
        s.attach(a.clone());
        for t in ["a", "b", "c"] {
            s.set_opt(PatternOpt::Subscribe(t.as_bytes())).unwrap();
        }
        assert_eq!(a.out.len(), 3);
    }

    #[test]
    fn rfc29_sub_shall_filter_unmatched_messages() {
        let mut s = Sub::default();
        let a = peer(1, 10);
        s.attach(a.clone());
        s.set_opt(PatternOpt::Subscribe(b"weather")).unwrap();
        a.inp.push(msg("sports")).unwrap();
        a.inp
            .push(Msg::from_frames(vec![
                Frame::from_static(b"weather.oslo"),
                Frame::from_static(b"-3C"),
            ]))
            .unwrap();
        assert!(s.can_recv());
        let (m, _) = s.recv().unwrap().unwrap();
        assert_eq!(m.frames().len(), 2);
        assert_eq!(s.recv(), Ok(None));
        // Without any subscription nothing gets through.
        s.set_opt(PatternOpt::Unsubscribe(b"weather")).unwrap();
        a.inp.push(msg("weather")).unwrap();
        assert!(!s.can_recv());
    }

    #[test]
    fn sub_refuses_foreign_options() {
        let mut s = Sub::default();
        assert_eq!(
            s.set_opt(PatternOpt::ReqRelaxed(true)),
            Err(OptError::NotSupported)
        );
    }

    #[test]
    fn rfc29_sub_pub_linked_subscribe_and_unsubscribe() {
        use crate::pattern::publ::Pub;
        let mut s = Sub::default();
        let mut p = Pub::default();
        let to_pub = peer(1, 10);
        let from_sub = Peer {
            id: 2,
            out: to_pub.inp.clone(),
            inp: to_pub.out.clone(),
            routing_id: Bytes::new(),
            meta: None,
        };
        s.set_opt(PatternOpt::Subscribe(b"a")).unwrap();
        s.attach(to_pub);
        p.attach(from_sub);
        // Subscribed twice, unsubscribed once: still subscribed on both sides.
        s.set_opt(PatternOpt::Subscribe(b"a")).unwrap();
        s.set_opt(PatternOpt::Unsubscribe(b"a")).unwrap();
        assert_eq!(p.can_send(), Ok(true));
        p.send(msg("a1"), true).unwrap();
        p.send(msg("b1"), true).unwrap();
        assert_eq!(s.recv().unwrap().unwrap().0, msg("a1"));
        assert_eq!(s.recv(), Ok(None));
        s.set_opt(PatternOpt::Unsubscribe(b"a")).unwrap();
        assert_eq!(p.can_send(), Ok(true));
        p.send(msg("a2"), true).unwrap();
        assert_eq!(s.recv(), Ok(None));
    }
}
