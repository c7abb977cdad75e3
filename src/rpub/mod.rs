//! Reliable PUB/SUB bus (RPUB/1): the sans-IO core.
//!
//! Protocol: `zmtp-spec/reliable-pub.md`. Everything here is a pure state machine or codec:
//! no sockets, threads or clocks. Time is passed in as `u64` milliseconds (callers SHOULD use
//! a monotonic clock anchored to Unix time at start, so the same value can serve as the
//! message timestamp).
//!
//! - [`wire`]: encode/decode of every message;
//! - [`retention`]: the publisher's retention ring and the [`retention::RetentionStore`] seam;
//! - [`publisher`]: sequencing, heartbeats and budgeted, merged replay;
//! - [`subscriber`]: per-(publisher, epoch, stream) state machines, repair, late join, events;
//! - [`discovery`]: the lease table of a discovery instance and the client-side merge.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod discovery;
pub mod publisher;
pub mod retention;
pub mod subscriber;
pub mod wire;
