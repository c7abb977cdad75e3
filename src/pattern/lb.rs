//! Load balancer: sends each message to the next peer, round-robin, skipping peers whose
//! pipe is full (RFC 30 for PUSH, RFC 28 for DEALER and REQ).

use super::rotation::Rotation;
use super::{Msg, Peer, SendError};

/// Round-robin over peers with room.
#[derive(Debug, Default)]
pub struct Lb {
    peers: Rotation,
}

impl Lb {
    /// Adds a peer at the end of the rotation.
    pub fn attach(&mut self, peer: Peer) {
        self.peers.push(peer);
    }

    /// Removes a peer; its queued outbound messages are no longer this socket's concern.
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

    /// True if some peer has room (peers without room will wake the socket when they do).
    pub fn can_send(&mut self) -> bool {
        // Ask every peer: each full one arms its wake-up.
        let mut any = false;
        for p in self.peers.iter() {
            any |= p.out.has_room();
        }
        any
    }

    /// Sends `msg` to the next peer with room. With `force` and no peer with room, queues
    /// it on the next peer anyway (its first frame was admitted); with no peer at all the
    /// message is dropped, as libzmq drops the rest of a message whose peer vanished.
    /// Returns the id of the peer chosen.
    pub fn send(&mut self, msg: Msg, force: bool) -> Result<Option<u64>, SendError> {
        let n = self.peers.len();
        let mut msg = msg;
        for k in 0..n {
            let i = self.peers.index(k);
            let Some(p) = self.peers.get(i) else {
                break;
            };
            match p.out.push(msg) {
                Ok(()) => {
                    let id = p.id;
                    self.peers.passed(i);
                    return Ok(Some(id));
                }
                Err(back) => msg = back,
            }
        }
        if force {
            let i = self.peers.index(0);
            if let Some(p) = self.peers.get(i) {
                p.out.force_push(msg);
                let id = p.id;
                self.peers.passed(i);
                return Ok(Some(id));
            }
            return Ok(None);
        }
        Err(SendError::WouldBlock(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};

    #[test]
    fn round_robin_skips_full_peers() {
        let mut lb = Lb::default();
        let (a, b, c) = (peer(1, 2), peer(2, 1), peer(3, 2));
        lb.attach(a.clone());
        lb.attach(b.clone());
        lb.attach(c.clone());
        let mut order = Vec::new();
        for i in 0..5 {
            order.push(lb.send(msg(&i.to_string()), false).unwrap().unwrap());
        }
        // b holds only one message, so the second round skips it.
        assert_eq!(order, vec![1, 2, 3, 1, 3]);
        assert!(!lb.can_send());
        assert!(matches!(
            lb.send(msg("x"), false),
            Err(SendError::WouldBlock(_))
        ));
        // Forced (admitted multipart) still goes somewhere.
        assert!(lb.send(msg("y"), true).unwrap().is_some());
        b.out.pop();
        assert!(lb.can_send());
        assert_eq!(lb.send(msg("z"), false).unwrap(), Some(2));
    }

    #[test]
    fn no_peer_blocks_unless_forced() {
        let mut lb = Lb::default();
        assert!(!lb.can_send());
        assert!(matches!(
            lb.send(msg("x"), false),
            Err(SendError::WouldBlock(_))
        ));
        assert_eq!(lb.send(msg("x"), true).unwrap(), None);
    }

    #[test]
    fn detach_keeps_rotation_valid() {
        let mut lb = Lb::default();
        for id in 1..=3 {
            lb.attach(peer(id, 10));
        }
        assert_eq!(lb.send(msg("a"), false).unwrap(), Some(1));
        assert_eq!(lb.send(msg("b"), false).unwrap(), Some(2));
        lb.detach(1);
        assert_eq!(lb.send(msg("c"), false).unwrap(), Some(3));
        lb.detach(3);
        assert_eq!(lb.send(msg("d"), false).unwrap(), Some(2));
        lb.detach(2);
        assert!(lb.is_empty());
    }
}
