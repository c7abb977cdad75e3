//! If the I/O thread ever dies (a bug: network bytes can never cause it), every socket of
//! its context must fail with ETERM instead of leaving user threads blocked forever.

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn a_panicking_io_thread_surfaces_as_eterm_on_every_socket() {
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_linger(0).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let (tx, rx) = mpsc::channel();
    // A user thread blocked in recv with no timeout.
    let blocked = std::thread::spawn(move || {
        let r = pull.recv_bytes(0);
        let _ = tx.send(r);
    });
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.connect(&ep).unwrap();
    ctx.__inject_io_thread_panic();
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocked recv was never woken");
    assert_eq!(got, Err(ferromq::Error::ETERM));
    blocked.join().unwrap();
    // Other sockets of the context fail too, promptly.
    assert_eq!(push.send("x", 0), Err(ferromq::Error::ETERM));
    let s = ctx.socket(ferromq::PULL);
    assert!(s.is_err() || s.unwrap().bind("tcp://127.0.0.1:*") == Err(ferromq::Error::ETERM));
}
