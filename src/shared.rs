//! State shared between a socket's user-side handle and the I/O thread: the wake-up signal
//! the user thread parks on, and the mailbox through which the engine hands over peers.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::pattern::{Notify, Peer};
use crate::SocketType;

/// A sequence counter with a condition variable: waiters read the counter, re-check their
/// condition, then sleep until the counter moves (no lost wake-ups). Other signals (a
/// `poll` over several sockets) can subscribe to be notified too.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<SignalState>,
    cv: Condvar,
}

#[derive(Default)]
struct SignalState {
    seq: u64,
    subscribers: Vec<Weak<dyn Notify>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Signal {
    /// The current sequence number; pass it to [`Signal::wait`] after re-checking.
    pub fn seq(&self) -> u64 {
        lock(&self.state).seq
    }

    /// Sleeps until the sequence differs from `seen` or `deadline` passes. Returns false on
    /// timeout.
    pub fn wait(&self, seen: u64, deadline: Option<Instant>) -> bool {
        let mut st = lock(&self.state);
        while st.seq == seen {
            match deadline {
                None => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    st = self
                        .cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        true
    }

    /// Adds something to be notified whenever this signal is raised.
    pub fn subscribe(&self, other: &Arc<dyn Notify>) {
        let mut st = lock(&self.state);
        st.subscribers.retain(|w| w.strong_count() > 0);
        st.subscribers.push(Arc::downgrade(other));
    }

    /// Removes a subscriber added by [`Signal::subscribe`].
    pub fn unsubscribe(&self, other: &Arc<dyn Notify>) {
        let mut st = lock(&self.state);
        st.subscribers
            .retain(|w| w.strong_count() > 0 && !std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(other)));
    }

    /// Moves the sequence and wakes every waiter and subscriber.
    pub fn raise(&self) {
        let subs: Vec<Arc<dyn Notify>> = {
            let mut st = lock(&self.state);
            st.seq = st.seq.wrapping_add(1);
            st.subscribers.iter().filter_map(Weak::upgrade).collect()
        };
        self.cv.notify_all();
        for s in subs {
            s.notify();
        }
    }
}

impl Notify for Signal {
    fn notify(&self) {
        self.raise();
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
    has_mail: std::sync::atomic::AtomicBool,
}

impl SocketShared {
    pub fn new(id: u64, socket_type: SocketType) -> SocketShared {
        SocketShared {
            id,
            socket_type,
            signal: Arc::new(Signal::default()),
            monitor: Default::default(),
            mailbox: Mutex::new(Vec::new()),
            has_mail: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Called by the engine: queue an event and wake the socket.
    pub fn post(&self, ev: MailEvent) {
        lock(&self.mailbox).push(ev);
        self.has_mail
            .store(true, std::sync::atomic::Ordering::Release);
        self.signal.raise();
    }

    /// Called by the socket: take all queued events.
    pub fn take_mail(&self, out: &mut Vec<MailEvent>) {
        // A plain load first: on the hot path there is no mail, and a load keeps the cache
        // line shared instead of taking it exclusive as the swap would.
        if !self.has_mail.load(std::sync::atomic::Ordering::Acquire)
            || !self
                .has_mail
                .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
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
