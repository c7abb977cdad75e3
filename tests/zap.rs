//! ZAP (RFC 27): an application REP socket bound to inproc://zeromq.zap.01 authenticates
//! PLAIN and CURVE clients, as with libzmq.

fn zap_handler(ctx: &ferromq::Context) -> std::thread::JoinHandle<Vec<Vec<Vec<u8>>>> {
    let handler = ctx.socket(ferromq::REP).unwrap();
    handler.set_rcvtimeo(3000).unwrap();
    handler.bind("inproc://zeromq.zap.01").unwrap();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        // Answer until no request comes for 3 s.
        while let Ok(req) = handler.recv_multipart(0) {
            // version, request id, domain, address, identity, mechanism, credentials...
            let ok = match req.get(5).map(|m| &m[..]) {
                Some(b"PLAIN") => {
                    req.get(6).map(|u| &u[..]) == Some(b"admin")
                        && req.get(7).map(|p| &p[..]) == Some(b"secret")
                }
                Some(b"CURVE") => req.get(6).is_some_and(|k| k.len() == 32 && k[0] % 2 == 0),
                Some(b"NULL") => req.get(2).map(|d| &d[..]) == Some(b"open"),
                _ => false,
            };
            let (code, text, user) = if ok {
                ("200", "OK", "zap-user")
            } else {
                ("400", "denied", "")
            };
            handler
                .send_multipart(
                    [
                        &b"1.0"[..],
                        &req[1],
                        code.as_bytes(),
                        text.as_bytes(),
                        user.as_bytes(),
                        b"",
                    ],
                    0,
                )
                .unwrap();
            seen.push(req);
        }
        seen
    })
}

fn not_delivered(s: &ferromq::Socket) -> bool {
    s.set_rcvtimeo(500).unwrap();
    s.recv_bytes(0) == Err(ferromq::Error::EAGAIN)
}

#[test]
fn zap_handler_authenticates_plain_clients() {
    let ctx = ferromq::Context::new();
    let handler = zap_handler(&ctx);
    let server = ctx.socket(ferromq::PULL).unwrap();
    server.set_linger(0).unwrap();
    server.set_rcvtimeo(5000).unwrap();
    server.set_plain_server(true).unwrap();
    server.set_zap_domain("test-domain").unwrap();
    server.bind("tcp://127.0.0.1:*").unwrap();
    let ep = server.get_last_endpoint().unwrap().unwrap();

    let good = ctx.socket(ferromq::PUSH).unwrap();
    good.set_linger(0).unwrap();
    good.set_plain_username(Some("admin")).unwrap();
    good.set_plain_password(Some("secret")).unwrap();
    good.connect(&ep).unwrap();
    good.send("let me in", 0).unwrap();
    let mut m = server.recv_msg(0).unwrap();
    assert_eq!(&m[..], b"let me in");
    assert_eq!(m.gets("User-Id"), Some("zap-user"));

    let bad = ctx.socket(ferromq::PUSH).unwrap();
    bad.set_linger(0).unwrap();
    bad.set_plain_username(Some("admin")).unwrap();
    bad.set_plain_password(Some("guess")).unwrap();
    bad.connect(&ep).unwrap();
    bad.send("intruder", 0).unwrap();
    assert!(not_delivered(&server));
    drop((good, bad, server));
    let seen = handler.join().unwrap();
    let first = &seen[0];
    assert_eq!(first[0], b"1.0");
    assert_eq!(first[2], b"test-domain");
    assert_eq!(first[3], b"127.0.0.1");
    assert_eq!(first[5], b"PLAIN");
}

#[test]
fn zap_handler_authenticates_curve_client_keys() {
    let ctx = ferromq::Context::new();
    let handler = zap_handler(&ctx);
    let server_keys = ferromq::CurveKeyPair::new().unwrap();
    let server = ctx.socket(ferromq::PULL).unwrap();
    server.set_linger(0).unwrap();
    server.set_rcvtimeo(5000).unwrap();
    server.set_curve_server(true).unwrap();
    server.set_curve_secretkey(&server_keys.secret_key).unwrap();
    server.bind("tcp://127.0.0.1:*").unwrap();
    let ep = server.get_last_endpoint().unwrap().unwrap();
    // The handler admits client keys whose first byte is even.
    let key = |even: bool| loop {
        let k = ferromq::CurveKeyPair::new().unwrap();
        if (k.public_key[0] % 2 == 0) == even {
            return k;
        }
    };
    let client = |k: &ferromq::CurveKeyPair| {
        let c = ctx.socket(ferromq::PUSH).unwrap();
        c.set_linger(0).unwrap();
        c.set_curve_serverkey(&server_keys.public_key).unwrap();
        c.set_curve_publickey(&k.public_key).unwrap();
        c.set_curve_secretkey(&k.secret_key).unwrap();
        c.connect(&ep).unwrap();
        c
    };
    let admitted = client(&key(true));
    admitted.send("admitted", 0).unwrap();
    assert_eq!(server.recv_bytes(0).unwrap(), b"admitted");
    let refused = client(&key(false));
    refused.send("refused", 0).unwrap();
    assert!(not_delivered(&server));
    drop((admitted, refused, server));
    let seen = handler.join().unwrap();
    assert!(seen.iter().all(|r| r[5] == b"CURVE" && r[6].len() == 32));
}

#[test]
fn zap_handler_checks_null_connections_with_a_domain() {
    let ctx = ferromq::Context::new();
    let handler = zap_handler(&ctx);
    let server = |domain: Option<&str>| {
        let s = ctx.socket(ferromq::PULL).unwrap();
        s.set_linger(0).unwrap();
        s.set_rcvtimeo(5000).unwrap();
        if let Some(d) = domain {
            s.set_zap_domain(d).unwrap();
        }
        s.bind("tcp://127.0.0.1:*").unwrap();
        let ep = s.get_last_endpoint().unwrap().unwrap();
        (s, ep)
    };
    let client = |ep: &str| {
        let c = ctx.socket(ferromq::PUSH).unwrap();
        c.set_linger(0).unwrap();
        c.connect(ep).unwrap();
        c
    };
    let (open, open_ep) = server(Some("open"));
    let (closed, closed_ep) = server(Some("closed"));
    let (plain, plain_ep) = server(None);
    let (a, b, c) = (client(&open_ep), client(&closed_ep), client(&plain_ep));
    a.send("to open", 0).unwrap();
    b.send("to closed", 0).unwrap();
    c.send("no domain", 0).unwrap();
    assert_eq!(open.recv_bytes(0).unwrap(), b"to open");
    assert_eq!(plain.recv_bytes(0).unwrap(), b"no domain");
    assert!(not_delivered(&closed));
    drop((a, b, c, open, closed, plain));
    let seen = handler.join().unwrap();
    // Only the two sockets with a domain asked.
    assert!(seen.iter().all(|r| r[5] == b"NULL"));
    assert!(seen.iter().any(|r| r[2] == b"open"));
    assert!(seen.iter().any(|r| r[2] == b"closed"));
}
