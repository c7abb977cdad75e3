//! Sans-IO subscriber: one state machine per (publisher, epoch, stream), repair by NAK
//! (replay requests), late join, in-band events and a durable cursor.
//!
//! The caller owns the sockets: it feeds what the SUB socket receives into
//! [`Subscriber::handle_data`], what the DEALER receives into
//! [`Subscriber::handle_replay_reply`], sends every [`ReplayRequest`] returned by
//! [`Subscriber::poll_timers`] to the publisher it names (call it after every batch of
//! `handle_*` calls and when [`Subscriber::next_timer_at`] is reached), and drains
//! [`Subscriber::poll_event`]. Time is `u64` ms passed in by the caller.
//!
//! Streams are independent: a stream that is recovering never delays another stream's or
//! another publisher's deliveries.

use super::wire::{
    decode_data_channel, encode_cursor, validate_stream_name, CursorEntry, DataChannelMessage,
    DataMessage, Heartbeat, PublisherId, ReplayReply, ReplayRequest, RequestKind, WireError,
    HEARTBEAT_TOPIC,
};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Where a subscriber starts on a stream it has never seen (first epoch of a publisher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinPolicy {
    /// From the first message observed (no request).
    FromNow,
    /// From the oldest message the publisher still retains.
    FromOldest,
    /// From seq N.
    FromSeq(u64),
    /// The last N messages, then live.
    LastN(u64),
}

/// Subscriber tuning. Defaults follow the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberConfig {
    /// Default join policy (default [`JoinPolicy::FromNow`]).
    pub join_policy: JoinPolicy,
    /// Reorder window in messages (default 4096): seqs at or beyond `next + window` are
    /// dropped on arrival and requested later.
    pub reorder_window: u64,
    /// First request timeout (default 200 ms), doubling per attempt.
    pub request_timeout_ms: u64,
    /// Longest request timeout (default 2000 ms).
    pub max_request_timeout_ms: u64,
    /// Attempts per missing range before declaring it lost (default 5).
    pub max_attempts: u32,
    /// BUSY answers tolerated per request before they count as attempts (default 50).
    pub max_busy_retries: u32,
    /// Silence after which `PublisherLost` is emitted (default 5000 ms).
    pub publisher_timeout_ms: u64,
    /// Deliveries waiting for the application before `SlowConsumer` (default 10 000).
    pub slow_consumer_threshold: usize,
}

impl Default for SubscriberConfig {
    fn default() -> Self {
        SubscriberConfig {
            join_policy: JoinPolicy::FromNow,
            reorder_window: 4096,
            request_timeout_ms: 200,
            max_request_timeout_ms: 2000,
            max_attempts: 5,
            max_busy_retries: 50,
            publisher_timeout_ms: 5000,
            slow_consumer_threshold: 10_000,
        }
    }
}

/// A message delivered to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Publisher.
    pub publisher: PublisherId,
    /// Epoch.
    pub epoch: u64,
    /// Stream.
    pub stream: Bytes,
    /// Seq within (publisher, epoch, stream).
    pub seq: u64,
    /// Publisher timestamp (ms).
    pub timestamp_ms: u64,
    /// Payload frames.
    pub payload: Vec<Bytes>,
    /// True if it arrived as a retransmission.
    pub retransmitted: bool,
}

/// What [`Subscriber::poll_event`] returns: messages and in-band events, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The next message of a stream.
    Message(ReceivedMessage),
    /// Seqs `from..=to` of the stream are gone; the stream continues after them.
    UnrecoverableGap {
        /// Publisher.
        publisher: PublisherId,
        /// Epoch.
        epoch: u64,
        /// Stream.
        stream: Bytes,
        /// First lost seq.
        from: u64,
        /// Last lost seq.
        to: u64,
    },
    /// The publisher restarted with a new epoch; its streams start again at seq 1.
    PublisherRestarted {
        /// Publisher.
        publisher: PublisherId,
        /// Previous epoch.
        old_epoch: u64,
        /// New epoch.
        new_epoch: u64,
    },
    /// Nothing (data or heartbeat) heard from the publisher for `publisher_timeout_ms`.
    PublisherLost {
        /// Publisher.
        publisher: PublisherId,
        /// Its epoch.
        epoch: u64,
    },
    /// The application or the repair is not keeping up (queue or reorder window overflow).
    SlowConsumer {
        /// Publisher.
        publisher: PublisherId,
        /// Stream.
        stream: Bytes,
        /// Deliveries waiting in the queue at that moment.
        queued: usize,
    },
}

/// Phase of one stream machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamPhase {
    /// Waiting for the late-join answer.
    Joining,
    /// In order, nothing missing.
    Live,
    /// Something is missing (buffered out-of-order data or repairs in flight).
    Recovering,
}

/// Counters, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubscriberStats {
    /// Messages delivered.
    pub delivered: u64,
    /// Seqs reported lost.
    pub lost: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Replay requests produced.
    pub requests: u64,
    /// Messages dropped because they were beyond the reorder window.
    pub beyond_window: u64,
    /// Messages of an older epoch ignored.
    pub stale: u64,
    /// Messages that failed to decode.
    pub malformed: u64,
}

#[derive(Debug, Clone)]
struct Buffered {
    timestamp_ms: u64,
    payload: Vec<Bytes>,
    retransmitted: bool,
}

#[derive(Debug, Clone)]
struct Pending {
    /// Still-relevant part.
    from: u64,
    to: u64,
    /// As last requested (END/BUSY echo it).
    req_from: u64,
    req_to: u64,
    attempts: u32,
    busy: u32,
    deadline: u64,
    /// END arrived for it: re-request what is still missing at once.
    ended: bool,
}

#[derive(Debug)]
enum Phase {
    Joining {
        kind: RequestKind,
        attempts: u32,
        busy: u32,
        deadline: u64,
    },
    Active,
}

/// An [`Out`] over `$s`'s fields (a macro, not a method: the caller keeps borrowing
/// `$s.publishers` meanwhile, which a `&mut self` method would not allow).
macro_rules! out {
    ($s:ident) => {
        Out {
            cfg: &$s.config,
            ready: &mut $s.ready,
            outbox: &mut $s.outbox,
            stats: &mut $s.stats,
            slow: &mut $s.slow,
        }
    };
}

/// Outputs shared by the stream machines.
struct Out<'a> {
    cfg: &'a SubscriberConfig,
    ready: &'a mut VecDeque<Delivery>,
    outbox: &'a mut Vec<ReplayRequest>,
    stats: &'a mut SubscriberStats,
    slow: &'a mut bool,
}

impl Out<'_> {
    fn push(&mut self, d: Delivery, publisher: PublisherId, stream: &Bytes) {
        self.ready.push_back(d);
        if self.ready.len() > self.cfg.slow_consumer_threshold && !*self.slow {
            *self.slow = true;
            let queued = self.ready.len();
            self.ready.push_back(Delivery::SlowConsumer {
                publisher,
                stream: stream.clone(),
                queued,
            });
        }
    }

    fn timeout(&self, attempts: u32) -> u64 {
        let shift = attempts.saturating_sub(1).min(20);
        self.cfg
            .request_timeout_ms
            .saturating_mul(1u64 << shift)
            .min(
                self.cfg
                    .max_request_timeout_ms
                    .max(self.cfg.request_timeout_ms),
            )
    }
}

#[derive(Debug)]
struct StreamState {
    publisher: PublisherId,
    epoch: u64,
    name: Bytes,
    phase: Phase,
    /// Next seq to deliver (Active).
    next: u64,
    /// Highest seq known to exist.
    highest_seen: u64,
    buffer: BTreeMap<u64, Buffered>,
    /// Normalized (disjoint, non-adjacent) lost ranges at or above `next`.
    lost: BTreeMap<u64, u64>,
    pending: Vec<Pending>,
    /// Every seq in `[next, requested_upto]` is buffered, lost or covered by a pending.
    requested_upto: u64,
    overflow: bool,
    /// When the last retransmission of this stream arrived: while the publisher keeps
    /// replaying this stream, requests queued behind others are not timed out.
    last_progress: Option<u64>,
}

/// Total bytes of stream names [`intern`] keeps, process-wide.
const INTERN_MAX_BYTES: usize = 64 * 1024;

/// Interned stream names (leaked on purpose, bounded by [`INTERN_MAX_BYTES`]).
static INTERNED: std::sync::Mutex<(usize, std::collections::BTreeSet<&'static [u8]>)> =
    std::sync::Mutex::new((0, std::collections::BTreeSet::new()));

/// The stream name every delivery of a stream carries: a static [`Bytes`] (process-wide
/// interned), so that cloning it into each delivery on the subscriber's thread and dropping
/// it on the application's thread touch no reference count shared by the two threads
/// (measured on `rpub/tcp/64B`: the drop of the shared name was 45 % of the application
/// thread). Bounded: names beyond [`INTERN_MAX_BYTES`] in total are shared the usual way.
fn intern(name: &[u8]) -> Bytes {
    let Ok(mut table) = INTERNED.lock() else {
        return Bytes::copy_from_slice(name);
    };
    let (used, names) = &mut *table;
    if let Some(&s) = names.get(name) {
        return Bytes::from_static(s);
    }
    if *used + name.len() > INTERN_MAX_BYTES {
        return Bytes::copy_from_slice(name);
    }
    let s: &'static [u8] = Box::leak(name.to_vec().into_boxed_slice());
    *used += s.len();
    names.insert(s);
    Bytes::from_static(s)
}

impl StreamState {
    fn new(publisher: PublisherId, epoch: u64, name: Bytes) -> Self {
        StreamState {
            publisher,
            epoch,
            name,
            phase: Phase::Active,
            next: 1,
            highest_seen: 0,
            buffer: BTreeMap::new(),
            lost: BTreeMap::new(),
            pending: Vec::new(),
            requested_upto: 0,
            overflow: false,
            last_progress: None,
        }
    }

    fn phase(&self) -> StreamPhase {
        match self.phase {
            Phase::Joining { .. } => StreamPhase::Joining,
            Phase::Active if self.buffer.is_empty() && self.pending.is_empty() => {
                if self.highest_seen >= self.next {
                    StreamPhase::Recovering
                } else {
                    StreamPhase::Live
                }
            }
            Phase::Active => StreamPhase::Recovering,
        }
    }

    fn request(&self, kind: RequestKind, out: &mut Out<'_>) {
        out.stats.requests += 1;
        out.outbox.push(ReplayRequest {
            publisher: self.publisher,
            epoch: self.epoch,
            stream: self.name.clone(),
            kind,
        });
    }

    fn start_joining(&mut self, kind: RequestKind, now: u64, out: &mut Out<'_>) {
        self.phase = Phase::Joining {
            kind,
            attempts: 1,
            busy: 0,
            deadline: now.saturating_add(out.timeout(1)),
        };
        self.request(kind, out);
    }

    fn activate(&mut self, join_at: u64, now: u64, out: &mut Out<'_>) {
        self.phase = Phase::Active;
        self.next = join_at.max(1);
        self.requested_upto = self.next - 1;
        let keep = self.buffer.split_off(&self.next);
        self.buffer = keep;
        let end = self.next.saturating_add(out.cfg.reorder_window);
        let _beyond = self.buffer.split_off(&end);
        self.advance(now, out);
    }

    fn is_lost(&self, s: u64) -> bool {
        self.lost
            .range(..=s)
            .next_back()
            .is_some_and(|(_, &to)| to >= s)
    }

    fn insert_lost(&mut self, from: u64, to: u64) {
        let mut a = from.max(self.next);
        let mut b = to;
        if b < a {
            return;
        }
        if let Some((&pa, &pb)) = self.lost.range(..=a).next_back() {
            if pb.saturating_add(1) >= a {
                a = pa;
                b = b.max(pb);
                self.lost.remove(&pa);
            }
        }
        let succ: Vec<(u64, u64)> = self
            .lost
            .range(a..=b.saturating_add(1))
            .map(|(&x, &y)| (x, y))
            .collect();
        for (x, y) in succ {
            self.lost.remove(&x);
            b = b.max(y);
        }
        self.lost.insert(a, b);
    }

    fn missing_runs(&self, from: u64, to: u64) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut s = from;
        while s <= to {
            if !self.buffer.contains_key(&s) && !self.is_lost(s) {
                match runs.last_mut() {
                    Some(r) if r.1 + 1 == s => r.1 = s,
                    _ => runs.push((s, s)),
                }
            }
            if s == u64::MAX {
                break;
            }
            s += 1;
        }
        runs
    }

    /// Delivers what can be delivered, cleans up, and requests newly missing seqs.
    fn advance(&mut self, now: u64, out: &mut Out<'_>) {
        if !matches!(self.phase, Phase::Active) {
            return;
        }
        loop {
            if let Some(m) = self.buffer.remove(&self.next) {
                out.stats.delivered += 1;
                out.push(
                    Delivery::Message(ReceivedMessage {
                        publisher: self.publisher,
                        epoch: self.epoch,
                        stream: self.name.clone(),
                        seq: self.next,
                        timestamp_ms: m.timestamp_ms,
                        payload: m.payload,
                        retransmitted: m.retransmitted,
                    }),
                    self.publisher,
                    &self.name,
                );
                self.next = self.next.saturating_add(1);
                continue;
            }
            let covering = self
                .lost
                .range(..=self.next)
                .next_back()
                .map(|(&a, &b)| (a, b))
                .filter(|&(_, b)| b >= self.next);
            if let Some((a, b)) = covering {
                let mut end = b;
                if let Some((&k, _)) = self.buffer.range(self.next..).next() {
                    if k <= b {
                        end = k - 1;
                    }
                }
                let from = self.next;
                out.stats.lost = out.stats.lost.saturating_add(end - from + 1);
                out.push(
                    Delivery::UnrecoverableGap {
                        publisher: self.publisher,
                        epoch: self.epoch,
                        stream: self.name.clone(),
                        from,
                        to: end,
                    },
                    self.publisher,
                    &self.name,
                );
                if end == b {
                    self.lost.remove(&a);
                }
                self.next = end.saturating_add(1);
                self.highest_seen = self.highest_seen.max(end);
                continue;
            }
            break;
        }
        self.settle(now, out);
    }

    /// After the delivery point moved: cleans up what it passed and requests newly missing
    /// seqs.
    fn settle(&mut self, now: u64, out: &mut Out<'_>) {
        // Clean up what the delivery point has passed.
        while let Some((&a, &b)) = self.lost.iter().next() {
            if b < self.next {
                self.lost.remove(&a);
            } else {
                break;
            }
        }
        let next = self.next;
        self.pending.retain(|p| p.to >= next);
        for p in &mut self.pending {
            p.from = p.from.max(next);
        }
        self.requested_upto = self.requested_upto.max(next - 1);
        self.schedule_requests(now, out);
        if self.buffer.is_empty() && self.pending.is_empty() {
            self.overflow = false;
        }
    }

    fn window_end(&self, out: &Out<'_>) -> u64 {
        self.next
            .saturating_add(out.cfg.reorder_window.max(1))
            .saturating_sub(1)
    }

    fn schedule_requests(&mut self, now: u64, out: &mut Out<'_>) {
        let limit = self.highest_seen.min(self.window_end(out));
        if self.requested_upto >= limit {
            return;
        }
        let runs = self.missing_runs(self.requested_upto + 1, limit);
        self.requested_upto = limit;
        for (a, b) in runs {
            self.pending.push(Pending {
                from: a,
                to: b,
                req_from: a,
                req_to: b,
                attempts: 1,
                busy: 0,
                deadline: now.saturating_add(out.timeout(1)),
                ended: false,
            });
            self.request(RequestKind::Range { from: a, to: b }, out);
        }
    }

    fn on_message(&mut self, seq: u64, m: Buffered, now: u64, out: &mut Out<'_>) {
        if seq == 0 {
            out.stats.malformed += 1;
            return;
        }
        match self.phase {
            Phase::Joining { .. } => {
                self.highest_seen = self.highest_seen.max(seq);
                if self.buffer.contains_key(&seq) {
                    out.stats.duplicates += 1;
                    return;
                }
                if self.buffer.len() as u64 >= out.cfg.reorder_window.max(1) {
                    match self.buffer.keys().next_back().copied() {
                        Some(max) if max > seq => {
                            self.buffer.remove(&max);
                        }
                        _ => {
                            out.stats.beyond_window += 1;
                            return;
                        }
                    }
                }
                self.buffer.insert(seq, m);
            }
            Phase::Active => {
                if seq < self.next || self.buffer.contains_key(&seq) {
                    out.stats.duplicates += 1;
                    return;
                }
                self.highest_seen = self.highest_seen.max(seq);
                if seq > self.window_end(out) {
                    out.stats.beyond_window += 1;
                    if !self.overflow {
                        self.overflow = true;
                        let queued = out.ready.len();
                        out.ready.push_back(Delivery::SlowConsumer {
                            publisher: self.publisher,
                            stream: self.name.clone(),
                            queued,
                        });
                    }
                    self.schedule_requests(now, out);
                    return;
                }
                if m.retransmitted {
                    // The repair is progressing: do not time it out while data flows.
                    self.last_progress = Some(now);
                    for p in &mut self.pending {
                        if (p.from..=p.to).contains(&seq) {
                            p.deadline =
                                p.deadline.max(now.saturating_add(out.timeout(p.attempts)));
                        }
                    }
                }
                if seq == self.next && self.buffer.is_empty() && self.lost.is_empty() {
                    // In order with nothing buffered: what `advance` would do after a round
                    // trip through the reorder buffer.
                    out.stats.delivered += 1;
                    out.push(
                        Delivery::Message(ReceivedMessage {
                            publisher: self.publisher,
                            epoch: self.epoch,
                            stream: self.name.clone(),
                            seq,
                            timestamp_ms: m.timestamp_ms,
                            payload: m.payload,
                            retransmitted: m.retransmitted,
                        }),
                        self.publisher,
                        &self.name,
                    );
                    self.next = self.next.saturating_add(1);
                    self.settle(now, out);
                    return;
                }
                self.buffer.insert(seq, m);
                self.advance(now, out);
            }
        }
    }

    fn on_heartbeat(&mut self, newest: u64, oldest: u64, now: u64, out: &mut Out<'_>) {
        self.highest_seen = self.highest_seen.max(newest);
        if let Phase::Active = self.phase {
            if oldest > self.next {
                self.insert_lost(self.next, oldest - 1);
            }
            self.advance(now, out);
        }
    }

    fn on_gap(&mut self, from: u64, to: u64, now: u64, out: &mut Out<'_>) {
        if let Phase::Active = self.phase {
            // Only within the window (what can have been requested): keeps `lost` bounded.
            self.insert_lost(from, to.min(self.window_end(out)));
            self.advance(now, out);
        }
    }

    fn on_end(&mut self, from: u64, to: u64, now: u64, out: &mut Out<'_>) {
        let mut hit = false;
        for p in &mut self.pending {
            if p.req_from == from && p.req_to == to {
                p.deadline = now;
                p.ended = true;
                hit = true;
            }
        }
        if hit {
            self.poll(now, out);
        }
    }

    fn on_busy(&mut self, kind: RequestKind, retry_ms: u32, now: u64, out: &mut Out<'_>) {
        let max_busy = out.cfg.max_busy_retries;
        let deadline = now.saturating_add(u64::from(retry_ms).max(1));
        match (&mut self.phase, kind) {
            (
                Phase::Joining {
                    kind: k,
                    attempts,
                    busy,
                    deadline: d,
                },
                _,
            ) if *k == kind => {
                *busy += 1;
                if *busy > max_busy {
                    *attempts += 1;
                    *busy = 0;
                }
                *d = deadline;
            }
            (Phase::Active, RequestKind::Range { from, to }) => {
                for p in &mut self.pending {
                    if p.req_from == from && p.req_to == to {
                        p.busy += 1;
                        if p.busy > max_busy {
                            p.attempts += 1;
                            p.busy = 0;
                        }
                        p.deadline = deadline;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_join(&mut self, join_at: u64, newest: u64, now: u64, out: &mut Out<'_>) {
        if let Phase::Joining { .. } = self.phase {
            self.highest_seen = self.highest_seen.max(newest);
            self.activate(join_at, now, out);
        }
    }

    fn poll(&mut self, now: u64, out: &mut Out<'_>) {
        if let Phase::Joining {
            kind,
            attempts,
            deadline,
            ..
        } = self.phase
        {
            if now >= deadline {
                if attempts >= out.cfg.max_attempts {
                    // Fall back to FROM_NOW: the first seq observed.
                    let j = self
                        .buffer
                        .keys()
                        .next()
                        .copied()
                        .unwrap_or(self.highest_seen.saturating_add(1));
                    log::debug!("rpub: late join of {:?} timed out, from now", self.name);
                    self.activate(j, now, out);
                } else {
                    self.phase = Phase::Joining {
                        kind,
                        attempts: attempts + 1,
                        busy: 0,
                        deadline: now.saturating_add(out.timeout(attempts + 1)),
                    };
                    self.request(kind, out);
                }
            }
            return;
        }
        if !self.pending.iter().any(|p| now >= p.deadline) {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        let mut new_lost = Vec::new();
        let mut resend = Vec::new();
        let last_progress = self.last_progress;
        pending.retain_mut(|p| {
            if now < p.deadline {
                return true;
            }
            // The publisher is still replaying this stream (its jobs are served round-robin,
            // so this request may simply be queued): wait a full timeout after the last
            // retransmission before spending an attempt.
            if let Some(t) = last_progress.filter(|_| !p.ended) {
                let floor = t.saturating_add(out.timeout(p.attempts));
                if now < floor {
                    p.deadline = floor;
                    return true;
                }
            }
            let runs = self.missing_runs(p.from.max(self.next), p.to);
            let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
                return false;
            };
            let (a, b) = (first.0, last.1);
            if p.attempts >= out.cfg.max_attempts {
                new_lost.push((a, b));
                return false;
            }
            p.attempts += 1;
            p.busy = 0;
            p.ended = false;
            p.from = a;
            p.to = b;
            p.req_from = a;
            p.req_to = b;
            p.deadline = now.saturating_add(out.timeout(p.attempts));
            resend.push((a, b));
            true
        });
        self.pending = pending;
        for (a, b) in resend {
            self.request(RequestKind::Range { from: a, to: b }, out);
        }
        if !new_lost.is_empty() {
            for (a, b) in new_lost {
                self.insert_lost(a, b);
            }
            self.advance(now, out);
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        match self.phase {
            Phase::Joining { deadline, .. } => Some(deadline),
            Phase::Active => self.pending.iter().map(|p| p.deadline).min(),
        }
    }

    /// The epoch is over: deliver what is buffered, report everything else up to the highest
    /// seq seen as lost.
    fn flush(&mut self, now: u64, out: &mut Out<'_>) {
        if let Phase::Active = self.phase {
            if self.highest_seen >= self.next {
                self.insert_lost(self.next, self.highest_seen);
            }
            self.pending.clear();
            self.advance(now, out);
        }
    }
}

#[derive(Debug)]
struct PublisherState {
    epoch: u64,
    last_heard: u64,
    lost_reported: bool,
    /// Streams of this epoch start at seq 1 (a restart was observed).
    from_start: bool,
    streams: BTreeMap<Bytes, StreamState>,
}

/// The sans-IO subscriber.
#[derive(Debug)]
pub struct Subscriber {
    config: SubscriberConfig,
    subscriptions: Vec<(Bytes, JoinPolicy)>,
    publishers: BTreeMap<PublisherId, PublisherState>,
    ready: VecDeque<Delivery>,
    outbox: Vec<ReplayRequest>,
    /// Last delivered (taken by the application) per (publisher, stream) with its epoch.
    cursor: HashMap<(PublisherId, Bytes), (u64, u64)>,
    /// The newest cursor entry, kept out of `cursor` while deliveries come from the same
    /// (publisher, stream): taking a delivery costs a comparison, not a hash-map insert.
    /// Moved into `cursor` (`settle_cursor`) before `cursor` is read.
    cursor_recent: Option<((PublisherId, Bytes), (u64, u64))>,
    stats: SubscriberStats,
    slow: bool,
}

impl Subscriber {
    /// A subscriber with no subscriptions yet (like a SUB socket, it tracks nothing until
    /// [`Subscriber::subscribe`] is called).
    pub fn new(config: SubscriberConfig) -> Self {
        Subscriber {
            config,
            subscriptions: Vec::new(),
            publishers: BTreeMap::new(),
            ready: VecDeque::new(),
            outbox: Vec::new(),
            cursor: HashMap::new(),
            cursor_recent: None,
            stats: SubscriberStats::default(),
            slow: false,
        }
    }

    /// A subscriber resuming from a durable cursor (see [`Subscriber::cursor`]): streams in
    /// it resume at `last_delivered + 1` of the same epoch, or at seq 1 of a newer epoch
    /// (with `PublisherRestarted`).
    pub fn with_cursor(config: SubscriberConfig, cursor: Vec<CursorEntry>) -> Self {
        let mut s = Subscriber::new(config);
        for e in cursor {
            s.cursor
                .insert((e.publisher, e.stream), (e.epoch, e.last_delivered));
        }
        s
    }

    /// Subscribes to streams whose name starts with `prefix`, with the default join policy.
    pub fn subscribe(&mut self, prefix: &[u8]) {
        let p = self.config.join_policy;
        self.subscribe_with(prefix, p);
    }

    /// Subscribes to a prefix with a specific join policy (the longest matching prefix wins).
    pub fn subscribe_with(&mut self, prefix: &[u8], policy: JoinPolicy) {
        self.subscriptions.retain(|(p, _)| p[..] != *prefix);
        self.subscriptions
            .push((Bytes::copy_from_slice(prefix), policy));
    }

    /// Removes a subscription and forgets the streams no longer covered.
    pub fn unsubscribe(&mut self, prefix: &[u8]) {
        self.subscriptions.retain(|(p, _)| p[..] != *prefix);
        let subs = self.subscriptions.clone();
        for ps in self.publishers.values_mut() {
            ps.streams
                .retain(|name, _| subs.iter().any(|(p, _)| name.starts_with(p)));
        }
    }

    fn policy_for(&self, stream: &[u8]) -> Option<JoinPolicy> {
        self.subscriptions
            .iter()
            .filter(|(p, _)| stream.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, pol)| *pol)
    }

    /// Counters.
    pub fn stats(&self) -> SubscriberStats {
        self.stats
    }

    /// Phase of a stream of a publisher's current epoch, if tracked.
    pub fn stream_phase(&self, publisher: &PublisherId, stream: &[u8]) -> Option<StreamPhase> {
        self.publishers
            .get(publisher)?
            .streams
            .get(stream)
            .map(StreamState::phase)
    }

    /// Forgets a publisher entirely (e.g. after `PublisherLost` and discovery says it left).
    pub fn forget_publisher(&mut self, publisher: &PublisherId) {
        self.publishers.remove(publisher);
    }

    /// Decodes and handles a message from the SUB socket (DATA or HEARTBEAT).
    pub fn handle_data(&mut self, frames: &[Bytes], now_ms: u64) -> Result<(), WireError> {
        match decode_data_channel(frames) {
            Ok(DataChannelMessage::Data(m)) => {
                self.handle_data_message(&m, now_ms);
                Ok(())
            }
            Ok(DataChannelMessage::Heartbeat(h)) => {
                self.handle_heartbeat(&h, now_ms);
                Ok(())
            }
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// [`Subscriber::handle_data`] on frames it takes over (the live path of the bus: the
    /// payload keeps the received vector).
    pub fn handle_data_owned(&mut self, frames: Vec<Bytes>, now_ms: u64) -> Result<(), WireError> {
        if frames.first().is_some_and(|f| f[..] == *HEARTBEAT_TOPIC) {
            return self.handle_data(&frames, now_ms);
        }
        match DataMessage::decode_owned(frames) {
            Ok(m) => {
                self.ingest_parts(&m.stream, m.header, m.payload, now_ms, false);
                Ok(())
            }
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// Handles a message received on the SUB socket given as its first frame (the stream, or
    /// the heartbeat topic) and the frames after it, which it takes over: the live path of
    /// the bus (the stream frame is only looked at, never turned into [`Bytes`]).
    pub fn handle_data_frames(
        &mut self,
        stream: &[u8],
        rest: Vec<Bytes>,
        now_ms: u64,
    ) -> Result<(), WireError> {
        if stream == HEARTBEAT_TOPIC {
            let mut frames = Vec::with_capacity(1 + rest.len());
            frames.push(Bytes::copy_from_slice(stream));
            frames.extend(rest);
            return self.handle_data(&frames, now_ms);
        }
        match validate_stream_name(stream).and_then(|()| DataMessage::decode_rest(rest)) {
            Ok((header, payload)) => {
                self.ingest_parts(stream, header, payload, now_ms, false);
                Ok(())
            }
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }

    fn set_cursor(&mut self, publisher: PublisherId, stream: &Bytes, epoch: u64, last: u64) {
        if let Some(((p, s), v)) = self.cursor_recent.as_mut() {
            if *p == publisher && s[..] == stream[..] {
                *v = (epoch, last);
                return;
            }
        }
        self.settle_cursor();
        self.cursor_recent = Some(((publisher, stream.clone()), (epoch, last)));
    }

    fn settle_cursor(&mut self) {
        if let Some((k, v)) = self.cursor_recent.take() {
            self.cursor.insert(k, v);
        }
    }

    /// Makes sure the publisher state exists for `epoch`; returns false if `epoch` is stale.
    fn touch_publisher(&mut self, publisher: PublisherId, epoch: u64, now: u64) -> bool {
        let mut restarted_from = None;
        match self.publishers.get_mut(&publisher) {
            None => {
                self.settle_cursor();
                // A publisher we have a cursor for, seen with a newer epoch, restarted while
                // we were away.
                let older = self
                    .cursor
                    .iter()
                    .filter(|((p, _), _)| *p == publisher)
                    .map(|(_, &(e, _))| e)
                    .filter(|&e| e < epoch)
                    .max();
                self.publishers.insert(
                    publisher,
                    PublisherState {
                        epoch,
                        last_heard: now,
                        lost_reported: false,
                        from_start: older.is_some(),
                        streams: BTreeMap::new(),
                    },
                );
                if let Some(old) = older {
                    self.ready.push_back(Delivery::PublisherRestarted {
                        publisher,
                        old_epoch: old,
                        new_epoch: epoch,
                    });
                }
                return true;
            }
            Some(ps) if epoch < ps.epoch => {
                self.stats.stale += 1;
                return false;
            }
            Some(ps) if epoch > ps.epoch => restarted_from = Some(ps.epoch),
            Some(ps) => {
                ps.last_heard = ps.last_heard.max(now);
                ps.lost_reported = false;
            }
        }
        if let Some(old) = restarted_from {
            let Some(ps) = self.publishers.get_mut(&publisher) else {
                return false;
            };
            let mut out = out!(self);
            for st in ps.streams.values_mut() {
                st.flush(now, &mut out);
            }
            ps.streams.clear();
            ps.epoch = epoch;
            ps.from_start = true;
            ps.last_heard = now;
            ps.lost_reported = false;
            out.ready.push_back(Delivery::PublisherRestarted {
                publisher,
                old_epoch: old,
                new_epoch: epoch,
            });
            // Requests for the old epoch still queued are useless now.
            self.outbox
                .retain(|r| !(r.publisher == publisher && r.epoch < epoch));
        }
        true
    }

    /// Returns the stream machine, creating it (and starting its join) if subscribed.
    /// `first_seen`: Some(seq) for DATA, None for a heartbeat with `newest`.
    fn ensure_stream(
        &mut self,
        publisher: PublisherId,
        epoch: u64,
        stream: &[u8],
        first_seq: Option<u64>,
        newest: u64,
        now: u64,
    ) -> bool {
        let Some(ps) = self.publishers.get(&publisher) else {
            return false;
        };
        if ps.streams.contains_key(stream) {
            return true;
        }
        let Some(policy) = self.policy_for(stream) else {
            return false;
        };
        let from_start = ps.from_start;
        self.settle_cursor();
        let resume = match self
            .cursor
            .get(&(publisher, Bytes::copy_from_slice(stream)))
        {
            Some(&(e, last)) if e == epoch => Some(last.saturating_add(1)),
            Some(&(e, _)) if e < epoch => Some(1),
            _ if from_start => Some(1),
            _ => None,
        };
        let name = intern(stream);
        let mut st = StreamState::new(publisher, epoch, name.clone());
        let mut out = out!(self);
        let start = match (resume, policy) {
            (Some(j), _) => Ok(j),
            (None, JoinPolicy::FromNow) => Ok(match first_seq {
                Some(s) => s,
                None => newest.saturating_add(1),
            }),
            (None, JoinPolicy::FromOldest) => Err(RequestKind::FromOldest),
            (None, JoinPolicy::FromSeq(n)) => Ok(n.max(1)),
            (None, JoinPolicy::LastN(n)) => Err(RequestKind::LastN(n)),
        };
        match start {
            Ok(j) => {
                st.highest_seen = newest;
                st.activate(j, now, &mut out);
            }
            Err(kind) => {
                st.highest_seen = newest;
                st.start_joining(kind, now, &mut out);
            }
        }
        if let Some(ps) = self.publishers.get_mut(&publisher) {
            ps.streams.insert(name, st);
        }
        true
    }

    fn with_stream<F>(&mut self, publisher: &PublisherId, epoch: u64, stream: &[u8], f: F)
    where
        F: FnOnce(&mut StreamState, &mut Out<'_>),
    {
        let Some(ps) = self.publishers.get_mut(publisher) else {
            return;
        };
        if ps.epoch != epoch {
            return;
        }
        let Some(st) = ps.streams.get_mut(stream) else {
            return;
        };
        let mut out = out!(self);
        f(st, &mut out);
    }

    fn ingest(&mut self, m: &DataMessage, now: u64, from_replay: bool) {
        self.ingest_parts(&m.stream, m.header, m.payload.clone(), now, from_replay);
    }

    fn ingest_parts(
        &mut self,
        stream: &[u8],
        h: super::wire::DataHeader,
        payload: Vec<Bytes>,
        now: u64,
        from_replay: bool,
    ) {
        if from_replay {
            // Replies do not prove liveness and must not create state.
            match self.publishers.get(&h.publisher) {
                Some(ps) if ps.epoch == h.epoch => {}
                Some(ps) if h.epoch < ps.epoch => {
                    self.stats.stale += 1;
                    return;
                }
                _ => return,
            }
        } else {
            // Live DATA of a known publisher, epoch and stream (the common case): what
            // `touch_publisher`, `ensure_stream` and `with_stream` then do, with one lookup
            // of each map instead of five.
            if let Some(ps) = self.publishers.get_mut(&h.publisher) {
                if ps.epoch == h.epoch {
                    if let Some(st) = ps.streams.get_mut(stream) {
                        ps.last_heard = ps.last_heard.max(now);
                        ps.lost_reported = false;
                        let b = Buffered {
                            timestamp_ms: h.timestamp_ms,
                            payload,
                            retransmitted: h.is_retransmission(),
                        };
                        let mut out = out!(self);
                        st.on_message(h.seq, b, now, &mut out);
                        return;
                    }
                }
            }
            if !self.touch_publisher(h.publisher, h.epoch, now) {
                return;
            }
            if !self.ensure_stream(h.publisher, h.epoch, stream, Some(h.seq), 0, now) {
                return;
            }
        }
        let b = Buffered {
            timestamp_ms: h.timestamp_ms,
            payload,
            retransmitted: h.is_retransmission() || from_replay,
        };
        self.with_stream(&h.publisher, h.epoch, stream, |st, out| {
            st.on_message(h.seq, b, now, out)
        });
    }

    /// Handles a decoded DATA message from the SUB socket.
    pub fn handle_data_message(&mut self, m: &DataMessage, now_ms: u64) {
        self.ingest(m, now_ms, false);
    }

    /// Handles a decoded HEARTBEAT.
    pub fn handle_heartbeat(&mut self, hb: &Heartbeat, now_ms: u64) {
        if !self.touch_publisher(hb.publisher, hb.epoch, now_ms) {
            return;
        }
        for mark in &hb.streams {
            if !self.ensure_stream(
                hb.publisher,
                hb.epoch,
                &mark.stream,
                None,
                mark.newest,
                now_ms,
            ) {
                continue;
            }
            self.with_stream(&hb.publisher, hb.epoch, &mark.stream, |st, out| {
                st.on_heartbeat(mark.newest, mark.oldest, now_ms, out)
            });
        }
    }

    /// Decodes and handles a message received on the DEALER (replay channel).
    pub fn handle_replay_reply(&mut self, frames: &[Bytes], now_ms: u64) -> Result<(), WireError> {
        match ReplayReply::decode(frames) {
            Ok(r) => {
                self.handle_reply(&r, now_ms);
                Ok(())
            }
            Err(e) => {
                self.stats.malformed += 1;
                Err(e)
            }
        }
    }

    /// Handles a decoded replay reply.
    pub fn handle_reply(&mut self, r: &ReplayReply, now_ms: u64) {
        match r {
            ReplayReply::Retransmission(m) => self.ingest(m, now_ms, true),
            ReplayReply::Join {
                publisher,
                epoch,
                stream,
                join_at,
                newest,
                ..
            } => self.with_stream(publisher, *epoch, stream, |st, out| {
                st.on_join(*join_at, *newest, now_ms, out)
            }),
            ReplayReply::End {
                publisher,
                epoch,
                stream,
                from,
                to,
            } => self.with_stream(publisher, *epoch, stream, |st, out| {
                st.on_end(*from, *to, now_ms, out)
            }),
            ReplayReply::Gap {
                publisher,
                epoch,
                stream,
                from,
                to,
            } => self.with_stream(publisher, *epoch, stream, |st, out| {
                st.on_gap(*from, *to, now_ms, out)
            }),
            ReplayReply::Busy {
                request,
                retry_after_ms,
            } => self.with_stream(
                &request.publisher,
                request.epoch,
                &request.stream,
                |st, out| st.on_busy(request.kind, *retry_after_ms, now_ms, out),
            ),
        }
    }

    /// Runs timers (request retries, join retries, publisher liveness) and returns every
    /// replay request to send now (including those produced by earlier `handle_*` calls).
    pub fn poll_timers(&mut self, now_ms: u64) -> Vec<ReplayRequest> {
        let mut out = out!(self);
        for (&id, ps) in self.publishers.iter_mut() {
            if !ps.lost_reported
                && now_ms.saturating_sub(ps.last_heard) > out.cfg.publisher_timeout_ms
            {
                ps.lost_reported = true;
                out.ready.push_back(Delivery::PublisherLost {
                    publisher: id,
                    epoch: ps.epoch,
                });
            }
            for st in ps.streams.values_mut() {
                st.poll(now_ms, &mut out);
            }
        }
        std::mem::take(&mut self.outbox)
    }

    /// The earliest time `poll_timers` has work to do (None: only incoming messages matter).
    pub fn next_timer_at(&self) -> Option<u64> {
        if !self.outbox.is_empty() {
            return Some(0);
        }
        let mut t: Option<u64> = None;
        for ps in self.publishers.values() {
            if !ps.lost_reported {
                let d = ps
                    .last_heard
                    .saturating_add(self.config.publisher_timeout_ms)
                    .saturating_add(1);
                t = Some(t.map_or(d, |x| x.min(d)));
            }
            for st in ps.streams.values() {
                if let Some(d) = st.next_deadline() {
                    t = Some(t.map_or(d, |x| x.min(d)));
                }
            }
        }
        t
    }

    /// The next delivery or event for the application, in order. Taking a message or a gap
    /// advances the durable cursor.
    pub fn poll_event(&mut self) -> Option<Delivery> {
        let d = self.ready.pop_front()?;
        match &d {
            Delivery::Message(m) => self.set_cursor(m.publisher, &m.stream, m.epoch, m.seq),
            Delivery::UnrecoverableGap {
                publisher,
                epoch,
                stream,
                to,
                ..
            } => self.set_cursor(*publisher, stream, *epoch, *to),
            _ => {}
        }
        if self.slow && self.ready.len() <= self.config.slow_consumer_threshold / 2 {
            self.slow = false;
        }
        Some(d)
    }

    /// Number of deliveries waiting for [`Subscriber::poll_event`].
    pub fn queued(&self) -> usize {
        self.ready.len()
    }

    /// The durable cursor: last delivered seq per (publisher, epoch, stream), sorted.
    pub fn cursor(&self) -> Vec<CursorEntry> {
        let recent = self.cursor_recent.as_ref();
        let mut v: Vec<CursorEntry> = self
            .cursor
            .iter()
            .filter(|(k, _)| recent.is_none_or(|(rk, _)| rk != *k))
            .chain(recent.map(|(k, v)| (k, v)))
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

    /// The durable cursor, serialized (spec section 8.1).
    pub fn encode_cursor(&self) -> Result<Bytes, WireError> {
        encode_cursor(&self.cursor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpub::publisher::{Publisher, PublisherConfig};
    use crate::rpub::retention::{RetentionLimits, RetentionStore};
    use crate::rpub::wire::{decode_cursor, Id128};

    /// `handle_data_frames` (the bus's live path) takes DATA of both layouts (§5.1, §5.1.1),
    /// heartbeats, and counts what does not decode as malformed.
    #[test]
    fn handle_data_frames_both_layouts_and_heartbeats() {
        for version in [1u8, 2] {
            let mut p = Publisher::with_ring(
                Id128([3; 16]),
                1,
                PublisherConfig {
                    data_version: version,
                    ..Default::default()
                },
                RetentionLimits::default(),
            );
            let mut sub = Subscriber::new(SubscriberConfig {
                join_policy: JoinPolicy::FromSeq(1),
                ..Default::default()
            });
            sub.subscribe(b"s");
            for i in 0..3u8 {
                let mut f = p.publish(b"s", Bytes::from(vec![i; 5]), 1).unwrap();
                let stream = f.remove(0);
                sub.handle_data_frames(&stream, f, 1).unwrap();
            }
            let mut hb = p.heartbeat(2).remove(0);
            let topic = hb.remove(0);
            sub.handle_data_frames(&topic, hb, 2).unwrap();
            assert!(sub.handle_data_frames(b"s", Vec::new(), 2).is_err());
            assert!(sub
                .handle_data_frames(b"s", vec![Bytes::from_static(b"RP")], 2)
                .is_err());
            assert_eq!(sub.stats().malformed, 2);
            let got: Vec<(u64, Vec<Bytes>)> = std::iter::from_fn(|| sub.poll_event())
                .filter_map(|d| match d {
                    Delivery::Message(m) => Some((m.seq, m.payload)),
                    _ => None,
                })
                .collect();
            let want: Vec<(u64, Vec<Bytes>)> = (0..3u8)
                .map(|i| (u64::from(i) + 1, vec![Bytes::from(vec![i; 5])]))
                .collect();
            assert_eq!(got, want, "version {version}");
        }
    }

    /// Deliveries of a stream share one interned name: equal bytes, one static copy.
    #[test]
    fn stream_names_are_interned() {
        let a = intern(b"interned-name");
        let b = intern(&Bytes::copy_from_slice(b"interned-name"));
        assert_eq!(a, b);
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_ne!(intern(b"interned-other").as_ptr(), a.as_ptr());
    }

    /// xorshift64* PRNG: deterministic, dependency-free.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// True with probability ppm / 1e6.
        fn chance(&mut self, ppm: u64) -> bool {
            self.next() % 1_000_000 < ppm
        }
    }

    #[derive(Clone, Copy, Default)]
    struct NetCfg {
        drop_ppm: u64,
        burst_ppm: u64,
        burst_len: usize,
        reorder_ppm: u64,
        reorder_max: u64,
        replay_drop_ppm: u64,
    }

    type Queue<T> = BTreeMap<(u64, u64), T>;

    /// One subscriber and several publishers joined by a lossy in-memory network. Data and
    /// heartbeats (PUB→SUB) suffer loss, bursts and reordering; the replay channel
    /// (DEALER↔ROUTER) is ordered, with optional loss.
    struct Sim {
        t: u64,
        rng: Rng,
        net: NetCfg,
        pubs: Vec<Publisher>,
        /// Per publisher: data channel cut (outage) and remaining burst.
        cut: Vec<bool>,
        burst_left: Vec<usize>,
        sub: Subscriber,
        order: u64,
        data: Queue<Vec<Bytes>>,
        to_pub: Queue<(usize, ReplayRequest)>,
        to_sub: Queue<Vec<Bytes>>,
        budget: usize,
        events: Vec<(u64, Delivery)>,
        joins: Vec<ReplayReply>,
        published: u64,
    }

    impl Sim {
        fn new(n_pubs: usize, limits: RetentionLimits, sub: Subscriber, net: NetCfg) -> Sim {
            let pubs = (0..n_pubs)
                .map(|i| {
                    Publisher::with_ring(
                        Id128([i as u8 + 1; 16]),
                        100 + i as u64,
                        PublisherConfig::default(),
                        limits,
                    )
                })
                .collect();
            Sim {
                t: 0,
                rng: Rng(0x1234_5678_9abc_def1),
                net,
                pubs,
                cut: vec![false; n_pubs],
                burst_left: vec![0; n_pubs],
                sub,
                order: 0,
                data: BTreeMap::new(),
                to_pub: BTreeMap::new(),
                to_sub: BTreeMap::new(),
                budget: 256,
                events: Vec::new(),
                joins: Vec::new(),
                published: 0,
            }
        }

        fn key(&mut self, at: u64) -> (u64, u64) {
            self.order += 1;
            (at, self.order)
        }

        /// Sends on the data channel of publisher `p`, through the lossy network.
        fn send_data(&mut self, p: usize, frames: Vec<Bytes>) {
            if self.cut[p] {
                return;
            }
            if self.burst_left[p] > 0 {
                self.burst_left[p] -= 1;
                return;
            }
            if self.net.burst_len > 0 && self.rng.chance(self.net.burst_ppm) {
                self.burst_left[p] = self.net.burst_len - 1;
                return;
            }
            if self.rng.chance(self.net.drop_ppm) {
                return;
            }
            let mut at = self.t + 1;
            if self.net.reorder_max > 0 && self.rng.chance(self.net.reorder_ppm) {
                at += 1 + self.rng.next() % self.net.reorder_max;
            }
            let k = self.key(at);
            self.data.insert(k, frames);
        }

        fn publish(&mut self, p: usize, stream: &[u8]) {
            let payload = Bytes::from(format!("{}", self.published));
            self.published += 1;
            let t = self.t;
            let f = self.pubs[p].publish(stream, payload, t).unwrap();
            self.send_data(p, f);
        }

        fn due<T>(q: &mut Queue<T>, t: u64) -> Vec<T> {
            let later = q.split_off(&(t + 1, 0));
            let now = std::mem::replace(q, later);
            now.into_values().collect()
        }

        fn tick(&mut self) {
            let t = self.t;
            for p in 0..self.pubs.len() {
                for hb in self.pubs[p].poll_heartbeat(t) {
                    self.send_data(p, hb);
                }
            }
            for f in Self::due(&mut self.data, t) {
                self.sub.handle_data(&f, t).unwrap();
            }
            for (p, req) in Self::due(&mut self.to_pub, t) {
                for f in self.pubs[p].handle_replay_request(Bytes::from_static(b"S"), &req, t) {
                    let k = self.key(t + 1);
                    self.to_sub.insert(k, f);
                }
            }
            for p in 0..self.pubs.len() {
                for (_peer, f) in self.pubs[p].poll_replay(t, self.budget) {
                    if self.rng.chance(self.net.replay_drop_ppm) {
                        continue;
                    }
                    let k = self.key(t + 1);
                    self.to_sub.insert(k, f);
                }
            }
            for f in Self::due(&mut self.to_sub, t) {
                let r = ReplayReply::decode(&f).unwrap();
                if matches!(r, ReplayReply::Join { .. }) {
                    self.joins.push(r.clone());
                }
                self.sub.handle_reply(&r, t);
            }
            for req in self.sub.poll_timers(t) {
                let p = self
                    .pubs
                    .iter()
                    .position(|x| x.id() == req.publisher)
                    .unwrap();
                let k = self.key(t + 1);
                self.to_pub.insert(k, (p, req));
            }
            while let Some(d) = self.sub.poll_event() {
                self.events.push((t, d));
            }
            self.t += 1;
        }

        fn run_until(&mut self, t_end: u64) {
            while self.t < t_end {
                self.tick();
            }
        }
    }

    /// Checks the invariant for one stream: from `join_at`, messages and gaps cover every
    /// seq up to `newest` exactly once, in order. Returns (delivered, lost).
    fn check_stream(
        events: &[(u64, Delivery)],
        publisher: PublisherId,
        stream: &[u8],
        join_at: u64,
        newest: u64,
    ) -> (u64, u64) {
        let mut expect = join_at;
        let (mut delivered, mut lost) = (0, 0);
        for (_, d) in events {
            match d {
                Delivery::Message(m) if m.publisher == publisher && m.stream == stream => {
                    assert_eq!(m.seq, expect, "out of order/duplicate on {stream:?}");
                    expect += 1;
                    delivered += 1;
                }
                Delivery::UnrecoverableGap {
                    publisher: p,
                    stream: s,
                    from,
                    to,
                    ..
                } if *p == publisher && s == stream => {
                    assert_eq!(*from, expect, "gap not at the delivery point");
                    assert!(to >= from);
                    lost += to - from + 1;
                    expect = to + 1;
                }
                _ => {}
            }
        }
        assert_eq!(expect, newest + 1, "stream {stream:?} incomplete");
        assert_eq!(delivered + lost, newest + 1 - join_at);
        (delivered, lost)
    }

    fn sub_all(policy: JoinPolicy) -> Subscriber {
        let mut s = Subscriber::new(SubscriberConfig {
            join_policy: policy,
            ..Default::default()
        });
        s.subscribe(b"");
        s
    }

    fn lossy_run(net: NetCfg, seed: u64) -> (u64, u64) {
        let mut sim = Sim::new(
            1,
            RetentionLimits::default(),
            sub_all(JoinPolicy::FromSeq(1)),
            net,
        );
        sim.rng = Rng(seed);
        let streams: [&[u8]; 3] = [b"a", b"b/x", b"b/y"];
        while sim.t < 4000 {
            for _ in 0..3 {
                let s = streams[(sim.rng.next() % 3) as usize];
                sim.publish(0, s);
            }
            sim.tick();
        }
        sim.burst_left = vec![0];
        sim.run_until(12_000);
        let id = sim.pubs[0].id();
        let (mut d, mut l) = (0, 0);
        for s in streams {
            let n = sim.pubs[0].newest(s);
            let (dd, ll) = check_stream(&sim.events, id, s, 1, n);
            d += dd;
            l += ll;
        }
        assert_eq!(d + l, 12_000);
        // The network did lose data, and it was repaired.
        assert!(sim.sub.stats().requests > 0);
        assert!(sim
            .events
            .iter()
            .any(|(_, e)| matches!(e, Delivery::Message(m) if m.retransmitted)));
        (d, l)
    }

    #[test]
    fn sim_loss_0_1_percent() {
        let (_, lost) = lossy_run(
            NetCfg {
                drop_ppm: 1_000,
                ..Default::default()
            },
            1,
        );
        assert_eq!(lost, 0);
    }

    #[test]
    fn sim_loss_1_percent_with_reorder() {
        let (_, lost) = lossy_run(
            NetCfg {
                drop_ppm: 10_000,
                reorder_ppm: 20_000,
                reorder_max: 5,
                ..Default::default()
            },
            2,
        );
        assert_eq!(lost, 0);
    }

    #[test]
    fn sim_loss_5_percent_with_reorder_and_replay_loss() {
        let (_, lost) = lossy_run(
            NetCfg {
                drop_ppm: 50_000,
                reorder_ppm: 50_000,
                reorder_max: 10,
                replay_drop_ppm: 10_000,
                ..Default::default()
            },
            3,
        );
        assert_eq!(lost, 0);
    }

    #[test]
    fn sim_bursts_of_100() {
        let (_, lost) = lossy_run(
            NetCfg {
                burst_ppm: 2_000,
                burst_len: 100,
                drop_ppm: 1_000,
                ..Default::default()
            },
            4,
        );
        assert_eq!(lost, 0);
    }

    /// Loss on one publisher (including a long outage) never delays the other two.
    #[test]
    fn three_publishers_loss_on_one_never_stalls_others() {
        let mut sim = Sim::new(
            3,
            RetentionLimits::default(),
            sub_all(JoinPolicy::FromSeq(1)),
            NetCfg::default(),
        );
        let mut sent_at: HashMap<(usize, u64), u64> = HashMap::new();
        while sim.t < 3000 {
            // Publisher 0 loses 20 % and is cut off entirely between 1000 and 1500 ms.
            sim.cut[0] = (1000..1500).contains(&sim.t);
            for p in 0..3 {
                let seq = sim.pubs[p].newest(b"s") + 1;
                sent_at.insert((p, seq), sim.t);
                let payload = Bytes::new();
                let t = sim.t;
                let f = sim.pubs[p].publish(b"s", payload, t).unwrap();
                if p == 0 && sim.rng.chance(200_000) {
                    continue;
                }
                sim.send_data(p, f);
            }
            sim.tick();
        }
        sim.run_until(8000);
        for p in 0..3 {
            let id = sim.pubs[p].id();
            let (_, lost) = check_stream(&sim.events, id, b"s", 1, 3000);
            assert_eq!(lost, 0);
        }
        // Publishers 1 and 2: every message is delivered in the very tick it arrives.
        let mut recovering_seen = false;
        for (t, d) in &sim.events {
            if let Delivery::Message(m) = d {
                let p = (m.publisher.0[0] - 1) as usize;
                let lat = t - sent_at[&(p, m.seq)];
                // The network takes 1 ms.
                if p == 0 {
                    recovering_seen |= lat > 1;
                } else {
                    assert_eq!(lat, 1, "publisher {p} stalled at seq {}", m.seq);
                }
            }
        }
        assert!(recovering_seen);
    }

    /// An outage longer than retention: exactly one UnrecoverableGap with the exact range.
    #[test]
    fn outage_longer_than_retention_reports_one_exact_gap() {
        let limits = RetentionLimits {
            max_messages: 100,
            ..Default::default()
        };
        let mut sim = Sim::new(
            1,
            limits,
            sub_all(JoinPolicy::FromSeq(1)),
            NetCfg::default(),
        );
        for _ in 0..50 {
            sim.publish(0, b"s");
            sim.tick();
        }
        sim.cut[0] = true;
        for _ in 0..450 {
            sim.publish(0, b"s");
            sim.tick();
        }
        sim.cut[0] = false;
        sim.publish(0, b"s"); // seq 501: retained now 402..=501
        sim.run_until(3000);
        let id = sim.pubs[0].id();
        let (delivered, lost) = check_stream(&sim.events, id, b"s", 1, 501);
        assert_eq!((delivered, lost), (50 + 100, 351));
        let gaps: Vec<_> = sim
            .events
            .iter()
            .filter_map(|(_, d)| match d {
                Delivery::UnrecoverableGap { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect();
        assert_eq!(gaps, vec![(51, 401)]);
    }

    /// The last message before an idle period is lost: the next heartbeat reveals it.
    #[test]
    fn lost_last_message_before_idle_detected_by_heartbeat() {
        let mut sim = Sim::new(
            1,
            RetentionLimits::default(),
            sub_all(JoinPolicy::FromSeq(1)),
            NetCfg::default(),
        );
        for _ in 0..10 {
            sim.publish(0, b"s");
            sim.tick();
        }
        let t = sim.t;
        let _lost = sim.pubs[0]
            .publish(b"s", Bytes::from_static(b"last"), t)
            .unwrap();
        let published_at = sim.t;
        sim.run_until(2000);
        let (when, m) = sim
            .events
            .iter()
            .find_map(|(t, d)| match d {
                Delivery::Message(m) if m.seq == 11 => Some((*t, m.clone())),
                _ => None,
            })
            .expect("seq 11 recovered");
        assert!(m.retransmitted);
        assert_eq!(&m.payload[0][..], b"last");
        // heartbeat after 10 ms + 1 ms network + request/reply round trip
        assert!(
            when - published_at <= 16,
            "recovered after {} ms",
            when - published_at
        );
        check_stream(&sim.events, sim.pubs[0].id(), b"s", 1, 11);
    }

    /// Each late-join policy: the hand-over from replay to live has no gap and no duplicate.
    #[test]
    fn late_join_policies_hand_over_cleanly() {
        for policy in [
            JoinPolicy::FromNow,
            JoinPolicy::FromOldest,
            JoinPolicy::FromSeq(70),
            JoinPolicy::LastN(10),
        ] {
            let limits = RetentionLimits {
                max_messages: 1000,
                ..Default::default()
            };
            let mut sub = Subscriber::new(SubscriberConfig {
                join_policy: policy,
                ..Default::default()
            });
            sub.subscribe(b"s");
            let mut sim = Sim::new(1, limits, sub, NetCfg::default());
            // Before the subscriber connects: s 1..=50, 950 messages of another stream, then
            // s 51..=100; the global ring (1000) evicts s 1..=50, and later the other stream,
            // so the oldest retained seq of s stays 51 during the test.
            sim.cut[0] = true;
            for _ in 0..50 {
                sim.publish(0, b"s");
            }
            for _ in 0..950 {
                sim.publish(0, b"other");
            }
            for _ in 0..50 {
                sim.publish(0, b"s");
            }
            assert_eq!(sim.pubs[0].store().oldest(b"s"), Some(51));
            sim.tick();
            sim.cut[0] = false;
            // Live traffic while the join is in progress.
            for _ in 0..100 {
                sim.publish(0, b"s");
                sim.tick();
            }
            sim.run_until(3000);
            let id = sim.pubs[0].id();
            let join_at = match policy {
                JoinPolicy::FromNow => 101,
                JoinPolicy::FromOldest => 51,
                JoinPolicy::FromSeq(n) => n,
                JoinPolicy::LastN(_) => match &sim.joins[..] {
                    [ReplayReply::Join {
                        join_at, newest, ..
                    }] => {
                        assert_eq!(join_at + 9, *newest);
                        *join_at
                    }
                    other => panic!("{other:?}"),
                },
            };
            let (delivered, lost) = check_stream(&sim.events, id, b"s", join_at, 200);
            assert_eq!(lost, 0, "{policy:?}");
            assert_eq!(delivered, 201 - join_at, "{policy:?}");
            assert!(
                !sim.events
                    .iter()
                    .any(|(_, d)| matches!(d, Delivery::Message(m) if m.stream == "other")),
                "unsubscribed stream delivered"
            );
            assert_eq!(sim.sub.stats().duplicates, 0, "{policy:?}");
        }
    }

    /// Joining from a seq that is already gone: one gap up to the oldest retained, then data.
    #[test]
    fn late_join_from_evicted_seq_reports_gap_first() {
        let limits = RetentionLimits {
            max_messages: 50,
            ..Default::default()
        };
        let mut sim = Sim::new(
            1,
            limits,
            sub_all(JoinPolicy::FromSeq(30)),
            NetCfg::default(),
        );
        sim.cut[0] = true;
        for _ in 0..100 {
            sim.publish(0, b"s");
        }
        sim.cut[0] = false;
        sim.run_until(2000);
        let id = sim.pubs[0].id();
        assert_eq!(check_stream(&sim.events, id, b"s", 30, 100), (50, 21));
        assert!(matches!(
            sim.events[0].1,
            Delivery::UnrecoverableGap {
                from: 30,
                to: 50,
                ..
            }
        ));
    }

    /// A restarted subscriber resumes from its durable cursor: nothing lost or repeated.
    #[test]
    fn durable_cursor_resume() {
        let mut sim = Sim::new(
            1,
            RetentionLimits::default(),
            sub_all(JoinPolicy::FromSeq(1)),
            NetCfg::default(),
        );
        for _ in 0..40 {
            sim.publish(0, b"s");
            sim.tick();
        }
        sim.run_until(100);
        let saved = sim.sub.encode_cursor().unwrap();
        let entries = decode_cursor(&saved).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].last_delivered, 40);
        // The subscriber goes away; 60 more messages are published.
        sim.cut[0] = true;
        for _ in 0..60 {
            sim.publish(0, b"s");
            sim.tick();
        }
        let mut sub = Subscriber::with_cursor(SubscriberConfig::default(), entries);
        sub.subscribe(b"");
        sim.sub = sub;
        sim.events.clear();
        sim.cut[0] = false;
        for _ in 0..10 {
            sim.publish(0, b"s");
            sim.tick();
        }
        sim.run_until(2000);
        let (d, l) = check_stream(&sim.events, sim.pubs[0].id(), b"s", 41, 110);
        assert_eq!((d, l), (70, 0));
    }

    #[test]
    fn publisher_restart_and_lost_events() {
        let mut sim = Sim::new(
            1,
            RetentionLimits::default(),
            sub_all(JoinPolicy::FromSeq(1)),
            NetCfg::default(),
        );
        for _ in 0..5 {
            sim.publish(0, b"s");
            sim.tick();
        }
        // Silence (no heartbeats either) for longer than the publisher timeout.
        sim.cut[0] = true;
        sim.run_until(6000);
        assert!(sim
            .events
            .iter()
            .any(|(_, d)| matches!(d, Delivery::PublisherLost { epoch: 100, .. })));
        // The publisher comes back with a new epoch; its stream starts again at 1.
        let id = sim.pubs[0].id();
        sim.pubs[0] = Publisher::with_ring(
            id,
            101,
            PublisherConfig::default(),
            RetentionLimits::default(),
        );
        sim.cut[0] = false;
        sim.publish(0, b"s"); // seq 1 of epoch 101, lost:
        sim.data.clear();
        for _ in 0..5 {
            sim.publish(0, b"s");
            sim.tick();
        }
        sim.run_until(7000);
        let restarted = sim
            .events
            .iter()
            .position(|(_, d)| {
                matches!(
                    d,
                    Delivery::PublisherRestarted {
                        old_epoch: 100,
                        new_epoch: 101,
                        ..
                    }
                )
            })
            .expect("restart event");
        let new_epoch: Vec<u64> = sim.events[restarted..]
            .iter()
            .filter_map(|(_, d)| match d {
                Delivery::Message(m) => Some(m.seq),
                _ => None,
            })
            .collect();
        assert_eq!(new_epoch, vec![1, 2, 3, 4, 5, 6]);
        // A stale message of the old epoch is ignored.
        let stale = crate::rpub::wire::DataMessage {
            stream: Bytes::from_static(b"s"),
            header: crate::rpub::wire::DataHeader {
                flags: 0,
                publisher: id,
                epoch: 100,
                seq: 6,
                timestamp_ms: 0,
            },
            payload: vec![],
        };
        sim.sub.handle_data_message(&stale, 7000);
        assert!(sim.sub.poll_event().is_none());
        assert_eq!(sim.sub.stats().stale, 1);
    }

    /// A tiny reorder window overflows during a repair: SlowConsumer is reported, memory
    /// stays bounded, and everything is still delivered once the window moves.
    #[test]
    fn reorder_window_overflow_is_bounded_and_reported() {
        let sub = {
            let mut s = Subscriber::new(SubscriberConfig {
                join_policy: JoinPolicy::FromSeq(1),
                reorder_window: 8,
                ..Default::default()
            });
            s.subscribe(b"");
            s
        };
        let mut sim = Sim::new(1, RetentionLimits::default(), sub, NetCfg::default());
        sim.publish(0, b"s");
        sim.tick();
        let t = sim.t;
        let _lost = sim.pubs[0].publish(b"s", Bytes::new(), t).unwrap(); // seq 2
        for _ in 0..50 {
            sim.publish(0, b"s");
        }
        sim.tick();
        sim.run_until(1000);
        assert!(sim
            .events
            .iter()
            .any(|(_, d)| matches!(d, Delivery::SlowConsumer { .. })));
        assert!(sim.sub.stats().beyond_window > 0);
        assert_eq!(
            check_stream(&sim.events, sim.pubs[0].id(), b"s", 1, 52),
            (52, 0)
        );
        assert_eq!(
            sim.sub.stream_phase(&sim.pubs[0].id(), b"s"),
            Some(StreamPhase::Live)
        );
    }

    /// BUSY answers delay without using attempts; unanswered requests end in a gap.
    #[test]
    fn busy_and_retry_exhaustion() {
        let mut sub = sub_all(JoinPolicy::FromSeq(1));
        let id = Id128([7; 16]);
        let mut p = Publisher::with_ring(
            id,
            1,
            PublisherConfig::default(),
            RetentionLimits::default(),
        );
        let f1 = p.publish(b"s", Bytes::new(), 0).unwrap();
        let _f2 = p.publish(b"s", Bytes::new(), 0).unwrap();
        let f3 = p.publish(b"s", Bytes::new(), 0).unwrap();
        sub.handle_data(&f1, 0).unwrap();
        sub.handle_data(&f3, 0).unwrap();
        let reqs = sub.poll_timers(0);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].kind, RequestKind::Range { from: 2, to: 2 });
        sub.handle_reply(
            &ReplayReply::Busy {
                request: reqs[0].clone(),
                retry_after_ms: 30,
            },
            5,
        );
        assert_eq!(sub.next_timer_at(), Some(35));
        assert!(sub.poll_timers(34).is_empty());
        assert_eq!(sub.poll_timers(35).len(), 1); // still attempt 1 → now 2
                                                  // Never answered: attempts 2..5 with doubling timeouts, then a gap.
        let mut t = 35;
        let mut sent = 1;
        while t < 10_000 {
            t += 1;
            sent += sub.poll_timers(t).len();
        }
        assert_eq!(sent, 4);
        let evs: Vec<Delivery> = std::iter::from_fn(|| sub.poll_event()).collect();
        assert!(matches!(
            evs[0],
            Delivery::Message(ReceivedMessage { seq: 1, .. })
        ));
        assert!(matches!(
            evs[1],
            Delivery::UnrecoverableGap { from: 2, to: 2, .. }
        ));
        assert!(matches!(
            evs[2],
            Delivery::Message(ReceivedMessage { seq: 3, .. })
        ));
        assert!(evs
            .iter()
            .any(|d| matches!(d, Delivery::PublisherLost { .. })));
    }

    /// While the publisher keeps retransmitting a stream, a request queued behind others is
    /// not timed out (no attempt spent); END still re-requests what is missing at once.
    #[test]
    fn progressing_replay_defers_timeouts_but_end_does_not() {
        use crate::rpub::wire::{DataMessage, FLAG_RETRANSMISSION};
        let mut sub = sub_all(JoinPolicy::FromSeq(1));
        let id = Id128([9; 16]);
        let mut p = Publisher::with_ring(
            id,
            1,
            PublisherConfig::default(),
            RetentionLimits::default(),
        );
        let f: Vec<Vec<Bytes>> = (0..5)
            .map(|_| p.publish(b"s", Bytes::new(), 0).unwrap())
            .collect();
        for i in [0, 2, 4] {
            sub.handle_data(&f[i], 0).unwrap();
        }
        let reqs = sub.poll_timers(0);
        assert_eq!(reqs.len(), 2, "{reqs:?}");
        // seq 2 is retransmitted at t=150: the stream's replay progresses.
        let mut m = DataMessage::decode(&f[1]).unwrap();
        m.header.flags = FLAG_RETRANSMISSION;
        sub.handle_reply(&ReplayReply::Retransmission(m), 150);
        // [4,4] would time out at 200; progress defers it to 150 + 200.
        assert!(sub.poll_timers(200).is_empty());
        assert!(sub.poll_timers(349).is_empty());
        let again = sub.poll_timers(350);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].kind, RequestKind::Range { from: 4, to: 4 });
        // END with seq 4 still missing: re-requested at once, progress or not.
        sub.handle_reply(
            &ReplayReply::End {
                publisher: id,
                epoch: 1,
                stream: Bytes::from_static(b"s"),
                from: 4,
                to: 4,
            },
            360,
        );
        assert_eq!(sub.poll_timers(360).len(), 1);
        assert_eq!(sub.stats().lost, 0);
    }

    /// Many subscribers losing the same messages send identical requests; the publisher
    /// serves them as one merged job, and every subscriber gets everything.
    #[test]
    fn identical_losses_on_many_subscribers_are_merged() {
        let mut p = Publisher::with_ring(
            Id128([7; 16]),
            1,
            PublisherConfig::default(),
            RetentionLimits::default(),
        );
        let frames: Vec<Vec<Bytes>> = (0..10)
            .map(|i| p.publish(b"s", Bytes::from(vec![i]), 0).unwrap())
            .collect();
        let mut subs: Vec<Subscriber> = (0..3).map(|_| sub_all(JoinPolicy::FromSeq(1))).collect();
        for sub in subs.iter_mut() {
            for (i, f) in frames.iter().enumerate() {
                if !(3..7).contains(&i) {
                    sub.handle_data(f, 1).unwrap();
                }
            }
        }
        for (i, sub) in subs.iter_mut().enumerate() {
            let reqs = sub.poll_timers(1);
            assert_eq!(reqs.len(), 1);
            assert_eq!(reqs[0].kind, RequestKind::Range { from: 4, to: 7 });
            let peer = Bytes::from(vec![i as u8]);
            assert!(p.handle_replay_request(peer, &reqs[0], 1).is_empty());
        }
        assert_eq!(p.stats().merged_requests, 2);
        let out = p.poll_replay(2, 1000);
        assert_eq!(out.len(), 3 * (4 + 1));
        for (peer, f) in out {
            subs[peer[0] as usize].handle_replay_reply(&f, 3).unwrap();
        }
        for sub in subs.iter_mut() {
            assert!(sub.poll_timers(3).is_empty());
            let seqs: Vec<u64> = std::iter::from_fn(|| sub.poll_event())
                .filter_map(|d| match d {
                    Delivery::Message(m) => Some(m.seq),
                    _ => None,
                })
                .collect();
            assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        }
    }

    /// Randomized stress over many seeds (`cargo test --lib rpub -- --ignored`): two
    /// publishers, three streams each, random loss/bursts/reorder/replay loss, small
    /// retention and reorder windows. The invariant must hold whatever is lost.
    #[test]
    #[ignore]
    fn stress_invariant_random_networks() {
        for seed in 1..=40u64 {
            let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let net = NetCfg {
                drop_ppm: r.next() % 100_000,
                burst_ppm: r.next() % 3_000,
                burst_len: 1 + (r.next() % 300) as usize,
                reorder_ppm: r.next() % 100_000,
                reorder_max: r.next() % 20,
                replay_drop_ppm: r.next() % 50_000,
            };
            let limits = RetentionLimits {
                max_messages: 100 + (r.next() % 3000) as usize,
                ..Default::default()
            };
            let window = [16, 64, 512, 4096][(r.next() % 4) as usize];
            let mut sub = Subscriber::new(SubscriberConfig {
                join_policy: JoinPolicy::FromSeq(1),
                reorder_window: window,
                ..Default::default()
            });
            sub.subscribe(b"");
            let mut sim = Sim::new(2, limits, sub, net);
            sim.rng = Rng(seed);
            sim.budget = 1 + (r.next() % 300) as usize;
            let streams: [&[u8]; 3] = [b"a", b"b", b"c"];
            while sim.t < 3000 {
                for _ in 0..(r.next() % 6) {
                    let p = (r.next() % 2) as usize;
                    let s = streams[(r.next() % 3) as usize];
                    sim.publish(p, s);
                }
                sim.tick();
            }
            // Bursts count messages; once publishing stops the link comes back.
            sim.burst_left = vec![0; 2];
            sim.run_until(20_000);
            let mut lost = 0;
            for p in 0..2 {
                for s in streams {
                    let n = sim.pubs[p].newest(s);
                    if std::env::var("RPUB_DEBUG").is_ok() {
                        let st = &sim.sub.publishers[&sim.pubs[p].id()].streams[s];
                        eprintln!(
                            "seed {seed} pub {p} {s:?} newest {n} next {} hs {} ru {} buf {:?} lost {:?} pend {:?} phase {:?} oldest {:?} net {:?}",
                            st.next, st.highest_seen, st.requested_upto,
                            st.buffer.keys().take(5).collect::<Vec<_>>(), st.lost, st.pending, st.phase,
                            sim.pubs[p].store().oldest(s), (net.drop_ppm, net.burst_ppm, net.burst_len, net.reorder_ppm, net.replay_drop_ppm)
                        );
                    }
                    lost += check_stream(&sim.events, sim.pubs[p].id(), s, 1, n).1;
                }
            }
            eprintln!(
                "seed {seed}: window {window} limits {} budget {} lost {lost} stats {:?}",
                limits.max_messages,
                sim.budget,
                sim.sub.stats()
            );
        }
    }

    /// Hostile or corrupt input (extreme seqs, inverted ranges, lying heartbeats, replies
    /// nobody asked for) never panics and never grows the reorder buffer past its window.
    #[test]
    fn hostile_input_never_panics_and_stays_bounded() {
        let mut sub = Subscriber::new(SubscriberConfig {
            join_policy: JoinPolicy::LastN(3),
            reorder_window: 64,
            ..Default::default()
        });
        sub.subscribe(b"");
        sub.subscribe_with(b"n", JoinPolicy::FromNow);
        let mut r = Rng(77);
        let ids = [Id128([1; 16]), Id128([2; 16])];
        let names: [&[u8]; 3] = [b"a", b"n1", b"n2"];
        let pick = |r: &mut Rng| -> u64 {
            match r.next() % 6 {
                0 => 0,
                1 => u64::MAX,
                2 => u64::MAX - 1 - r.next() % 3,
                3 => r.next(),
                _ => r.next() % 200,
            }
        };
        let mut now = 0u64;
        for _ in 0..5000 {
            now += r.next() % 50;
            let publisher = ids[(r.next() % 2) as usize];
            let epoch = r.next() % 3;
            let stream = Bytes::from_static(names[(r.next() % 3) as usize]);
            match r.next() % 7 {
                0 | 1 => sub.handle_data_message(
                    &DataMessage {
                        stream,
                        header: crate::rpub::wire::DataHeader {
                            flags: (r.next() % 2) as u8,
                            publisher,
                            epoch,
                            seq: pick(&mut r),
                            timestamp_ms: r.next(),
                        },
                        payload: vec![],
                    },
                    now,
                ),
                2 => sub.handle_heartbeat(
                    &Heartbeat {
                        publisher,
                        epoch,
                        timestamp_ms: 0,
                        streams: vec![crate::rpub::wire::StreamMark {
                            stream,
                            newest: pick(&mut r),
                            oldest: pick(&mut r),
                        }],
                    },
                    now,
                ),
                3 => sub.handle_reply(
                    &ReplayReply::Gap {
                        publisher,
                        epoch,
                        stream,
                        from: pick(&mut r),
                        to: pick(&mut r),
                    },
                    now,
                ),
                4 => sub.handle_reply(
                    &ReplayReply::End {
                        publisher,
                        epoch,
                        stream,
                        from: pick(&mut r),
                        to: pick(&mut r),
                    },
                    now,
                ),
                5 => sub.handle_reply(
                    &ReplayReply::Join {
                        publisher,
                        epoch,
                        stream,
                        kind_code: 4,
                        join_at: pick(&mut r),
                        newest: pick(&mut r),
                    },
                    now,
                ),
                _ => {
                    let kind = RequestKind::Range {
                        from: pick(&mut r),
                        to: pick(&mut r),
                    };
                    sub.handle_reply(
                        &ReplayReply::Busy {
                            request: ReplayRequest {
                                publisher,
                                epoch,
                                stream,
                                kind,
                            },
                            retry_after_ms: r.next() as u32,
                        },
                        now,
                    )
                }
            }
            let _ = sub.poll_timers(now);
            let _ = sub.next_timer_at();
            while sub.poll_event().is_some() {}
            for ps in sub.publishers.values() {
                for st in ps.streams.values() {
                    assert!(st.buffer.len() <= 64);
                    assert!(st.lost.len() <= 64 + 2);
                }
            }
        }
        let _ = sub.encode_cursor().unwrap();
    }

    /// A publisher restarts while a repair of its old epoch is outstanding: the old epoch is
    /// closed (what is missing is reported), PublisherRestarted follows, then the new epoch
    /// from seq 1 — each epoch satisfying the invariant, in that order.
    #[test]
    fn restart_during_recovery_closes_old_epoch_cleanly() {
        let mut sim = Sim::new(
            1,
            RetentionLimits::default(),
            sub_all(JoinPolicy::FromSeq(1)),
            NetCfg::default(),
        );
        for i in 1..=20u64 {
            let t = sim.t;
            let f = sim.pubs[0].publish(b"s", Bytes::new(), t).unwrap();
            if !(15..=17).contains(&i) {
                sim.send_data(0, f);
            }
        }
        // Seq 18..20 arrive, the repair of 15..17 is requested, but the publisher dies
        // before answering and comes back with a new epoch.
        sim.tick();
        sim.tick();
        let id = sim.pubs[0].id();
        sim.pubs[0] = Publisher::with_ring(
            id,
            101,
            PublisherConfig::default(),
            RetentionLimits::default(),
        );
        for _ in 0..10 {
            sim.publish(0, b"s");
            sim.tick();
        }
        sim.run_until(3000);
        let pos = sim
            .events
            .iter()
            .position(|(_, d)| matches!(d, Delivery::PublisherRestarted { .. }))
            .unwrap();
        let (old, new) = sim.events.split_at(pos);
        let old: Vec<(u64, Delivery)> = old.to_vec();
        assert!(old.iter().all(|(_, d)| match d {
            Delivery::Message(m) => m.epoch == 100,
            Delivery::UnrecoverableGap { epoch, .. } => *epoch == 100,
            _ => true,
        }));
        // The old epoch's retention died with it: 15..17 are reported lost (by the GAP the new
        // incarnation answers for a foreign epoch, or when the epoch closes).
        assert_eq!(check_stream(&old, id, b"s", 1, 20), (17, 3));
        assert_eq!(check_stream(&new[1..], id, b"s", 1, 10), (10, 0));
    }

    /// A late join whose request is never answered falls back to FROM_NOW after the
    /// bounded retries, and delivers from the first message it saw.
    #[test]
    fn unanswered_late_join_falls_back_to_from_now() {
        let mut sub = sub_all(JoinPolicy::FromOldest);
        let mut p = Publisher::with_ring(
            Id128([9; 16]),
            1,
            PublisherConfig::default(),
            RetentionLimits::default(),
        );
        for _ in 0..5 {
            p.publish(b"s", Bytes::new(), 0).unwrap();
        }
        for _ in 0..3 {
            let f = p.publish(b"s", Bytes::new(), 0).unwrap();
            sub.handle_data(&f, 0).unwrap();
        }
        assert_eq!(sub.stream_phase(&p.id(), b"s"), Some(StreamPhase::Joining));
        let mut joins = 0;
        for t in 0..10_000 {
            joins += sub
                .poll_timers(t)
                .iter()
                .filter(|r| r.kind == RequestKind::FromOldest)
                .count();
            if t % 500 == 0 {
                // keep the publisher alive
                for hb in p.poll_heartbeat(t) {
                    sub.handle_data(&hb, t).unwrap();
                }
            }
        }
        assert_eq!(joins, 5);
        let seqs: Vec<u64> = std::iter::from_fn(|| sub.poll_event())
            .filter_map(|d| match d {
                Delivery::Message(m) => Some(m.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![6, 7, 8]);
        assert_eq!(sub.stream_phase(&p.id(), b"s"), Some(StreamPhase::Live));
    }

    #[test]
    fn slow_consumer_queue_threshold() {
        let mut sub = Subscriber::new(SubscriberConfig {
            slow_consumer_threshold: 10,
            ..Default::default()
        });
        sub.subscribe(b"");
        let mut p = Publisher::with_ring(
            Id128([7; 16]),
            1,
            PublisherConfig::default(),
            RetentionLimits::default(),
        );
        for _ in 0..30 {
            let f = p.publish(b"s", Bytes::new(), 0).unwrap();
            sub.handle_data(&f, 0).unwrap();
        }
        let evs: Vec<Delivery> = std::iter::from_fn(|| sub.poll_event()).collect();
        let slow = evs
            .iter()
            .filter(|d| matches!(d, Delivery::SlowConsumer { .. }))
            .count();
        assert_eq!(slow, 1);
        assert_eq!(evs.len(), 31);
    }
}
