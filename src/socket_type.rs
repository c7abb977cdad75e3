//! Socket types, named as in the `zmq` crate (and libzmq).

use std::fmt;

/// The type of a socket: decides its messaging pattern (RFC 28, 29, 30, 31).
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// Exclusive pair (RFC 31).
    PAIR,
    /// Publisher (RFC 29).
    PUB,
    /// Subscriber (RFC 29).
    SUB,
    /// Requester (RFC 28).
    REQ,
    /// Replier (RFC 28).
    REP,
    /// Asynchronous requester (RFC 28).
    DEALER,
    /// Asynchronous replier with explicit routing (RFC 28).
    ROUTER,
    /// Pipeline downstream: receives (RFC 30).
    PULL,
    /// Pipeline upstream: sends (RFC 30).
    PUSH,
    /// Publisher that sees subscriptions (RFC 29).
    XPUB,
    /// Subscriber that sends raw subscriptions (RFC 29).
    XSUB,
    /// Raw TCP stream. Not supported by ferromq: creating one fails with `EINVAL`.
    STREAM,
}

impl SocketType {
    /// The libzmq numeric value of this type (`ZMQ_PAIR` = 0 ... `ZMQ_STREAM` = 11).
    pub fn to_raw(self) -> i32 {
        match self {
            SocketType::PAIR => 0,
            SocketType::PUB => 1,
            SocketType::SUB => 2,
            SocketType::REQ => 3,
            SocketType::REP => 4,
            SocketType::DEALER => 5,
            SocketType::ROUTER => 6,
            SocketType::PULL => 7,
            SocketType::PUSH => 8,
            SocketType::XPUB => 9,
            SocketType::XSUB => 10,
            SocketType::STREAM => 11,
        }
    }

    /// The type with libzmq numeric value `raw`, if any.
    pub fn from_raw(raw: i32) -> Option<SocketType> {
        Some(match raw {
            0 => SocketType::PAIR,
            1 => SocketType::PUB,
            2 => SocketType::SUB,
            3 => SocketType::REQ,
            4 => SocketType::REP,
            5 => SocketType::DEALER,
            6 => SocketType::ROUTER,
            7 => SocketType::PULL,
            8 => SocketType::PUSH,
            9 => SocketType::XPUB,
            10 => SocketType::XSUB,
            11 => SocketType::STREAM,
            _ => return None,
        })
    }

    /// The name used in the ZMTP `Socket-Type` property ("PAIR", "PUB", ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SocketType::PAIR => "PAIR",
            SocketType::PUB => "PUB",
            SocketType::SUB => "SUB",
            SocketType::REQ => "REQ",
            SocketType::REP => "REP",
            SocketType::DEALER => "DEALER",
            SocketType::ROUTER => "ROUTER",
            SocketType::PULL => "PULL",
            SocketType::PUSH => "PUSH",
            SocketType::XPUB => "XPUB",
            SocketType::XSUB => "XSUB",
            SocketType::STREAM => "STREAM",
        }
    }

    /// Parses a ZMTP `Socket-Type` property value (exact, upper case as RFC 37 defines).
    pub fn from_name(name: &[u8]) -> Option<SocketType> {
        ALL.iter().copied().find(|t| t.as_str().as_bytes() == name)
    }

    /// Whether a peer of type `peer` may connect to a socket of this type
    /// (the table of RFC 37, section "The Socket-Type Property").
    pub fn is_compatible_with(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (PAIR, PAIR)
                | (PUB, SUB)
                | (PUB, XSUB)
                | (XPUB, SUB)
                | (XPUB, XSUB)
                | (SUB, PUB)
                | (SUB, XPUB)
                | (XSUB, PUB)
                | (XSUB, XPUB)
                | (REQ, REP)
                | (REQ, ROUTER)
                | (REP, REQ)
                | (REP, DEALER)
                | (DEALER, REP)
                | (DEALER, DEALER)
                | (DEALER, ROUTER)
                | (ROUTER, REQ)
                | (ROUTER, DEALER)
                | (ROUTER, ROUTER)
                | (PUSH, PULL)
                | (PULL, PUSH)
        )
    }
}

const ALL: [SocketType; 12] = [
    SocketType::PAIR,
    SocketType::PUB,
    SocketType::SUB,
    SocketType::REQ,
    SocketType::REP,
    SocketType::DEALER,
    SocketType::ROUTER,
    SocketType::PULL,
    SocketType::PUSH,
    SocketType::XPUB,
    SocketType::XSUB,
    SocketType::STREAM,
];

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_names_round_trip() {
        for t in ALL {
            assert_eq!(SocketType::from_raw(t.to_raw()), Some(t));
            assert_eq!(SocketType::from_name(t.as_str().as_bytes()), Some(t));
        }
        assert_eq!(SocketType::from_raw(12), None);
        assert_eq!(SocketType::from_name(b"push"), None);
    }

    #[test]
    fn compatibility_is_symmetric() {
        for a in ALL {
            for b in ALL {
                assert_eq!(a.is_compatible_with(b), b.is_compatible_with(a), "{a} {b}");
            }
        }
        assert!(SocketType::PUSH.is_compatible_with(SocketType::PULL));
        assert!(!SocketType::PUSH.is_compatible_with(SocketType::PUSH));
        assert!(!SocketType::PAIR.is_compatible_with(SocketType::PUSH));
    }
}
