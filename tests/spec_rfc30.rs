//! RFC 30/PIPELINE (https://rfc.zeromq.org/spec/30/): PUSH and PULL, one test per SHALL
//! clause (paraphrased above each test with its section). tests/pipeline.rs covers the
//! transport-level behaviour of the same sockets; this file follows the RFC.
//!
//! Written once in `rfc30_suite!`, instantiated for libzmq (`libzmq::*`, the reference) and
//! for ferromq (`ferro::*`, switched by `patterns_instance!` in tests/common).

#[macro_use]
mod common;
#[allow(unused_imports)]
use common::*;

macro_rules! rfc30_suite {
    ([$($arg:expr),*] $(#[$m:meta])*) => {
        use std::time::{Duration, Instant};

        /// How many times consecutive items of `senders` differ.
        fn switches(senders: &[u8]) -> usize {
            senders.windows(2).filter(|w| w[0] != w[1]).count()
        }

        // RFC 30 "The PUSH Socket Type", outgoing: SHALL route outgoing messages to
        // available peers using a round-robin strategy.
        #[test]
        $(#[$m])*
        fn rfc30_push_shall_round_robin() {
            run(|| {
                let ctx = zmq::Context::new();
                let pulls: Vec<zmq::Socket> = (0..3).map(|_| sock!(ctx, zmq::PULL)).collect();
                let push = sock!(ctx, zmq::PUSH);
                // The PUSH connects: its three queues exist at once, in connect order.
                for p in &pulls {
                    push.connect(&bind_any!(p)).unwrap();
                }
                for i in 0..30u8 {
                    push.send(&[i][..], 0).unwrap();
                }
                let mut firsts = Vec::new();
                for p in &pulls {
                    let got: Vec<u8> = (0..10).map(|_| p.recv_bytes(0).unwrap()[0]).collect();
                    let want: Vec<u8> = (0..10).map(|j| got[0] + 3 * j).collect();
                    assert_eq!(got, want, "every third message, in order");
                    firsts.push(got[0]);
                }
                firsts.sort();
                assert_eq!(firsts, vec![0, 1, 2]);
            });
        }

        // RFC 30 "The PUSH Socket Type", outgoing: SHALL block on sending, or return a
        // suitable error, when it has no available peers.
        #[test]
        $(#[$m])*
        fn rfc30_push_shall_block_when_no_peers() {
            run(|| {
                let ctx = zmq::Context::new();
                let push = sock!(ctx, zmq::PUSH);
                assert_eq!(push.send("x", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                push.set_sndtimeo(200).unwrap();
                let t = Instant::now();
                assert_eq!(push.send("x", 0), Err(zmq::Error::EAGAIN));
                assert!(t.elapsed() >= Duration::from_millis(150), "blocked for the timeout");
                bind_any!(push); // bound, still nobody connected
                assert_eq!(push.send("x", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
            });
        }

        // RFC 30 "The PUSH Socket Type", general: SHALL create its queue when initiating an
        // outgoing connection, and keep it whether or not the connection is established.
        #[test]
        $(#[$m])*
        fn rfc30_push_shall_queue_before_connection_is_established() {
            run(|| {
                let ctx = zmq::Context::new();
                let ep = format!("tcp://127.0.0.1:{}", free_port());
                let push = sock!(ctx, zmq::PUSH);
                push.set_reconnect_ivl(20).unwrap();
                push.connect(&ep).unwrap();
                for i in 0..5u8 {
                    push.send(&[i][..], zmq::DONTWAIT).expect("queued while not connected");
                }
                let pull = sock!(ctx, zmq::PULL);
                pull.bind(&ep).unwrap();
                for i in 0..5u8 {
                    assert_eq!(pull.recv_bytes(0).unwrap(), vec![i]);
                }
            });
        }

        // RFC 30 "The PUSH Socket Type", outgoing: SHALL not accept further messages when
        // it has no available peers; SHALL NOT discard messages that it cannot queue.
        #[test]
        $(#[$m])*
        fn rfc30_push_shall_not_discard_messages_it_cannot_queue() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                pull.set_rcvhwm(5).unwrap();
                let ep = bind_any!(pull);
                let push = sock!(ctx, zmq::PUSH);
                push.set_sndhwm(5).unwrap();
                push.connect(&ep).unwrap();
                let body = payload(16 * 1024, 4);
                let mut sent = 0u32;
                loop {
                    let mut m = sent.to_be_bytes().to_vec();
                    m.extend_from_slice(&body);
                    match push.send(&m[..], zmq::DONTWAIT) {
                        Ok(()) => sent += 1,
                        Err(zmq::Error::EAGAIN) => break,
                        Err(e) => panic!("send: {e:?}"),
                    }
                    assert!(sent < 1_000_000, "PUSH never pushed back");
                }
                for i in 0..sent {
                    let m = pull.recv_bytes(0).unwrap_or_else(|e| panic!("message {i}/{sent}: {e:?}"));
                    assert_eq!(&m[..4], &i.to_be_bytes()[..], "no gap, no reordering");
                }
                assert_eq!(pull.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
            });
        }

        // RFC 30 "The PUSH Socket Type", outgoing: SHALL consider a peer as available only
        // when it has an outgoing queue that is not full (a stalled PULL does not stall the
        // others).
        #[test]
        $(#[$m])*
        fn rfc30_push_shall_skip_peers_whose_queue_is_full() {
            run(|| {
                let ctx = zmq::Context::new();
                let push = sock!(ctx, zmq::PUSH);
                push.set_sndhwm(10).unwrap();
                let fast = sock!(ctx, zmq::PULL);
                let stalled = sock!(ctx, zmq::PULL);
                stalled.set_rcvhwm(10).unwrap();
                push.connect(&bind_any!(fast)).unwrap();
                push.connect(&bind_any!(stalled)).unwrap();
                const N: u32 = 3000;
                let (tx, rx) = std::sync::mpsc::channel();
                let reader = std::thread::spawn(move || {
                    // The fast PULL reads until told how many it must have.
                    let mut got = 0u32;
                    loop {
                        if let Ok(total) = rx.try_recv() {
                            let total: u32 = total;
                            while got < total {
                                fast.recv_bytes(0).expect("fast reader");
                                got += 1;
                            }
                            return got;
                        }
                        if fast.poll(zmq::POLLIN, 10).unwrap() > 0 {
                            fast.recv_bytes(0).unwrap();
                            got += 1;
                        }
                    }
                });
                let body = payload(16 * 1024, 6);
                for i in 0..N {
                    push.send(&body[..], 0).unwrap_or_else(|e| panic!("send {i}: stalled peer blocked the PUSH: {e:?}"));
                }
                // Count what the stalled PULL holds, then the fast one must have the rest.
                let mut stalled_n = 0u32;
                while stalled.poll(zmq::POLLIN, 500).unwrap() > 0 {
                    stalled.recv_bytes(0).unwrap();
                    stalled_n += 1;
                }
                assert!(stalled_n < N / 2, "the stalled peer took {stalled_n} of {N}");
                tx.send(N - stalled_n).unwrap();
                let fast_n = reader.join().unwrap();
                assert_eq!(fast_n + stalled_n, N);
            });
        }

        // RFC 30 "The PUSH Socket Type", general: SHALL only send messages; "The PULL
        // Socket Type": SHALL only receive messages (libzmq: ENOTSUP).
        #[test]
        $(#[$m])*
        fn rfc30_push_shall_only_send_and_pull_shall_only_receive() {
            run(|| {
                let ctx = zmq::Context::new();
                let push = sock!(ctx, zmq::PUSH);
                let pull = sock!(ctx, zmq::PULL);
                assert_eq!(push.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::ENOTSUP));
                assert_eq!(pull.send("x", zmq::DONTWAIT), Err(zmq::Error::ENOTSUP));
            });
        }

        // RFC 30 "The PUSH Socket Type" / "The PULL Socket Type", general: SHALL not filter
        // or modify outgoing / incoming messages in any way.
        #[test]
        $(#[$m])*
        fn rfc30_push_and_pull_shall_not_modify_messages() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                let push = sock!(ctx, zmq::PUSH);
                push.connect(&bind_any!(pull)).unwrap();
                let big = payload(300_000, 8);
                let parts: Vec<&[u8]> = vec![b"", b"\x00\x01", &big[..], b"", b"\xff"];
                push.send_multipart(parts.iter().copied(), 0).unwrap();
                push.send(&b"\x01sub-like"[..], 0).unwrap();
                assert_eq!(pull.recv_multipart(0).unwrap(), frames(&parts));
                assert_eq!(pull.recv_bytes(0).unwrap(), b"\x01sub-like");
            });
        }

        // RFC 30 "The PULL Socket Type", incoming: SHALL receive incoming messages from its
        // peers using a fair-queuing strategy.
        #[test]
        $(#[$m])*
        fn rfc30_pull_shall_fair_queue() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                let ep = bind_any!(pull);
                let pushes: Vec<zmq::Socket> = (0..2).map(|_| sock!(ctx, zmq::PUSH)).collect();
                for p in &pushes {
                    p.connect(&ep).unwrap();
                    p.send("probe", 0).unwrap();
                    assert_eq!(pull.recv_bytes(0).unwrap(), b"probe");
                }
                // libzmq sees a peer's new data only when the socket processes commands (on
                // EAGAIN, poll, or every 100 receives), and whether both peers' data is queued
                // is not observable: 200 each, a settle pause that doubles per round, pass on
                // the first interleaved round.
                const N: u8 = 200;
                let mut settle = Duration::from_millis(20);
                let mut senders = Vec::new();
                for _ in 0..6 {
                    for (k, p) in pushes.iter().enumerate() {
                        for i in 0..N {
                            p.send(&[k as u8, i][..], 0).unwrap();
                        }
                    }
                    std::thread::sleep(settle);
                    pull.poll(zmq::POLLIN, IO_TIMEOUT_MS as i64).unwrap();
                    senders.clear();
                    let mut next = [0u8; 2];
                    for _ in 0..2 * N as usize {
                        let m = pull.recv_bytes(0).unwrap();
                        assert_eq!(m[1], next[m[0] as usize], "per-peer order kept");
                        next[m[0] as usize] += 1;
                        senders.push(m[0]);
                    }
                    if switches(&senders) >= 3 {
                        return;
                    }
                    settle *= 2;
                }
                panic!("peers never served in turn: {senders:?}");
            });
        }

        // RFC 30 "The PULL Socket Type", general: MAY be connected to any number of PUSH
        // peers (a PULL that connects to several binders receives from all of them).
        #[test]
        $(#[$m])*
        fn rfc30_pull_shall_receive_from_every_peer() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                let pushes: Vec<zmq::Socket> = (0..4).map(|_| sock!(ctx, zmq::PUSH)).collect();
                for p in &pushes {
                    pull.connect(&bind_any!(p)).unwrap();
                }
                for (k, p) in pushes.iter().enumerate() {
                    for i in 0..25u8 {
                        p.send(&[k as u8, i][..], 0).unwrap();
                    }
                }
                let mut next = [0u8; 4];
                for _ in 0..100 {
                    let m = pull.recv_bytes(0).unwrap();
                    assert_eq!(m[1], next[m[0] as usize]);
                    next[m[0] as usize] += 1;
                }
                assert_eq!(next, [25; 4]);
            });
        }
    };
}

libzmq_instance!(libzmq, rfc30_suite);
patterns_instance!(ferro, rfc30_suite);
