//! REQ/REP connections let the application thread write a message itself when nothing is
//! queued ahead of it (`engine/direct.rs`). These tests drive the cases that path has to get
//! right: a write the kernel takes only in part (the I/O thread finishes it, in order), many
//! round trips mixing small and large messages, ipc as well as tcp, libzmq on the other end,
//! and the duplicated descriptor being closed with the connection.

use std::time::{Duration, Instant};

use ferromq::{Context, Socket, REP, REQ};

const TIMEOUT_MS: i32 = 10_000;

fn pair(ctx: &Context, endpoint: &str) -> (Socket, Socket) {
    let rep = ctx.socket(REP).unwrap();
    rep.set_rcvtimeo(TIMEOUT_MS).unwrap();
    rep.set_sndtimeo(TIMEOUT_MS).unwrap();
    rep.bind(endpoint).unwrap();
    let ep = rep.get_last_endpoint().unwrap().unwrap();
    let req = ctx.socket(REQ).unwrap();
    req.set_rcvtimeo(TIMEOUT_MS).unwrap();
    req.set_sndtimeo(TIMEOUT_MS).unwrap();
    req.connect(&ep).unwrap();
    (req, rep)
}

/// A payload whose bytes depend on `round` and their position, so a reordered, truncated
/// or mixed-up write shows.
fn payload(round: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + round * 7) as u8).collect()
}

/// Sizes that fit one write, and 8 MiB, which the kernel never takes in one write on
/// loopback: the application thread writes part and the I/O thread the rest.
const SIZES: [usize; 6] = [0, 1, 300, 70_000, 8 << 20, 5];

fn echo_rounds(endpoint: &str) {
    let ctx = Context::new();
    let (req, rep) = pair(&ctx, endpoint);
    let server = std::thread::spawn(move || {
        for _ in 0..SIZES.len() * 3 {
            let parts = rep.recv_multipart(0).unwrap();
            rep.send_multipart(parts, 0).unwrap();
        }
        rep
    });
    for round in 0..SIZES.len() * 3 {
        let len = SIZES[round % SIZES.len()];
        let body = payload(round, len);
        // Two frames (REQ adds the empty delimiter: three on the wire).
        req.send_multipart([b"head".to_vec(), body.clone()], 0)
            .unwrap();
        let back = req.recv_multipart(0).unwrap();
        assert_eq!(back.len(), 2, "round {round}");
        assert_eq!(back[0], b"head");
        assert!(
            back[1] == body,
            "round {round}: {len} bytes came back different"
        );
    }
    let _rep = server.join().unwrap();
}

#[test]
fn round_trips_of_every_size_over_tcp() {
    echo_rounds("tcp://127.0.0.1:*");
}

#[test]
fn round_trips_of_every_size_over_ipc() {
    let dir = std::env::temp_dir().join(format!("ferromq-direct-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    echo_rounds(&format!("ipc://{}/rr.sock", dir.display()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn libzmq_peers_both_ways() {
    // ferromq REQ -> libzmq REP.
    let zctx = zmq::Context::new();
    let zrep = zctx.socket(zmq::REP).unwrap();
    zrep.set_rcvtimeo(TIMEOUT_MS).unwrap();
    zrep.bind("tcp://127.0.0.1:*").unwrap();
    let ep = zrep.get_last_endpoint().unwrap().unwrap();
    let ctx = Context::new();
    let req = ctx.socket(REQ).unwrap();
    req.set_rcvtimeo(TIMEOUT_MS).unwrap();
    req.connect(&ep).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..SIZES.len() {
            let m = zrep.recv_bytes(0).unwrap();
            zrep.send(m, 0).unwrap();
        }
    });
    for (round, &len) in SIZES.iter().enumerate() {
        let body = payload(round, len);
        req.send(&body[..], 0).unwrap();
        assert!(req.recv_bytes(0).unwrap() == body, "round {round}");
    }
    server.join().unwrap();

    // libzmq REQ -> ferromq REP.
    let rep = ctx.socket(REP).unwrap();
    rep.set_rcvtimeo(TIMEOUT_MS).unwrap();
    rep.bind("tcp://127.0.0.1:*").unwrap();
    let ep = rep.get_last_endpoint().unwrap().unwrap();
    let zreq = zctx.socket(zmq::REQ).unwrap();
    zreq.set_rcvtimeo(TIMEOUT_MS).unwrap();
    zreq.connect(&ep).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..SIZES.len() {
            let m = rep.recv_bytes(0).unwrap();
            rep.send(m, 0).unwrap();
        }
    });
    for (round, &len) in SIZES.iter().enumerate() {
        let body = payload(round, len);
        zreq.send(&body[..], 0).unwrap();
        assert!(zreq.recv_bytes(0).unwrap() == body, "round {round}");
    }
    server.join().unwrap();
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn closing_releases_the_duplicated_descriptors() {
    let ctx = Context::new();
    // Warm up whatever the context opens once (I/O thread poll and waker).
    let (req, rep) = pair(&ctx, "tcp://127.0.0.1:*");
    req.send("x", 0).unwrap();
    rep.recv_bytes(0).unwrap();
    rep.send("y", 0).unwrap();
    req.recv_bytes(0).unwrap();
    req.set_linger(0).unwrap();
    rep.set_linger(0).unwrap();
    drop((req, rep));
    let deadline = Instant::now() + Duration::from_secs(10);
    let settle = |limit: usize| {
        while open_fds() > limit {
            assert!(
                Instant::now() < deadline,
                "{} fds open, expected <= {limit}",
                open_fds()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // Each round opens a listener, two connections and (with direct writers) two
    // duplicates; all of them must be gone once both sockets are closed.
    let base = open_fds();
    for round in 0..20 {
        let (req, rep) = pair(&ctx, "tcp://127.0.0.1:*");
        req.send(&payload(round, 10)[..], 0).unwrap();
        rep.recv_bytes(0).unwrap();
        rep.send("ok", 0).unwrap();
        assert_eq!(req.recv_bytes(0).unwrap(), b"ok");
        req.set_linger(0).unwrap();
        rep.set_linger(0).unwrap();
        drop((req, rep));
        settle(base);
    }
}

/// Connections of this machine in CLOSE_WAIT (the peer closed, we have not) towards `port`.
fn close_wait_towards(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let remote_port = cols
                .get(2)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            remote_port == Some(port) && cols.get(3) == Some(&"08")
        })
        .count()
}

#[test]
fn a_vanished_peer_takes_its_duplicated_descriptor_along() {
    // The REQ socket stays open and keeps reconnecting while its peer is gone: the closed
    // connection must release the descriptor its direct writer duplicated, or the kernel
    // keeps the connection half-closed (CLOSE_WAIT) and the descriptor leaks.
    let ctx = Context::new();
    let req = ctx.socket(REQ).unwrap();
    req.set_rcvtimeo(TIMEOUT_MS).unwrap();
    req.set_reconnect_ivl(20).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    for round in 0..3 {
        let rep = ctx.socket(REP).unwrap();
        rep.set_rcvtimeo(TIMEOUT_MS).unwrap();
        rep.bind("tcp://127.0.0.1:*").unwrap();
        let ep = rep.get_last_endpoint().unwrap().unwrap();
        let port: u16 = ep.rsplit(':').next().unwrap().parse().unwrap();
        req.connect(&ep).unwrap();
        req.send(&payload(round, 10)[..], 0).unwrap();
        rep.recv_bytes(0).unwrap();
        rep.send("ok", 0).unwrap();
        assert_eq!(req.recv_bytes(0).unwrap(), b"ok");
        rep.set_linger(0).unwrap();
        drop(rep);
        // Wait for the FIN to reach us (CLOSE_WAIT appears), then for our side to close.
        let seen = Instant::now() + Duration::from_millis(500);
        while close_wait_towards(port) == 0 && Instant::now() < seen {
            std::thread::sleep(Duration::from_millis(1));
        }
        while close_wait_towards(port) > 0 {
            assert!(
                Instant::now() < deadline,
                "round {round}: our side of the connection to port {port} never closed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        req.disconnect(&ep).unwrap();
    }
}
