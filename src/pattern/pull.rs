//! PULL (RFC 30): fair-queues messages from PUSH peers; never sends.

use std::sync::Arc;

use super::fq::Fq;
use super::{Msg, Pattern, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// PULL = [`Fq`].
#[derive(Debug, Default)]
pub struct Pull {
    fq: Fq,
}

impl Pattern for Pull {
    fn attach(&mut self, peer: Peer) -> bool {
        self.fq.attach(peer);
        true
    }
    fn detach(&mut self, _id: u64) {
        // Queued messages of a closed connection are still delivered; Fq drops the peer
        // once its pipe is closed and drained.
    }
    fn can_send(&mut self) -> Result<bool, SendError> {
        Err(SendError::NotSupported)
    }
    fn send(&mut self, _msg: Msg, _force: bool) -> Result<(), SendError> {
        Err(SendError::NotSupported)
    }
    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        Ok(self.fq.recv().map(|(m, _, meta)| (m, meta)))
    }
    fn can_recv(&mut self) -> bool {
        self.fq.can_recv()
    }
}
