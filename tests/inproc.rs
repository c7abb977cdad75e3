//! inproc:// transport (issue: ipc/inproc/heartbeats/monitor, item 2).

use ferromq as zmq;

fn sock(ctx: &zmq::Context, t: zmq::SocketType) -> zmq::Socket {
    let s = ctx.socket(t).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.set_sndtimeo(5000).unwrap();
    s.set_linger(0).unwrap();
    s
}

#[test]
fn push_pull_and_multipart_over_inproc() {
    let ctx = zmq::Context::new();
    let pull = sock(&ctx, zmq::PULL);
    pull.bind("inproc://pp").unwrap();
    assert_eq!(pull.get_last_endpoint().unwrap().unwrap(), "inproc://pp");
    let push = sock(&ctx, zmq::PUSH);
    push.connect("inproc://pp").unwrap();
    for i in 0..1000u32 {
        push.send(i.to_be_bytes(), 0).unwrap();
    }
    push.send_multipart(["a", "b"], 0).unwrap();
    for i in 0..1000u32 {
        assert_eq!(pull.recv_bytes(0).unwrap(), i.to_be_bytes());
    }
    assert_eq!(
        pull.recv_multipart(0).unwrap(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
}

#[test]
fn connect_before_bind_delivers_queued_messages() {
    let ctx = zmq::Context::new();
    let push = sock(&ctx, zmq::PUSH);
    push.connect("inproc://later").unwrap();
    push.send("queued before bind", 0).unwrap();
    let pull = sock(&ctx, zmq::PULL);
    pull.bind("inproc://later").unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"queued before bind");
}

#[test]
fn rebind_after_the_binder_closed_reconnects() {
    let ctx = zmq::Context::new();
    let pair_c = sock(&ctx, zmq::PAIR);
    {
        let pair_b = sock(&ctx, zmq::PAIR);
        pair_b.bind("inproc://rebind").unwrap();
        pair_c.connect("inproc://rebind").unwrap();
        pair_c.send("one", 0).unwrap();
        assert_eq!(pair_b.recv_bytes(0).unwrap(), b"one");
        let dup = sock(&ctx, zmq::PAIR);
        assert_eq!(dup.bind("inproc://rebind"), Err(zmq::Error::EADDRINUSE));
    }
    let pair_b2 = sock(&ctx, zmq::PAIR);
    pair_b2.bind("inproc://rebind").unwrap();
    pair_c.send("two", 0).unwrap();
    assert_eq!(pair_b2.recv_bytes(0).unwrap(), b"two");
    pair_b2.send("back", 0).unwrap();
    assert_eq!(pair_c.recv_bytes(0).unwrap(), b"back");
}

#[test]
fn hwm_is_the_sum_of_both_sides() {
    let ctx = zmq::Context::new();
    let pull = sock(&ctx, zmq::PULL);
    pull.set_rcvhwm(7).unwrap();
    pull.bind("inproc://hwm").unwrap();
    let push = sock(&ctx, zmq::PUSH);
    push.set_sndhwm(5).unwrap();
    push.connect("inproc://hwm").unwrap();
    let mut sent = 0;
    while push.send("x", zmq::DONTWAIT).is_ok() {
        sent += 1;
        assert!(sent <= 100, "HWM not enforced");
    }
    assert_eq!(sent, 12);
    assert_eq!(push.send("x", zmq::DONTWAIT), Err(zmq::Error::EAGAIN));
    pull.recv_bytes(0).unwrap();
}

#[test]
fn inproc_across_contexts_is_refused() {
    let ctx1 = zmq::Context::new();
    let ctx2 = zmq::Context::new();
    let pull = sock(&ctx1, zmq::PULL);
    pull.bind("inproc://other-ctx").unwrap();
    let push = sock(&ctx2, zmq::PUSH);
    assert_eq!(
        push.connect("inproc://other-ctx"),
        Err(zmq::Error::ECONNREFUSED)
    );
}

#[test]
fn incompatible_types_and_bad_names_are_refused() {
    let ctx = zmq::Context::new();
    let a = sock(&ctx, zmq::PUSH);
    a.bind("inproc://types").unwrap();
    let b = sock(&ctx, zmq::PUSH);
    assert_eq!(b.connect("inproc://types"), Err(zmq::Error::ENOCOMPATPROTO));
    assert_eq!(b.connect("inproc://"), Err(zmq::Error::EINVAL));
    assert_eq!(b.unbind("inproc://types"), Err(zmq::Error::ENOENT));
}

#[test]
fn inproc_shares_bytes_without_copying() {
    let ctx = zmq::Context::new();
    let pull = sock(&ctx, zmq::PULL);
    pull.bind("inproc://zc").unwrap();
    let push = sock(&ctx, zmq::PUSH);
    push.connect("inproc://zc").unwrap();
    let payload = bytes::Bytes::from(vec![7u8; 1 << 20]);
    let ptr = payload.as_ptr();
    push.send(payload, 0).unwrap();
    let got = pull.recv_msg(0).unwrap();
    assert_eq!(got.len(), 1 << 20);
    assert_eq!(got.as_ptr(), ptr, "the receiver sees the sender's buffer");
}
