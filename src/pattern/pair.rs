//! PAIR (RFC 31): exactly one peer at a time, both directions.

use std::sync::Arc;

use super::fq::Fq;
use super::lb::Lb;
use super::{Msg, Pattern, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// PAIR = [`Lb`] + [`Fq`] restricted to one peer: a second peer is refused while the first
/// is attached, as libzmq does.
#[derive(Debug, Default)]
pub struct Pair {
    peer: Option<u64>,
    lb: Lb,
    fq: Fq,
}

impl Pattern for Pair {
    fn attach(&mut self, peer: Peer) -> bool {
        if self.peer.is_some() {
            return false;
        }
        self.peer = Some(peer.id);
        self.lb.attach(peer.clone());
        self.fq.attach(peer);
        true
    }
    fn detach(&mut self, id: u64) {
        if self.peer == Some(id) {
            self.peer = None;
            self.lb.detach(id);
        }
    }
    fn can_send(&mut self) -> Result<bool, SendError> {
        Ok(self.lb.can_send())
    }
    fn send(&mut self, msg: Msg, force: bool) -> Result<(), SendError> {
        self.lb.send(msg, force).map(|_| ())
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

    #[test]
    fn second_peer_refused_until_first_detaches() {
        let mut p = Pair::default();
        assert!(p.attach(peer(1, 10)));
        assert!(!p.attach(peer(2, 10)));
        p.detach(1);
        assert!(p.attach(peer(3, 10)));
        p.send(msg("x"), false).unwrap();
    }
}
