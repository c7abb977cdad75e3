//! XPUB (RFC 29): a PUB that also hands subscriptions to the application.
//!
//! Behaviour mirrored from libzmq 4.3 (`xpub.cpp`):
//! - `recv` returns `[0x01, prefix...]` when a prefix gets its first subscriber and
//!   `[0x00, prefix...]` when it loses its last one (including when a subscriber is
//!   detached); with `XPUB_VERBOSE` every subscribe is passed on, cancels still only when
//!   the last subscriber goes. A cancel from a peer that was not subscribed to that prefix is
//!   passed on too, as libzmq does;
//! - other messages from subscribers (an XSUB upstream sending data) are passed on whole;
//! - `XPUB_WELCOME_MSG` is sent to each new subscriber when it attaches;
//! - `send` works as PUB's: never blocks, drops per subscriber at its HWM.

use std::collections::VecDeque;
use std::sync::Arc;

use super::publ::PubCore;
use super::{Msg, OptError, Pattern, PatternOpt, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// XPUB = [`PubCore`] + a queue of what the application will receive.
#[derive(Debug, Default)]
pub struct XPub {
    core: PubCore,
    pending: VecDeque<(Msg, Option<Arc<Metadata>>)>,
}

impl XPub {
    /// Messages dropped because subscriber `id`'s pipe was full.
    pub fn drops(&self, id: u64) -> u64 {
        self.core.drops(id)
    }
}

impl Pattern for XPub {
    fn attach(&mut self, peer: Peer) -> bool {
        let pending = &mut self.pending;
        self.core
            .attach(peer, &mut |m, meta| pending.push_back((m, meta)));
        true
    }
    fn detach(&mut self, id: u64) {
        let pending = &mut self.pending;
        self.core
            .detach(id, &mut |m, meta| pending.push_back((m, meta)));
    }
    fn can_send(&mut self) -> Result<bool, SendError> {
        let pending = &mut self.pending;
        Ok(self
            .core
            .can_send(&mut |m, meta| pending.push_back((m, meta))))
    }
    fn send(&mut self, msg: Msg, _force: bool) -> Result<(), SendError> {
        let pending = &mut self.pending;
        self.core
            .send(msg, &mut |m, meta| pending.push_back((m, meta)));
        Ok(())
    }
    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        if self.pending.is_empty() {
            let pending = &mut self.pending;
            self.core.drain(&mut |m, meta| pending.push_back((m, meta)));
        }
        Ok(self.pending.pop_front())
    }
    fn can_recv(&mut self) -> bool {
        if self.pending.is_empty() {
            let pending = &mut self.pending;
            self.core.drain(&mut |m, meta| pending.push_back((m, meta)));
        }
        !self.pending.is_empty()
    }
    fn set_opt(&mut self, opt: PatternOpt<'_>) -> Result<(), OptError> {
        self.core.set_opt(opt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};
    use crate::pattern::Frame;

    fn frame(kind: u8, prefix: &str) -> Msg {
        let mut b = vec![kind];
        b.extend_from_slice(prefix.as_bytes());
        Msg::One(Frame::from(b))
    }

    fn all(x: &mut XPub) -> Vec<Msg> {
        std::iter::from_fn(|| x.recv().unwrap().map(|(m, _)| m)).collect()
    }

    #[test]
    fn rfc29_xpub_shall_pass_first_subscribe_and_last_cancel() {
        let mut x = XPub::default();
        let (a, b) = (peer(1, 10), peer(2, 10));
        x.attach(a.clone());
        x.attach(b.clone());
        a.inp.push(frame(1, "t")).unwrap();
        b.inp.push(frame(1, "t")).unwrap();
        a.inp.push(frame(1, "t")).unwrap(); // duplicate from the same peer
        assert!(x.can_recv());
        assert_eq!(all(&mut x), vec![frame(1, "t")]);
        a.inp.push(frame(0, "t")).unwrap();
        assert_eq!(all(&mut x), vec![]);
        b.inp.push(frame(0, "t")).unwrap();
        assert_eq!(all(&mut x), vec![frame(0, "t")]);
    }

    #[test]
    fn rfc29_xpub_verbose_passes_every_subscribe() {
        let mut x = XPub::default();
        x.set_opt(PatternOpt::XpubVerbose(true)).unwrap();
        let (a, b) = (peer(1, 10), peer(2, 10));
        x.attach(a.clone());
        x.attach(b.clone());
        a.inp.push(frame(1, "t")).unwrap();
        b.inp.push(frame(1, "t")).unwrap();
        a.inp.push(frame(1, "t")).unwrap();
        assert_eq!(all(&mut x).len(), 3);
        // Cancels are still passed only for the last subscriber (XPUB_VERBOSER is not
        // XPUB_VERBOSE).
        a.inp.push(frame(0, "t")).unwrap();
        assert_eq!(all(&mut x), vec![]);
        b.inp.push(frame(0, "t")).unwrap();
        assert_eq!(all(&mut x), vec![frame(0, "t")]);
    }

    #[test]
    fn xpub_detach_passes_cancels_for_orphaned_prefixes() {
        let mut x = XPub::default();
        let (a, b) = (peer(1, 10), peer(2, 10));
        x.attach(a.clone());
        x.attach(b.clone());
        a.inp.push(frame(1, "shared")).unwrap();
        a.inp.push(frame(1, "mine")).unwrap();
        b.inp.push(frame(1, "shared")).unwrap();
        assert_eq!(all(&mut x).len(), 2);
        x.detach(1);
        assert_eq!(all(&mut x), vec![frame(0, "mine")]);
    }

    #[test]
    fn xpub_welcome_message_to_each_new_peer() {
        let mut x = XPub::default();
        x.set_opt(PatternOpt::XpubWelcomeMsg(Some(b"welcome")))
            .unwrap();
        let a = peer(1, 10);
        x.attach(a.clone());
        assert_eq!(a.out.pop(), Some(msg("welcome")));
        x.set_opt(PatternOpt::XpubWelcomeMsg(None)).unwrap();
        let b = peer(2, 10);
        x.attach(b.clone());
        assert!(b.out.is_empty());
    }

    #[test]
    fn xpub_passes_upstream_user_messages() {
        let mut x = XPub::default();
        let a = peer(1, 10);
        x.attach(a.clone());
        let m = Msg::from_frames(vec![Frame::from_static(b"data"), Frame::from_static(b"x")]);
        a.inp.push(m.clone()).unwrap();
        assert_eq!(all(&mut x), vec![m]);
    }

    #[test]
    fn xpub_send_filters_like_pub() {
        let mut x = XPub::default();
        let (a, b) = (peer(1, 10), peer(2, 10));
        x.attach(a.clone());
        x.attach(b.clone());
        a.inp.push(frame(1, "a")).unwrap();
        assert_eq!(x.can_send(), Ok(true));
        x.send(msg("a!"), true).unwrap();
        x.send(msg("b!"), true).unwrap();
        assert_eq!(a.out.pop(), Some(msg("a!")));
        assert!(a.out.is_empty());
        assert!(b.out.is_empty());
        // The subscription read while sending is still passed to the application.
        assert_eq!(all(&mut x), vec![frame(1, "a")]);
    }

    #[test]
    fn xpub_cancel_of_unknown_prefix_is_passed_like_libzmq() {
        let mut x = XPub::default();
        let a = peer(1, 10);
        x.attach(a.clone());
        a.inp.push(frame(0, "never")).unwrap();
        assert_eq!(all(&mut x), vec![frame(0, "never")]);
    }
}
