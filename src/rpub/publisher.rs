//! Sans-IO publisher: sequencing, retention, heartbeats and budgeted, merged replay.
//!
//! The caller owns the sockets: it sends what [`Publisher::publish`] and
//! [`Publisher::poll_heartbeat`] return on the PUB socket, feeds requests read from the
//! ROUTER into [`Publisher::handle_replay_request`] (sending back what it returns), and, off
//! the live path (e.g. once per loop tick), sends what [`Publisher::poll_replay`] returns to
//! the given ROUTER peers. Time is `u64` ms passed in by the caller.

use super::retention::{RetainedMessage, RetentionLimits, RetentionStore, RingStore};
use super::wire::{
    validate_stream_name, DataHeader, DataMessage, Heartbeat, PublisherId, ReplayReply,
    ReplayRequest, RequestKind, StreamMark, WireError, DATA_VERSION_2, FLAG_RETRANSMISSION,
};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;

/// Publisher tuning. Defaults follow the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherConfig {
    /// First idle heartbeat after the last message (default 10 ms).
    pub heartbeat_initial_ms: u64,
    /// Longest heartbeat interval, idle or under load (default 1000 ms).
    pub heartbeat_max_ms: u64,
    /// Streams per HEARTBEAT message (default 512).
    pub max_heartbeat_entries: usize,
    /// Queued replay jobs before answering BUSY (default 1024).
    pub max_replay_jobs: usize,
    /// Retry hint sent in BUSY (default 50 ms).
    pub busy_retry_ms: u32,
    /// Messages a job may send per round-robin turn in `poll_replay` (default 32).
    pub replay_chunk: usize,
    /// Layout of the DATA messages it produces, live and RETX: 2 (default, RPUB/2 §5.1.1:
    /// the header and a small first payload frame in one frame) or 1 (RPUB/1, for
    /// subscribers that only implement version 1; any other value means 1).
    pub data_version: u8,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            heartbeat_initial_ms: 10,
            heartbeat_max_ms: 1000,
            max_heartbeat_entries: 512,
            max_replay_jobs: 1024,
            busy_retry_ms: 50,
            replay_chunk: 32,
            data_version: DATA_VERSION_2,
        }
    }
}

/// Counters, for tests and monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Messages published.
    pub published: u64,
    /// HEARTBEAT messages produced.
    pub heartbeats: u64,
    /// Replay requests received.
    pub requests: u64,
    /// Requests merged into an existing job.
    pub merged_requests: u64,
    /// RETX sends (per destination peer).
    pub retransmissions: u64,
    /// GAP sends (per destination peer).
    pub gaps: u64,
    /// BUSY answers.
    pub busy: u64,
}

#[derive(Debug)]
struct Job {
    stream: Bytes,
    from: u64,
    to: u64,
    next: u64,
    peers: Vec<Bytes>,
    started: bool,
}

/// Longest scan for the end of a hole inside the retained range, per step.
const HOLE_SCAN: u64 = 1024;

/// The sans-IO publisher of one (publisher id, epoch).
#[derive(Debug)]
pub struct Publisher<S: RetentionStore = RingStore> {
    id: PublisherId,
    epoch: u64,
    config: PublisherConfig,
    store: S,
    /// Newest seq per stream.
    streams: BTreeMap<Bytes, u64>,
    hb_due_ms: u64,
    hb_interval_ms: u64,
    last_hb_ms: Option<u64>,
    jobs: VecDeque<Job>,
    stats: PublisherStats,
}

impl Publisher<RingStore> {
    /// A publisher with an in-memory ring bounded by `limits`.
    pub fn with_ring(
        id: PublisherId,
        epoch: u64,
        config: PublisherConfig,
        limits: RetentionLimits,
    ) -> Self {
        Publisher::new(id, epoch, config, RingStore::new(limits))
    }

    /// A publisher with a random id (OS randomness) and `epoch = now_unix_ms` (strictly
    /// increasing across restarts as long as restarts are more than 1 ms apart).
    pub fn new_random(
        config: PublisherConfig,
        limits: RetentionLimits,
        now_unix_ms: u64,
    ) -> Result<Self, getrandom::Error> {
        Ok(Publisher::with_ring(
            PublisherId::random()?,
            now_unix_ms,
            config,
            limits,
        ))
    }
}

impl<S: RetentionStore> Publisher<S> {
    /// A publisher over any retention store. The first heartbeat is due immediately.
    pub fn new(id: PublisherId, epoch: u64, config: PublisherConfig, store: S) -> Self {
        let hb = config.heartbeat_initial_ms.max(1);
        Publisher {
            id,
            epoch,
            config,
            store,
            streams: BTreeMap::new(),
            hb_due_ms: 0,
            hb_interval_ms: hb,
            last_hb_ms: None,
            jobs: VecDeque::new(),
            stats: PublisherStats::default(),
        }
    }

    /// Publisher id.
    pub fn id(&self) -> PublisherId {
        self.id
    }

    /// Epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Newest seq sent on `stream` (0 if none).
    pub fn newest(&self, stream: &[u8]) -> u64 {
        self.streams.get(stream).copied().unwrap_or(0)
    }

    /// The DATA layout it produces (see [`PublisherConfig::data_version`]).
    pub fn data_version(&self) -> u8 {
        self.config.data_version
    }

    /// Counters.
    pub fn stats(&self) -> PublisherStats {
        self.stats
    }

    /// The retention store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Restores the newest seq of a stream (when resuming an epoch from a disk log).
    pub fn restore_stream(&mut self, stream: Bytes, newest: u64) -> Result<(), WireError> {
        validate_stream_name(&stream)?;
        self.streams.insert(stream, newest);
        Ok(())
    }

    /// Publishes a one-frame payload; returns the frames to send on the PUB socket.
    pub fn publish(
        &mut self,
        stream: &[u8],
        payload: Bytes,
        now_ms: u64,
    ) -> Result<Vec<Bytes>, WireError> {
        self.publish_parts(stream, vec![payload], now_ms)
    }

    /// Publishes a multi-frame payload; returns the frames to send on the PUB socket.
    pub fn publish_parts(
        &mut self,
        stream: &[u8],
        payload: Vec<Bytes>,
        now_ms: u64,
    ) -> Result<Vec<Bytes>, WireError> {
        let version = self.config.data_version;
        self.publish_with(stream, payload, now_ms, |name, header, payload| {
            DataMessage {
                stream: name.clone(),
                header: *header,
                payload: payload.to_vec(),
            }
            .encode_version(version)
        })
    }

    /// Publishes a multi-frame payload without building its frames: `send` gets the message's
    /// parts (stream name, DATA header, payload frames) to encode and send itself, then the
    /// payload is retained (moved, not copied). Returns what `send` returns. Same effect as
    /// [`Publisher::publish_parts`]; this is the live path of the bus.
    pub fn publish_with<R>(
        &mut self,
        stream: &[u8],
        payload: Vec<Bytes>,
        now_ms: u64,
        send: impl FnOnce(&Bytes, &DataHeader, &[Bytes]) -> R,
    ) -> Result<R, WireError> {
        self.sequence(
            stream,
            payload,
            now_ms,
            |name, header, payload| send(name, header, payload),
            |store, name, seq, payload| {
                store.append(
                    name,
                    RetainedMessage {
                        seq,
                        timestamp_ms: now_ms,
                        payload,
                    },
                    now_ms,
                )
            },
        )
    }

    /// [`Publisher::publish_with`] for a one-frame payload: nothing is allocated per message
    /// (the store keeps the frame without a `Vec`, see [`RetentionStore::append_one`]).
    pub fn publish_one_with<R>(
        &mut self,
        stream: &[u8],
        payload: Bytes,
        now_ms: u64,
        send: impl FnOnce(&Bytes, &DataHeader, &Bytes) -> R,
    ) -> Result<R, WireError> {
        self.sequence(
            stream,
            payload,
            now_ms,
            send,
            |store, name, seq, payload| store.append_one(name, seq, now_ms, payload, now_ms),
        )
    }

    /// Assigns the next seq of `stream`, restarts the heartbeat back-off, then calls `send`
    /// with the stream's name, the DATA header and the payload, then `retain` with the store.
    fn sequence<P, R>(
        &mut self,
        stream: &[u8],
        payload: P,
        now_ms: u64,
        send: impl FnOnce(&Bytes, &DataHeader, &P) -> R,
        retain: impl FnOnce(&mut S, &Bytes, u64, P),
    ) -> Result<R, WireError> {
        validate_stream_name(stream)?;
        // One search for a known stream; the name is borrowed from the table, not cloned.
        let one = (Bound::Included(stream), Bound::Included(stream));
        let (name, newest) = match self.streams.range_mut::<[u8], _>(one).next() {
            Some(e) => e,
            None => {
                self.streams.insert(Bytes::copy_from_slice(stream), 0);
                match self.streams.range_mut::<[u8], _>(one).next() {
                    Some(e) => e,
                    None => unreachable!("inserted above"),
                }
            }
        };
        *newest += 1;
        let seq = *newest;
        self.stats.published += 1;
        // Idle back-off restarts; under load a heartbeat still goes out every max interval.
        self.hb_interval_ms = self.config.heartbeat_initial_ms.max(1);
        let idle_due = now_ms.saturating_add(self.hb_interval_ms);
        self.hb_due_ms = match self.last_hb_ms {
            Some(t) => idle_due.min(t.saturating_add(self.config.heartbeat_max_ms)),
            None => idle_due.min(self.hb_due_ms),
        };
        let header = DataHeader {
            flags: 0,
            publisher: self.id,
            epoch: self.epoch,
            seq,
            timestamp_ms: now_ms,
        };
        let r = send(name, &header, &payload);
        retain(&mut self.store, name, seq, payload);
        Ok(r)
    }

    /// When the next heartbeat is due (ms).
    pub fn next_heartbeat_at(&self) -> u64 {
        self.hb_due_ms
    }

    /// Returns the HEARTBEAT messages to send if one is due (else nothing).
    pub fn poll_heartbeat(&mut self, now_ms: u64) -> Vec<Vec<Bytes>> {
        if now_ms < self.hb_due_ms {
            return Vec::new();
        }
        let out = self.heartbeat(now_ms);
        self.last_hb_ms = Some(now_ms);
        self.hb_interval_ms = self
            .hb_interval_ms
            .saturating_mul(2)
            .min(self.config.heartbeat_max_ms.max(1));
        self.hb_due_ms = now_ms.saturating_add(self.hb_interval_ms);
        out
    }

    /// Builds HEARTBEAT messages now, regardless of the timer.
    pub fn heartbeat(&mut self, now_ms: u64) -> Vec<Vec<Bytes>> {
        self.store.expire(now_ms);
        let marks: Vec<StreamMark> = self
            .streams
            .iter()
            .map(|(s, &newest)| StreamMark {
                stream: s.clone(),
                newest,
                oldest: self.store.oldest(s).unwrap_or(newest + 1),
            })
            .collect();
        let per = self
            .config
            .max_heartbeat_entries
            .clamp(1, u16::MAX as usize);
        let mut chunks: Vec<Vec<StreamMark>> = marks.chunks(per).map(|c| c.to_vec()).collect();
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let mut out = Vec::with_capacity(chunks.len());
        for streams in chunks {
            let hb = Heartbeat {
                publisher: self.id,
                epoch: self.epoch,
                timestamp_ms: now_ms,
                streams,
            };
            // Stream names were validated at publish time, so encoding cannot fail.
            if let Ok(frames) = hb.encode() {
                out.push(frames);
                self.stats.heartbeats += 1;
            }
        }
        out
    }

    fn reply(&self, r: ReplayReply) -> Vec<Bytes> {
        r.encode()
    }

    /// Handles a decoded replay REQUEST from ROUTER peer `peer` (its routing id).
    ///
    /// Returns messages to send to that peer at once (JOIN, BUSY, or GAP+END for a wrong
    /// epoch). Range repairs are queued (merged with identical pending ones) and produced by
    /// [`Publisher::poll_replay`].
    pub fn handle_replay_request(
        &mut self,
        peer: Bytes,
        req: &ReplayRequest,
        now_ms: u64,
    ) -> Vec<Vec<Bytes>> {
        let _ = now_ms;
        if req.publisher != self.id {
            log::debug!(
                "rpub: replay request for another publisher {}",
                req.publisher
            );
            return Vec::new();
        }
        self.stats.requests += 1;
        let newest = self.newest(&req.stream);
        let oldest = self.store.oldest(&req.stream).unwrap_or(newest + 1);
        let join_at =
            match req.kind {
                RequestKind::Range { from, to } => {
                    // `from`/`to` are echoed as requested (decoding guarantees to >= from);
                    // seq 0 never exists, so sending starts at 1.
                    if req.epoch != self.epoch {
                        let mut v = Vec::new();
                        if to >= 1 {
                            v.push(self.reply(ReplayReply::Gap {
                                publisher: self.id,
                                epoch: req.epoch,
                                stream: req.stream.clone(),
                                from: from.max(1),
                                to,
                            }));
                        }
                        v.push(self.reply(ReplayReply::End {
                            publisher: self.id,
                            epoch: req.epoch,
                            stream: req.stream.clone(),
                            from,
                            to,
                        }));
                        return v;
                    }
                    if let Some(job) = self.jobs.iter_mut().find(|j| {
                        !j.started && j.from == from && j.to == to && j.stream == req.stream
                    }) {
                        if !job.peers.contains(&peer) {
                            job.peers.push(peer);
                        }
                        self.stats.merged_requests += 1;
                        return Vec::new();
                    }
                    if self.jobs.len() >= self.config.max_replay_jobs {
                        self.stats.busy += 1;
                        return vec![self.reply(ReplayReply::Busy {
                            request: req.clone(),
                            retry_after_ms: self.config.busy_retry_ms,
                        })];
                    }
                    self.jobs.push_back(Job {
                        stream: req.stream.clone(),
                        from,
                        to,
                        next: from.max(1),
                        peers: vec![peer],
                        started: false,
                    });
                    return Vec::new();
                }
                RequestKind::FromNow => newest + 1,
                RequestKind::FromOldest => oldest,
                RequestKind::FromSeq(n) => n.max(1),
                RequestKind::LastN(n) => oldest.max((newest + 1).saturating_sub(n)),
            };
        vec![self.reply(ReplayReply::Join {
            publisher: self.id,
            epoch: self.epoch,
            stream: req.stream.clone(),
            kind_code: req.kind.code(),
            join_at,
            newest,
        })]
    }

    /// Decodes frames received on the ROUTER (without the routing-id frame) and handles them.
    pub fn handle_replay_frames(
        &mut self,
        peer: Bytes,
        frames: &[Bytes],
        now_ms: u64,
    ) -> Result<Vec<Vec<Bytes>>, WireError> {
        let req = ReplayRequest::decode(frames)?;
        Ok(self.handle_replay_request(peer, &req, now_ms))
    }

    /// True if replay jobs are queued.
    pub fn has_pending_replay(&self) -> bool {
        !self.jobs.is_empty()
    }

    /// Produces replay traffic: at most `budget` sends (each RETX or GAP to each peer counts
    /// one; a message is never split across its merged peers, so one step may overshoot),
    /// round-robin over jobs, `replay_chunk` messages per job per turn. END markers are free.
    pub fn poll_replay(&mut self, now_ms: u64, budget: usize) -> Vec<(Bytes, Vec<Bytes>)> {
        self.store.expire(now_ms);
        let mut out = Vec::new();
        let mut spent = 0usize;
        let mut turns = self.jobs.len();
        while spent < budget && turns > 0 {
            turns -= 1;
            let Some(mut job) = self.jobs.pop_front() else {
                break;
            };
            job.started = true;
            let newest = self.newest(&job.stream);
            let last = job.to.min(newest);
            let mut chunk = 0;
            while spent < budget && chunk < self.config.replay_chunk.max(1) && job.next <= last {
                let seq = job.next;
                let reply = match self.store.get(&job.stream, seq) {
                    Some(m) => {
                        job.next = seq + 1;
                        self.stats.retransmissions += job.peers.len() as u64;
                        ReplayReply::Retransmission(DataMessage {
                            stream: job.stream.clone(),
                            header: DataHeader {
                                flags: FLAG_RETRANSMISSION,
                                publisher: self.id,
                                epoch: self.epoch,
                                seq,
                                timestamp_ms: m.timestamp_ms,
                            },
                            payload: m.payload,
                        })
                    }
                    None => {
                        let end = match self.store.oldest(&job.stream) {
                            Some(o) if seq < o => last.min(o - 1),
                            None => last,
                            Some(_) => {
                                let mut e = seq;
                                while e < last
                                    && e - seq < HOLE_SCAN
                                    && self.store.get(&job.stream, e + 1).is_none()
                                {
                                    e += 1;
                                }
                                e
                            }
                        };
                        job.next = end + 1;
                        self.stats.gaps += job.peers.len() as u64;
                        ReplayReply::Gap {
                            publisher: self.id,
                            epoch: self.epoch,
                            stream: job.stream.clone(),
                            from: seq,
                            to: end,
                        }
                    }
                };
                let frames = reply.encode_version(self.config.data_version);
                for p in &job.peers {
                    out.push((p.clone(), frames.clone()));
                }
                spent += job.peers.len();
                chunk += 1;
            }
            if job.next > last {
                let frames = ReplayReply::End {
                    publisher: self.id,
                    epoch: self.epoch,
                    stream: job.stream.clone(),
                    from: job.from,
                    to: job.to,
                }
                .encode();
                for p in &job.peers {
                    out.push((p.clone(), frames.clone()));
                }
            } else {
                self.jobs.push_back(job);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpub::wire::{decode_data_channel, DataChannelMessage, Id128, DATA_HEADER_LEN};

    fn publisher(limits: RetentionLimits) -> Publisher {
        Publisher::with_ring(Id128([1; 16]), 5, PublisherConfig::default(), limits)
    }

    fn req(p: &Publisher, stream: &'static [u8], kind: RequestKind) -> ReplayRequest {
        ReplayRequest {
            publisher: p.id(),
            epoch: p.epoch(),
            stream: Bytes::from_static(stream),
            kind,
        }
    }

    #[test]
    fn publish_numbers_per_stream() {
        let mut p = publisher(RetentionLimits::default());
        for (i, s) in [b"a", b"b", b"a"].iter().enumerate() {
            let f = p.publish(&s[..], Bytes::from(vec![i as u8]), 100).unwrap();
            assert_eq!(&f[0][..], &s[..]);
            let h = DataHeader::decode(&f[1]).unwrap();
            assert_eq!(h.epoch, 5);
            assert_eq!(h.seq, if i == 2 { 2 } else { 1 });
            // RPUB/2 (§5.1.1): the payload follows the header in the same frame.
            assert_eq!(f.len(), 2);
            assert_eq!(f[1][DATA_HEADER_LEN..], [i as u8]);
        }
        assert!(p.publish(b"\0x", Bytes::new(), 0).is_err());
        assert!(p.publish(b"", Bytes::new(), 0).is_err());
        // `data_version: 1`: the RPUB/1 layout, header and payload in separate frames.
        let mut v1 = Publisher::with_ring(
            Id128([1; 16]),
            5,
            PublisherConfig {
                data_version: 1,
                ..Default::default()
            },
            RetentionLimits::default(),
        );
        let f = v1.publish(b"a", Bytes::from_static(b"x"), 0).unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!((f[1][2], f[1].len()), (1, DATA_HEADER_LEN));
        assert_eq!(&f[2][..], b"x");
    }

    #[test]
    fn heartbeat_backoff_and_under_load() {
        let mut p = publisher(RetentionLimits::default());
        // First heartbeat is immediate.
        assert_eq!(p.poll_heartbeat(0).len(), 1);
        p.publish(b"s", Bytes::new(), 500).unwrap();
        assert!(p.poll_heartbeat(509).is_empty());
        let hb = p.poll_heartbeat(510);
        assert_eq!(hb.len(), 1);
        match decode_data_channel(&hb[0]).unwrap() {
            DataChannelMessage::Heartbeat(h) => {
                assert_eq!(h.streams[0].newest, 1);
                assert_eq!(h.streams[0].oldest, 1);
            }
            _ => panic!(),
        }
        // Idle back-off: 20, 40, 80 ... capped at 1000.
        let mut t = 510;
        let mut gaps = vec![];
        while t < 10_000 {
            let next = p.next_heartbeat_at();
            assert!(p.poll_heartbeat(next - 1).is_empty());
            assert_eq!(p.poll_heartbeat(next).len(), 1);
            gaps.push(next - t);
            t = next;
        }
        assert_eq!(&gaps[..6], &[20, 40, 80, 160, 320, 640]);
        assert!(gaps[6..].iter().all(|&g| g == 1000));
        // Under load (a message every ms) a heartbeat still goes out every 1000 ms.
        let start = t;
        let mut sent = vec![];
        for now in start..=start + 3000 {
            p.publish(b"s", Bytes::new(), now).unwrap();
            if !p.poll_heartbeat(now).is_empty() {
                sent.push(now);
            }
        }
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent.windows(2).all(|w| w[1] - w[0] == 1000));
    }

    #[test]
    fn heartbeat_splits_many_streams() {
        let mut p = Publisher::with_ring(
            Id128([1; 16]),
            1,
            PublisherConfig {
                max_heartbeat_entries: 2,
                ..Default::default()
            },
            RetentionLimits::default(),
        );
        assert_eq!(p.heartbeat(0).len(), 1); // empty liveness heartbeat
        for s in [b"a", b"b", b"c", b"d", b"e"] {
            p.publish(s, Bytes::new(), 0).unwrap();
        }
        assert_eq!(p.heartbeat(0).len(), 3);
    }

    fn decode_all(out: &[(Bytes, Vec<Bytes>)]) -> Vec<(Bytes, ReplayReply)> {
        out.iter()
            .map(|(p, f)| (p.clone(), ReplayReply::decode(f).unwrap()))
            .collect()
    }

    #[test]
    fn range_replay_gap_end_and_budget() {
        let mut p = publisher(RetentionLimits {
            max_messages: 5,
            ..Default::default()
        });
        for _ in 0..10 {
            p.publish(b"s", Bytes::from_static(b"x"), 0).unwrap();
        }
        // retained: 6..=10
        let r = req(&p, b"s", RequestKind::Range { from: 3, to: 12 });
        assert!(p
            .handle_replay_request(Bytes::from_static(b"A"), &r, 0)
            .is_empty());
        let out = decode_all(&p.poll_replay(0, 3));
        assert_eq!(out.len(), 3);
        assert!(matches!(out[0].1, ReplayReply::Gap { from: 3, to: 5, .. }));
        assert!(
            matches!(&out[1].1, ReplayReply::Retransmission(m) if m.header.seq == 6 && m.header.is_retransmission())
        );
        let out = decode_all(&p.poll_replay(0, 100));
        let seqs: Vec<u64> = out
            .iter()
            .filter_map(|(_, r)| match r {
                ReplayReply::Retransmission(m) => Some(m.header.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![8, 9, 10]);
        assert!(matches!(
            out.last().unwrap().1,
            ReplayReply::End {
                from: 3,
                to: 12,
                ..
            }
        ));
        assert!(!p.has_pending_replay());
        // Wrong epoch: GAP + END at once.
        let mut r2 = r.clone();
        r2.epoch = 4;
        let now = p.handle_replay_request(Bytes::from_static(b"A"), &r2, 0);
        assert_eq!(now.len(), 2);
        assert!(matches!(
            ReplayReply::decode(&now[0]).unwrap(),
            ReplayReply::Gap {
                from: 3,
                to: 12,
                ..
            }
        ));
    }

    #[test]
    fn identical_requests_are_merged_and_busy_when_full() {
        let mut p = Publisher::with_ring(
            Id128([1; 16]),
            5,
            PublisherConfig {
                max_replay_jobs: 2,
                ..Default::default()
            },
            RetentionLimits::default(),
        );
        for _ in 0..4 {
            p.publish(b"s", Bytes::new(), 0).unwrap();
        }
        let r = req(&p, b"s", RequestKind::Range { from: 2, to: 3 });
        for peer in [&b"A"[..], b"B", b"C", b"A"] {
            assert!(p
                .handle_replay_request(Bytes::copy_from_slice(peer), &r, 0)
                .is_empty());
        }
        assert_eq!(p.stats().merged_requests, 3);
        let r2 = req(&p, b"s", RequestKind::Range { from: 1, to: 1 });
        assert!(p
            .handle_replay_request(Bytes::from_static(b"D"), &r2, 0)
            .is_empty());
        let r3 = req(&p, b"s", RequestKind::Range { from: 4, to: 4 });
        let busy = p.handle_replay_request(Bytes::from_static(b"D"), &r3, 0);
        assert!(matches!(
            ReplayReply::decode(&busy[0]).unwrap(),
            ReplayReply::Busy {
                retry_after_ms: 50,
                ..
            }
        ));
        let out = decode_all(&p.poll_replay(0, 1000));
        // 2 retx × 3 peers + END × 3 for the merged job; 1 retx + END for D.
        assert_eq!(out.len(), 9 + 2);
        assert_eq!(p.stats().retransmissions, 7);
    }

    /// Hostile requests (huge or inverted ranges, other epochs, unknown streams) never panic
    /// and every call to `poll_replay` stays within its budget (+ END markers).
    #[test]
    fn hostile_requests_are_bounded() {
        let mut p = publisher(RetentionLimits {
            max_messages: 100,
            ..Default::default()
        });
        for i in 0..300u64 {
            p.publish(if i % 3 == 0 { b"a" } else { b"b" }, Bytes::new(), i)
                .unwrap();
        }
        let mut x = 0x1234_5678u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let vals = [0, 1, 50, 150, 199, 200, 201, u64::MAX - 1, u64::MAX];
        for i in 0..2000 {
            let a = vals[(rnd() % vals.len() as u64) as usize];
            let b = vals[(rnd() % vals.len() as u64) as usize];
            let kind = match rnd() % 5 {
                0 => RequestKind::FromNow,
                1 => RequestKind::FromOldest,
                2 => RequestKind::FromSeq(a),
                3 => RequestKind::LastN(a),
                _ => RequestKind::Range { from: a, to: b },
            };
            let r = ReplayRequest {
                publisher: p.id(),
                epoch: if rnd() % 4 == 0 { 4 } else { 5 },
                stream: Bytes::from_static([&b"a"[..], b"b", b"zz"][(rnd() % 3) as usize]),
                kind,
            };
            let _ = p.handle_replay_request(Bytes::from(vec![(i % 7) as u8]), &r, 300);
            let out = p.poll_replay(300, 16);
            let sends = out
                .iter()
                .filter(|(_, f)| !matches!(ReplayReply::decode(f), Ok(ReplayReply::End { .. })))
                .count();
            // At most one merged message may overshoot the budget (7 peers at most).
            assert!(sends < 16 + 7, "{sends}");
        }
        while p.has_pending_replay() {
            p.poll_replay(300, 1000);
        }
    }

    #[test]
    fn late_join_resolution() {
        let mut p = publisher(RetentionLimits {
            max_messages: 5,
            ..Default::default()
        });
        for _ in 0..10 {
            p.publish(b"s", Bytes::new(), 0).unwrap();
        }
        let join = |p: &mut Publisher, k| {
            let r = req(p, b"s", k);
            match ReplayReply::decode(&p.handle_replay_request(Bytes::new(), &r, 0)[0]).unwrap() {
                ReplayReply::Join {
                    join_at, newest, ..
                } => (join_at, newest),
                o => panic!("{o:?}"),
            }
        };
        assert_eq!(join(&mut p, RequestKind::FromNow), (11, 10));
        assert_eq!(join(&mut p, RequestKind::FromOldest), (6, 10));
        assert_eq!(join(&mut p, RequestKind::FromSeq(2)), (2, 10));
        assert_eq!(join(&mut p, RequestKind::LastN(3)), (8, 10));
        assert_eq!(join(&mut p, RequestKind::LastN(50)), (6, 10));
        assert_eq!(join(&mut p, RequestKind::LastN(0)), (11, 10));
    }
}
