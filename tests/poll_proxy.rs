//! zmq::poll and zmq::proxy compatibility (issue: patterns, items 4 and 5).

use std::time::{Duration, Instant};

use ferromq as zmq;

fn bound(ctx: &zmq::Context, t: zmq::SocketType) -> (zmq::Socket, String) {
    let s = ctx.socket(t).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.set_sndtimeo(5000).unwrap();
    s.set_linger(0).unwrap();
    s.bind("tcp://127.0.0.1:*").unwrap();
    let ep = s.get_last_endpoint().unwrap().unwrap();
    (s, ep)
}

fn connected(ctx: &zmq::Context, t: zmq::SocketType, ep: &str) -> zmq::Socket {
    let s = ctx.socket(t).unwrap();
    s.set_rcvtimeo(5000).unwrap();
    s.set_sndtimeo(5000).unwrap();
    s.set_linger(0).unwrap();
    s.connect(ep).unwrap();
    s
}

/// CPU time of the calling thread (Linux: /proc/thread-self/schedstat, nanoseconds).
fn thread_cpu() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

#[test]
fn poll_reports_only_the_ready_socket_across_contexts() {
    let ctx1 = zmq::Context::new();
    let ctx2 = zmq::Context::new();
    let (a, ep_a) = bound(&ctx1, zmq::PULL);
    let (b, _ep_b) = bound(&ctx2, zmq::PULL);
    let push = connected(&ctx1, zmq::PUSH, &ep_a);
    let mut items = [a.as_poll_item(zmq::POLLIN), b.as_poll_item(zmq::POLLIN)];
    assert_eq!(zmq::poll(&mut items, 0).unwrap(), 0);
    push.send("x", 0).unwrap();
    let mut items = [a.as_poll_item(zmq::POLLIN), b.as_poll_item(zmq::POLLIN)];
    assert_eq!(zmq::poll(&mut items, 5000).unwrap(), 1);
    assert!(items[0].is_readable());
    assert!(!items[1].is_readable());
    // Level-triggered: still readable until received.
    assert_eq!(a.poll(zmq::POLLIN, 0).unwrap(), 1);
    assert!(a.get_events().unwrap().contains(zmq::POLLIN));
    assert_eq!(a.recv_bytes(0).unwrap(), b"x");
    assert_eq!(a.poll(zmq::POLLIN, 0).unwrap(), 0);
}

#[test]
fn poll_times_out_and_an_idle_poll_costs_no_cpu() {
    let ctx = zmq::Context::new();
    let (a, _) = bound(&ctx, zmq::PULL);
    let before = thread_cpu();
    let t = Instant::now();
    assert_eq!(a.poll(zmq::POLLIN, 1000).unwrap(), 0);
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(990), "{waited:?}");
    if let (Some(b), Some(after)) = (before, thread_cpu()) {
        let cpu = after - b;
        assert!(
            cpu < Duration::from_millis(50),
            "idle poll used {cpu:?} of CPU"
        );
    }
}

#[test]
fn pollout_follows_peer_availability_and_hwm() {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    // No peer: a PUSH cannot send.
    assert_eq!(push.poll(zmq::POLLOUT, 0).unwrap(), 0);
    let (pull, ep) = bound(&ctx, zmq::PULL);
    push.set_sndhwm(1).unwrap();
    push.connect(&ep).unwrap();
    assert_eq!(push.poll(zmq::POLLOUT, 5000).unwrap(), 1);
    drop(pull);
}

#[test]
fn poll_wakes_when_a_message_arrives_later() {
    let ctx = zmq::Context::new();
    let (a, ep) = bound(&ctx, zmq::PULL);
    let ctx2 = ctx.clone();
    let sender = std::thread::spawn(move || {
        let push = connected(&ctx2, zmq::PUSH, &ep);
        std::thread::sleep(Duration::from_millis(100)); // let the poller park first
        push.send("late", 0).unwrap();
    });
    let mut items = [a.as_poll_item(zmq::POLLIN)];
    assert_eq!(zmq::poll(&mut items, 10_000).unwrap(), 1);
    assert_eq!(a.recv_bytes(0).unwrap(), b"late");
    sender.join().unwrap();
}

#[test]
fn poll_raw_fd_items() {
    use std::io::Write;
    use std::os::unix::io::AsRawFd;
    let (mut w, r) = std::os::unix::net::UnixStream::pair().unwrap();
    let ctx = zmq::Context::new();
    let (a, _) = bound(&ctx, zmq::PULL);
    let mut items = [
        a.as_poll_item(zmq::POLLIN),
        zmq::PollItem::from_fd(r.as_raw_fd(), zmq::POLLIN),
    ];
    assert_eq!(zmq::poll(&mut items, 0).unwrap(), 0);
    w.write_all(b"!").unwrap();
    assert_eq!(zmq::poll(&mut items, 5000).unwrap(), 1);
    assert!(items[1].is_readable() && items[1].has_fd(r.as_raw_fd()));
    assert!(items[0].has_socket(&a));
}

#[test]
fn proxy_forwards_pipeline_and_stops_on_context_termination() {
    let mut ctx = zmq::Context::new();
    let (front, front_ep) = bound(&ctx, zmq::PULL);
    let (back, back_ep) = bound(&ctx, zmq::PUSH);
    let proxy = std::thread::spawn(move || {
        let r = zmq::proxy(&front, &back);
        drop(front);
        drop(back);
        r
    });
    let producer = connected(&ctx, zmq::PUSH, &front_ep);
    let consumer = connected(&ctx, zmq::PULL, &back_ep);
    for i in 0..100u32 {
        producer
            .send_multipart([&b"k"[..], &i.to_be_bytes()[..]], 0)
            .unwrap();
    }
    for i in 0..100u32 {
        let parts = consumer.recv_multipart(0).unwrap();
        assert_eq!(parts, vec![b"k".to_vec(), i.to_be_bytes().to_vec()]);
    }
    drop(producer);
    drop(consumer);
    // Terminating the context makes the proxy return ETERM; destroy waits for its sockets.
    let done = std::sync::mpsc::channel();
    let tx = done.0;
    std::thread::spawn(move || {
        ctx.destroy().unwrap();
        let _ = tx.send(());
    });
    done.1
        .recv_timeout(Duration::from_secs(10))
        .expect("context termination did not stop the proxy");
    assert_eq!(proxy.join().unwrap(), Err(zmq::Error::ETERM));
}
