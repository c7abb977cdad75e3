//! ferromq <-> libzmq interop of every socket pattern over tcp: REQ<->REP, REQ<->ROUTER,
//! DEALER<->REP, DEALER<->ROUTER, ROUTER<->ROUTER, PUB<->SUB, XPUB<->SUB, PUB<->XSUB,
//! XPUB<->XSUB; each in both directions (ferromq on either side) and with either side binding.
//!
//! Every scenario is a macro `scenario!(a, b, a_binds)` where `a`/`b` are the crates of the
//! two sides (the first socket type of the pair's name is `a`). `interop_suite!` expands each
//! scenario four times: `<name>_ferro_<a>_binds`, `<name>_ferro_<a>_connects`,
//! `<name>_libzmq_<a>_binds`, `<name>_libzmq_<a>_connects` (`ferro_x` means ferromq plays
//! the first type, libzmq the second; `libzmq_x` the other way round).
//!
//! Instances: `ferro::*` pairs ferromq with libzmq (switched by `patterns_instance!` in
//! tests/common); `libzmq_only::*` runs the same with libzmq on both sides, which checks the
//! tests' own logic today.

#[macro_use]
mod common;
#[allow(unused_imports)]
use common::*;

/// Binds one of two sockets and connects the other to it: `a` binds if `$a_binds`.
macro_rules! link {
    ($a:expr, $b:expr, $a_binds:expr) => {{
        if $a_binds {
            let ep = bind_any!($a);
            $b.connect(&ep).unwrap();
            ep
        } else {
            let ep = bind_any!($b);
            $a.connect(&ep).unwrap();
            ep
        }
    }};
}

/// Sends from a ROUTER_MANDATORY router, retrying while the peer is not attached.
macro_rules! router_send_when_attached {
    ($crate_:ident, $router:expr, $parts:expr) => {{
        let parts: Vec<&[u8]> = $parts;
        retry_until(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(10),
            "peer attached to ROUTER",
            || match $router.send_multipart(parts.iter().copied(), 0) {
                Ok(()) => Some(()),
                Err($crate_::Error::EHOSTUNREACH) => None,
                Err(e) => panic!("ROUTER send: {e:?}"),
            },
        )
    }};
}

/// Publishes `topic#probe` until `$sub` receives one, then a fence, and reads up to it.
macro_rules! sync_sub {
    ($sub_crate:ident, $publ:expr, $sub:expr, $topic:expr) => {{
        let topic: &[u8] = $topic;
        let probe = [topic, b"#probe"].concat();
        let fence = [topic, b"#fence"].concat();
        let start = std::time::Instant::now();
        loop {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "subscription never took effect"
            );
            $publ.send(&probe[..], 0).unwrap();
            if $sub.poll($sub_crate::POLLIN, 20).unwrap() > 0 {
                break;
            }
        }
        $publ.send(&fence[..], 0).unwrap();
        loop {
            let m = $sub.recv_bytes(0).expect("fence");
            if m == fence {
                break;
            }
            assert!(m.ends_with(b"#probe"), "before the fence: {m:?}");
        }
    }};
}

/// Receives from `$rx` while calling into `$other` meanwhile. libzmq attaches a new
/// connection to a socket only when the application calls into that socket (commands are
/// processed lazily), so a bound SUB/XSUB that nobody calls would never send its
/// subscriptions to a connecting XPUB.
macro_rules! recv_poking {
    ($rx_crate:ident, $rx:expr, $other:expr) => {{
        retry_until(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(0),
            "message while poking the peer socket",
            || {
                let _ = $other.get_events();
                if $rx.poll($rx_crate::POLLIN, 20).unwrap() > 0 {
                    Some($rx.recv_bytes(0).unwrap())
                } else {
                    None
                }
            },
        )
    }};
}

// ---------------------------------- request-reply ----------------------------------

/// REQ (`a`) <-> REP (`b`): three multipart round trips.
macro_rules! req_rep {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let req = sock!(ca, $a::REQ);
        let rep = sock!(cb, $b::REP);
        link!(req, rep, $a_binds);
        for i in 0..3u8 {
            req.send_multipart([&b"q"[..], &[i][..], b""], 0).unwrap();
            assert_eq!(rep.recv_multipart(0).unwrap(), frames(&[b"q", &[i], b""]));
            rep.send_multipart([&b"r"[..], &[i][..]], 0).unwrap();
            assert_eq!(req.recv_multipart(0).unwrap(), frames(&[b"r", &[i]]));
        }
        assert_eq!(
            req.send("x", 0).and_then(|_| req.send("y", 0)),
            Err($a::Error::EFSM)
        );
    }};
}

/// REQ (`a`) <-> ROUTER (`b`): the ROUTER sees [identity, "", body...] and answers.
macro_rules! req_router {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let req = sock!(ca, $a::REQ);
        req.set_identity(b"client-1").unwrap();
        let router = sock!(cb, $b::ROUTER);
        link!(req, router, $a_binds);
        req.send_multipart(["hello", "world"], 0).unwrap();
        assert_eq!(
            router.recv_multipart(0).unwrap(),
            frames(&[b"client-1", b"", b"hello", b"world"])
        );
        router
            .send_multipart(["client-1", "", "re", "ply"], 0)
            .unwrap();
        assert_eq!(req.recv_multipart(0).unwrap(), frames(&[b"re", b"ply"]));
    }};
}

/// DEALER (`a`) <-> REP (`b`): the REP strips and restores an envelope of several frames.
macro_rules! dealer_rep {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let dealer = sock!(ca, $a::DEALER);
        let rep = sock!(cb, $b::REP);
        link!(dealer, rep, $a_binds);
        dealer
            .send_multipart([&b"hop2"[..], b"hop1", b"", b"body", b""], 0)
            .unwrap();
        assert_eq!(rep.recv_multipart(0).unwrap(), frames(&[b"body", b""]));
        rep.send_multipart(["answer"], 0).unwrap();
        assert_eq!(
            dealer.recv_multipart(0).unwrap(),
            frames(&[b"hop2", b"hop1", b"", b"answer"])
        );
    }};
}

/// DEALER (`a`) <-> ROUTER (`b`): identity prefix in, routing out, envelope untouched.
macro_rules! dealer_router {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let dealer = sock!(ca, $a::DEALER);
        dealer.set_identity(b"dealer-id").unwrap();
        let router = sock!(cb, $b::ROUTER);
        link!(dealer, router, $a_binds);
        for i in 0..50u8 {
            dealer
                .send_multipart([&b"x"[..], b"", &[i][..]], 0)
                .unwrap();
        }
        for i in 0..50u8 {
            assert_eq!(
                router.recv_multipart(0).unwrap(),
                frames(&[b"dealer-id", b"x", b"", &[i]])
            );
            router
                .send_multipart([&b"dealer-id"[..], b"y", b"", &[i][..]], 0)
                .unwrap();
        }
        for i in 0..50u8 {
            assert_eq!(
                dealer.recv_multipart(0).unwrap(),
                frames(&[b"y", b"", &[i]])
            );
        }
    }};
}

/// ROUTER (`a`) <-> ROUTER (`b`) with explicit identities; the connecting side sends first
/// (ROUTER_MANDATORY, retried until the handshake is done).
macro_rules! router_router {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let ra = sock!(ca, $a::ROUTER);
        ra.set_identity(b"RA").unwrap();
        ra.set_router_mandatory(true).unwrap();
        let rb = sock!(cb, $b::ROUTER);
        rb.set_identity(b"RB").unwrap();
        rb.set_router_mandatory(true).unwrap();
        link!(ra, rb, $a_binds);
        if $a_binds {
            router_send_when_attached!($b, rb, vec![&b"RA"[..], b"from-b", b""]);
            assert_eq!(
                ra.recv_multipart(0).unwrap(),
                frames(&[b"RB", b"from-b", b""])
            );
            ra.send_multipart(["RB", "from-a"], 0).unwrap();
            assert_eq!(rb.recv_multipart(0).unwrap(), frames(&[b"RA", b"from-a"]));
        } else {
            router_send_when_attached!($a, ra, vec![&b"RB"[..], b"from-a", b""]);
            assert_eq!(
                rb.recv_multipart(0).unwrap(),
                frames(&[b"RA", b"from-a", b""])
            );
            rb.send_multipart(["RA", "from-b"], 0).unwrap();
            assert_eq!(ra.recv_multipart(0).unwrap(), frames(&[b"RB", b"from-b"]));
        }
        assert_eq!(
            ra.send_multipart(["nobody", "x"], 0),
            Err($a::Error::EHOSTUNREACH)
        );
    }};
}

// ----------------------------------- publish-subscribe -----------------------------------

/// PUB (`a`) <-> SUB (`b`): only subscribed topics arrive, multipart intact, unsubscribe.
macro_rules! pub_sub {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let publ = sock!(ca, $a::PUB);
        let sub = sock!(cb, $b::SUB);
        link!(publ, sub, $a_binds);
        sub.set_subscribe(b"A").unwrap();
        sub.set_subscribe(b"C").unwrap();
        sync_sub!($b, publ, sub, b"A");
        sync_sub!($b, publ, sub, b"C");
        publ.send("B-no", 0).unwrap();
        publ.send("A-1", 0).unwrap();
        publ.send_multipart(["A-multi", "", "part3"], 0).unwrap();
        publ.send_multipart(["X", "A-in-frame-2"], 0).unwrap();
        publ.send("C-1", 0).unwrap();
        assert_eq!(sub.recv_multipart(0).unwrap(), frames(&[b"A-1"]));
        assert_eq!(
            sub.recv_multipart(0).unwrap(),
            frames(&[b"A-multi", b"", b"part3"])
        );
        assert_eq!(sub.recv_multipart(0).unwrap(), frames(&[b"C-1"]));
        sub.set_unsubscribe(b"A").unwrap();
        publ.send("A-2", 0).unwrap();
        publ.send("C-2", 0).unwrap();
        assert_eq!(sub.recv_bytes(0).unwrap(), b"C-2");
    }};
}

/// XPUB (`a`) <-> SUB (`b`): subscriptions and unsubscriptions seen by the XPUB, delivery.
macro_rules! xpub_sub {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let xpub = sock!(ca, $a::XPUB);
        let sub = sock!(cb, $b::SUB);
        link!(xpub, sub, $a_binds);
        sub.set_subscribe(b"news").unwrap();
        assert_eq!(recv_poking!($a, xpub, sub), b"\x01news");
        xpub.send("sport-1", 0).unwrap();
        xpub.send_multipart(["news-1", "body"], 0).unwrap();
        assert_eq!(
            sub.recv_multipart(0).unwrap(),
            frames(&[b"news-1", b"body"])
        );
        sub.set_unsubscribe(b"news").unwrap();
        assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x00news");
        sub.set_subscribe(b"").unwrap();
        assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01");
        xpub.send("anything", 0).unwrap();
        assert_eq!(sub.recv_bytes(0).unwrap(), b"anything");
    }};
}

/// PUB (`a`) <-> XSUB (`b`): subscription messages sent by the XSUB application filter the
/// PUB's output.
macro_rules! pub_xsub {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let publ = sock!(ca, $a::PUB);
        let xsub = sock!(cb, $b::XSUB);
        link!(publ, xsub, $a_binds);
        xsub.send(&b"\x01T"[..], 0).unwrap();
        sync_sub!($b, publ, xsub, b"T");
        publ.send("U-no", 0).unwrap();
        publ.send_multipart(["T-1", "more"], 0).unwrap();
        assert_eq!(xsub.recv_multipart(0).unwrap(), frames(&[b"T-1", b"more"]));
        xsub.send(&b"\x00T"[..], 0).unwrap();
        xsub.send(&b"\x01U"[..], 0).unwrap();
        sync_sub!($b, publ, xsub, b"U");
        publ.send("T-2", 0).unwrap();
        publ.send("U-1", 0).unwrap();
        assert_eq!(xsub.recv_bytes(0).unwrap(), b"U-1");
    }};
}

/// XPUB (`a`) <-> XSUB (`b`): subscribe/unsubscribe both ways, data upstream, filtering.
macro_rules! xpub_xsub {
    ($a:ident, $b:ident, $a_binds:expr) => {{
        let (ca, cb) = ($a::Context::new(), $b::Context::new());
        let xpub = sock!(ca, $a::XPUB);
        let xsub = sock!(cb, $b::XSUB);
        link!(xpub, xsub, $a_binds);
        xsub.send(&b"\x01A"[..], 0).unwrap();
        assert_eq!(recv_poking!($a, xpub, xsub), b"\x01A");
        xsub.send_multipart(["upstream", "data"], 0).unwrap();
        assert_eq!(
            xpub.recv_multipart(0).unwrap(),
            frames(&[b"upstream", b"data"])
        );
        for m in ["A1", "B1", "A2"] {
            xpub.send(m, 0).unwrap();
        }
        assert_eq!(xsub.recv_bytes(0).unwrap(), b"A1");
        assert_eq!(xsub.recv_bytes(0).unwrap(), b"A2");
        xsub.send(&b"\x00A"[..], 0).unwrap();
        assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x00A");
        xsub.send(&b"\x01B"[..], 0).unwrap();
        assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01B");
        xpub.send("A3", 0).unwrap();
        xpub.send("B2", 0).unwrap();
        assert_eq!(xsub.recv_bytes(0).unwrap(), b"B2");
    }};
}

/// Four tests per scenario: ferromq as the first type (binding, connecting), then libzmq as
/// the first type (binding, connecting).
macro_rules! four_ways {
    ($scenario:ident, [$(#[$m:meta])*]) => {
        mod $scenario {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            $(#[$m])*
            fn ferro_first_binds() { run(|| $scenario!(fz, lz, true)) }
            #[test]
            $(#[$m])*
            fn ferro_first_connects() { run(|| $scenario!(fz, lz, false)) }
            #[test]
            $(#[$m])*
            fn libzmq_first_binds() { run(|| $scenario!(lz, fz, true)) }
            #[test]
            $(#[$m])*
            fn libzmq_first_connects() { run(|| $scenario!(lz, fz, false)) }
        }
    };
}

macro_rules! interop_suite {
    ([$($arg:expr),*] $(#[$m:meta])*) => {
        four_ways!(req_rep, [$(#[$m])*]);
        four_ways!(req_router, [$(#[$m])*]);
        four_ways!(dealer_rep, [$(#[$m])*]);
        four_ways!(dealer_router, [$(#[$m])*]);
        four_ways!(router_router, [$(#[$m])*]);
        four_ways!(pub_sub, [$(#[$m])*]);
        four_ways!(xpub_sub, [$(#[$m])*]);
        four_ways!(pub_xsub, [$(#[$m])*]);
        four_ways!(xpub_xsub, [$(#[$m])*]);
    };
}

libzmq_instance!(libzmq_only, interop_suite);
patterns_instance!(ferro, interop_suite);
