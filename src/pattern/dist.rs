//! Distributor: fans one whole message out to a set of peers (RFC 29 for PUB and XPUB, and
//! the upstream direction of XSUB).
//!
//! A peer whose pipe is full (or closed) simply does not get the message: the distributor
//! never blocks and never waits for a slow subscriber, as libzmq's `dist_t` in its default
//! (lossy) mode. Each such drop is counted per peer. A multipart message is one [`Msg`], so
//! a peer gets all of its frames or none.

use super::{Msg, Peer};

#[derive(Debug)]
struct Slot {
    peer: Peer,
    drops: u64,
}

/// Fan-out to peers, dropping per peer at its HWM.
#[derive(Debug, Default)]
pub struct Dist {
    /// Sorted by peer id, so [`Dist::send_to`] can find peers by id.
    slots: Vec<Slot>,
    /// Drops of peers already detached.
    gone_drops: u64,
    /// Reused by [`Dist::send_to`] (no allocation per message).
    targets: Vec<usize>,
}

impl Dist {
    /// Adds a peer.
    pub fn attach(&mut self, peer: Peer) {
        match self.find(peer.id) {
            Ok(i) => self.slots[i].peer = peer,
            Err(i) => self.slots.insert(i, Slot { peer, drops: 0 }),
        }
    }

    /// Removes a peer (its drop count still counts in [`Dist::total_drops`]).
    pub fn detach(&mut self, id: u64) {
        if let Ok(i) = self.find(id) {
            let slot = self.slots.remove(i);
            self.gone_drops += slot.drops;
        }
    }

    fn find(&self, id: u64) -> Result<usize, usize> {
        self.slots.binary_search_by_key(&id, |s| s.peer.id)
    }

    /// The peer with this id, if attached.
    pub fn peer(&self, id: u64) -> Option<&Peer> {
        self.find(id).ok().map(|i| &self.slots[i].peer)
    }

    /// Calls `f` for each attached peer, in id order.
    pub fn for_each_peer(&self, mut f: impl FnMut(&Peer)) {
        for s in &self.slots {
            f(&s.peer);
        }
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True with no peer.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Messages the peer `id` did not get because its pipe was full or closed.
    pub fn drops(&self, id: u64) -> u64 {
        self.find(id).map_or(0, |i| self.slots[i].drops)
    }

    /// Messages dropped over all peers, detached ones included.
    pub fn total_drops(&self) -> u64 {
        self.gone_drops + self.slots.iter().map(|s| s.drops).sum::<u64>()
    }

    /// Pushes `msg` to one slot, counting a drop if it does not fit. (Senders hand the last
    /// recipient the message itself and the others a clone: frames are reference-counted,
    /// so a clone copies no payload.)
    fn offer(slot: &mut Slot, msg: Msg) -> bool {
        match slot.peer.out.push(msg) {
            Ok(()) => true,
            Err(_) => {
                slot.drops += 1;
                false
            }
        }
    }

    /// Sends `msg` to every peer with room; returns how many peers got it.
    pub fn send_to_all(&mut self, msg: Msg) -> usize {
        let n = self.slots.len();
        let mut sent = 0;
        let mut msg = Some(msg);
        for (k, slot) in self.slots.iter_mut().enumerate() {
            let m = if k + 1 == n { msg.take() } else { msg.clone() };
            if let Some(m) = m {
                sent += usize::from(Self::offer(slot, m));
            }
        }
        sent
    }

    /// Sends `msg` to the peers in `ids` (each at most once; unknown ids are skipped) that
    /// have room; returns how many got it.
    pub fn send_to(&mut self, msg: Msg, ids: &[u64]) -> usize {
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        targets.extend(ids.iter().filter_map(|&id| self.find(id).ok()));
        targets.sort_unstable();
        targets.dedup();
        let n = targets.len();
        let mut sent = 0;
        let mut msg = Some(msg);
        for (k, &i) in targets.iter().enumerate() {
            let m = if k + 1 == n { msg.take() } else { msg.clone() };
            if let Some(m) = m {
                sent += usize::from(Self::offer(&mut self.slots[i], m));
            }
        }
        self.targets = targets;
        sent
    }

    /// Queues `msg` to every peer even above its HWM (subscriptions, which must never be
    /// lost to a full pipe); returns how many open peers got it.
    pub fn force_to_all(&mut self, msg: &Msg) -> usize {
        let mut sent = 0;
        for slot in &self.slots {
            if !slot.peer.out.is_closed() {
                slot.peer.out.force_push(msg.clone());
                sent += 1;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};
    use crate::pattern::Frame;

    #[test]
    fn rfc29_full_subscriber_drops_others_still_get_it() {
        let mut d = Dist::default();
        let (a, b, c) = (peer(1, 1), peer(2, 10), peer(3, 10));
        d.attach(a.clone());
        d.attach(b.clone());
        d.attach(c.clone());
        assert_eq!(d.send_to_all(msg("one")), 3);
        // a is at its HWM: it misses the second message, b and c do not.
        assert_eq!(d.send_to_all(msg("two")), 2);
        assert_eq!(d.drops(1), 1);
        assert_eq!(d.drops(2), 0);
        assert_eq!(a.out.len(), 1);
        assert_eq!(b.out.len(), 2);
        assert_eq!(c.out.pop(), Some(msg("one")));
        assert_eq!(c.out.pop(), Some(msg("two")));
        d.detach(1);
        assert_eq!(d.total_drops(), 1);
    }

    #[test]
    fn rfc29_multipart_is_never_split() {
        let mut d = Dist::default();
        let a = peer(1, 10);
        d.attach(a.clone());
        let m = Msg::from_frames(vec![Frame::from_static(b"t"), Frame::from_static(b"body")]);
        d.send_to_all(m.clone());
        assert_eq!(a.out.pop(), Some(m));
    }

    #[test]
    fn send_to_selected_ids_once_each() {
        let mut d = Dist::default();
        let peers: Vec<_> = (1..=3).map(|i| peer(i, 10)).collect();
        for p in peers.iter().rev() {
            d.attach(p.clone());
        }
        assert_eq!(d.send_to(msg("x"), &[3, 1, 3, 99]), 2);
        assert_eq!(peers[0].out.len(), 1);
        assert_eq!(peers[1].out.len(), 0);
        assert_eq!(peers[2].out.len(), 1);
    }

    #[test]
    fn forced_messages_pass_the_hwm() {
        let mut d = Dist::default();
        let a = peer(1, 1);
        d.attach(a.clone());
        d.send_to_all(msg("fill"));
        assert_eq!(d.force_to_all(&msg("sub")), 1);
        assert_eq!(a.out.len(), 2);
        a.out.close();
        assert_eq!(d.force_to_all(&msg("sub")), 0);
    }
}
