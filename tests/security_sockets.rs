//! PLAIN and CURVE on real sockets: ferromq to ferromq, and against libzmq 4.3.5 (pyzmq)
//! where installed (see tests/security_pyzmq.rs for the handshake-level interop).

use std::time::Duration;

use ferromq::proto::{ZapReply, ZapRequest};

fn pair(ctx: &ferromq::Context) -> (ferromq::Socket, ferromq::Socket) {
    let server = ctx.socket(ferromq::PULL).unwrap();
    server.set_rcvtimeo(5000).unwrap();
    server.set_linger(0).unwrap();
    let client = ctx.socket(ferromq::PUSH).unwrap();
    client.set_linger(0).unwrap();
    (server, client)
}

fn endpoint(s: &ferromq::Socket) -> String {
    s.get_last_endpoint().unwrap().unwrap()
}

#[test]
fn plain_with_an_authenticator_accepts_good_and_refuses_bad_credentials() {
    let ctx = ferromq::Context::new();
    let (server, good) = pair(&ctx);
    server.set_plain_server(true).unwrap();
    server
        .set_authenticator(|req: &ZapRequest| match req.credentials.as_slice() {
            [user, pass] if &user[..] == b"admin" && &pass[..] == b"secret" => {
                ZapReply::ok("admin-user")
            }
            _ => ZapReply::denied("bad credentials"),
        })
        .unwrap();
    let events = server.events();
    server.bind("tcp://127.0.0.1:*").unwrap();
    let ep = endpoint(&server);
    good.set_plain_username(Some("admin")).unwrap();
    good.set_plain_password(Some("secret")).unwrap();
    good.connect(&ep).unwrap();
    good.send("authorised", 0).unwrap();
    let mut msg = server.recv_msg(0).unwrap();
    assert_eq!(&msg[..], b"authorised");
    assert_eq!(msg.gets("User-Id"), Some("admin-user"));

    let bad = ctx.socket(ferromq::PUSH).unwrap();
    bad.set_linger(0).unwrap();
    bad.set_plain_username(Some("admin")).unwrap();
    bad.set_plain_password(Some("wrong")).unwrap();
    bad.connect(&ep).unwrap();
    bad.send("intruder", 0).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = events
            .recv_timeout(Duration::from_secs(10))
            .expect("no auth failure event");
        if ev.kind == ferromq::SocketEvent::HANDSHAKE_FAILED_AUTH {
            assert_eq!(ev.value, 400);
            break;
        }
        assert!(std::time::Instant::now() < deadline);
    }
    server.set_rcvtimeo(300).unwrap();
    assert_eq!(
        server.recv_bytes(0),
        Err(ferromq::Error::EAGAIN),
        "intruder delivered"
    );
}

#[test]
fn curve_round_trip_and_wrong_server_key_fails() {
    let ctx = ferromq::Context::new();
    let server_keys = ferromq::CurveKeyPair::new().unwrap();
    let client_keys = ferromq::CurveKeyPair::new().unwrap();
    let (server, client) = pair(&ctx);
    server.set_curve_server(true).unwrap();
    server.set_curve_secretkey(&server_keys.secret_key).unwrap();
    server.bind("tcp://127.0.0.1:*").unwrap();
    let ep = endpoint(&server);
    client
        .set_curve_serverkey(
            ferromq::z85_encode(&server_keys.public_key)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
    client.set_curve_publickey(&client_keys.public_key).unwrap();
    client.set_curve_secretkey(&client_keys.secret_key).unwrap();
    client.connect(&ep).unwrap();
    for i in 0..100u32 {
        client
            .send_multipart([&b"k"[..], &i.to_be_bytes()[..]], 0)
            .unwrap();
    }
    client.send(vec![7u8; 200_000], 0).unwrap();
    for i in 0..100u32 {
        assert_eq!(
            server.recv_multipart(0).unwrap(),
            vec![b"k".to_vec(), i.to_be_bytes().to_vec()]
        );
    }
    assert_eq!(server.recv_bytes(0).unwrap(), vec![7u8; 200_000]);

    // A client that trusts another server key never gets through.
    let other = ferromq::CurveKeyPair::new().unwrap();
    let wrong = ctx.socket(ferromq::PUSH).unwrap();
    wrong.set_linger(0).unwrap();
    wrong.set_curve_serverkey(&other.public_key).unwrap();
    wrong.set_curve_publickey(&client_keys.public_key).unwrap();
    wrong.set_curve_secretkey(&client_keys.secret_key).unwrap();
    wrong.connect(&ep).unwrap();
    wrong.send("should not arrive", 0).unwrap();
    server.set_rcvtimeo(500).unwrap();
    assert_eq!(server.recv_bytes(0), Err(ferromq::Error::EAGAIN));
}

#[test]
fn curve_pub_sub_subscriptions_travel_boxed() {
    let ctx = ferromq::Context::new();
    let keys = ferromq::CurveKeyPair::new().unwrap();
    let client_keys = ferromq::CurveKeyPair::new().unwrap();
    let publ = ctx.socket(ferromq::PUB).unwrap();
    publ.set_linger(0).unwrap();
    publ.set_curve_server(true).unwrap();
    publ.set_curve_secretkey(&keys.secret_key).unwrap();
    publ.bind("tcp://127.0.0.1:*").unwrap();
    let sub = ctx.socket(ferromq::SUB).unwrap();
    sub.set_rcvtimeo(100).unwrap();
    sub.set_curve_serverkey(&keys.public_key).unwrap();
    sub.set_curve_publickey(&client_keys.public_key).unwrap();
    sub.set_curve_secretkey(&client_keys.secret_key).unwrap();
    sub.set_subscribe(b"yes").unwrap();
    sub.connect(&endpoint(&publ)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        publ.send("no-thanks", 0).unwrap();
        publ.send("yes-please", 0).unwrap();
        if let Ok(m) = sub.recv_bytes(0) {
            assert_eq!(m, b"yes-please");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "subscription never arrived"
        );
    }
}
