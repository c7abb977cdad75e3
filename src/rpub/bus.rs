//! The reliable bus on real sockets: [`ReliablePublisher`] and [`ReliableSubscriber`].
//!
//! Each runs one background thread that drives the sans-IO machine ([`Publisher`],
//! [`Subscriber`]) with timers: the thread sleeps until one of its sockets is readable or the
//! next timer (heartbeat, repair retry, discovery renewal) is due. On both sides the data path
//! runs in the application's threads as well (see below).
//!
//! | Channel   | Publisher                | Subscriber                         |
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
//!
//! **Receiving.** On the subscriber, the SUB, the replay DEALERs and the sans-IO machine sit
//! behind one mutex shared by the background thread and the threads that call
//! [`ReliableSubscriber::recv`] (or `recv_timeout`, `try_recv`). A receiving thread takes
//! deliveries from its inbox (at most `channel`, default 1024, moved at once from the sans-IO
//! queue); when that is empty it takes the lock, moves queued deliveries, and if there are
//! none reads the SUB itself without blocking, feeds the machine (sending the repair requests
//! a gap calls for at once) and takes what that delivered; only then does it sleep, until the
//! SUB has data or the background thread queued deliveries. Live data thus goes from the SUB
//! to the application without a hop through another thread. The background thread reads the
//! replay DEALERs and serves timers (repair retries, publisher liveness), discovery and
//! [`ReliableSubscriber::add_replay_endpoint`]'s DEALERs, and reads the SUB whenever no thread
//! is inside `recv`: at once if the application has not received yet, else once the
//! application has left data there for 2 ms without reading the SUB, so that gaps are found,
//! repairs requested and flow control applied while the application is slow or not
//! receiving. Concurrent receivers take deliveries in order (one at a time fills the inbox).
//! When the sans-IO queue reaches `max_pending` (default 16 384) no thread reads the sockets
//! until the application catches up (the PUB then drops at the HWM and the subscriber
//! repairs later — no message is lost while retention lasts).
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
use crate::pattern::Notify;
use crate::shared::Signal;
use crate::{Context, Error as ZmqError, Socket, SocketType, DONTWAIT, POLLIN, SNDMORE};
use bytes::{Bytes, BytesMut};
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
    /// Deliveries moved at once from the sans-IO queue to the receiving side, where they
    /// wait for `recv` (default 1024).
    pub channel: usize,
    /// Sans-IO queue length at which the sockets are no longer read (default 16 384; above
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

/// Who is woken for what on the subscriber (see the module docs).
#[derive(Debug, Default)]
struct Wakes {
    /// Receiving threads wait on it: data on the SUB, deliveries queued by the background
    /// thread, the bus closed.
    rx: Signal,
    /// The background thread waits on it: replay DEALERs, discovery sockets, stop, a
    /// timer moved earlier by a receiving thread, and data on the SUB while no thread
    /// receives.
    bg: Arc<Signal>,
    /// Threads inside [`ReliableSubscriber::take`] that will read the SUB before they sleep.
    receiving: AtomicUsize,
    /// The SUB may hold messages nobody has read: set by its wake-up, cleared by a read that
    /// empties it.
    sub_unread: AtomicBool,
    /// Times a receiving thread read the SUB.
    app_reads: AtomicU64,
    /// The background thread has left data on the SUB to the application for a while
    /// ([`DEFER_MS`]) and looks again then: the SUB's wake-up need not ring it meanwhile.
    deferring: AtomicBool,
}

/// The SUB's wake-up (the pipes notify it when they receive into an empty SUB that was read
/// empty): receiving threads, and the background thread if none is inside `recv`.
struct SubNotify(Arc<Wakes>);

impl Notify for SubNotify {
    fn notify(&self) {
        let w = &self.0;
        w.sub_unread.store(true, Ordering::SeqCst);
        w.rx.raise();
        if w.receiving.load(Ordering::SeqCst) == 0 && !w.deferring.load(Ordering::SeqCst) {
            w.bg.raise();
        }
    }
}

/// How long the background thread leaves data on the SUB to an application thread that is
/// receiving (it has taken deliveries and will read the SUB when they run out) before it
/// reads it itself: a slow or absent application still has its data read, gaps found and
/// flow control applied, and a fast one does not share its data path with the thread.
const DEFER_MS: u64 = 2;

/// The application side: deliveries moved out of the sans-IO queue, not taken yet.
#[derive(Debug, Default)]
struct Inbox {
    buf: VecDeque<Delivery>,
}

/// A reliable subscriber: a SUB (data) and DEALERs (replay) read by the threads that call
/// [`ReliableSubscriber::recv`] and by a background thread; the application takes
/// [`Delivery`] values in order with [`ReliableSubscriber::recv`].
#[derive(Debug)]
pub struct ReliableSubscriber {
    /// Held while a thread takes or waits for deliveries, so concurrent receivers keep the
    /// order.
    inbox: Mutex<Inbox>,
    /// The sockets and the sans-IO machine, shared with the background thread.
    shared: Arc<Mutex<SubShared>>,
    wakes: Arc<Wakes>,
    /// At most this many deliveries move to `inbox` at once (the `channel` setting).
    channel: usize,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    cursor: Mutex<AppCursor>,
    cursor_file: Option<PathBuf>,
    data_endpoints: Vec<String>,
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
        let wakes = Arc::new(Wakes::default());
        let sub_notify: Arc<dyn Notify> = Arc::new(SubNotify(wakes.clone()));
        let bg_notify: Arc<dyn Notify> = wakes.bg.clone();
        let sub = ctx.socket(SocketType::SUB)?;
        sub.signal().subscribe(&sub_notify);
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
        let mut sh = SubShared {
            ctx: ctx.clone(),
            reconnect_ivl_ms: config.reconnect_ivl_ms,
            sub,
            dealers: Vec::new(),
            route: HashMap::new(),
            machine,
            clock,
            max_pending: config.max_pending.max(1),
            paused_total: 0,
            paused_since: None,
            wake_at: 0,
            closed: false,
            bg_notify,
            _sub_notify: sub_notify,
        };
        for ep in &config.replay_connect {
            sh.add_dealer(ep, None)?;
        }
        let disc = match &config.discovery {
            Some(d) => {
                let register = (config.connect_side == ConnectSide::PublishersConnect).then(|| {
                    let eps = data_endpoints
                        .iter()
                        .map(|e| Endpoint::new(ENDPOINT_SUBSCRIBE, e.clone()))
                        .collect();
                    (Id128::random().unwrap_or(Id128([0x5b; 16])), eps)
                });
                let link = DiscoveryLink::new(ctx, d, register, true, clock.now_ms())?;
                for s in link.sockets() {
                    s.signal().subscribe(&sh.bg_notify);
                }
                Some(link)
            }
            None => None,
        };
        let shared = Arc::new(Mutex::new(sh));
        let stop = Arc::new(AtomicBool::new(false));
        let discovered = Arc::new(Mutex::new(Vec::new()));
        let mut lp = SubLoop {
            shared: shared.clone(),
            wakes: wakes.clone(),
            disc,
            connect_data: config.connect_side == ConnectSide::SubscribersConnect,
            publishers: BTreeMap::new(),
            discovered: discovered.clone(),
            defer: None,
            took_over: None,
        };
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rpub-subscriber".into())
            .spawn(move || lp.run(&stop2))
            .map_err(BusError::Io)?;
        Ok(ReliableSubscriber {
            inbox: Mutex::new(Inbox::default()),
            shared,
            wakes,
            channel: config.channel.max(1),
            stop,
            thread: Some(thread),
            cursor: Mutex::new(AppCursor {
                map: cursor,
                recent: None,
            }),
            cursor_file: config.cursor_file,
            data_endpoints,
            discovered,
        })
    }

    fn shared(&self) -> Result<std::sync::MutexGuard<'_, SubShared>, BusError> {
        self.shared.lock().map_err(|_| BusError::Closed)
    }

    /// Adds a publisher's replay endpoint at run time (one more DEALER), e.g. in
    /// publisher-connects mode once the publisher is known.
    pub fn add_replay_endpoint(&self, endpoint: &str) -> Result<(), BusError> {
        let mut sh = self.shared()?;
        if sh.closed {
            return Err(BusError::Closed);
        }
        sh.add_dealer(endpoint, None)?;
        Ok(())
    }

    /// Connects the SUB to one more publisher data endpoint at run time.
    pub fn connect_data(&self, endpoint: &str) -> Result<(), BusError> {
        let sh = self.shared()?;
        if sh.closed {
            return Err(BusError::Closed);
        }
        sh.sub.connect(endpoint)?;
        Ok(())
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

    /// Counters of the sans-IO subscriber.
    pub fn stats(&self) -> SubscriberStats {
        self.shared
            .lock()
            .map(|s| s.machine.stats())
            .unwrap_or_default()
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

    /// Takes the next delivery: from the inbox, else from the sans-IO queue, else from the
    /// SUB (read in this thread), waiting at most `wait` (`None`: forever; zero: not at all)
    /// for the SUB or the background thread.
    fn take(&self, wait: Option<Duration>) -> Result<Delivery, BusError> {
        let mut inbox = self.inbox.lock().map_err(|_| BusError::Closed)?;
        if inbox.buf.is_empty() {
            let w = &self.wakes;
            w.receiving.fetch_add(1, Ordering::SeqCst);
            let filled = self.refill(&mut inbox.buf, wait);
            // Data this thread left on the SUB (or that came after it looked) is the
            // background thread's while no thread receives.
            if w.receiving.fetch_sub(1, Ordering::SeqCst) == 1
                && w.sub_unread.load(Ordering::SeqCst)
            {
                w.bg.raise();
            }
            filled?;
        }
        let d = inbox.buf.pop_front().ok_or(BusError::Timeout)?;
        drop(inbox);
        Ok(self.taken(d))
    }

    /// Fills `buf` (empty) with deliveries, reading the SUB in this thread when the sans-IO
    /// queue has none, and waiting for the SUB or the background thread as `wait` allows.
    fn refill(&self, buf: &mut VecDeque<Delivery>, wait: Option<Duration>) -> Result<(), BusError> {
        let mut deadline = None;
        loop {
            let seen = self.wakes.rx.seq();
            {
                let mut sh = self.shared()?;
                sh.fill(buf, self.channel, &self.wakes);
                if buf.is_empty() && !sh.closed {
                    if let Err(e) = sh.read_data_now(&self.wakes) {
                        // The context was terminated: the background thread stops too.
                        log::debug!("rpub subscriber: reading the SUB: {e}");
                        sh.closed = true;
                        self.wakes.bg.raise();
                        return Err(BusError::Closed);
                    }
                    sh.fill(buf, self.channel, &self.wakes);
                }
                if !buf.is_empty() {
                    return Ok(());
                }
                if sh.closed {
                    return Err(BusError::Closed);
                }
            }
            let deadline = match wait {
                None => None,
                Some(t) => {
                    let d = *deadline.get_or_insert_with(|| Instant::now() + t);
                    if t.is_zero() || Instant::now() >= d {
                        return Err(BusError::Timeout);
                    }
                    Some(d)
                }
            };
            self.wakes.rx.wait(seen, deadline);
        }
    }

    /// The next delivery, blocking until one arrives ([`BusError::Closed`] once the bus
    /// closed: the background thread stopped or the context was terminated).
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
        self.wakes.bg.raise();
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

/// What receiving threads and the background thread share, behind one mutex: the data and
/// replay sockets and the sans-IO machine, so that whichever thread reads a socket feeds the
/// machine in the order the messages were read.
struct SubShared {
    ctx: Context,
    reconnect_ivl_ms: i32,
    sub: Socket,
    dealers: Vec<Dealer>,
    route: HashMap<PublisherId, usize>,
    machine: Subscriber,
    clock: Clock,
    /// Sans-IO queue length at which the SUB and the DEALERs are no longer read.
    max_pending: usize,
    /// Time (ms) the machine's clock stood still (see [`SubShared::times`]).
    paused_total: u64,
    paused_since: Option<u64>,
    /// When the background thread wakes next at the latest (real ms; set by it before it
    /// sleeps). A receiving thread that moves the next timer before it rings it.
    wake_at: u64,
    /// The background thread has stopped or a socket failed: nothing is read any more.
    closed: bool,
    /// Wakes the background thread; subscribed to the DEALERs' and discovery sockets'
    /// signals (which keep only a weak reference).
    bg_notify: Arc<dyn Notify>,
    /// Subscribed to the SUB's signal (kept alive here).
    _sub_notify: Arc<dyn Notify>,
}

impl std::fmt::Debug for SubShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubShared")
            .field("machine", &self.machine)
            .field("dealers", &self.dealers.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl SubShared {
    fn add_dealer(&mut self, endpoint: &str, node: Option<NodeId>) -> Result<usize, BusError> {
        let sock = self.ctx.socket(SocketType::DEALER)?;
        sock.signal().subscribe(&self.bg_notify);
        sock.set_linger(0)?;
        sock.set_reconnect_ivl(self.reconnect_ivl_ms)?;
        sock.connect(endpoint)?;
        self.dealers.push(Dealer { sock, node });
        // A DEALER added from an application thread: the background thread polls it.
        self.bg_notify.notify();
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

    /// Real time and the machine's time (ms), and whether reading is paused.
    ///
    /// The machine's clock stands still while the sans-IO queue holds `max_pending`
    /// deliveries (the application is behind and nothing is read): repair timers and
    /// publisher liveness must not run out because of our own stall, when replies and
    /// heartbeats are merely queued unread.
    fn times(&mut self) -> (u64, u64, bool) {
        let real = self.clock.now_ms();
        let paused = self.reading_paused();
        match (paused, self.paused_since) {
            (true, None) => self.paused_since = Some(real),
            (false, Some(t)) => {
                self.paused_total = self.paused_total.saturating_add(real.saturating_sub(t));
                self.paused_since = None;
            }
            _ => {}
        }
        (real, real.saturating_sub(self.paused_total), paused)
    }

    /// The sans-IO queue holds `max_pending` deliveries: no socket is read until it drains.
    fn reading_paused(&self) -> bool {
        self.machine.queued() >= self.max_pending
    }

    /// Moves deliveries from the sans-IO queue to `buf`, up to `max` there; rings the
    /// background thread if that resumes reading.
    fn fill(&mut self, buf: &mut VecDeque<Delivery>, max: usize, wakes: &Wakes) {
        let paused = self.reading_paused();
        while buf.len() < max {
            match self.machine.poll_event() {
                Some(d) => buf.push_back(d),
                None => break,
            }
        }
        if paused && !self.reading_paused() {
            wakes.bg.raise();
        }
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

    /// Reads the replay DEALERs (at most [`BATCH`] messages each); true if one may hold
    /// more.
    fn read_replies(&mut self, now: u64) -> bool {
        let mut more = false;
        for i in 0..self.dealers.len() {
            let mut n = 0;
            while n < BATCH {
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
                    Ok(None) | Err(_) => break,
                }
                n += 1;
            }
            more |= n == BATCH;
        }
        more
    }

    /// Reads the SUB (at most [`BATCH`] messages); `Ok(true)` if it may hold more. Errors
    /// are the socket's (the context was terminated).
    fn read_data(&mut self, now: u64, wakes: &Wakes) -> Result<bool, BusError> {
        wakes.sub_unread.store(false, Ordering::SeqCst);
        for _ in 0..BATCH {
            match recv_split(&self.sub) {
                Ok(Some((first, rest))) => {
                    if let Err(e) = self.machine.handle_data_frames(&first, rest, now) {
                        log::debug!("rpub subscriber: bad data message: {e}");
                    }
                }
                Ok(None) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
        }
        wakes.sub_unread.store(true, Ordering::SeqCst);
        Ok(true)
    }

    /// A receiving thread's read of the SUB, with the repair requests the data calls for
    /// sent at once and the background thread rung if its next timer moved earlier.
    fn read_data_now(&mut self, wakes: &Wakes) -> Result<(), BusError> {
        let (real, now, paused) = self.times();
        if paused {
            return Ok(());
        }
        self.read_data(now, wakes)?;
        wakes.app_reads.fetch_add(1, Ordering::SeqCst);
        let mut next = self.machine.next_timer_at();
        if next.is_some_and(|t| t <= now) {
            self.send_requests(now);
            next = self.machine.next_timer_at();
        }
        if let Some(t) = next {
            // In real time: the machine's clock is behind by the time it stood still.
            let due = t.saturating_add(real - now);
            if due < self.wake_at {
                self.wake_at = due;
                wakes.bg.raise();
            }
        }
        Ok(())
    }
}

/// The background thread's part of the subscriber.
struct SubLoop {
    shared: Arc<Mutex<SubShared>>,
    wakes: Arc<Wakes>,
    disc: Option<DiscoveryLink>,
    connect_data: bool,
    /// Publishers found in discovery: their data endpoints (connected by the SUB).
    publishers: BTreeMap<NodeId, Vec<String>>,
    discovered: Arc<Mutex<Vec<PublisherId>>>,
    /// Data left on the SUB for a receiving application thread: when (real ms) the
    /// background thread reads it itself, and the count of reads by receiving threads then
    /// (a read since means the application still reads the SUB itself).
    defer: Option<(u64, u64)>,
    /// The count of reads by receiving threads when this thread last took the SUB over
    /// from the application (it then reads at once until a receiving thread reads again).
    took_over: Option<u64>,
}

impl SubLoop {
    fn run(&mut self, stop: &AtomicBool) {
        let shared = self.shared.clone();
        while !stop.load(Ordering::SeqCst) {
            let seen = self.wakes.bg.seq();
            let Ok(mut sh) = shared.lock() else {
                break;
            };
            if sh.closed {
                break;
            }
            let (real, now, paused) = sh.times();
            let mut more = false;
            let mut timeout = poll_timeout(
                real,
                self.disc.as_ref().and_then(DiscoveryLink::next_timer_at),
                1000,
            );
            if !paused {
                // Repairs first (they unblock buffered data), then live data; the requests
                // its gaps produce leave at once rather than at the next turn.
                more |= sh.read_replies(now);
                match self.sub_turn(&mut sh, real, now) {
                    Ok((m, t)) => {
                        more |= m;
                        timeout = timeout.min(t);
                    }
                    Err(_) => break,
                }
                if sh.machine.next_timer_at().is_some_and(|t| t <= now) {
                    sh.send_requests(now);
                }
                timeout = timeout.min(poll_timeout(now, sh.machine.next_timer_at(), 1000));
            } else {
                // Reading resumes when a receiving thread takes deliveries (it rings); this
                // is a fallback.
                timeout = timeout.min(2);
            }
            if let Some(d) = self.disc.as_mut() {
                let changes = d.tick(real);
                for c in changes {
                    self.on_node_change(&mut sh, c);
                }
            }
            if sh.machine.queued() > 0 {
                self.wakes.rx.raise();
            }
            if more {
                timeout = 0;
            }
            sh.wake_at = real.saturating_add(timeout as u64);
            drop(sh);
            if timeout > 0 {
                let deadline = Instant::now() + Duration::from_millis(timeout as u64);
                self.wakes.bg.wait(seen, Some(deadline));
            }
        }
    }

    /// The background thread's part of reading the SUB: nothing while a thread is inside
    /// `recv` (it reads); once the application has read the SUB itself, only after
    /// [`DEFER_MS`] in which it did not (it is between `recv` calls and will read when its
    /// deliveries run out), and from then on at once until it reads again; before the
    /// application ever read, at once. Returns (may hold more, timeout in ms until the
    /// deferred read).
    fn sub_turn(
        &mut self,
        sh: &mut SubShared,
        real: u64,
        now: u64,
    ) -> Result<(bool, i64), BusError> {
        let (more, timeout) = self.sub_turn_inner(sh, real, now)?;
        self.wakes
            .deferring
            .store(self.defer.is_some(), Ordering::SeqCst);
        Ok((more, timeout))
    }

    fn sub_turn_inner(
        &mut self,
        sh: &mut SubShared,
        real: u64,
        now: u64,
    ) -> Result<(bool, i64), BusError> {
        let w = &self.wakes;
        if w.receiving.load(Ordering::SeqCst) > 0 || !w.sub_unread.load(Ordering::SeqCst) {
            self.defer = None;
            return Ok((false, i64::MAX));
        }
        let reads = w.app_reads.load(Ordering::SeqCst);
        if self.took_over == Some(reads) {
            // The application has not read the SUB since this thread took it over.
            return Ok((sh.read_data(now, w)?, i64::MAX));
        }
        self.took_over = None;
        let defer_again = match self.defer {
            Some((at, d)) if d == reads => {
                if real < at {
                    return Ok((false, DEFER_MS as i64));
                }
                // The application did not read the SUB in its time: take it over.
                self.took_over = Some(reads);
                false
            }
            // The application read the SUB since: data still there gets the same time.
            Some(_) => true,
            // The application reads the SUB itself (it has done so): leave it the data.
            None => reads > 0,
        };
        if defer_again {
            self.defer = Some((real.saturating_add(DEFER_MS), reads));
            return Ok((false, DEFER_MS as i64));
        }
        self.defer = None;
        Ok((sh.read_data(now, w)?, i64::MAX))
    }

    fn on_node_change(&mut self, sh: &mut SubShared, c: super::discovery::NodeChange) {
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
                self.drop_publisher(sh, rec.id);
                if self.connect_data {
                    for e in &data {
                        if let Err(err) = sh.sub.connect(e) {
                            log::warn!("rpub subscriber: connect {e}: {err}");
                        }
                    }
                }
                for e in &replay {
                    match sh.add_dealer(e, Some(rec.id)) {
                        Ok(i) => {
                            sh.route.insert(rec.id, i);
                        }
                        Err(err) => log::warn!("rpub subscriber: connect {e}: {err}"),
                    }
                }
                self.publishers.insert(rec.id, data);
            }
            NodeChange::Down { id, .. } => self.drop_publisher(sh, id),
        }
        if let Ok(mut d) = self.discovered.lock() {
            *d = self.publishers.keys().copied().collect();
        }
    }

    fn drop_publisher(&mut self, sh: &mut SubShared, id: NodeId) {
        if let Some(old) = self.publishers.remove(&id) {
            if self.connect_data {
                for e in old {
                    let _ = sh.sub.disconnect(&e);
                }
            }
            sh.remove_dealers_of(id);
        }
    }
}

impl Drop for SubLoop {
    /// Also on a panic of the thread: receiving threads then get [`BusError::Closed`].
    fn drop(&mut self) {
        match self.shared.lock() {
            Ok(mut sh) => sh.closed = true,
            Err(p) => p.into_inner().closed = true,
        }
        self.wakes.rx.raise();
        if let Some(d) = self.disc.as_mut() {
            d.leave();
        }
    }
}
