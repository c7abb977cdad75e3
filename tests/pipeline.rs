//! PUSH/PULL (RFC 30, pipeline) behaviour over tcp.
//!
//! Every test is written once in `pipeline_suite!` and instantiated for libzmq (the reference,
//! `libzmq::*`) and for ferromq (`ferro::*`, switched by `ferro_instance!` in tests/common).

#[macro_use]
mod common;
#[allow(unused_imports)]
use common::*;

macro_rules! pipeline_suite {
    ([$($arg:expr),*] $(#[$m:meta])*) => {
        use std::time::{Duration, Instant};

        /// Receives exactly `n` messages and returns them.
        fn recv_n(s: &zmq::Socket, n: usize) -> Vec<Vec<u8>> {
            (0..n)
                .map(|i| {
                    s.recv_bytes(0)
                        .unwrap_or_else(|e| panic!("recv #{i} of {n}: {e:?}"))
                })
                .collect()
        }

        /// Non-blocking receive: `Some(msg)` or `None` on EAGAIN; other errors panic.
        fn try_recv(s: &zmq::Socket) -> Option<Vec<u8>> {
            match s.recv_bytes(zmq::DONTWAIT) {
                Ok(m) => Some(m),
                Err(zmq::Error::EAGAIN) => None,
                Err(e) => panic!("recv DONTWAIT: {e:?}"),
            }
        }

        /// A PUSH/PULL pair connected over tcp with one message already through (so the
        /// connection is known to be up). PULL binds, PUSH connects.
        fn connected_pair(ctx: &zmq::Context) -> (zmq::Socket, zmq::Socket, String) {
            let pull = sock!(ctx, zmq::PULL);
            let ep = bind_any!(pull);
            let push = sock!(ctx, zmq::PUSH);
            push.connect(&ep).unwrap();
            push.send("probe", 0).unwrap();
            assert_eq!(pull.recv_bytes(0).unwrap(), b"probe");
            (push, pull, ep)
        }

        #[test]
        $(#[$m])*
        fn basic_send_recv_tcp() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                let ep = bind_any!(pull);
                let push = sock!(ctx, zmq::PUSH);
                push.connect(&ep).unwrap();
                push.send("hello", 0).unwrap();
                push.send(&b"world"[..], 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"hello");
                assert_eq!(pull.recv_string(0).unwrap().unwrap(), "world");
                assert!(!pull.get_rcvmore().unwrap());
                // Nothing else is there.
                assert_eq!(pull.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
            });
        }

        #[test]
        $(#[$m])*
        fn multipart_delivered_whole() {
            run(|| {
                let ctx = zmq::Context::new();
                let (push, pull, _) = connected_pair(&ctx);
                push.send_multipart(["a", "bb", "ccc"], 0).unwrap();
                let parts = pull.recv_multipart(0).unwrap();
                assert_eq!(parts, vec![b"a".to_vec(), b"bb".to_vec(), b"ccc".to_vec()]);
                assert!(!pull.get_rcvmore().unwrap());

                // Same with SNDMORE by hand, read frame by frame with RCVMORE.
                push.send("x", zmq::SNDMORE).unwrap();
                push.send("", zmq::SNDMORE).unwrap();
                push.send("z", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"x");
                assert!(pull.get_rcvmore().unwrap());
                let m = pull.recv_msg(0).unwrap();
                assert_eq!(&m[..], b"");
                assert!(m.get_more());
                assert!(pull.get_rcvmore().unwrap());
                assert_eq!(pull.recv_bytes(0).unwrap(), b"z");
                assert!(!pull.get_rcvmore().unwrap());

                // A single-part message after a multipart one is not glued to it.
                push.send("solo", 0).unwrap();
                assert_eq!(pull.recv_multipart(0).unwrap(), vec![b"solo".to_vec()]);
            });
        }

        #[test]
        $(#[$m])*
        fn push_pull_fan_out_round_robin() {
            run(|| {
                let ctx = zmq::Context::new();
                let push = sock!(ctx, zmq::PUSH);
                let ep = bind_any!(push);
                let pulls: Vec<zmq::Socket> = (0..3)
                    .map(|_| {
                        let p = sock!(ctx, zmq::PULL);
                        p.connect(&ep).unwrap();
                        p
                    })
                    .collect();
                // Handshake: send probes one at a time (each received before the next is
                // sent) until every PULL has received one, so all 3 are attached to the PUSH
                // and no probe is in flight.
                let mut got_probe = [false; 3];
                let start = Instant::now();
                while !got_probe.iter().all(|g| *g) {
                    assert!(start.elapsed() < Duration::from_secs(20), "PULLs never all connected: {got_probe:?}");
                    push.send("probe", 0).unwrap();
                    let mut received = false;
                    let sent_at = Instant::now();
                    while !received {
                        assert!(sent_at.elapsed() < Duration::from_secs(5), "probe lost");
                        for (i, p) in pulls.iter().enumerate() {
                            if let Some(m) = try_recv(p) {
                                assert_eq!(m, b"probe");
                                got_probe[i] = true;
                                received = true;
                            }
                        }
                        if !received {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
                for i in 0..300u32 {
                    push.send(&i.to_be_bytes()[..], 0).unwrap();
                }
                let mut all = Vec::new();
                for (k, p) in pulls.iter().enumerate() {
                    let got: Vec<u32> = recv_n(p, 100)
                        .into_iter()
                        .map(|m| u32::from_be_bytes(m[..].try_into().unwrap()))
                        .collect();
                    // Strict round robin: each PULL gets every third message, in order.
                    assert!(got.windows(2).all(|w| w[1] == w[0] + 3), "PULL {k} got {got:?}");
                    all.extend(got);
                }
                for p in &pulls {
                    assert_eq!(try_recv(p), None, "a PULL got more than 100");
                }
                all.sort();
                assert_eq!(all, (0..300).collect::<Vec<u32>>());
            });
        }

        #[test]
        $(#[$m])*
        fn pull_fair_queues_from_3_pushes() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                // A small receive HWM: per-peer queues hold ~10 messages, so the senders stay
                // backlogged in the kernel and the PULL keeps choosing among 3 busy peers.
                // (libzmq only notices newly readable peers when it processes commands, i.e.
                // when its active queues run dry or about every millisecond, so with deep
                // queues it legitimately serves one peer for a long burst.)
                pull.set_rcvhwm(10).unwrap();
                let ep = bind_any!(pull);
                let pushes: Vec<zmq::Socket> = (0..3u8)
                    .map(|k| {
                        let p = sock!(ctx, zmq::PUSH);
                        p.connect(&ep).unwrap();
                        p.send(&[b'p', k][..], 0).unwrap();
                        p
                    })
                    .collect();
                // All 3 connected: one probe from each.
                let mut probes: Vec<Vec<u8>> = recv_n(&pull, 3);
                probes.sort();
                assert_eq!(probes, vec![vec![b'p', 0], vec![b'p', 1], vec![b'p', 2]]);
                // Each sender queues 200 messages (sender k's messages are [k, seq]). They are
                // sent interleaved so that all 3 queues fill at the same pace: a PULL that
                // drains one peer before looking at the next still gets 30+ in a row from one.
                for i in 0..200u8 {
                    for (k, p) in pushes.iter().enumerate() {
                        p.send(&[k as u8, i][..], 0).unwrap();
                    }
                }
                let got = recv_n(&pull, 600);
                println!("senders in arrival order: {:?}", got.iter().map(|m| m[0]).collect::<Vec<_>>());
                // Fair queuing can only choose among peers whose messages have reached the PULL; the
                // I/O thread may deliver one peer's batch a little before the others, so allow an
                // initial burst (libzmq shows ~10 in a row per peer, ferromq up to ~50 on a loaded
                // machine), but within the first 100 all 3 senders must have been served.
                let first100: std::collections::BTreeSet<u8> =
                    got[..100].iter().map(|m| m[0]).collect();
                assert_eq!(
                    first100.len(),
                    3,
                    "first 100 messages come from all 3 senders: {:?}",
                    got[..100].iter().map(|m| m[0]).collect::<Vec<_>>()
                );
                // Over the first half, every sender got a fair share (a PULL that drains one
                // peer first would give 200/100/0 here).
                for k in 0..3u8 {
                    let n = got[..300].iter().filter(|m| m[0] == k).count();
                    assert!(n >= 50, "sender {k} got only {n} of the first 300");
                }
                // Per-sender order is kept and nothing is lost.
                for k in 0..3u8 {
                    let seq: Vec<u8> = got.iter().filter(|m| m[0] == k).map(|m| m[1]).collect();
                    assert_eq!(seq, (0..200).collect::<Vec<u8>>(), "sender {k}");
                }
            });
        }

        #[test]
        $(#[$m])*
        fn hwm_blocks_sender_dontwait_eagain() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                pull.set_rcvhwm(10).unwrap();
                let ep = bind_any!(pull);
                let push = sock!(ctx, zmq::PUSH);
                push.set_sndhwm(10).unwrap();
                push.connect(&ep).unwrap();
                push.send("probe", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"probe");
                // The receiver never reads again. Send 16 KiB messages without blocking until
                // no send has succeeded for 1 s: HWMs + kernel buffers are finite.
                let msg = payload(16 * 1024, 7);
                let mut sent = 0usize;
                let mut eagains = 0usize;
                let mut last_progress = Instant::now();
                loop {
                    match push.send(&msg[..], zmq::DONTWAIT) {
                        Ok(()) => {
                            sent += 1;
                            last_progress = Instant::now();
                            assert!(sent < 4000, "sender never blocked: HWM not enforced");
                        }
                        Err(zmq::Error::EAGAIN) => {
                            eagains += 1;
                            if last_progress.elapsed() > Duration::from_secs(1) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("send: {e:?}"),
                    }
                }
                println!("HWM 10/10, 16 KiB messages: {sent} sent before the sender stayed blocked");
                assert!(eagains > 0);
                assert!(sent >= 10, "at least SNDHWM messages are accepted, got {sent}");
                // Once the receiver reads everything, the data is intact, nothing was lost
                // and the sender has room again.
                for i in 0..sent {
                    let m = pull.recv_bytes(0).unwrap_or_else(|e| panic!("message {i} of {sent}: {e:?}"));
                    assert!(m == msg, "message {i} corrupted");
                }
                push.send("again", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"again");
            });
        }

        #[test]
        $(#[$m])*
        fn hwm_sender_resumes_after_receiver_drains_half() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                pull.set_rcvhwm(10).unwrap();
                let ep = bind_any!(pull);
                let push = sock!(ctx, zmq::PUSH);
                push.set_sndhwm(10).unwrap();
                push.connect(&ep).unwrap();
                push.send("probe", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"probe");
                // Saturate: DONTWAIT sends until none has succeeded for 1 s.
                let msg = payload(16 * 1024, 3);
                let mut sent = 0usize;
                let mut last_progress = Instant::now();
                while last_progress.elapsed() < Duration::from_secs(1) {
                    match push.send(&msg[..], zmq::DONTWAIT) {
                        Ok(()) => {
                            sent += 1;
                            last_progress = Instant::now();
                            assert!(sent < 4000, "sender never blocked");
                        }
                        Err(zmq::Error::EAGAIN) => std::thread::sleep(Duration::from_millis(5)),
                        Err(e) => panic!("send: {e:?}"),
                    }
                }
                // The receiver takes half; room propagates back through the kernel buffers
                // and the I/O threads, and a blocked sender is woken (blocking send, 5 s
                // timeout).
                for _ in 0..sent / 2 {
                    assert!(pull.recv_bytes(0).unwrap() == msg);
                }
                push.send("again", 0).expect("sender not woken after the receiver drained half its queue");
                for i in sent / 2..sent {
                    let m = pull.recv_bytes(0).unwrap_or_else(|e| panic!("message {i} of {sent}: {e:?}"));
                    assert!(m == msg);
                }
                assert_eq!(pull.recv_bytes(0).unwrap(), b"again");
            });
        }

        #[test]
        $(#[$m])*
        fn push_without_peer_eagain_and_sndtimeo() {
            run(|| {
                let ctx = zmq::Context::new();
                let push = sock!(ctx, zmq::PUSH);
                assert_eq!(push.send("x", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                push.set_sndtimeo(100).unwrap();
                let t = Instant::now();
                assert_eq!(push.send("x", 0), Err(zmq::Error::EAGAIN));
                let took = t.elapsed();
                assert!(took >= Duration::from_millis(95), "SNDTIMEO 100 returned after {took:?}");
                assert!(took < Duration::from_secs(4), "SNDTIMEO 100 returned after {took:?}");
            });
        }

        #[test]
        $(#[$m])*
        fn recv_timeout_on_empty_pull() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                bind_any!(pull);
                assert_eq!(pull.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                pull.set_rcvtimeo(100).unwrap();
                let t = Instant::now();
                assert_eq!(pull.recv_bytes(0), Err(zmq::Error::EAGAIN));
                let took = t.elapsed();
                assert!(took >= Duration::from_millis(95), "RCVTIMEO 100 returned after {took:?}");
                assert!(took < Duration::from_secs(4), "RCVTIMEO 100 returned after {took:?}");
                // recv_into and recv_msg time out the same way.
                let mut buf = [0u8; 8];
                assert_eq!(pull.recv_into(&mut buf, 0), Err(zmq::Error::EAGAIN));
                assert!(matches!(pull.recv_msg(0), Err(zmq::Error::EAGAIN)));
            });
        }

        #[test]
        $(#[$m])*
        fn connect_before_bind() {
            run(|| {
                let ctx = zmq::Context::new();
                let port = free_port();
                let ep = format!("tcp://127.0.0.1:{port}");
                let push = sock!(ctx, zmq::PUSH);
                push.set_reconnect_ivl(50).unwrap();
                push.connect(&ep).unwrap();
                // Without IMMEDIATE, a connecting socket queues messages before the peer
                // exists (libzmq behaviour: the pipe is created by connect()).
                push.send("early", zmq::DONTWAIT).unwrap();
                let pull = sock!(ctx, zmq::PULL);
                pull.bind(&ep).unwrap();
                push.send("late", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"early");
                assert_eq!(pull.recv_bytes(0).unwrap(), b"late");
            });
        }

        #[test]
        $(#[$m])*
        fn immediate_queues_only_on_completed_connections() {
            run(|| {
                let ctx = zmq::Context::new();
                let port = free_port();
                let ep = format!("tcp://127.0.0.1:{port}");
                let push = sock!(ctx, zmq::PUSH);
                push.set_reconnect_ivl(50).unwrap();
                push.set_immediate(true).unwrap();
                assert!(push.is_immediate().unwrap());
                push.connect(&ep).unwrap();
                // With IMMEDIATE, a connection that is not up yet takes no messages.
                assert_eq!(push.send("too-early", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                let pull = sock!(ctx, zmq::PULL);
                pull.bind(&ep).unwrap();
                // Once the connection is up, sends succeed (blocking send, 5 s timeout).
                push.send("on-time", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"on-time");
                assert_eq!(pull.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
            });
        }

        #[test]
        $(#[$m])*
        fn reconnect_after_peer_restart() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                let ep = bind_any!(pull);
                let push = sock!(ctx, zmq::PUSH);
                push.set_reconnect_ivl(50).unwrap();
                push.set_reconnect_ivl_max(200).unwrap();
                push.connect(&ep).unwrap();
                push.send("one", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"one");
                drop(pull);

                let pull2 = sock!(ctx, zmq::PULL);
                // The port may take a moment to be released by the closing listener.
                let bound = wait_until(Duration::from_secs(5), || pull2.bind(&ep).is_ok());
                assert!(bound, "could not rebind {ep}");
                // Messages sent around the restart may be lost; keep sending until one arrives.
                let start = Instant::now();
                let mut i = 0u32;
                let first = loop {
                    assert!(start.elapsed() < Duration::from_secs(10), "PUSH never reconnected");
                    let _ = push.send(&format!("ping{i}")[..], zmq::DONTWAIT);
                    i += 1;
                    if let Some(m) = try_recv(&pull2) {
                        break m;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                assert!(first.starts_with(b"ping"));
                push.send("after", 0).unwrap();
                // Drain remaining pings; "after" comes last.
                loop {
                    let m = pull2.recv_bytes(0).unwrap();
                    if m == b"after" {
                        break;
                    }
                    assert!(m.starts_with(b"ping"), "unexpected {m:?}");
                }
            });
        }

        #[test]
        $(#[$m])*
        fn linger_default_delivers_all_after_close() {
            run(|| {
                let rctx = zmq::Context::new();
                let pull = sock!(rctx, zmq::PULL);
                let ep = bind_any!(pull);
                let (done_tx, done_rx) = std::sync::mpsc::channel();
                let sender = std::thread::spawn(move || {
                    let ctx = zmq::Context::new();
                    let push = ctx.socket(zmq::PUSH).unwrap(); // default linger (-1)
                    push.set_sndtimeo(IO_TIMEOUT_MS).unwrap();
                    push.connect(&ep).unwrap();
                    for i in 0..1000u32 {
                        push.send(&i.to_be_bytes()[..], 0).unwrap();
                    }
                    drop(push);
                    drop(ctx); // blocks until everything is sent
                    done_tx.send(()).unwrap();
                });
                for i in 0..1000u32 {
                    let m = pull.recv_bytes(0).unwrap_or_else(|e| panic!("message {i}: {e:?}"));
                    assert_eq!(m, i.to_be_bytes());
                }
                done_rx.recv_timeout(Duration::from_secs(20)).expect("context drop with linger returned");
                sender.join().unwrap();
                assert_eq!(try_recv(&pull), None);
            });
        }

        #[test]
        $(#[$m])*
        fn linger_zero_unreachable_peer_drop_is_prompt() {
            run(|| {
                let port = free_port();
                let (done_tx, done_rx) = std::sync::mpsc::channel();
                let t = Instant::now();
                std::thread::spawn(move || {
                    let ctx = zmq::Context::new();
                    let push = ctx.socket(zmq::PUSH).unwrap();
                    push.set_linger(0).unwrap();
                    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
                    for _ in 0..10 {
                        push.send("stuck", zmq::DONTWAIT).unwrap();
                    }
                    drop(push);
                    drop(ctx);
                    done_tx.send(()).unwrap();
                });
                done_rx.recv_timeout(Duration::from_secs(10)).expect("context drop hung with linger 0");
                let took = t.elapsed();
                assert!(took < Duration::from_secs(2), "drop took {took:?}");
            });
        }

        #[test]
        $(#[$m])*
        fn message_sizes_round_trip() {
            run(|| {
                let ctx = zmq::Context::new();
                let (push, pull, _) = connected_pair(&ctx);
                for (i, len) in [0usize, 1, 255, 256, 1024, 4 << 20].into_iter().enumerate() {
                    let msg = payload(len, i as u8);
                    push.send(&msg[..], 0).unwrap();
                    let got = pull.recv_msg(0).unwrap();
                    assert_eq!(got.len(), len);
                    assert!(got[..] == msg[..], "payload of {len} bytes corrupted");
                }
                // recv_into truncates to the buffer and returns the full size.
                push.send(&payload(100, 1)[..], 0).unwrap();
                let mut buf = [0u8; 10];
                assert_eq!(pull.recv_into(&mut buf, 0).unwrap(), 100);
                assert_eq!(buf[..], payload(100, 1)[..10]);
            });
        }

        #[test]
        $(#[$m])*
        fn maxmsgsize_drops_offending_connection_only() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                pull.set_maxmsgsize(1000).unwrap();
                let ep = bind_any!(pull);
                let good = sock!(ctx, zmq::PUSH);
                good.connect(&ep).unwrap();
                let bad = sock!(ctx, zmq::PUSH);
                bad.connect(&ep).unwrap();
                good.send("good-probe", 0).unwrap();
                bad.send("bad-probe", 0).unwrap();
                let mut probes = recv_n(&pull, 2);
                probes.sort();
                assert_eq!(probes, vec![b"bad-probe".to_vec(), b"good-probe".to_vec()]);

                bad.send(&payload(1000, 1)[..], 0).unwrap(); // exactly the limit: accepted
                assert_eq!(pull.recv_bytes(0).unwrap(), payload(1000, 1));
                bad.send(&payload(2000, 2)[..], 0).unwrap(); // over: connection dropped
                for i in 0..100u32 {
                    good.send(&format!("good{i}")[..], 0).unwrap();
                }
                for i in 0..100u32 {
                    let m = pull.recv_bytes(0).unwrap();
                    assert_eq!(m, format!("good{i}").as_bytes(), "good sender's stream");
                }
                // The oversized message never shows up.
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(500) {
                    if let Some(m) = try_recv(&pull) {
                        assert!(m.len() <= 1000, "a {} byte message was delivered", m.len());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                good.send("still-served", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"still-served");
            });
        }

        #[test]
        $(#[$m])*
        fn unbind_stops_new_deliveries() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                let ep = bind_any!(pull);
                pull.unbind(&ep).unwrap();
                // Unbinding again (or something never bound) is ENOENT.
                assert_eq!(pull.unbind(&ep), Err(zmq::Error::ENOENT));
                let push = sock!(ctx, zmq::PUSH);
                push.set_reconnect_ivl(50).unwrap();
                push.connect(&ep).unwrap();
                let _ = push.send("lost", zmq::DONTWAIT);
                pull.set_rcvtimeo(500).unwrap();
                assert_eq!(pull.recv_bytes(0), Err(zmq::Error::EAGAIN));
                // The socket still works on a new endpoint.
                let ep2 = bind_any!(pull);
                let push2 = sock!(ctx, zmq::PUSH);
                push2.connect(&ep2).unwrap();
                push2.send("fresh", 0).unwrap();
                pull.set_rcvtimeo(IO_TIMEOUT_MS).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"fresh");
            });
        }

        #[test]
        $(#[$m])*
        fn disconnect_stops_delivery() {
            run(|| {
                let ctx = zmq::Context::new();
                let (push, pull, ep) = connected_pair(&ctx);
                push.disconnect(&ep).unwrap();
                assert_eq!(push.disconnect(&ep), Err(zmq::Error::ENOENT));
                assert_eq!(push.disconnect("tcp://127.0.0.1:1"), Err(zmq::Error::ENOENT));
                // No peer any more: nothing can be delivered.
                let _ = push.send("after-disconnect", zmq::DONTWAIT);
                pull.set_rcvtimeo(500).unwrap();
                assert_eq!(pull.recv_bytes(0), Err(zmq::Error::EAGAIN));
                // Reconnecting works.
                push.connect(&ep).unwrap();
                push.send("back", 0).unwrap();
                pull.set_rcvtimeo(IO_TIMEOUT_MS).unwrap();
                loop {
                    let m = pull.recv_bytes(0).unwrap();
                    if m == b"back" { break; }
                    assert_eq!(m, b"after-disconnect");
                }
            });
        }

        #[test]
        $(#[$m])*
        fn last_endpoint_wildcard_port() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                assert_eq!(pull.get_last_endpoint().unwrap().unwrap(), "");
                let ep = bind_any!(pull);
                let port = ep
                    .strip_prefix("tcp://127.0.0.1:")
                    .unwrap_or_else(|| panic!("last endpoint {ep:?}"))
                    .parse::<u16>()
                    .unwrap_or_else(|_| panic!("last endpoint {ep:?}"));
                assert_ne!(port, 0);
                // The port is really listening.
                std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to bound port");
                // A second wildcard bind gets another port and becomes the last endpoint.
                let ep2 = bind_any!(pull);
                assert_ne!(ep, ep2);
                // Connect records the endpoint as given.
                let push = sock!(ctx, zmq::PUSH);
                push.connect(&ep).unwrap();
                assert_eq!(push.get_last_endpoint().unwrap().unwrap(), ep);
            });
        }

        #[test]
        $(#[$m])*
        fn bind_star_and_port_zero() {
            run(|| {
                let ctx = zmq::Context::new();
                // libzmq: port 0 means "any port", like `*`, and `*` host means all interfaces
                // (reported as 0.0.0.0).
                for spec in ["tcp://*:0", "tcp://*:*", "tcp://127.0.0.1:0"] {
                    let pull = sock!(ctx, zmq::PULL);
                    pull.bind(spec).unwrap_or_else(|e| panic!("bind {spec}: {e:?}"));
                    let ep = pull.get_last_endpoint().unwrap().unwrap();
                    let host = if spec.starts_with("tcp://*") { "0.0.0.0" } else { "127.0.0.1" };
                    let port: u16 = ep
                        .strip_prefix(&format!("tcp://{host}:"))
                        .unwrap_or_else(|| panic!("{spec} -> {ep:?}"))
                        .parse()
                        .unwrap();
                    assert_ne!(port, 0, "{spec} -> {ep}");
                    let push = sock!(ctx, zmq::PUSH);
                    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
                    push.send(spec, 0).unwrap();
                    assert_eq!(pull.recv_bytes(0).unwrap(), spec.as_bytes());
                }
            });
        }

        #[test]
        $(#[$m])*
        fn ipv6_loopback() {
            run(|| {
                if !has_ipv6_loopback() {
                    println!("no ::1 on this machine: skipped");
                    return;
                }
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                // libzmq: without the IPV6 option an IPv6 address cannot be bound (ENODEV).
                assert!(!pull.is_ipv6().unwrap());
                assert_eq!(pull.bind("tcp://[::1]:*"), Err(zmq::Error::ENODEV));
                pull.set_ipv6(true).unwrap();
                pull.bind("tcp://[::1]:*").unwrap();
                let ep = pull.get_last_endpoint().unwrap().unwrap();
                assert!(ep.starts_with("tcp://[::1]:"), "{ep}");
                let push = sock!(ctx, zmq::PUSH);
                push.set_ipv6(true).unwrap();
                push.connect(&ep).unwrap();
                push.send("v6", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"v6");
            });
        }

        #[test]
        $(#[$m])*
        fn connect_by_host_name() {
            run(|| {
                let ctx = zmq::Context::new();
                let pull = sock!(ctx, zmq::PULL);
                let ep = bind_any!(pull);
                let push = sock!(ctx, zmq::PUSH);
                push.connect(&format!("tcp://localhost:{}", port_of(&ep))).unwrap();
                push.send("by-name", 0).unwrap();
                assert_eq!(pull.recv_bytes(0).unwrap(), b"by-name");
            });
        }

        #[test]
        $(#[$m])*
        fn bad_endpoints_rejected() {
            run(|| {
                let ctx = zmq::Context::new();
                let s = sock!(ctx, zmq::PULL);
                // Observed libzmq 4.3.4 errors (ferromq must return the same):
                let cases: &[(&str, zmq::Error)] = &[
                    // (endpoint, bind and connect error)
                    ("tcp://nope", zmq::Error::EINVAL),
                    ("foo://x", zmq::Error::EPROTONOSUPPORT),
                    ("tcp127.0.0.1:5555", zmq::Error::EINVAL),
                    ("", zmq::Error::EINVAL),
                    ("tcp://127.0.0.1", zmq::Error::EINVAL),
                    ("tcp://127.0.0.1:", zmq::Error::EINVAL),
                    ("tcp://127.0.0.1:abc", zmq::Error::EINVAL),
                ];
                for (ep, err) in cases {
                    assert_eq!(s.bind(ep), Err(*err), "bind {ep:?}");
                    assert_eq!(s.connect(ep), Err(*err), "connect {ep:?}");
                }
                // bind() needs a local interface address (no name resolution): anything else
                // is ENODEV. connect() resolves later, so it accepts such addresses.
                for ep in ["tcp://256.1.1.1:5555", "tcp://:5555", "tcp://localhost:*"] {
                    assert_eq!(s.bind(ep), Err(zmq::Error::ENODEV), "bind {ep:?}");
                }
                let c = sock!(ctx, zmq::PUSH);
                c.connect("tcp://256.1.1.1:5555").expect("connect to an unusable address is accepted");
                // A wildcard port cannot be connected to.
                assert_eq!(c.connect("tcp://127.0.0.1:*"), Err(zmq::Error::EINVAL));
                assert_eq!(c.connect("tcp://*:*"), Err(zmq::Error::EINVAL));
                // Nothing was bound by the failed attempts.
                assert_eq!(s.get_last_endpoint().unwrap().unwrap(), "");
                // Binding a port already bound is EADDRINUSE.
                let ep = bind_any!(s);
                let s2 = sock!(ctx, zmq::PULL);
                assert_eq!(s2.bind(&ep), Err(zmq::Error::EADDRINUSE));
            });
        }

        #[test]
        $(#[$m])*
        fn socket_type_reported() {
            run(|| {
                let ctx = zmq::Context::new();
                let push = ctx.socket(zmq::PUSH).unwrap();
                let pull = ctx.socket(zmq::PULL).unwrap();
                assert_eq!(push.get_socket_type().unwrap(), zmq::PUSH);
                assert_eq!(pull.get_socket_type().unwrap(), zmq::PULL);
                // PUSH cannot receive, PULL cannot send.
                assert_eq!(push.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::ENOTSUP));
                assert_eq!(pull.send("x", zmq::DONTWAIT), Err(zmq::Error::ENOTSUP));
            });
        }
    };
}

libzmq_instance!(libzmq, pipeline_suite);
ferro_instance!(ferro, pipeline_suite);
