//! The discovery service on real sockets, and its client side.
//!
//! An instance ([`DiscoveryService`]) runs a [`LeaseTable`] behind a ROUTER (REGISTER,
//! RENEW, UNREGISTER, LIST ⇄ ACK, LIST_REPLY; single frames, no delimiter) and publishes
//! JOIN/LEAVE EVENTs on a PUB (`["\0RPDISC"][event]`). Run several (three is typical): nodes
//! register with all of them and clients merge their answers, so losing instances loses
//! nothing as long as one answers.
//!
//! The node/client side ([`DiscoveryLink`]) wires a [`Registrar`] and/or a
//! [`DiscoveryClient`] to one DEALER + SUB pair per instance; the bus threads
//! ([`super::bus`]) poll its sockets together with their own.
//!
//! ```
//! use ferromq::rpub::service::DiscoveryService;
//! let ctx = ferromq::Context::new();
//! let svc = DiscoveryService::start(&ctx, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
//!     Default::default()).unwrap();
//! let addr = svc.address();
//! assert!(addr.requests.starts_with("tcp://127.0.0.1:"));
//! ```

use super::bus::{recv_frames, send_frames, Clock};
use super::discovery::{
    ClientConfig, DiscoveryClient, LeaseConfig, LeaseTable, NodeChange, Registrar, RegistrarEvent,
};
use super::wire::{DiscoveryMessage, Endpoint, Id128, NodeId, DISCOVERY_TOPIC};
use crate::{Context, Error as ZmqError, Socket, SocketType, DONTWAIT, POLLIN};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The two endpoints of one discovery instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryAddress {
    /// The ROUTER (requests).
    pub requests: String,
    /// The PUB (events).
    pub events: String,
}

impl DiscoveryAddress {
    /// `tcp://host:port` for requests and `tcp://host:port+1` for events (the CLI default).
    /// With a `*` port both are `*` (read the resolved ones from the service).
    pub fn from_tcp(requests: &str) -> Option<Self> {
        let (head, port) = requests.rsplit_once(':')?;
        if port == "*" {
            return Some(DiscoveryAddress {
                requests: requests.to_string(),
                events: requests.to_string(),
            });
        }
        let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
        Some(DiscoveryAddress {
            requests: requests.to_string(),
            events: format!("{head}:{}", port.checked_add(1)?),
        })
    }
}

/// Discovery settings of a node or client.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// The instances (typically three).
    pub instances: Vec<DiscoveryAddress>,
    /// Lease asked for when registering (default 10 000 ms; renewed every third).
    pub lease_ms: u32,
    /// Client tuning (relist period, instance timeout).
    pub client: ClientConfig,
    /// Incarnation (default: Unix ms at start).
    pub incarnation: Option<u64>,
}

impl DiscoveryConfig {
    /// Defaults for these instances.
    pub fn new(instances: Vec<DiscoveryAddress>) -> Self {
        DiscoveryConfig {
            instances,
            lease_ms: 10_000,
            client: ClientConfig::default(),
            incarnation: None,
        }
    }
}

struct Instance {
    dealer: Socket,
    events: Socket,
}

/// The node and client side of discovery over sockets: one DEALER + SUB per instance.
pub struct DiscoveryLink {
    instances: Vec<Instance>,
    registrar: Option<Registrar>,
    client: Option<DiscoveryClient>,
    clock_offset: u64,
    stale_seen: u64,
}

impl std::fmt::Debug for DiscoveryLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryLink")
            .field("instances", &self.instances.len())
            .field("registrar", &self.registrar)
            .field("client", &self.client)
            .finish()
    }
}

impl DiscoveryLink {
    /// Connects to every instance. `register`: node id and endpoints to register; `list`:
    /// follow the node list (client side). `now`: the caller's clock (ms).
    pub fn new(
        ctx: &Context,
        config: &DiscoveryConfig,
        register: Option<(NodeId, Vec<Endpoint>)>,
        list: bool,
        now: u64,
    ) -> Result<Self, ZmqError> {
        let mut instances = Vec::new();
        for a in &config.instances {
            let dealer = ctx.socket(SocketType::DEALER)?;
            // Long enough for UNREGISTER to leave on a graceful shutdown.
            dealer.set_linger(200)?;
            dealer.set_reconnect_ivl(100)?;
            dealer.connect(&a.requests)?;
            let events = ctx.socket(SocketType::SUB)?;
            events.set_linger(0)?;
            events.set_reconnect_ivl(100)?;
            if list {
                events.set_subscribe(DISCOVERY_TOPIC)?;
            }
            events.connect(&a.events)?;
            instances.push(Instance { dealer, events });
        }
        let n = instances.len();
        let registrar = register.map(|(id, eps)| {
            Registrar::new(
                id,
                config.incarnation.unwrap_or(now),
                config.lease_ms,
                eps,
                n,
            )
        });
        let client = list.then(|| DiscoveryClient::new(config.client, n));
        Ok(DiscoveryLink {
            instances,
            registrar,
            client,
            clock_offset: now,
            stale_seen: 0,
        })
    }

    /// The sockets to poll for input.
    pub fn sockets(&self) -> impl Iterator<Item = &Socket> {
        self.instances
            .iter()
            .flat_map(|i| [&i.dealer, &i.events].into_iter())
    }

    /// When [`DiscoveryLink::tick`] next has timer work.
    pub fn next_timer_at(&self) -> Option<u64> {
        let r = self.registrar.as_ref().map(|_| {
            // The registrar has no deadline accessor: renewals are due every lease/3, so
            // waking every 100 ms is plenty (and cheap).
            self.clock_offset
        });
        let c = self.client.as_ref().map(DiscoveryClient::next_timer_at);
        match (r, c) {
            (Some(_), Some(c)) => Some(c.min(self.clock_offset)),
            (Some(x), None) => Some(x),
            (None, c) => c,
        }
    }

    fn send(&self, i: usize, msg: &DiscoveryMessage) {
        if let (Some(inst), Ok(frame)) = (self.instances.get(i), msg.encode()) {
            let _ = inst.dealer.send(frame, DONTWAIT);
        }
    }

    /// Runs timers and reads what arrived; returns changes of the merged node view.
    pub fn tick(&mut self, now: u64) -> Vec<NodeChange> {
        // Registrar: due messages; the next check in 100 ms at most.
        self.clock_offset = now.saturating_add(100);
        let mut changes = Vec::new();
        if let Some(r) = self.registrar.as_mut() {
            let msgs = r.poll(now);
            for (i, m) in msgs {
                self.send(i, &m);
            }
        }
        if let Some(c) = self.client.as_mut() {
            let (reqs, ch) = c.poll(now);
            changes.extend(ch);
            for (i, m) in reqs {
                self.send(i, &m);
            }
        }
        for i in 0..self.instances.len() {
            while let Ok(Some(frames)) = recv_frames(&self.instances[i].dealer) {
                let Some(msg) = frames.last().and_then(|f| DiscoveryMessage::decode(f).ok()) else {
                    continue;
                };
                match &msg {
                    DiscoveryMessage::Ack { .. } => {
                        let Some(r) = self.registrar.as_mut() else {
                            continue;
                        };
                        if let Some(RegistrarEvent::StaleIncarnation { known, .. }) =
                            r.handle_ack(i, &msg, now)
                        {
                            // Pick a higher incarnation and register again everywhere.
                            self.stale_seen += 1;
                            let next = known.saturating_add(1).max(r.incarnation() + 1);
                            r.set_incarnation(next);
                        }
                    }
                    _ => {
                        if let Some(c) = self.client.as_mut() {
                            changes.extend(c.handle(i, &msg, now));
                        }
                    }
                }
            }
            while let Ok(Some(frames)) = recv_frames(&self.instances[i].events) {
                if frames.len() < 2 || frames[0][..] != *DISCOVERY_TOPIC {
                    continue;
                }
                if let (Some(c), Ok(msg)) =
                    (self.client.as_mut(), DiscoveryMessage::decode(&frames[1]))
                {
                    changes.extend(c.handle(i, &msg, now));
                }
            }
        }
        // Registrar messages produced by ACKs (re-REGISTER) go out at once.
        if let Some(r) = self.registrar.as_mut() {
            let msgs = r.poll(now);
            for (i, m) in msgs {
                self.send(i, &m);
            }
        }
        changes
    }

    /// The current incarnation of the registered node (None if not registering).
    pub fn incarnation(&self) -> Option<u64> {
        self.registrar.as_ref().map(Registrar::incarnation)
    }

    /// The alive nodes of the merged view (client side).
    pub fn nodes(&self) -> Vec<super::wire::NodeRecord> {
        self.client
            .as_ref()
            .map(DiscoveryClient::nodes)
            .unwrap_or_default()
    }

    /// Graceful leave: UNREGISTER with every instance.
    pub fn leave(&mut self) {
        if let Some(r) = self.registrar.as_mut() {
            let msgs = r.unregister();
            for (i, m) in msgs {
                self.send(i, &m);
            }
        }
    }
}

/// One discovery instance: a [`LeaseTable`] behind a ROUTER and a PUB, on its own thread.
/// Dropping it stops the instance.
#[derive(Debug)]
pub struct DiscoveryService {
    ctl: Mutex<Socket>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    address: DiscoveryAddress,
    id: NodeId,
}

impl DiscoveryService {
    /// Binds the ROUTER at `requests` and the PUB at `events` and starts the thread.
    pub fn start(
        ctx: &Context,
        requests: &str,
        events: &str,
        config: LeaseConfig,
    ) -> Result<Self, super::bus::BusError> {
        let router = ctx.socket(SocketType::ROUTER)?;
        router.set_linger(0)?;
        router.bind(requests)?;
        let publ = ctx.socket(SocketType::PUB)?;
        publ.set_linger(0)?;
        publ.bind(events)?;
        let ep = |s: &Socket| -> Result<String, super::bus::BusError> {
            s.get_last_endpoint()?
                .map_err(|_| super::bus::BusError::Socket(ZmqError::EINVAL))
        };
        let address = DiscoveryAddress {
            requests: ep(&router)?,
            events: ep(&publ)?,
        };
        let id = Id128::random().map_err(|_| super::bus::BusError::Random)?;
        let name = format!(
            "inproc://ferromq-rpub-disc-{}-{}",
            std::process::id(),
            u128::from_be_bytes(id.0)
        );
        let ctl_rx = ctx.socket(SocketType::PAIR)?;
        ctl_rx.set_linger(0)?;
        ctl_rx.bind(&name)?;
        let ctl = ctx.socket(SocketType::PAIR)?;
        ctl.set_linger(0)?;
        ctl.connect(&name)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let table = LeaseTable::new(id, config);
        let thread = std::thread::Builder::new()
            .name("rpub-discovery".into())
            .spawn(move || serve(router, publ, ctl_rx, table, &stop2))
            .map_err(super::bus::BusError::Io)?;
        Ok(DiscoveryService {
            ctl: Mutex::new(ctl),
            stop,
            thread: Some(thread),
            address,
            id,
        })
    }

    /// The bound endpoints (resolved).
    pub fn address(&self) -> DiscoveryAddress {
        self.address.clone()
    }

    /// This instance's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Runs until the process is killed (the CLI `ferromq discovery`).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DiscoveryService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Ok(ctl) = self.ctl.lock() {
            let _ = ctl.send(&b"S"[..], DONTWAIT);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(router: Socket, publ: Socket, ctl: Socket, mut table: LeaseTable, stop: &AtomicBool) {
    let clock = Clock::new();
    let publish = |events: Vec<DiscoveryMessage>| {
        for e in events {
            if let Ok(frames) = e.encode_event_frames() {
                let _ = send_frames(&publ, &frames, DONTWAIT);
            }
        }
    };
    while !stop.load(Ordering::SeqCst) {
        let now = clock.now_ms();
        publish(table.poll_expired(now));
        let timeout = table
            .next_expiry()
            .map_or(1000, |t| t.saturating_sub(now).clamp(1, 1000) as i64);
        {
            let mut items = [router.as_poll_item(POLLIN), ctl.as_poll_item(POLLIN)];
            if crate::poll(&mut items, timeout).is_err() {
                return;
            }
        }
        if let Ok(Some(_)) = recv_frames(&ctl) {
            return;
        }
        for _ in 0..1024 {
            let frames = match recv_frames(&router) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => return,
            };
            let [peer, frame] = &frames[..] else {
                continue;
            };
            let now = clock.now_ms();
            match table.handle_frame(frame, now) {
                Ok((reply, events)) => {
                    if let Some(r) = reply {
                        let _ = send_frames(&router, &[peer.clone(), r], DONTWAIT);
                    }
                    for ev in events {
                        let _ = send_frames(&publ, &ev, DONTWAIT);
                    }
                }
                Err(e) => log::debug!("rpub discovery: bad request: {e}"),
            }
        }
    }
}

/// `ferromq discovery --bind tcp://HOST:PORT [--events tcp://HOST:PORT2]`: runs one
/// discovery instance until killed. Events default to PORT+1.
pub fn run_cli(args: &[String]) -> Result<(), String> {
    let mut bind = None;
    let mut events = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--bind" | "-b" => bind = Some(v.clone()),
            "--events" | "-e" => events = Some(v.clone()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let bind = bind.ok_or("usage: ferromq discovery --bind tcp://HOST:PORT [--events EP]")?;
    let events = match events {
        Some(e) => e,
        None => {
            DiscoveryAddress::from_tcp(&bind)
                .ok_or("--bind needs an explicit port (or give --events)")?
                .events
        }
    };
    let ctx = Context::new();
    let svc = DiscoveryService::start(&ctx, &bind, &events, LeaseConfig::default())
        .map_err(|e| e.to_string())?;
    let a = svc.address();
    eprintln!(
        "discovery instance {} requests {} events {}",
        svc.id(),
        a.requests,
        a.events
    );
    svc.wait();
    Ok(())
}
