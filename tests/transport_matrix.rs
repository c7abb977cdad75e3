//! Every socket type over every transport: one exchange per compatible pair over tcp, ipc
//! and inproc (issue: "Every socket type works over every transport").

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ferromq as zmq;

fn endpoints(tag: &str) -> Vec<String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir();
    vec![
        "tcp://127.0.0.1:*".to_string(),
        format!(
            "ipc://{}/ferromq-matrix-{}-{tag}-{n}.sock",
            dir.display(),
            std::process::id()
        ),
        format!("inproc://matrix-{tag}-{n}"),
    ]
}

fn sock(ctx: &zmq::Context, t: zmq::SocketType) -> zmq::Socket {
    let s = ctx.socket(t).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.set_sndtimeo(5000).unwrap();
    s.set_linger(0).unwrap();
    s
}

/// Binds `a`, connects `b`; returns the endpoint used.
fn link(a: &zmq::Socket, b: &zmq::Socket, spec: &str) -> String {
    a.bind(spec).unwrap();
    let ep = a.get_last_endpoint().unwrap().unwrap();
    b.connect(&ep).unwrap();
    ep
}

#[test]
fn every_pattern_over_tcp_ipc_and_inproc() {
    let ctx = zmq::Context::new();
    for spec in endpoints("pair") {
        let (a, b) = (sock(&ctx, zmq::PAIR), sock(&ctx, zmq::PAIR));
        link(&a, &b, &spec);
        b.send("ping", 0).unwrap();
        assert_eq!(a.recv_bytes(0).unwrap(), b"ping", "{spec}");
        a.send("pong", 0).unwrap();
        assert_eq!(b.recv_bytes(0).unwrap(), b"pong", "{spec}");
    }
    for spec in endpoints("pipeline") {
        let (pull, push) = (sock(&ctx, zmq::PULL), sock(&ctx, zmq::PUSH));
        link(&pull, &push, &spec);
        push.send_multipart(["a", "b"], 0).unwrap();
        assert_eq!(
            pull.recv_multipart(0).unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }
    for spec in endpoints("reqrep") {
        let (rep, req) = (sock(&ctx, zmq::REP), sock(&ctx, zmq::REQ));
        link(&rep, &req, &spec);
        req.send("q", 0).unwrap();
        assert_eq!(rep.recv_bytes(0).unwrap(), b"q", "{spec}");
        rep.send("r", 0).unwrap();
        assert_eq!(req.recv_bytes(0).unwrap(), b"r", "{spec}");
    }
    for spec in endpoints("dealer") {
        let (router, dealer) = (sock(&ctx, zmq::ROUTER), sock(&ctx, zmq::DEALER));
        dealer.set_identity(b"d").unwrap();
        link(&router, &dealer, &spec);
        dealer.send("hi", 0).unwrap();
        assert_eq!(
            router.recv_multipart(0).unwrap(),
            vec![b"d".to_vec(), b"hi".to_vec()],
            "{spec}"
        );
        router.send_multipart(["d", "back"], 0).unwrap();
        assert_eq!(dealer.recv_bytes(0).unwrap(), b"back", "{spec}");
    }
    for spec in endpoints("pubsub") {
        let (publ, sub) = (sock(&ctx, zmq::PUB), sock(&ctx, zmq::SUB));
        sub.set_subscribe(b"t").unwrap();
        sub.set_rcvtimeo(50).unwrap();
        link(&publ, &sub, &spec);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            publ.send("x-no", 0).unwrap();
            publ.send("t-yes", 0).unwrap();
            if let Ok(m) = sub.recv_bytes(0) {
                assert_eq!(m, b"t-yes", "{spec}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{spec}: subscription never arrived"
            );
        }
    }
    for spec in endpoints("xpubxsub") {
        let (xpub, xsub) = (sock(&ctx, zmq::XPUB), sock(&ctx, zmq::XSUB));
        link(&xpub, &xsub, &spec);
        xsub.send(&b"\x01k"[..], 0).unwrap();
        assert_eq!(xpub.recv_bytes(0).unwrap(), b"\x01k", "{spec}");
        xpub.send("k1", 0).unwrap();
        assert_eq!(xsub.recv_bytes(0).unwrap(), b"k1", "{spec}");
    }
}
