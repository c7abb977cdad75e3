//! Quick end-to-end checks of the foundation (PUSH/PULL/PAIR over TCP, and with libzmq).

fn endpoint(s: &ferromq::Socket) -> String {
    s.get_last_endpoint().unwrap().unwrap()
}

#[test]
fn push_pull_tcp_round_trip() {
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_rcvtimeo(5000).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.connect(&endpoint(&pull)).unwrap();
    for i in 0..1000u32 {
        push.send(i.to_be_bytes(), 0).unwrap();
    }
    push.send_multipart(["a", "b", "c"], 0).unwrap();
    for i in 0..1000u32 {
        assert_eq!(pull.recv_bytes(0).unwrap(), i.to_be_bytes());
    }
    assert_eq!(
        pull.recv_multipart(0).unwrap(),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
}

#[test]
fn ferromq_push_to_libzmq_pull_and_back() {
    let zctx = zmq::Context::new();
    let zpull = zctx.socket(zmq::PULL).unwrap();
    zpull.set_rcvtimeo(5000).unwrap();
    zpull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = zpull.get_last_endpoint().unwrap().unwrap();
    let ctx = ferromq::Context::new();
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.connect(&ep).unwrap();
    push.send("hello libzmq", 0).unwrap();
    assert_eq!(zpull.recv_bytes(0).unwrap(), b"hello libzmq");

    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_rcvtimeo(5000).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let zpush = zctx.socket(zmq::PUSH).unwrap();
    zpush.connect(&endpoint(&pull)).unwrap();
    zpush.send_multipart(["x", "yy"], 0).unwrap();
    assert_eq!(
        pull.recv_multipart(0).unwrap(),
        vec![b"x".to_vec(), b"yy".to_vec()]
    );
}

#[test]
fn ipc_push_pull_both_ways_with_libzmq_and_stale_file() {
    let dir = std::env::temp_dir().join(format!("ferromq-ipc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.sock");
    // A stale socket file from a dead process: bound, then the listener leaked by forgetting
    // nothing but closing the fd without unlinking.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let ep = format!("ipc://{}", path.display());
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_rcvtimeo(5000).unwrap();
    pull.bind(&ep).unwrap();
    assert_eq!(pull.get_last_endpoint().unwrap().unwrap(), ep);
    let zctx = zmq::Context::new();
    let zpush = zctx.socket(zmq::PUSH).unwrap();
    zpush.connect(&ep).unwrap();
    zpush.send("over ipc", 0).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"over ipc");
    let zpull = zctx.socket(zmq::PULL).unwrap();
    zpull.set_rcvtimeo(5000).unwrap();
    zpull.bind("ipc://@ferromq-smoke-abstract").unwrap();
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.connect("ipc://@ferromq-smoke-abstract").unwrap();
    push.send("abstract", 0).unwrap();
    assert_eq!(zpull.recv_bytes(0).unwrap(), b"abstract");
    pull.unbind(&ep).unwrap();
    assert!(!path.exists(), "unbind removes the socket file");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn req_rep_and_router_dealer_over_tcp() {
    let ctx = ferromq::Context::new();
    let rep = ctx.socket(ferromq::REP).unwrap();
    rep.set_rcvtimeo(5000).unwrap();
    rep.bind("tcp://127.0.0.1:*").unwrap();
    let req = ctx.socket(ferromq::REQ).unwrap();
    req.set_rcvtimeo(5000).unwrap();
    req.connect(&endpoint(&rep)).unwrap();
    for i in 0..10u32 {
        req.send(i.to_be_bytes(), 0).unwrap();
        assert_eq!(rep.recv_bytes(0).unwrap(), i.to_be_bytes());
        rep.send("ok", 0).unwrap();
        assert_eq!(req.recv_bytes(0).unwrap(), b"ok");
    }
    assert_eq!(req.recv_bytes(ferromq::DONTWAIT), Err(ferromq::Error::EFSM));

    let router = ctx.socket(ferromq::ROUTER).unwrap();
    router.set_rcvtimeo(5000).unwrap();
    router.bind("tcp://127.0.0.1:*").unwrap();
    let dealer = ctx.socket(ferromq::DEALER).unwrap();
    dealer.set_rcvtimeo(5000).unwrap();
    dealer.set_identity(b"d1").unwrap();
    dealer.connect(&endpoint(&router)).unwrap();
    dealer.send("hi", 0).unwrap();
    assert_eq!(
        router.recv_multipart(0).unwrap(),
        vec![b"d1".to_vec(), b"hi".to_vec()]
    );
    router.send_multipart(["d1", "back"], 0).unwrap();
    assert_eq!(dealer.recv_bytes(0).unwrap(), b"back");
}

#[test]
fn pub_sub_filtering_with_libzmq_both_ways() {
    let ctx = ferromq::Context::new();
    let zctx = zmq::Context::new();
    // ferromq PUB -> libzmq SUB
    let publ = ctx.socket(ferromq::PUB).unwrap();
    publ.bind("tcp://127.0.0.1:*").unwrap();
    let zsub = zctx.socket(zmq::SUB).unwrap();
    zsub.set_rcvtimeo(100).unwrap();
    zsub.set_subscribe(b"A").unwrap();
    zsub.connect(&endpoint(&publ)).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        publ.send("B-not-this", 0).unwrap();
        publ.send("A-this", 0).unwrap();
        if let Ok(m) = zsub.recv_bytes(0) {
            assert_eq!(m, b"A-this");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "subscription never arrived"
        );
    }
    // libzmq PUB -> ferromq SUB
    let zpub = zctx.socket(zmq::PUB).unwrap();
    zpub.bind("tcp://127.0.0.1:*").unwrap();
    let zep = zpub.get_last_endpoint().unwrap().unwrap();
    let sub = ctx.socket(ferromq::SUB).unwrap();
    sub.set_rcvtimeo(100).unwrap();
    sub.set_subscribe(b"x").unwrap();
    sub.connect(&zep).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        zpub.send("y-not", 0).unwrap();
        zpub.send("x-yes", 0).unwrap();
        if let Ok(m) = sub.recv_bytes(0) {
            assert_eq!(m, b"x-yes");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "subscription never arrived"
        );
    }
}

#[test]
fn router_connect_routing_id_names_the_peer() {
    let ctx = ferromq::Context::new();
    for ep in ["tcp://127.0.0.1:*", "inproc://crid"] {
        let server = ctx.socket(ferromq::ROUTER).unwrap();
        server.set_rcvtimeo(5000).unwrap();
        server.bind(ep).unwrap();
        let client = ctx.socket(ferromq::ROUTER).unwrap();
        client.set_rcvtimeo(5000).unwrap();
        client.set_identity(b"client").unwrap();
        client.set_connect_routing_id(b"srv").unwrap();
        client.connect(&endpoint(&server)).unwrap();
        // The client addresses the server by the id it chose; mandatory waits for the peer.
        client.set_router_mandatory(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while client.send_multipart(["srv", "hello"], 0).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "peer srv never routable"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            server.recv_multipart(0).unwrap(),
            vec![b"client".to_vec(), b"hello".to_vec()]
        );
    }
}
