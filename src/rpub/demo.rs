//! A self-contained demo of the reliable PUB/SUB bus on one machine (`ferromq demo`).
//!
//! [`run`] starts, in one process:
//!
//! - three discovery instances ([`DiscoveryService`]) on `tcp://127.0.0.1:*`;
//! - two publishers ([`ReliablePublisher`]), each publishing on two streams (`orders`,
//!   `quotes`) at a steady rate;
//! - one fault shim ([`Shim`]) in front of each publisher's data PUB and one in front of its
//!   replay ROUTER;
//! - three subscribers ([`ReliableSubscriber`]) that are given only the discovery addresses:
//!   they find the publishers, and the endpoints to reach them, through discovery.
//!
//! **How the shims get into the path.** A publisher registers its own bound endpoints, and the
//! configuration has no way to advertise other ones, so the publishers run without discovery
//! and the demo registers each of them itself: an advertiser thread per publisher holds a
//! [`DiscoveryLink`] registrar with the publisher's id and the *shims'* endpoints (`data` =
//! the data shim, `replay` = the replay shim), renews the lease and unregisters on drop —
//! what a publisher behind a proxy or NAT would advertise. Subscribers connect wherever
//! discovery tells them, so every data message and every replay exchange goes through a shim.
//!
//! **Faults, during publishing** (times are fractions of the publishing period): random
//! drops of 1 % of data messages on both data shims for the whole run (heartbeats spared);
//! a burst of 300 consecutive data messages dropped on publisher 0; connection cuts (data and
//! replay shims together) of publisher 0, then publisher 1, then both; one discovery instance
//! is killed half-way.
//!
//! **What is checked.** Each subscriber's consumer thread checks every delivery against
//! `(publisher, stream, seq)` itself: duplicates (a seq below the next expected one),
//! out-of-order/silent holes (above it without an `UnrecoverableGap`), payload integrity (each
//! payload carries its own seq), unexpected publisher restarts. At the end, per subscriber and
//! per stream, delivered + reported lost must equal published, and reported lost must be 0
//! (every outage is far shorter than retention). [`run`] returns an error otherwise.
//!
//! **Recovery time.** Every payload carries the time it was handed to
//! [`ReliablePublisher::publish`]; for each message delivered from replay (the `retransmitted`
//! flag) the consumer records publish-to-delivery time. The table's p50/p99 are those of the
//! replayed messages lost to drops (published outside the cut windows): how long a dropped
//! message took to reach the application (loss detection, the replay round trip, in-order
//! release). Messages published during a cut, or dropped before it and repaired only after
//! it began, are counted apart, and each cut gets a catch-up time: from the restore to the
//! delivery of the last of them. The
//! publish-to-delivery time of live messages is given for comparison. "Recovered by replay" counts deliveries with the `retransmitted` flag
//! ([`crate::rpub::subscriber::SubscriberStats`] has no such counter).

use super::bus::{
    Clock, ReliablePublisher, ReliablePublisherConfig, ReliableSubscriber,
    ReliableSubscriberConfig, DEFAULT_REORDER_WINDOW, ENDPOINT_DATA, ENDPOINT_REPLAY,
};
use super::discovery::{ClientConfig, LeaseConfig};
use super::publisher::PublisherConfig;
use super::retention::RetentionLimits;
use super::service::{DiscoveryConfig, DiscoveryLink, DiscoveryService};
use super::shim::Shim;
use super::subscriber::{Delivery, JoinPolicy, SubscriberConfig};
use super::wire::{Endpoint, PublisherId};
use crate::{Context, POLLIN};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const ANY: &str = "tcp://127.0.0.1:*";
/// The two streams every publisher publishes on.
const STREAMS: [&[u8]; 2] = [b"orders", b"quotes"];
const PUBLISHERS: usize = 2;
const SUBSCRIBERS: usize = 3;
const DISCOVERY_INSTANCES: usize = 3;
/// Frames of one data message with a one-frame payload: stream, header, payload.
const DATA_FRAMES: u64 = 3;
/// Payload size in bytes (seq, publish time, publisher, stream, padding).
const PAYLOAD_LEN: usize = 64;

/// Settings of [`run`].
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Small and short (a few seconds even in a debug build): for tests.
    pub quick: bool,
    /// Messages per publisher, over both of its streams (default 36 000, quick 4 000).
    pub messages_per_publisher: Option<u64>,
    /// How long publishing lasts (default 12 s, quick 2 s); faults are scheduled within it.
    pub publish_for: Option<Duration>,
    /// Print the live progress line on stderr (`\r`-updated every 250 ms).
    pub progress: bool,
    /// Seed of the shims' random drops (reproducible drop decisions).
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            quick: false,
            messages_per_publisher: None,
            publish_for: None,
            progress: false,
            seed: 0x00de_ad5e_ed00_0001,
        }
    }
}

/// What one subscriber saw.
#[derive(Debug, Clone, Default)]
pub struct SubscriberReport {
    /// Name in the table (`sub-1`...).
    pub name: String,
    /// Messages published on the streams it follows (all of them).
    pub published: u64,
    /// Messages delivered (in order, not counting duplicates).
    pub delivered: u64,
    /// Delivered messages that arrived by replay.
    pub recovered: u64,
    /// Seqs reported lost (`UnrecoverableGap`).
    pub lost: u64,
    /// Deliveries of a seq already delivered (counted by the demo).
    pub duplicates: u64,
    /// Deliveries past a seq never delivered nor reported lost (counted by the demo).
    pub out_of_order: u64,
    /// Payloads that do not match their seq, publisher or stream.
    pub corrupt: u64,
    /// Other anomalies (unknown publisher, publisher restart, closed channel).
    pub anomalies: Vec<String>,
    /// `PublisherLost` events (a cut longer than the publisher timeout would cause them).
    pub publisher_lost_events: u64,
    /// `SlowConsumer` events.
    pub slow_consumer_events: u64,
    /// Replay requests sent (subscriber stats).
    pub repair_requests: u64,
    /// Duplicates the bus itself dropped before delivery (subscriber stats).
    pub duplicates_filtered: u64,
    /// Seqs reported lost according to the subscriber's own stats.
    pub stats_lost: u64,
    /// Messages recovered by replay: (publish time, delivery time), µs since the start of
    /// publishing.
    pub replay_samples: Vec<(u64, u64)>,
    /// Publish-to-delivery times, ms (sorted), of the replayed messages that were lost to
    /// drops (published outside every cut window).
    pub recovery_ms: Vec<f64>,
    /// The same for the replayed messages published during a cut or held up by one (the
    /// outage included).
    pub cut_recovery_ms: Vec<f64>,
    /// Per cut: from the restore to the delivery of the last message published during the
    /// cut (or held up by it), ms.
    pub catch_up_ms: Vec<f64>,
    /// Replayed messages lost to a drop shortly before a cut whose repair the cut held up
    /// (counted with the cut recoveries).
    pub held_up_by_cut: u64,
    /// Publish-to-delivery times of live messages, ms (sorted).
    pub live_ms: Vec<f64>,
    /// Per (publisher, stream): highest seq covered (delivered or reported lost).
    pub covered: [[u64; 2]; PUBLISHERS],
}

/// Faults injected during the run.
#[derive(Debug, Clone, Default)]
pub struct FaultReport {
    /// Data messages dropped by the shims (random and burst; every subscriber connection
    /// counts separately).
    pub dropped_messages: u64,
    /// Messages of the burst.
    pub burst_messages: u64,
    /// Connection cuts: (which publishers, duration).
    pub cuts: Vec<(String, Duration)>,
    /// The cut windows as executed: (cut, restore, every subscriber's data connection back
    /// through the shim), µs since the start of publishing.
    pub cut_windows_us: Vec<(u64, u64, u64)>,
    /// Discovery instances killed.
    pub discovery_killed: usize,
    /// Random drop rate of data messages.
    pub drop_rate: f64,
}

/// The outcome of [`run`].
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// Per publisher and stream: messages published.
    pub published: [[u64; 2]; PUBLISHERS],
    /// One entry per subscriber.
    pub subscribers: Vec<SubscriberReport>,
    /// Faults injected.
    pub faults: FaultReport,
    /// Publishing time.
    pub publish_time: Duration,
    /// Whole run, from the first discovery instance to the last check.
    pub elapsed: Duration,
}

/// Percentile (nearest rank) of sorted samples; 0 when empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn fmt_ms(samples: &[f64], p: f64) -> String {
    if samples.is_empty() {
        "-".into()
    } else {
        format!("{:.1} ms", percentile(samples, p))
    }
}

impl DemoReport {
    /// Messages published in total.
    pub fn total_published(&self) -> u64 {
        self.published.iter().flatten().sum()
    }

    /// Every check of the demo; `Err` lists the failures.
    pub fn check(&self) -> Result<(), String> {
        let mut bad = Vec::new();
        for s in &self.subscribers {
            for (p, streams) in self.published.iter().enumerate() {
                for (k, &n) in streams.iter().enumerate() {
                    let c = s.covered[p][k];
                    if c != n {
                        bad.push(format!(
                            "{}: publisher {} stream {}: covered up to seq {c} of {n}",
                            s.name,
                            p + 1,
                            String::from_utf8_lossy(STREAMS[k])
                        ));
                    }
                }
            }
            if s.delivered + s.lost != s.published {
                bad.push(format!(
                    "{}: delivered {} + lost {} != published {}",
                    s.name, s.delivered, s.lost, s.published
                ));
            }
            for (what, n) in [
                ("reported lost", s.lost),
                ("lost (subscriber stats)", s.stats_lost),
                ("duplicates", s.duplicates),
                ("out of order", s.out_of_order),
                ("corrupt payloads", s.corrupt),
            ] {
                if n != 0 {
                    bad.push(format!("{}: {what}: {n}", s.name));
                }
            }
            for a in &s.anomalies {
                bad.push(format!("{}: {a}", s.name));
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(bad.join("\n"))
        }
    }

    /// The summary: a markdown table (per subscriber and in total) and notes on the faults
    /// and on what the times measure.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| subscriber | published | delivered | recovered by replay | reported lost | duplicates | out of order | recovery p50 | recovery p99 | catch-up after cut (worst) |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let row = |out: &mut String, name: &str, s: &SubscriberReport| {
            let worst = s.catch_up_ms.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {worst:.0} ms |",
                s.published,
                s.delivered,
                s.recovered,
                s.lost,
                s.duplicates,
                s.out_of_order,
                fmt_ms(&s.recovery_ms, 0.5),
                fmt_ms(&s.recovery_ms, 0.99),
            );
        };
        let mut total = SubscriberReport::default();
        for s in &self.subscribers {
            row(&mut out, &s.name, s);
            total.published += s.published;
            total.delivered += s.delivered;
            total.recovered += s.recovered;
            total.lost += s.lost;
            total.duplicates += s.duplicates;
            total.out_of_order += s.out_of_order;
            total.recovery_ms.extend_from_slice(&s.recovery_ms);
            total.cut_recovery_ms.extend_from_slice(&s.cut_recovery_ms);
            total.held_up_by_cut += s.held_up_by_cut;
            total.live_ms.extend_from_slice(&s.live_ms);
            total
                .catch_up_ms
                .resize(s.catch_up_ms.len().max(total.catch_up_ms.len()), 0.0);
            for (t, &c) in total.catch_up_ms.iter_mut().zip(&s.catch_up_ms) {
                *t = t.max(c);
            }
        }
        total.recovery_ms.sort_by(f64::total_cmp);
        total.cut_recovery_ms.sort_by(f64::total_cmp);
        total.live_ms.sort_by(f64::total_cmp);
        row(&mut out, "**total**", &total);
        let f = &self.faults;
        let _ = writeln!(
            out,
            "\n{} publishers x {} streams, {} messages published in {:.1} s, each delivered to {} subscribers that found the publishers only through {} discovery instances ({} killed mid-run). Whole run {:.1} s.",
            PUBLISHERS,
            STREAMS.len(),
            self.total_published(),
            self.publish_time.as_secs_f64(),
            self.subscribers.len(),
            DISCOVERY_INSTANCES,
            f.discovery_killed,
            self.elapsed.as_secs_f64(),
        );
        let cuts: Vec<String> = f
            .cuts
            .iter()
            .enumerate()
            .map(|(i, (who, d))| {
                let c = total.catch_up_ms.get(i).copied().unwrap_or_default();
                let back = f
                    .cut_windows_us
                    .get(i)
                    .map_or(0, |w| w.2.saturating_sub(w.1) / 1000);
                format!(
                    "{who} {} ms (reconnected {back} ms and caught up {c:.0} ms after restore)",
                    d.as_millis()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "Faults: {:.1} % random drops + a burst of {} messages (shared by the subscriber connections): {} data messages dropped at the shims in all; connection cuts of data + replay: {}.",
            f.drop_rate * 100.0,
            f.burst_messages,
            f.dropped_messages,
            cuts.join(", "),
        );
        let requests: u64 = self.subscribers.iter().map(|s| s.repair_requests).sum();
        let filtered: u64 = self.subscribers.iter().map(|s| s.duplicates_filtered).sum();
        let _ = writeln!(
            out,
            "Recovery p50/p99: publish-to-delivery time of the {} replayed messages lost to drops (live messages: p50 {}, p99 {}). The {} replayed messages published during cuts (or dropped before one, their repair held up by it: {}) took p50 {} / p99 {} (the outage included); catch-up = restore to the delivery of the last of them. Repair requests: {requests}; duplicate arrivals filtered by the bus: {filtered}.",
            total.recovery_ms.len(),
            fmt_ms(&total.live_ms, 0.5),
            fmt_ms(&total.live_ms, 0.99),
            total.cut_recovery_ms.len(),
            total.held_up_by_cut,
            fmt_ms(&total.cut_recovery_ms, 0.5),
            fmt_ms(&total.cut_recovery_ms, 0.99),
        );
        out
    }
}

/// Registers a publisher with discovery on its behalf, advertising the shims' endpoints.
struct Advertiser {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Advertiser {
    fn start(
        ctx: &Context,
        config: &DiscoveryConfig,
        id: PublisherId,
        endpoints: Vec<Endpoint>,
    ) -> Result<Self, String> {
        let clock = Clock::new();
        let mut link =
            DiscoveryLink::new(ctx, config, Some((id, endpoints)), false, clock.now_ms())
                .map_err(|e| format!("advertiser: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("demo-advertiser".into())
            .spawn(move || {
                while !stop2.load(Ordering::SeqCst) {
                    let now = clock.now_ms();
                    // Replies and events are only read here; the changes are of no interest.
                    let _ = link.tick(now);
                    let timeout = link
                        .next_timer_at()
                        .map_or(100, |t| t.saturating_sub(now).clamp(1, 100) as i64);
                    let mut items: Vec<_> =
                        link.sockets().map(|s| s.as_poll_item(POLLIN)).collect();
                    if crate::poll(&mut items, timeout).is_err() {
                        break;
                    }
                }
                link.leave();
            })
            .map_err(|e| format!("advertiser thread: {e}"))?;
        Ok(Advertiser {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Live counters of one subscriber (for the progress line and the completion check).
#[derive(Debug, Default)]
struct Live {
    delivered: AtomicU64,
    recovered: AtomicU64,
    lost: AtomicU64,
    bad: AtomicU64,
    /// Delivered + reported lost, in order (what counts toward completion).
    covered: AtomicU64,
}

/// The consumer side of one subscriber: checks every delivery.
struct Tally {
    ids: [PublisherId; PUBLISHERS],
    epochs: [u64; PUBLISHERS],
    base: Instant,
    report: SubscriberReport,
    live: Arc<Live>,
}

impl Tally {
    fn publisher(ids: &[PublisherId], id: PublisherId) -> Option<usize> {
        ids.iter().position(|&p| p == id)
    }

    fn stream(name: &[u8]) -> Option<usize> {
        STREAMS.iter().position(|&s| s == name)
    }

    fn feed(&mut self, d: Delivery) {
        let r = &mut self.report;
        match d {
            Delivery::Message(m) => {
                let (Some(p), Some(k)) = (
                    Self::publisher(&self.ids, m.publisher),
                    Self::stream(&m.stream),
                ) else {
                    r.anomalies
                        .push(format!("message from an unknown publisher/stream {m:?}"));
                    self.live.bad.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                if m.epoch != self.epochs[p] {
                    r.anomalies.push(format!(
                        "publisher {} epoch {} (expected {})",
                        p + 1,
                        m.epoch,
                        self.epochs[p]
                    ));
                }
                let next = r.covered[p][k] + 1;
                if m.seq < next {
                    r.duplicates += 1;
                    self.live.bad.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                if m.seq > next {
                    r.out_of_order += 1;
                    self.live.bad.fetch_add(1, Ordering::Relaxed);
                }
                let payload = m.payload.first().map(|b| &b[..]).unwrap_or_default();
                let ok = payload.len() == PAYLOAD_LEN
                    && payload[..8] == m.seq.to_be_bytes()
                    && usize::from(payload[16]) == p
                    && usize::from(payload[17]) == k;
                if !ok {
                    r.corrupt += 1;
                    self.live.bad.fetch_add(1, Ordering::Relaxed);
                }
                if payload.len() >= 16 {
                    let mut t = [0u8; 8];
                    t.copy_from_slice(&payload[8..16]);
                    let sent_us = u64::from_be_bytes(t);
                    let now_us = self.base.elapsed().as_micros() as u64;
                    let ms = now_us.saturating_sub(sent_us) as f64 / 1000.0;
                    if m.retransmitted {
                        r.replay_samples.push((sent_us, now_us));
                    } else {
                        r.live_ms.push(ms);
                    }
                }
                self.live
                    .covered
                    .fetch_add(m.seq - r.covered[p][k], Ordering::Relaxed);
                r.covered[p][k] = m.seq;
                r.delivered += 1;
                self.live.delivered.fetch_add(1, Ordering::Relaxed);
                if m.retransmitted {
                    r.recovered += 1;
                    self.live.recovered.fetch_add(1, Ordering::Relaxed);
                }
            }
            Delivery::UnrecoverableGap {
                publisher,
                stream,
                from,
                to,
                ..
            } => {
                let (Some(p), Some(k)) =
                    (Self::publisher(&self.ids, publisher), Self::stream(&stream))
                else {
                    r.anomalies
                        .push(format!("gap of an unknown stream {from}..={to}"));
                    return;
                };
                let next = r.covered[p][k] + 1;
                if from < next {
                    r.duplicates += next - from;
                } else if from > next {
                    r.out_of_order += 1;
                }
                let n = to.saturating_sub(from) + 1;
                r.lost += n;
                self.live.lost.fetch_add(n, Ordering::Relaxed);
                if to > r.covered[p][k] {
                    self.live
                        .covered
                        .fetch_add(to - r.covered[p][k], Ordering::Relaxed);
                    r.covered[p][k] = to;
                }
            }
            Delivery::PublisherRestarted { publisher, .. } => {
                r.anomalies
                    .push(format!("unexpected PublisherRestarted of {publisher}"));
            }
            Delivery::PublisherLost { .. } => r.publisher_lost_events += 1,
            Delivery::SlowConsumer { .. } => r.slow_consumer_events += 1,
        }
    }
}

/// Messages in flight when a cut starts are lost with it: a replayed message published this
/// long before a cut counts as recovered from the cut, not from a drop.
const CUT_MARGIN_US: u64 = 20_000;

/// Splits the replayed messages into recovered-from-drops and recovered-from-cuts, and
/// computes each cut's catch-up time (from the restore). A message belongs to a cut if it was
/// published from just before the cut until every data connection was back, or if it was
/// published before the cut and delivered after the cut began (its repair was held up by the
/// cut of the replay channel).
fn classify_recoveries(r: &mut SubscriberReport, windows: &[(u64, u64, u64)]) {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut catch_up = vec![0u64; windows.len()];
    for &(sent, delivered) in &r.replay_samples {
        let during = windows
            .iter()
            .rposition(|&(a, _, b)| sent + CUT_MARGIN_US >= a && sent <= b);
        let across = || {
            windows
                .iter()
                .rposition(|&(a, _, _)| sent < a && delivered > a)
        };
        if during.is_none() && across().is_some() {
            r.held_up_by_cut += 1;
        }
        match during.or_else(across) {
            Some(c) => {
                r.cut_recovery_ms.push(ms(delivered.saturating_sub(sent)));
                catch_up[c] = catch_up[c].max(delivered.saturating_sub(windows[c].1));
            }
            None => r.recovery_ms.push(ms(delivered.saturating_sub(sent))),
        }
    }
    r.catch_up_ms = catch_up.into_iter().map(ms).collect();
    r.recovery_ms.sort_by(f64::total_cmp);
    r.cut_recovery_ms.sort_by(f64::total_cmp);
}

/// A fault action at a point of the publishing period.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Drop a burst of this many messages on a publisher's data shim.
    Burst(usize, u64),
    /// Cut number `.0`: the data and replay shims of these publishers.
    Cut(usize, &'static [usize]),
    /// Restore them (end of cut number `.0`).
    Restore(usize, &'static [usize]),
    /// Kill a discovery instance.
    KillDiscovery(usize),
}

/// Publishes `n` messages alternating between the streams, paced evenly over `period`.
fn publish_paced(
    p: &ReliablePublisher,
    index: usize,
    n: u64,
    period: Duration,
    base: Instant,
    counts: &[AtomicU64; 2],
    stop: &AtomicBool,
) -> Result<(), String> {
    let start = Instant::now();
    let mut seqs = [0u64; 2];
    for i in 0..n {
        if stop.load(Ordering::Relaxed) {
            return Err("stopped".into());
        }
        let k = (i % 2) as usize;
        seqs[k] += 1;
        let mut payload = vec![0u8; PAYLOAD_LEN];
        payload[..8].copy_from_slice(&seqs[k].to_be_bytes());
        let sent_us = base.elapsed().as_micros() as u64;
        payload[8..16].copy_from_slice(&sent_us.to_be_bytes());
        payload[16] = index as u8;
        payload[17] = k as u8;
        p.publish(STREAMS[k], payload)
            .map_err(|e| format!("publisher {}: {e}", index + 1))?;
        counts[k].fetch_add(1, Ordering::Relaxed);
        let due = period.mul_f64((i + 1) as f64 / n as f64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            if wait >= Duration::from_millis(1) {
                std::thread::sleep(wait);
            }
        }
    }
    Ok(())
}

/// Runs the demo (see the module documentation) and checks it. Returns the report when every
/// invariant held, otherwise an error that describes the failures and includes the table.
pub fn run(opts: DemoOptions) -> Result<DemoReport, String> {
    let started = Instant::now();
    let per_pub = opts
        .messages_per_publisher
        .unwrap_or(if opts.quick { 4_000 } else { 36_000 })
        .max(2);
    let period = opts.publish_for.unwrap_or(if opts.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(12)
    });
    // Not multiples of the 100 ms reconnect interval: subscribers cut at the same instant
    // retry in phase, and a restore right before their next attempt would flatter the figures.
    let cut_ms: [u64; 3] = if opts.quick {
        [330, 410, 230]
    } else {
        [870, 1530, 640]
    };
    let burst: u64 = 300;
    let drop_rate = 0.01;
    let e = |what: &'static str| move |err: super::bus::BusError| format!("{what}: {err}");
    let ctx = Context::new();

    // Discovery: three instances; short leases and re-list periods so that the kill is
    // noticed within the run.
    let mut instances: Vec<Option<DiscoveryService>> = Vec::new();
    for _ in 0..DISCOVERY_INSTANCES {
        let lease = LeaseConfig::default();
        instances.push(Some(
            DiscoveryService::start(&ctx, ANY, ANY, lease).map_err(e("discovery instance"))?,
        ));
    }
    let dcfg = DiscoveryConfig {
        lease_ms: 3000,
        client: ClientConfig {
            relist_ms: 1000,
            instance_timeout_ms: 3000,
        },
        ..DiscoveryConfig::new(instances.iter().flatten().map(|s| s.address()).collect())
    };

    // Publishers, each behind a data shim and a replay shim.
    let mut publishers = Vec::new();
    let mut data_shims = Vec::new();
    let mut replay_shims = Vec::new();
    for i in 0..PUBLISHERS {
        let p = ReliablePublisher::start(
            &ctx,
            ReliablePublisherConfig {
                data_bind: vec![ANY.into()],
                replay_bind: vec![ANY.into()],
                protocol: PublisherConfig {
                    heartbeat_initial_ms: 10,
                    heartbeat_max_ms: 200,
                    ..Default::default()
                },
                // The whole run is retained: outages never exceed retention.
                retention: RetentionLimits {
                    max_messages: (per_pub as usize).max(100_000),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .map_err(e("publisher"))?;
        let shim_err = |err: std::io::Error| format!("shim: {err}");
        let data = Shim::start(&p.data_endpoints()[0]).map_err(shim_err)?;
        data.set_seed(opts.seed.wrapping_add(i as u64));
        data.spare_control(true);
        let replay = Shim::start(&p.replay_endpoints()[0]).map_err(shim_err)?;
        publishers.push(Arc::new(p));
        data_shims.push(data);
        replay_shims.push(replay);
    }
    let ids: [PublisherId; PUBLISHERS] = [publishers[0].id(), publishers[1].id()];
    let epochs: [u64; PUBLISHERS] = [publishers[0].epoch(), publishers[1].epoch()];
    let mut advertisers = Vec::new();
    for i in 0..PUBLISHERS {
        advertisers.push(Advertiser::start(
            &ctx,
            &dcfg,
            ids[i],
            vec![
                Endpoint::new(ENDPOINT_DATA, data_shims[i].endpoint()),
                Endpoint::new(ENDPOINT_REPLAY, replay_shims[i].endpoint()),
            ],
        )?);
    }

    // Subscribers: discovery addresses only.
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let s = ReliableSubscriber::start(
            &ctx,
            ReliableSubscriberConfig {
                discovery: Some(dcfg.clone()),
                subscriptions: STREAMS
                    .iter()
                    .map(|s| (s.to_vec(), JoinPolicy::FromSeq(1)))
                    .collect(),
                protocol: SubscriberConfig {
                    join_policy: JoinPolicy::FromSeq(1),
                    request_timeout_ms: 100,
                    max_request_timeout_ms: 1000,
                    max_attempts: 8,
                    reorder_window: DEFAULT_REORDER_WINDOW,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .map_err(e("subscriber"))?;
        subscribers.push(Arc::new(s));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !subscribers.iter().all(|s| {
        let found = s.discovered_publishers();
        ids.iter().all(|id| found.contains(id))
    }) {
        if Instant::now() > deadline {
            return Err(
                "subscribers did not find both publishers through discovery in 15 s".into(),
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // Consumers.
    let base = Instant::now();
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let mut lives = Vec::new();
    let mut consumers = Vec::new();
    for (n, s) in subscribers.iter().enumerate() {
        let live = Arc::new(Live::default());
        lives.push(live.clone());
        let mut tally = Tally {
            ids,
            epochs,
            base,
            report: SubscriberReport {
                name: format!("sub-{}", n + 1),
                ..Default::default()
            },
            live,
        };
        let s = s.clone();
        let stop = stop_consumers.clone();
        consumers.push(
            std::thread::Builder::new()
                .name("demo-consumer".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match s.recv_timeout(Duration::from_millis(50)) {
                            Ok(d) => tally.feed(d),
                            Err(super::bus::BusError::Timeout) => {}
                            Err(err) => {
                                tally.report.anomalies.push(format!("recv: {err}"));
                                break;
                            }
                        }
                    }
                    tally.report
                })
                .map_err(|err| format!("consumer thread: {err}"))?,
        );
    }

    // Publishing.
    let counts: Arc<[[AtomicU64; 2]; PUBLISHERS]> = Arc::new(Default::default());
    let stop_publishing = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for (i, p) in publishers.iter().enumerate() {
        let (p, counts, stop) = (p.clone(), counts.clone(), stop_publishing.clone());
        producers.push(
            std::thread::Builder::new()
                .name("demo-publisher".into())
                .spawn(move || publish_paced(&p, i, per_pub, period, base, &counts[i], &stop))
                .map_err(|err| format!("publisher thread: {err}"))?,
        );
    }
    for s in &data_shims {
        s.set_drop_rate(drop_rate);
    }
    let at = |f: f64| period.mul_f64(f);
    let ms = Duration::from_millis;
    let mut schedule: Vec<(Duration, Fault, &'static str)> = vec![
        (at(0.15), Fault::Burst(0, burst), "burst on pub-1"),
        (at(0.25), Fault::Cut(0, &[0]), "cut pub-1"),
        (
            at(0.25) + ms(cut_ms[0]),
            Fault::Restore(0, &[0]),
            "restored",
        ),
        (at(0.45), Fault::KillDiscovery(1), "discovery-2 killed"),
        (at(0.5), Fault::Cut(1, &[1]), "cut pub-2"),
        (at(0.5) + ms(cut_ms[1]), Fault::Restore(1, &[1]), "restored"),
        (at(0.85), Fault::Cut(2, &[0, 1]), "cut both"),
        (
            at(0.85) + ms(cut_ms[2]),
            Fault::Restore(2, &[0, 1]),
            "restored",
        ),
    ];
    schedule.sort_by_key(|(t, _, _)| *t);
    let mut faults = FaultReport {
        drop_rate,
        cuts: vec![
            ("pub-1".into(), ms(cut_ms[0])),
            ("pub-2".into(), ms(cut_ms[1])),
            ("both".into(), ms(cut_ms[2])),
        ],
        cut_windows_us: vec![(0, 0, 0); 3],
        ..Default::default()
    };
    let total = per_pub * PUBLISHERS as u64;
    let published_now = || -> u64 {
        counts
            .iter()
            .flatten()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    };
    let progress = |phase: &str| {
        if !opts.progress {
            return;
        }
        let delivered: Vec<String> = lives
            .iter()
            .map(|l| l.delivered.load(Ordering::Relaxed).to_string())
            .collect();
        let sum = |f: fn(&Live) -> &AtomicU64| -> u64 {
            lives.iter().map(|l| f(l).load(Ordering::Relaxed)).sum()
        };
        eprint!(
            "\r{:5.1} s | published {}/{} | delivered {} | recovered {} | lost {} | dup/ooo {} | {:<20}",
            base.elapsed().as_secs_f64(),
            published_now(),
            total,
            delivered.join(" / "),
            sum(|l| &l.recovered),
            sum(|l| &l.lost),
            sum(|l| &l.bad),
            phase,
        );
    };
    let mut next = 0;
    let mut accepted_at_cut = [0u64; PUBLISHERS];
    let mut reconnects: Vec<(usize, Vec<(usize, u64)>)> = Vec::new();
    let mut phase = "publishing";
    let mut last_progress = Instant::now() - Duration::from_secs(1);
    let drain_limit = Duration::from_secs(if opts.quick { 60 } else { 30 });
    let mut drain_start: Option<Instant> = None;
    let mut publish_time = period;
    let mut failure: Option<String> = None;
    loop {
        let now = base.elapsed();
        while next < schedule.len() && schedule[next].0 <= now {
            let (_, fault, name) = schedule[next];
            match fault {
                Fault::Burst(p, n) => {
                    data_shims[p].drop_burst(n * DATA_FRAMES);
                    faults.burst_messages += n;
                }
                Fault::Cut(c, ps) => {
                    faults.cut_windows_us[c].0 = base.elapsed().as_micros() as u64;
                    for &p in ps {
                        accepted_at_cut[p] = data_shims[p].accepted();
                        data_shims[p].cut();
                        replay_shims[p].cut();
                    }
                }
                Fault::Restore(c, ps) => {
                    for &p in ps {
                        data_shims[p].restore();
                        replay_shims[p].restore();
                    }
                    let now_us = base.elapsed().as_micros() as u64;
                    faults.cut_windows_us[c].1 = now_us;
                    faults.cut_windows_us[c].2 = now_us;
                    // Messages published until the subscribers have reconnected are lost
                    // to the cut too: watch the data shims accept them again.
                    let want: Vec<(usize, u64)> = ps
                        .iter()
                        .map(|&p| (p, accepted_at_cut[p] + SUBSCRIBERS as u64))
                        .collect();
                    reconnects.push((c, want));
                }
                Fault::KillDiscovery(i) => {
                    if instances[i].take().is_some() {
                        faults.discovery_killed += 1;
                    }
                }
            }
            phase = name;
            next += 1;
        }
        reconnects.retain(|(c, want)| {
            let back = want.iter().all(|&(p, n)| data_shims[p].accepted() >= n);
            if back {
                faults.cut_windows_us[*c].2 = base.elapsed().as_micros() as u64;
            }
            !back
        });
        let publishing = producers.iter().any(|t| !t.is_finished());
        if !publishing && next >= schedule.len() {
            let start = *drain_start.get_or_insert_with(|| {
                phase = "catching up";
                publish_time = now;
                Instant::now()
            });
            let published = published_now();
            let complete = lives
                .iter()
                .all(|l| l.covered.load(Ordering::Relaxed) >= published);
            // Wait a little for the reconnections being watched (for the cut windows).
            if complete && (reconnects.is_empty() || start.elapsed() > Duration::from_secs(5)) {
                break;
            }
            if start.elapsed() > drain_limit {
                failure = Some(format!(
                    "subscribers did not catch up within {} s after publishing ended",
                    drain_limit.as_secs()
                ));
                break;
            }
        }
        if last_progress.elapsed() >= Duration::from_millis(250) {
            last_progress = Instant::now();
            progress(phase);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    progress(if failure.is_some() { "FAILED" } else { "done" });
    if opts.progress {
        eprintln!();
    }
    stop_publishing.store(true, Ordering::Relaxed);
    let mut producer_errors = Vec::new();
    for t in producers {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => producer_errors.push(err),
            Err(_) => producer_errors.push("publisher thread panicked".into()),
        }
    }
    // A grace period: anything delivered after completion (a duplicate) is still counted.
    std::thread::sleep(Duration::from_millis(300));
    stop_consumers.store(true, Ordering::Relaxed);
    let mut report = DemoReport {
        publish_time,
        ..Default::default()
    };
    for (p, row) in counts.iter().enumerate() {
        for (k, c) in row.iter().enumerate() {
            report.published[p][k] = c.load(Ordering::Relaxed);
        }
    }
    let total_published = report.total_published();
    for (t, s) in consumers.into_iter().zip(&subscribers) {
        let mut r = t
            .join()
            .map_err(|_| "consumer thread panicked".to_string())?;
        let stats = s.stats();
        r.published = total_published;
        r.repair_requests = stats.requests;
        r.duplicates_filtered = stats.duplicates;
        r.stats_lost = stats.lost;
        classify_recoveries(&mut r, &faults.cut_windows_us);
        r.live_ms.sort_by(f64::total_cmp);
        report.subscribers.push(r);
    }
    faults.dropped_messages = data_shims.iter().map(Shim::dropped_messages).sum();
    report.faults = faults;
    drop(subscribers);
    drop(advertisers);
    drop(publishers);
    drop(data_shims);
    drop(replay_shims);
    drop(instances);
    report.elapsed = started.elapsed();
    let mut errors: Vec<String> = producer_errors;
    errors.extend(failure);
    if let Err(err) = report.check() {
        errors.push(err);
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(format!(
            "{}\nINVARIANT FAILED:\n{}",
            report.to_markdown(),
            errors.join("\n")
        ))
    }
}
