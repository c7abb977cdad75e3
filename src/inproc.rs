//! `inproc://` — sockets of one context connected by a pair of pipes, with no I/O thread,
//! no encoding and no copy: the `Bytes` a user sends is the `Bytes` the peer receives.
//!
//! * **HWM.** Each direction is one pipe whose limit is the sum of the sender's `SNDHWM`
//!   and the receiver's `RCVHWM` (0 on either side means unlimited), as in libzmq. A connect
//!   made before the bind uses the connector's values and the default 1000 for the binder.
//! * **Connect before bind** works: the connector gets its pipes at once (messages queue) and
//!   the binder picks them up when it binds.
//! * **Re-bind.** When the binder unbinds or closes, each connector is detached and gets a
//!   fresh pending link, so a socket that binds the same name later is connected again, as if
//!   the connector had reconnected.
//! * **Contexts.** Names are per context. Connecting to a name that is bound only in another
//!   context fails with `ECONNREFUSED` (and a log line) rather than waiting forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::options::Options;
use crate::pattern::{Notify, Peer, Pipe};
use crate::shared::{MailEvent, SocketShared};

/// What the registry knows about one side of a link.
#[derive(Clone)]
pub(crate) struct Side {
    pub shared: Arc<SocketShared>,
    pub routing_id: Bytes,
    pub sndhwm: i32,
    pub rcvhwm: i32,
}

impl Side {
    pub fn new(shared: Arc<SocketShared>, opts: &Options) -> Side {
        Side {
            shared,
            routing_id: opts.routing_id.clone(),
            sndhwm: opts.sndhwm,
            rcvhwm: opts.rcvhwm,
        }
    }

    fn meta(&self) -> Arc<Metadata> {
        let mut m = Metadata::new();
        m.insert(
            "Socket-Type",
            Bytes::from_static(self.shared.socket_type.as_str().as_bytes()),
        );
        if !self.routing_id.is_empty() {
            m.insert("Identity", self.routing_id.clone());
        }
        Arc::new(m)
    }
}

/// A notifier whose target (the binder) is known only later.
#[derive(Default)]
struct Slot(Mutex<Option<Arc<dyn Notify>>>);

impl Notify for Slot {
    fn notify(&self) {
        let target = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(t) = target {
            t.notify();
        }
    }
}

impl Slot {
    fn set(&self, n: Arc<dyn Notify>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(n);
        self.notify();
    }
}

struct Link {
    connector: Side,
    conn_peer: u64,
    bind_peer: Option<u64>,
    to_binder: Arc<Pipe>,
    to_connector: Arc<Pipe>,
    slot: Arc<Slot>,
}

#[derive(Default)]
struct Name {
    binder: Option<Side>,
    links: Vec<Link>,
}

/// The inproc names of one context.
pub(crate) struct Registry {
    ctx: u64,
    ids: Arc<AtomicU64>,
    names: Mutex<HashMap<String, Name>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which contexts bind each name (to explain a cross-context connect).
fn global() -> &'static Mutex<HashMap<String, Vec<u64>>> {
    static G: OnceLock<Mutex<HashMap<String, Vec<u64>>>> = OnceLock::new();
    G.get_or_init(Default::default)
}

fn sum_hwm(a: i32, b: i32) -> usize {
    if a <= 0 || b <= 0 {
        0
    } else {
        Options::pipe_hwm(a.saturating_add(b))
    }
}

impl Registry {
    pub fn new(ids: Arc<AtomicU64>) -> Registry {
        static CTX: AtomicU64 = AtomicU64::new(1);
        Registry {
            ctx: CTX.fetch_add(1, Ordering::Relaxed),
            ids,
            names: Mutex::new(HashMap::new()),
        }
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes a new pending link for `connector` (pipes exist; no binder yet) and attaches
    /// it to the connector.
    fn new_link(&self, connector: Side, binder: Option<&Side>) -> (Link, Peer) {
        let slot = Arc::new(Slot::default());
        let (bind_rcv, bind_snd) = binder.map_or((1000, 1000), |b| (b.rcvhwm, b.sndhwm));
        let conn_signal: Arc<dyn Notify> = connector.shared.signal.clone();
        let to_binder = Arc::new(Pipe::new(
            sum_hwm(connector.sndhwm, bind_rcv),
            slot.clone(),
            conn_signal.clone(),
        ));
        let to_connector = Arc::new(Pipe::new(
            sum_hwm(bind_snd, connector.rcvhwm),
            conn_signal,
            slot.clone(),
        ));
        let conn_peer = self.next_id();
        let peer = Peer {
            id: conn_peer,
            out: to_binder.clone(),
            inp: to_connector.clone(),
            routing_id: binder.map(|b| b.routing_id.clone()).unwrap_or_default(),
            meta: binder.map(Side::meta),
        };
        let link = Link {
            connector,
            conn_peer,
            bind_peer: None,
            to_binder,
            to_connector,
            slot,
        };
        (link, peer)
    }

    /// Attaches a link's far ends to the binder.
    fn attach_to_binder(&self, link: &mut Link, binder: &Side) {
        let id = self.next_id();
        link.bind_peer = Some(id);
        binder.shared.post(MailEvent::Attach(Peer {
            id,
            out: link.to_connector.clone(),
            inp: link.to_binder.clone(),
            routing_id: link.connector.routing_id.clone(),
            meta: Some(link.connector.meta()),
        }));
        link.slot.set(binder.shared.signal.clone());
    }

    /// True if a socket of this context is bound to `name`.
    pub fn is_bound(&self, name: &str) -> bool {
        lock(&self.names)
            .get(name)
            .is_some_and(|n| n.binder.is_some())
    }

    pub fn bind(&self, name: &str, binder: Side) -> Result<()> {
        let mut names = lock(&self.names);
        let entry = names.entry(name.to_string()).or_default();
        if entry.binder.is_some() {
            return Err(Error::EADDRINUSE);
        }
        for link in &mut entry.links {
            self.attach_to_binder(link, &binder);
        }
        entry.binder = Some(binder);
        lock(global())
            .entry(name.to_string())
            .or_default()
            .push(self.ctx);
        Ok(())
    }

    /// Connects; returns the connector's peer for the socket to attach.
    pub fn connect(&self, name: &str, connector: Side) -> Result<Peer> {
        let mut names = lock(&self.names);
        let bound_here = names.get(name).is_some_and(|n| n.binder.is_some());
        if !bound_here {
            let elsewhere = lock(global())
                .get(name)
                .is_some_and(|ctxs| ctxs.iter().any(|c| *c != self.ctx));
            if elsewhere {
                log::warn!(
                    "inproc://{name} is bound in another context; inproc works within one context"
                );
                return Err(Error::ECONNREFUSED);
            }
        }
        let entry = names.entry(name.to_string()).or_default();
        if let Some(b) = &entry.binder {
            if !connector
                .shared
                .socket_type
                .is_compatible_with(b.shared.socket_type)
            {
                return Err(Error::ENOCOMPATPROTO);
            }
        }
        let binder = entry.binder.clone();
        let (mut link, peer) = self.new_link(connector, binder.as_ref());
        if let Some(b) = &binder {
            self.attach_to_binder(&mut link, b);
        }
        entry.links.push(link);
        Ok(peer)
    }

    /// Ends a link: closes its pipes and detaches both sides.
    fn end_link(link: &Link, binder: Option<&Side>, tell_connector: bool) {
        link.to_binder.close();
        link.to_connector.close();
        if let (Some(b), Some(id)) = (binder, link.bind_peer) {
            b.shared.post(MailEvent::Detach(id));
        }
        if tell_connector {
            link.connector
                .shared
                .post(MailEvent::Detach(link.conn_peer));
        }
    }

    /// The binder of `name` goes away (unbind or close): connectors fall back to pending.
    fn unbind_locked(&self, name: &str, entry: &mut Name) {
        let Some(binder) = entry.binder.take() else {
            return;
        };
        for link in std::mem::take(&mut entry.links) {
            Self::end_link(&link, Some(&binder), true);
            let (new_link, peer) = self.new_link(link.connector.clone(), None);
            link.connector.shared.post(MailEvent::Attach(peer));
            entry.links.push(new_link);
        }
        let mut g = lock(global());
        if let Some(ctxs) = g.get_mut(name) {
            if let Some(i) = ctxs.iter().position(|c| *c == self.ctx) {
                ctxs.swap_remove(i);
            }
            if ctxs.is_empty() {
                g.remove(name);
            }
        }
    }

    pub fn unbind(&self, name: &str, sock_id: u64) -> Result<()> {
        let mut names = lock(&self.names);
        match names.get_mut(name) {
            Some(entry)
                if entry
                    .binder
                    .as_ref()
                    .is_some_and(|b| b.shared.id == sock_id) =>
            {
                self.unbind_locked(name, entry);
                Ok(())
            }
            _ => Err(Error::ENOENT),
        }
    }

    pub fn disconnect(&self, name: &str, sock_id: u64) -> Result<()> {
        let mut names = lock(&self.names);
        let entry = names.get_mut(name).ok_or(Error::ENOENT)?;
        let before = entry.links.len();
        let binder = entry.binder.clone();
        entry.links.retain(|l| {
            let mine = l.connector.shared.id == sock_id;
            if mine {
                Self::end_link(l, binder.as_ref(), true);
            }
            !mine
        });
        if entry.links.len() == before {
            return Err(Error::ENOENT);
        }
        Ok(())
    }

    /// A socket was closed: unbind its names and end its links.
    pub fn socket_closed(&self, sock_id: u64) {
        let mut names = lock(&self.names);
        let keys: Vec<String> = names.keys().cloned().collect();
        for name in keys {
            let Some(entry) = names.get_mut(&name) else {
                continue;
            };
            if entry
                .binder
                .as_ref()
                .is_some_and(|b| b.shared.id == sock_id)
            {
                self.unbind_locked(&name, entry);
            }
            let binder = entry.binder.clone();
            entry.links.retain(|l| {
                let mine = l.connector.shared.id == sock_id;
                if mine {
                    // Let the binder drain what was sent before the close.
                    l.to_connector.close_and_clear();
                    l.to_binder.close();
                    if let (Some(b), Some(id)) = (&binder, l.bind_peer) {
                        b.shared.post(MailEvent::Detach(id));
                    }
                }
                !mine
            });
            if entry.binder.is_none() && entry.links.is_empty() {
                names.remove(&name);
            }
        }
    }
}
