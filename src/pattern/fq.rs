//! Fair queue: receives from all peers in turn, one whole message at a time, so a busy peer
//! cannot starve the others (RFC 30 for PULL, RFC 28 for DEALER and REP).

use std::sync::Arc;

use super::rotation::Rotation;
use super::{Msg, Peer};
use crate::metadata::Metadata;

/// Round-robin over peers' inbound pipes.
#[derive(Debug, Default)]
pub struct Fq {
    peers: Rotation,
}

impl Fq {
    /// Adds a peer.
    pub fn attach(&mut self, peer: Peer) {
        self.peers.push(peer);
    }

    /// Forgets a peer at once, dropping what it queued. (A peer whose connection merely
    /// closed is not detached this way: its queued messages are still delivered and it is
    /// removed once drained.)
    pub fn detach(&mut self, id: u64) {
        self.peers.remove(id);
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True with no peer.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The next message in fair order, with its peer's id and metadata.
    pub fn recv(&mut self) -> Option<(Msg, u64, Option<Arc<Metadata>>)> {
        let mut k = 0;
        while k < self.peers.len() {
            let i = self.peers.index(k);
            let Some(p) = self.peers.get(i) else {
                break;
            };
            if let Some(m) = p.inp.pop() {
                let out = (m, p.id, p.meta.clone());
                self.peers.passed(i);
                return Some(out);
            }
            if p.inp.is_done() {
                self.peers.remove_at(i);
                continue; // the same position now holds the next peer
            }
            k += 1;
        }
        None
    }

    /// True if some peer has a message queued (peers found empty will wake the socket).
    pub fn can_recv(&self) -> bool {
        self.peers.iter().any(|p| p.inp.is_readable())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};

    #[test]
    fn fair_across_peers() {
        let mut fq = Fq::default();
        let peers: Vec<_> = (1..=3).map(|i| peer(i, 100)).collect();
        for p in &peers {
            fq.attach(p.clone());
        }
        for _ in 0..10 {
            peers[0].inp.push(msg("a")).unwrap();
        }
        peers[1].inp.push(msg("b")).unwrap();
        peers[2].inp.push(msg("c")).unwrap();
        let first: Vec<u64> = (0..3).map(|_| fq.recv().unwrap().1).collect();
        assert_eq!(first, vec![1, 2, 3]);
        assert_eq!(fq.recv().unwrap().1, 1);
    }

    #[test]
    fn closed_peer_is_drained_then_removed() {
        let mut fq = Fq::default();
        let a = peer(1, 10);
        fq.attach(a.clone());
        a.inp.push(msg("last")).unwrap();
        a.inp.close();
        assert!(fq.can_recv());
        assert_eq!(fq.recv().unwrap().0, msg("last"));
        assert!(fq.recv().is_none());
        assert!(fq.is_empty());
    }
}
