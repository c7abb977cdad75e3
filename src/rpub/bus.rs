//! The reliable bus on real sockets: [`ReliablePublisher`] and [`ReliableSubscriber`].
//!
//! Each runs one background thread that owns its sockets and drives the sans-IO machine
//! ([`Publisher`], [`Subscriber`]) with [`crate::poll`] and timers: the thread sleeps until a
//! socket is readable or the next timer (heartbeat, repair retry, discovery renewal) is due.
//!
//! | Channel   | Publisher thread         | Subscriber thread                  |
//! |-----------|--------------------------|------------------------------------|
//! | data      | PUB (bind and/or connect)| SUB (connect and/or bind)          |
//! | replay    | ROUTER (bind)            | one DEALER per publisher replay endpoint |
//! | discovery | DEALER + SUB per instance| DEALER + SUB per instance          |
//!
//! Which side connects on the data channel is a setting ([`ConnectSide`]): by default
//! subscribers connect to publishers; with [`ConnectSide::PublishersConnect`] subscribers
//! bind their SUB and publishers connect to them (the original 2013 design, which lets the
//! publisher notice a dropped connection and reconnect). The replay channel always goes from
//! the subscriber's DEALER to the publisher's bound ROUTER. With direct endpoints the
//! subscriber does not know in advance which publisher id sits behind which replay endpoint:
//! a request for an unknown publisher goes to every DEALER (a publisher ignores requests
//! naming another id) and the first reply teaches the route. With discovery the route comes
//! from the publisher's record.
//!
//! **Publishing and backpressure.** [`ReliablePublisher::publish`] runs in the caller's
//! thread: under one mutex shared with the background thread it assigns the seq, sends the
//! message on the PUB and appends it to retention, so seqs leave in order whichever thread
//! publishes. The background thread sends heartbeats on the same PUB (under the same mutex)
//! and serves the replay ROUTER; a publish that brings the next heartbeat forward (the first
//! one after an idle spell) wakes it. The PUB socket never blocks: a slow subscriber's
//! messages are dropped at its HWM and repaired later from retention.
//! On the subscriber, deliveries wait in a bounded channel (`channel`, default 1024) and then
//! in the sans-IO queue; when that queue reaches `max_pending` (default 16 384) the thread stops
//! reading its sockets until the application catches up (the PUB then drops at the HWM and
//! the subscriber repairs later — no message is lost while retention lasts).
//!
//! ```
//! use std::time::Duration;
//! use ferromq::rpub::bus::{
//!     ReliablePublisher, ReliablePublisherConfig, ReliableSubscriber, ReliableSubscriberConfig,
//! };
//! use ferromq::rpub::subscriber::{Delivery, JoinPolicy};
//!
//! let ctx = ferromq::Context::new();
//! let publisher = ReliablePublisher::start(&ctx, ReliablePublisherConfig {
//!     data_bind: vec!["tcp://127.0.0.1:*".into()],
//!     replay_bind: vec!["tcp://127.0.0.1:*".into()],
//!     ..Default::default()
//! }).unwrap();
//! let subscriber = ReliableSubscriber::start(&ctx, ReliableSubscriberConfig {
//!     data_connect: publisher.data_endpoints().to_vec(),
//!     replay_connect: publisher.replay_endpoints().to_vec(),
//!     subscriptions: vec![(b"prices".to_vec(), JoinPolicy::FromSeq(1))],
//!     ..Default::default()
//! }).unwrap();
//! for i in 0..3u8 {
//!     publisher.publish(b"prices", vec![i]).unwrap();
//! }
//! let mut seqs = Vec::new();
//! while seqs.len() < 3 {
//!     match subscriber.recv_timeout(Duration::from_secs(10)).unwrap() {
//!         Delivery::Message(m) => seqs.push(m.seq),
//!         other => panic!("unexpected {other:?}"),
//!     }
//! }
//! assert_eq!(seqs, [1, 2, 3]);
//! ```

use super::disklog::{AnyStore, DiskLogConfig, DiskStore};
use super::publisher::{Publisher, PublisherConfig, PublisherStats};
use super::retention::{RetentionLimits, RingStore};
use super::service::{DiscoveryConfig, DiscoveryLink};
use super::subscriber::{Delivery, JoinPolicy, Subscriber, SubscriberConfig, SubscriberStats};
use super::wire::{
    attaches, decode_cursor, encode_cursor, CursorEntry, DataHeader, Endpoint, Id128, NodeId,
    PublisherId, ReplayReply, WireError, ATTACH_MAX, DATA_VERSION_2, HEARTBEAT_TOPIC,
};
use crate::{Context, Error as ZmqError, Socket, SocketType, DONTWAIT, POLLIN, SNDMORE};
use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Endpoint name of a publisher's PUB socket in discovery records.
pub const ENDPOINT_DATA: &str = "data";
/// Endpoint name of a publisher's replay ROUTER in discovery records.
pub const ENDPOINT_REPLAY: &str = "replay";
/// Endpoint name of a subscriber's bound SUB socket in discovery records
/// ([`ConnectSide::PublishersConnect`]).
pub const ENDPOINT_SUBSCRIBE: &str = "subscribe";

/// The bus's default reorder window (the spec's default is 4096). At several hundred
/// thousand messages per second a 4096-message window fills before a repair round trip
/// completes, and live data beyond it is discarded and must be replayed too; 65 536 messages
/// keep a repair of a few milliseconds on the live path. Memory: up to this many buffered
/// messages per stream while it recovers.
pub const DEFAULT_REORDER_WINDOW: u64 = 65_536;

/// Errors of the bus handles.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A socket call failed.
    #[error("socket: {0}")]
    Socket(#[from] ZmqError),
    /// Invalid stream name or undecodable data.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// Cursor file I/O.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The publisher queue is full (no longer returned: publishing has no queue).
    #[error("publish queue full")]
    Full,
    /// Nothing arrived in time.
    #[error("timed out")]
    Timeout,
    /// The background thread has stopped.
    #[error("bus closed")]
    Closed,
    /// Random id generation failed.
    #[error("no OS randomness")]
    Random,
}

/// Which side connects on the data channel when discovery is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectSide {
    /// Publishers bind PUB (and register it); subscribers connect their SUB (default).
    #[default]
    SubscribersConnect,
    /// Subscribers bind SUB (and register it); publishers connect their PUB to them.
    PublishersConnect,
}

/// A millisecond clock: monotonic, anchored to Unix time at start.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_unix_ms: u64,
    start: Instant,
}

impl Clock {
    /// A clock starting now.
    pub fn new() -> Self {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            base_unix_ms,
            start: Instant::now(),
        }
    }

    /// Milliseconds (Unix time at start + monotonic elapsed).
    pub fn now_ms(&self) -> u64 {
        self.base_unix_ms
            .saturating_add(self.start.elapsed().as_millis() as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

static NEXT_INPROC: AtomicU64 = AtomicU64::new(1);

fn inproc_name(kind: &str) -> String {
    format!(
        "inproc://ferromq-rpub-{kind}-{}-{}",
        std::process::id(),
        NEXT_INPROC.fetch_add(1, Ordering::Relaxed)
    )
}

/// The first frame of a message, without blocking (`Ok(None)` when nothing is queued).
fn recv_first(s: &Socket) -> Result<Option<crate::Message>, ZmqError> {
    match s.recv_msg(DONTWAIT) {
        Ok(m) => Ok(Some(m)),
        Err(ZmqError::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Appends the frames after one whose MORE flag was `more` (they are already there: a
/// message is delivered whole).
fn recv_rest(s: &Socket, mut more: bool, out: &mut Vec<Bytes>) -> Result<(), ZmqError> {
    while more {
        let m = s.recv_msg(0)?;
        more = m.get_more();
        out.push(m.into_bytes());
    }
    Ok(())
}

/// Receives one whole message without blocking (`Ok(None)` when nothing is queued).
pub(crate) fn recv_frames(s: &Socket) -> Result<Option<Vec<Bytes>>, ZmqError> {
    let Some(first) = recv_first(s)? else {
        return Ok(None);
    };
    let more = first.get_more();
    // Replay messages have up to three frames (stream, header, payload): no regrowth.
    let mut frames = Vec::with_capacity(if more { 4 } else { 1 });
    frames.push(first.into_bytes());
    recv_rest(s, more, &mut frames)?;
    Ok(Some(frames))
}

/// Receives one whole message without blocking, as its first frame (not turned into
/// [`Bytes`]: the data channel only looks at the stream name) and the frames after it.
fn recv_split(s: &Socket) -> Result<Option<(crate::Message, Vec<Bytes>)>, ZmqError> {
    let Some(first) = recv_first(s)? else {
        return Ok(None);
    };
    let more = first.get_more();
    // DATA has one or two frames after the stream: no regrowth for them.
    let mut rest = Vec::with_capacity(if more { 2 } else { 0 });
    recv_rest(s, more, &mut rest)?;
    Ok(Some((first, rest)))
}

/// Sends a multipart message of `Bytes` frames with `flags` (plus SNDMORE on all but last).
pub(crate) fn send_frames<'a, I>(s: &Socket, frames: I, flags: i32) -> Result<(), ZmqError>
where
    I: IntoIterator<Item = &'a Bytes>,
{
    let mut it = frames.into_iter().peekable();
    while let Some(f) = it.next() {
        let more = if it.peek().is_some() { SNDMORE } else { 0 };
        s.send(f.clone(), flags | more)?;
    }
    Ok(())
}

fn endpoint_of(s: &Socket) -> Result<String, BusError> {
    s.get_last_endpoint()?
        .map_err(|_| BusError::Socket(ZmqError::EINVAL))
}

fn poll_timeout(now: u64, due: Option<u64>, cap: u64) -> i64 {
    match due {
        Some(t) => t.saturating_sub(now).min(cap) as i64,
        None => cap as i64,
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

// ---------------------------------------------------------------------------------------------
// Publisher

/// Settings of a [`ReliablePublisher`].
#[derive(Debug, Clone)]
pub struct ReliablePublisherConfig {
    /// Endpoints the PUB binds (subscribers connect), e.g. `tcp://127.0.0.1:*`.
    pub data_bind: Vec<String>,
    /// Subscriber SUB endpoints the PUB connects to (publisher-connects mode).
    pub data_connect: Vec<String>,
    /// Endpoints the replay ROUTER binds.
    pub replay_bind: Vec<String>,
    /// Register with discovery (and, with [`ConnectSide::PublishersConnect`], connect to the
    /// subscribers it lists).
    pub discovery: Option<DiscoveryConfig>,
    /// Data-channel direction under discovery.
    pub connect_side: ConnectSide,
    /// Publisher id (default: random). Keep it across restarts to be recognized as the same
    /// publisher (`PublisherRestarted`).
    pub id: Option<PublisherId>,
    /// Epoch (default: Unix ms at start, strictly increasing across restarts).
    pub epoch: Option<u64>,
    /// Protocol tuning (heartbeats, replay jobs).
    pub protocol: PublisherConfig,
    /// Retention bounds.
    pub retention: RetentionLimits,
    /// Keep retention in an append-only disk log instead of memory (default `None`). A
    /// restart on the same directory keeps the id (a different configured id is refused), the
    /// epoch and the history: seqs continue and subscribers see no restart
    /// (`zmtp-spec/reliable-pub.md` §7.1.1). `epoch` is then only used for a new log.
    pub disk_log: Option<DiskLogConfig>,
    /// Unused, kept for compatibility (default 10 000): publishing runs in the caller's
    /// thread, there is no queue between the handles and the background thread any more.
    pub queue: i32,
    /// Replay sends per loop turn (default 256).
    pub replay_budget: usize,
    /// PUB send HWM per subscriber (default 1000, as libzmq).
    pub sndhwm: i32,
    /// Replay ROUTER send HWM per peer (default 10 000); replay is paced by it, not dropped.
    pub replay_sndhwm: i32,
    /// Linger of the sockets on shutdown, ms (default 1000).
    pub linger_ms: i32,
}

impl Default for ReliablePublisherConfig {
    fn default() -> Self {
        ReliablePublisherConfig {
            data_bind: Vec::new(),
            data_connect: Vec::new(),
            replay_bind: Vec::new(),
            discovery: None,
            connect_side: ConnectSide::default(),
            id: None,
            epoch: None,
            protocol: PublisherConfig::default(),
            retention: RetentionLimits::default(),
            disk_log: None,
            queue: 10_000,
            replay_budget: 256,
            sndhwm: 1000,
            replay_sndhwm: 10_000,
            linger_ms: 1000,
        }
    }
}

/// A reliable publisher: a PUB (data, heartbeats) and a ROUTER (replay). Publishing runs in
/// the caller's thread (sequence, send on the PUB, retain); a background thread serves replay
/// and discovery and sends heartbeats. Thread-safe: share it (`&self`) between threads.
#[derive(Debug)]
pub struct ReliablePublisher {
    shared: Arc<Mutex<PubShared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    id: PublisherId,
    epoch: u64,
    data_endpoints: Vec<String>,
    replay_endpoints: Vec<String>,
}

/// What publishing threads and the background thread share, behind one mutex: the sans-IO
/// machine and the PUB socket, so that seqs go out on the PUB in the order they are assigned.
struct PubShared {
    machine: Publisher<AnyStore>,
    pub_sock: Socket,
    clock: Clock,
    /// PAIR to the background thread: OP_STOP, or OP_WAKE when a publish moved the next
    /// heartbeat before the time the thread sleeps until.
    wake: Socket,
    /// When the background thread wakes next at the latest (ms; set by it before it sleeps).
    wake_at: u64,
    /// Where [`ReliablePublisher::publish_slice`] copies small payloads.
    chunk: BytesMut,
}

impl std::fmt::Debug for PubShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubShared")
            .field("machine", &self.machine)
            .field("wake_at", &self.wake_at)
            .finish_non_exhaustive()
    }
}

/// Payloads up to this size are copied by [`ReliablePublisher::publish_slice`] into the
/// publisher's chunk (see [`PubShared::copy`]); larger ones get an allocation each.
const COPY_MAX: usize = 1024;
/// Size of a publisher's copy chunk.
const COPY_CHUNK: usize = 64 * 1024;

impl PubShared {
    /// Sequences, sends and retains one message.
    fn publish(&mut self, stream: &[u8], payload: Vec<Bytes>) -> Result<(), BusError> {
        let now = self.clock.now_ms();
        let sock = &self.pub_sock;
        let v2 = self.machine.data_version() == DATA_VERSION_2;
        let sent = self
            .machine
            .publish_with(stream, payload, now, |name, header, payload| {
                send_data(sock, name, header, payload, false, v2)
            })?;
        self.sent(sent)
    }

    /// Sequences, sends and retains a one-frame message (no `Vec` of frames per message).
    /// `shared`: the payload lives in this publisher's chunk and is sent without a copy.
    fn publish_one(&mut self, stream: &[u8], payload: Bytes, shared: bool) -> Result<(), BusError> {
        let now = self.clock.now_ms();
        let sock = &self.pub_sock;
        let v2 = self.machine.data_version() == DATA_VERSION_2;
        let sent =
            self.machine
                .publish_one_with(stream, payload, now, |name, header, payload| {
                    send_data(
                        sock,
                        name,
                        header,
                        std::slice::from_ref(payload),
                        shared,
                        v2,
                    )
                })?;
        self.sent(sent)
    }

    /// A copy of `data`: small payloads share a chunk of this publisher (one allocation per
    /// chunk, not per message; the chunk is freed once retention evicted all its messages,
    /// and retention evicts oldest-first).
    fn copy(&mut self, data: &[u8]) -> Bytes {
        if data.len() > COPY_MAX {
            return Bytes::copy_from_slice(data);
        }
        if self.chunk.capacity() < data.len() {
            self.chunk = BytesMut::with_capacity(COPY_CHUNK);
        }
        self.chunk.extend_from_slice(data);
        self.chunk.split().freeze()
    }

    /// What follows a send: errors mapped, and the background thread woken if the next
    /// heartbeat moved before the time it sleeps until.
    fn sent(&mut self, sent: Result<(), ZmqError>) -> Result<(), BusError> {
        match sent {
            // The PUB drops at a subscriber's HWM rather than blocking; EAGAIN is not expected
            // with DONTWAIT on a PUB but would mean the same: the message is retained and
            // repaired on request.
            Ok(()) | Err(ZmqError::EAGAIN) => {}
            Err(ZmqError::ETERM) => return Err(BusError::Closed),
            Err(e) => return Err(e.into()),
        }
        let due = self.machine.next_heartbeat_at();
        if due < self.wake_at {
            // Rare: the first publish after an idle spell brings the next heartbeat forward.
            self.wake_at = due;
            let _ = self.wake.send(OP_WAKE, DONTWAIT);
        }
        Ok(())
    }
}

/// Sends one live DATA message on the PUB, in the RPUB/2 layout with `v2` (else RPUB/1):
/// small frames (the stream name, the header, with `v2` the header and a small first payload
/// frame together, small payloads) are copied into the sending thread's small-frame chunks,
/// larger payload frames (and all of them with `shared`) are shared.
fn send_data(
    sock: &Socket,
    name: &Bytes,
    header: &DataHeader,
    payload: &[Bytes],
    shared: bool,
    v2: bool,
) -> Result<(), ZmqError> {
    let more = |last: bool| if last { DONTWAIT } else { DONTWAIT | SNDMORE };
    sock.send_msg(crate::Message::from_slice(name), more(false))?;
    let rest = match payload.split_first() {
        Some((first, rest)) if v2 && attaches(first.len()) => {
            let head = header.to_array_v2(false);
            let frame = if first.len() <= 80 {
                joined::<128>(&head, first)
            } else {
                joined::<ATTACH_MAX>(&head, first)
            };
            sock.send_msg(frame, more(rest.is_empty()))?;
            rest
        }
        _ => {
            let head = if v2 {
                header.to_array_v2(true)
            } else {
                header.to_array()
            };
            sock.send_msg(crate::Message::from_slice(&head), more(payload.is_empty()))?;
            payload
        }
    };
    for (i, f) in rest.iter().enumerate() {
        let m = if !shared && f.len() <= crate::message::SMALL_COPY_MAX {
            crate::Message::from_slice(f)
        } else {
            crate::Message::from_bytes(f.clone())
        };
        sock.send_msg(m, more(i + 1 == rest.len()))?;
    }
    Ok(())
}

/// One message frame holding `head` then `body` (`head.len() + body.len() <= N`), assembled
/// on the stack and copied once into the sending thread's chunk.
fn joined<const N: usize>(head: &[u8], body: &[u8]) -> crate::Message {
    let n = head.len() + body.len();
    let mut buf = [0u8; N];
    buf[..head.len()].copy_from_slice(head);
    buf[head.len()..n].copy_from_slice(body);
    crate::Message::from_slice(&buf[..n])
}

const OP_WAKE: &[u8] = b"W";
const OP_STOP: &[u8] = b"S";
const OP_ADD_REPLAY: &[u8] = b"R";
const OP_CONNECT_DATA: &[u8] = b"D";

impl ReliablePublisher {
    /// Creates the sockets (binds happen here, so the endpoints are known on return) and
    /// starts the thread.
    pub fn start(ctx: &Context, config: ReliablePublisherConfig) -> Result<Self, BusError> {
        let clock = Clock::new();
        let fresh_id = match config.id {
            Some(id) => id,
            None => Id128::random().map_err(|_| BusError::Random)?,
        };
        let fresh_epoch = config.epoch.unwrap_or_else(|| clock.now_ms());
        let (id, epoch, store, restored) = match &config.disk_log {
            Some(d) => {
                let (store, info) = DiskStore::open(
                    d,
                    config.retention,
                    config.id,
                    fresh_id,
                    fresh_epoch,
                    clock.now_ms(),
                )?;
                let store = AnyStore::Disk(Box::new(store));
                (info.id, info.epoch, store, info.streams)
            }
            None => (
                fresh_id,
                fresh_epoch,
                AnyStore::Ring(RingStore::new(config.retention)),
                Vec::new(),
            ),
        };
        let pub_sock = ctx.socket(SocketType::PUB)?;
        pub_sock.set_sndhwm(config.sndhwm)?;
        pub_sock.set_linger(config.linger_ms)?;
        let mut data_endpoints = Vec::new();
        for ep in &config.data_bind {
            pub_sock.bind(ep)?;
            data_endpoints.push(endpoint_of(&pub_sock)?);
        }
        for ep in &config.data_connect {
            pub_sock.connect(ep)?;
        }
        let router = ctx.socket(SocketType::ROUTER)?;
        router.set_router_mandatory(true)?;
        router.set_sndhwm(config.replay_sndhwm)?;
        router.set_linger(0)?;
        let mut replay_endpoints = Vec::new();
        for ep in &config.replay_bind {
            router.bind(ep)?;
            replay_endpoints.push(endpoint_of(&router)?);
        }
        let name = inproc_name("pub");
        let rx = ctx.socket(SocketType::PAIR)?;
        rx.set_linger(0)?;
        rx.bind(&name)?;
        let wake = ctx.socket(SocketType::PAIR)?;
        wake.set_linger(0)?;
        wake.connect(&name)?;
        let disc = match &config.discovery {
            Some(d) => {
                let mut endpoints: Vec<Endpoint> = data_endpoints
                    .iter()
                    .map(|e| Endpoint::new(ENDPOINT_DATA, e.clone()))
                    .collect();
                endpoints.extend(
                    replay_endpoints
                        .iter()
                        .map(|e| Endpoint::new(ENDPOINT_REPLAY, e.clone())),
                );
                let list = config.connect_side == ConnectSide::PublishersConnect;
                Some(DiscoveryLink::new(
                    ctx,
                    d,
                    Some((id, endpoints)),
                    list,
                    clock.now_ms(),
                )?)
            }
            None => None,
        };
        let mut machine = Publisher::new(id, epoch, config.protocol.clone(), store);
        for (stream, newest) in restored {
            if let Err(e) = machine.restore_stream(stream, newest) {
                log::warn!("rpub publisher: disk log stream not restored: {e}");
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(PubShared {
            machine,
            pub_sock,
            clock,
            wake,
            wake_at: 0,
            chunk: BytesMut::new(),
        }));
        let mut lp = PubLoop {
            shared: shared.clone(),
            router,
            rx,
            backlog: VecDeque::new(),
            clock,
            budget: config.replay_budget.max(1),
            stop: stop.clone(),
            disc,
            subscribers: BTreeMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("rpub-publisher".into())
            .spawn(move || lp.run())
            .map_err(BusError::Io)?;
        Ok(ReliablePublisher {
            shared,
            stop,
            thread: Some(thread),
            id,
            epoch,
            data_endpoints,
            replay_endpoints,
        })
    }

    /// This publisher's id.
    pub fn id(&self) -> PublisherId {
        self.id
    }

    /// This publisher's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The bound PUB endpoints (resolved: `*` ports replaced).
    pub fn data_endpoints(&self) -> &[String] {
        &self.data_endpoints
    }

    /// The bound replay ROUTER endpoints (resolved).
    pub fn replay_endpoints(&self) -> &[String] {
        &self.replay_endpoints
    }

    /// Counters of the sans-IO publisher.
    pub fn stats(&self) -> PublisherStats {
        self.shared
            .lock()
            .map(|s| s.machine.stats())
            .unwrap_or_default()
    }

    /// The shared state, once the background thread is known to run.
    fn shared(&self) -> Result<std::sync::MutexGuard<'_, PubShared>, BusError> {
        if self.thread.as_ref().is_none_or(JoinHandle::is_finished) {
            // No heartbeats or replay any more: refuse rather than publish unreliably.
            return Err(BusError::Closed);
        }
        self.shared.lock().map_err(|_| BusError::Closed)
    }

    /// Publishes a one-frame payload on `stream`: sequences it, sends it on the PUB and
    /// retains it, in the calling thread. Never waits for subscribers (the PUB drops at a
    /// subscriber's HWM and the subscriber repairs from retention); it only waits while
    /// another thread publishes or the background thread serves replay.
    pub fn publish(&self, stream: &[u8], payload: impl Into<Bytes>) -> Result<(), BusError> {
        self.shared()?.publish_one(stream, payload.into(), false)
    }

    /// Publishes a copy of `payload` (see [`ReliablePublisher::publish`]). Payloads up to
    /// 1 KiB are copied into a chunk the publisher shares between many messages: no
    /// allocation per message, and the copy is both sent and retained. The cheapest way to
    /// publish small payloads the application does not already hold as [`Bytes`].
    pub fn publish_slice(&self, stream: &[u8], payload: &[u8]) -> Result<(), BusError> {
        let mut shared = self.shared()?;
        let payload = shared.copy(payload);
        shared.publish_one(stream, payload, true)
    }

    /// Publishes a multi-frame payload (see [`ReliablePublisher::publish`]).
    pub fn publish_parts(&self, stream: &[u8], payload: Vec<Bytes>) -> Result<(), BusError> {
        self.shared()?.publish(stream, payload)
    }

    /// The same as [`ReliablePublisher::publish`], kept for compatibility: publishing no
    /// longer goes through a bounded queue, so [`BusError::Full`] is never returned.
    pub fn try_publish(&self, stream: &[u8], payload: impl Into<Bytes>) -> Result<(), BusError> {
        self.publish(stream, payload)
    }
}

impl Drop for ReliablePublisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(s) = self.shared.lock() {
            let _ = s.wake.send(OP_STOP, DONTWAIT);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct PubLoop {
    shared: Arc<Mutex<PubShared>>,
    router: Socket,
    /// Control PAIR: OP_STOP, OP_WAKE.
    rx: Socket,
    /// Replay messages refused by a full peer (ROUTER_MANDATORY), retried first.
    backlog: VecDeque<(Bytes, Vec<Bytes>)>,
    clock: Clock,
    budget: usize,
    stop: Arc<AtomicBool>,
    disc: Option<DiscoveryLink>,
    /// Subscribers found in discovery that the PUB connected to.
    subscribers: BTreeMap<NodeId, Vec<String>>,
}

/// Messages handled per socket per loop turn (fairness between sockets and timers).
const BATCH: usize = 1024;

impl PubLoop {
    fn run(&mut self) {
        let shared = self.shared.clone();
        while !self.stop.load(Ordering::SeqCst) {
            let now = self.clock.now_ms();
            let Ok(mut sh) = shared.lock() else {
                return;
            };
            for hb in sh.machine.poll_heartbeat(now) {
                let _ = send_frames(&sh.pub_sock, &hb, DONTWAIT);
            }
            self.send_replay(&mut sh.machine, now);
            if let Some(d) = self.disc.as_mut() {
                let changes = d.tick(now);
                for c in changes {
                    on_node_change(&sh.pub_sock, &mut self.subscribers, c);
                }
            }
            let busy = sh.machine.has_pending_replay() || !self.backlog.is_empty();
            let due = min_opt(
                Some(sh.machine.next_heartbeat_at()),
                self.disc.as_ref().and_then(DiscoveryLink::next_timer_at),
            );
            // A full replay peer is retried after 1 ms; otherwise sleep until the next timer.
            let timeout = if !self.backlog.is_empty() {
                1
            } else if busy {
                0
            } else {
                poll_timeout(now, due, 1000)
            };
            // A publish that brings the next heartbeat before this wakes the thread.
            sh.wake_at = now.saturating_add(timeout as u64);
            drop(sh);
            let mut items = vec![
                self.rx.as_poll_item(POLLIN),
                self.router.as_poll_item(POLLIN),
            ];
            if let Some(d) = self.disc.as_ref() {
                for s in d.sockets() {
                    items.push(s.as_poll_item(POLLIN));
                }
            }
            if crate::poll(&mut items, timeout).is_err() {
                return;
            }
            drop(items);
            if !self.drain_commands() {
                return;
            }
            self.drain_requests(&shared);
        }
    }

    fn drain_commands(&mut self) -> bool {
        loop {
            match recv_frames(&self.rx) {
                Ok(Some(frames)) => {
                    if frames[0][..] == *OP_STOP {
                        return false;
                    }
                }
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    fn drain_requests(&mut self, shared: &Mutex<PubShared>) {
        let mut requests = Vec::new();
        for _ in 0..BATCH {
            match recv_frames(&self.router) {
                Ok(Some(frames)) if frames.len() >= 2 => requests.push(frames),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if requests.is_empty() {
            return;
        }
        let Ok(mut sh) = shared.lock() else {
            return;
        };
        let now = self.clock.now_ms();
        for mut frames in requests {
            let peer = frames.remove(0);
            match sh.machine.handle_replay_frames(peer.clone(), &frames, now) {
                Ok(replies) => {
                    for r in replies {
                        self.backlog.push_back((peer.clone(), r));
                    }
                }
                Err(e) => log::debug!("rpub publisher: bad replay request: {e}"),
            }
        }
    }

    /// Sends the backlog, then new replay traffic within the budget. A full peer
    /// (ROUTER_MANDATORY says EAGAIN) keeps its messages, in order, for the next turn while
    /// other peers are still served; new traffic is generated only while the backlog is
    /// short. A vanished peer's messages are dropped (the subscriber re-requests).
    fn send_replay(&mut self, machine: &mut Publisher<AnyStore>, now: u64) {
        let mut sent = 0;
        let mut blocked: Vec<Bytes> = Vec::new();
        let mut parked: VecDeque<(Bytes, Vec<Bytes>)> = VecDeque::new();
        loop {
            while let Some((peer, frames)) = self.backlog.pop_front() {
                if blocked.contains(&peer) {
                    parked.push_back((peer, frames));
                    continue;
                }
                let mut all = Vec::with_capacity(frames.len() + 1);
                all.push(peer.clone());
                all.extend(frames.iter().cloned());
                match send_frames(&self.router, &all, DONTWAIT) {
                    Ok(()) => sent += 1,
                    Err(ZmqError::EAGAIN) => {
                        blocked.push(peer.clone());
                        parked.push_back((peer, frames));
                    }
                    Err(_) => {}
                }
            }
            if sent >= self.budget
                || parked.len() >= self.budget.saturating_mul(4)
                || !machine.has_pending_replay()
            {
                break;
            }
            let batch = machine.poll_replay(now, self.budget - sent);
            if batch.is_empty() {
                break;
            }
            self.backlog.extend(batch);
        }
        self.backlog = parked;
    }
}

/// Publisher-connects mode: follows the subscribers discovery lists with the PUB.
fn on_node_change(
    pub_sock: &Socket,
    subscribers: &mut BTreeMap<NodeId, Vec<String>>,
    c: super::discovery::NodeChange,
) {
    use super::discovery::NodeChange;
    match c {
        NodeChange::Up(rec) => {
            let eps: Vec<String> = rec
                .endpoints
                .iter()
                .filter(|e| e.name == ENDPOINT_SUBSCRIBE)
                .map(|e| e.uri.clone())
                .collect();
            if eps.is_empty() {
                return;
            }
            if let Some(old) = subscribers.remove(&rec.id) {
                for e in old {
                    let _ = pub_sock.disconnect(&e);
                }
            }
            for e in &eps {
                if let Err(err) = pub_sock.connect(e) {
                    log::warn!("rpub publisher: connect {e}: {err}");
                }
            }
            subscribers.insert(rec.id, eps);
        }
        NodeChange::Down { id, .. } => {
            if let Some(old) = subscribers.remove(&id) {
                for e in old {
                    let _ = pub_sock.disconnect(&e);
                }
            }
        }
    }
}

impl Drop for PubLoop {
    fn drop(&mut self) {
        if let Some(d) = self.disc.as_mut() {
            d.leave();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriber

/// Settings of a [`ReliableSubscriber`].
#[derive(Debug, Clone)]
pub struct ReliableSubscriberConfig {
    /// Publisher PUB endpoints the SUB connects to.
    pub data_connect: Vec<String>,
    /// Endpoints the SUB binds (publisher-connects mode).
    pub data_bind: Vec<String>,
    /// Publisher replay ROUTER endpoints (one DEALER each).
    pub replay_connect: Vec<String>,
    /// Find publishers (and, with [`ConnectSide::PublishersConnect`], register the bound SUB)
    /// through discovery.
    pub discovery: Option<DiscoveryConfig>,
    /// Data-channel direction under discovery.
    pub connect_side: ConnectSide,
    /// Stream prefixes and their join policies (the SUB also subscribes to heartbeats).
    pub subscriptions: Vec<(Vec<u8>, JoinPolicy)>,
    /// Protocol tuning (join policy default, repair timers, liveness). The bus default differs
    /// from the spec's in one point: the reorder window is [`DEFAULT_REORDER_WINDOW`].
    pub protocol: SubscriberConfig,
    /// Deliveries buffered between the thread and `recv` (default 1024).
    pub channel: usize,
    /// Sans-IO queue length at which the thread stops reading sockets (default 16 384; above
    /// `protocol.slow_consumer_threshold`, so `SlowConsumer` is reported before reading
    /// stops).
    pub max_pending: usize,
    /// SUB receive HWM (default 1000, as libzmq).
    pub rcvhwm: i32,
    /// Reconnect interval of the SUB and DEALERs, ms (default 100).
    pub reconnect_ivl_ms: i32,
    /// Durable cursor file: read at start (if present), written by
    /// [`ReliableSubscriber::save_cursor`] and on drop.
    pub cursor_file: Option<PathBuf>,
}

impl Default for ReliableSubscriberConfig {
    fn default() -> Self {
        ReliableSubscriberConfig {
            data_connect: Vec::new(),
            data_bind: Vec::new(),
            replay_connect: Vec::new(),
            discovery: None,
            connect_side: ConnectSide::default(),
            subscriptions: Vec::new(),
            protocol: SubscriberConfig {
                reorder_window: DEFAULT_REORDER_WINDOW,
                ..SubscriberConfig::default()
            },
            channel: 1024,
            max_pending: 16_384,
            rcvhwm: 1000,
            reconnect_ivl_ms: 100,
            cursor_file: None,
        }
    }
}

type CursorMap = HashMap<(PublisherId, Bytes), (u64, u64)>;

/// The application-side cursor: the map, plus the newest entry taken, kept aside while
/// deliveries come from the same (publisher, stream) so that taking one costs a comparison
/// instead of a hash-map insert.
#[derive(Debug, Default)]
struct AppCursor {
    map: CursorMap,
    recent: Option<((PublisherId, Bytes), (u64, u64))>,
}

impl AppCursor {
    fn set(&mut self, publisher: PublisherId, stream: &Bytes, epoch: u64, last: u64) {
        if let Some(((p, s), v)) = self.recent.as_mut() {
            if *p == publisher && s[..] == stream[..] {
                *v = (epoch, last);
                return;
            }
        }
        self.settle();
        self.recent = Some(((publisher, stream.clone()), (epoch, last)));
    }

    /// Moves the kept-aside entry into the map.
    fn settle(&mut self) {
        if let Some((k, v)) = self.recent.take() {
            self.map.insert(k, v);
        }
    }
}

/// The application side of the delivery hand-off: batches from the thread, and what is left
/// of the last one.
#[derive(Debug)]
struct Inbox {
    rx: Receiver<Vec<Delivery>>,
    buf: VecDeque<Delivery>,
    /// Deliveries taken and not yet subtracted from `in_flight`.
    taken: usize,
}

/// The application side subtracts what it took from `in_flight` (written by the thread too)
/// once per this many deliveries, and whenever its batch runs out, instead of once per
/// delivery.
const TAKEN_REPORT: usize = 64;

/// A reliable subscriber: a SUB (data) and DEALERs (replay) driven by a background thread;
/// the application takes [`Delivery`] values in order with [`ReliableSubscriber::recv`].
#[derive(Debug)]
pub struct ReliableSubscriber {
    /// Held while waiting for a batch, so concurrent receivers keep the order.
    inbox: Mutex<Inbox>,
    /// Deliveries handed to the application side and not taken yet (bounded by `channel`).
    in_flight: Arc<AtomicUsize>,
    ctl: Mutex<Socket>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    cursor: Mutex<AppCursor>,
    cursor_file: Option<PathBuf>,
    data_endpoints: Vec<String>,
    stats: Arc<Mutex<SubscriberStats>>,
    discovered: Arc<Mutex<Vec<PublisherId>>>,
}

impl ReliableSubscriber {
    /// Creates the sockets, loads the cursor file if any, and starts the thread.
    pub fn start(ctx: &Context, config: ReliableSubscriberConfig) -> Result<Self, BusError> {
        let clock = Clock::new();
        let mut cursor = CursorMap::new();
        let mut entries = Vec::new();
        if let Some(path) = &config.cursor_file {
            match std::fs::read(path) {
                Ok(buf) => {
                    entries = decode_cursor(&buf)?;
                    for e in &entries {
                        cursor.insert((e.publisher, e.stream.clone()), (e.epoch, e.last_delivered));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut machine = Subscriber::with_cursor(config.protocol.clone(), entries);
        let sub = ctx.socket(SocketType::SUB)?;
        sub.set_rcvhwm(config.rcvhwm)?;
        sub.set_linger(0)?;
        sub.set_reconnect_ivl(config.reconnect_ivl_ms)?;
        sub.set_subscribe(HEARTBEAT_TOPIC)?;
        for (prefix, policy) in &config.subscriptions {
            sub.set_subscribe(prefix)?;
            machine.subscribe_with(prefix, *policy);
        }
        let mut data_endpoints = Vec::new();
        for ep in &config.data_bind {
            sub.bind(ep)?;
            data_endpoints.push(endpoint_of(&sub)?);
        }
        for ep in &config.data_connect {
            sub.connect(ep)?;
        }
        let mut lp = SubLoop {
            ctx: ctx.clone(),
            reconnect_ivl_ms: config.reconnect_ivl_ms,
            sub,
            dealers: Vec::new(),
            route: HashMap::new(),
            machine,
            ctl: ctx.socket(SocketType::PAIR)?,
            tx: None,
            in_flight: Arc::new(AtomicUsize::new(0)),
            channel: config.channel.max(1),
            max_pending: config.max_pending.max(1),
            clock,
            stats: Arc::new(Mutex::new(SubscriberStats::default())),
            disc: None,
            connect_data: config.connect_side == ConnectSide::SubscribersConnect,
            publishers: BTreeMap::new(),
            discovered: Arc::new(Mutex::new(Vec::new())),
        };
        for ep in &config.replay_connect {
            lp.add_dealer(ep, None)?;
        }
        if let Some(d) = &config.discovery {
            let register = (config.connect_side == ConnectSide::PublishersConnect).then(|| {
                let eps = data_endpoints
                    .iter()
                    .map(|e| Endpoint::new(ENDPOINT_SUBSCRIBE, e.clone()))
                    .collect();
                (Id128::random().unwrap_or(Id128([0x5b; 16])), eps)
            });
            lp.disc = Some(DiscoveryLink::new(
                ctx,
                d,
                register,
                true,
                lp.clock.now_ms(),
            )?);
        }
        let name = inproc_name("sub");
        lp.ctl.set_linger(0)?;
        lp.ctl.bind(&name)?;
        let ctl = ctx.socket(SocketType::PAIR)?;
        ctl.set_linger(0)?;
        ctl.connect(&name)?;
        // Unbounded in batches; bounded in deliveries by `in_flight` <= `channel`.
        let (tx, rx) = crossbeam_channel::unbounded();
        lp.tx = Some(tx);
        let in_flight = lp.in_flight.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = lp.stats.clone();
        let discovered = lp.discovered.clone();
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rpub-subscriber".into())
            .spawn(move || lp.run(&stop2))
            .map_err(BusError::Io)?;
        Ok(ReliableSubscriber {
            inbox: Mutex::new(Inbox {
                rx,
                buf: VecDeque::new(),
                taken: 0,
            }),
            in_flight,
            ctl: Mutex::new(ctl),
            stop,
            thread: Some(thread),
            cursor: Mutex::new(AppCursor {
                map: cursor,
                recent: None,
            }),
            cursor_file: config.cursor_file,
            data_endpoints,
            stats,
            discovered,
        })
    }

    fn control(&self, op: &'static [u8], endpoint: &str) -> Result<(), BusError> {
        let ctl = self.ctl.lock().map_err(|_| BusError::Closed)?;
        let frames = [
            Bytes::from_static(op),
            Bytes::copy_from_slice(endpoint.as_bytes()),
        ];
        send_frames(&ctl, &frames, 0)?;
        Ok(())
    }

    /// Adds a publisher's replay endpoint at run time (one more DEALER), e.g. in
    /// publisher-connects mode once the publisher is known.
    pub fn add_replay_endpoint(&self, endpoint: &str) -> Result<(), BusError> {
        self.control(OP_ADD_REPLAY, endpoint)
    }

    /// Connects the SUB to one more publisher data endpoint at run time.
    pub fn connect_data(&self, endpoint: &str) -> Result<(), BusError> {
        self.control(OP_CONNECT_DATA, endpoint)
    }

    /// Publishers currently known from discovery (connected), sorted.
    pub fn discovered_publishers(&self) -> Vec<PublisherId> {
        self.discovered
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// The bound SUB endpoints (publisher-connects mode), resolved.
    pub fn data_endpoints(&self) -> &[String] {
        &self.data_endpoints
    }

    /// Counters of the sans-IO subscriber (refreshed by the thread every loop turn).
    pub fn stats(&self) -> SubscriberStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    fn taken(&self, d: Delivery) -> Delivery {
        let Ok(mut c) = self.cursor.lock() else {
            return d;
        };
        match &d {
            Delivery::Message(m) => c.set(m.publisher, &m.stream, m.epoch, m.seq),
            Delivery::UnrecoverableGap {
                publisher,
                epoch,
                stream,
                to,
                ..
            } => c.set(*publisher, stream, *epoch, *to),
            _ => {}
        }
        d
    }

    /// Takes the next delivery: from the current batch, else from the next batch, waiting
    /// at most `wait` (`None`: forever; zero: not at all).
    fn take(&self, wait: Option<Duration>) -> Result<Delivery, BusError> {
        let mut inbox = self.inbox.lock().map_err(|_| BusError::Closed)?;
        loop {
            if let Some(d) = inbox.buf.pop_front() {
                inbox.taken += 1;
                if inbox.taken >= TAKEN_REPORT || inbox.buf.is_empty() {
                    self.in_flight.fetch_sub(inbox.taken, Ordering::AcqRel);
                    inbox.taken = 0;
                }
                drop(inbox);
                return Ok(self.taken(d));
            }
            let batch = match wait {
                None => inbox.rx.recv().map_err(|_| BusError::Closed)?,
                Some(t) if t.is_zero() => match inbox.rx.try_recv() {
                    Ok(b) => b,
                    Err(crossbeam_channel::TryRecvError::Empty) => return Err(BusError::Timeout),
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        return Err(BusError::Closed)
                    }
                },
                Some(t) => match inbox.rx.recv_timeout(t) {
                    Ok(b) => b,
                    Err(RecvTimeoutError::Timeout) => return Err(BusError::Timeout),
                    Err(RecvTimeoutError::Disconnected) => return Err(BusError::Closed),
                },
            };
            inbox.buf.extend(batch);
        }
    }

    /// The next delivery, blocking until one arrives ([`BusError::Closed`] if the thread
    /// stopped).
    pub fn recv(&self) -> Result<Delivery, BusError> {
        self.take(None)
    }

    /// The next delivery, waiting at most `timeout` ([`BusError::Timeout`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Delivery, BusError> {
        self.take(Some(timeout.max(Duration::from_nanos(1))))
    }

    /// The next delivery if one is ready.
    pub fn try_recv(&self) -> Option<Delivery> {
        self.take(Some(Duration::ZERO)).ok()
    }

    /// The durable cursor: last delivery taken by the application per (publisher, epoch,
    /// stream), sorted.
    pub fn cursor(&self) -> Vec<CursorEntry> {
        let Ok(mut c) = self.cursor.lock() else {
            return Vec::new();
        };
        c.settle();
        let mut v: Vec<CursorEntry> = c
            .map
            .iter()
            .map(|((p, s), &(e, last))| CursorEntry {
                publisher: *p,
                epoch: e,
                stream: s.clone(),
                last_delivered: last,
            })
            .collect();
        v.sort();
        v
    }

    /// Writes the cursor to the cursor file (atomically: temporary file + rename). Does
    /// nothing without a cursor file.
    pub fn save_cursor(&self) -> Result<(), BusError> {
        let Some(path) = &self.cursor_file else {
            return Ok(());
        };
        let buf = encode_cursor(&self.cursor())?;
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        std::fs::write(&tmp, &buf)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

impl Drop for ReliableSubscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(ctl) = self.ctl.lock() {
            let _ = ctl.send(OP_STOP, DONTWAIT);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Err(e) = self.save_cursor() {
            log::warn!("rpub subscriber: saving the cursor: {e}");
        }
    }
}

struct Dealer {
    sock: Socket,
    /// Set when the publisher is known from discovery.
    node: Option<NodeId>,
}

struct SubLoop {
    ctx: Context,
    reconnect_ivl_ms: i32,
    sub: Socket,
    dealers: Vec<Dealer>,
    route: HashMap<PublisherId, usize>,
    machine: Subscriber,
    ctl: Socket,
    tx: Option<Sender<Vec<Delivery>>>,
    /// Deliveries sent to the application side and not taken yet.
    in_flight: Arc<AtomicUsize>,
    /// Bound of `in_flight` (the `channel` setting).
    channel: usize,
    max_pending: usize,
    clock: Clock,
    stats: Arc<Mutex<SubscriberStats>>,
    disc: Option<DiscoveryLink>,
    connect_data: bool,
    /// Publishers found in discovery: their data endpoints (connected by the SUB).
    publishers: BTreeMap<NodeId, Vec<String>>,
    discovered: Arc<Mutex<Vec<PublisherId>>>,
}

impl SubLoop {
    fn add_dealer(&mut self, endpoint: &str, node: Option<NodeId>) -> Result<usize, BusError> {
        let sock = self.ctx.socket(SocketType::DEALER)?;
        sock.set_linger(0)?;
        sock.set_reconnect_ivl(self.reconnect_ivl_ms)?;
        sock.connect(endpoint)?;
        self.dealers.push(Dealer { sock, node });
        Ok(self.dealers.len() - 1)
    }

    fn remove_dealers_of(&mut self, node: NodeId) {
        let mut i = 0;
        while i < self.dealers.len() {
            if self.dealers[i].node == Some(node) {
                self.dealers.remove(i);
            } else {
                i += 1;
            }
        }
        self.rebuild_routes();
    }

    fn rebuild_routes(&mut self) {
        let n = self.dealers.len();
        self.route.retain(|_, i| *i < n);
        let mut fixed = HashMap::new();
        for (i, d) in self.dealers.iter().enumerate() {
            if let Some(node) = d.node {
                fixed.insert(node, i);
            }
        }
        // Indexes shifted: learned routes are relearned (requests broadcast meanwhile).
        self.route = fixed;
    }

    /// Hands deliveries to the application, as one batch, up to the `channel` bound; false
    /// when the application side is gone.
    fn flush(&mut self) -> bool {
        let Some(tx) = self.tx.as_ref() else {
            return false;
        };
        let room = self
            .channel
            .saturating_sub(self.in_flight.load(Ordering::Acquire));
        let n = room.min(self.machine.queued());
        if n == 0 {
            return true;
        }
        let mut batch = Vec::with_capacity(n);
        while batch.len() < n {
            match self.machine.poll_event() {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        self.in_flight.fetch_add(batch.len(), Ordering::AcqRel);
        tx.send(batch).is_ok()
    }

    /// Deliveries wait because the application side holds `channel` already.
    fn app_full(&self) -> bool {
        self.machine.queued() > 0 && self.in_flight.load(Ordering::Acquire) >= self.channel
    }

    fn send_requests(&mut self, now: u64) {
        for req in self.machine.poll_timers(now) {
            let frames = req.encode();
            match self.route.get(&req.publisher) {
                Some(&i) if i < self.dealers.len() => {
                    let _ = send_frames(&self.dealers[i].sock, &frames, DONTWAIT);
                }
                _ => {
                    // Unknown route: ask every replay endpoint; only the named publisher
                    // answers, and its reply teaches the route.
                    for d in &self.dealers {
                        let _ = send_frames(&d.sock, &frames, DONTWAIT);
                    }
                }
            }
        }
    }

    fn run(&mut self, stop: &AtomicBool) {
        // The machine's clock stands still while the thread does not read (the application
        // is behind): repair timers and publisher liveness must not run out because of our
        // own stall, when replies and heartbeats are merely queued unread.
        let mut paused_total = 0u64;
        let mut paused_since: Option<u64> = None;
        while !stop.load(Ordering::SeqCst) {
            if !self.flush() {
                return;
            }
            let real = self.clock.now_ms();
            let paused = self.app_full() && self.machine.queued() >= self.max_pending;
            match (paused, paused_since) {
                (true, None) => paused_since = Some(real),
                (false, Some(t)) => {
                    paused_total = paused_total.saturating_add(real.saturating_sub(t));
                    paused_since = None;
                }
                _ => {}
            }
            let now = real.saturating_sub(paused_total);
            if !paused && self.machine.next_timer_at().is_some_and(|t| t <= now) {
                self.send_requests(now);
            }
            if let Some(d) = self.disc.as_mut() {
                let changes = d.tick(real);
                for c in changes {
                    self.on_node_change(c);
                }
            }
            if let Ok(mut s) = self.stats.lock() {
                *s = self.machine.stats();
            }
            let mut timeout = poll_timeout(
                real,
                self.disc.as_ref().and_then(DiscoveryLink::next_timer_at),
                1000,
            );
            if !paused {
                timeout = timeout.min(poll_timeout(now, self.machine.next_timer_at(), 1000));
            }
            // While the application channel is full, re-check it every 2 ms.
            if self.app_full() {
                timeout = timeout.min(2);
            }
            {
                let mut items = vec![self.ctl.as_poll_item(POLLIN)];
                if !paused {
                    items.push(self.sub.as_poll_item(POLLIN));
                    for d in &self.dealers {
                        items.push(d.sock.as_poll_item(POLLIN));
                    }
                }
                if let Some(d) = self.disc.as_ref() {
                    for s in d.sockets() {
                        items.push(s.as_poll_item(POLLIN));
                    }
                }
                if crate::poll(&mut items, timeout).is_err() {
                    return;
                }
            }
            while let Ok(Some(cmd)) = recv_frames(&self.ctl) {
                let arg = cmd.get(1).and_then(|a| std::str::from_utf8(a).ok());
                match (&cmd[0][..], arg) {
                    (OP_ADD_REPLAY, Some(ep)) => {
                        if let Err(e) = self.add_dealer(ep, None) {
                            log::warn!("rpub subscriber: connect {ep}: {e}");
                        }
                    }
                    (OP_CONNECT_DATA, Some(ep)) => {
                        if let Err(e) = self.sub.connect(ep) {
                            log::warn!("rpub subscriber: connect {ep}: {e}");
                        }
                    }
                    _ => return,
                }
            }
            if paused {
                continue;
            }
            let now = self.clock.now_ms().saturating_sub(paused_total);
            // Repairs first (they unblock buffered data), then live data; the requests its
            // gaps produce leave at once rather than at the next turn.
            for i in 0..self.dealers.len() {
                for _ in 0..BATCH {
                    match recv_frames(&self.dealers[i].sock) {
                        Ok(Some(frames)) => match ReplayReply::decode(&frames) {
                            Ok(r) => {
                                let p = match &r {
                                    ReplayReply::Retransmission(m) => m.header.publisher,
                                    ReplayReply::Join { publisher, .. }
                                    | ReplayReply::End { publisher, .. }
                                    | ReplayReply::Gap { publisher, .. } => *publisher,
                                    ReplayReply::Busy { request, .. } => request.publisher,
                                };
                                self.route.insert(p, i);
                                self.machine.handle_reply(&r, now);
                            }
                            Err(e) => log::debug!("rpub subscriber: bad replay reply: {e}"),
                        },
                        Ok(None) => break,
                        Err(_) => break,
                    }
                }
            }
            for _ in 0..BATCH {
                match recv_split(&self.sub) {
                    Ok(Some((first, rest))) => {
                        if let Err(e) = self.machine.handle_data_frames(&first, rest, now) {
                            log::debug!("rpub subscriber: bad data message: {e}");
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            if self.machine.next_timer_at().is_some_and(|t| t <= now) {
                self.send_requests(now);
            }
        }
    }

    fn on_node_change(&mut self, c: super::discovery::NodeChange) {
        use super::discovery::NodeChange;
        match c {
            NodeChange::Up(rec) => {
                let data: Vec<String> = rec
                    .endpoints
                    .iter()
                    .filter(|e| e.name == ENDPOINT_DATA)
                    .map(|e| e.uri.clone())
                    .collect();
                let replay: Vec<String> = rec
                    .endpoints
                    .iter()
                    .filter(|e| e.name == ENDPOINT_REPLAY)
                    .map(|e| e.uri.clone())
                    .collect();
                if replay.is_empty() {
                    return; // not a publisher
                }
                self.drop_publisher(rec.id);
                if self.connect_data {
                    for e in &data {
                        if let Err(err) = self.sub.connect(e) {
                            log::warn!("rpub subscriber: connect {e}: {err}");
                        }
                    }
                }
                for e in &replay {
                    match self.add_dealer(e, Some(rec.id)) {
                        Ok(i) => {
                            self.route.insert(rec.id, i);
                        }
                        Err(err) => log::warn!("rpub subscriber: connect {e}: {err}"),
                    }
                }
                self.publishers.insert(rec.id, data);
            }
            NodeChange::Down { id, .. } => self.drop_publisher(id),
        }
        if let Ok(mut d) = self.discovered.lock() {
            *d = self.publishers.keys().copied().collect();
        }
    }

    fn drop_publisher(&mut self, id: NodeId) {
        if let Some(old) = self.publishers.remove(&id) {
            if self.connect_data {
                for e in old {
                    let _ = self.sub.disconnect(&e);
                }
            }
            self.remove_dealers_of(id);
        }
    }
}

impl Drop for SubLoop {
    fn drop(&mut self) {
        if let Some(d) = self.disc.as_mut() {
            d.leave();
        }
    }
}
