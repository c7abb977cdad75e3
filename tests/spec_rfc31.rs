//! RFC 31/EXPAIR (https://rfc.zeromq.org/spec/31/): PAIR, one test per SHALL clause
//! (paraphrased above each test with its section). tests/pair.rs covers transports; this
//! file follows the RFC.
//!
//! Written once in `rfc31_suite!`, instantiated for libzmq (`libzmq::*`, the reference) and
//! for ferromq (`ferro::*`, switched by `patterns_instance!` in tests/common).

#[macro_use]
mod common;
#[allow(unused_imports)]
use common::*;

macro_rules! rfc31_suite {
    ([$($arg:expr),*] $(#[$m:meta])*) => {
        use std::time::{Duration, Instant};

        /// A bound PAIR and a connected PAIR with one message through each way.
        fn connected(ctx: &zmq::Context) -> (zmq::Socket, zmq::Socket, String) {
            let bound = sock!(ctx, zmq::PAIR);
            let ep = bind_any!(bound);
            let peer = sock!(ctx, zmq::PAIR);
            peer.connect(&ep).unwrap();
            peer.send("ping", 0).unwrap();
            assert_eq!(bound.recv_bytes(0).unwrap(), b"ping");
            bound.send("pong", 0).unwrap();
            assert_eq!(peer.recv_bytes(0).unwrap(), b"pong");
            (bound, peer, ep)
        }

        // RFC 31 "The PAIR Socket Type", general: MAY both send and receive messages; SHALL
        // maintain a double queue (both directions independently: each side can send a burst
        // before the other reads).
        #[test]
        $(#[$m])*
        fn rfc31_pair_shall_send_and_receive_with_independent_queues() {
            run(|| {
                let ctx = zmq::Context::new();
                let (a, b, _) = connected(&ctx);
                for i in 0..100u8 {
                    a.send(&[b'a', i][..], 0).unwrap();
                    b.send(&[b'b', i][..], 0).unwrap();
                }
                for i in 0..100u8 {
                    assert_eq!(b.recv_bytes(0).unwrap(), vec![b'a', i]);
                    assert_eq!(a.recv_bytes(0).unwrap(), vec![b'b', i]);
                }
            });
        }

        // RFC 31 "The PAIR Socket Type", general: MAY be connected to at most one PAIR peer
        // (libzmq: a second connection is refused; nothing it sends is delivered, nothing
        // is sent to it).
        #[test]
        $(#[$m])*
        fn rfc31_pair_shall_not_accept_second_peer() {
            run(|| {
                let ctx = zmq::Context::new();
                let (bound, first, ep) = connected(&ctx);
                let intruder = sock!(ctx, zmq::PAIR);
                intruder.connect(&ep).unwrap();
                intruder.send("intruder", 0).unwrap(); // queued on its own side
                first.send("legit", 0).unwrap();
                assert_eq!(bound.recv_bytes(0).unwrap(), b"legit");
                bound.send("reply", 0).unwrap();
                assert_eq!(first.recv_bytes(0).unwrap(), b"reply", "the first peer stays the peer");
                bound.set_rcvtimeo(300).unwrap();
                assert_eq!(bound.recv_bytes(0), Err(zmq::Error::EAGAIN), "intruder's message delivered");
                intruder.set_rcvtimeo(300).unwrap();
                assert_eq!(intruder.recv_bytes(0), Err(zmq::Error::EAGAIN));
            });
        }

        // RFC 31 "The PAIR Socket Type", general: if the peer disconnects, the PAIR SHALL
        // destroy its double queue (libzmq: and a new peer can then attach).
        #[test]
        $(#[$m])*
        fn rfc31_pair_shall_accept_new_peer_after_first_disconnects() {
            run(|| {
                let ctx = zmq::Context::new();
                let (bound, first, ep) = connected(&ctx);
                drop(first);
                // libzmq refuses (and leaves stalled) a peer that attaches before the bound
                // PAIR has finished detaching the first one, and that moment is not
                // observable: each attempt uses a fresh PAIR, until one gets through.
                let start = Instant::now();
                let second = loop {
                    assert!(start.elapsed() < Duration::from_secs(10), "second peer never accepted");
                    let candidate = sock!(ctx, zmq::PAIR);
                    candidate.connect(&ep).unwrap();
                    candidate.send("probe", zmq::DONTWAIT).unwrap();
                    if bound.poll(zmq::POLLIN, 200).unwrap() > 0 {
                        break candidate;
                    }
                };
                assert_eq!(bound.recv_bytes(0).unwrap(), b"probe");
                bound.send("welcome", 0).unwrap();
                assert_eq!(second.recv_bytes(0).unwrap(), b"welcome");
            });
        }

        // RFC 31 "The PAIR Socket Type", outgoing: SHALL block on sending, or return a
        // suitable error, when it has no available peer.
        #[test]
        $(#[$m])*
        fn rfc31_pair_shall_block_when_no_peer() {
            run(|| {
                let ctx = zmq::Context::new();
                let pair = sock!(ctx, zmq::PAIR);
                assert_eq!(pair.send("x", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                bind_any!(pair);
                pair.set_sndtimeo(200).unwrap();
                let t = Instant::now();
                assert_eq!(pair.send("x", 0), Err(zmq::Error::EAGAIN));
                assert!(t.elapsed() >= Duration::from_millis(150));
                assert_eq!(pair.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
            });
        }

        // RFC 31 "The PAIR Socket Type", general: SHALL create a double queue when
        // initiating an outgoing connection and keep it whether or not the connection is
        // established.
        #[test]
        $(#[$m])*
        fn rfc31_pair_shall_queue_before_connection_is_established() {
            run(|| {
                let ctx = zmq::Context::new();
                let ep = format!("tcp://127.0.0.1:{}", free_port());
                let early = sock!(ctx, zmq::PAIR);
                early.set_reconnect_ivl(20).unwrap();
                early.connect(&ep).unwrap();
                for i in 0..3u8 {
                    early.send(&[i][..], zmq::DONTWAIT).expect("queued before connection");
                }
                let bound = sock!(ctx, zmq::PAIR);
                bound.bind(&ep).unwrap();
                for i in 0..3u8 {
                    assert_eq!(bound.recv_bytes(0).unwrap(), vec![i]);
                }
            });
        }

        // RFC 31 "The PAIR Socket Type", outgoing: SHALL consider its peer available only
        // when its outgoing queue is not full; SHALL not accept further messages then; SHALL
        // NOT discard messages that it cannot queue.
        #[test]
        $(#[$m])*
        fn rfc31_pair_shall_not_discard_messages_it_cannot_queue() {
            run(|| {
                let ctx = zmq::Context::new();
                let bound = sock!(ctx, zmq::PAIR);
                bound.set_rcvhwm(5).unwrap();
                let ep = bind_any!(bound);
                let peer = sock!(ctx, zmq::PAIR);
                peer.set_sndhwm(5).unwrap();
                peer.connect(&ep).unwrap();
                let body = payload(16 * 1024, 2);
                let mut sent = 0u32;
                loop {
                    let mut m = sent.to_be_bytes().to_vec();
                    m.extend_from_slice(&body);
                    match peer.send(&m[..], zmq::DONTWAIT) {
                        Ok(()) => sent += 1,
                        Err(zmq::Error::EAGAIN) => break,
                        Err(e) => panic!("send: {e:?}"),
                    }
                    assert!(sent < 1_000_000, "PAIR never pushed back");
                }
                for i in 0..sent {
                    let m = bound.recv_bytes(0).unwrap_or_else(|e| panic!("message {i}/{sent}: {e:?}"));
                    assert_eq!(&m[..4], &i.to_be_bytes()[..]);
                }
                assert_eq!(bound.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
            });
        }

        // RFC 31 "The PAIR Socket Type", general: SHALL not filter or modify outgoing or
        // incoming messages in any way.
        #[test]
        $(#[$m])*
        fn rfc31_pair_shall_not_modify_messages() {
            run(|| {
                let ctx = zmq::Context::new();
                let (a, b, _) = connected(&ctx);
                let big = payload(200_000, 9);
                let parts: Vec<&[u8]> = vec![b"", b"\x00", &big[..], b"\x01topic", b""];
                a.send_multipart(parts.iter().copied(), 0).unwrap();
                assert_eq!(b.recv_multipart(0).unwrap(), frames(&parts));
                b.send_multipart(parts.iter().rev().copied(), 0).unwrap();
                let rev: Vec<&[u8]> = parts.iter().rev().copied().collect();
                assert_eq!(a.recv_multipart(0).unwrap(), frames(&rev));
            });
        }
    };
}

libzmq_instance!(libzmq, rfc31_suite);
patterns_instance!(ferro, rfc31_suite);
