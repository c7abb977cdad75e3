//! The reliable publisher with its append-only disk log (`ReliablePublisherConfig::disk_log`,
//! `zmtp-spec/reliable-pub.md` §7.1.1): a restart on the same directory — clean, or SIGKILL of
//! a separate process — keeps the id and the epoch and continues the seqs, so subscribers see
//! no `PublisherRestarted` and recover, from the log, what was published before the crash.
//!
//! Figures are printed as `FIGURE ...` lines (`cargo test --test rpub_disklog -- --nocapture`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferromq::rpub::bus::{
    BusError, ReliablePublisher, ReliablePublisherConfig, ReliableSubscriber,
    ReliableSubscriberConfig,
};
use ferromq::rpub::disklog::{DiskLogConfig, DiskStore, FsyncPolicy};
use ferromq::rpub::publisher::PublisherConfig;
use ferromq::rpub::retention::{RetainedMessage, RetentionLimits, RetentionStore};
use ferromq::rpub::shim::Shim;
use ferromq::rpub::subscriber::{Delivery, JoinPolicy, SubscriberConfig};
use ferromq::rpub::wire::{Id128, PublisherId};
use ferromq::Context;

const ANY: &str = "tcp://127.0.0.1:*";
const STREAM: &[u8] = b"prices";

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let r = Id128::random().unwrap();
        TempDir(std::env::temp_dir().join(format!("ferromq-rpub-disklog-{tag}-{r}")))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn protocol() -> PublisherConfig {
    PublisherConfig {
        heartbeat_initial_ms: 10,
        heartbeat_max_ms: 200,
        ..Default::default()
    }
}

fn pub_config(dir: &Path, id: Option<PublisherId>) -> ReliablePublisherConfig {
    ReliablePublisherConfig {
        data_bind: vec![ANY.into()],
        replay_bind: vec![ANY.into()],
        protocol: protocol(),
        id,
        disk_log: Some(DiskLogConfig::new(dir)),
        ..Default::default()
    }
}

fn start_sub(ctx: &Context, data: Vec<String>, replay: Vec<String>) -> ReliableSubscriber {
    ReliableSubscriber::start(
        ctx,
        ReliableSubscriberConfig {
            data_connect: data,
            replay_connect: replay,
            subscriptions: vec![(STREAM.to_vec(), JoinPolicy::FromSeq(1))],
            protocol: SubscriberConfig {
                request_timeout_ms: 100,
                max_request_timeout_ms: 1000,
                max_attempts: 20,
                reorder_window: ferromq::rpub::bus::DEFAULT_REORDER_WINDOW,
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .expect("subscriber")
}

/// Payload: run number, index within the run, padding to 64 bytes.
fn payload(run: u8, i: u64) -> Vec<u8> {
    let mut v = vec![run];
    v.extend_from_slice(&i.to_be_bytes());
    v.resize(64, 0xab);
    v
}

fn parse_payload(p: &[Bytes]) -> (u8, u64) {
    let b = &p[0];
    (b[0], u64::from_be_bytes(b[1..9].try_into().unwrap()))
}

/// What a subscriber received, checked as it arrives.
#[derive(Default, Debug)]
struct Tally {
    /// seq -> (run, index) of every delivered message (epoch checked separately).
    seen: HashMap<u64, (u8, u64)>,
    epochs: Vec<u64>,
    next: u64,
    duplicates: u64,
    holes: u64,
    lost: u64,
    restarts: u64,
    publisher_lost: u64,
    retransmitted: u64,
    /// Seq of run 2, index `last` (the end of the test stream), once delivered.
    end_seq: Option<u64>,
    first_run2_at: Option<Instant>,
}

impl Tally {
    fn feed(&mut self, d: Delivery, last: u64) {
        match d {
            Delivery::Message(m) => {
                if !self.epochs.contains(&m.epoch) {
                    self.epochs.push(m.epoch);
                }
                if self.next == 0 {
                    self.next = m.seq;
                }
                if m.seq < self.next {
                    self.duplicates += 1;
                    return;
                }
                self.holes += m.seq - self.next;
                self.next = m.seq + 1;
                let (run, i) = parse_payload(&m.payload);
                if run == 2 && self.first_run2_at.is_none() {
                    self.first_run2_at = Some(Instant::now());
                }
                if run == 2 && i == last {
                    self.end_seq = Some(m.seq);
                }
                if m.retransmitted {
                    self.retransmitted += 1;
                }
                self.seen.insert(m.seq, (run, i));
            }
            Delivery::UnrecoverableGap { from, to, .. } => self.lost += to - from + 1,
            Delivery::PublisherRestarted { .. } => self.restarts += 1,
            Delivery::PublisherLost { .. } => self.publisher_lost += 1,
            Delivery::SlowConsumer { .. } => {}
        }
    }

    fn run_until(
        &mut self,
        sub: &ReliableSubscriber,
        timeout: Duration,
        last: u64,
        mut done: impl FnMut(&Tally) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Ok(d) = sub.recv_timeout(left.min(Duration::from_millis(100))) {
                self.feed(d, last);
            }
        }
        true
    }

    /// Every seq 1..=end delivered once, run 1 as seq = i + 1, run 2 right after run 1.
    fn assert_complete(&self, what: &str) -> (u64, u64) {
        let end = self.end_seq.expect("end delivered");
        assert_eq!(self.duplicates, 0, "{what}: {self:?}");
        assert_eq!(self.holes, 0, "{what}: holes");
        assert_eq!(self.lost, 0, "{what}: lost");
        assert_eq!(self.restarts, 0, "{what}: PublisherRestarted");
        assert_eq!(self.epochs.len(), 1, "{what}: epochs {:?}", self.epochs);
        assert_eq!(self.seen.len() as u64, end, "{what}: count");
        let mut k = 0;
        for seq in 1..=end {
            let (run, i) = self.seen[&seq];
            if run == 1 {
                assert_eq!(i, seq - 1, "{what}: run 1 content at seq {seq}");
                k = seq;
            } else {
                assert_eq!(run, 2);
                assert_eq!(seq, k + 1 + i, "{what}: run 2 content at seq {seq}");
            }
        }
        (k, end - k)
    }
}

// ---------------------------------------------------------------------------------------------
// The child publisher process

/// Kills the child process when dropped (also when the test fails).
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this test binary as a publisher process (`rpub_disklog_child_publisher`) over the
/// disk log in `dir`: run `run` publishes `count` messages (0: until killed) at 1 msg/ms.
/// Returns it, the endpoints it bound, and a receiver of its later stdout lines.
fn spawn_publisher(
    dir: &Path,
    id: Id128,
    data: &str,
    replay: &str,
    run: u8,
    count: u64,
) -> (
    ChildGuard,
    String,
    String,
    std::sync::mpsc::Receiver<String>,
) {
    use std::io::BufRead;
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "rpub_disklog_child_publisher",
            "--ignored",
            "--nocapture",
        ])
        .env("RPUB_DL_DIR", dir)
        .env("RPUB_DL_ID", id.to_string())
        .env("RPUB_DL_DATA", data)
        .env("RPUB_DL_REPLAY", replay)
        .env("RPUB_DL_RUN", run.to_string())
        .env("RPUB_DL_COUNT", count.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if line.starts_with("ENDPOINTS ") || line.starts_with("DONE") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("child publisher started");
    let rest = line.strip_prefix("ENDPOINTS ").expect("ENDPOINTS line");
    let mut parts = rest.split(' ');
    let d = parts.next().unwrap().to_string();
    let r = parts.next().unwrap().to_string();
    (guard, d, r, rx)
}

fn parse_id(hex: &str) -> Id128 {
    let mut id = [0u8; 16];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    Id128(id)
}

/// The child side of the SIGKILL test (only meaningful as a child process).
#[test]
#[ignore]
fn rpub_disklog_child_publisher() {
    let var = |k: &str| std::env::var(k).ok();
    let (Some(dir), Some(id), Some(data), Some(replay), Some(run), Some(count)) = (
        var("RPUB_DL_DIR"),
        var("RPUB_DL_ID"),
        var("RPUB_DL_DATA"),
        var("RPUB_DL_REPLAY"),
        var("RPUB_DL_RUN"),
        var("RPUB_DL_COUNT"),
    ) else {
        return;
    };
    let run: u8 = run.parse().unwrap();
    let count: u64 = count.parse().unwrap();
    let ctx = Context::new();
    let mut c = pub_config(Path::new(&dir), Some(parse_id(&id)));
    c.data_bind = vec![data];
    c.replay_bind = vec![replay];
    let p = ReliablePublisher::start(&ctx, c).expect("publisher");
    println!(
        "ENDPOINTS {} {} {}",
        p.data_endpoints()[0],
        p.replay_endpoints()[0],
        p.epoch()
    );
    let start = Instant::now();
    let n = if count == 0 { 60_000 } else { count };
    for i in 0..n {
        p.publish(STREAM, payload(run, i)).unwrap();
        if let Some(d) = Duration::from_millis(i).checked_sub(start.elapsed()) {
            std::thread::sleep(d);
        }
    }
    println!("DONE {}", p.epoch());
    // Stay up (heartbeats, replay) until killed; at most 60 s.
    std::thread::sleep(Duration::from_secs(60).saturating_sub(start.elapsed()));
}

// ---------------------------------------------------------------------------------------------

/// (6, with the disk log) The publisher process is SIGKILLed mid-stream while subscriber A is
/// cut off the data path (it misses the tail of the first run), then started again on the same
/// directory and endpoints. Same epoch, seqs continue: A repairs the old tail from the new
/// process's disk log and ends with every message once; a subscriber B that joins after the
/// restart at seq 1 recovers everything published before the crash. No `PublisherRestarted`.
#[test]
fn publisher_process_sigkill_and_restart_with_disk_log() {
    const RUN2: u64 = 500;
    let last = RUN2 - 1;
    let tmp = TempDir::new("sigkill");
    let ctx = Context::new();
    let id = Id128::random().unwrap();
    let (child1, data, replay, _rx1) = spawn_publisher(&tmp.0, id, ANY, ANY, 1, 0);
    let shim = Shim::start(&data).unwrap();
    let sub_a = start_sub(&ctx, vec![shim.endpoint()], vec![replay.clone()]);
    let mut a = Tally::default();
    assert!(
        a.run_until(&sub_a, Duration::from_secs(30), last, |t| t.seen.len()
            >= 300),
        "{a:?}"
    );
    // A loses the data path; the publisher keeps going ~300 ms, then dies mid-stream.
    shim.cut();
    std::thread::sleep(Duration::from_millis(300));
    let seen_before_kill = a.seen.len();
    drop(child1); // SIGKILL
    let restart = Instant::now();
    let (_child2, data2, replay2, rx2) = spawn_publisher(&tmp.0, id, &data, &replay, 2, RUN2);
    let started = restart.elapsed();
    assert_eq!(
        (data2.as_str(), replay2.as_str()),
        (data.as_str(), replay.as_str())
    );
    shim.restore();
    assert!(
        a.run_until(&sub_a, Duration::from_secs(40), last, |t| t
            .first_run2_at
            .is_some()),
        "A never caught up: {a:?}"
    );
    let caught_up = a.first_run2_at.unwrap() - restart;
    assert!(
        a.run_until(&sub_a, Duration::from_secs(40), last, |t| t
            .end_seq
            .is_some()),
        "A never reached the end: {a:?}"
    );
    let (k, n2) = a.assert_complete("A");
    assert_eq!(n2, RUN2);
    assert!(
        (k as usize) > seen_before_kill,
        "the kill fell after A's cut: k {k}, A had {seen_before_kill}"
    );

    // B joins after the crash at seq 1: everything comes from the log.
    let b_start = Instant::now();
    let sub_b = start_sub(&ctx, vec![data.clone()], vec![replay.clone()]);
    let mut b = Tally::default();
    assert!(
        b.run_until(&sub_b, Duration::from_secs(40), last, |t| t
            .end_seq
            .is_some()),
        "B: {b:?}"
    );
    let b_time = b_start.elapsed();
    b.assert_complete("B");
    assert_eq!(b.epochs, a.epochs);
    let done = rx2.recv_timeout(Duration::from_secs(30)).expect("DONE");
    assert!(done.starts_with("DONE"), "{done}");
    let total = k + RUN2;
    let bytes = disk_bytes(&tmp.0);
    println!(
        "FIGURE publisher_sigkill_disk_log (separate process) run1={k} (A had {seen_before_kill} when killed; {} retransmitted to A) run2={RUN2} lost=0 duplicates=0 restarted=0 epoch_kept=yes child_start_ms={} restart_to_caught_up_ms={} late_join_B_all_{total}_ms={} disk_bytes_per_msg={:.1} (64-byte payload)",
        a.retransmitted,
        started.as_millis(),
        caught_up.as_millis(),
        b_time.as_millis(),
        bytes as f64 / total as f64
    );
}

/// A clean restart in-process on the same directory keeps id and epoch, continues the seqs,
/// serves the old history, and refuses a different configured id.
#[test]
fn clean_restart_keeps_epoch_and_history() {
    let tmp = TempDir::new("clean");
    let ctx = Context::new();
    let (id, epoch, data, replay) = {
        let p = ReliablePublisher::start(&ctx, pub_config(&tmp.0, None)).unwrap();
        for i in 0..200 {
            p.publish(STREAM, payload(1, i)).unwrap();
        }
        // Let the thread take the queue before the publisher stops.
        let deadline = Instant::now() + Duration::from_secs(20);
        while p.stats().published < 200 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(p.stats().published, 200);
        (
            p.id(),
            p.epoch(),
            p.data_endpoints()[0].clone(),
            p.replay_endpoints()[0].clone(),
        )
    };
    let other = ReliablePublisher::start(&ctx, pub_config(&tmp.0, Some(Id128([9; 16]))));
    assert!(matches!(other, Err(BusError::Io(_))), "{other:?}");

    let mut c = pub_config(&tmp.0, None);
    c.data_bind = vec![data];
    c.replay_bind = vec![replay];
    c.epoch = Some(epoch + 1_000_000); // only used for a new log
    let p = ReliablePublisher::start(&ctx, c).unwrap();
    assert_eq!((p.id(), p.epoch()), (id, epoch));
    let sub = start_sub(
        &ctx,
        p.data_endpoints().to_vec(),
        p.replay_endpoints().to_vec(),
    );
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..100 {
        p.publish(STREAM, payload(2, i)).unwrap();
    }
    let mut t = Tally::default();
    assert!(
        t.run_until(&sub, Duration::from_secs(30), 99, |t| t.end_seq.is_some()),
        "{t:?}"
    );
    let (k, n2) = t.assert_complete("clean restart");
    assert_eq!((k, n2), (200, 100));
}

/// Append throughput of the store itself (FsyncPolicy::PerSegment, 64-byte payloads) and the
/// cost of reopening (index rebuild). Meaningful figures in release:
/// `cargo test --release --test rpub_disklog disk_store_append_throughput -- --nocapture`.
#[test]
fn disk_store_append_throughput() {
    let tmp = TempDir::new("tput");
    let mut cfg = DiskLogConfig::new(&tmp.0);
    cfg.segment_bytes = 4 << 20;
    cfg.fsync = FsyncPolicy::PerSegment;
    let limits = RetentionLimits::default();
    let n: u64 = 50_000;
    let s = Bytes::from_static(STREAM);
    let body = Bytes::from(payload(1, 0));
    let start = Instant::now();
    {
        let (mut d, _) = DiskStore::open(&cfg, limits, None, Id128([1; 16]), 1, 0).unwrap();
        for seq in 1..=n {
            d.append(
                &s,
                RetainedMessage {
                    seq,
                    timestamp_ms: 0,
                    payload: vec![body.clone()],
                },
                0,
            );
        }
        assert_eq!(d.len(), n as usize);
    }
    let append = start.elapsed();
    let bytes = disk_bytes(&tmp.0);
    let start = Instant::now();
    let (d, info) = DiskStore::open(&cfg, limits, None, Id128([1; 16]), 2, 0).unwrap();
    let reopen = start.elapsed();
    assert!(info.resumed);
    assert_eq!(info.records, n as usize);
    assert_eq!(d.get(STREAM, n).unwrap().payload, vec![body]);
    println!(
        "FIGURE disk_store_append profile={} msgs={n} payload=64B append_msgs_per_s={:.0} disk_bytes_per_msg={:.1} reopen_index_rebuild_ms={}",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        n as f64 / append.as_secs_f64(),
        bytes as f64 / n as f64,
        reopen.as_millis()
    );
}
