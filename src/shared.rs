//! State shared between a socket's user-side handle and the I/O thread: the wake-up signal
//! the user thread parks on, and the mailbox through which the engine hands over peers.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::pattern::{Notify, Peer};
use crate::SocketType;

/// A sequence counter with a condition variable: waiters read the counter, re-check their
/// condition, then sleep until the counter moves (no lost wake-ups). Other signals (a
/// `poll` over several sockets) can subscribe to be notified too.
///
/// Raising costs one atomic add when nobody sleeps: the condition variable (a `futex` wake,
/// a system call) is touched only while a waiter is registered in `sleepers`. The counter and
/// `sleepers` are both sequentially consistent, so a raise either moves the counter before
/// the waiter's last check or sees the waiter registered and wakes it under the lock.
///
/// A waiter may first spin for a bounded time ([`Signal::wait_spinning`]): on a machine with
/// free cores the other thread's next raise often comes within microseconds, and catching it
/// spinning saves the sleeping and the waking thread a system call each and the wake-up
/// latency of a sleeping thread (tens of microseconds across cores on virtual machines).
#[derive(Default)]
pub(crate) struct Signal {
    seq: AtomicU64,
    /// Threads inside [`Signal::wait`] past their registration.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    /// Set while `subscribers` is not empty (checked without the lock on every raise).
    has_subscribers: AtomicBool,
    subscribers: Mutex<Vec<Weak<dyn Notify>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Signal {
    /// The current sequence number; pass it to [`Signal::wait`] after re-checking.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Sleeps until the sequence differs from `seen` or `deadline` passes. Returns false on
    /// timeout.
    pub fn wait(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut g = lock(&self.lock);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let raised = loop {
            if self.seq.load(Ordering::SeqCst) != seen {
                break true;
            }
            match deadline {
                None => g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break false;
                    }
                    g = self
                        .cv
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        raised
    }

    /// As [`Signal::wait`], but first spins for up to `spin` (see the type's docs); with a
    /// zero `spin` it is `wait`.
    pub fn wait_spinning(&self, seen: u64, deadline: Option<Instant>, spin: Duration) -> bool {
        if !spin.is_zero() {
            let start = Instant::now();
            let until = deadline.map_or(start + spin, |d| d.min(start + spin));
            loop {
                for _ in 0..SPIN_BATCH {
                    if self.seq.load(Ordering::Relaxed) != seen {
                        // Pairs with the raiser's SeqCst add: what it published is visible.
                        return self.seq.load(Ordering::SeqCst) != seen;
                    }
                    std::hint::spin_loop();
                }
                let now = Instant::now();
                if now >= until {
                    break;
                }
                if now >= start + PURE_SPIN {
                    std::thread::yield_now();
                }
            }
        }
        self.wait(seen, deadline)
    }

    /// Adds something to be notified whenever this signal is raised.
    pub fn subscribe(&self, other: &Arc<dyn Notify>) {
        let mut subs = lock(&self.subscribers);
        subs.retain(|w| w.strong_count() > 0);
        subs.push(Arc::downgrade(other));
        self.has_subscribers.store(true, Ordering::SeqCst);
        // The caller checks readiness next; a raise that missed the flag must have published
        // its state change before that check (see `raise`).
        fence(Ordering::SeqCst);
    }

    /// Removes a subscriber added by [`Signal::subscribe`].
    pub fn unsubscribe(&self, other: &Arc<dyn Notify>) {
        let mut subs = lock(&self.subscribers);
        subs.retain(|w| w.strong_count() > 0 && !std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(other)));
        self.has_subscribers
            .store(!subs.is_empty(), Ordering::SeqCst);
    }

    /// Moves the sequence and wakes every waiter and subscriber.
    pub fn raise(&self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            // The waiter holds the lock from its registration until it sleeps, so this
            // notification cannot fall between its last check and its sleep.
            drop(lock(&self.lock));
            self.cv.notify_all();
        }
        fence(Ordering::SeqCst);
        if !self.has_subscribers.load(Ordering::SeqCst) {
            return;
        }
        let subs: Vec<Arc<dyn Notify>> = lock(&self.subscribers)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for s in subs {
            s.notify();
        }
    }
}

/// Spin iterations between two clock reads in [`Signal::wait_spinning`].
const SPIN_BATCH: u32 = 64;

/// The first part of a spin only spins; after it, each batch also yields the CPU, so that a
/// thread that needs this core (the other side, on a loaded or pinned machine) gets it.
const PURE_SPIN: Duration = Duration::from_micros(10);

/// How long a blocking receive awaiting a reply spins before it sleeps: 0 when the process may run on
/// one CPU only (spinning would hold the core the other thread needs), else
/// [`DEFAULT_SPIN`], or `FERROMQ_SPIN_US` microseconds if that variable is set.
pub(crate) fn spin_budget() -> Duration {
    static BUDGET: OnceLock<Duration> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        budget_for(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            std::env::var("FERROMQ_SPIN_US").ok().as_deref(),
        )
    })
}

/// [`spin_budget`] for `cpus` usable CPUs and the variable's value.
fn budget_for(cpus: usize, var: Option<&str>) -> Duration {
    match var.and_then(|v| v.trim().parse::<u64>().ok()) {
        Some(us) => Duration::from_micros(us),
        None if cpus > 1 => DEFAULT_SPIN,
        None => Duration::ZERO,
    }
}

/// See [`spin_budget`].
pub(crate) const DEFAULT_SPIN: Duration = Duration::from_micros(50);

impl Notify for Signal {
    fn notify(&self) {
        self.raise();
    }
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .field("sleepers", &self.sleepers.load(Ordering::Relaxed))
            .finish()
    }
}

/// What the engine tells a socket.
pub(crate) enum MailEvent {
    /// A peer's pipes are ready (handshake done, or a connect with queued messages).
    Attach(Peer),
    /// A peer's connection ended; its pipes are closed.
    Detach(u64),
}

/// The part of a socket the I/O thread holds.
pub(crate) struct SocketShared {
    pub id: u64,
    pub socket_type: SocketType,
    pub signal: Arc<Signal>,
    pub monitor: crate::monitor::Monitor,
    mailbox: Mutex<Vec<MailEvent>>,
    /// Set after a post, so the socket checks its mailbox without locking it.
    has_mail: AtomicBool,
}

impl SocketShared {
    pub fn new(id: u64, socket_type: SocketType) -> SocketShared {
        SocketShared {
            id,
            socket_type,
            signal: Arc::new(Signal::default()),
            monitor: Default::default(),
            mailbox: Mutex::new(Vec::new()),
            has_mail: AtomicBool::new(false),
        }
    }

    /// Called by the engine: queue an event and wake the socket.
    pub fn post(&self, ev: MailEvent) {
        lock(&self.mailbox).push(ev);
        self.has_mail.store(true, Ordering::Release);
        self.signal.raise();
    }

    /// Called by the socket: take all queued events.
    pub fn take_mail(&self, out: &mut Vec<MailEvent>) {
        // A plain load first: on the hot path there is no mail, and a load keeps the cache
        // line shared instead of taking it exclusive as the swap would.
        if !self.has_mail.load(Ordering::Acquire) || !self.has_mail.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut mb = lock(&self.mailbox);
        if !mb.is_empty() {
            out.append(&mut mb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wait_returns_after_raise_and_times_out_without() {
        let s = Arc::new(Signal::default());
        let seen = s.seq();
        assert!(!s.wait(seen, Some(Instant::now() + Duration::from_millis(20))));
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.raise());
        assert!(s.wait(seen, Some(Instant::now() + Duration::from_secs(10))));
        t.join().unwrap();
    }

    #[test]
    fn a_raise_during_the_spin_ends_the_wait_without_sleeping() {
        let s = Arc::new(Signal::default());
        for _ in 0..200 {
            let seen = s.seq();
            let s2 = s.clone();
            let t = std::thread::spawn(move || s2.raise());
            // A spin longer than the test's patience: if the raise were missed, the wait
            // would run into the deadline and return false.
            let deadline = Instant::now() + Duration::from_secs(10);
            assert!(s.wait_spinning(seen, Some(deadline), Duration::from_secs(20)));
            t.join().unwrap();
        }
        assert_eq!(s.sleepers.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_spinning_wait_honours_its_deadline_and_then_sleeps() {
        let s = Signal::default();
        let t0 = Instant::now();
        let seen = s.seq();
        assert!(!s.wait_spinning(
            seen,
            Some(t0 + Duration::from_millis(20)),
            Duration::from_secs(5)
        ));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(20) && took < Duration::from_secs(5),
            "{took:?}"
        );
        // Spin shorter than the wait: the rest is slept, and a raise wakes the sleeper.
        let s = Arc::new(s);
        let s2 = s.clone();
        let seen = s.seq();
        let t = std::thread::spawn(move || {
            while s2.sleepers.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            s2.raise();
        });
        assert!(s.wait_spinning(
            seen,
            Some(Instant::now() + Duration::from_secs(10)),
            Duration::from_micros(50)
        ));
        t.join().unwrap();
    }

    #[test]
    fn no_wake_up_is_lost_between_two_threads() {
        // Ping-pong over two signals: each side waits for the other's raise. A lost wake-up
        // stalls the exchange and fails on the deadline.
        let a = Arc::new(Signal::default());
        let b = Arc::new(Signal::default());
        let (a2, b2) = (a.clone(), b.clone());
        let rounds = 20_000;
        let deadline = Instant::now() + Duration::from_secs(60);
        let seen_a = a.seq();
        let t = std::thread::spawn(move || {
            let mut seen = seen_a;
            for i in 0..rounds {
                let spin = if i % 2 == 0 {
                    Duration::ZERO
                } else {
                    Duration::from_micros(5)
                };
                assert!(a2.wait_spinning(seen, Some(deadline), spin), "round {i}");
                seen = a2.seq();
                b2.raise();
            }
        });
        let mut seen = b.seq();
        for i in 0..rounds {
            a.raise();
            assert!(b.wait(seen, Some(deadline)), "round {i}");
            seen = b.seq();
        }
        t.join().unwrap();
    }

    #[test]
    fn spinning_is_off_on_one_cpu_and_settable() {
        assert_eq!(budget_for(1, None), Duration::ZERO);
        assert_eq!(budget_for(2, None), DEFAULT_SPIN);
        assert_eq!(budget_for(8, Some("0")), Duration::ZERO);
        assert_eq!(budget_for(1, Some(" 25 ")), Duration::from_micros(25));
        assert_eq!(budget_for(4, Some("lots")), DEFAULT_SPIN);
    }

    #[test]
    fn subscribers_are_raised() {
        let a = Arc::new(Signal::default());
        let b = Arc::new(Signal::default());
        let bn: Arc<dyn Notify> = b.clone();
        a.subscribe(&bn);
        let seen = b.seq();
        a.raise();
        assert_ne!(b.seq(), seen);
        a.unsubscribe(&bn);
        let seen = b.seq();
        a.raise();
        assert_eq!(b.seq(), seen);
    }
}
