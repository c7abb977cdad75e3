//! RFC 28/REQREP (https://rfc.zeromq.org/spec/28/): REQ, REP, DEALER and ROUTER, one test per
//! SHALL clause (paraphrased above each test with its section), plus the libzmq 4.3 options
//! of the pattern (REQ_RELAXED/REQ_CORRELATE, ROUTER_MANDATORY, ROUTER_HANDOVER, PROBE_ROUTER).
//!
//! Written once in `rfc28_suite!`, instantiated for libzmq (`libzmq::*`, the reference) and
//! for ferromq (`ferro::*`, switched by `patterns_instance!` in tests/common: ignored with
//! "needs patterns" until the switch is flipped).
//!
//! Wire-level facts are observed through a libzmq-compatible peer of another type (a ROUTER
//! shows the frames a REQ really sends, a DEALER shows what a REP really sends back).

#[macro_use]
mod common;
#[allow(unused_imports)]
use common::*;

macro_rules! rfc28_suite {
    ([$($arg:expr),*] $(#[$m:meta])*) => {
        use std::time::{Duration, Instant};

        /// Non-blocking receive: `Some(msg)` or `None` on EAGAIN; other errors panic.
        fn try_recv(s: &zmq::Socket) -> Option<Vec<u8>> {
            match s.recv_bytes(zmq::DONTWAIT) {
                Ok(m) => Some(m),
                Err(zmq::Error::EAGAIN) => None,
                Err(e) => panic!("recv DONTWAIT: {e:?}"),
            }
        }

        /// Index of the first of `socks` that becomes readable within the I/O timeout.
        fn which_readable(socks: &[&zmq::Socket]) -> usize {
            let mut items: Vec<zmq::PollItem> =
                socks.iter().map(|s| s.as_poll_item(zmq::POLLIN)).collect();
            let n = zmq::poll(&mut items, IO_TIMEOUT_MS as i64).expect("poll");
            assert!(n > 0, "no socket became readable within {IO_TIMEOUT_MS} ms");
            items.iter().position(|i| i.is_readable()).unwrap()
        }

        /// Sends `parts` from a ROUTER_MANDATORY `router`, retrying while the peer is not
        /// attached yet (EHOSTUNREACH); the awaited event is the peer's handshake.
        fn router_send_when_attached(router: &zmq::Socket, parts: &[&[u8]]) {
            retry_until(Duration::from_secs(10), Duration::from_millis(10), "peer attached to ROUTER", || {
                match router.send_multipart(parts.iter().copied(), 0) {
                    Ok(()) => Some(()),
                    Err(zmq::Error::EHOSTUNREACH) => None,
                    Err(e) => panic!("ROUTER send: {e:?}"),
                }
            })
        }

        /// How many times consecutive items of `senders` differ.
        fn switches(senders: &[u8]) -> usize {
            senders.windows(2).filter(|w| w[0] != w[1]).count()
        }

        /// Fair-queuing check. Whether every peer's messages are already queued when the
        /// reader starts is not observable through the API, and libzmq activates a pipe that
        /// received data only when the socket processes its commands (on EAGAIN, on
        /// ZMQ_EVENTS/poll, or every 100 receives): a burst of < 100 messages from one peer
        /// can be read whole before the other peer's pipe is seen. So each peer sends 200,
        /// and `round(settle)` loads all peers,
        /// waits `settle` and reads everything back, returning the sender of each message in
        /// order. Passes as soon as one round interleaves (>= 3 sender switches); `settle`
        /// starts at 20 ms and doubles per round (6 rounds).
        fn assert_fair_queued(mut round: impl FnMut(Duration) -> Vec<u8>) {
            let mut settle = Duration::from_millis(20);
            let mut last = Vec::new();
            for _ in 0..6 {
                last = round(settle);
                if switches(&last) >= 3 {
                    return;
                }
                settle *= 2;
            }
            panic!("the peers were never served in turn; last round: {last:?}");
        }

        // ================================ REQ ================================

        // RFC 28 "The REQ Socket Type", outgoing: SHALL prefix the outgoing message with an
        // empty delimiter frame.
        #[test]
        $(#[$m])*
        fn rfc28_req_shall_prefix_outgoing_message_with_empty_delimiter() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let req = sock!(ctx, zmq::REQ);
                req.set_identity(b"req").unwrap();
                req.connect(&ep).unwrap();
                req.send_multipart(["part1", "part2"], 0).unwrap();
                assert_eq!(
                    router.recv_multipart(0).unwrap(),
                    frames(&[b"req", b"", b"part1", b"part2"]),
                    "ROUTER sees identity, empty delimiter, then the data frames"
                );
                // The reply comes back without the delimiter.
                router.send_multipart([&b"req"[..], b"", b"reply"], 0).unwrap();
                assert_eq!(req.recv_multipart(0).unwrap(), frames(&[b"reply"]));
            });
        }

        // RFC 28 "The REQ Socket Type", general: SHALL send and then receive exactly one
        // message at a time (libzmq: EFSM on send-send and on recv-before-send).
        #[test]
        $(#[$m])*
        fn rfc28_req_shall_send_then_receive_one_message_at_a_time() {
            run(|| {
                let ctx = zmq::Context::new();
                let req = sock!(ctx, zmq::REQ);
                assert_eq!(req.recv_bytes(0), Err(zmq::Error::EFSM), "recv before any send");
                assert_eq!(req.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EFSM));
                let rep = sock!(ctx, zmq::REP);
                let ep = bind_any!(rep);
                req.connect(&ep).unwrap();
                req.send("one", 0).unwrap();
                assert_eq!(req.send("two", 0), Err(zmq::Error::EFSM), "send-send");
                assert_eq!(req.send("two", zmq::DONTWAIT), Err(zmq::Error::EFSM));
                assert_eq!(rep.recv_bytes(0).unwrap(), b"one");
                rep.send("r1", 0).unwrap();
                assert_eq!(req.recv_bytes(0).unwrap(), b"r1");
                assert_eq!(req.recv_bytes(0), Err(zmq::Error::EFSM), "recv-recv");
                // Back in the sending state: the cycle works again, and "two" never left.
                req.send("three", 0).unwrap();
                assert_eq!(rep.recv_bytes(0).unwrap(), b"three");
                rep.send("r3", 0).unwrap();
                assert_eq!(req.recv_bytes(0).unwrap(), b"r3");
            });
        }

        // RFC 28 "The REQ Socket Type", outgoing: SHALL route outgoing messages to connected
        // peers using a round-robin strategy.
        #[test]
        $(#[$m])*
        fn rfc28_req_shall_route_outgoing_round_robin() {
            run(|| {
                let ctx = zmq::Context::new();
                let reps: Vec<zmq::Socket> = (0..3).map(|_| sock!(ctx, zmq::REP)).collect();
                let eps: Vec<String> = reps.iter().map(|r| bind_any!(r)).collect();
                let req = sock!(ctx, zmq::REQ);
                for ep in &eps {
                    req.connect(ep).unwrap();
                }
                let refs: Vec<&zmq::Socket> = reps.iter().collect();
                let mut order = Vec::new();
                for i in 0..9 {
                    let body = format!("q{i}");
                    req.send(body.as_bytes(), 0).unwrap();
                    let k = which_readable(&refs);
                    assert_eq!(reps[k].recv_bytes(0).unwrap(), body.as_bytes());
                    reps[k].send("ok", 0).unwrap();
                    assert_eq!(req.recv_bytes(0).unwrap(), b"ok");
                    order.push(k);
                }
                let mut first: Vec<usize> = order[..3].to_vec();
                first.sort();
                assert_eq!(first, vec![0, 1, 2], "each REP gets one of the first 3: {order:?}");
                for i in 3..9 {
                    assert_eq!(order[i], order[i - 3], "rotation repeats: {order:?}");
                }
            });
        }

        // RFC 28 "The REQ Socket Type", outgoing: SHALL block on sending, or return a
        // suitable error, when it has no connected peers.
        #[test]
        $(#[$m])*
        fn rfc28_req_shall_block_on_send_when_no_peers() {
            run(|| {
                let ctx = zmq::Context::new();
                let req = sock!(ctx, zmq::REQ);
                assert_eq!(req.send("x", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                req.set_sndtimeo(200).unwrap();
                let t = Instant::now();
                assert_eq!(req.send("x", 0), Err(zmq::Error::EAGAIN));
                assert!(t.elapsed() >= Duration::from_millis(150), "send blocked for the timeout");
                // The failed sends did not move the REQ into the receiving state.
                let rep = sock!(ctx, zmq::REP);
                let ep = bind_any!(rep);
                req.set_sndtimeo(IO_TIMEOUT_MS).unwrap();
                req.connect(&ep).unwrap();
                req.send("real", 0).unwrap();
                assert_eq!(rep.recv_bytes(0).unwrap(), b"real");
            });
        }

        // RFC 28 "The REQ Socket Type", outgoing: SHALL NOT discard messages that it cannot
        // send to a connected peer (a request sent before the peer exists is delivered).
        #[test]
        $(#[$m])*
        fn rfc28_req_shall_not_discard_messages_it_cannot_send() {
            run(|| {
                let ctx = zmq::Context::new();
                let ep = format!("tcp://127.0.0.1:{}", free_port());
                let req = sock!(ctx, zmq::REQ);
                req.set_reconnect_ivl(20).unwrap();
                req.connect(&ep).unwrap();
                req.send("early", 0).unwrap();
                let rep = sock!(ctx, zmq::REP);
                rep.bind(&ep).unwrap();
                assert_eq!(rep.recv_bytes(0).unwrap(), b"early");
                rep.send("late reply", 0).unwrap();
                assert_eq!(req.recv_bytes(0).unwrap(), b"late reply");
            });
        }

        // RFC 28 "The REQ Socket Type", incoming: SHALL accept an incoming message only from
        // the last peer that it sent a request to; SHALL discard silently any messages
        // received from other peers.
        #[test]
        $(#[$m])*
        fn rfc28_req_shall_accept_reply_only_from_last_peer() {
            run(|| {
                let ctx = zmq::Context::new();
                let routers: Vec<zmq::Socket> = (0..2).map(|_| sock!(ctx, zmq::ROUTER)).collect();
                let eps: Vec<String> = routers.iter().map(|r| bind_any!(r)).collect();
                for r in &routers {
                    r.set_router_mandatory(true).unwrap();
                }
                let req = sock!(ctx, zmq::REQ);
                req.set_identity(b"R").unwrap();
                for ep in &eps {
                    req.connect(ep).unwrap();
                }
                req.send("q1", 0).unwrap();
                let x = which_readable(&[&routers[0], &routers[1]]);
                let y = 1 - x;
                assert_eq!(routers[x].recv_multipart(0).unwrap(), frames(&[b"R", b"", b"q1"]));
                // The other peer sends an unsolicited, well-formed "reply".
                router_send_when_attached(&routers[y], &[b"R", b"", b"bogus"]);
                // Once it is at the REQ, a receive must not return it (it is discarded).
                let _ = req.poll(zmq::POLLIN, 2000);
                assert_eq!(try_recv(&req), None, "reply from a peer that got no request");
                routers[x].send_multipart([&b"R"[..], b"", b"good"], 0).unwrap();
                assert_eq!(req.recv_bytes(0).unwrap(), b"good");
                // Next request goes to the other peer (round-robin); its real reply is what
                // the REQ gets, not the stale "bogus".
                req.send("q2", 0).unwrap();
                assert_eq!(which_readable(&[&routers[0], &routers[1]]), y, "round-robin");
                assert_eq!(routers[y].recv_multipart(0).unwrap(), frames(&[b"R", b"", b"q2"]));
                routers[y].send_multipart([&b"R"[..], b"", b"good2"], 0).unwrap();
                assert_eq!(req.recv_bytes(0).unwrap(), b"good2");
            });
        }

        // libzmq option (the usual cure for "my REQ is stuck after a lost reply"):
        // REQ_RELAXED lets a REQ send a new request without a reply; REQ_CORRELATE tags each
        // request with an id frame before the delimiter and drops replies to older requests.
        #[test]
        $(#[$m])*
        fn rfc28_req_relaxed_correlate_can_resend_after_lost_reply() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let req = sock!(ctx, zmq::REQ);
                req.set_req_relaxed(true).unwrap();
                req.set_req_correlate(true).unwrap();
                req.connect(&ep).unwrap();
                req.send("q1", 0).unwrap();
                let m1 = router.recv_multipart(0).unwrap();
                assert_eq!(m1.len(), 4, "identity, request id, delimiter, body: {m1:?}");
                assert_eq!(m1[1].len(), 4, "request id is 4 bytes: {m1:?}");
                assert_eq!(m1[2], b"", "delimiter after the request id");
                assert_eq!(m1[3], b"q1");
                // The reply to q1 is "lost": the REQ may send again.
                req.send("q2", 0).expect("relaxed REQ sends again without a reply");
                let m2 = router.recv_multipart(0).unwrap();
                assert_eq!(m2.len(), 4);
                assert_eq!(m2[0], m1[0], "same peer");
                assert_ne!(m2[1], m1[1], "a new request id");
                assert_eq!(&m2[2..], &frames(&[b"", b"q2"])[..]);
                // A late reply to q1 arrives first: discarded; the reply to q2 is delivered.
                router.send_multipart([&m1[0][..], &m1[1][..], b"", b"late"], 0).unwrap();
                router.send_multipart([&m2[0][..], &m2[1][..], b"", b"fresh"], 0).unwrap();
                assert_eq!(req.recv_multipart(0).unwrap(), frames(&[b"fresh"]));
                // Without REQ_RELAXED the same situation is EFSM (the stuck REQ).
                let strict = sock!(ctx, zmq::REQ);
                strict.connect(&ep).unwrap();
                strict.send("s1", 0).unwrap();
                assert_eq!(strict.send("s2", 0), Err(zmq::Error::EFSM));
            });
        }

        // ================================ REP ================================

        // RFC 28 "The REP Socket Type", general: SHALL receive and then send exactly one
        // message at a time (libzmq: EFSM otherwise).
        #[test]
        $(#[$m])*
        fn rfc28_rep_shall_receive_then_send_one_message_at_a_time() {
            run(|| {
                let ctx = zmq::Context::new();
                let rep = sock!(ctx, zmq::REP);
                assert_eq!(rep.send("x", 0), Err(zmq::Error::EFSM), "send before recv");
                let ep = bind_any!(rep);
                let req = sock!(ctx, zmq::REQ);
                req.connect(&ep).unwrap();
                req.send("q", 0).unwrap();
                assert_eq!(rep.recv_bytes(0).unwrap(), b"q");
                assert_eq!(rep.recv_bytes(0), Err(zmq::Error::EFSM), "recv-recv");
                rep.send("r", 0).unwrap();
                assert_eq!(rep.send("r2", 0), Err(zmq::Error::EFSM), "send-send");
                assert_eq!(req.recv_bytes(0).unwrap(), b"r");
            });
        }

        // RFC 28 "The REP Socket Type", incoming: SHALL remove and store the address
        // envelope, including the delimiter; SHALL pass the remaining data frames to its
        // calling application. Outgoing: SHALL prepend the address envelope and delimiter.
        #[test]
        $(#[$m])*
        fn rfc28_rep_shall_strip_envelope_and_prepend_it_to_reply() {
            run(|| {
                let ctx = zmq::Context::new();
                let rep = sock!(ctx, zmq::REP);
                let ep = bind_any!(rep);
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.connect(&ep).unwrap();
                dealer.send_multipart([&b"hop2"[..], b"hop1", b"", b"d1", b"", b"d3"], 0).unwrap();
                assert_eq!(
                    rep.recv_multipart(0).unwrap(),
                    frames(&[b"d1", b"", b"d3"]),
                    "only the data frames (an empty data frame is data)"
                );
                rep.send_multipart(["r1", "r2"], 0).unwrap();
                assert_eq!(
                    dealer.recv_multipart(0).unwrap(),
                    frames(&[b"hop2", b"hop1", b"", b"r1", b"r2"]),
                    "the stored envelope and delimiter come back first"
                );
            });
        }

        // RFC 28 "The REP Socket Type", outgoing: SHALL deliver this message back to the
        // originating peer.
        #[test]
        $(#[$m])*
        fn rfc28_rep_shall_route_reply_to_originating_peer() {
            run(|| {
                let ctx = zmq::Context::new();
                let rep = sock!(ctx, zmq::REP);
                let ep = bind_any!(rep);
                let dealers: Vec<zmq::Socket> = (0..3).map(|_| sock!(ctx, zmq::DEALER)).collect();
                for (k, d) in dealers.iter().enumerate() {
                    d.connect(&ep).unwrap();
                    d.send_multipart([&b""[..], format!("from{k}").as_bytes()], 0).unwrap();
                }
                for _ in 0..3 {
                    let body = rep.recv_bytes(0).unwrap();
                    let mut reply = b"re:".to_vec();
                    reply.extend_from_slice(&body);
                    rep.send(&reply[..], 0).unwrap();
                }
                for (k, d) in dealers.iter().enumerate() {
                    assert_eq!(
                        d.recv_multipart(0).unwrap(),
                        frames(&[b"", format!("re:from{k}").as_bytes()]),
                        "dealer {k} gets the reply to its own request"
                    );
                }
            });
        }

        // RFC 28 "The REP Socket Type", incoming: SHALL receive incoming messages from its
        // peers using a fair-queuing strategy.
        #[test]
        $(#[$m])*
        fn rfc28_rep_shall_fair_queue_incoming() {
            run(|| {
                let ctx = zmq::Context::new();
                let rep = sock!(ctx, zmq::REP);
                let ep = bind_any!(rep);
                let dealers: Vec<zmq::Socket> = (0..2).map(|_| sock!(ctx, zmq::DEALER)).collect();
                // Attach both peers first (one answered probe each).
                for d in &dealers {
                    d.connect(&ep).unwrap();
                    d.send_multipart([&b""[..], b"probe"], 0).unwrap();
                    assert_eq!(rep.recv_bytes(0).unwrap(), b"probe");
                    rep.send("probe-ok", 0).unwrap();
                    assert_eq!(d.recv_multipart(0).unwrap(), frames(&[b"", b"probe-ok"]));
                }
                const N: u8 = 200;
                assert_fair_queued(|settle| {
                    for i in 0..N {
                        for (k, d) in dealers.iter().enumerate() {
                            d.send_multipart([&b""[..], &[k as u8, i][..]], 0).unwrap();
                        }
                    }
                    std::thread::sleep(settle);
                    rep.poll(zmq::POLLIN, IO_TIMEOUT_MS as i64).unwrap();
                    let mut senders = Vec::new();
                    let mut next = [0u8; 2];
                    for _ in 0..2 * N as usize {
                        let m = rep.recv_bytes(0).unwrap();
                        let (k, i) = (m[0] as usize, m[1]);
                        assert_eq!(i, next[k], "per-peer order kept");
                        next[k] += 1;
                        senders.push(m[0]);
                        rep.send("ok", 0).unwrap();
                    }
                    for d in &dealers {
                        for _ in 0..N {
                            assert_eq!(d.recv_multipart(0).unwrap(), frames(&[b"", b"ok"]));
                        }
                    }
                    senders
                });
            });
        }

        // RFC 28 "The REP Socket Type", outgoing: SHALL silently discard the reply, or
        // return an error, if the originating peer is no longer connected; SHALL not block on
        // sending.
        #[test]
        $(#[$m])*
        fn rfc28_rep_shall_discard_reply_when_originating_peer_gone() {
            run(|| {
                let ctx = zmq::Context::new();
                let rep = sock!(ctx, zmq::REP);
                let ep = bind_any!(rep);
                {
                    let req = sock!(ctx, zmq::REQ);
                    req.connect(&ep).unwrap();
                    req.send("bye", 0).unwrap();
                    assert_eq!(rep.recv_bytes(0).unwrap(), b"bye");
                } // the requester is gone
                let t = Instant::now();
                match rep.send("to nobody", 0) {
                    Ok(()) => {}
                    Err(e) => assert_ne!(e, zmq::Error::EAGAIN, "REP blocked on a gone peer"),
                }
                assert!(t.elapsed() < Duration::from_secs(2), "REP send did not block");
                // The REP serves the next client normally.
                let req2 = sock!(ctx, zmq::REQ);
                req2.connect(&ep).unwrap();
                req2.send("hello", 0).unwrap();
                assert_eq!(rep.recv_bytes(0).unwrap(), b"hello");
                rep.send("world", 0).unwrap();
                assert_eq!(req2.recv_bytes(0).unwrap(), b"world");
            });
        }

        // =============================== DEALER ===============================

        // RFC 28 "The DEALER Socket Type", outgoing: SHALL route outgoing messages to
        // available peers using a round-robin strategy.
        #[test]
        $(#[$m])*
        fn rfc28_dealer_shall_route_outgoing_round_robin() {
            run(|| {
                let ctx = zmq::Context::new();
                let routers: Vec<zmq::Socket> = (0..3).map(|_| sock!(ctx, zmq::ROUTER)).collect();
                let eps: Vec<String> = routers.iter().map(|r| bind_any!(r)).collect();
                let dealer = sock!(ctx, zmq::DEALER);
                for ep in &eps {
                    dealer.connect(ep).unwrap();
                }
                for i in 0..9u8 {
                    dealer.send(&[i][..], 0).unwrap();
                }
                let mut firsts = Vec::new();
                for r in &routers {
                    let got: Vec<u8> = (0..3)
                        .map(|_| {
                            let m = r.recv_multipart(0).unwrap();
                            assert_eq!(m.len(), 2, "{m:?}");
                            m[1][0]
                        })
                        .collect();
                    assert_eq!(got, vec![got[0], got[0] + 3, got[0] + 6], "every 3rd message");
                    firsts.push(got[0]);
                }
                firsts.sort();
                assert_eq!(firsts, vec![0, 1, 2]);
            });
        }

        // RFC 28 "The DEALER Socket Type", incoming: SHALL receive incoming messages from
        // its peers using a fair-queuing strategy.
        #[test]
        $(#[$m])*
        fn rfc28_dealer_shall_fair_queue_incoming() {
            run(|| {
                let ctx = zmq::Context::new();
                let dealer = sock!(ctx, zmq::DEALER);
                let ep = bind_any!(dealer);
                let peers: Vec<zmq::Socket> = (0..2).map(|_| sock!(ctx, zmq::DEALER)).collect();
                for p in &peers {
                    p.connect(&ep).unwrap();
                    p.send("probe", 0).unwrap();
                    assert_eq!(dealer.recv_bytes(0).unwrap(), b"probe");
                }
                const N: u8 = 200;
                assert_fair_queued(|settle| {
                    for (k, p) in peers.iter().enumerate() {
                        for i in 0..N {
                            p.send(&[k as u8, i][..], 0).unwrap();
                        }
                    }
                    std::thread::sleep(settle);
                    dealer.poll(zmq::POLLIN, IO_TIMEOUT_MS as i64).unwrap();
                    let mut senders = Vec::new();
                    let mut next = [0u8; 2];
                    for _ in 0..2 * N as usize {
                        let m = dealer.recv_bytes(0).unwrap();
                        assert_eq!(m[1], next[m[0] as usize], "per-peer order kept");
                        next[m[0] as usize] += 1;
                        senders.push(m[0]);
                    }
                    senders
                });
            });
        }

        // RFC 28 "The DEALER Socket Type", outgoing: SHALL block on sending, or return a
        // suitable error, when it has no available peers.
        #[test]
        $(#[$m])*
        fn rfc28_dealer_shall_block_on_send_when_no_peers() {
            run(|| {
                let ctx = zmq::Context::new();
                let dealer = sock!(ctx, zmq::DEALER);
                assert_eq!(dealer.send("x", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                dealer.set_sndtimeo(200).unwrap();
                let t = Instant::now();
                assert_eq!(dealer.send("x", 0), Err(zmq::Error::EAGAIN));
                assert!(t.elapsed() >= Duration::from_millis(150));
            });
        }

        // RFC 28 "The DEALER Socket Type", general: SHALL create a double queue when
        // initiating an outgoing connection, and maintain it whether or not the connection is
        // established (messages sent before the peer binds are delivered).
        #[test]
        $(#[$m])*
        fn rfc28_dealer_shall_queue_before_connection_is_established() {
            run(|| {
                let ctx = zmq::Context::new();
                let ep = format!("tcp://127.0.0.1:{}", free_port());
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_identity(b"early").unwrap();
                dealer.set_reconnect_ivl(20).unwrap();
                dealer.connect(&ep).unwrap();
                for i in 0..3u8 {
                    dealer.send(&[i][..], 0).expect("queued for the unestablished connection");
                }
                let router = sock!(ctx, zmq::ROUTER);
                router.bind(&ep).unwrap();
                for i in 0..3u8 {
                    assert_eq!(router.recv_multipart(0).unwrap(), vec![b"early".to_vec(), vec![i]]);
                }
            });
        }

        // RFC 28 "The DEALER Socket Type", outgoing: SHALL not accept further messages when
        // it has no available peers; SHALL NOT discard messages that it cannot queue.
        #[test]
        $(#[$m])*
        fn rfc28_dealer_shall_not_discard_messages_it_cannot_queue() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                router.set_rcvhwm(5).unwrap();
                let ep = bind_any!(router);
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_sndhwm(5).unwrap();
                dealer.connect(&ep).unwrap();
                let body = payload(16 * 1024, 3);
                let mut sent = 0u32;
                loop {
                    let mut msg = sent.to_be_bytes().to_vec();
                    msg.extend_from_slice(&body);
                    match dealer.send(&msg[..], zmq::DONTWAIT) {
                        Ok(()) => sent += 1,
                        Err(zmq::Error::EAGAIN) => break,
                        Err(e) => panic!("send: {e:?}"),
                    }
                    assert!(sent < 1_000_000, "the DEALER never pushed back");
                }
                assert!(sent > 0);
                for i in 0..sent {
                    let m = router.recv_multipart(0).unwrap_or_else(|e| panic!("message {i}/{sent}: {e:?}"));
                    assert_eq!(&m[1][..4], &i.to_be_bytes()[..], "no gap, no reordering");
                }
                assert_eq!(router.recv_multipart(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
            });
        }

        // RFC 28 "The DEALER Socket Type", general: SHALL not filter or modify outgoing or
        // incoming messages in any way.
        #[test]
        $(#[$m])*
        fn rfc28_dealer_shall_not_modify_messages() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_identity(b"d").unwrap();
                dealer.connect(&ep).unwrap();
                let big = payload(70_000, 5);
                let parts: Vec<&[u8]> = vec![b"", b"\x00\x01\xff", b"", &big[..]];
                dealer.send_multipart(parts.iter().copied(), 0).unwrap();
                let mut expected = frames(&[b"d"]);
                expected.extend(parts.iter().map(|p| p.to_vec()));
                assert_eq!(router.recv_multipart(0).unwrap(), expected);
                let mut back: Vec<&[u8]> = vec![b"d"];
                back.extend(parts.iter().copied());
                router.send_multipart(back, 0).unwrap();
                assert_eq!(dealer.recv_multipart(0).unwrap(), frames(&parts));
            });
        }

        // =============================== ROUTER ===============================

        // RFC 28 "The ROUTER Socket Type", incoming: SHALL prefix each incoming message with
        // a frame containing the identity of the originating double queue; general: SHOULD
        // allow the peer to specify its identity (Identity metadata property).
        #[test]
        $(#[$m])*
        fn rfc28_router_shall_prefix_incoming_with_peer_identity() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_identity(b"alice").unwrap();
                dealer.connect(&ep).unwrap();
                dealer.send_multipart(["a", "b"], 0).unwrap();
                assert_eq!(router.recv_multipart(0).unwrap(), frames(&[b"alice", b"a", b"b"]));
            });
        }

        // RFC 28 "The ROUTER Socket Type", general: SHALL identify each double queue using a
        // unique identity. libzmq: an anonymous peer gets a generated 5-byte id whose first
        // byte is 0x00 (user ids may not start with 0x00), stable for the connection.
        #[test]
        $(#[$m])*
        fn rfc28_router_generated_ids_are_5_bytes_starting_with_zero() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let d1 = sock!(ctx, zmq::DEALER);
                let d2 = sock!(ctx, zmq::DEALER);
                d1.connect(&ep).unwrap();
                d2.connect(&ep).unwrap();
                d1.send("one", 0).unwrap();
                let m1 = router.recv_multipart(0).unwrap();
                d2.send("two", 0).unwrap();
                let m2 = router.recv_multipart(0).unwrap();
                for m in [&m1, &m2] {
                    assert_eq!(m[0].len(), 5, "generated id {:02x?}", m[0]);
                    assert_eq!(m[0][0], 0, "generated id starts with 0x00: {:02x?}", m[0]);
                }
                assert_ne!(m1[0], m2[0], "ids are unique");
                d1.send("again", 0).unwrap();
                assert_eq!(router.recv_multipart(0).unwrap()[0], m1[0], "id stable per connection");
                // And routable.
                router.send_multipart([&m2[0][..], b"to-d2"], 0).unwrap();
                assert_eq!(d2.recv_bytes(0).unwrap(), b"to-d2");
            });
        }

        // RFC 28 "The ROUTER Socket Type", outgoing: SHALL remove the first frame from each
        // outgoing message and use this as the identity of a double queue; SHALL route the
        // message to that queue if it exists and has space.
        #[test]
        $(#[$m])*
        fn rfc28_router_shall_route_by_first_frame() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let names: [&[u8]; 3] = [b"A", b"B", b"C"];
                let dealers: Vec<zmq::Socket> = names
                    .iter()
                    .map(|n| {
                        let d = sock!(ctx, zmq::DEALER);
                        d.set_identity(n).unwrap();
                        d.connect(&ep).unwrap();
                        d.send("hi", 0).unwrap();
                        d
                    })
                    .collect();
                for _ in 0..3 {
                    router.recv_multipart(0).unwrap();
                }
                for n in names.iter().rev() {
                    let mut body = b"for-".to_vec();
                    body.extend_from_slice(n);
                    router.send_multipart([*n, &body[..], b"tail"], 0).unwrap();
                }
                for (n, d) in names.iter().zip(&dealers) {
                    let mut body = b"for-".to_vec();
                    body.extend_from_slice(n);
                    assert_eq!(d.recv_multipart(0).unwrap(), vec![body, b"tail".to_vec()]);
                    assert_eq!(try_recv(d), None, "nothing else for {n:?}");
                }
            });
        }

        // RFC 28 "The ROUTER Socket Type", outgoing: SHALL either silently drop the message,
        // or return an error, depending on configuration, if the queue does not exist.
        // Default (ROUTER_MANDATORY off): silently dropped.
        #[test]
        $(#[$m])*
        fn rfc28_router_shall_drop_unroutable_silently() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_identity(b"known").unwrap();
                dealer.connect(&ep).unwrap();
                dealer.send("hi", 0).unwrap();
                router.recv_multipart(0).unwrap();
                router.send_multipart(["nobody", "lost"], 0).expect("unroutable send succeeds");
                router.send_multipart(["", "lost"], 0).expect("empty id is just unknown");
                router.send_multipart(["known", "delivered"], 0).unwrap();
                assert_eq!(dealer.recv_bytes(0).unwrap(), b"delivered");
                assert_eq!(try_recv(&dealer), None);
            });
        }

        // Same clause, "return an error" configuration: ROUTER_MANDATORY makes an unknown
        // identity fail with EHOSTUNREACH (nothing is sent).
        #[test]
        $(#[$m])*
        fn rfc28_router_mandatory_unroutable_is_ehostunreach() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                router.set_router_mandatory(true).unwrap();
                let ep = bind_any!(router);
                assert_eq!(router.send_multipart(["nobody", "x"], 0), Err(zmq::Error::EHOSTUNREACH));
                assert_eq!(router.send("nobody", zmq::SNDMORE | zmq::DONTWAIT), Err(zmq::Error::EHOSTUNREACH));
                // A known peer is still reachable and got nothing from the failed sends.
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_identity(b"known").unwrap();
                dealer.connect(&ep).unwrap();
                router_send_when_attached(&router, &[b"known", b"ok"]);
                assert_eq!(dealer.recv_bytes(0).unwrap(), b"ok");
                assert_eq!(try_recv(&dealer), None);
            });
        }

        // RFC 28 "The ROUTER Socket Type", general: if a peer disconnects, the ROUTER SHALL
        // destroy its double queue (its identity becomes unroutable).
        #[test]
        $(#[$m])*
        fn rfc28_router_shall_destroy_queue_of_disconnected_peer() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                router.set_router_mandatory(true).unwrap();
                let ep = bind_any!(router);
                {
                    let dealer = sock!(ctx, zmq::DEALER);
                    dealer.set_identity(b"gone").unwrap();
                    dealer.connect(&ep).unwrap();
                    dealer.send("hi", 0).unwrap();
                    assert_eq!(router.recv_multipart(0).unwrap(), frames(&[b"gone", b"hi"]));
                }
                retry_until(Duration::from_secs(10), Duration::from_millis(10), "queue destroyed", || {
                    match router.send_multipart(["gone", "x"], zmq::DONTWAIT) {
                        Err(zmq::Error::EHOSTUNREACH) => Some(()),
                        Ok(()) => None,
                        Err(e) => panic!("send: {e:?}"),
                    }
                });
            });
        }

        // RFC 28 "The ROUTER Socket Type", outgoing: SHALL NOT block on sending (a full peer
        // queue drops the message by default).
        #[test]
        $(#[$m])*
        fn rfc28_router_shall_not_block_on_send_to_full_peer() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                router.set_sndhwm(1).unwrap();
                let ep = bind_any!(router);
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_rcvhwm(1).unwrap();
                dealer.set_identity(b"slow").unwrap();
                dealer.connect(&ep).unwrap();
                dealer.send("hi", 0).unwrap();
                router.recv_multipart(0).unwrap();
                let body = payload(4096, 1);
                let t = Instant::now();
                for i in 0..20_000u32 {
                    // A blocking send that blocks would fail with EAGAIN after sndtimeo.
                    router
                        .send_multipart([&b"slow"[..], &body[..]], 0)
                        .unwrap_or_else(|e| panic!("send {i} to a full peer: {e:?}"));
                }
                assert!(t.elapsed() < Duration::from_secs(30), "took {:?}", t.elapsed());
                // 80 MB could not all be queued: some were dropped. The peer still works.
                let mut n = 0u32;
                while dealer.poll(zmq::POLLIN, 1000).unwrap() > 0 {
                    dealer.recv_bytes(0).unwrap();
                    n += 1;
                }
                assert!(n < 20_000, "all {n} messages were queued: nothing dropped?");
            });
        }

        // Same clause with ROUTER_MANDATORY: a full peer queue is EAGAIN (never a silent
        // drop), an unknown identity stays EHOSTUNREACH.
        #[test]
        $(#[$m])*
        fn rfc28_router_mandatory_full_peer_is_eagain() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                router.set_router_mandatory(true).unwrap();
                router.set_sndhwm(1).unwrap();
                let ep = bind_any!(router);
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_rcvhwm(1).unwrap();
                dealer.set_identity(b"slow").unwrap();
                dealer.connect(&ep).unwrap();
                router_send_when_attached(&router, &[b"slow", b"first"]);
                let body = payload(16 * 1024, 2);
                let mut sent = 1u32;
                loop {
                    match router.send_multipart([&b"slow"[..], &body[..]], zmq::DONTWAIT) {
                        Ok(()) => sent += 1,
                        Err(zmq::Error::EAGAIN) => break,
                        Err(e) => panic!("send #{sent}: {e:?}"),
                    }
                    assert!(sent < 1_000_000, "never reported the full queue");
                }
                assert_eq!(router.send_multipart(["nobody", "x"], zmq::DONTWAIT), Err(zmq::Error::EHOSTUNREACH));
                // Everything accepted arrives (nothing was dropped silently).
                assert_eq!(dealer.recv_bytes(0).unwrap(), b"first");
                for i in 1..sent {
                    dealer.recv_bytes(0).unwrap_or_else(|e| panic!("message {i}/{sent}: {e:?}"));
                }
            });
        }

        // libzmq ROUTER_HANDOVER: a new connection with an identity already in use takes
        // it over (libzmq renames the old pipe to a generated id and terminates it).
        #[test]
        $(#[$m])*
        fn rfc28_router_handover_gives_identity_to_new_connection() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                router.set_router_handover(true).unwrap();
                let ep = bind_any!(router);
                let old = sock!(ctx, zmq::DEALER);
                old.set_identity(b"X").unwrap();
                old.connect(&ep).unwrap();
                old.send("one", 0).unwrap();
                assert_eq!(router.recv_multipart(0).unwrap(), frames(&[b"X", b"one"]));
                let new = sock!(ctx, zmq::DEALER);
                new.set_identity(b"X").unwrap();
                new.connect(&ep).unwrap();
                new.send("two", 0).unwrap();
                assert_eq!(router.recv_multipart(0).unwrap(), frames(&[b"X", b"two"]));
                router.send_multipart(["X", "to-X"], 0).unwrap();
                assert_eq!(new.recv_bytes(0).unwrap(), b"to-X", "the new connection owns X");
                // (libzmq closes the old connection; when it reconnects, it takes X back.)
            });
        }

        // Default (no handover): a second connection claiming an identity in use is not
        // attached; nothing it sends is delivered, the first owner keeps the identity.
        #[test]
        $(#[$m])*
        fn rfc28_router_duplicate_identity_ignored_without_handover() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let first = sock!(ctx, zmq::DEALER);
                first.set_identity(b"X").unwrap();
                first.connect(&ep).unwrap();
                first.send("one", 0).unwrap();
                assert_eq!(router.recv_multipart(0).unwrap(), frames(&[b"X", b"one"]));
                let dup = sock!(ctx, zmq::DEALER);
                dup.set_identity(b"X").unwrap();
                dup.connect(&ep).unwrap();
                dup.send("dup", 0).unwrap();
                router.send_multipart(["X", "to-X"], 0).unwrap();
                assert_eq!(first.recv_bytes(0).unwrap(), b"to-X", "the first owner keeps X");
                first.send("three", 0).unwrap();
                assert_eq!(router.recv_multipart(0).unwrap(), frames(&[b"X", b"three"]));
                router.set_rcvtimeo(300).unwrap();
                assert_eq!(router.recv_multipart(0), Err(zmq::Error::EAGAIN), "dup's message not delivered");
                dup.set_rcvtimeo(300).unwrap();
                assert_eq!(dup.recv_bytes(0), Err(zmq::Error::EAGAIN));
            });
        }

        // libzmq PROBE_ROUTER: on connect, the socket sends an empty message, so the ROUTER
        // learns the peer's identity before the application sends anything.
        #[test]
        $(#[$m])*
        fn rfc28_router_probe_router_sends_empty_message_on_connect() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let dealer = sock!(ctx, zmq::DEALER);
                dealer.set_identity(b"prober").unwrap();
                dealer.set_probe_router(true).unwrap();
                dealer.connect(&ep).unwrap();
                assert_eq!(router.recv_multipart(0).unwrap(), frames(&[b"prober", b""]));
                router.send_multipart(["prober", "welcome"], 0).unwrap();
                assert_eq!(dealer.recv_bytes(0).unwrap(), b"welcome");
                // A connecting ROUTER with the option probes too.
                let client = sock!(ctx, zmq::ROUTER);
                client.set_identity(b"rprobe").unwrap();
                client.set_probe_router(true).unwrap();
                client.connect(&ep).unwrap();
                assert_eq!(router.recv_multipart(0).unwrap(), frames(&[b"rprobe", b""]));
            });
        }

        // RFC 28 "The ROUTER Socket Type", general: MAY be connected to ROUTER peers. With
        // explicit identities on both sides, either side can address the other.
        #[test]
        $(#[$m])*
        fn rfc28_router_to_router_with_identities() {
            run(|| {
                let ctx = zmq::Context::new();
                let server = sock!(ctx, zmq::ROUTER);
                server.set_identity(b"server").unwrap();
                let ep = bind_any!(server);
                let client = sock!(ctx, zmq::ROUTER);
                client.set_identity(b"client").unwrap();
                client.set_router_mandatory(true).unwrap();
                client.connect(&ep).unwrap();
                router_send_when_attached(&client, &[b"server", b"", b"hello"]);
                assert_eq!(server.recv_multipart(0).unwrap(), frames(&[b"client", b"", b"hello"]));
                server.send_multipart(["client", "", "world"], 0).unwrap();
                assert_eq!(client.recv_multipart(0).unwrap(), frames(&[b"server", b"", b"world"]));
            });
        }

        // RFC 28 "The ROUTER Socket Type", incoming: SHALL receive incoming messages from its
        // peers using a fair-queuing strategy.
        #[test]
        $(#[$m])*
        fn rfc28_router_shall_fair_queue_incoming() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                let ep = bind_any!(router);
                let dealers: Vec<zmq::Socket> = (0..2u8)
                    .map(|k| {
                        let d = sock!(ctx, zmq::DEALER);
                        d.set_identity(&[b'p', k]).unwrap();
                        d.connect(&ep).unwrap();
                        d.send("probe", 0).unwrap();
                        d
                    })
                    .collect();
                for _ in 0..2 {
                    assert_eq!(router.recv_multipart(0).unwrap()[1], b"probe");
                }
                const N: u8 = 200;
                assert_fair_queued(|settle| {
                    for d in &dealers {
                        for i in 0..N {
                            d.send(&[i][..], 0).unwrap();
                        }
                    }
                    std::thread::sleep(settle);
                    router.poll(zmq::POLLIN, IO_TIMEOUT_MS as i64).unwrap();
                    let mut senders = Vec::new();
                    let mut next = [0u8; 2];
                    for _ in 0..2 * N as usize {
                        let m = router.recv_multipart(0).unwrap();
                        let k = m[0][1] as usize;
                        assert_eq!(m[1], vec![next[k]], "per-peer order kept");
                        next[k] += 1;
                        senders.push(k as u8);
                    }
                    senders
                });
            });
        }

        // libzmq 4.3: ROUTER_MANDATORY, ROUTER_HANDOVER and PROBE_ROUTER are write-only;
        // reading them (`is_router_mandatory`, ...) fails with EINVAL. A drop-in mirrors it.
        #[test]
        $(#[$m])*
        fn rfc28_write_only_router_options_read_back_einval() {
            run(|| {
                let ctx = zmq::Context::new();
                let router = sock!(ctx, zmq::ROUTER);
                router.set_router_mandatory(true).unwrap();
                router.set_router_handover(true).unwrap();
                router.set_probe_router(true).unwrap();
                assert_eq!(router.is_router_mandatory(), Err(zmq::Error::EINVAL));
                assert_eq!(router.is_router_handover(), Err(zmq::Error::EINVAL));
                assert_eq!(router.is_probe_router(), Err(zmq::Error::EINVAL));
            });
        }

        // Socket types are reported, and REQ/REP/DEALER/ROUTER can all be created.
        #[test]
        $(#[$m])*
        fn rfc28_socket_types_reported() {
            run(|| {
                let ctx = zmq::Context::new();
                for t in [zmq::REQ, zmq::REP, zmq::DEALER, zmq::ROUTER] {
                    let s = ctx.socket(t).unwrap_or_else(|e| panic!("socket({t:?}): {e:?}"));
                    assert_eq!(s.get_socket_type().unwrap(), t);
                }
            });
        }
    };
}

libzmq_instance!(libzmq, rfc28_suite);
patterns_instance!(ferro, rfc28_suite);
