//! PUSH (RFC 30): load-balances messages to PULL peers; never receives.

use std::sync::Arc;

use super::lb::Lb;
use super::{Msg, Pattern, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// PUSH = [`Lb`].
#[derive(Debug, Default)]
pub struct Push {
    lb: Lb,
}

impl Pattern for Push {
    fn attach(&mut self, peer: Peer) -> bool {
        self.lb.attach(peer);
        true
    }
    fn detach(&mut self, id: u64) {
        self.lb.detach(id);
    }
    fn can_send(&mut self) -> Result<bool, SendError> {
        Ok(self.lb.can_send())
    }
    fn send(&mut self, msg: Msg, force: bool) -> Result<(), SendError> {
        self.lb.send(msg, force).map(|_| ())
    }
    fn recv(&mut self) -> Result<Option<(Msg, Option<Arc<Metadata>>)>, RecvError> {
        Err(RecvError::NotSupported)
    }
    fn can_recv(&mut self) -> bool {
        false
    }
}
