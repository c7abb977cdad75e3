//! PAIR (RFC 31, exclusive pair) behaviour over tcp.
//!
//! Written once in `pair_suite!`, instantiated for libzmq (`libzmq::*`, the reference) and
//! ferromq (`ferro::*`, switched by `ferro_instance!` in tests/common).

#[macro_use]
mod common;
#[allow(unused_imports)]
use common::*;

macro_rules! pair_suite {
    ([$($arg:expr),*] $(#[$m:meta])*) => {
        use std::time::{Duration, Instant};

        /// Two PAIRs connected over tcp (`a` binds, `b` connects), with one message through in
        /// each direction so the connection is known to be up.
        fn connected_pairs(ctx: &zmq::Context) -> (zmq::Socket, zmq::Socket, String) {
            let a = sock!(ctx, zmq::PAIR);
            let ep = bind_any!(a);
            let b = sock!(ctx, zmq::PAIR);
            b.connect(&ep).unwrap();
            b.send("hello-a", 0).unwrap();
            assert_eq!(a.recv_bytes(0).unwrap(), b"hello-a");
            a.send("hello-b", 0).unwrap();
            assert_eq!(b.recv_bytes(0).unwrap(), b"hello-b");
            (a, b, ep)
        }

        #[test]
        $(#[$m])*
        fn pair_both_directions() {
            run(|| {
                let ctx = zmq::Context::new();
                let (a, b, _) = connected_pairs(&ctx);
                for i in 0..100u32 {
                    a.send(&format!("a{i}")[..], 0).unwrap();
                    b.send(&format!("b{i}")[..], 0).unwrap();
                }
                for i in 0..100u32 {
                    assert_eq!(b.recv_bytes(0).unwrap(), format!("a{i}").as_bytes());
                    assert_eq!(a.recv_bytes(0).unwrap(), format!("b{i}").as_bytes());
                }
                assert_eq!(a.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                assert_eq!(b.recv_bytes(zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                assert_eq!(a.get_socket_type().unwrap(), zmq::PAIR);
            });
        }

        #[test]
        $(#[$m])*
        fn pair_connect_side_sends_first() {
            run(|| {
                // The connecting side may send before the handshake is done (queued).
                let ctx = zmq::Context::new();
                let a = sock!(ctx, zmq::PAIR);
                let ep = bind_any!(a);
                let b = sock!(ctx, zmq::PAIR);
                b.connect(&ep).unwrap();
                b.send("first", zmq::DONTWAIT).unwrap();
                assert_eq!(a.recv_bytes(0).unwrap(), b"first");
            });
        }

        #[test]
        $(#[$m])*
        fn pair_multipart() {
            run(|| {
                let ctx = zmq::Context::new();
                let (a, b, _) = connected_pairs(&ctx);
                a.send_multipart([&b"1"[..], b"", &payload(5000, 3)[..]], 0).unwrap();
                let parts = b.recv_multipart(0).unwrap();
                assert_eq!(parts, vec![b"1".to_vec(), vec![], payload(5000, 3)]);
                b.send("x", zmq::SNDMORE).unwrap();
                b.send("y", 0).unwrap();
                assert_eq!(a.recv_bytes(0).unwrap(), b"x");
                assert!(a.get_rcvmore().unwrap());
                assert_eq!(a.recv_bytes(0).unwrap(), b"y");
                assert!(!a.get_rcvmore().unwrap());
            });
        }

        #[test]
        $(#[$m])*
        fn second_pair_peer_gets_nothing() {
            run(|| {
                let ctx = zmq::Context::new();
                let (a, b, ep) = connected_pairs(&ctx);
                // A third PAIR connects to the bound one, which already has a peer: the bound
                // PAIR refuses it (libzmq: the new pipe is terminated right after the
                // handshake). It never receives anything and what it sends never arrives.
                let c = sock!(ctx, zmq::PAIR);
                c.set_rcvtimeo(500).unwrap();
                c.connect(&ep).unwrap();
                let _ = c.send("from-c", zmq::DONTWAIT);
                for i in 0..20u32 {
                    a.send(&format!("m{i}")[..], 0).unwrap();
                }
                for i in 0..20u32 {
                    assert_eq!(b.recv_bytes(0).unwrap(), format!("m{i}").as_bytes());
                }
                assert_eq!(c.recv_bytes(0), Err(zmq::Error::EAGAIN), "second PAIR was served");
                b.send("from-b", 0).unwrap();
                assert_eq!(a.recv_bytes(0).unwrap(), b"from-b", "only the first peer's messages");
                a.set_rcvtimeo(500).unwrap();
                assert_eq!(a.recv_bytes(0), Err(zmq::Error::EAGAIN), "the second PAIR's message arrived");
            });
        }

        #[test]
        $(#[$m])*
        fn pair_hwm_dontwait_eagain() {
            run(|| {
                let ctx = zmq::Context::new();
                let a = sock!(ctx, zmq::PAIR);
                a.set_rcvhwm(10).unwrap();
                a.set_sndhwm(10).unwrap();
                let ep = bind_any!(a);
                let b = sock!(ctx, zmq::PAIR);
                b.set_rcvhwm(10).unwrap();
                b.set_sndhwm(10).unwrap();
                b.connect(&ep).unwrap();
                b.send("probe", 0).unwrap();
                assert_eq!(a.recv_bytes(0).unwrap(), b"probe");
                // `a` never reads again; `b` sends 16 KiB messages until it stays blocked.
                let msg = payload(16 * 1024, 9);
                let mut sent = 0usize;
                let mut last_progress = Instant::now();
                loop {
                    match b.send(&msg[..], zmq::DONTWAIT) {
                        Ok(()) => {
                            sent += 1;
                            last_progress = Instant::now();
                            assert!(sent < 4000, "PAIR sender never blocked: HWM not enforced");
                        }
                        Err(zmq::Error::EAGAIN) => {
                            if last_progress.elapsed() > Duration::from_secs(1) {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("send: {e:?}"),
                    }
                }
                println!("PAIR HWM 10/10, 16 KiB messages: {sent} sent before blocking");
                assert!(sent >= 10, "at least SNDHWM messages are accepted, got {sent}");
                // A blocking send with a short timeout also gives up with EAGAIN.
                b.set_sndtimeo(100).unwrap();
                assert_eq!(b.send(&msg[..], 0), Err(zmq::Error::EAGAIN));
                // The other direction is independent and still flows.
                a.send("reverse", 0).unwrap();
                assert_eq!(b.recv_bytes(0).unwrap(), b"reverse");
                // Reading frees room.
                assert_eq!(a.recv_bytes(0).unwrap(), msg);
            });
        }

        #[test]
        $(#[$m])*
        fn pair_without_peer_eagain() {
            run(|| {
                let ctx = zmq::Context::new();
                let a = sock!(ctx, zmq::PAIR);
                bind_any!(a);
                assert_eq!(a.send("x", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
                a.set_sndtimeo(100).unwrap();
                let t = Instant::now();
                assert_eq!(a.send("x", 0), Err(zmq::Error::EAGAIN));
                assert!(t.elapsed() >= Duration::from_millis(95));
                a.set_rcvtimeo(100).unwrap();
                assert_eq!(a.recv_bytes(0), Err(zmq::Error::EAGAIN));
            });
        }

        #[test]
        $(#[$m])*
        fn pair_peer_replaced_after_disconnect() {
            run(|| {
                let ctx = zmq::Context::new();
                let (a, b, ep) = connected_pairs(&ctx);
                drop(b);
                // Wait until `a` has dropped the dead peer: its inbound queue must be read to
                // the end (libzmq keeps a closing peer attached until the application has
                // received what it had sent), and then `a` has no peer: send gives EAGAIN.
                a.set_rcvtimeo(50).unwrap();
                let gone = wait_until(Duration::from_secs(10), || {
                    assert_eq!(a.recv_bytes(0), Err(zmq::Error::EAGAIN));
                    a.send("into-the-void", zmq::DONTWAIT) == Err(zmq::Error::EAGAIN)
                });
                assert!(gone, "bound PAIR never noticed its peer left");
                a.set_rcvtimeo(IO_TIMEOUT_MS).unwrap();
                // Now a new peer is accepted.
                let c = sock!(ctx, zmq::PAIR);
                c.connect(&ep).unwrap();
                // Messages sent before the bound side noticed may go to the dead pipe: keep
                // sending until the new peer gets one.
                let start = Instant::now();
                loop {
                    assert!(start.elapsed() < Duration::from_secs(10), "replacement PAIR never served");
                    match a.send("to-c", zmq::DONTWAIT) {
                        Ok(()) | Err(zmq::Error::EAGAIN) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                    match c.recv_bytes(zmq::DONTWAIT) {
                        Ok(m) => {
                            assert_eq!(m, b"to-c");
                            break;
                        }
                        Err(zmq::Error::EAGAIN) => std::thread::sleep(Duration::from_millis(10)),
                        Err(e) => panic!("{e:?}"),
                    }
                }
                c.send("to-a", 0).unwrap();
                assert_eq!(a.recv_bytes(0).unwrap(), b"to-a");
            });
        }
    };
}

libzmq_instance!(libzmq, pair_suite);
ferro_instance!(ferro, pair_suite);
