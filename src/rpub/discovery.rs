//! Sans-IO discovery: the lease table of one discovery instance ([`LeaseTable`]), the node
//! side that registers with every instance ([`Registrar`]), and the client side that lists
//! every instance and merges the answers ([`DiscoveryClient`]).
//!
//! Discovery only says whom to connect to (endpoints); it carries no data. Time is `u64` ms
//! passed in by the caller. Instances are addressed by the caller's index (`usize`), which
//! it maps to its DEALER connections.

use super::wire::{
    AckStatus, DiscoveryMessage, Endpoint, EventKind, LeaveReason, NodeId, NodeRecord, NodeState,
    WireError,
};
use bytes::Bytes;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Instance side

/// Lease table tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Shortest lease granted (default 1000 ms).
    pub min_lease_ms: u32,
    /// Longest lease granted (default 300 000 ms).
    pub max_lease_ms: u32,
    /// How long LEFT entries (tombstones) are kept (default 60 000 ms).
    pub tombstone_ms: u64,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            min_lease_ms: 1000,
            max_lease_ms: 300_000,
            tombstone_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone)]
struct Lease {
    incarnation: u64,
    endpoints: Vec<Endpoint>,
    state: NodeState,
    /// Granted lease length.
    lease_ms: u32,
    /// Alive: lease expiry. Left: tombstone purge time.
    until: u64,
}

/// What an instance must do after handling a request: answer the requester, publish events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceOutput {
    /// Reply to the requesting peer (ROUTER).
    pub reply: Option<DiscoveryMessage>,
    /// EVENTs to publish on the instance's PUB socket.
    pub events: Vec<DiscoveryMessage>,
}

/// The lease table of one discovery instance.
#[derive(Debug)]
pub struct LeaseTable {
    instance: NodeId,
    config: LeaseConfig,
    nodes: BTreeMap<NodeId, Lease>,
}

impl LeaseTable {
    /// An empty table for instance `instance`.
    pub fn new(instance: NodeId, config: LeaseConfig) -> Self {
        LeaseTable {
            instance,
            config,
            nodes: BTreeMap::new(),
        }
    }

    /// This instance's id.
    pub fn instance(&self) -> NodeId {
        self.instance
    }

    fn record(&self, id: NodeId, l: &Lease, now: u64) -> NodeRecord {
        NodeRecord {
            id,
            incarnation: l.incarnation,
            state: l.state,
            lease_left_ms: match l.state {
                NodeState::Alive => l.until.saturating_sub(now).min(u32::MAX as u64) as u32,
                NodeState::Left => 0,
            },
            endpoints: l.endpoints.clone(),
        }
    }

    fn event(&self, kind: EventKind, id: NodeId, l: &Lease, now: u64) -> DiscoveryMessage {
        DiscoveryMessage::Event {
            kind,
            instance: self.instance,
            node: self.record(id, l, now),
        }
    }

    fn ack(status: AckStatus, id: NodeId, incarnation: u64, lease_ms: u32) -> DiscoveryMessage {
        DiscoveryMessage::Ack {
            status,
            id,
            incarnation,
            lease_ms,
        }
    }

    fn leave(&mut self, id: NodeId, reason: LeaveReason, now: u64) -> Option<DiscoveryMessage> {
        let tomb = now.saturating_add(self.config.tombstone_ms);
        let l = self.nodes.get_mut(&id)?;
        if l.state != NodeState::Alive {
            return None;
        }
        l.state = NodeState::Left;
        l.until = tomb;
        let l = l.clone();
        Some(self.event(EventKind::Leave(reason), id, &l, now))
    }

    /// Handles a request (REGISTER, RENEW, UNREGISTER, LIST). Expired leases are processed
    /// first, so the answer never reflects a lease past its expiry.
    pub fn handle(&mut self, msg: &DiscoveryMessage, now: u64) -> InstanceOutput {
        let mut out = InstanceOutput {
            reply: None,
            events: self.poll_expired(now),
        };
        match msg {
            DiscoveryMessage::Register {
                id,
                incarnation,
                lease_ms,
                endpoints,
            } => {
                let granted = (*lease_ms).clamp(self.config.min_lease_ms, self.config.max_lease_ms);
                let until = now.saturating_add(u64::from(granted));
                match self.nodes.get(id).cloned() {
                    Some(l)
                        if *incarnation < l.incarnation
                            || (*incarnation == l.incarnation && l.state == NodeState::Left) =>
                    {
                        out.reply = Some(Self::ack(AckStatus::Stale, *id, l.incarnation, 0));
                    }
                    Some(l) if *incarnation == l.incarnation => {
                        // Idempotent re-register: refresh lease and endpoints.
                        let changed = l.endpoints != *endpoints;
                        let nl = Lease {
                            incarnation: *incarnation,
                            endpoints: endpoints.clone(),
                            state: NodeState::Alive,
                            lease_ms: granted,
                            until,
                        };
                        if changed {
                            out.events.push(self.event(EventKind::Join, *id, &nl, now));
                        }
                        self.nodes.insert(*id, nl);
                        out.reply = Some(Self::ack(AckStatus::Ok, *id, *incarnation, granted));
                    }
                    prev => {
                        if let Some(l) = prev {
                            if l.state == NodeState::Alive {
                                if let Some(e) = self.leave(*id, LeaveReason::Superseded, now) {
                                    out.events.push(e);
                                }
                            }
                        }
                        let nl = Lease {
                            incarnation: *incarnation,
                            endpoints: endpoints.clone(),
                            state: NodeState::Alive,
                            lease_ms: granted,
                            until,
                        };
                        out.events.push(self.event(EventKind::Join, *id, &nl, now));
                        self.nodes.insert(*id, nl);
                        out.reply = Some(Self::ack(AckStatus::Ok, *id, *incarnation, granted));
                    }
                }
            }
            DiscoveryMessage::Renew { id, incarnation } => {
                let reply = match self.nodes.get_mut(id) {
                    Some(l) if *incarnation < l.incarnation => {
                        Self::ack(AckStatus::Stale, *id, l.incarnation, 0)
                    }
                    Some(l) if *incarnation == l.incarnation && l.state == NodeState::Alive => {
                        // Renewal restarts the lease granted at registration.
                        l.until = now.saturating_add(u64::from(l.lease_ms));
                        Self::ack(AckStatus::Ok, *id, *incarnation, l.lease_ms)
                    }
                    Some(l) => Self::ack(AckStatus::Unknown, *id, l.incarnation, 0),
                    None => Self::ack(AckStatus::Unknown, *id, 0, 0),
                };
                out.reply = Some(reply);
            }
            DiscoveryMessage::Unregister { id, incarnation } => {
                let reply = match self.nodes.get(id) {
                    Some(l) if *incarnation == l.incarnation => {
                        let inc = l.incarnation;
                        if let Some(e) = self.leave(*id, LeaveReason::Unregistered, now) {
                            out.events.push(e);
                        }
                        Self::ack(AckStatus::Ok, *id, inc, 0)
                    }
                    Some(l) if *incarnation < l.incarnation => {
                        Self::ack(AckStatus::Stale, *id, l.incarnation, 0)
                    }
                    Some(l) => Self::ack(AckStatus::Unknown, *id, l.incarnation, 0),
                    None => Self::ack(AckStatus::Unknown, *id, 0, 0),
                };
                out.reply = Some(reply);
            }
            DiscoveryMessage::List { request_id } => {
                out.reply = Some(DiscoveryMessage::ListReply {
                    request_id: *request_id,
                    instance: self.instance,
                    nodes: self.list(now),
                });
            }
            DiscoveryMessage::Ack { id, .. }
            | DiscoveryMessage::ListReply { instance: id, .. }
            | DiscoveryMessage::Event { instance: id, .. } => {
                out.reply = Some(Self::ack(AckStatus::Bad, *id, 0, 0));
            }
        }
        out
    }

    /// Decodes a request frame and handles it; returns the encoded reply frame and the EVENT
    /// messages to publish (as PUB frames).
    pub fn handle_frame(
        &mut self,
        frame: &[u8],
        now: u64,
    ) -> Result<(Option<Bytes>, Vec<Vec<Bytes>>), WireError> {
        let msg = DiscoveryMessage::decode(frame)?;
        let out = self.handle(&msg, now);
        let reply = out.reply.map(|r| r.encode()).transpose()?;
        let events = out
            .events
            .iter()
            .map(DiscoveryMessage::encode_event_frames)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((reply, events))
    }

    /// Expires leases (EVENT LEAVE expired) and purges old tombstones.
    pub fn poll_expired(&mut self, now: u64) -> Vec<DiscoveryMessage> {
        let expired: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|(_, l)| l.state == NodeState::Alive && now >= l.until)
            .map(|(id, _)| *id)
            .collect();
        let mut ev = Vec::new();
        for id in expired {
            if let Some(e) = self.leave(id, LeaveReason::Expired, now) {
                ev.push(e);
            }
        }
        self.nodes
            .retain(|_, l| l.state == NodeState::Alive || now < l.until);
        ev
    }

    /// When `poll_expired` next has work.
    pub fn next_expiry(&self) -> Option<u64> {
        self.nodes.values().map(|l| l.until).min()
    }

    /// All entries (alive and tombstones), as sent in LIST_REPLY.
    pub fn list(&self, now: u64) -> Vec<NodeRecord> {
        self.nodes
            .iter()
            .map(|(id, l)| self.record(*id, l, now))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Node side

#[derive(Debug, Clone, Copy)]
struct RegState {
    registered: bool,
    /// When the next REGISTER/RENEW is due.
    next_send: u64,
    /// Lease expiry as last acknowledged by this instance.
    lease_until: u64,
}

/// What a [`Registrar`] reports to its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// An instance accepted the registration (or a renewal after a re-registration).
    Registered {
        /// Instance index.
        instance: usize,
    },
    /// An instance knows a newer or equal-but-left incarnation: the node SHALL pick a higher
    /// incarnation ([`Registrar::set_incarnation`]).
    StaleIncarnation {
        /// Instance index.
        instance: usize,
        /// The incarnation that instance knows.
        known: u64,
    },
}

/// The node side: registers with every instance and renews every lease/3.
#[derive(Debug)]
pub struct Registrar {
    id: NodeId,
    incarnation: u64,
    lease_ms: u32,
    endpoints: Vec<Endpoint>,
    instances: Vec<RegState>,
}

impl Registrar {
    /// A registrar for `n_instances` discovery instances (REGISTER is due at once).
    pub fn new(
        id: NodeId,
        incarnation: u64,
        lease_ms: u32,
        endpoints: Vec<Endpoint>,
        n_instances: usize,
    ) -> Self {
        Registrar {
            id,
            incarnation,
            lease_ms: lease_ms.max(3),
            endpoints,
            instances: vec![
                RegState {
                    registered: false,
                    next_send: 0,
                    lease_until: 0,
                };
                n_instances
            ],
        }
    }

    /// Node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Switches to a new incarnation: registers again everywhere at the next poll.
    pub fn set_incarnation(&mut self, incarnation: u64) {
        self.incarnation = incarnation;
        for r in &mut self.instances {
            r.registered = false;
            r.next_send = 0;
        }
    }

    fn register_msg(&self) -> DiscoveryMessage {
        DiscoveryMessage::Register {
            id: self.id,
            incarnation: self.incarnation,
            lease_ms: self.lease_ms,
            endpoints: self.endpoints.clone(),
        }
    }

    /// Messages due now, per instance index: REGISTER (and its retries every lease/3 until
    /// acknowledged) or RENEW every lease/3. A lease that ran out without an acknowledged
    /// renewal falls back to REGISTER.
    pub fn poll(&mut self, now: u64) -> Vec<(usize, DiscoveryMessage)> {
        let third = u64::from(self.lease_ms / 3).max(1);
        let mut out = Vec::new();
        for i in 0..self.instances.len() {
            let r = &mut self.instances[i];
            if r.registered && now >= r.lease_until {
                r.registered = false;
            }
            if now < r.next_send {
                continue;
            }
            r.next_send = now.saturating_add(third);
            let msg = if r.registered {
                DiscoveryMessage::Renew {
                    id: self.id,
                    incarnation: self.incarnation,
                }
            } else {
                self.register_msg()
            };
            out.push((i, msg));
        }
        out
    }

    /// Handles an ACK from instance `instance`.
    pub fn handle_ack(
        &mut self,
        instance: usize,
        ack: &DiscoveryMessage,
        now: u64,
    ) -> Option<RegistrarEvent> {
        let DiscoveryMessage::Ack {
            status,
            id,
            incarnation,
            lease_ms,
        } = ack
        else {
            return None;
        };
        if *id != self.id {
            return None;
        }
        let r = self.instances.get_mut(instance)?;
        match status {
            AckStatus::Ok if *incarnation == self.incarnation => {
                let was = r.registered;
                r.registered = true;
                let granted = if *lease_ms == 0 {
                    self.lease_ms
                } else {
                    *lease_ms
                };
                r.lease_until = now.saturating_add(u64::from(granted));
                r.next_send = now.saturating_add(u64::from(granted / 3).max(1));
                (!was).then_some(RegistrarEvent::Registered { instance })
            }
            AckStatus::Ok => None,
            AckStatus::Unknown => {
                r.registered = false;
                r.next_send = now;
                None
            }
            AckStatus::Stale => Some(RegistrarEvent::StaleIncarnation {
                instance,
                known: *incarnation,
            }),
            AckStatus::Bad => None,
        }
    }

    /// UNREGISTER messages for every instance (graceful leave).
    pub fn unregister(&mut self) -> Vec<(usize, DiscoveryMessage)> {
        for r in &mut self.instances {
            r.registered = false;
            r.next_send = u64::MAX;
        }
        (0..self.instances.len())
            .map(|i| {
                (
                    i,
                    DiscoveryMessage::Unregister {
                        id: self.id,
                        incarnation: self.incarnation,
                    },
                )
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

/// Merges node lists from several instances (union by node id). The highest incarnation any
/// instance reports wins; the node is alive iff some instance reports it ALIVE at that
/// incarnation, i.e. it is gone only when every instance that answered says so. Returns one
/// record per node id (alive or left), sorted by id.
pub fn merge_lists<'a, I>(lists: I) -> Vec<NodeRecord>
where
    I: IntoIterator<Item = &'a [NodeRecord]>,
{
    let mut best: BTreeMap<NodeId, NodeRecord> = BTreeMap::new();
    for list in lists {
        for r in list {
            match best.get_mut(&r.id) {
                None => {
                    best.insert(r.id, r.clone());
                }
                Some(b) => {
                    let better = r.incarnation > b.incarnation
                        || (r.incarnation == b.incarnation
                            && r.state == NodeState::Alive
                            && (b.state == NodeState::Left || r.lease_left_ms > b.lease_left_ms));
                    if better {
                        *b = r.clone();
                    }
                }
            }
        }
    }
    best.into_values().collect()
}

/// A change of the merged view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeChange {
    /// A node (or a new incarnation of it, or new endpoints) is alive: connect to it.
    Up(NodeRecord),
    /// A node is gone according to every answering instance.
    Down {
        /// Node id.
        id: NodeId,
        /// Its last incarnation.
        incarnation: u64,
    },
}

/// Client tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Re-list period (default 30 000 ms).
    pub relist_ms: u64,
    /// An instance that has not answered for this long is not counted (default 60 000 ms).
    pub instance_timeout_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            relist_ms: 30_000,
            instance_timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone)]
struct View {
    answered_at: u64,
    nodes: BTreeMap<NodeId, NodeRecord>,
}

/// The client side: lists every instance, follows their EVENTs, and keeps the merged view.
#[derive(Debug)]
pub struct DiscoveryClient {
    config: ClientConfig,
    views: Vec<Option<View>>,
    next_list_at: u64,
    next_request_id: u64,
    /// Alive nodes of the merged view.
    alive: BTreeMap<NodeId, NodeRecord>,
}

impl DiscoveryClient {
    /// A client of `n_instances` instances (LIST is due at once).
    pub fn new(config: ClientConfig, n_instances: usize) -> Self {
        DiscoveryClient {
            config,
            views: vec![None; n_instances],
            next_list_at: 0,
            next_request_id: 1,
            alive: BTreeMap::new(),
        }
    }

    /// LIST requests due now (one per instance, every `relist_ms`), and the changes caused by
    /// instances timing out.
    pub fn poll(&mut self, now: u64) -> (Vec<(usize, DiscoveryMessage)>, Vec<NodeChange>) {
        let mut reqs = Vec::new();
        if now >= self.next_list_at {
            self.next_list_at = now.saturating_add(self.config.relist_ms.max(1));
            let request_id = self.next_request_id;
            self.next_request_id += 1;
            for i in 0..self.views.len() {
                reqs.push((i, DiscoveryMessage::List { request_id }));
            }
        }
        let timeout = self.config.instance_timeout_ms;
        let mut dropped = false;
        for v in &mut self.views {
            if v.as_ref()
                .is_some_and(|v| now.saturating_sub(v.answered_at) > timeout)
            {
                *v = None;
                dropped = true;
            }
        }
        let changes = if dropped {
            self.recompute()
        } else {
            Vec::new()
        };
        (reqs, changes)
    }

    /// When `poll` next has work.
    pub fn next_timer_at(&self) -> u64 {
        let mut t = self.next_list_at;
        for v in self.views.iter().flatten() {
            t = t.min(
                v.answered_at
                    .saturating_add(self.config.instance_timeout_ms)
                    .saturating_add(1),
            );
        }
        t
    }

    fn recompute(&mut self) -> Vec<NodeChange> {
        let lists: Vec<Vec<NodeRecord>> = self
            .views
            .iter()
            .flatten()
            .map(|v| v.nodes.values().cloned().collect())
            .collect();
        let merged = merge_lists(lists.iter().map(Vec::as_slice));
        let new_alive: BTreeMap<NodeId, NodeRecord> = merged
            .into_iter()
            .filter(|r| r.state == NodeState::Alive)
            .map(|r| (r.id, r))
            .collect();
        let mut changes = Vec::new();
        for (id, old) in &self.alive {
            if !new_alive.contains_key(id) {
                changes.push(NodeChange::Down {
                    id: *id,
                    incarnation: old.incarnation,
                });
            }
        }
        for (id, r) in &new_alive {
            match self.alive.get(id) {
                Some(o) if o.incarnation == r.incarnation && o.endpoints == r.endpoints => {}
                _ => changes.push(NodeChange::Up(r.clone())),
            }
        }
        self.alive = new_alive;
        changes
    }

    /// Handles a LIST_REPLY or EVENT from instance `instance`; returns changes of the merged
    /// view. A LIST_REPLY replaces that instance's view; an EVENT updates it (a record with a
    /// lower incarnation than known is ignored).
    pub fn handle(&mut self, instance: usize, msg: &DiscoveryMessage, now: u64) -> Vec<NodeChange> {
        let Some(slot) = self.views.get_mut(instance) else {
            return Vec::new();
        };
        match msg {
            DiscoveryMessage::ListReply { nodes, .. } => {
                *slot = Some(View {
                    answered_at: now,
                    nodes: nodes.iter().map(|r| (r.id, r.clone())).collect(),
                });
            }
            DiscoveryMessage::Event { node, .. } => {
                // Events only refine a view we have; the next LIST catches up otherwise.
                let Some(v) = slot.as_mut() else {
                    return Vec::new();
                };
                match v.nodes.get(&node.id) {
                    Some(o) if o.incarnation > node.incarnation => return Vec::new(),
                    _ => {
                        v.nodes.insert(node.id, node.clone());
                    }
                }
            }
            _ => return Vec::new(),
        }
        self.recompute()
    }

    /// Decodes a frame (DEALER reply, or the event frame of a PUB message) and handles it.
    pub fn handle_frame(
        &mut self,
        instance: usize,
        frame: &[u8],
        now: u64,
    ) -> Result<Vec<NodeChange>, WireError> {
        let msg = DiscoveryMessage::decode(frame)?;
        Ok(self.handle(instance, &msg, now))
    }

    /// The alive nodes of the merged view.
    pub fn nodes(&self) -> Vec<NodeRecord> {
        self.alive.values().cloned().collect()
    }

    /// Number of instances currently counted (answered recently).
    pub fn answering_instances(&self) -> usize {
        self.views.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpub::wire::Id128;

    fn node(n: u8) -> NodeId {
        Id128([n; 16])
    }

    fn eps(port: u16) -> Vec<Endpoint> {
        vec![
            Endpoint::new("data", format!("tcp://10.0.0.1:{port}")),
            Endpoint::new("replay", format!("tcp://10.0.0.1:{}", port + 1)),
        ]
    }

    fn reg(n: u8, inc: u64, lease: u32) -> DiscoveryMessage {
        DiscoveryMessage::Register {
            id: node(n),
            incarnation: inc,
            lease_ms: lease,
            endpoints: eps(5000 + n as u16),
        }
    }

    fn status(o: &InstanceOutput) -> AckStatus {
        match o.reply {
            Some(DiscoveryMessage::Ack { status, .. }) => status,
            ref r => panic!("{r:?}"),
        }
    }

    #[test]
    fn lease_table_register_renew_expire() {
        let mut t = LeaseTable::new(node(100), LeaseConfig::default());
        let o = t.handle(&reg(1, 1, 3000), 0);
        assert_eq!(status(&o), AckStatus::Ok);
        assert!(matches!(
            o.events[..],
            [DiscoveryMessage::Event {
                kind: EventKind::Join,
                ..
            }]
        ));
        // Renew extends the lease.
        let o = t.handle(
            &DiscoveryMessage::Renew {
                id: node(1),
                incarnation: 1,
            },
            2000,
        );
        assert!(matches!(
            o.reply,
            Some(DiscoveryMessage::Ack {
                status: AckStatus::Ok,
                lease_ms: 3000,
                ..
            })
        ));
        assert!(t.poll_expired(4999).is_empty());
        assert_eq!(t.list(4999)[0].lease_left_ms, 1);
        // Lease expiry.
        let ev = t.poll_expired(5000);
        assert!(matches!(
            ev[..],
            [DiscoveryMessage::Event {
                kind: EventKind::Leave(LeaveReason::Expired),
                ..
            }]
        ));
        assert_eq!(t.list(5000)[0].state, NodeState::Left);
        // Renewing an expired lease: UNKNOWN, so the node re-registers.
        let o = t.handle(
            &DiscoveryMessage::Renew {
                id: node(1),
                incarnation: 1,
            },
            5001,
        );
        assert_eq!(status(&o), AckStatus::Unknown);
        // Re-registering the same, left incarnation is stale; a higher one is accepted.
        assert_eq!(status(&t.handle(&reg(1, 1, 3000), 5002)), AckStatus::Stale);
        assert_eq!(status(&t.handle(&reg(1, 2, 3000), 5003)), AckStatus::Ok);
        // Tombstones are purged after tombstone_ms.
        t.handle(
            &DiscoveryMessage::Unregister {
                id: node(1),
                incarnation: 2,
            },
            6000,
        );
        assert_eq!(t.list(6000).len(), 1);
        t.poll_expired(66_000);
        assert!(t.list(66_000).is_empty());
    }

    #[test]
    fn stale_incarnation_rejected_and_superseded() {
        let mut t = LeaseTable::new(node(100), LeaseConfig::default());
        t.handle(&reg(1, 5, 10_000), 0);
        let o = t.handle(&reg(1, 4, 10_000), 1);
        assert!(matches!(
            o.reply,
            Some(DiscoveryMessage::Ack {
                status: AckStatus::Stale,
                incarnation: 5,
                ..
            })
        ));
        assert!(o.events.is_empty());
        let o = t.handle(
            &DiscoveryMessage::Renew {
                id: node(1),
                incarnation: 4,
            },
            1,
        );
        assert_eq!(status(&o), AckStatus::Stale);
        // A newer incarnation supersedes the old one: LEAVE(superseded) then JOIN.
        let o = t.handle(&reg(1, 6, 10_000), 2);
        assert_eq!(status(&o), AckStatus::Ok);
        assert!(matches!(
            o.events[..],
            [
                DiscoveryMessage::Event {
                    kind: EventKind::Leave(LeaveReason::Superseded),
                    ..
                },
                DiscoveryMessage::Event {
                    kind: EventKind::Join,
                    ..
                }
            ]
        ));
        // Same incarnation re-register is idempotent (no event unless endpoints change).
        let o = t.handle(&reg(1, 6, 10_000), 3);
        assert_eq!(status(&o), AckStatus::Ok);
        assert!(o.events.is_empty());
        // Lease is clamped.
        let o = t.handle(&reg(2, 1, 1), 3);
        assert!(matches!(
            o.reply,
            Some(DiscoveryMessage::Ack { lease_ms: 1000, .. })
        ));
        // Replies are valid frames; garbage is an error, not a panic.
        let (reply, events) = t
            .handle_frame(&reg(3, 1, 5000).encode().unwrap(), 4)
            .unwrap();
        assert!(reply.is_some());
        assert_eq!(events.len(), 1);
        assert!(t.handle_frame(b"junk", 4).is_err());
    }

    #[test]
    fn registrar_renews_every_third_and_reregisters() {
        let mut r = Registrar::new(node(1), 1, 3000, eps(1), 2);
        let first = r.poll(0);
        assert_eq!(first.len(), 2);
        assert!(matches!(first[0].1, DiscoveryMessage::Register { .. }));
        let ok = DiscoveryMessage::Ack {
            status: AckStatus::Ok,
            id: node(1),
            incarnation: 1,
            lease_ms: 3000,
        };
        assert_eq!(
            r.handle_ack(0, &ok, 1),
            Some(RegistrarEvent::Registered { instance: 0 })
        );
        // Instance 1 never answers: REGISTER retried every lease/3.
        assert!(r.poll(999).is_empty());
        let due = r.poll(1001);
        assert_eq!(due.len(), 2);
        assert!(matches!(due[0], (0, DiscoveryMessage::Renew { .. })));
        assert!(matches!(due[1], (1, DiscoveryMessage::Register { .. })));
        // Instance 0 lost our registration (restart): UNKNOWN → REGISTER at once.
        let unknown = DiscoveryMessage::Ack {
            status: AckStatus::Unknown,
            id: node(1),
            incarnation: 0,
            lease_ms: 0,
        };
        r.handle_ack(0, &unknown, 1002);
        assert!(matches!(
            r.poll(1002)[..],
            [(0, DiscoveryMessage::Register { .. })]
        ));
        // Stale: the owner must bump the incarnation.
        let stale = DiscoveryMessage::Ack {
            status: AckStatus::Stale,
            id: node(1),
            incarnation: 9,
            lease_ms: 0,
        };
        assert_eq!(
            r.handle_ack(1, &stale, 1003),
            Some(RegistrarEvent::StaleIncarnation {
                instance: 1,
                known: 9
            })
        );
        r.set_incarnation(10);
        assert_eq!(r.poll(1004).len(), 2);
        assert_eq!(r.unregister().len(), 2);
        assert!(r.poll(1_000_000).is_empty());
    }

    fn list(t: &mut LeaseTable, now: u64) -> DiscoveryMessage {
        t.handle(&DiscoveryMessage::List { request_id: 1 }, now)
            .reply
            .unwrap()
    }

    /// Three instances; one is down. A node registered everywhere, nodes known to only some
    /// instances, a stale incarnation on one instance, and a lease expiry.
    #[test]
    fn client_merges_instances_one_down() {
        let mut inst: Vec<LeaseTable> = (0..3)
            .map(|i| LeaseTable::new(node(100 + i), LeaseConfig::default()))
            .collect();
        // Node 1 everywhere (instance 2 will be down).
        for t in inst.iter_mut() {
            t.handle(&reg(1, 1, 10_000), 0);
        }
        // Node 2 restarted: instance 0 still has incarnation 1, instance 1 has incarnation 2.
        inst[0].handle(&reg(2, 1, 10_000), 0);
        inst[1].handle(&reg(2, 2, 10_000), 0);
        // Node 3 only registered with instance 1 (its REGISTER to 0 was lost).
        inst[1].handle(&reg(3, 1, 10_000), 0);
        // Node 4 only with the instance that is down.
        inst[2].handle(&reg(4, 1, 10_000), 0);

        let mut c = DiscoveryClient::new(ClientConfig::default(), 3);
        let (reqs, _) = c.poll(0);
        assert_eq!(reqs.len(), 3);
        let mut changes = c.handle(0, &list(&mut inst[0], 1), 1);
        changes.extend(c.handle(1, &list(&mut inst[1], 1), 1));
        // instance 2 does not answer.
        assert_eq!(c.answering_instances(), 2);
        let alive: Vec<(u8, u64)> = c
            .nodes()
            .iter()
            .map(|r| (r.id.0[0], r.incarnation))
            .collect();
        assert_eq!(alive, vec![(1, 1), (2, 2), (3, 1)]);
        assert!(changes.iter().all(|c| matches!(c, NodeChange::Up(_))));
        let n2 = c.nodes().into_iter().find(|r| r.id == node(2)).unwrap();
        assert_eq!(n2.endpoints, eps(5002));

        // Node 3 unregisters from instance 1: every answering instance now says it is gone
        // (instance 0 never knew it).
        let o = inst[1].handle(
            &DiscoveryMessage::Unregister {
                id: node(3),
                incarnation: 1,
            },
            2,
        );
        let ch = c.handle(1, &o.events[0], 2);
        assert_eq!(
            ch,
            vec![NodeChange::Down {
                id: node(3),
                incarnation: 1
            }]
        );

        // Node 1's lease expires on instance 0 only (renewals there were lost): instance 1
        // still says alive, so node 1 stays up.
        inst[1].handle(
            &DiscoveryMessage::Renew {
                id: node(1),
                incarnation: 1,
            },
            9_000,
        );
        let ev = inst[0].poll_expired(10_000);
        let mut ch = Vec::new();
        for e in &ev {
            ch.extend(c.handle(0, e, 10_000));
        }
        assert!(c.nodes().iter().any(|r| r.id == node(1)));
        assert!(!ch
            .iter()
            .any(|x| matches!(x, NodeChange::Down { id, .. } if *id == node(1))));
        // When it expires on instance 1 as well, it is down.
        let ev = inst[1].poll_expired(19_000);
        let mut ch = Vec::new();
        for e in &ev {
            ch.extend(c.handle(1, e, 19_000));
        }
        assert!(ch.contains(&NodeChange::Down {
            id: node(1),
            incarnation: 1
        }));

        // The instance that was down comes back: node 4 appears at the next re-list.
        let (reqs, _) = c.poll(30_000);
        assert_eq!(reqs.len(), 3);
        // (Its old lease of node 4 ran out meanwhile; node 4 registers a new incarnation.)
        let o = inst[2].handle(&reg(4, 2, 100_000), 29_000);
        assert_eq!(status(&o), AckStatus::Ok);
        let ch = c.handle(2, &list(&mut inst[2], 30_000), 30_000);
        assert!(ch
            .iter()
            .any(|x| matches!(x, NodeChange::Up(r) if r.id == node(4))));
        // Instances that stop answering stop counting after instance_timeout.
        let (_, ch) = c.poll(90_001);
        assert_eq!(c.answering_instances(), 0);
        assert!(c.nodes().is_empty());
        assert!(!ch.is_empty());
    }

    #[test]
    fn merge_rules() {
        let rec = |n: u8, inc: u64, state: NodeState| NodeRecord {
            id: node(n),
            incarnation: inc,
            state,
            lease_left_ms: 1,
            endpoints: eps(n as u16 * 10 + inc as u16),
        };
        use NodeState::*;
        let a = vec![rec(1, 1, Alive), rec(2, 3, Left), rec(3, 1, Alive)];
        let b = vec![rec(1, 2, Alive), rec(2, 3, Alive), rec(3, 2, Left)];
        let m = merge_lists([a.as_slice(), b.as_slice()]);
        assert_eq!(m[0], rec(1, 2, Alive)); // highest incarnation wins
        assert_eq!(m[1], rec(2, 3, Alive)); // alive if any instance says alive
        assert_eq!(m[2], rec(3, 2, Left)); // incarnation 1 is superseded by left 2
        let stale_event = DiscoveryMessage::Event {
            kind: EventKind::Join,
            instance: node(100),
            node: rec(1, 1, Alive),
        };
        let mut c = DiscoveryClient::new(ClientConfig::default(), 1);
        c.handle(
            0,
            &DiscoveryMessage::ListReply {
                request_id: 1,
                instance: node(100),
                nodes: b.clone(),
            },
            0,
        );
        // An event carrying an older incarnation is ignored.
        assert!(c.handle(0, &stale_event, 1).is_empty());
        assert_eq!(c.nodes()[0].incarnation, 2);
    }
}
