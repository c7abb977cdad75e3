//! [`Rotation`]: peers in round-robin order, shared by the load balancer and the fair
//! queue, keeping "whose turn is next" valid as peers come and go.

use super::Peer;

/// Peers and the index of the one whose turn comes next.
#[derive(Debug, Default)]
pub struct Rotation {
    peers: Vec<Peer>,
    next: usize,
}

impl Rotation {
    /// Adds a peer at the end of the rotation.
    pub fn push(&mut self, peer: Peer) {
        self.peers.push(peer);
    }

    /// Removes the peer with this id, if present; the turn stays with the peer it was on.
    pub fn remove(&mut self, id: u64) -> bool {
        match self.peers.iter().position(|p| p.id == id) {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Removes the peer at `i` (an index from [`Rotation::index`]).
    pub fn remove_at(&mut self, i: usize) {
        self.peers.remove(i);
        if self.next > i {
            self.next -= 1;
        }
        if self.next >= self.peers.len() {
            self.next = 0;
        }
    }

    /// The index of the `k`-th peer counting from the one whose turn is next.
    pub fn index(&self, k: usize) -> usize {
        // A subtraction instead of `%` on the per-message path (callers pass k < len, and
        // `next < len`); the division only for out-of-range arguments.
        let n = self.peers.len().max(1);
        let j = self.next + k;
        if j < n {
            j
        } else if j - n < n {
            j - n
        } else {
            j % n
        }
    }

    /// The peer at index `i`.
    pub fn get(&self, i: usize) -> Option<&Peer> {
        self.peers.get(i)
    }

    /// Hands the turn to the peer after index `i`.
    pub fn passed(&mut self, i: usize) {
        let j = i + 1;
        self.next = if j < self.peers.len() { j } else { 0 };
    }

    /// Every peer, in storage order.
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter()
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True with no peer.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::peer;

    #[test]
    fn index_wraps_like_modulo() {
        for len in 1..6u64 {
            let mut r = Rotation::default();
            for id in 0..len {
                r.push(peer(id, 1));
            }
            let n = len as usize;
            for start in 0..n {
                r.next = start;
                for k in 0..3 * n {
                    assert_eq!(r.index(k), (start + k) % n, "len {len} next {start} k {k}");
                }
                r.passed(start);
                assert_eq!(r.next, (start + 1) % n);
            }
        }
        let empty = Rotation::default();
        assert_eq!(empty.index(0), 0);
    }

    #[test]
    fn removal_keeps_the_turn_on_the_same_peer() {
        let mut r = Rotation::default();
        for id in 1..=4 {
            r.push(peer(id, 1));
        }
        r.passed(r.index(1)); // the turn is now on peer 3 (index 2)
        assert_eq!(r.get(r.index(0)).map(|p| p.id), Some(3));
        assert!(r.remove(1)); // an earlier peer leaves
        assert_eq!(r.get(r.index(0)).map(|p| p.id), Some(3));
        assert!(r.remove(3)); // the peer whose turn it was leaves: the next one gets it
        assert_eq!(r.get(r.index(0)).map(|p| p.id), Some(4));
        assert!(r.remove(4)); // the last one leaves: the turn wraps
        assert_eq!(r.get(r.index(0)).map(|p| p.id), Some(2));
        assert!(!r.remove(9));
    }
}
