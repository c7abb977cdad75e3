//! Socket monitoring: libzmq-format events on a PAIR socket (`Socket::monitor`, as in the
//! `zmq` crate) and a typed channel ([`Socket::events`]) that needs no socket.
//!
//! Both sinks are fed by the I/O thread without ever blocking it: the PAIR socket is written
//! with `DONTWAIT` and the channel is bounded; an event that does not fit is dropped and
//! counted ([`EventReceiver::dropped`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::socket::Socket;

/// Event kinds, with libzmq's numeric values (`ZMQ_EVENT_*`), named as in the `zmq` crate.
#[allow(non_camel_case_types, missing_docs, clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SocketEvent {
    CONNECTED = 1,
    CONNECT_DELAYED = 2,
    CONNECT_RETRIED = 4,
    LISTENING = 8,
    BIND_FAILED = 16,
    ACCEPTED = 32,
    ACCEPT_FAILED = 64,
    CLOSED = 128,
    CLOSE_FAILED = 256,
    DISCONNECTED = 512,
    MONITOR_STOPPED = 1024,
    HANDSHAKE_FAILED_NO_DETAIL = 2048,
    HANDSHAKE_SUCCEEDED = 4096,
    HANDSHAKE_FAILED_PROTOCOL = 8192,
    HANDSHAKE_FAILED_AUTH = 16384,
    ALL = 0xFFFF,
}

const KINDS: [SocketEvent; 16] = [
    SocketEvent::CONNECTED,
    SocketEvent::CONNECT_DELAYED,
    SocketEvent::CONNECT_RETRIED,
    SocketEvent::LISTENING,
    SocketEvent::BIND_FAILED,
    SocketEvent::ACCEPTED,
    SocketEvent::ACCEPT_FAILED,
    SocketEvent::CLOSED,
    SocketEvent::CLOSE_FAILED,
    SocketEvent::DISCONNECTED,
    SocketEvent::MONITOR_STOPPED,
    SocketEvent::HANDSHAKE_FAILED_NO_DETAIL,
    SocketEvent::HANDSHAKE_SUCCEEDED,
    SocketEvent::HANDSHAKE_FAILED_PROTOCOL,
    SocketEvent::HANDSHAKE_FAILED_AUTH,
    SocketEvent::ALL,
];

impl SocketEvent {
    /// The libzmq value.
    pub fn to_raw(self) -> u16 {
        self as u16
    }

    /// The kind with libzmq value `raw` (unknown values give `ALL`; the `zmq` crate panics).
    pub fn from_raw(raw: u16) -> SocketEvent {
        KINDS
            .iter()
            .copied()
            .find(|k| k.to_raw() == raw)
            .unwrap_or(SocketEvent::ALL)
    }
}

/// One event, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorEvent {
    /// What happened.
    pub kind: SocketEvent,
    /// libzmq's event value: a file descriptor, an errno, a reconnect interval in ms, or a
    /// protocol error code, depending on `kind`.
    pub value: u32,
    /// The endpoint concerned (as bound or connected).
    pub endpoint: String,
    /// The peer's routing id, once its handshake told it (empty if it announced none).
    pub peer: Option<Bytes>,
    /// Why, for failures and disconnections (e.g. "heartbeat timed out").
    pub reason: Option<String>,
}

/// The receiving end of [`Socket::events`].
pub struct EventReceiver {
    rx: Receiver<MonitorEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventReceiver {
    /// The next event, waiting up to `timeout`.
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<MonitorEvent> {
        self.rx.recv_timeout(timeout).ok()
    }

    /// The next event if one is queued.
    pub fn try_recv(&self) -> Option<MonitorEvent> {
        self.rx.try_recv().ok()
    }

    /// The underlying channel (for `select!`).
    pub fn receiver(&self) -> &Receiver<MonitorEvent> {
        &self.rx
    }

    /// Events dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct ZmqSink {
    socket: Socket,
    mask: u32,
}

struct TypedSink {
    tx: Sender<MonitorEvent>,
    dropped: Arc<AtomicU64>,
}

/// The sinks of one socket; cheap to check when nobody monitors.
#[derive(Default)]
pub(crate) struct Monitor {
    active: AtomicBool,
    sinks: Mutex<(Option<ZmqSink>, Option<TypedSink>)>,
}

impl Monitor {
    fn lock(&self) -> MutexGuard<'_, (Option<ZmqSink>, Option<TypedSink>)> {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh(&self, sinks: &(Option<ZmqSink>, Option<TypedSink>)) {
        self.active
            .store(sinks.0.is_some() || sinks.1.is_some(), Ordering::Release);
    }

    /// Installs (or with `None`, removes) the libzmq-format sink; returns the old one so the
    /// caller can drop it outside the lock.
    pub fn set_zmq(&self, socket: Option<Socket>, mask: u32) -> Option<Socket> {
        let mut s = self.lock();
        let old = s.0.take();
        s.0 = socket.map(|socket| ZmqSink { socket, mask });
        self.refresh(&s);
        old.map(|z| z.socket)
    }

    /// A new typed channel of `capacity` events (replacing any earlier one).
    pub fn typed(&self, capacity: usize) -> EventReceiver {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut s = self.lock();
        s.1 = Some(TypedSink {
            tx,
            dropped: dropped.clone(),
        });
        self.refresh(&s);
        EventReceiver { rx, dropped }
    }

    /// True if anyone listens (skip building events otherwise).
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Delivers an event to every sink, never blocking.
    pub fn emit(&self, ev: MonitorEvent) {
        if !self.is_active() {
            return;
        }
        let s = self.lock();
        if let Some(z) = &s.0 {
            let kind = u32::from(ev.kind.to_raw());
            if z.mask & kind != 0 {
                let mut head = [0u8; 6];
                head[..2].copy_from_slice(&ev.kind.to_raw().to_ne_bytes());
                head[2..].copy_from_slice(&ev.value.to_ne_bytes());
                let sent = z
                    .socket
                    .send(&head[..], crate::SNDMORE | crate::DONTWAIT)
                    .and_then(|()| z.socket.send(ev.endpoint.as_str(), crate::DONTWAIT));
                if sent.is_err() {
                    log::debug!("monitor event {:?} dropped (monitor socket full)", ev.kind);
                }
            }
        }
        if let Some(t) = &s.1 {
            if let Err(TrySendError::Full(_)) = t.tx.try_send(ev) {
                t.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends MONITOR_STOPPED and removes every sink (the socket is closing).
    pub fn stop(&self, endpoint: &str) -> Option<Socket> {
        self.emit(MonitorEvent {
            kind: SocketEvent::MONITOR_STOPPED,
            value: 0,
            endpoint: endpoint.to_string(),
            peer: None,
            reason: None,
        });
        let mut s = self.lock();
        let old = s.0.take();
        s.1 = None;
        self.refresh(&s);
        old.map(|z| z.socket)
    }
}
