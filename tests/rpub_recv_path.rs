//! The subscriber's receive path: a thread in [`ReliableSubscriber::recv`] reads the SUB and
//! feeds the protocol machine itself, the background thread reads it while no thread
//! receives. Checked here: order and completeness with several receiving threads, repair
//! while the application receives and while it does not, and a thread inside `recv` when
//! the context is terminated.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ferromq::rpub::bus::{
    BusError, ReliablePublisher, ReliablePublisherConfig, ReliableSubscriber,
    ReliableSubscriberConfig,
};
use ferromq::rpub::publisher::PublisherConfig;
use ferromq::rpub::shim::Shim;
use ferromq::rpub::subscriber::{Delivery, JoinPolicy, SubscriberConfig};
use ferromq::Context;

const ANY: &str = "tcp://127.0.0.1:*";
const STREAM: &[u8] = b"prices";

/// A publisher retaining `n` messages, heartbeats from 10 ms.
fn publisher(ctx: &Context, n: u64) -> ReliablePublisher {
    ReliablePublisher::start(ctx, publisher_config(n)).expect("publisher")
}

/// The configuration of [`publisher`].
fn publisher_config(n: u64) -> ReliablePublisherConfig {
    let mut pc = ReliablePublisherConfig {
        data_bind: vec![ANY.into()],
        replay_bind: vec![ANY.into()],
        protocol: PublisherConfig {
            heartbeat_initial_ms: 10,
            heartbeat_max_ms: 200,
            ..Default::default()
        },
        ..Default::default()
    };
    pc.retention.max_messages = pc.retention.max_messages.max(n as usize);
    pc
}

/// A subscriber reading `data` from seq 1, repairing from `p`.
fn subscriber(ctx: &Context, data: String, p: &ReliablePublisher) -> ReliableSubscriber {
    ReliableSubscriber::start(
        ctx,
        ReliableSubscriberConfig {
            data_connect: vec![data],
            replay_connect: p.replay_endpoints().to_vec(),
            subscriptions: vec![(STREAM.to_vec(), JoinPolicy::FromSeq(1))],
            protocol: SubscriberConfig {
                request_timeout_ms: 100,
                max_request_timeout_ms: 1000,
                max_attempts: 8,
                reorder_window: ferromq::rpub::bus::DEFAULT_REORDER_WINDOW,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .expect("subscriber")
}

/// [`publisher`], the fault shim in front of its PUB (dropping `drop_rate` of the
/// messages), and a [`subscriber`] reading through the shim.
fn start(ctx: &Context, n: u64, drop_rate: f64) -> (ReliablePublisher, Shim, ReliableSubscriber) {
    let p = publisher(ctx, n);
    let shim = Shim::start(&p.data_endpoints()[0]).expect("shim");
    shim.set_seed(0x5eed ^ n);
    shim.set_drop_rate(drop_rate);
    let sub = subscriber(ctx, shim.endpoint(), &p);
    (p, shim, sub)
}

fn publish_range(p: &ReliablePublisher, range: std::ops::Range<u64>) {
    for i in range {
        let mut v = i.to_be_bytes().to_vec();
        v.resize(64, 0xab);
        p.publish(STREAM, v).expect("publish");
    }
}

/// What one receiving thread saw: seqs of the messages in the order it took them, how many
/// were repairs.
#[derive(Debug, Default)]
struct Seen {
    seqs: Vec<u64>,
    retransmitted: u64,
}

impl Seen {
    fn feed(&mut self, d: Delivery) {
        match d {
            Delivery::Message(m) => {
                self.seqs.push(m.seq);
                self.retransmitted += u64::from(m.retransmitted);
            }
            Delivery::UnrecoverableGap { from, to, .. } => panic!("lost {from}..={to}"),
            _ => {}
        }
    }
}

/// Receives until `n` messages were taken (by this and the other threads counting in
/// `got`) or 60 s passed; `try_first` alternates `try_recv` with `recv_timeout`.
fn receive_until(sub: &ReliableSubscriber, got: &AtomicU64, n: u64, try_first: bool) -> Seen {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Seen::default();
    while got.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {n}",
            got.load(Ordering::SeqCst)
        );
        let d = match try_first.then(|| sub.try_recv()).flatten() {
            Some(d) => Some(d),
            None => sub.recv_timeout(Duration::from_millis(50)).ok(),
        };
        if let Some(d) = d {
            let message = matches!(d, Delivery::Message(_));
            seen.feed(d);
            if message {
                got.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    seen
}

/// Every seq 1..=n exactly once over all threads, and increasing within each thread.
fn assert_complete_in_order(seen: &[&Seen], n: u64) {
    let mut all = BTreeSet::new();
    for s in seen {
        assert!(
            s.seqs.windows(2).all(|w| w[0] < w[1]),
            "out of order in one thread"
        );
        for &q in &s.seqs {
            assert!(all.insert(q), "seq {q} delivered twice");
        }
    }
    assert_eq!(all.len() as u64, n, "missing seqs");
    assert_eq!(all.first().copied(), Some(1));
    assert_eq!(all.last().copied(), Some(n));
}

/// Two threads receive at once (one with `try_recv` first) while the publisher publishes
/// and 1 % of the data is lost on the way: each thread takes its deliveries in order, and
/// together they take every message exactly once.
#[test]
fn two_receiving_threads_take_every_message_once_in_order() {
    let ctx = Context::new();
    let n = 20_000;
    let (p, _shim, sub) = start(&ctx, n, 0.01);
    let sub = Arc::new(sub);
    let got = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = [false, true]
        .into_iter()
        .map(|try_first| {
            let (sub, got) = (sub.clone(), got.clone());
            std::thread::spawn(move || receive_until(&sub, &got, n, try_first))
        })
        .collect();
    publish_range(&p, 0..n);
    let seen: Vec<Seen> = threads
        .into_iter()
        .map(|t| t.join().expect("receiver"))
        .collect();
    assert_complete_in_order(&seen.iter().collect::<Vec<_>>(), n);
    let retransmitted: u64 = seen.iter().map(|s| s.retransmitted).sum();
    assert!(retransmitted > 0, "nothing was repaired: {:?}", sub.stats());
    assert!(sub.stats().requests > 0);
    println!(
        "FIGURE two_receivers taken={}+{} retransmitted={retransmitted}",
        seen[0].seqs.len(),
        seen[1].seqs.len()
    );
}

/// A thread receives all along while a burst of data is lost: the gap is found on the data
/// that thread reads, repaired, and the repair delivered to it, in order.
#[test]
fn gap_is_repaired_while_the_application_receives() {
    let ctx = Context::new();
    let n = 5_000;
    let (p, shim, sub) = start(&ctx, n, 0.0);
    let sub = Arc::new(sub);
    let got = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (sub, got) = (sub.clone(), got.clone());
        std::thread::spawn(move || receive_until(&sub, &got, n, false))
    };
    publish_range(&p, 0..n / 2);
    shim.drop_burst(200);
    publish_range(&p, n / 2..n);
    let seen = receiver.join().expect("receiver");
    assert_complete_in_order(&[&seen], n);
    assert!(shim.dropped_messages() > 0, "the shim dropped nothing");
    assert!(
        seen.retransmitted > 0,
        "nothing was repaired: {:?}",
        sub.stats()
    );
}

/// The application receives, then stops calling `recv` while data keeps coming with losses:
/// the background thread reads the SUB, finds the gaps and has them repaired without the
/// application (every message is queued in order before it receives again).
#[test]
fn background_thread_repairs_while_the_application_does_not_receive() {
    let ctx = Context::new();
    let n = 3_000;
    let first = 100;
    let (p, shim, sub) = start(&ctx, n, 0.0);
    let got = AtomicU64::new(0);
    publish_range(&p, 0..first);
    // The application reads the SUB itself for a while (the background thread then leaves
    // the SUB to it while it is between calls) ...
    let head = receive_until(&sub, &got, first, false);
    // ... and then stops receiving while the rest comes, 5 % of it lost.
    shim.set_drop_rate(0.05);
    publish_range(&p, first..n);
    let deadline = Instant::now() + Duration::from_secs(60);
    while sub.stats().delivered < n {
        assert!(Instant::now() < deadline, "not repaired: {:?}", sub.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(shim.dropped_messages() > 0, "the shim dropped nothing");
    assert!(sub.stats().requests > 0);
    let tail = receive_until(&sub, &got, n, true);
    assert_complete_in_order(&[&head, &tail], n);
    assert!(tail.retransmitted > 0);
}

/// The application receives, then stalls while the publisher floods: the sans-IO queue
/// reaches `max_pending`, reading stops, the HWMs overflow; when the application receives
/// again, reading resumes (taking deliveries wakes the background thread) and every message
/// arrives once, in order, the dropped ones repaired.
#[test]
fn reading_resumes_after_max_pending_when_the_application_catches_up() {
    let ctx = Context::new();
    let n = 5_000;
    let first = 100;
    let p = ReliablePublisher::start(
        &ctx,
        ReliablePublisherConfig {
            sndhwm: 100,
            ..publisher_config(n)
        },
    )
    .expect("publisher");
    let sub = ReliableSubscriber::start(
        &ctx,
        ReliableSubscriberConfig {
            data_connect: p.data_endpoints().to_vec(),
            replay_connect: p.replay_endpoints().to_vec(),
            subscriptions: vec![(STREAM.to_vec(), JoinPolicy::FromSeq(1))],
            rcvhwm: 100,
            channel: 64,
            max_pending: 256,
            ..Default::default()
        },
    )
    .expect("subscriber");
    let got = AtomicU64::new(0);
    publish_range(&p, 0..first);
    let head = receive_until(&sub, &got, first, false);
    publish_range(&p, first..n);
    // Reading stops at max_pending while the application does not receive.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sub.stats().delivered < first + 256 {
        assert!(Instant::now() < deadline, "never filled: {:?}", sub.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    let tail = receive_until(&sub, &got, n, false);
    assert_complete_in_order(&[&head, &tail], n);
}

/// A thread inside `recv` when the subscriber's context is terminated returns
/// [`BusError::Closed`], and the context's `destroy` then completes (the subscriber is
/// dropped by that thread).
#[test]
fn recv_returns_closed_when_the_context_is_terminated() {
    let pctx = Context::new();
    let sctx = Context::new();
    let p = publisher(&pctx, 10);
    let sub = subscriber(&sctx, p.data_endpoints()[0].clone(), &p);
    publish_range(&p, 0..1);
    let first = sub
        .recv_timeout(Duration::from_secs(30))
        .expect("first message");
    assert!(
        matches!(first, Delivery::Message(ref m) if m.seq == 1),
        "{first:?}"
    );
    let (tx, rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        // Nothing more is published: this waits until the context goes away.
        let r = sub.recv_timeout(Duration::from_secs(60));
        let _ = tx.send(matches!(r, Err(BusError::Closed)));
        drop(sub);
    });
    let (done_tx, done_rx) = mpsc::channel();
    let mut ctx = sctx.clone();
    let destroyer = std::thread::spawn(move || {
        let _ = ctx.destroy();
        let _ = done_tx.send(());
    });
    let closed = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("recv did not return after the context was terminated");
    assert!(closed, "recv did not report the bus closed");
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("destroy did not complete");
    receiver.join().expect("receiver");
    destroyer.join().expect("destroyer");
}
