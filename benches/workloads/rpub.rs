//! Reliable-PUB against plain PUB/SUB, side by side (`rpub/tcp/64B` in `benches/compare.rs`,
//! tiny counts in `tests/bench_smoke.rs`).
//!
//! Both runs: one publisher, one subscriber, tcp on 127.0.0.1, one stream (`bench`), payloads
//! of `size` bytes, HWM 0 (unlimited) on the data sockets, one context per side. The
//! publisher binds and sends from the calling thread; the subscriber connects and counts in
//! its own thread. Rate: `count - 1` messages over the time from the first counted message
//! to the last, as the receiver sees it (the convention of every throughput case).
//!
//! - **plain**: ferromq PUB -> SUB, messages `[stream][payload]` (a topic frame, as a plain
//!   PUB/SUB application on a named stream would send).
//! - **reliable**: [`ReliablePublisher::publish_slice`] -> [`ReliableSubscriber::recv_timeout`],
//!   nothing lost on the way (no shim), counting [`Delivery::Message`]s.
//!
//! Both senders pass a slice that is copied per message (plain: `Socket::send(&[u8])`;
//! reliable: `publish_slice`, which copies into the publisher's chunk and retains that copy).
//!
//! Before counting, each side is probed until the subscriber has seen a message (slow
//! joiner); probes carry [`FAN_HELLO`] in the first payload byte, counted messages [`FAN_DATA`].

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferromq::rpub::bus::{
    ReliablePublisher, ReliablePublisherConfig, ReliableSubscriber, ReliableSubscriberConfig,
};
use ferromq::rpub::subscriber::{Delivery, JoinPolicy};

/// Receive timeout of both subscribers, so a lost message fails the run instead of hanging.
pub const RECV_TIMEOUT_MS: i32 = 30_000;
/// First payload byte of a probe.
pub const FAN_HELLO: u8 = 2;
/// First payload byte of a counted message.
pub const FAN_DATA: u8 = 0;

/// The stream (topic) of both runs.
pub const STREAM: &[u8] = b"bench";

/// One side-by-side outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpubVsPlain {
    /// plain PUB -> SUB, msg/s
    pub plain: f64,
    /// ReliablePublisher -> ReliableSubscriber, msg/s
    pub rpub: f64,
    /// deliveries of the reliable run that came from replay (expected 0: nothing is lost)
    pub retransmitted: u64,
}

static CALLS: AtomicUsize = AtomicUsize::new(0);

/// Runs both, alternating which goes first from one call to the next.
pub fn side_by_side(size: usize, count: u64) -> Result<RpubVsPlain, String> {
    let rpub_first = CALLS.fetch_add(1, Ordering::Relaxed) % 2 == 1;
    let (plain, (rpub, retransmitted)) = if rpub_first {
        let r = reliable(size, count)?;
        (plain(size, count)?, r)
    } else {
        let p = plain(size, count)?;
        (p, reliable(size, count)?)
    };
    Ok(RpubVsPlain {
        plain,
        rpub,
        retransmitted,
    })
}

fn timeout() -> Duration {
    Duration::from_millis(RECV_TIMEOUT_MS as u64)
}

fn rate(count: u64, first: Option<Instant>, last: Option<Instant>) -> f64 {
    match (first, last) {
        (Some(a), Some(b)) => {
            count.saturating_sub(1).max(1) as f64 / (b - a).as_secs_f64().max(1e-9)
        }
        _ => 0.0,
    }
}

fn join<T>(h: std::thread::JoinHandle<Result<T, String>>) -> Result<T, String> {
    h.join()
        .map_err(|_| "subscriber thread panicked".to_string())?
}

/// Sends probes with `probe` until `ready` fires (or the receive timeout passes).
fn probe_until_ready(
    ready: &mpsc::Receiver<()>,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout();
    loop {
        probe()?;
        match ready.recv_timeout(Duration::from_millis(2)) {
            Ok(()) => return Ok(()),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(e) => return Err(format!("subscriber never joined: {e}")),
        }
    }
}

/// Plain ferromq PUB -> SUB: msg/s.
pub fn plain(size: usize, count: u64) -> Result<f64, String> {
    let e = |err: ferromq::Error| format!("plain: {err}");
    let size = size.max(1);
    let ctx = ferromq::Context::new();
    let publ = ctx.socket(ferromq::PUB).map_err(e)?;
    publ.set_sndhwm(0).map_err(e)?;
    publ.bind("tcp://127.0.0.1:*").map_err(e)?;
    let endpoint = publ
        .get_last_endpoint()
        .map_err(e)?
        .map_err(|_| "plain: endpoint".to_string())?;
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || -> Result<f64, String> {
        let sctx = ferromq::Context::new();
        let sub = sctx.socket(ferromq::SUB).map_err(e)?;
        sub.set_rcvhwm(0).map_err(e)?;
        sub.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(e)?;
        sub.set_subscribe(STREAM).map_err(e)?;
        sub.connect(&endpoint).map_err(e)?;
        let mut msg = ferromq::Message::new();
        let (mut n, mut first, mut last) = (0u64, None, None);
        let mut ready = false;
        while n < count {
            sub.recv(&mut msg, 0).map_err(e)?; // stream frame
            if !msg.get_more() {
                return Err("plain: one-frame message".into());
            }
            sub.recv(&mut msg, 0).map_err(e)?;
            match msg.first().copied() {
                Some(FAN_HELLO) if !ready => {
                    ready = true;
                    let _ = ready_tx.send(());
                }
                Some(FAN_DATA) => {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    last = Some(now);
                    n += 1;
                }
                _ => {}
            }
        }
        Ok(rate(count, first, last))
    });
    let mut buf = vec![7u8; size];
    buf[0] = FAN_HELLO;
    probe_until_ready(&ready_rx, || {
        publ.send(STREAM, ferromq::SNDMORE).map_err(e)?;
        publ.send(&buf[..], 0).map_err(e)
    })?;
    buf[0] = FAN_DATA;
    for _ in 0..count {
        publ.send(STREAM, ferromq::SNDMORE).map_err(e)?;
        publ.send(&buf[..], 0).map_err(e)?;
    }
    let r = join(receiver)?;
    publ.set_linger(0).map_err(e)?;
    Ok(r)
}

/// ReliablePublisher -> ReliableSubscriber, no loss: (msg/s, retransmitted deliveries).
pub fn reliable(size: usize, count: u64) -> Result<(f64, u64), String> {
    let e = |err: ferromq::rpub::bus::BusError| format!("rpub: {err}");
    let size = size.max(1);
    let ctx = ferromq::Context::new();
    let publ = ReliablePublisher::start(
        &ctx,
        ReliablePublisherConfig {
            data_bind: vec!["tcp://127.0.0.1:*".into()],
            replay_bind: vec!["tcp://127.0.0.1:*".into()],
            sndhwm: 0,
            linger_ms: 0,
            ..Default::default()
        },
    )
    .map_err(e)?;
    let data = publ.data_endpoints().to_vec();
    let replay = publ.replay_endpoints().to_vec();
    let (ready_tx, ready_rx) = mpsc::channel::<()>();
    let receiver = std::thread::spawn(move || -> Result<(f64, u64), String> {
        let sctx = ferromq::Context::new();
        let sub = ReliableSubscriber::start(
            &sctx,
            ReliableSubscriberConfig {
                data_connect: data,
                replay_connect: replay,
                subscriptions: vec![(STREAM.to_vec(), JoinPolicy::FromNow)],
                rcvhwm: 0,
                ..Default::default()
            },
        )
        .map_err(e)?;
        let (mut n, mut first, mut last, mut retx) = (0u64, None, None, 0u64);
        let mut ready = false;
        while n < count {
            match sub.recv_timeout(timeout()).map_err(e)? {
                Delivery::Message(m) => match m.payload.first().and_then(|p| p.first()) {
                    Some(&FAN_HELLO) if !ready => {
                        ready = true;
                        let _ = ready_tx.send(());
                    }
                    Some(&FAN_DATA) => {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = Some(now);
                        n += 1;
                        retx += u64::from(m.retransmitted);
                    }
                    _ => {}
                },
                Delivery::UnrecoverableGap { from, to, .. } => {
                    return Err(format!("rpub: lost {from}..={to}"));
                }
                _ => {}
            }
        }
        Ok((rate(count, first, last), retx))
    });
    let mut buf = vec![7u8; size];
    buf[0] = FAN_HELLO;
    probe_until_ready(&ready_rx, || publ.publish_slice(STREAM, &buf).map_err(e))?;
    buf[0] = FAN_DATA;
    for _ in 0..count {
        publ.publish_slice(STREAM, &buf).map_err(e)?;
    }
    join(receiver)
}
