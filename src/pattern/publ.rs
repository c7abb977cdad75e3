//! PUB (RFC 29): distributes each message to the subscribers whose subscriptions match its
//! first frame; never blocks, never receives.
//!
//! [`PubCore`] is shared with [`super::xpub::XPub`] (libzmq's `pub_t` is an `xpub_t` that
//! keeps nothing for the application):
//! - subscriptions arrive in each peer's inbound pipe as single-frame messages
//!   `[0x01, prefix...]` (subscribe) or `[0x00, prefix...]` (cancel); they are applied
//!   whenever the socket sends (or, for XPUB, receives), and when a peer attaches;
//! - as in libzmq's `mtrie`, a peer is subscribed to a prefix or not: a repeated subscribe
//!   from the same peer changes nothing and one cancel removes it (a SUB counts its own
//!   subscriptions and only cancels the last one);
//! - a message goes, whole, to every peer subscribed to a prefix of its first frame that has
//!   room; a full peer misses it ([`Dist`]), the others still get it;
//! - a peer's subscriptions go when it is detached;
//! - a peer may hold at most [`MAX_SUBSCRIPTION_BYTES`] of subscriptions (each counted by
//!   [`subscription_cost`], about what it takes in memory): a peer that subscribes past that
//!   is cut off (its pipes are closed, which ends the connection) with a log line, so no
//!   subscriber can grow the publisher's memory without bound. libzmq has no such limit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;

use super::dist::Dist;
use super::trie::MultiTrie;
use super::Frame;
use super::{Msg, OptError, Pattern, PatternOpt, Peer, Pipe, RecvError, SendError};
use crate::metadata::Metadata;

/// The most subscription memory one peer may hold (see the module docs): 16 MiB, e.g.
/// about 100,000 subscriptions of 16-byte topics.
pub const MAX_SUBSCRIPTION_BYTES: usize = 16 << 20;

/// What a subscription to `prefix` counts for against [`MAX_SUBSCRIPTION_BYTES`]: its bytes
/// twice (the peer's set and the trie's label) and 128 for the entries themselves.
pub fn subscription_cost(prefix: &[u8]) -> usize {
    2 * prefix.len() + 128
}

/// One peer's subscriptions.
#[derive(Debug, Default)]
struct Own {
    prefixes: HashSet<Bytes>,
    /// Sum of [`subscription_cost`] over `prefixes`.
    bytes: usize,
}

/// Where the core hands what XPUB passes to its application: subscription notifications
/// (`[0x01|0x00, prefix...]`) and other messages from subscribers. PUB ignores them.
pub type Sink<'a> = &'a mut dyn FnMut(Msg, Option<Arc<Metadata>>);

/// Subscriptions + distribution: what PUB and XPUB share.
#[derive(Debug, Default)]
pub struct PubCore {
    dist: Dist,
    subs: MultiTrie<u64>,
    /// Each peer's prefixes, to make subscriptions per peer a set (see the module docs).
    own: HashMap<u64, Own>,
    verbose: bool,
    welcome: Option<Bytes>,
    /// `can_send` has just applied subscriptions: `send` need not do it again.
    fresh: bool,
    /// Scratch vectors reused on every send (no allocation per message).
    matched: Vec<u64>,
    readable: Vec<u64>,
    batch: Vec<Msg>,
}

impl PubCore {
    /// Adds a subscriber: sends it the welcome message, if any, then applies what it has
    /// already sent.
    pub fn attach(&mut self, peer: Peer, sink: Sink<'_>) {
        if let Some(w) = &self.welcome {
            peer.out.force_push(Msg::One(w.clone().into()));
        }
        let id = peer.id;
        self.own.entry(id).or_default();
        self.dist.attach(peer);
        self.drain_peer(id, sink);
    }

    /// Removes a subscriber and its subscriptions; for each prefix no one is subscribed to
    /// any more, `sink` gets a cancel `[0x00, prefix...]` (with no metadata).
    pub fn detach(&mut self, id: u64, sink: Sink<'_>) {
        if self.dist.peer(id).is_none() {
            return;
        }
        // What it sent before it went still counts (libzmq reads a pipe before it ends).
        self.drain_peer(id, sink);
        self.subs.remove_pipe(id, |prefix| {
            let mut b = Vec::with_capacity(prefix.len() + 1);
            b.push(0);
            b.extend_from_slice(prefix);
            sink(Msg::One(Frame::from(b)), None);
        });
        self.own.remove(&id);
        self.dist.detach(id);
    }

    /// Applies every queued subscription from every peer.
    pub fn drain(&mut self, sink: Sink<'_>) {
        self.drain_with(sink, |p| p.is_readable());
    }

    /// [`PubCore::drain`] for the send path, which never sleeps on the subscribers' pipes:
    /// a lock-free look at each pipe (two loads) instead of two locks per subscriber.
    fn drain_for_send(&mut self, sink: Sink<'_>) {
        self.drain_with(sink, |p| p.maybe_readable());
    }

    fn drain_with(&mut self, sink: Sink<'_>, readable: impl Fn(&Pipe) -> bool) {
        let mut ids = std::mem::take(&mut self.readable);
        ids.clear();
        self.dist.for_each_peer(|p| {
            if readable(&p.inp) {
                ids.push(p.id)
            }
        });
        for &id in &ids {
            self.drain_peer(id, sink);
        }
        self.readable = ids;
    }

    fn drain_peer(&mut self, id: u64, sink: Sink<'_>) {
        let Some(peer) = self.dist.peer(id) else {
            return;
        };
        let (inp, meta) = (peer.inp.clone(), peer.meta.clone());
        let mut batch = std::mem::take(&mut self.batch);
        inp.pop_batch(&mut batch, usize::MAX);
        for msg in batch.drain(..) {
            self.apply(id, msg, &meta, sink);
        }
        self.batch = batch;
    }

    /// One message from subscriber `id`. A message whose first frame starts with 0x00 or
    /// 0x01 carries subscriptions (each of its frames that does is applied, as libzmq does
    /// by default); any other message is passed to `sink` whole.
    fn apply(&mut self, id: u64, msg: Msg, meta: &Option<Arc<Metadata>>, sink: Sink<'_>) {
        if !matches!(msg.frames()[0].first(), Some(0 | 1)) {
            sink(msg, meta.clone());
            return;
        }
        for frame in msg.into_frames() {
            let Some(&kind) = frame.first() else {
                continue;
            };
            let prefix = &frame[1..];
            let cost = subscription_cost(prefix);
            let own = self.own.entry(id).or_default();
            let notify = match kind {
                1 if own.prefixes.contains(prefix) => self.verbose,
                1 if own.bytes + cost > MAX_SUBSCRIPTION_BYTES => {
                    log::warn!(
                        "subscriber {id} cut off: its subscriptions exceed {MAX_SUBSCRIPTION_BYTES} bytes"
                    );
                    if let Some(peer) = self.dist.peer(id) {
                        peer.out.close_and_clear();
                        peer.inp.close_and_clear();
                    }
                    return;
                }
                1 => {
                    own.bytes += cost;
                    own.prefixes.insert(Bytes::copy_from_slice(prefix));
                    self.subs.add(prefix, id) || self.verbose
                }
                0 => {
                    // libzmq tells the application unless other peers remain subscribed,
                    // including when this peer was not subscribed at all.
                    let had = own.prefixes.remove(prefix);
                    if had {
                        own.bytes -= cost;
                    }
                    !had || self.subs.remove(prefix, id)
                }
                _ => continue,
            };
            if notify {
                sink(Msg::One(frame), meta.clone());
            }
        }
    }

    /// Applies queued subscriptions. PUB and XPUB can always send.
    pub fn can_send(&mut self, sink: Sink<'_>) -> bool {
        self.drain_for_send(sink);
        self.fresh = true;
        true
    }

    /// Sends `msg` to every matching subscriber with room; returns how many got it.
    pub fn send(&mut self, msg: Msg, sink: Sink<'_>) -> usize {
        if !std::mem::take(&mut self.fresh) {
            self.drain_for_send(sink);
        }
        let mut matched = std::mem::take(&mut self.matched);
        matched.clear();
        self.subs.match_into(&msg.frames()[0], &mut matched);
        let n = if matched.is_empty() {
            0
        } else {
            self.dist.send_to(msg, &matched)
        };
        self.matched = matched;
        n
    }

    /// `XPUB_VERBOSE` and `XPUB_WELCOME_MSG` (libzmq accepts both on PUB too).
    pub fn set_opt(&mut self, opt: PatternOpt<'_>) -> Result<(), OptError> {
        match opt {
            PatternOpt::XpubVerbose(on) => self.verbose = on,
            PatternOpt::XpubWelcomeMsg(w) => {
                self.welcome = w.filter(|w| !w.is_empty()).map(Bytes::copy_from_slice)
            }
            _ => return Err(OptError::NotSupported),
        }
        Ok(())
    }

    /// Messages dropped because a subscriber's pipe was full, per peer.
    pub fn drops(&self, id: u64) -> u64 {
        self.dist.drops(id)
    }

    /// Messages dropped over all subscribers.
    pub fn total_drops(&self) -> u64 {
        self.dist.total_drops()
    }

    /// Number of distinct prefixes someone is subscribed to.
    pub fn topic_count(&self) -> usize {
        self.subs.len()
    }
}

/// PUB = [`PubCore`] that keeps nothing for the application.
#[derive(Debug, Default)]
pub struct Pub {
    core: PubCore,
}

impl Pub {
    /// Messages dropped because subscriber `id`'s pipe was full.
    pub fn drops(&self, id: u64) -> u64 {
        self.core.drops(id)
    }
}

fn ignore(_: Msg, _: Option<Arc<Metadata>>) {}

impl Pattern for Pub {
    fn attach(&mut self, peer: Peer) -> bool {
        self.core.attach(peer, &mut ignore);
        true
    }
    fn detach(&mut self, id: u64) {
        self.core.detach(id, &mut ignore);
    }
    fn can_send(&mut self) -> Result<bool, SendError> {
        Ok(self.core.can_send(&mut ignore))
    }
    fn send(&mut self, msg: Msg, _force: bool) -> Result<(), SendError> {
        self.core.send(msg, &mut ignore);
        Ok(())
    }
    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        Err(RecvError::NotSupported)
    }
    fn can_recv(&mut self) -> bool {
        false
    }
    fn set_opt(&mut self, opt: PatternOpt<'_>) -> Result<(), OptError> {
        self.core.set_opt(opt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};

    fn sub(p: &Peer, prefix: &str) {
        let mut b = vec![1u8];
        b.extend_from_slice(prefix.as_bytes());
        p.inp.push(Msg::One(Frame::from(b))).unwrap();
    }

    fn cancel(p: &Peer, prefix: &str) {
        let mut b = vec![0u8];
        b.extend_from_slice(prefix.as_bytes());
        p.inp.push(Msg::One(Frame::from(b))).unwrap();
    }

    fn publish(p: &mut Pub, m: &str) {
        assert_eq!(p.can_send(), Ok(true));
        p.send(msg(m), true).unwrap();
    }

    fn got(p: &Peer) -> Vec<Msg> {
        std::iter::from_fn(|| p.out.pop()).collect()
    }

    #[test]
    fn rfc29_pub_shall_not_receive() {
        let mut p = Pub::default();
        assert_eq!(p.recv(), Err(RecvError::NotSupported));
        assert!(!p.can_recv());
    }

    #[test]
    fn rfc29_pub_shall_send_only_to_matching_subscribers() {
        let mut p = Pub::default();
        let (a, b, c) = (peer(1, 10), peer(2, 10), peer(3, 10));
        for x in [&a, &b, &c] {
            p.attach(x.clone());
        }
        sub(&a, "weather.");
        sub(&b, "weather.paris");
        sub(&b, "weather."); // overlapping prefixes: b still gets each message once
        sub(&c, "");
        publish(&mut p, "weather.paris 21C");
        publish(&mut p, "weather.oslo -3C");
        publish(&mut p, "sports");
        assert_eq!(
            got(&a),
            vec![msg("weather.paris 21C"), msg("weather.oslo -3C")]
        );
        assert_eq!(
            got(&b),
            vec![msg("weather.paris 21C"), msg("weather.oslo -3C")]
        );
        assert_eq!(got(&c).len(), 3, "the empty prefix matches everything");
    }

    #[test]
    fn rfc29_pub_shall_drop_without_subscribers() {
        let mut p = Pub::default();
        let a = peer(1, 10);
        p.attach(a.clone());
        publish(&mut p, "nobody listens");
        assert!(a.out.is_empty());
    }

    #[test]
    fn rfc29_pub_shall_drop_at_hwm_without_blocking() {
        let mut p = Pub::default();
        let (slow, fast) = (peer(1, 2), peer(2, 100));
        p.attach(slow.clone());
        p.attach(fast.clone());
        sub(&slow, "");
        sub(&fast, "");
        for i in 0..10 {
            publish(&mut p, &i.to_string());
        }
        assert_eq!(slow.out.len(), 2);
        assert_eq!(fast.out.len(), 10);
        assert_eq!(p.drops(1), 8);
        assert_eq!(p.drops(2), 0);
    }

    #[test]
    fn rfc29_pub_shall_apply_cancel() {
        let mut p = Pub::default();
        let a = peer(1, 10);
        p.attach(a.clone());
        sub(&a, "a");
        publish(&mut p, "a1");
        cancel(&a, "a");
        publish(&mut p, "a2");
        assert_eq!(got(&a), vec![msg("a1")]);
    }

    #[test]
    fn pub_subscription_per_peer_is_a_set_like_libzmq() {
        // A libzmq SUB sends every subscribe but only the last cancel.
        let mut p = Pub::default();
        let a = peer(1, 10);
        p.attach(a.clone());
        sub(&a, "t");
        sub(&a, "t");
        cancel(&a, "t");
        publish(&mut p, "t1");
        assert!(a.out.is_empty());
    }

    #[test]
    fn pub_detach_removes_subscriptions() {
        let mut p = Pub::default();
        let (a, b) = (peer(1, 10), peer(2, 10));
        p.attach(a.clone());
        p.attach(b.clone());
        sub(&a, "x");
        sub(&b, "x");
        publish(&mut p, "x1");
        p.detach(1);
        publish(&mut p, "x2");
        assert_eq!(got(&a), vec![msg("x1")]);
        assert_eq!(got(&b), vec![msg("x1"), msg("x2")]);
        assert_eq!(p.core.topic_count(), 1);
        p.detach(2);
        assert_eq!(p.core.topic_count(), 0);
    }

    #[test]
    fn pub_ignores_other_upstream_messages() {
        let mut p = Pub::default();
        let a = peer(1, 10);
        p.attach(a.clone());
        a.inp.push(msg("hello")).unwrap();
        a.inp.push(Msg::One(Frame::new())).unwrap();
        publish(&mut p, "x");
        assert!(a.out.is_empty());
        assert!(a.inp.is_empty());
    }

    #[test]
    fn rfc29_pub_multipart_is_never_split() {
        let mut p = Pub::default();
        let a = peer(1, 10);
        p.attach(a.clone());
        sub(&a, "t");
        let m = Msg::from_frames(vec![Frame::from_static(b"t"), Frame::from_static(b"x")]);
        assert_eq!(p.can_send(), Ok(true));
        p.send(m.clone(), true).unwrap();
        // The second frame is not matched against subscriptions.
        let n = Msg::from_frames(vec![Frame::from_static(b"u"), Frame::from_static(b"t")]);
        p.send(n, true).unwrap();
        assert_eq!(got(&a), vec![m]);
    }

    #[test]
    fn pub_subscriptions_sent_before_attach_apply() {
        let mut p = Pub::default();
        let a = peer(1, 10);
        sub(&a, "early");
        p.attach(a.clone());
        p.send(msg("early bird"), true).unwrap();
        assert_eq!(got(&a), vec![msg("early bird")]);
    }
}
