//! Publisher-side retention of sent messages, for replay.
//!
//! [`RetentionStore`] is the seam: [`RingStore`] (memory, bounded by message count, bytes and
//! age together) is the default; a disk log can implement the same trait later.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// A retained message of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    /// Sequence number within the stream.
    pub seq: u64,
    /// Publish timestamp (ms), as sent in the DATA header.
    pub timestamp_ms: u64,
    /// Payload frames.
    pub payload: Vec<Bytes>,
}

impl RetainedMessage {
    /// Payload size in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload.iter().map(Bytes::len).sum()
    }
}

/// Where a publisher keeps sent messages for replay.
///
/// Contract: for each stream, `append` is called with strictly increasing seqs; the retained
/// seqs of a stream SHOULD stay one contiguous range (evict oldest-first). `get` may return
/// `None` for any seq that is no longer (or never was) retained.
pub trait RetentionStore {
    /// Stores a message that has just been published on `stream`.
    fn append(&mut self, stream: &Bytes, msg: RetainedMessage, now_ms: u64);
    /// Stores a one-frame message (the live path: a store may keep it without building a
    /// `Vec` of frames). The default builds a [`RetainedMessage`] and calls `append`.
    fn append_one(
        &mut self,
        stream: &Bytes,
        seq: u64,
        timestamp_ms: u64,
        payload: Bytes,
        now_ms: u64,
    ) {
        self.append(
            stream,
            RetainedMessage {
                seq,
                timestamp_ms,
                payload: vec![payload],
            },
            now_ms,
        );
    }
    /// Returns a retained message (payload frames are cheap `Bytes` clones).
    fn get(&self, stream: &[u8], seq: u64) -> Option<RetainedMessage>;
    /// Oldest retained seq of the stream, or `None` if nothing of it is retained.
    fn oldest(&self, stream: &[u8]) -> Option<u64>;
    /// Drops what is older than the age bound.
    fn expire(&mut self, now_ms: u64);
    /// Number of retained messages (all streams).
    fn len(&self) -> usize;
    /// True if nothing is retained.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Retained bytes (payload + stream names).
    fn bytes(&self) -> usize;
}

/// Bounds of a [`RingStore`]; all three apply together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionLimits {
    /// Maximum number of messages (default 100 000).
    pub max_messages: usize,
    /// Maximum bytes of payload + stream names (default 64 MiB).
    pub max_bytes: usize,
    /// Maximum age in ms (default 60 000).
    pub max_age_ms: u64,
}

impl Default for RetentionLimits {
    fn default() -> Self {
        RetentionLimits {
            max_messages: 100_000,
            max_bytes: 64 << 20,
            max_age_ms: 60_000,
        }
    }
}

/// Payload frames of a retained entry: one frame without a `Vec` (the common case).
#[derive(Debug)]
enum Frames {
    One(Bytes),
    Many(Vec<Bytes>),
}

#[derive(Debug)]
struct Entry {
    /// Index into `RingStore::slots`.
    slot: usize,
    seq: u64,
    timestamp_ms: u64,
    frames: Frames,
    stored_ms: u64,
    size: usize,
}

/// One stream of a [`RingStore`]: its name and its retained seqs.
#[derive(Debug)]
struct Slot {
    name: Bytes,
    /// (seq, global position), increasing.
    seqs: VecDeque<(u64, u64)>,
}

/// In-memory retention ring: one global FIFO over all streams, evicting the oldest entry while
/// any bound is exceeded, with a per-stream index for O(1) lookup by seq.
///
/// Streams are numbered once (a slot each, kept for the store's life like the publisher's own
/// table of streams); entries name their slot, so appending to the stream of the previous
/// append and evicting hash nothing and touch no reference count of the name.
#[derive(Debug)]
pub struct RingStore {
    limits: RetentionLimits,
    ring: VecDeque<Entry>,
    /// Global position of `ring[0]`.
    base: u64,
    ids: HashMap<Bytes, usize>,
    slots: Vec<Slot>,
    /// Slot of the last append.
    last: usize,
    bytes: usize,
}

impl RingStore {
    /// An empty ring with these bounds.
    pub fn new(limits: RetentionLimits) -> Self {
        RingStore {
            limits,
            ring: VecDeque::new(),
            base: 0,
            ids: HashMap::new(),
            slots: Vec::new(),
            last: usize::MAX,
            bytes: 0,
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> RetentionLimits {
        self.limits
    }

    fn slot_of(&mut self, stream: &Bytes) -> usize {
        if let Some(s) = self.slots.get(self.last) {
            if s.name[..] == stream[..] {
                return self.last;
            }
        }
        let i = match self.ids.get(&stream[..]) {
            Some(&i) => i,
            None => {
                let i = self.slots.len();
                self.slots.push(Slot {
                    name: stream.clone(),
                    seqs: VecDeque::new(),
                });
                self.ids.insert(stream.clone(), i);
                i
            }
        };
        self.last = i;
        i
    }

    fn seqs(&self, stream: &[u8]) -> Option<&VecDeque<(u64, u64)>> {
        let slot = match self.slots.get(self.last) {
            Some(s) if s.name[..] == *stream => s,
            _ => &self.slots[*self.ids.get(stream)?],
        };
        Some(&slot.seqs)
    }

    fn push(
        &mut self,
        stream: &Bytes,
        seq: u64,
        timestamp_ms: u64,
        frames: Frames,
        size: usize,
        now_ms: u64,
    ) {
        let slot = self.slot_of(stream);
        let g = self.base + self.ring.len() as u64;
        let dq = &mut self.slots[slot].seqs;
        if let Some(&(last, _)) = dq.back() {
            if seq <= last {
                // Contract violation (seqs must increase): refuse rather than corrupt order.
                log::warn!("rpub retention: non-increasing seq {seq} after {last}");
                return;
            }
        }
        dq.push_back((seq, g));
        let size = size + stream.len();
        self.bytes += size;
        self.ring.push_back(Entry {
            slot,
            seq,
            timestamp_ms,
            frames,
            stored_ms: now_ms,
            size,
        });
        self.enforce(now_ms);
    }

    fn evict_front(&mut self) {
        if let Some(e) = self.ring.pop_front() {
            self.base += 1;
            self.bytes -= e.size;
            let dq = &mut self.slots[e.slot].seqs;
            if dq.front().map(|&(s, _)| s) == Some(e.seq) {
                dq.pop_front();
            } else {
                // Not expected with increasing appends; keep the index consistent anyway.
                dq.retain(|&(s, _)| s != e.seq);
            }
        }
    }

    fn enforce(&mut self, now_ms: u64) {
        while let Some(front) = self.ring.front() {
            let too_old = now_ms.saturating_sub(front.stored_ms) > self.limits.max_age_ms;
            if self.ring.len() > self.limits.max_messages
                || self.bytes > self.limits.max_bytes
                || too_old
            {
                self.evict_front();
            } else {
                break;
            }
        }
    }
}

impl Default for RingStore {
    fn default() -> Self {
        RingStore::new(RetentionLimits::default())
    }
}

impl RetentionStore for RingStore {
    fn append(&mut self, stream: &Bytes, msg: RetainedMessage, now_ms: u64) {
        let size = msg.payload_len();
        let mut payload = msg.payload;
        let frames = if payload.len() == 1 {
            Frames::One(payload.pop().unwrap_or_default())
        } else {
            Frames::Many(payload)
        };
        self.push(stream, msg.seq, msg.timestamp_ms, frames, size, now_ms);
    }

    fn append_one(
        &mut self,
        stream: &Bytes,
        seq: u64,
        timestamp_ms: u64,
        payload: Bytes,
        now_ms: u64,
    ) {
        let size = payload.len();
        self.push(
            stream,
            seq,
            timestamp_ms,
            Frames::One(payload),
            size,
            now_ms,
        );
    }

    fn get(&self, stream: &[u8], seq: u64) -> Option<RetainedMessage> {
        let dq = self.seqs(stream)?;
        let &(first, _) = dq.front()?;
        if seq < first {
            return None;
        }
        let fast = usize::try_from(seq - first)
            .ok()
            .and_then(|i| dq.get(i))
            .filter(|&&(s, _)| s == seq);
        let &(_, g) = match fast {
            Some(p) => p,
            None => {
                let i = dq.binary_search_by_key(&seq, |&(s, _)| s).ok()?;
                &dq[i]
            }
        };
        let pos = usize::try_from(g.checked_sub(self.base)?).ok()?;
        self.ring.get(pos).map(|e| RetainedMessage {
            seq: e.seq,
            timestamp_ms: e.timestamp_ms,
            payload: match &e.frames {
                Frames::One(b) => vec![b.clone()],
                Frames::Many(v) => v.clone(),
            },
        })
    }

    fn oldest(&self, stream: &[u8]) -> Option<u64> {
        self.seqs(stream)?.front().map(|&(s, _)| s)
    }

    fn expire(&mut self, now_ms: u64) {
        self.enforce(now_ms);
    }

    fn len(&self) -> usize {
        self.ring.len()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, len: usize) -> RetainedMessage {
        RetainedMessage {
            seq,
            timestamp_ms: seq,
            payload: vec![Bytes::from(vec![0u8; len])],
        }
    }

    #[test]
    fn count_bound_evicts_oldest_globally() {
        let mut r = RingStore::new(RetentionLimits {
            max_messages: 3,
            max_bytes: usize::MAX,
            max_age_ms: u64::MAX,
        });
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        r.append(&a, msg(1, 1), 0);
        r.append(&b, msg(1, 1), 0);
        r.append(&a, msg(2, 1), 0);
        r.append(&a, msg(3, 1), 0);
        assert_eq!(r.len(), 3);
        assert_eq!(r.oldest(b"a"), Some(2));
        assert_eq!(r.oldest(b"b"), Some(1));
        assert!(r.get(b"a", 1).is_none());
        assert_eq!(r.get(b"a", 3).unwrap().seq, 3);
        r.append(&a, msg(4, 1), 0);
        assert_eq!(r.oldest(b"b"), None);
        assert!(r.get(b"b", 1).is_none());
        assert!(r.get(b"zz", 1).is_none());
    }

    #[test]
    fn byte_and_age_bounds() {
        let s = Bytes::from_static(b"s");
        let mut r = RingStore::new(RetentionLimits {
            max_messages: 1000,
            max_bytes: 31, // 3 messages of 10 bytes + 1 byte name each = 33 > 31
            max_age_ms: 100,
        });
        for i in 1..=3 {
            r.append(&s, msg(i, 10), 0);
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.bytes(), 22);
        assert_eq!(r.oldest(b"s"), Some(2));
        r.append(&s, msg(4, 1), 50);
        r.expire(101);
        assert_eq!(r.oldest(b"s"), Some(4));
        r.expire(151);
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
        // A message larger than the byte bound is not retained at all.
        r.append(&s, msg(5, 100), 200);
        assert!(r.is_empty());
        // Non-increasing seqs are refused.
        r.append(&s, msg(7, 1), 200);
        r.append(&s, msg(6, 1), 200);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn lookup_with_holes_uses_binary_search() {
        let s = Bytes::from_static(b"s");
        let mut r = RingStore::default();
        for seq in [1, 2, 5, 9] {
            r.append(&s, msg(seq, 1), 0);
        }
        assert_eq!(r.get(b"s", 5).unwrap().seq, 5);
        assert_eq!(r.get(b"s", 9).unwrap().seq, 9);
        assert!(r.get(b"s", 3).is_none());
        assert!(r.get(b"s", 10).is_none());
    }
}
