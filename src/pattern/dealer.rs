//! DEALER (RFC 28): load-balances outgoing messages over its peers and fair-queues incoming
//! ones, with no envelope of its own. Also the base of [`super::req::Req`], as in libzmq.

use std::sync::Arc;

use super::fq::Fq;
use super::lb::Lb;
use super::Frame;
use super::{Msg, OptError, Pattern, PatternOpt, Peer, RecvError, SendError};
use crate::metadata::Metadata;

/// DEALER = [`Lb`] + [`Fq`].
#[derive(Debug, Default)]
pub struct Dealer {
    lb: Lb,
    fq: Fq,
    probe: bool,
}

impl Dealer {
    /// Sends to the next peer with room (see [`Lb::send`]); returns the id of the peer
    /// chosen, `None` if the message was dropped for want of any peer.
    pub fn send_to_any(&mut self, msg: Msg, force: bool) -> Result<Option<u64>, SendError> {
        self.lb.send(msg, force)
    }

    /// The next message in fair order, with the id of the peer it came from.
    pub fn recv_from(&mut self) -> Option<(Msg, u64, Option<Arc<Metadata>>)> {
        self.fq.recv()
    }
}

impl Pattern for Dealer {
    fn attach(&mut self, peer: Peer) -> bool {
        if self.probe {
            // PROBE_ROUTER: an empty message lets a ROUTER peer learn our routing id.
            peer.out.force_push(Msg::One(Frame::new()));
        }
        self.lb.attach(peer.clone());
        self.fq.attach(peer);
        true
    }
    fn detach(&mut self, id: u64) {
        // Fq drops the peer once its closed inbound pipe is drained.
        self.lb.detach(id);
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
    fn set_opt(&mut self, opt: PatternOpt<'_>) -> Result<(), OptError> {
        match opt {
            PatternOpt::ProbeRouter(on) => {
                self.probe = on;
                Ok(())
            }
            _ => Err(OptError::NotSupported),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::test_util::{msg, peer};

    #[test]
    fn rfc28_dealer_shall_round_robin_and_fair_queue() {
        let mut d = Dealer::default();
        let (a, b) = (peer(1, 10), peer(2, 10));
        d.attach(a.clone());
        d.attach(b.clone());
        d.send(msg("1"), false).unwrap();
        d.send(msg("2"), false).unwrap();
        assert_eq!(a.out.pop(), Some(msg("1")));
        assert_eq!(b.out.pop(), Some(msg("2")));
        a.inp.push(msg("x")).unwrap();
        a.inp.push(msg("y")).unwrap();
        b.inp.push(msg("z")).unwrap();
        let got: Vec<Msg> = (0..3).map(|_| d.recv().unwrap().unwrap().0).collect();
        assert_eq!(got, vec![msg("x"), msg("z"), msg("y")]);
    }

    #[test]
    fn rfc28_dealer_shall_block_without_peers() {
        let mut d = Dealer::default();
        assert_eq!(d.can_send(), Ok(false));
        assert!(matches!(
            d.send(msg("x"), false),
            Err(SendError::WouldBlock(_))
        ));
    }

    #[test]
    fn dealer_probe_router_sends_empty_message_on_attach() {
        let mut d = Dealer::default();
        d.set_opt(PatternOpt::ProbeRouter(true)).unwrap();
        let a = peer(1, 10);
        d.attach(a.clone());
        assert_eq!(a.out.pop(), Some(Msg::One(Frame::new())));
    }

    #[test]
    fn dealer_multipart_is_never_split() {
        let mut d = Dealer::default();
        let a = peer(1, 10);
        d.attach(a.clone());
        let m = Msg::from_frames(vec![Frame::from_static(b"1"), Frame::from_static(b"2")]);
        d.send(m.clone(), false).unwrap();
        assert_eq!(a.out.pop(), Some(m));
    }
}
