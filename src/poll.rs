//! `poll` over sockets (and raw file descriptors), compatible with `zmq::poll`.
//!
//! Level-triggered: an item is ready while its socket can receive (`POLLIN`) or send
//! (`POLLOUT`) without blocking. The caller parks on one signal that every polled socket
//! raises when its pipes change, so an idle poll costs no CPU.

use std::ops::{BitAnd, BitOr, BitOrAssign};
use std::os::unix::io::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pattern::Notify;
use crate::shared::Signal;
use crate::socket::Socket;

/// A set of poll events (`POLLIN`, `POLLOUT`, `POLLERR`, `POLLPRI`), like the `zmq` crate's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PollEvents(i16);

impl PollEvents {
    /// Readable.
    pub const POLLIN: PollEvents = PollEvents(1);
    /// Writable.
    pub const POLLOUT: PollEvents = PollEvents(2);
    /// Error (raw file descriptors only).
    pub const POLLERR: PollEvents = PollEvents(4);
    /// Priority data (raw file descriptors only).
    pub const POLLPRI: PollEvents = PollEvents(8);

    /// No event.
    pub const fn empty() -> PollEvents {
        PollEvents(0)
    }
    /// Every event.
    pub const fn all() -> PollEvents {
        PollEvents(15)
    }
    /// The raw bits.
    pub const fn bits(&self) -> i16 {
        self.0
    }
    /// Events from raw bits, ignoring unknown ones.
    pub const fn from_bits_truncate(bits: i16) -> PollEvents {
        PollEvents(bits & 15)
    }
    /// Events from raw bits, `None` if unknown bits are set.
    pub const fn from_bits(bits: i16) -> Option<PollEvents> {
        if bits & !15 == 0 {
            Some(PollEvents(bits))
        } else {
            None
        }
    }
    /// True if every event of `other` is set.
    pub const fn contains(&self, other: PollEvents) -> bool {
        self.0 & other.0 == other.0
    }
    /// True if any event of `other` is set.
    pub const fn intersects(&self, other: PollEvents) -> bool {
        self.0 & other.0 != 0
    }
    /// True if no event is set.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// Sets the events of `other`.
    pub fn insert(&mut self, other: PollEvents) {
        self.0 |= other.0;
    }
    /// Clears the events of `other`.
    pub fn remove(&mut self, other: PollEvents) {
        self.0 &= !other.0;
    }
}

impl BitOr for PollEvents {
    type Output = PollEvents;
    fn bitor(self, rhs: PollEvents) -> PollEvents {
        PollEvents(self.0 | rhs.0)
    }
}

impl BitOrAssign for PollEvents {
    fn bitor_assign(&mut self, rhs: PollEvents) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for PollEvents {
    type Output = PollEvents;
    fn bitand(self, rhs: PollEvents) -> PollEvents {
        PollEvents(self.0 & rhs.0)
    }
}

/// Readable (same as `zmq::POLLIN`).
pub const POLLIN: PollEvents = PollEvents::POLLIN;
/// Writable (same as `zmq::POLLOUT`).
pub const POLLOUT: PollEvents = PollEvents::POLLOUT;
/// Error (same as `zmq::POLLERR`).
pub const POLLERR: PollEvents = PollEvents::POLLERR;
/// Priority (same as `zmq::POLLPRI`).
pub const POLLPRI: PollEvents = PollEvents::POLLPRI;

/// One entry of a [`poll`] call: a socket or a raw file descriptor and the events wanted.
pub struct PollItem<'a> {
    socket: Option<&'a Socket>,
    fd: RawFd,
    events: PollEvents,
    revents: PollEvents,
}

impl<'a> PollItem<'a> {
    pub(crate) fn from_socket(socket: &'a Socket, events: PollEvents) -> PollItem<'a> {
        PollItem {
            socket: Some(socket),
            fd: -1,
            events,
            revents: PollEvents::empty(),
        }
    }

    /// An item for a raw file descriptor.
    pub fn from_fd(fd: RawFd, events: PollEvents) -> PollItem<'a> {
        PollItem {
            socket: None,
            fd,
            events,
            revents: PollEvents::empty(),
        }
    }

    /// Changes the events wanted.
    pub fn set_events(&mut self, events: PollEvents) {
        self.events = events;
    }

    /// The events found by the last [`poll`].
    pub fn get_revents(&self) -> PollEvents {
        self.revents
    }

    /// `POLLIN` was found.
    pub fn is_readable(&self) -> bool {
        self.revents.contains(POLLIN)
    }

    /// `POLLOUT` was found.
    pub fn is_writable(&self) -> bool {
        self.revents.contains(POLLOUT)
    }

    /// `POLLERR` was found.
    pub fn is_error(&self) -> bool {
        self.revents.contains(POLLERR)
    }

    /// True if this item polls `socket`.
    pub fn has_socket(&self, socket: &Socket) -> bool {
        self.socket.is_some_and(|s| std::ptr::eq(s, socket))
    }

    /// True if this item polls the raw descriptor `fd`.
    pub fn has_fd(&self, fd: RawFd) -> bool {
        self.socket.is_none() && self.fd == fd
    }
}

/// Wakes a `mio::Poll` when a socket signal is raised (polls that include raw fds).
struct WakeMio(mio::Waker);

impl Notify for WakeMio {
    fn notify(&self) {
        let _ = self.0.wake();
    }
}

/// Waits until at least one item is ready or `timeout` ms pass (-1 = forever, 0 = just
/// check). Returns the number of ready items and sets each item's `revents`.
///
/// ```
/// let ctx = ferromq::Context::new();
/// let s = ctx.socket(ferromq::PULL).unwrap();
/// let mut items = [s.as_poll_item(ferromq::POLLIN)];
/// assert_eq!(ferromq::poll(&mut items, 10).unwrap(), 0);
/// ```
pub fn poll(items: &mut [PollItem<'_>], timeout: i64) -> Result<i32> {
    let deadline = u64::try_from(timeout)
        .ok()
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let has_fds = items.iter().any(|i| i.socket.is_none());
    let signal = Arc::new(Signal::default());
    let mut mio_poll = None;
    let waker_notify: Option<Arc<dyn Notify>> = if has_fds {
        let p = mio::Poll::new().map_err(|e| Error::from_io(&e))?;
        let waker = mio::Waker::new(p.registry(), mio::Token(usize::MAX))
            .map_err(|e| Error::from_io(&e))?;
        for (i, item) in items.iter().enumerate() {
            if item.socket.is_none() {
                let mut interest = None;
                if item.events.contains(POLLIN) {
                    interest = Some(mio::Interest::READABLE);
                }
                if item.events.contains(POLLOUT) {
                    interest = Some(
                        interest
                            .map_or(mio::Interest::WRITABLE, |x| x.add(mio::Interest::WRITABLE)),
                    );
                }
                let interest = interest.unwrap_or(mio::Interest::READABLE);
                p.registry()
                    .register(&mut mio::unix::SourceFd(&item.fd), mio::Token(i), interest)
                    .map_err(|e| Error::from_io(&e))?;
            }
        }
        mio_poll = Some(p);
        Some(Arc::new(WakeMio(waker)))
    } else {
        None
    };
    let notify: Arc<dyn Notify> = match &waker_notify {
        Some(n) => n.clone(),
        None => signal.clone(),
    };
    for item in items.iter() {
        if let Some(s) = item.socket {
            s.signal().subscribe(&notify);
        }
    }
    let result = poll_loop(items, deadline, &signal, mio_poll.as_mut());
    for item in items.iter() {
        if let Some(s) = item.socket {
            s.signal().unsubscribe(&notify);
        }
    }
    result
}

fn poll_loop(
    items: &mut [PollItem<'_>],
    deadline: Option<Instant>,
    signal: &Signal,
    mut mio_poll: Option<&mut mio::Poll>,
) -> Result<i32> {
    let mut events = mio::Events::with_capacity(items.len().max(1));
    let mut fd_ready: Vec<PollEvents> = vec![PollEvents::empty(); items.len()];
    loop {
        let seen = signal.seq();
        let mut ready = 0;
        for (i, item) in items.iter_mut().enumerate() {
            item.revents = match item.socket {
                Some(s) => s.ready_events()? & item.events,
                None => std::mem::take(&mut fd_ready[i]) & (item.events | POLLERR),
            };
            if !item.revents.is_empty() {
                ready += 1;
            }
        }
        if ready > 0 {
            return Ok(ready);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(0);
        }
        match mio_poll.as_deref_mut() {
            Some(p) => {
                let left = deadline.map(|d| d - now);
                if let Err(e) = p.poll(&mut events, left) {
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(Error::from_io(&e));
                    }
                }
                for ev in events.iter() {
                    let i = ev.token().0;
                    if let Some(slot) = fd_ready.get_mut(i) {
                        if ev.is_readable() || ev.is_read_closed() {
                            slot.insert(POLLIN);
                        }
                        if ev.is_writable() {
                            slot.insert(POLLOUT);
                        }
                        if ev.is_error() {
                            slot.insert(POLLERR);
                        }
                    }
                }
            }
            None => {
                signal.wait(seen, deadline);
            }
        }
    }
}
