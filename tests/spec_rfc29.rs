//! RFC 29/PUBSUB (https://rfc.zeromq.org/spec/29/): PUB, SUB, XPUB and XSUB, one test per
//! SHALL clause (paraphrased above each test with its section), plus libzmq 4.3 behaviour
//! (XPUB_VERBOSE, XPUB_WELCOME_MSG, subscriptions re-sent on reconnect, unsubscribe).
//!
//! Written once in `rfc29_suite!`, instantiated for libzmq (`libzmq::*`, the reference) and
//! for ferromq (`ferro::*`, switched by `patterns_instance!` in tests/common).
//!
//! Slow joiner: a SUB's subscription reaches the PUB asynchronously. Tests never sleep for
//! it: [`sync_sub`] publishes a probe on the topic until the SUB receives one (bounded), then
//! a fence, and reads up to the fence, so the stream is clean and the filter known to be in
//! place. "X is not delivered" is shown by ordering: X is published before a message that
//! is delivered, on the same connection, so if X had passed it would have come first.

#[macro_use]
mod common;
#[allow(unused_imports)]
use common::*;

macro_rules! rfc29_suite {
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

        /// Waits until `publ`'s messages starting with `topic` reach `sub`: publishes
        /// `topic#probe` every 20 ms until `sub` receives one (10 s bound), then `topic#fence`
        /// and reads up to it (probes discarded). Afterwards nothing from `publ` is in flight.
        fn sync_sub(publ: &zmq::Socket, sub: &zmq::Socket, topic: &[u8]) {
            let probe = [topic, b"#probe"].concat();
            let fence = [topic, b"#fence"].concat();
            let start = Instant::now();
            loop {
                assert!(start.elapsed() < Duration::from_secs(10), "subscription to {topic:?} never took effect");
                publ.send(&probe[..], 0).unwrap();
                if sub.poll(zmq::POLLIN, 20).unwrap() > 0 {
                    break;
                }
            }
            publ.send(&fence[..], 0).unwrap();
            loop {
                let m = sub.recv_bytes(0).expect("fence");
                if m == fence {
                    return;
                }
                // Probes (of this or an earlier sync on the same PUB) only.
                assert!(m.ends_with(b"#probe") || m.ends_with(b"#fence"), "before the fence: {m:?}");
            }
        }

        /// Receives the next whole message.
        fn recv_parts(s: &zmq::Socket) -> Vec<Vec<u8>> {
            s.recv_multipart(0).expect("recv_multipart")
        }

        /// A PUB bound on tcp and a SUB connected to it, not subscribed yet.
        fn pub_sub(ctx: &zmq::Context) -> (zmq::Socket, zmq::Socket) {
            let publ = sock!(ctx, zmq::PUB);
            let ep = bind_any!(publ);
            let sub = sock!(ctx, zmq::SUB);
            sub.connect(&ep).unwrap();
            (publ, sub)
        }

        // ================================ PUB / SUB ================================

        // RFC 29 "The PUB Socket Type", outgoing: SHALL perform a binary comparison of the
        // subscription against the start of the first frame of the message. "The SUB Socket
        // Type", incoming: MAY filter messages using a prefix match.
        #[test]
        $(#[$m])*
        fn rfc29_sub_shall_filter_by_prefix() {
            run(|| {
                let ctx = zmq::Context::new();
                let (publ, sub) = pub_sub(&ctx);
                sub.set_subscribe(b"A").unwrap();
                sync_sub(&publ, &sub, b"A");
                for m in ["B-no", "A-yes", "a-no", "AB-yes", "", "A", "BA-no", "A-end"] {
                    publ.send(m, 0).unwrap();
                }
                for want in ["A-yes", "AB-yes", "A", "A-end"] {
                    assert_eq!(sub.recv_bytes(0).unwrap(), want.as_bytes());
                }
                assert_eq!(try_recv(&sub), None);
            });
        }

        // Same clause: the comparison is binary (any byte, 0x00 included) and looks at the
        // first frame only; a matching message is delivered with all its frames.
        #[test]
        $(#[$m])*
        fn rfc29_pub_shall_compare_subscription_with_first_frame_only() {
            run(|| {
                let ctx = zmq::Context::new();
                let (publ, sub) = pub_sub(&ctx);
                let topic: &[u8] = b"\x00\xffT";
                sub.set_subscribe(topic).unwrap();
                sync_sub(&publ, &sub, topic);
                publ.send_multipart([&b"X"[..], topic], 0).unwrap(); // topic in frame 2: no
                publ.send(&b"\x00\xfe"[..], 0).unwrap(); // differs at byte 2: no
                publ.send(&b"\x00"[..], 0).unwrap(); // shorter than the topic: no
                publ.send_multipart([&b"\x00\xffT1"[..], b"", b"tail"], 0).unwrap();
                publ.send(&b"\x00\xffT-end"[..], 0).unwrap();
                assert_eq!(recv_parts(&sub), frames(&[b"\x00\xffT1", b"", b"tail"]));
                assert_eq!(recv_parts(&sub), frames(&[b"\x00\xffT-end"]));
            });
        }

        // A SUB with no subscription receives nothing; the empty subscription receives all.
        #[test]
        $(#[$m])*
        fn rfc29_sub_empty_subscription_receives_everything() {
            run(|| {
                let ctx = zmq::Context::new();
                let (publ, sub) = pub_sub(&ctx);
                let quiet = sock!(ctx, zmq::SUB); // connected, never subscribed
                quiet.connect(&publ.get_last_endpoint().unwrap().unwrap()).unwrap();
                sub.set_subscribe(b"").unwrap();
                sync_sub(&publ, &sub, b"");
                for m in ["x", "", "\u{0}bin", "last"] {
                    publ.send(m, 0).unwrap();
                }
                for want in ["x", "", "\u{0}bin", "last"] {
                    assert_eq!(sub.recv_bytes(0).unwrap(), want.as_bytes());
                }
                quiet.set_rcvtimeo(200).unwrap();
                assert_eq!(quiet.recv_bytes(0), Err(zmq::Error::EAGAIN));
            });
        }

        // Several overlapping subscriptions on one SUB: a message matching more than one is
        // delivered once.
        #[test]
        $(#[$m])*
        fn rfc29_sub_overlapping_subscriptions_deliver_once() {
            run(|| {
                let ctx = zmq::Context::new();
                let (publ, sub) = pub_sub(&ctx);
                sub.set_subscribe(b"A").unwrap();
                sub.set_subscribe(b"AB").unwrap();
                sub.set_subscribe(b"AB").unwrap(); // twice: counted, still one delivery
                sync_sub(&publ, &sub, b"AB");
                publ.send("ABC", 0).unwrap();
                publ.send("A-end", 0).unwrap();
                assert_eq!(sub.recv_bytes(0).unwrap(), b"ABC");
                assert_eq!(sub.recv_bytes(0).unwrap(), b"A-end", "ABC delivered once");
            });
        }

        // libzmq: ZMQ_UNSUBSCRIBE removes one instance of a subscription; when none is left,
        // matching messages stop (at once: the SUB also filters locally).
        #[test]
        $(#[$m])*
        fn rfc29_sub_unsubscribe_stops_delivery() {
            run(|| {
                let ctx = zmq::Context::new();
                let (publ, sub) = pub_sub(&ctx);
                sub.set_subscribe(b"A").unwrap();
                sub.set_subscribe(b"A").unwrap();
                sub.set_subscribe(b"B").unwrap();
                sync_sub(&publ, &sub, b"A");
                sync_sub(&publ, &sub, b"B");
                sub.set_unsubscribe(b"A").unwrap(); // one "A" left
                publ.send("A1", 0).unwrap();
                publ.send("B1", 0).unwrap();
                assert_eq!(sub.recv_bytes(0).unwrap(), b"A1");
                assert_eq!(sub.recv_bytes(0).unwrap(), b"B1");
                sub.set_unsubscribe(b"A").unwrap(); // none left
                publ.send("A2", 0).unwrap();
                publ.send("B2", 0).unwrap();
                assert_eq!(sub.recv_bytes(0).unwrap(), b"B2", "A2 filtered after unsubscribe");
                // Unsubscribing something never subscribed is accepted and harmless.
                sub.set_unsubscribe(b"never").unwrap();
                publ.send("B3", 0).unwrap();
                assert_eq!(sub.recv_bytes(0).unwrap(), b"B3");
            });
        }

        // RFC 29 "The PUB Socket Type", general: SHALL only send messages; "The SUB Socket
        // Type", general: SHALL only receive messages (libzmq: ENOTSUP).
        #[test]
        $(#[$m])*
        fn rfc29_pub_shall_only_send_and_sub_shall_only_receive() {
            run(|| {
                let ctx = zmq::Context::new();
                let publ = sock!(ctx, zmq::PUB);
                let sub = sock!(ctx, zmq::SUB);
                assert_eq!(publ.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::ENOTSUP));
                assert_eq!(sub.send("x", zmq::DONTWAIT), Err(zmq::Error::ENOTSUP));
                assert_eq!(publ.get_socket_type().unwrap(), zmq::PUB);
                assert_eq!(sub.get_socket_type().unwrap(), zmq::SUB);
                // Subscribing is for SUB (and XSUB) only.
                assert_eq!(publ.set_subscribe(b"x"), Err(zmq::Error::EINVAL));
            });
        }

        // RFC 29 "The PUB Socket Type", outgoing: SHALL NOT block on sending (no subscriber
        // at all: messages are dropped, the send returns at once).
        #[test]
        $(#[$m])*
        fn rfc29_pub_shall_not_block_on_send() {
            run(|| {
                let ctx = zmq::Context::new();
                let publ = sock!(ctx, zmq::PUB);
                bind_any!(publ);
                let t = Instant::now();
                for i in 0..100_000u32 {
                    publ.send(&i.to_be_bytes()[..], 0).unwrap();
                }
                publ.send("x", zmq::DONTWAIT).unwrap();
                assert!(t.elapsed() < Duration::from_secs(20), "took {:?}", t.elapsed());
                // Also with a connected subscriber that never reads (queue full).
                let sub = sock!(ctx, zmq::SUB);
                sub.set_rcvhwm(1).unwrap();
                sub.connect(&publ.get_last_endpoint().unwrap().unwrap()).unwrap();
                sub.set_subscribe(b"").unwrap();
                sync_sub(&publ, &sub, b"");
                publ.set_sndhwm(1).unwrap();
                let body = payload(4096, 7);
                for i in 0..20_000u32 {
                    publ.send(&body[..], 0).unwrap_or_else(|e| panic!("send {i}: {e:?}"));
                }
            });
        }

        // RFC 29 "The PUB Socket Type", outgoing: SHALL silently drop the message if the
        // queue for a subscriber is full. What arrives is in order, with gaps.
        #[test]
        $(#[$m])*
        fn rfc29_pub_shall_drop_when_subscriber_hwm_reached() {
            run(|| {
                let ctx = zmq::Context::new();
                let publ = sock!(ctx, zmq::PUB);
                publ.set_sndhwm(10).unwrap();
                let ep = bind_any!(publ);
                let sub = sock!(ctx, zmq::SUB);
                sub.set_rcvhwm(10).unwrap();
                sub.connect(&ep).unwrap();
                sub.set_subscribe(b"").unwrap();
                sync_sub(&publ, &sub, b"");
                const N: u32 = 20_000;
                let body = payload(2048, 1);
                for i in 0..N {
                    let mut m = i.to_be_bytes().to_vec();
                    m.extend_from_slice(&body);
                    publ.send(&m[..], 0).unwrap();
                }
                // Drain; "end" is re-published whenever the SUB is empty, until it gets in.
                let mut got = Vec::new();
                let start = Instant::now();
                loop {
                    assert!(start.elapsed() < Duration::from_secs(30), "no end marker");
                    match try_recv(&sub) {
                        Some(m) if m == b"end" => break,
                        Some(m) => {
                            assert_eq!(m.len(), 4 + body.len(), "message intact");
                            got.push(u32::from_be_bytes(m[..4].try_into().unwrap()));
                        }
                        None => {
                            publ.send("end", 0).unwrap();
                            sub.poll(zmq::POLLIN, 50).unwrap();
                        }
                    }
                }
                assert!(!got.is_empty(), "the SUB got some of the burst");
                assert!((got.len() as u32) < N, "all {N} arrived: nothing dropped at HWM 10");
                assert!(got.windows(2).all(|w| w[0] < w[1]), "in order, no duplicates");
            });
        }

        // RFC 29 "The PUB Socket Type": MAY be connected to any number of subscribers; a
        // message goes to every subscriber whose subscription matches, and only those.
        #[test]
        $(#[$m])*
        fn rfc29_pub_shall_send_to_every_matching_subscriber() {
            run(|| {
                let ctx = zmq::Context::new();
                let publ = sock!(ctx, zmq::PUB);
                let ep = bind_any!(publ);
                let topics: [&[u8]; 3] = [b"red", b"green", b"r"];
                let subs: Vec<zmq::Socket> = topics
                    .iter()
                    .map(|t| {
                        let s = sock!(ctx, zmq::SUB);
                        s.connect(&ep).unwrap();
                        s.set_subscribe(t).unwrap();
                        s
                    })
                    .collect();
                for (s, t) in subs.iter().zip(topics) {
                    sync_sub(&publ, s, t);
                }
                // Later syncs published probes the earlier subs may match ("r" matches
                // "red#..."): drain with a common fence on every sub.
                for s in &subs {
                    s.set_subscribe(b"#fence").unwrap();
                }
                for s in &subs {
                    sync_sub(&publ, s, b"#fence");
                }
                for m in ["green-1", "red-1", "blue-1", "r-1", "end"] {
                    publ.send(m, 0).unwrap();
                }
                publ.send("#fence-end", 0).unwrap();
                let expect: [&[&str]; 3] = [&["red-1"], &["green-1"], &["red-1", "r-1"]];
                for (s, want) in subs.iter().zip(expect) {
                    let mut got = Vec::new();
                    loop {
                        let m = s.recv_bytes(0).unwrap();
                        if m == b"#fence-end" {
                            break;
                        }
                        if m.starts_with(b"#fence") {
                            continue; // a late probe of the syncs above
                        }
                        got.push(String::from_utf8(m).unwrap());
                    }
                    assert_eq!(got, want);
                }
            });
        }

        // RFC 29 "The PUB Socket Type", outgoing: SHALL not modify outgoing messages in any
        // way; "The SUB Socket Type": SHALL not modify incoming messages.
        #[test]
        $(#[$m])*
        fn rfc29_pub_and_sub_shall_not_modify_messages() {
            run(|| {
                let ctx = zmq::Context::new();
                let (publ, sub) = pub_sub(&ctx);
                sub.set_subscribe(b"t").unwrap();
                sync_sub(&publ, &sub, b"t");
                let big = payload(100_000, 3);
                let parts: Vec<&[u8]> = vec![b"t\x00\xff", b"", &big[..], b"z"];
                publ.send_multipart(parts.iter().copied(), 0).unwrap();
                assert_eq!(recv_parts(&sub), frames(&parts));
            });
        }

        // RFC 29 "The SUB Socket Type", incoming: SHALL receive incoming messages from its
        // publishers using a fair-queuing strategy (here: from every publisher, each
        // publisher's stream in order).
        #[test]
        $(#[$m])*
        fn rfc29_sub_shall_receive_from_all_publishers() {
            run(|| {
                let ctx = zmq::Context::new();
                let sub = sock!(ctx, zmq::SUB);
                sub.set_subscribe(b"").unwrap();
                let pubs: Vec<zmq::Socket> = (0..3).map(|_| sock!(ctx, zmq::PUB)).collect();
                for (k, p) in pubs.iter().enumerate() {
                    let ep = bind_any!(p);
                    sub.connect(&ep).unwrap();
                    sync_sub(p, &sub, format!("p{k}").as_bytes());
                }
                const N: u8 = 100;
                for i in 0..N {
                    for (k, p) in pubs.iter().enumerate() {
                        p.send(&[k as u8, i][..], 0).unwrap();
                    }
                }
                let mut next = [0u8; 3];
                for _ in 0..3 * N as usize {
                    let m = sub.recv_bytes(0).unwrap();
                    let k = m[0] as usize;
                    assert_eq!(m[1], next[k], "publisher {k} in order");
                    next[k] += 1;
                }
                assert_eq!(next, [N; 3]);
            });
        }

        // RFC 29 "The SUB Socket Type": the SUB maintains its subscriptions across
        // connections (libzmq re-sends them on every (re)connect): after the publisher
        // restarts on the same endpoint, filtered delivery resumes with no new subscribe call.
        #[test]
        $(#[$m])*
        fn rfc29_sub_subscriptions_resent_after_publisher_restart() {
            run(|| {
                let ctx = zmq::Context::new();
                let publ = sock!(ctx, zmq::PUB);
                let ep = bind_any!(publ);
                let sub = sock!(ctx, zmq::SUB);
                sub.set_reconnect_ivl(20).unwrap();
                sub.connect(&ep).unwrap();
                sub.set_subscribe(b"T").unwrap();
                sync_sub(&publ, &sub, b"T");
                drop(publ);
                let publ2 = sock!(ctx, zmq::PUB);
                retry_until(Duration::from_secs(10), Duration::from_millis(20), "rebind", || {
                    publ2.bind(&ep).ok()
                });
                // A PUB only sends what a SUB subscribed to: this passes only if the SUB
                // re-sent "T" to the new PUB.
                sync_sub(&publ2, &sub, b"T");
                publ2.send("U-no", 0).unwrap();
                publ2.send("T-yes", 0).unwrap();
                assert_eq!(sub.recv_bytes(0).unwrap(), b"T-yes");
            });
        }

        // RFC 29 "The PUB Socket Type", general: SHALL silently discard any messages that
        // subscribers send it (an XSUB can send data upstream; the PUB keeps working).
        #[test]
        $(#[$m])*
        fn rfc29_pub_shall_discard_messages_from_subscribers() {
            run(|| {
                let ctx = zmq::Context::new();
                let publ = sock!(ctx, zmq::PUB);
                let ep = bind_any!(publ);
                let xsub = sock!(ctx, zmq::XSUB);
                xsub.connect(&ep).unwrap();
                xsub.send("junk from subscriber", 0).unwrap();
                xsub.send_multipart(["more", "junk"], 0).unwrap();
                xsub.send(&b"\x01A"[..], 0).unwrap();
                sync_sub(&publ, &xsub, b"A");
                publ.send("A-after", 0).unwrap();
                assert_eq!(xsub.recv_bytes(0).unwrap(), b"A-after");
                assert_eq!(publ.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::ENOTSUP));
            });
        }

        // ================================ XPUB ================================

        // RFC 29 "The XPUB Socket Type", subscriptions: SHALL receive subscribe and
        // unsubscribe requests and SHALL deliver these commands to its calling application
        // (as messages: 0x01 or 0x00, then the topic).
        #[test]
        $(#[$m])*
        fn rfc29_xpub_shall_deliver_subscriptions_to_application() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                let ep = bind_any!(xpub);
                let sub = sock!(ctx, zmq::SUB);
                sub.connect(&ep).unwrap();
                sub.set_subscribe(b"topic").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01topic");
                sub.set_subscribe(b"").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01");
                // Delivery follows the subscription the XPUB just reported (no slow joiner).
                xpub.send("topic-1", 0).unwrap();
                assert_eq!(sub.recv_bytes(0).unwrap(), b"topic-1");
                sub.set_unsubscribe(b"topic").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x00topic");
                sub.set_unsubscribe(b"").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x00");
                assert!(!xpub.get_rcvmore().unwrap());
            });
        }

        // RFC 29 "The XPUB Socket Type", subscriptions: MAY normalize commands so that
        // multiple identical subscriptions result in a single command (libzmq default: a
        // subscription is passed up only when new, an unsubscription only when the last
        // subscriber of the topic leaves).
        #[test]
        $(#[$m])*
        fn rfc29_xpub_non_verbose_passes_only_first_duplicate_subscription() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                let ep = bind_any!(xpub);
                let s1 = sock!(ctx, zmq::SUB);
                let s2 = sock!(ctx, zmq::SUB);
                s1.connect(&ep).unwrap();
                s2.connect(&ep).unwrap();
                s1.set_subscribe(b"dup").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01dup");
                s2.set_subscribe(b"dup").unwrap();
                s2.set_subscribe(b"m2").unwrap(); // same connection, so after "dup"
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01m2", "duplicate \\x01dup passed up");
                s1.set_unsubscribe(b"dup").unwrap();
                s1.set_subscribe(b"m1").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01m1", "\\x00dup passed while s2 still has it");
                s2.set_unsubscribe(b"dup").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x00dup", "last subscriber left");
            });
        }

        // libzmq XPUB_VERBOSE: every subscription message is passed up, duplicates too.
        #[test]
        $(#[$m])*
        fn rfc29_xpub_verbose_passes_duplicate_subscriptions() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                xpub.set_xpub_verbose(true).unwrap();
                let ep = bind_any!(xpub);
                let s1 = sock!(ctx, zmq::SUB);
                let s2 = sock!(ctx, zmq::SUB);
                s1.connect(&ep).unwrap();
                s2.connect(&ep).unwrap();
                s1.set_subscribe(b"dup").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01dup");
                s2.set_subscribe(b"dup").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01dup", "the duplicate is passed up");
                s1.set_subscribe(b"dup").unwrap(); // a repeat on the same connection too
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01dup");
            });
        }

        // RFC 29 "The XPUB Socket Type", subscriptions: SHALL, if the subscriber peer
        // disconnects prematurely, generate a suitable unsubscribe request for the calling
        // application.
        #[test]
        $(#[$m])*
        fn rfc29_xpub_shall_generate_unsubscribe_when_subscriber_disconnects() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                let ep = bind_any!(xpub);
                {
                    let sub = sock!(ctx, zmq::SUB);
                    sub.connect(&ep).unwrap();
                    sub.set_subscribe(b"gone").unwrap();
                    assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01gone");
                }
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x00gone");
            });
        }

        // libzmq XPUB_WELCOME_MSG: sent to every new subscriber on connect (its SUB must
        // subscribe to it to see it).
        #[test]
        $(#[$m])*
        fn rfc29_xpub_welcome_message_sent_to_new_subscriber() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                xpub.set_xpub_welcome_msg(Some("W")).unwrap();
                xpub.set_xpub_verbose(true).unwrap();
                let ep = bind_any!(xpub);
                let mut subs = Vec::new(); // kept open: a closed SUB would send \x00W
                for k in 0..2 {
                    let sub = sock!(ctx, zmq::SUB);
                    sub.set_subscribe(b"W").unwrap();
                    sub.connect(&ep).unwrap();
                    // libzmq attaches a new peer to a bound socket only when the application
                    // calls into that socket: receive the subscription first (it also shows
                    // the peer is attached), then the welcome is on its way.
                    assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01W");
                    assert_eq!(sub.recv_bytes(0).unwrap(), b"W", "subscriber {k} welcomed");
                    assert_eq!(try_recv(&sub), None, "welcomed once");
                    subs.push(sub);
                }
            });
        }

        // RFC 29 "The XPUB Socket Type", incoming: SHALL receive incoming messages from its
        // subscribers (fair-queued) and SHALL deliver them to its calling application (libzmq:
        // a message whose first byte is neither 0 nor 1 is data, passed up as is).
        #[test]
        $(#[$m])*
        fn rfc29_xpub_shall_deliver_messages_from_subscribers() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                let ep = bind_any!(xpub);
                let xsub = sock!(ctx, zmq::XSUB);
                xsub.connect(&ep).unwrap();
                xsub.send("hello upstream", 0).unwrap();
                xsub.send_multipart(["two", "parts"], 0).unwrap();
                assert_eq!(xpub.recv_multipart(0).unwrap(), frames(&[b"hello upstream"]));
                assert_eq!(xpub.recv_multipart(0).unwrap(), frames(&[b"two", b"parts"]));
            });
        }

        // RFC 29 "The XPUB Socket Type", outgoing: SHALL send messages only to matching
        // subscribers and SHALL NOT block on sending.
        #[test]
        $(#[$m])*
        fn rfc29_xpub_shall_filter_and_not_block() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                let ep = bind_any!(xpub);
                for i in 0..10_000u32 {
                    xpub.send(&i.to_be_bytes()[..], 0).unwrap(); // nobody: dropped at once
                }
                let sub = sock!(ctx, zmq::SUB);
                sub.connect(&ep).unwrap();
                sub.set_subscribe(b"yes").unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01yes");
                xpub.send("no-1", 0).unwrap();
                xpub.send("yes-1", 0).unwrap();
                assert_eq!(sub.recv_bytes(0).unwrap(), b"yes-1");
            });
        }

        // ================================ XSUB ================================

        // RFC 29 "The XSUB Socket Type", subscriptions: SHALL accept subscription commands
        // from its calling application (messages 0x01/0x00 + topic) and SHALL send them to
        // publishers; incoming: filters by them.
        #[test]
        $(#[$m])*
        fn rfc29_xsub_shall_send_subscriptions_upstream() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                let ep = bind_any!(xpub);
                let xsub = sock!(ctx, zmq::XSUB);
                xsub.connect(&ep).unwrap();
                xsub.send(&b"\x01topic"[..], 0).unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01topic");
                for m in ["other", "topic-1", "top", "topic-2"] {
                    xpub.send(m, 0).unwrap();
                }
                assert_eq!(xsub.recv_bytes(0).unwrap(), b"topic-1");
                assert_eq!(xsub.recv_bytes(0).unwrap(), b"topic-2");
                xsub.send(&b"\x00topic"[..], 0).unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x00topic");
                xsub.send(&b"\x01other"[..], 0).unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01other");
                xpub.send("topic-3", 0).unwrap();
                xpub.send("other-1", 0).unwrap();
                assert_eq!(xsub.recv_bytes(0).unwrap(), b"other-1", "topic-3 not sent any more");
            });
        }

        // RFC 29 "The XSUB Socket Type", outgoing: SHALL send all messages to all connected
        // publishers; SHALL NOT block on sending.
        #[test]
        $(#[$m])*
        fn rfc29_xsub_shall_send_to_all_publishers() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpubs: Vec<zmq::Socket> = (0..3).map(|_| sock!(ctx, zmq::XPUB)).collect();
                let xsub = sock!(ctx, zmq::XSUB);
                for x in &xpubs {
                    xsub.connect(&bind_any!(x)).unwrap();
                }
                xsub.send(&b"\x01all"[..], 0).unwrap();
                xsub.send("data", 0).unwrap();
                for x in &xpubs {
                    assert_eq!(x.recv_bytes(0).unwrap(), b"\x01all");
                    assert_eq!(x.recv_bytes(0).unwrap(), b"data");
                }
                // No publisher connected: sending does not block.
                let lone = sock!(ctx, zmq::XSUB);
                lone.send(&b"\x01x"[..], zmq::DONTWAIT).unwrap();
                lone.send("data", zmq::DONTWAIT).unwrap();
            });
        }

        // Order upstream: what an XSUB sends reaches the publisher in a way that never lets
        // data overtake a subscription sent before it (the subscription is what a proxy's
        // publisher side acts on first).
        #[test]
        $(#[$m])*
        fn rfc29_xsub_subscription_never_arrives_after_later_data() {
            run(|| {
                let ctx = zmq::Context::new();
                let xpub = sock!(ctx, zmq::XPUB);
                let xsub = sock!(ctx, zmq::XSUB);
                xsub.connect(&bind_any!(xpub)).unwrap();
                const N: usize = 300;
                for i in 0..N {
                    xsub.send(format!("\x01t{i}").as_bytes(), 0).unwrap();
                    xsub.send(format!("d{i}").as_bytes(), 0).unwrap();
                }
                let mut subscribed = std::collections::HashSet::new();
                let mut data = 0;
                while data < N {
                    let m = xpub.recv_bytes(0).unwrap();
                    if let Some(topic) = m.strip_prefix(b"\x01") {
                        subscribed.insert(topic.to_vec());
                    } else {
                        let i = std::str::from_utf8(&m[1..]).unwrap();
                        assert!(
                            subscribed.contains(format!("t{i}").as_bytes()),
                            "data d{i} arrived before subscription t{i}"
                        );
                        data += 1;
                    }
                }
            });
        }

        // libzmq: an XSUB (like a SUB) sends its current subscriptions to every publisher it
        // connects to later.
        #[test]
        $(#[$m])*
        fn rfc29_xsub_shall_send_subscriptions_to_new_publisher() {
            run(|| {
                let ctx = zmq::Context::new();
                let xsub = sock!(ctx, zmq::XSUB);
                xsub.send(&b"\x01early"[..], 0).unwrap();
                xsub.send(&b"\x01late"[..], 0).unwrap();
                xsub.send(&b"\x00late"[..], 0).unwrap();
                let xpub = sock!(ctx, zmq::XPUB);
                xsub.connect(&bind_any!(xpub)).unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01early");
                xsub.send(&b"\x01marker"[..], 0).unwrap();
                assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01marker", "\"late\" was withdrawn");
            });
        }

        // Socket types are reported for the four pub-sub types.
        #[test]
        $(#[$m])*
        fn rfc29_socket_types_reported() {
            run(|| {
                let ctx = zmq::Context::new();
                for t in [zmq::PUB, zmq::SUB, zmq::XPUB, zmq::XSUB] {
                    let s = ctx.socket(t).unwrap_or_else(|e| panic!("socket({t:?}): {e:?}"));
                    assert_eq!(s.get_socket_type().unwrap(), t);
                }
            });
        }
    };
}

libzmq_instance!(libzmq, rfc29_suite);
patterns_instance!(ferro, rfc29_suite);
