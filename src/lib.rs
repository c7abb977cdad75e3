//! # ferromq
//!
//! ZeroMQ reimplemented in pure Rust: ZMTP 3.1 on the wire (byte-compatible with libzmq 4.3),
//! a background I/O thread per [`Context`] built on `mio`, and a synchronous API that is a
//! drop-in for the [`zmq`](https://docs.rs/zmq/0.10) crate:
//!
//! ```toml
//! [dependencies]
//! zmq = { package = "ferromq", version = "0.1" }
//! ```
//!
//! ```
//! let ctx = ferromq::Context::new();
//! let pull = ctx.socket(ferromq::PULL).unwrap();
//! pull.bind("tcp://127.0.0.1:*").unwrap();
//! let endpoint = pull.get_last_endpoint().unwrap().unwrap();
//! let push = ctx.socket(ferromq::PUSH).unwrap();
//! push.connect(&endpoint).unwrap();
//! push.send("hello", 0).unwrap();
//! assert_eq!(pull.recv_bytes(0).unwrap(), b"hello");
//! ```
//!
//! Layers (see `zmtp-spec/` and each module's docs):
//! - [`proto`]: the sans-IO ZMTP codec and handshake (no sockets, threads or clocks);
//! - [`pattern`]: pipes and the routing helpers that socket types are composed from;
//! - `engine`: the mio I/O thread that drives connections;
//! - [`Context`], [`Socket`], [`Message`], [`Error`]: the public, zmq-compatible API.
//!
//! **Waiting for a reply spins briefly.** A blocking receive on a socket that has sent a
//! message since its last receive (a REQ awaiting its reply, a REP awaiting the next request,
//! a DEALER in a request loop) first spins for up to 50 us, yielding the CPU after the first
//! 10 us, before it sleeps: catching the reply awake saves the two system calls and the
//! cross-core wake-up of a sleep (on the 2-vCPU VMs of `BENCHMARKS.md`, half a round trip
//! 20 -> 10 us). Receives that follow receives (PULL, SUB) never spin, and nothing spins when
//! the process may use only one CPU. The environment variable `FERROMQ_SPIN_US` sets the
//! budget in microseconds (`0` turns spinning off).
#![forbid(unsafe_code)]
// No unwrap/expect outside tests: bytes from the network must never panic the process.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

mod bufpool;
mod compat;
mod context;
mod curve_keys;
mod engine;
pub mod error;
pub mod fuzzing;
mod inproc;
pub mod message;
pub mod metadata;
mod monitor;
pub mod options;
pub mod pattern;
mod poll;
pub mod proto;
mod proxy;
pub mod rpub;
mod shared;
mod socket;
pub mod socket_type;
pub mod z85;

pub use compat::{has, Mechanism};
pub use context::Context;
pub use curve_keys::CurveKeyPair;
pub use error::{Error, Result};
pub use message::Message;
pub use metadata::Metadata;
pub use monitor::{EventReceiver, MonitorEvent, SocketEvent};
pub use poll::{poll, PollEvents, PollItem, POLLERR, POLLIN, POLLOUT, POLLPRI};
pub use proxy::{proxy, proxy_steerable, proxy_steerable_with_capture, proxy_with_capture};
pub use socket::{Sendable, Socket};
pub use socket_type::SocketType;
pub use socket_type::SocketType::*;
pub use z85::{z85_decode, z85_encode, DecodeError, EncodeError};

/// Flag for send and receive methods: do not block, return [`Error::EAGAIN`] instead.
pub const DONTWAIT: i32 = 1;
/// Flag for send methods: more frames of this multipart message follow.
pub const SNDMORE: i32 = 2;

/// Returns the ZeroMQ version this library is compatible with, as `(major, minor, patch)`.
///
/// ferromq speaks the wire protocol of libzmq 4.3, so it reports 4.3.4 like the libzmq that
/// the `zmq` crate bundles.
pub fn version() -> (i32, i32, i32) {
    (4, 3, 4)
}
