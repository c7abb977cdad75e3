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

#[derive(Debug)]
struct Entry {
    stream: Bytes,
    msg: RetainedMessage,
    stored_ms: u64,
    size: usize,
}

/// In-memory retention ring: one global FIFO over all streams, evicting the oldest entry while
/// any bound is exceeded, with a per-stream index for O(1) lookup by seq.
#[derive(Debug)]
pub struct RingStore {
    limits: RetentionLimits,
    ring: VecDeque<Entry>,
    /// Global position of `ring[0]`.
    base: u64,
    /// Per stream: (seq, global position), increasing.
    index: HashMap<Bytes, VecDeque<(u64, u64)>>,
    bytes: usize,
}

impl RingStore {
    /// An empty ring with these bounds.
    pub fn new(limits: RetentionLimits) -> Self {
        RingStore {
            limits,
            ring: VecDeque::new(),
            base: 0,
            index: HashMap::new(),
            bytes: 0,
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> RetentionLimits {
        self.limits
    }

    fn evict_front(&mut self) {
        if let Some(e) = self.ring.pop_front() {
            self.base += 1;
            self.bytes -= e.size;
            if let Some(dq) = self.index.get_mut(&e.stream) {
                if dq.front().map(|&(s, _)| s) == Some(e.msg.seq) {
                    dq.pop_front();
                } else {
                    // Not expected with increasing appends; keep the index consistent anyway.
                    dq.retain(|&(s, _)| s != e.msg.seq);
                }
                if dq.is_empty() {
                    self.index.remove(&e.stream);
                }
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
        // Look up by slice first: no key clone (a reference-count round trip) per append.
        let dq = match self.index.get_mut(&stream[..]) {
            Some(dq) => dq,
            None => self.index.entry(stream.clone()).or_default(),
        };
        if let Some(&(last, _)) = dq.back() {
            if msg.seq <= last {
                // Contract violation (seqs must increase): refuse rather than corrupt order.
                log::warn!(
                    "rpub retention: non-increasing seq {} after {}",
                    msg.seq,
                    last
                );
                return;
            }
        }
        let g = self.base + self.ring.len() as u64;
        dq.push_back((msg.seq, g));
        let size = msg.payload_len() + stream.len();
        self.bytes += size;
        self.ring.push_back(Entry {
            stream: stream.clone(),
            msg,
            stored_ms: now_ms,
            size,
        });
        self.enforce(now_ms);
    }

    fn get(&self, stream: &[u8], seq: u64) -> Option<RetainedMessage> {
        let dq = self.index.get(stream)?;
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
        self.ring.get(pos).map(|e| e.msg.clone())
    }

    fn oldest(&self, stream: &[u8]) -> Option<u64> {
        self.index.get(stream)?.front().map(|&(s, _)| s)
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
