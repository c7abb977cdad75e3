//! ZMTP 3.1 heartbeats (PING/PONG, HEARTBEAT_IVL/TIMEOUT/TTL) and TCP keepalive options.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::RawPeer;

fn pull_with_heartbeat(
    ctx: &ferromq::Context,
    ivl: i32,
    timeout: i32,
) -> (ferromq::Socket, String) {
    let s = ctx.socket(ferromq::PULL).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.set_linger(0).unwrap();
    s.set_heartbeat_ivl(ivl).unwrap();
    s.set_heartbeat_timeout(timeout).unwrap();
    s.bind("tcp://127.0.0.1:*").unwrap();
    let ep = s.get_last_endpoint().unwrap().unwrap();
    (s, ep)
}

#[test]
fn silent_peer_is_disconnected_within_timeout_plus_one_interval() {
    let ctx = ferromq::Context::new();
    let (_pull, ep) = pull_with_heartbeat(&ctx, 100, 300);
    let mut raw = RawPeer::connect(&ep);
    raw.null_handshake("PUSH");
    // From here the raw peer answers nothing (it reads, so our PINGs are not blocked by a
    // full socket buffer, but never replies).
    let start = Instant::now();
    assert!(
        raw.closed_within(Duration::from_secs(10)),
        "silent peer never dropped"
    );
    let took = start.elapsed();
    println!("silent peer detected after {took:?} (ivl 100 ms, timeout 300 ms)");
    assert!(
        took >= Duration::from_millis(300),
        "dropped before the timeout: {took:?}"
    );
    // Within timeout + one interval, plus scheduling slack for a loaded 2-core machine.
    assert!(
        took < Duration::from_millis(400 + 1500),
        "too slow: {took:?}"
    );
}

#[test]
fn heartbeats_answered_keep_the_connection() {
    let ctx = ferromq::Context::new();
    let (pull, ep) = pull_with_heartbeat(&ctx, 50, 200);
    let mut raw = RawPeer::connect(&ep);
    raw.null_handshake("PUSH");
    // Answer every PING with a PONG for a while: the connection must stay up.
    let until = Instant::now() + Duration::from_millis(800);
    let mut pings = 0;
    while Instant::now() < until {
        let (flags, body) = raw.read_frame().expect("connection kept while answering");
        assert_eq!(flags & 0x04, 0x04, "only commands while idle");
        assert!(body.starts_with(b"\x04PING"), "{body:02x?}");
        pings += 1;
        // PONG echoes the PING's context (after the 2-byte TTL).
        raw.send(&common::command("PONG", &body[7..])).unwrap();
    }
    assert!(pings >= 5, "expected a PING every 50 ms, got {pings}");
    raw.send(&common::frame(b"still here", false)).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"still here");
}

#[test]
fn connecting_side_reconnects_after_a_heartbeat_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let ctx = ferromq::Context::new();
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.set_heartbeat_ivl(100).unwrap();
    push.set_heartbeat_timeout(300).unwrap();
    push.set_reconnect_ivl(50).unwrap();
    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let accept = |l: &TcpListener| {
        l.set_nonblocking(false).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        RawPeer { stream: s }
    };
    let mut first = accept(&listener);
    first.null_handshake("PULL");
    let start = Instant::now();
    assert!(first.closed_within(Duration::from_secs(10)));
    // The session reconnects on its own.
    let mut second = accept(&listener);
    println!(
        "dead peer dropped and reconnected after {:?}",
        start.elapsed()
    );
    second.null_handshake("PULL");
    push.send("after reconnect", 0).unwrap();
    let (_, body) = second.read_frame().unwrap();
    assert_eq!(body, b"after reconnect");
}

#[test]
fn peer_ping_ttl_bounds_our_patience() {
    let ctx = ferromq::Context::new();
    // No heartbeat of our own: only the peer's TTL can close the connection.
    let (_pull, ep) = pull_with_heartbeat(&ctx, 0, -1);
    let mut raw = RawPeer::connect(&ep);
    raw.null_handshake("PUSH");
    // PING with TTL 3 deciseconds and an empty context.
    raw.send(&common::command("PING", &[0, 3])).unwrap();
    let (_, pong) = raw.read_frame().unwrap();
    assert!(pong.starts_with(b"\x04PONG"));
    let start = Instant::now();
    assert!(raw.closed_within(Duration::from_secs(10)));
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

fn libzmq_disconnects(mon: &zmq::Socket, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut n = 0;
    while Instant::now() < deadline {
        if mon.poll(zmq::POLLIN, 50).unwrap() > 0 {
            let ev = mon.recv_multipart(0).unwrap();
            let id = u16::from_ne_bytes([ev[0][0], ev[0][1]]);
            if id == zmq::SocketEvent::DISCONNECTED.to_raw() {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn libzmq_and_ferromq_heartbeats_keep_each_other_alive() {
    // libzmq PUSH with heartbeats -> ferromq PULL (answers its PINGs).
    let zctx = zmq::Context::new();
    let ctx = ferromq::Context::new();
    let (pull, ep) = pull_with_heartbeat(&ctx, 50, 200);
    let zpush = zctx.socket(zmq::PUSH).unwrap();
    zpush.set_heartbeat_ivl(50).unwrap();
    zpush.set_heartbeat_timeout(200).unwrap();
    zpush.set_linger(0).unwrap();
    zpush
        .monitor("inproc://hb-mon-1", zmq::SocketEvent::DISCONNECTED as i32)
        .unwrap();
    let mon = zctx.socket(zmq::PAIR).unwrap();
    mon.connect("inproc://hb-mon-1").unwrap();
    zpush.connect(&ep).unwrap();
    zpush.send("first", 0).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"first");
    // Idle for 1 s: ten heartbeat intervals, five timeouts.
    assert_eq!(libzmq_disconnects(&mon, Duration::from_millis(1000)), 0);
    zpush.send("second", 0).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"second");

    // ferromq PUSH with heartbeats -> libzmq PULL with heartbeats.
    let zpull = zctx.socket(zmq::PULL).unwrap();
    zpull.set_heartbeat_ivl(50).unwrap();
    zpull.set_heartbeat_timeout(200).unwrap();
    zpull.set_rcvtimeo(5000).unwrap();
    zpull
        .monitor("inproc://hb-mon-2", zmq::SocketEvent::DISCONNECTED as i32)
        .unwrap();
    let mon2 = zctx.socket(zmq::PAIR).unwrap();
    mon2.connect("inproc://hb-mon-2").unwrap();
    zpull.bind("tcp://127.0.0.1:*").unwrap();
    let zep = zpull.get_last_endpoint().unwrap().unwrap();
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.set_heartbeat_ivl(50).unwrap();
    push.set_heartbeat_timeout(200).unwrap();
    push.connect(&zep).unwrap();
    push.send("one", 0).unwrap();
    assert_eq!(zpull.recv_bytes(0).unwrap(), b"one");
    assert_eq!(libzmq_disconnects(&mon2, Duration::from_millis(1000)), 0);
    push.send("two", 0).unwrap();
    assert_eq!(zpull.recv_bytes(0).unwrap(), b"two");
}

#[test]
fn tcp_keepalive_options_round_trip_and_apply() {
    let ctx = ferromq::Context::new();
    let (pull, ep) = pull_with_heartbeat(&ctx, 0, -1);
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.set_tcp_keepalive(1).unwrap();
    push.set_tcp_keepalive_idle(30).unwrap();
    push.set_tcp_keepalive_cnt(3).unwrap();
    push.set_tcp_keepalive_intvl(5).unwrap();
    assert_eq!(push.get_tcp_keepalive().unwrap(), 1);
    assert_eq!(push.get_tcp_keepalive_idle().unwrap(), 30);
    assert_eq!(push.get_tcp_keepalive_cnt().unwrap(), 3);
    assert_eq!(push.get_tcp_keepalive_intvl().unwrap(), 5);
    push.connect(&ep).unwrap();
    push.send("ka", 0).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"ka");
}
