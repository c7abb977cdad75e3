//! Reliable PUB/SUB bus (RPUB/1, RPUB/2): the sans-IO core and its socket binding.
//!
//! Protocol: `zmtp-spec/reliable-pub.md`. Everything but [`bus`] and [`service`] is a pure
//! state machine or codec: no sockets, threads or clocks. Time is passed in as `u64`
//! milliseconds (callers SHOULD use a monotonic clock anchored to Unix time at start, so the
//! same value can serve as the message timestamp; [`bus::Clock`] does).
//!
//! - [`wire`]: encode/decode of every message;
//! - [`retention`]: the publisher's retention ring and the [`retention::RetentionStore`] seam;
//! - [`disklog`]: the optional append-only disk log ([`disklog::DiskStore`]): a restarted
//!   publisher keeps its id, epoch and history;
//! - [`publisher`]: sequencing, heartbeats and budgeted, merged replay;
//! - [`subscriber`]: per-(publisher, epoch, stream) state machines, repair, late join, events;
//! - [`discovery`]: the lease table of a discovery instance and the client-side merge;
//! - [`bus`]: the same machines on real sockets: [`bus::ReliablePublisher`] and
//!   [`bus::ReliableSubscriber`], each driven by a background thread;
//! - [`service`]: a discovery instance on a ROUTER + PUB ([`service::DiscoveryService`], the
//!   `ferromq discovery` command) and the node/client side over DEALER + SUB.
//!
//! Wiring one publisher to one subscriber in memory (a socket binding does the same with a
//! PUB/SUB pair for data and a ROUTER/DEALER pair for replay):
//!
//! ```
//! use bytes::Bytes;
//! use ferromq::rpub::publisher::{Publisher, PublisherConfig};
//! use ferromq::rpub::retention::RetentionLimits;
//! use ferromq::rpub::subscriber::{Delivery, JoinPolicy, Subscriber, SubscriberConfig};
//! use ferromq::rpub::wire::Id128;
//!
//! let mut publisher = Publisher::with_ring(
//!     Id128([1; 16]), 1, PublisherConfig::default(), RetentionLimits::default());
//! let mut sub = Subscriber::new(SubscriberConfig {
//!     join_policy: JoinPolicy::FromSeq(1),
//!     ..Default::default()
//! });
//! sub.subscribe(b"prices");
//!
//! let m1 = publisher.publish(b"prices", Bytes::from_static(b"a"), 0).unwrap();
//! let _lost = publisher.publish(b"prices", Bytes::from_static(b"b"), 0).unwrap();
//! let m3 = publisher.publish(b"prices", Bytes::from_static(b"c"), 0).unwrap();
//! sub.handle_data(&m1, 1).unwrap();
//! sub.handle_data(&m3, 1).unwrap(); // seq 2 is missing: a repair request is produced
//!
//! for req in sub.poll_timers(1) {
//!     // DEALER -> ROUTER; immediate answers (JOIN/BUSY) would come back here
//!     for reply in publisher.handle_replay_request(Bytes::from_static(b"peer"), &req, 1) {
//!         sub.handle_replay_reply(&reply, 2).unwrap();
//!     }
//! }
//! for (_peer, frames) in publisher.poll_replay(2, 256) {
//!     sub.handle_replay_reply(&frames, 3).unwrap();
//! }
//! let seqs: Vec<u64> = std::iter::from_fn(|| sub.poll_event())
//!     .filter_map(|d| match d {
//!         Delivery::Message(m) => Some(m.seq),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(seqs, [1, 2, 3]);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bus;
pub mod demo;
pub mod discovery;
pub mod disklog;
pub mod publisher;
pub mod retention;
pub mod service;
#[doc(hidden)]
pub mod shim;
pub mod subscriber;
pub mod wire;
