//! Socket monitor: libzmq-format events on a PAIR socket, and the typed event channel.

mod common;

use std::time::Duration;

use common::RawPeer;
use ferromq::{MonitorEvent, SocketEvent};

const WAIT: Duration = Duration::from_secs(5);

fn next_of(rx: &ferromq::EventReceiver, kind: SocketEvent) -> MonitorEvent {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ev = rx
            .recv_timeout(left)
            .unwrap_or_else(|| panic!("no {kind:?} event"));
        if ev.kind == kind {
            return ev;
        }
    }
}

/// Reads one libzmq-format event: (kind, value, endpoint).
fn read_zmq_event(mon: &ferromq::Socket) -> (SocketEvent, u32, String) {
    let parts = mon.recv_multipart(0).expect("monitor event");
    assert_eq!(parts.len(), 2, "two frames per event");
    assert_eq!(parts[0].len(), 6, "u16 event + u32 value");
    let kind = u16::from_ne_bytes([parts[0][0], parts[0][1]]);
    let value = u32::from_ne_bytes([parts[0][2], parts[0][3], parts[0][4], parts[0][5]]);
    (
        SocketEvent::from_raw(kind),
        value,
        String::from_utf8(parts[1].clone()).unwrap(),
    )
}

#[test]
fn zmq_style_monitor_reports_listening_accepted_handshake_disconnected_stopped() {
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_linger(0).unwrap();
    pull.monitor("inproc://mon-pull", SocketEvent::ALL as i32)
        .unwrap();
    let mon = ctx.socket(ferromq::PAIR).unwrap();
    mon.set_rcvtimeo(5000).unwrap();
    mon.connect("inproc://mon-pull").unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let (kind, _, endpoint) = read_zmq_event(&mon);
    assert_eq!(
        (kind, endpoint.as_str()),
        (SocketEvent::LISTENING, ep.as_str())
    );

    // A libzmq peer connects and goes away.
    let zctx = zmq::Context::new();
    let zpush = zctx.socket(zmq::PUSH).unwrap();
    zpush.set_linger(0).unwrap();
    zpush.connect(&ep).unwrap();
    let mut seen = Vec::new();
    while !seen.contains(&SocketEvent::HANDSHAKE_SUCCEEDED) {
        seen.push(read_zmq_event(&mon).0);
    }
    assert!(seen.contains(&SocketEvent::ACCEPTED), "{seen:?}");
    drop(zpush);
    while read_zmq_event(&mon).0 != SocketEvent::DISCONNECTED {}
    drop(pull);
    while read_zmq_event(&mon).0 != SocketEvent::MONITOR_STOPPED {}
}

#[test]
fn monitor_needs_an_inproc_endpoint() {
    let ctx = ferromq::Context::new();
    let s = ctx.socket(ferromq::PULL).unwrap();
    assert_eq!(
        s.monitor("tcp://127.0.0.1:5555", SocketEvent::ALL as i32),
        Err(ferromq::Error::EPROTONOSUPPORT)
    );
}

#[test]
fn typed_events_for_connect_retry_then_success() {
    let port = common::free_port();
    let ep = format!("tcp://127.0.0.1:{port}");
    let ctx = ferromq::Context::new();
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.set_reconnect_ivl(20).unwrap();
    let events = push.events();
    push.connect(&ep).unwrap();
    let retried = next_of(&events, SocketEvent::CONNECT_RETRIED);
    assert_eq!(retried.endpoint, ep);
    assert_eq!(retried.value, 20, "reconnect interval in ms");
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_linger(0).unwrap();
    pull.bind(&ep).unwrap();
    next_of(&events, SocketEvent::CONNECTED);
    let ok = next_of(&events, SocketEvent::HANDSHAKE_SUCCEEDED);
    assert_eq!(ok.endpoint, ep);
}

#[test]
fn heartbeat_timeout_event_names_the_peer() {
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_linger(0).unwrap();
    pull.set_heartbeat_ivl(50).unwrap();
    pull.set_heartbeat_timeout(200).unwrap();
    let events = pull.events();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let mut raw = RawPeer::connect(&ep);
    raw.send(&common::null_greeting()).unwrap();
    raw.read_greeting();
    raw.send(&common::ready(&[
        ("Socket-Type", b"PUSH"),
        ("Identity", b"frozen-peer"),
    ]))
    .unwrap();
    let ev = next_of(&events, SocketEvent::DISCONNECTED);
    assert_eq!(ev.peer.as_deref(), Some(&b"frozen-peer"[..]));
    let reason = ev.reason.unwrap_or_default();
    assert!(reason.contains("heartbeat"), "{reason}");
}

#[test]
fn handshake_failure_is_reported() {
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_linger(0).unwrap();
    let events = pull.events();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let mut raw = RawPeer::connect(&ep);
    raw.send(&[0x41; 64]).unwrap();
    let ev = next_of(&events, SocketEvent::HANDSHAKE_FAILED_PROTOCOL);
    assert!(ev.reason.is_some());
    assert!(raw.closed_within(WAIT));
}

#[test]
fn a_full_event_channel_drops_and_counts_without_blocking_the_socket() {
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_linger(0).unwrap();
    pull.set_rcvtimeo(5000).unwrap();
    let events = pull.events_with_capacity(1);
    for _ in 0..5 {
        pull.bind("tcp://127.0.0.1:*").unwrap();
    }
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    assert!(events.dropped() >= 4, "dropped {}", events.dropped());
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.connect(&ep).unwrap();
    push.send("still served", 0).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"still served");
}
