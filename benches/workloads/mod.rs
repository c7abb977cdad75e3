//! Workloads shared by `benches/compare.rs` (full counts) and `tests/bench_smoke.rs` (tiny
//! counts), so the harness cannot rot without a failing test.
//!
//! ferromq and libzmq (the `zmq` crate) have the same synchronous API, so one macro expands the
//! same workload code for both (`ferro` and `libzmq` below). zmq.rs (async, tokio) has its own
//! module, `zmqrs.rs`, included by the bench only.
//!
//! Every workload: the receiving side binds, the sending side connects from another thread;
//! tcp and ipc use one context per side (as two processes would), inproc shares one context.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Receive timeout on every receiving socket, so a lost message fails the run instead of
/// hanging it.
pub const RECV_TIMEOUT_MS: i32 = 30_000;

/// A transport of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `tcp://127.0.0.1`
    Tcp,
    /// `ipc://` in the temp dir
    Ipc,
    /// `inproc://` (ferromq and libzmq only)
    Inproc,
}

impl Transport {
    /// The name used in tables, JSON and `--only` filters.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ipc => "ipc",
            Transport::Inproc => "inproc",
        }
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh endpoint to bind for `t` (tcp: an ephemeral port, read back with
/// `get_last_endpoint`).
pub fn bind_endpoint(t: Transport) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    match t {
        Transport::Tcp => "tcp://127.0.0.1:*".to_string(),
        Transport::Ipc => format!(
            "ipc://{}/fmq-bench-{}-{n}.ipc",
            std::env::temp_dir().display(),
            std::process::id()
        ),
        Transport::Inproc => format!("inproc://fmq-bench-{n}"),
    }
}

/// p50 and p99 of latency samples (microseconds).
#[derive(Clone, Copy, Debug, Default)]
pub struct Lat {
    /// median half round trip, us
    pub p50: f64,
    /// 99th percentile half round trip, us
    pub p99: f64,
}

impl Lat {
    /// Percentiles of `samples` (sorted here).
    pub fn of(mut samples: Vec<f64>) -> Lat {
        if samples.is_empty() {
            return Lat::default();
        }
        samples.sort_by(f64::total_cmp);
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        Lat {
            p50: pct(0.5),
            p99: pct(0.99),
        }
    }
}

/// PUB/SUB fan-out outcome.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fanout {
    /// messages delivered per second, summed over the subscribers
    pub delivered_per_sec: f64,
    /// fraction of the published messages that some subscriber did not get (PUB drops at HWM)
    pub loss: f64,
}

/// Warm-up round trips before latency samples are taken.
pub fn warmup(count: u64) -> u64 {
    (count / 10).clamp(1, 1000)
}

/// Message kinds of the PUB/SUB workload (first byte of each message).
pub const FAN_HELLO: u8 = 2;
/// A counted message.
pub const FAN_DATA: u8 = 0;
/// End of the run; the publisher repeats it until every subscriber has seen it.
pub const FAN_END: u8 = 1;

/// How each `zmq`-shaped implementation sends a payload it sends many times: the cheapest way
/// its API allows.
///
/// ferromq over tcp and ipc, from 8 KiB: a shared `Bytes` (reference-counted, no copy per
/// send), as zmq.rs does at every size in `zmqrs.rs`. Below 8 KiB ferromq copies the slice:
/// small frames are copied into the write batch anyway, and a shared buffer's reference count
/// moving between the sending thread and the I/O thread costs more than the copy (measured:
/// tcp 1 KiB 0.76 M/s shared vs 0.92 M/s copied). Over inproc, where only libzmq is compared,
/// ferromq copies at every size (sharing would only pass a pointer, which says nothing about
/// the queue). The `zmq` crate has no shared message, so libzmq copies the slice per send
/// (`zmq_msg_init_size` + `memcpy`).
pub mod ferro_payload {
    use super::Transport;

    /// Frames from this size are queued by reference by ferromq's encoder.
    const SHARE_FROM: usize = 8 * 1024;

    /// The payload kept by the sender, and whether sends share it.
    pub struct P(bytes::Bytes, bool);
    /// Wraps the payload once.
    pub fn make(v: Vec<u8>, t: Transport) -> P {
        let share = t != Transport::Inproc && v.len() >= SHARE_FROM;
        P(bytes::Bytes::from(v), share)
    }
    /// What one send passes.
    pub fn msg(p: &P) -> ferromq::Message {
        if p.1 {
            ferromq::Message::from(p.0.clone())
        } else {
            ferromq::Message::from(&p.0[..])
        }
    }
}

/// See [`ferro_payload`].
pub mod libzmq_payload {
    use super::Transport;

    /// The payload kept by the sender.
    pub type P = Vec<u8>;
    /// Wraps the payload once.
    pub fn make(v: Vec<u8>, _t: Transport) -> P {
        v
    }
    /// What one send passes.
    pub fn msg(p: &P) -> &[u8] {
        &p[..]
    }
}

macro_rules! zmq_like {
    ($name:ident, $c:ident, $pl:ident) => {
        /// The workloads on this implementation's `zmq`-shaped API.
        pub mod $name {
            use super::*;
            use std::sync::mpsc;

            fn e<E: std::fmt::Display>(err: E) -> String {
                format!("{}: {err}", stringify!($name))
            }

            fn last_endpoint(s: &$c::Socket) -> Result<String, String> {
                s.get_last_endpoint()
                    .map_err(e)?
                    .map_err(|_| "endpoint not utf-8".to_string())
            }

            fn peer_ctx(ctx: &$c::Context, t: Transport) -> $c::Context {
                if t == Transport::Inproc {
                    ctx.clone()
                } else {
                    $c::Context::new()
                }
            }

            /// Drops a context on a thread of its own, waiting at most 10 s: libzmq's context
            /// termination can hang for good despite LINGER 0 (libzmq issue #2586; seen here
            /// under load at the end of `pubsub`). A hung one is left behind, not the run.
            fn retire(ctx: $c::Context) {
                let (tx, rx) = mpsc::channel::<()>();
                std::thread::spawn(move || {
                    drop(ctx);
                    let _ = tx.send(());
                });
                if rx.recv_timeout(Duration::from_secs(10)).is_err() {
                    eprintln!(
                        "{}: context termination still blocked after 10 s, left behind",
                        stringify!($name)
                    );
                }
            }

            fn join<T>(h: std::thread::JoinHandle<Result<T, String>>) -> Result<T, String> {
                h.join()
                    .map_err(|_| format!("{}: thread panicked", stringify!($name)))?
            }

            /// Receives `count` messages; the time of the first one.
            fn drain(
                pull: &$c::Socket,
                msg: &mut $c::Message,
                count: u64,
            ) -> Result<Instant, String> {
                pull.recv(msg, 0).map_err(e)?;
                let start = Instant::now();
                for _ in 1..count {
                    pull.recv(msg, 0).map_err(e)?;
                }
                Ok(start)
            }

            /// PUSH -> PULL: messages per second seen by the receiver, first to last message.
            pub fn thr(t: Transport, size: usize, count: u64) -> Result<f64, String> {
                let ctx = $c::Context::new();
                let pull = ctx.socket($c::PULL).map_err(e)?;
                pull.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(e)?;
                pull.bind(&bind_endpoint(t)).map_err(e)?;
                let endpoint = last_endpoint(&pull)?;
                let sctx = peer_ctx(&ctx, t);
                let sender = std::thread::spawn(move || -> Result<(), String> {
                    let push = sctx.socket($c::PUSH).map_err(e)?;
                    push.connect(&endpoint).map_err(e)?;
                    let payload = $pl::make(vec![7u8; size], t);
                    for _ in 0..count {
                        push.send($pl::msg(&payload), 0).map_err(e)?;
                    }
                    Ok(())
                });
                let mut msg = $c::Message::new();
                let start = match drain(&pull, &mut msg, count) {
                    Ok(start) => start,
                    // A failed sender explains a receive timeout better than EAGAIN does.
                    Err(err) => return Err(join(sender).err().unwrap_or(err)),
                };
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                if msg.len() != size {
                    return Err(format!(
                        "{}: got {} B, sent {size} B",
                        stringify!($name),
                        msg.len()
                    ));
                }
                join(sender)?;
                Ok(count.saturating_sub(1).max(1) as f64 / secs)
            }

            /// REQ/REP: half round trip samples in microseconds (REP binds and echoes in a
            /// thread, REQ connects and measures).
            pub fn lat(t: Transport, size: usize, count: u64) -> Result<Vec<f64>, String> {
                let ctx = $c::Context::new();
                let rctx = peer_ctx(&ctx, t);
                let total = count + warmup(count);
                let (tx, rx) = mpsc::channel();
                let echo = std::thread::spawn(move || -> Result<(), String> {
                    let rep = rctx.socket($c::REP).map_err(e)?;
                    rep.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(e)?;
                    rep.bind(&bind_endpoint(t)).map_err(e)?;
                    tx.send(last_endpoint(&rep)?).map_err(e)?;
                    let mut msg = $c::Message::new();
                    for _ in 0..total {
                        rep.recv(&mut msg, 0).map_err(e)?;
                        rep.send(&msg[..], 0).map_err(e)?;
                    }
                    Ok(())
                });
                let endpoint = rx.recv().map_err(e)?;
                let req = ctx.socket($c::REQ).map_err(e)?;
                req.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(e)?;
                req.connect(&endpoint).map_err(e)?;
                let payload = $pl::make(vec![7u8; size], t);
                let mut msg = $c::Message::new();
                let mut samples = Vec::with_capacity(count as usize);
                for i in 0..total {
                    let t0 = Instant::now();
                    req.send($pl::msg(&payload), 0).map_err(e)?;
                    req.recv(&mut msg, 0).map_err(e)?;
                    if i >= total - count {
                        samples.push(t0.elapsed().as_nanos() as f64 / 2e3);
                    }
                }
                join(echo)?;
                Ok(samples)
            }

            /// PUB -> `subs` SUBs (HWM 0 on both sides): delivered messages per second.
            pub fn pubsub(
                t: Transport,
                size: usize,
                count: u64,
                subs: usize,
            ) -> Result<Fanout, String> {
                let size = size.max(1);
                let ctx = $c::Context::new();
                let publ = ctx.socket($c::PUB).map_err(e)?;
                publ.set_sndhwm(0).map_err(e)?;
                publ.bind(&bind_endpoint(t)).map_err(e)?;
                let endpoint = last_endpoint(&publ)?;
                let (ready_tx, ready_rx) = mpsc::channel::<()>();
                let (done_tx, done_rx) = mpsc::channel::<(u64, f64)>();
                let mut threads = Vec::new();
                for _ in 0..subs {
                    let sctx = peer_ctx(&ctx, t);
                    let (endpoint, ready_tx, done_tx) =
                        (endpoint.clone(), ready_tx.clone(), done_tx.clone());
                    threads.push(std::thread::spawn(move || -> Result<(), String> {
                        let sub = sctx.socket($c::SUB).map_err(e)?;
                        sub.set_rcvhwm(0).map_err(e)?;
                        sub.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(e)?;
                        sub.set_subscribe(b"").map_err(e)?;
                        sub.connect(&endpoint).map_err(e)?;
                        let mut msg = $c::Message::new();
                        let mut ready = false;
                        let mut n = 0u64;
                        let mut start = None;
                        loop {
                            sub.recv(&mut msg, 0).map_err(e)?;
                            match msg.first().copied() {
                                Some(FAN_HELLO) if !ready => {
                                    ready = true;
                                    ready_tx.send(()).map_err(e)?;
                                }
                                Some(FAN_DATA) => {
                                    start.get_or_insert_with(Instant::now);
                                    n += 1;
                                }
                                Some(FAN_END) => break,
                                _ => {}
                            }
                        }
                        let secs =
                            start.map_or(1e-9, |s: Instant| s.elapsed().as_secs_f64().max(1e-9));
                        done_tx.send((n, secs)).map_err(e)?;
                        drop(sub);
                        retire(sctx);
                        Ok(())
                    }));
                }
                drop((ready_tx, done_tx));
                let mut buf = vec![0u8; size];
                buf[0] = FAN_HELLO;
                let mut ready = 0;
                let deadline = Instant::now() + Duration::from_millis(RECV_TIMEOUT_MS as u64);
                while ready < subs {
                    publ.send(&buf[..], 0).map_err(e)?;
                    std::thread::sleep(Duration::from_millis(1));
                    while ready_rx.try_recv().is_ok() {
                        ready += 1;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("{}: subscribers never joined", stringify!($name)));
                    }
                }
                buf[0] = FAN_DATA;
                for _ in 0..count {
                    publ.send(&buf[..], 0).map_err(e)?;
                }
                buf[0] = FAN_END;
                let mut results = Vec::new();
                while results.len() < subs {
                    publ.send(&buf[..], 0).map_err(e)?;
                    match done_rx.recv_timeout(Duration::from_millis(2)) {
                        Ok(r) => results.push(r),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(err) => return Err(e(err)),
                    }
                    if Instant::now() > deadline + Duration::from_secs(120) {
                        return Err(format!("{}: subscribers never finished", stringify!($name)));
                    }
                }
                for h in threads {
                    join(h)?;
                }
                // Every subscriber has gone: drop what is still queued for them (with the
                // default infinite linger libzmq's context termination waits for it forever).
                publ.set_linger(0).map_err(e)?;
                drop(publ);
                retire(ctx);
                let delivered: u64 = results.iter().map(|r| r.0).sum();
                Ok(Fanout {
                    delivered_per_sec: results.iter().map(|(n, s)| *n as f64 / s).sum(),
                    loss: 1.0 - delivered as f64 / (count as f64 * subs as f64),
                })
            }

            /// A ROUTER (in a thread) echoing for `dealers` connected DEALERs; each round every
            /// DEALER sends one request, then every DEALER reads its reply. Requests per second.
            pub fn router(t: Transport, dealers: usize, rounds: u64) -> Result<f64, String> {
                let ctx = $c::Context::new();
                let rctx = peer_ctx(&ctx, t);
                let total = dealers as u64 * (rounds + 1);
                let (tx, rx) = mpsc::channel();
                let server = std::thread::spawn(move || -> Result<(), String> {
                    let router = rctx.socket($c::ROUTER).map_err(e)?;
                    router.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(e)?;
                    router.set_sndhwm(0).map_err(e)?;
                    router.set_rcvhwm(0).map_err(e)?;
                    router.bind(&bind_endpoint(t)).map_err(e)?;
                    tx.send(last_endpoint(&router)?).map_err(e)?;
                    for _ in 0..total {
                        let parts = router.recv_multipart(0).map_err(e)?;
                        router.send_multipart(parts, 0).map_err(e)?;
                    }
                    Ok(())
                });
                let endpoint = rx.recv().map_err(e)?;
                let mut socks = Vec::with_capacity(dealers);
                for _ in 0..dealers {
                    let d = ctx.socket($c::DEALER).map_err(e)?;
                    d.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(e)?;
                    d.connect(&endpoint).map_err(e)?;
                    socks.push(d);
                }
                let payload = [7u8; 16];
                let mut msg = $c::Message::new();
                let mut start = Instant::now();
                for round in 0..=rounds {
                    if round == 1 {
                        start = Instant::now(); // round 0 is the warm-up: every peer connected
                    }
                    for d in &socks {
                        d.send(&payload[..], 0).map_err(e)?;
                    }
                    for d in &socks {
                        d.recv(&mut msg, 0).map_err(e)?;
                    }
                }
                let secs = start.elapsed().as_secs_f64().max(1e-9);
                join(server)?;
                Ok((dealers as u64 * rounds.max(1)) as f64 / secs)
            }
        }
    };
}

zmq_like!(ferro, ferromq, ferro_payload);
zmq_like!(libzmq, zmq, libzmq_payload);

/// Heap bytes per idle TCP connection on each side of ferromq: `(bind side, connect side)`.
///
/// `live` reads the process's live heap bytes as counted by a global allocator. libzmq's
/// allocations go through C `malloc`, not the Rust allocator, so pairing ferromq with a
/// libzmq peer isolates ferromq's side: N libzmq PUSH sockets connect to one ferromq PULL
/// (bind side), then N ferromq PUSH sockets connect to one libzmq PULL (connect side). The
/// sockets exist before the baseline; each connection carries one 1-byte message (so the
/// handshake is complete), then idles for a moment before the reading.
pub fn ferro_conn_mem(conns: usize, live: &dyn Fn() -> usize) -> Result<(f64, f64), String> {
    let settle = || std::thread::sleep(Duration::from_millis(300));
    let fe = |err: ferromq::Error| format!("ferromq: {err}");
    let le = |err: zmq::Error| format!("libzmq: {err}");
    // Bind side: ferromq PULL, libzmq PUSHes.
    let fctx = ferromq::Context::new();
    let pull = fctx.socket(ferromq::PULL).map_err(fe)?;
    pull.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(fe)?;
    pull.bind("tcp://127.0.0.1:*").map_err(fe)?;
    let ep = pull.get_last_endpoint().map_err(fe)?.unwrap_or_default();
    let lctx = zmq::Context::new();
    let pushes = (0..conns)
        .map(|_| lctx.socket(zmq::PUSH))
        .collect::<Result<Vec<_>, _>>()
        .map_err(le)?;
    let mut msg = ferromq::Message::new();
    settle();
    let base = live();
    for p in &pushes {
        p.connect(&ep).map_err(le)?;
        p.send(&b"x"[..], 0).map_err(le)?;
    }
    for _ in 0..conns {
        pull.recv(&mut msg, 0).map_err(fe)?;
    }
    drop(msg);
    settle();
    let bind_side = (live() as f64 - base as f64) / conns as f64;
    drop(pushes);
    drop(pull);

    // Connect side: libzmq PULL, ferromq PUSHes.
    let lpull = lctx.socket(zmq::PULL).map_err(le)?;
    lpull.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(le)?;
    lpull.bind("tcp://127.0.0.1:*").map_err(le)?;
    let ep = lpull
        .get_last_endpoint()
        .map_err(le)?
        .map_err(|_| "endpoint".to_string())?;
    let fctx2 = ferromq::Context::new();
    let pushes = (0..conns)
        .map(|_| fctx2.socket(ferromq::PUSH))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fe)?;
    settle();
    let base = live();
    for p in &pushes {
        p.connect(&ep).map_err(fe)?;
        p.send(&b"x"[..], 0).map_err(fe)?;
    }
    let mut lmsg = zmq::Message::new();
    for _ in 0..conns {
        lpull.recv(&mut lmsg, 0).map_err(le)?;
    }
    settle();
    let connect_side = (live() as f64 - base as f64) / conns as f64;
    Ok((bind_side, connect_side))
}
