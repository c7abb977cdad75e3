//! The foundation's PUSH/PULL and REQ/REP interop checks, over ipc:// (Unix domain sockets),
//! in both directions and with either side binding.

use std::sync::atomic::{AtomicU32, Ordering};

fn ipc_endpoint(tag: &str) -> (String, std::path::PathBuf) {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ferromq-ipc-interop-{}-{}-{}",
        std::process::id(),
        tag,
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    (format!("ipc://{}/s", dir.display()), dir)
}

fn sizes() -> Vec<Vec<u8>> {
    [0usize, 1, 1024, 4 << 20]
        .iter()
        .map(|&n| (0..n).map(|i| (i % 251) as u8).collect())
        .collect()
}

#[test]
fn push_pull_over_ipc_both_ways_either_side_binding() {
    let ctx = ferromq::Context::new();
    let zctx = zmq::Context::new();
    for ferro_binds in [true, false] {
        // ferromq PUSH -> libzmq PULL
        let (ep, dir) = ipc_endpoint("a");
        let push = ctx.socket(ferromq::PUSH).unwrap();
        push.set_linger(0).unwrap();
        let zpull = zctx.socket(zmq::PULL).unwrap();
        zpull.set_rcvtimeo(10_000).unwrap();
        if ferro_binds {
            push.bind(&ep).unwrap();
            zpull.connect(&ep).unwrap();
        } else {
            zpull.bind(&ep).unwrap();
            push.connect(&ep).unwrap();
        }
        for m in sizes() {
            push.send(m.clone(), 0).unwrap();
            assert_eq!(zpull.recv_bytes(0).unwrap(), m);
        }
        push.send_multipart(["a", "", "c"], 0).unwrap();
        assert_eq!(
            zpull.recv_multipart(0).unwrap(),
            vec![b"a".to_vec(), vec![], b"c".to_vec()]
        );
        drop(push);
        drop(zpull);
        let _ = std::fs::remove_dir_all(dir);

        // libzmq PUSH -> ferromq PULL
        let (ep, dir) = ipc_endpoint("b");
        let zpush = zctx.socket(zmq::PUSH).unwrap();
        zpush.set_linger(0).unwrap();
        let pull = ctx.socket(ferromq::PULL).unwrap();
        pull.set_rcvtimeo(10_000).unwrap();
        if ferro_binds {
            pull.bind(&ep).unwrap();
            zpush.connect(&ep).unwrap();
        } else {
            zpush.bind(&ep).unwrap();
            pull.connect(&ep).unwrap();
        }
        for m in sizes() {
            zpush.send(m.clone(), 0).unwrap();
            assert_eq!(pull.recv_bytes(0).unwrap(), m);
        }
        zpush.send_multipart(["x", "y"], 0).unwrap();
        assert_eq!(
            pull.recv_multipart(0).unwrap(),
            vec![b"x".to_vec(), b"y".to_vec()]
        );
        drop(pull);
        drop(zpush);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn req_rep_over_ipc_both_ways_either_side_binding() {
    let ctx = ferromq::Context::new();
    let zctx = zmq::Context::new();
    for ferro_binds in [true, false] {
        // ferromq REQ -> libzmq REP
        let (ep, dir) = ipc_endpoint("c");
        let req = ctx.socket(ferromq::REQ).unwrap();
        req.set_linger(0).unwrap();
        req.set_rcvtimeo(10_000).unwrap();
        let zrep = zctx.socket(zmq::REP).unwrap();
        zrep.set_rcvtimeo(10_000).unwrap();
        if ferro_binds {
            req.bind(&ep).unwrap();
            zrep.connect(&ep).unwrap();
        } else {
            zrep.bind(&ep).unwrap();
            req.connect(&ep).unwrap();
        }
        for i in 0..20u32 {
            req.send(i.to_be_bytes(), 0).unwrap();
            let got = zrep.recv_bytes(0).unwrap();
            zrep.send(got, 0).unwrap();
            assert_eq!(req.recv_bytes(0).unwrap(), i.to_be_bytes());
        }
        drop(req);
        drop(zrep);
        let _ = std::fs::remove_dir_all(dir);

        // libzmq REQ -> ferromq REP
        let (ep, dir) = ipc_endpoint("d");
        let zreq = zctx.socket(zmq::REQ).unwrap();
        zreq.set_linger(0).unwrap();
        zreq.set_rcvtimeo(10_000).unwrap();
        let rep = ctx.socket(ferromq::REP).unwrap();
        rep.set_rcvtimeo(10_000).unwrap();
        if ferro_binds {
            rep.bind(&ep).unwrap();
            zreq.connect(&ep).unwrap();
        } else {
            zreq.bind(&ep).unwrap();
            rep.connect(&ep).unwrap();
        }
        for i in 0..20u32 {
            zreq.send(&i.to_be_bytes()[..], 0).unwrap();
            let got = rep.recv_bytes(0).unwrap();
            rep.send(got, 0).unwrap();
            assert_eq!(zreq.recv_bytes(0).unwrap(), i.to_be_bytes());
        }
        drop(rep);
        drop(zreq);
        let _ = std::fs::remove_dir_all(dir);
    }
}
