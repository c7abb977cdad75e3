//! Resource limits: a cap on accepted connections. Descriptor exhaustion (EMFILE) on accept
//! is in `limits_emfile.rs`: it lowers the whole process's descriptor limit, so it runs in a
//! test process of its own.

mod common;

use std::time::{Duration, Instant};

#[test]
fn max_connections_refuses_the_extra_ones_and_keeps_serving() {
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_linger(0).unwrap();
    pull.set_rcvtimeo(5000).unwrap();
    pull.set_max_connections(2).unwrap();
    assert_eq!(pull.get_max_connections().unwrap(), 2);
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let mut a = common::RawPeer::connect(&ep);
    a.null_handshake("PUSH");
    let mut b = common::RawPeer::connect(&ep);
    b.null_handshake("PUSH");
    let mut c = common::RawPeer::connect(&ep);
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "third connection not refused"
    );
    a.send(&common::frame(b"from a", false)).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"from a");
    drop(a);
    // A slot freed: a new peer gets in.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = common::RawPeer::connect(&ep);
        d.send(&common::null_greeting()).unwrap();
        if !d.closed_within(Duration::from_millis(300)) {
            break;
        }
        assert!(Instant::now() < deadline, "slot never freed");
    }
}
