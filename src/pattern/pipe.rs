//! [`Pipe`]: the one bounded queue between a socket and a peer, where the high-water mark lives.
//!
//! Each peer of a socket has two pipes: *outbound* (socket -> peer; the user thread writes,
//! the I/O thread or an inproc peer reads) and *inbound* (peer -> socket). A pipe carries
//! whole messages ([`Msg`], all frames of a multipart message at once), so a multipart
//! message is delivered whole or not at all, and the HWM counts messages, not frames.
//!
//! ## High-water mark
//! [`Pipe::push`] fails with the message handed back once the pipe holds `hwm` messages
//! (`hwm == 0` means no limit, as in libzmq). [`Pipe::force_push`] ignores the limit; sockets
//! use it only for the frames of a multipart message whose first frame was already admitted,
//! so a pipe never holds more than `hwm` messages plus one.
//!
//! ## Wake-ups (the ypipe rule)
//! Waking the other thread costs more than moving a message, so a pipe wakes its reader only
//! when the reader has found it empty and said it will sleep ([`Pipe::pop`] returning `None`
//! arms the flag), and wakes its writer only when the writer found it full and the queue has
//! since drained to the low-water mark (`hwm / 2`). Under load neither side is woken per
//! message; the notify callbacks run outside the pipe's lock.
//!
//! ## Direct writes
//! A pipe may carry a [`DirectSink`] (the engine installs one on REQ/REP connections): a push
//! that finds the pipe empty offers the message to the sink first, which writes it to the
//! connection on the pushing thread; only what it refuses is queued. Such messages never
//! count against the HWM (they are already in the kernel).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use super::frame::Frame;

/// Something to wake: the I/O thread (for a connection) or a socket's waiters.
pub trait Notify: Send + Sync {
    /// Called on the edge described in the module docs. Must not block.
    fn notify(&self);
}

/// What a [`DirectSink`] did with a message.
#[derive(Debug)]
pub enum DirectOutcome {
    /// Written whole to the peer.
    Sent,
    /// Started: the sink keeps the unwritten rest and the pipe's reader must be notified so
    /// that it finishes the write before anything else.
    Started,
    /// Not taken: queue it as usual.
    Refused(Msg),
}

/// A way for the pipe's writer to hand a message straight to the peer when nothing is
/// queued ahead of it, skipping the hand-off to the reader thread: the engine's direct
/// writer of REQ/REP connections (one thread hop less each way on a round trip).
pub trait DirectSink: Send + Sync {
    /// Takes `msg` if it can go out now; `idle()` tells (under the sink's own lock, which
    /// the reader holds while it drains the pipe) whether the pipe is empty.
    fn try_send(&self, msg: Msg, idle: &dyn Fn() -> bool) -> DirectOutcome;
}

/// A notifier that does nothing (tests, or sides that poll).
#[derive(Debug, Default)]
pub struct NoNotify;

impl Notify for NoNotify {
    fn notify(&self) {}
}

/// A whole message: one or more frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// A single-frame message (the common case: no allocation for a frame list).
    One(Frame),
    /// A multipart message of two or more frames.
    Many(Vec<Frame>),
}

impl Msg {
    /// Builds a message from its frames (at least one; an empty list gives one empty frame).
    pub fn from_frames(mut frames: Vec<Frame>) -> Msg {
        match frames.len() {
            0 => Msg::One(Frame::new()),
            1 => Msg::One(frames.pop().unwrap_or_default()),
            _ => Msg::Many(frames),
        }
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[Frame] {
        match self {
            Msg::One(b) => std::slice::from_ref(b),
            Msg::Many(v) => v,
        }
    }

    /// Consumes the message into its frames.
    pub fn into_frames(self) -> Vec<Frame> {
        match self {
            Msg::One(b) => vec![b],
            Msg::Many(v) => v,
        }
    }

    /// Total payload bytes over all frames.
    pub fn byte_len(&self) -> usize {
        self.frames().iter().map(|f| f.len()).sum()
    }
}

struct State {
    queue: VecDeque<Msg>,
    /// The reader found the pipe empty and may sleep: wake it on the next push.
    reader_waiting: bool,
    /// The writer found the pipe full: wake it when the queue drains to the LWM.
    writer_waiting: bool,
    /// The writer will push no more (peer gone); the reader drains what is left.
    closed: bool,
    /// The writer's last reading of [`ReaderSide::popped`]: at most the true count, so the
    /// HWM check on it can only err towards full, and is redone with a fresh reading then.
    /// The writer reads the reader's cache line only near the HWM, not on every push.
    seen_popped: u64,
}

/// Keeps what one thread writes on its own cache lines (128 bytes: two lines, for adjacent-line
/// prefetch), so the writer's lock and the reader's batch do not bounce one line between cores.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// The writer's side of a pipe (see [`Pipe`]).
struct WriterSide {
    lock: Mutex<State>,
    /// Messages ever pushed (the pipe holds `pushed - popped`); changed only under `lock`,
    /// read without it by [`Pipe::maybe_readable`].
    pushed: AtomicU64,
}

/// The reader's side of a pipe (see [`Pipe`]).
#[derive(Default)]
struct ReaderSide {
    /// The reader's batch (only the reader locks it, so the lock is never contended).
    batch: Mutex<VecDeque<Msg>>,
    /// Messages ever taken from `batch` (stored by the reader under the batch lock).
    popped: AtomicU64,
}

/// A bounded, single-producer single-consumer message queue with edge-triggered wake-ups.
///
/// The reader keeps a private batch: when it is empty, the reader takes *everything* the
/// writer queued in one swap under the shared lock, so the two threads meet once per batch,
/// not once per message.
pub struct Pipe {
    state: Padded<WriterSide>,
    rd: Padded<ReaderSide>,
    /// Set (under the state lock) when the writer waits for room; lets the reader skip the
    /// state lock on its pops until then.
    writer_waits: AtomicBool,
    hwm: usize,
    lwm: usize,
    reader: Arc<dyn Notify>,
    writer: Arc<dyn Notify>,
    /// Set when `direct` holds a sink (checked without the lock on every push).
    has_direct: AtomicBool,
    direct: Mutex<Option<Arc<dyn DirectSink>>>,
}

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe")
            .field("hwm", &self.hwm)
            .field("len", &self.len())
            .finish()
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave a queue inconsistent (every operation
    // is a single VecDeque call), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pipe {
    /// A pipe holding at most `hwm` messages (0 = unlimited), waking `reader` and `writer`
    /// on the edges described in the module docs.
    pub fn new(hwm: usize, reader: Arc<dyn Notify>, writer: Arc<dyn Notify>) -> Pipe {
        Pipe {
            state: Padded(WriterSide {
                lock: Mutex::new(State {
                    queue: VecDeque::new(),
                    reader_waiting: true,
                    writer_waiting: false,
                    closed: false,
                    seen_popped: 0,
                }),
                pushed: AtomicU64::new(0),
            }),
            rd: Padded::default(),
            writer_waits: AtomicBool::new(false),
            hwm,
            lwm: hwm.div_ceil(2),
            reader,
            writer,
            has_direct: AtomicBool::new(false),
            direct: Mutex::new(None),
        }
    }

    /// Installs (or with `None` removes) the sink [`Pipe::push`] tries before queueing.
    pub fn set_direct(&self, sink: Option<Arc<dyn DirectSink>>) {
        let mut d = relock(&self.direct);
        self.has_direct.store(sink.is_some(), Ordering::Release);
        *d = sink;
    }

    /// Offers `msg` to the direct sink; hands it back if the sink did not take it.
    fn push_direct(&self, msg: Msg) -> Result<(), Msg> {
        let Some(sink) = relock(&self.direct).clone() else {
            return Err(msg);
        };
        let idle = || {
            let st = self.lock();
            !st.closed && self.pushed() == self.rd.popped.load(Ordering::Acquire)
        };
        match sink.try_send(msg, &idle) {
            DirectOutcome::Sent => Ok(()),
            DirectOutcome::Started => {
                self.reader.notify();
                Ok(())
            }
            DirectOutcome::Refused(msg) => Err(msg),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        relock(&self.state.lock)
    }

    /// The high-water mark (0 = unlimited).
    pub fn hwm(&self) -> usize {
        self.hwm
    }

    fn full(&self, st: &mut State) -> bool {
        let pushed = self.pushed();
        if self.hwm == 0 || pushed - st.seen_popped < self.hwm as u64 {
            return false;
        }
        st.seen_popped = self.rd.popped.load(Ordering::Acquire);
        pushed - st.seen_popped >= self.hwm as u64
    }

    /// Messages ever pushed (exact under the state lock: only the writer changes it, there).
    fn pushed(&self) -> u64 {
        self.state.pushed.load(Ordering::Acquire)
    }

    /// Appends `msg` to the queue and counts it (under the state lock).
    fn enqueue(&self, st: &mut State, msg: Msg) {
        st.queue.push_back(msg);
        let p = self.state.pushed.load(Ordering::Relaxed);
        self.state.pushed.store(p + 1, Ordering::Release);
    }

    /// Counts `n` messages taken by the reader (under the batch lock: one writer).
    fn count_popped(&self, n: usize) {
        let p = self.rd.popped.load(Ordering::Relaxed);
        self.rd.popped.store(p + n as u64, Ordering::Release);
    }

    fn mark_writer_waiting(&self, st: &mut State) {
        st.writer_waiting = true;
        self.writer_waits.store(true, Ordering::Release);
    }

    /// Appends `msg` unless the pipe is full or closed; a refused message is handed back and
    /// the writer will be notified when there is room again.
    pub fn push(&self, msg: Msg) -> Result<(), Msg> {
        let msg = if self.has_direct.load(Ordering::Acquire) {
            match self.push_direct(msg) {
                Ok(()) => return Ok(()),
                Err(msg) => msg,
            }
        } else {
            msg
        };
        let wake = {
            let mut st = self.lock();
            if st.closed {
                return Err(msg);
            }
            if self.full(&mut st) {
                self.mark_writer_waiting(&mut st);
                return Err(msg);
            }
            self.enqueue(&mut st, msg);
            std::mem::take(&mut st.reader_waiting)
        };
        if wake {
            self.reader.notify();
        }
        Ok(())
    }

    /// Moves messages from the front of `msgs` into the pipe under one lock, until it is
    /// full (the writer is then notified when there is room); returns how many moved. A
    /// closed pipe takes nothing and the messages are dropped.
    pub fn push_many(&self, msgs: &mut VecDeque<Msg>) -> usize {
        let (n, wake) = {
            let mut st = self.lock();
            if st.closed {
                msgs.clear();
                return 0;
            }
            let mut n = 0;
            while !msgs.is_empty() {
                if self.full(&mut st) {
                    self.mark_writer_waiting(&mut st);
                    break;
                }
                if let Some(m) = msgs.pop_front() {
                    self.enqueue(&mut st, m);
                    n += 1;
                }
            }
            (n, n > 0 && std::mem::take(&mut st.reader_waiting))
        };
        if wake {
            self.reader.notify();
        }
        n
    }

    /// Appends `msg` even above the HWM (see the module docs). Dropped if the pipe is closed.
    pub fn force_push(&self, msg: Msg) {
        let wake = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            self.enqueue(&mut st, msg);
            std::mem::take(&mut st.reader_waiting)
        };
        if wake {
            self.reader.notify();
        }
    }

    /// True if a push would succeed now; if not, the writer will be notified when it would.
    pub fn has_room(&self) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        if self.full(&mut st) {
            self.mark_writer_waiting(&mut st);
            return false;
        }
        true
    }

    /// Refills the reader's batch from the shared queue. Returns false (and arms the reader
    /// wake-up) if both are empty.
    fn refill(&self, batch: &mut VecDeque<Msg>) -> bool {
        let mut st = self.lock();
        if st.queue.is_empty() {
            st.reader_waiting = true;
            return false;
        }
        std::mem::swap(&mut st.queue, batch);
        true
    }

    /// After the reader took messages: wake a waiting writer once the pipe drained to the
    /// low-water mark.
    fn after_pop(&self, left_in_batch: usize) {
        // A writer that finds the pipe full sets `writer_waits` and then (retrying under the
        // state lock) reads `popped` again; the reader stores `popped` and then reads
        // `writer_waits`. One of them must see the other's store, or the writer sleeps with
        // nobody to wake it. Between the reader's two steps its callers release the batch
        // lock, an atomic swap: a full barrier on x86 and ordered before this acquire load on
        // ARMv8, which is what keeps the two from passing each other (not a promise of the
        // Rust memory model; a SeqCst fence here and after the writer's store would be, but
        // measured tcp 1 B 4.60 -> 4.07 M/s, medians of 6 alternated runs: the fence is on
        // the receiving thread's path for every message).
        if !self.writer_waits.load(Ordering::Acquire) {
            return;
        }
        let wake = {
            let mut st = self.lock();
            if st.writer_waiting && st.queue.len() + left_in_batch <= self.lwm {
                st.writer_waiting = false;
                self.writer_waits.store(false, Ordering::Release);
                true
            } else {
                false
            }
        };
        if wake {
            self.writer.notify();
        }
    }

    /// Takes the oldest message. `None` means empty (the reader will be woken by the next
    /// push) or closed and drained (see [`Pipe::is_done`]).
    pub fn pop(&self) -> Option<Msg> {
        let mut batch = relock(&self.rd.batch);
        if batch.is_empty() && !self.refill(&mut batch) {
            return None;
        }
        let msg = batch.pop_front();
        let left = batch.len();
        self.count_popped(1);
        drop(batch);
        self.after_pop(left);
        msg
    }

    /// Moves up to `max` messages into `out`; returns how many. When the pipe is left empty
    /// the reader will be woken by the next push.
    pub fn pop_batch(&self, out: &mut Vec<Msg>, max: usize) -> usize {
        let mut batch = relock(&self.rd.batch);
        if batch.is_empty() && !self.refill(&mut batch) {
            return 0;
        }
        let n = batch.len().min(max);
        out.extend(batch.drain(..n));
        let left = batch.len();
        self.count_popped(n);
        if left == 0 {
            // Took everything: if the writer queued nothing meanwhile, the reader will
            // sleep, so the next push must wake it.
            let mut st = self.lock();
            if st.queue.is_empty() {
                st.reader_waiting = true;
            }
        }
        drop(batch);
        self.after_pop(left);
        n
    }

    /// True if at least one message is queued. When it is empty the reader is marked as
    /// waiting, so the next push wakes it (a poll can sleep on this answer).
    pub fn is_readable(&self) -> bool {
        let mut batch = relock(&self.rd.batch);
        !batch.is_empty() || self.refill(&mut batch)
    }

    /// True if a message may be queued; false only if none is, as far as this thread can
    /// tell without a lock. Unlike [`Pipe::is_readable`] it takes no lock and does not arm
    /// the reader's wake-up, so a reader that may sleep must not rely on it (PUB checks its
    /// peers' subscriptions with it on every send).
    pub fn maybe_readable(&self) -> bool {
        self.pushed() != self.rd.popped.load(Ordering::Acquire)
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        // Under the lock the push count cannot move, so it is never below the pop count.
        let _state = self.lock();
        (self.pushed() - self.rd.popped.load(Ordering::Acquire)) as usize
    }

    /// True if no message is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks the pipe closed: no more pushes are accepted; the reader drains what is queued
    /// and then sees [`Pipe::is_done`]. Both sides are woken.
    pub fn close(&self) {
        {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            st.closed = true;
            st.reader_waiting = false;
            st.writer_waiting = false;
        }
        self.reader.notify();
        self.writer.notify();
    }

    /// Closes the pipe and drops every queued message; returns how many were dropped.
    pub fn close_and_clear(&self) -> usize {
        let n = {
            let mut batch = relock(&self.rd.batch);
            let mut st = self.lock();
            let n = st.queue.len() + batch.len();
            st.queue.clear();
            batch.clear();
            self.count_popped(n);
            n
        };
        self.close();
        n
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// True once closed and fully drained.
    pub fn is_done(&self) -> bool {
        let st = self.lock();
        st.closed && self.pushed() == self.rd.popped.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Notify for Count {
        fn notify(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    impl Count {
        fn get(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn msg(i: u8) -> Msg {
        Msg::One(Frame::from(vec![i]))
    }

    fn pipe(hwm: usize) -> (Pipe, Arc<Count>, Arc<Count>) {
        let r = Arc::new(Count::default());
        let w = Arc::new(Count::default());
        (Pipe::new(hwm, r.clone(), w.clone()), r, w)
    }

    #[test]
    fn hwm_refuses_and_hands_back() {
        let (p, _, _) = pipe(3);
        for i in 0..3 {
            p.push(msg(i)).unwrap();
        }
        assert_eq!(p.push(msg(9)), Err(msg(9)));
        assert!(!p.has_room());
        p.force_push(msg(10));
        assert_eq!(p.len(), 4);
        assert_eq!(p.pop(), Some(msg(0)));
    }

    #[test]
    fn hwm_counts_exactly_although_the_writer_reads_the_reader_lazily() {
        // The writer's copy of the reader's count is stale after these pops; a push near
        // the HWM must re-read it, so exactly `hwm` messages are held at every point.
        let (p, _, _) = pipe(4);
        for round in 0..3u8 {
            let mut pushed = 0;
            while p.push(msg(round)).is_ok() {
                pushed += 1;
            }
            assert_eq!(p.len(), 4, "round {round}");
            assert!(round == 0 || pushed == 3, "round {round}: {pushed} pushed");
            assert!(p.pop().is_some());
            let mut out = Vec::new();
            assert_eq!(p.pop_batch(&mut out, 2), 2);
            assert_eq!(p.len(), 1);
        }
        while p.pop().is_some() {}
        assert!(p.is_empty());
        p.close();
        assert!(p.is_done());
    }

    #[test]
    fn push_many_fills_to_the_hwm_and_keeps_the_rest() {
        let (p, r, _) = pipe(3);
        let mut q: VecDeque<Msg> = (0..5).map(msg).collect();
        assert_eq!(p.push_many(&mut q), 3);
        assert_eq!(q.len(), 2);
        assert_eq!(q.front(), Some(&msg(3)));
        assert_eq!(r.get(), 1, "one wake for the batch");
        assert_eq!(p.pop(), Some(msg(0)));
        p.close();
        assert_eq!(p.push_many(&mut q), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn unlimited_when_hwm_is_zero() {
        let (p, _, _) = pipe(0);
        for i in 0..=255 {
            p.push(msg(i)).unwrap();
        }
        assert_eq!(p.len(), 256);
    }

    #[test]
    fn reader_woken_only_on_empty_edge_after_it_waited() {
        let (p, r, _) = pipe(100);
        // New pipe: reader is assumed asleep, first push wakes it.
        p.push(msg(1)).unwrap();
        assert_eq!(r.get(), 1);
        // Reader has not drained: further pushes do not wake.
        for i in 0..10 {
            p.push(msg(i)).unwrap();
        }
        assert_eq!(r.get(), 1);
        let mut out = Vec::new();
        assert_eq!(p.pop_batch(&mut out, 1000), 11);
        // Drained to empty: the next push wakes again, once.
        p.push(msg(2)).unwrap();
        p.push(msg(3)).unwrap();
        assert_eq!(r.get(), 2);
    }

    #[test]
    fn writer_woken_at_low_water_mark_after_it_found_the_pipe_full() {
        let (p, _, w) = pipe(4);
        for i in 0..4 {
            p.push(msg(i)).unwrap();
        }
        p.pop();
        assert_eq!(w.get(), 0, "writer never found it full yet");
        p.push(msg(4)).unwrap();
        assert!(p.push(msg(5)).is_err());
        p.pop(); // 3 left, lwm is 2
        assert_eq!(w.get(), 0);
        p.pop(); // 2 left: wake
        assert_eq!(w.get(), 1);
        p.pop();
        assert_eq!(w.get(), 1, "one wake per full edge");
    }

    #[test]
    fn close_lets_the_reader_drain_then_reports_done() {
        let (p, r, w) = pipe(10);
        p.push(msg(1)).unwrap();
        p.close();
        assert!(r.get() >= 1 && w.get() >= 1);
        assert_eq!(p.push(msg(2)), Err(msg(2)));
        assert!(!p.is_done());
        assert_eq!(p.pop(), Some(msg(1)));
        assert!(p.is_done());
    }

    #[test]
    fn multipart_is_one_message() {
        let (p, _, _) = pipe(1);
        let m = Msg::from_frames(vec![Frame::from_static(b"a"), Frame::from_static(b"b")]);
        p.push(m.clone()).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p.pop().unwrap().frames().len(), 2);
        assert_eq!(Msg::from_frames(vec![]).frames().len(), 1);
    }

    #[test]
    fn threads_transfer_everything_in_order() {
        struct Unpark(std::thread::Thread);
        impl Notify for Unpark {
            fn notify(&self) {
                self.0.unpark();
            }
        }
        let reader_thread = std::thread::current();
        let p = Arc::new(Pipe::new(
            16,
            Arc::new(Unpark(reader_thread)),
            Arc::new(NoNotify),
        ));
        let p2 = p.clone();
        let writer = std::thread::spawn(move || {
            for i in 0..10_000u32 {
                let mut m = Msg::One(Frame::from(i.to_be_bytes().to_vec()));
                loop {
                    match p2.push(m) {
                        Ok(()) => break,
                        Err(back) => {
                            m = back;
                            std::thread::yield_now();
                        }
                    }
                }
            }
        });
        let mut next = 0u32;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while next < 10_000 {
            assert!(std::time::Instant::now() < deadline, "stalled at {next}");
            match p.pop() {
                Some(m) => {
                    let b: [u8; 4] = m.frames()[0][..].try_into().unwrap();
                    assert_eq!(u32::from_be_bytes(b), next);
                    next += 1;
                }
                None => std::thread::park_timeout(std::time::Duration::from_millis(10)),
            }
        }
        writer.join().unwrap();
    }
}

#[cfg(test)]
mod stress {
    use super::*;
    use crate::shared::Signal;
    use std::time::{Duration, Instant};

    /// True if `ready()` holds, or once `signal` is raised after it was checked (the way a
    /// socket waits on its pipes); false if no raise came within 10 s.
    fn ready_or_woken(signal: &Signal, ready: impl FnOnce() -> bool) -> bool {
        let seen = signal.seq();
        ready() || signal.wait(seen, Some(Instant::now() + Duration::from_secs(10)))
    }

    #[cfg(miri)]
    const N: u32 = 60;
    #[cfg(not(miri))]
    const N: u32 = 200_000;

    fn run(hwm: usize, batch_writer: bool, batch_reader: bool) {
        let rs = Arc::new(Signal::default());
        let ws = Arc::new(Signal::default());
        let p = Arc::new(Pipe::new(hwm, rs.clone(), ws.clone()));
        let (p2, ws2) = (p.clone(), ws.clone());
        let writer = std::thread::spawn(move || {
            let mut next = 0u32;
            let mut q = VecDeque::new();
            while next < N {
                let m = |i: u32| Msg::One(Frame::from(i.to_be_bytes().to_vec()));
                if batch_writer {
                    while q.len() < 7 && next < N {
                        q.push_back(m(next));
                        next += 1;
                    }
                    while !q.is_empty() {
                        if p2.push_many(&mut q) == 0 {
                            assert!(ready_or_woken(&ws2, || p2.has_room()), "writer never woken");
                        }
                    }
                } else {
                    let mut msg = m(next);
                    loop {
                        match p2.push(msg) {
                            Ok(()) => break,
                            Err(back) => {
                                msg = back;
                                assert!(
                                    ready_or_woken(&ws2, || p2.has_room()),
                                    "writer never woken"
                                );
                            }
                        }
                    }
                    next += 1;
                }
            }
            p2.close();
        });
        let mut expect = 0u32;
        let mut out = Vec::new();
        loop {
            out.clear();
            let got = if batch_reader {
                p.pop_batch(&mut out, 5)
            } else {
                p.pop().map(|m| out.push(m)).map_or(0, |()| 1)
            };
            for m in out.drain(..) {
                let b: [u8; 4] = m.frames()[0][..].try_into().unwrap();
                assert_eq!(u32::from_be_bytes(b), expect);
                expect += 1;
            }
            if got == 0 {
                if p.is_done() {
                    break;
                }
                assert!(
                    ready_or_woken(&rs, || p.is_readable()),
                    "reader never woken at {expect}"
                );
            }
        }
        assert_eq!(expect, N);
        writer.join().unwrap();
        assert!(p.is_done() && p.is_empty());
    }

    #[test]
    fn two_threads_push_pop() {
        run(4, false, false);
    }

    #[test]
    fn two_threads_push_many_pop_batch() {
        run(3, true, true);
    }

    #[test]
    fn two_threads_mixed() {
        run(1, false, true);
        run(8, true, false);
        run(0, true, true);
    }
}
