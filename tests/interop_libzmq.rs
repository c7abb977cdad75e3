//! ferromq <-> libzmq interop over tcp: `fz` is the ferromq side, `lz` the libzmq side.
//!
//! Written once in `interop_suite!`. `interop::*` pairs ferromq with libzmq (switched by
//! `ferro_instance!` in tests/common); `libzmq_only::*` runs the same tests with libzmq on
//! both sides, which checks the tests' own logic.

#[macro_use]
mod common;
#[allow(unused_imports)]
use common::*;

/// Sends, from `$tx` to `$rx`: 0 B, 1 B, 1 KiB and 4 MiB messages, a 3-part message and
/// 3000 numbered messages in a row; checks content, framing, order and count.
macro_rules! check_stream {
    ($tx:expr, $rx:expr) => {{
        let (tx, rx) = (&$tx, &$rx);
        for (i, len) in [0usize, 1, 1024, 4 << 20].into_iter().enumerate() {
            let msg = payload(len, i as u8 + 1);
            tx.send(&msg[..], 0).unwrap();
            let got = rx
                .recv_bytes(0)
                .unwrap_or_else(|e| panic!("{len} B message: {e:?}"));
            assert_eq!(got.len(), len);
            assert!(got == msg, "{len} B message corrupted");
            assert!(!rx.get_rcvmore().unwrap());
        }
        tx.send_multipart([&b"first"[..], &b""[..], &payload(2000, 9)[..]], 0)
            .unwrap();
        assert_eq!(
            rx.recv_multipart(0).unwrap(),
            vec![b"first".to_vec(), vec![], payload(2000, 9)]
        );
        for i in 0..3000u32 {
            tx.send(&i.to_be_bytes()[..], 0).unwrap();
        }
        for i in 0..3000u32 {
            let m = rx
                .recv_bytes(0)
                .unwrap_or_else(|e| panic!("message {i}: {e:?}"));
            assert_eq!(m, i.to_be_bytes(), "message {i} out of order");
        }
        assert!(rx.recv_bytes(DONTWAIT).is_err(), "extra message");
    }};
}

/// DONTWAIT for both crates (same value, 1).
const DONTWAIT: i32 = 1;

macro_rules! interop_suite {
    ([$($arg:expr),*] $(#[$m:meta])*) => {
        use std::time::{Duration, Instant};

        #[test]
        $(#[$m])*
        fn ferro_push_binds_libzmq_pull_connects() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let push = sock!(fctx, fz::PUSH);
                let ep = bind_any!(push);
                let pull = sock!(lctx, lz::PULL);
                pull.connect(&ep).unwrap();
                check_stream!(push, pull);
            });
        }

        #[test]
        $(#[$m])*
        fn ferro_push_connects_libzmq_pull_binds() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let pull = sock!(lctx, lz::PULL);
                let ep = bind_any!(pull);
                let push = sock!(fctx, fz::PUSH);
                push.connect(&ep).unwrap();
                check_stream!(push, pull);
            });
        }

        #[test]
        $(#[$m])*
        fn libzmq_push_binds_ferro_pull_connects() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let push = sock!(lctx, lz::PUSH);
                let ep = bind_any!(push);
                let pull = sock!(fctx, fz::PULL);
                pull.connect(&ep).unwrap();
                check_stream!(push, pull);
            });
        }

        #[test]
        $(#[$m])*
        fn libzmq_push_connects_ferro_pull_binds() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let pull = sock!(fctx, fz::PULL);
                let ep = bind_any!(pull);
                let push = sock!(lctx, lz::PUSH);
                push.connect(&ep).unwrap();
                check_stream!(push, pull);
            });
        }

        #[test]
        $(#[$m])*
        fn pair_ferro_binds_libzmq_connects() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let f = sock!(fctx, fz::PAIR);
                let ep = bind_any!(f);
                let l = sock!(lctx, lz::PAIR);
                l.connect(&ep).unwrap();
                check_stream!(l, f);
                check_stream!(f, l);
            });
        }

        #[test]
        $(#[$m])*
        fn pair_libzmq_binds_ferro_connects() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let l = sock!(lctx, lz::PAIR);
                let ep = bind_any!(l);
                let f = sock!(fctx, fz::PAIR);
                f.connect(&ep).unwrap();
                check_stream!(f, l);
                check_stream!(l, f);
            });
        }

        #[test]
        $(#[$m])*
        fn ferro_push_fans_out_to_libzmq_and_ferro_pulls() {
            // Mixed peers behind one PUSH: both get served.
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let push = sock!(fctx, fz::PUSH);
                let ep = bind_any!(push);
                let lpull = sock!(lctx, lz::PULL);
                lpull.connect(&ep).unwrap();
                let fpull = sock!(fctx, fz::PULL);
                fpull.connect(&ep).unwrap();
                let (mut l_got, mut f_got) = (0u32, 0u32);
                let start = Instant::now();
                let mut i = 0u32;
                while l_got == 0 || f_got == 0 {
                    assert!(start.elapsed() < Duration::from_secs(10), "not both served: {l_got} {f_got}");
                    push.send(&i.to_be_bytes()[..], 0).unwrap();
                    i += 1;
                    if lpull.recv_bytes(fz::DONTWAIT).is_ok() { l_got += 1; }
                    if fpull.recv_bytes(fz::DONTWAIT).is_ok() { f_got += 1; }
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }

        /// Sends with DONTWAIT for `for_` and asserts every attempt is EAGAIN: the socket
        /// never got a usable peer.
        macro_rules! never_has_peer {
            ($s:expr, $err:path, $for_:expr) => {{
                let start = Instant::now();
                while start.elapsed() < $for_ {
                    assert_eq!($s.send("nope", DONTWAIT), Err($err), "got a peer of the wrong type");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }};
        }

        #[test]
        $(#[$m])*
        fn libzmq_push_into_ferro_push_is_refused() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let fpush = sock!(fctx, fz::PUSH);
                let ep = bind_any!(fpush);
                let lpush = sock!(lctx, lz::PUSH);
                lpush.connect(&ep).unwrap();
                let _ = lpush.send("queued-by-libzmq", DONTWAIT);
                never_has_peer!(fpush, fz::Error::EAGAIN, Duration::from_secs(1));
                // Control: a peer of the right type is served by the same socket.
                let lpull = sock!(lctx, lz::PULL);
                lpull.connect(&ep).unwrap();
                fpush.send("right-type", 0).unwrap();
                assert_eq!(lpull.recv_bytes(0).unwrap(), b"right-type");
            });
        }

        #[test]
        $(#[$m])*
        fn ferro_push_into_libzmq_push_is_refused() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let lpush = sock!(lctx, lz::PUSH);
                let ep = bind_any!(lpush);
                let fpush = sock!(fctx, fz::PUSH);
                fpush.connect(&ep).unwrap();
                let _ = fpush.send("queued-by-ferromq", DONTWAIT);
                never_has_peer!(lpush, lz::Error::EAGAIN, Duration::from_secs(1));
                let fpull = sock!(fctx, fz::PULL);
                fpull.connect(&ep).unwrap();
                lpush.send("right-type", 0).unwrap();
                assert_eq!(fpull.recv_bytes(0).unwrap(), b"right-type");
            });
        }

        #[test]
        $(#[$m])*
        fn libzmq_push_into_ferro_pair_gets_nothing_through() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let fpair = sock!(fctx, fz::PAIR);
                fpair.set_rcvtimeo(1000).unwrap();
                let ep = bind_any!(fpair);
                let lpush = sock!(lctx, lz::PUSH);
                lpush.connect(&ep).unwrap();
                lpush.send("must-not-arrive", DONTWAIT).unwrap();
                assert_eq!(fpair.recv_bytes(0), Err(fz::Error::EAGAIN), "PUSH -> PAIR got through");
                // Control: a libzmq PAIR is served.
                let lpair = sock!(lctx, lz::PAIR);
                lpair.connect(&ep).unwrap();
                lpair.send("right-type", 0).unwrap();
                fpair.set_rcvtimeo(IO_TIMEOUT_MS).unwrap();
                assert_eq!(fpair.recv_bytes(0).unwrap(), b"right-type");
            });
        }

        #[test]
        $(#[$m])*
        fn ferro_push_into_libzmq_pair_gets_nothing_through() {
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let lpair = sock!(lctx, lz::PAIR);
                lpair.set_rcvtimeo(1000).unwrap();
                let ep = bind_any!(lpair);
                let fpush = sock!(fctx, fz::PUSH);
                fpush.connect(&ep).unwrap();
                fpush.send("must-not-arrive", DONTWAIT).unwrap();
                assert_eq!(lpair.recv_bytes(0), Err(lz::Error::EAGAIN), "PUSH -> PAIR got through");
                let fpair = sock!(fctx, fz::PAIR);
                fpair.connect(&ep).unwrap();
                fpair.send("right-type", 0).unwrap();
                lpair.set_rcvtimeo(IO_TIMEOUT_MS).unwrap();
                assert_eq!(lpair.recv_bytes(0).unwrap(), b"right-type");
            });
        }

        #[test]
        $(#[$m])*
        fn ferro_pull_from_libzmq_and_ferro_pushes() {
            // A ferromq PULL fair-queues a libzmq and a ferromq PUSH; per-peer order is kept.
            run(|| {
                let (fctx, lctx) = (fz::Context::new(), lz::Context::new());
                let pull = sock!(fctx, fz::PULL);
                let ep = bind_any!(pull);
                let lpush = sock!(lctx, lz::PUSH);
                lpush.connect(&ep).unwrap();
                let fpush = sock!(fctx, fz::PUSH);
                fpush.connect(&ep).unwrap();
                for i in 0..500u32 {
                    lpush.send(&[&b"L"[..], &i.to_be_bytes()[..]].concat()[..], 0).unwrap();
                    fpush.send(&[&b"F"[..], &i.to_be_bytes()[..]].concat()[..], 0).unwrap();
                }
                let (mut next_l, mut next_f) = (0u32, 0u32);
                for _ in 0..1000 {
                    let m = pull.recv_bytes(0).unwrap();
                    let n = u32::from_be_bytes(m[1..5].try_into().unwrap());
                    match m[0] {
                        b'L' => { assert_eq!(n, next_l); next_l += 1; }
                        b'F' => { assert_eq!(n, next_f); next_f += 1; }
                        _ => panic!("unexpected {m:?}"),
                    }
                }
                assert_eq!((next_l, next_f), (500, 500));
            });
        }
    };
}

libzmq_instance!(libzmq_only, interop_suite);
ferro_instance!(interop, interop_suite);
