//! Shared helpers for the integration tests: the ferromq on/off switch, crate-agnostic socket
//! macros (they work for both `ferromq` and `zmq`, whose APIs are identical), deadlines, and a
//! hand-built ZMTP 3.1 raw client for the hostile-peer tests.
//!
//! # The ferromq switch
//!
//! Every behavioural suite is written once as a `macro_rules!` and instantiated twice:
//! `mod libzmq { use zmq; ... }` (the reference, always on) and `mod ferro { use ferromq as
//! zmq; ... }` through [`ferro_instance!`] below. That one macro is the only switch:
//!
//! - STATE 1 (`ferro_off!`): ferro instances are not compiled at all (for when the ferromq API
//!   does not build).
//! - STATE 2 (`ferro_ignored!`, current): ferro instances compile and are
//!   `#[ignore = "needs engine"]`; `cargo test --test pipeline -- --ignored` runs them.
//! - STATE 3 (`ferro_on!`): ferro instances run like any other test.
//!
//! To change state, edit the one line inside `ferro_instance!` (it calls `ferro_ignored!`
//! now): make it call `ferro_on!` (or `ferro_off!`).
//!
//! Inside an instance module three crate aliases exist: `zmq` (the implementation under test),
//! `fz` (the ferromq side of interop tests) and `lz` (always libzmq). In the libzmq reference
//! instance all three are libzmq, which checks the interop tests' own logic today.
#![allow(dead_code, unused_macros, unused_imports)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Instantiates `$suite!` (a macro taking a list of outer attributes to put on every test)
/// inside `mod $name` for ferromq.
///
/// THE SWITCH: the name of the macro called below selects the state (see the module docs):
/// `ferro_off!` (state 1), `ferro_ignored!` (state 2) or `ferro_on!` (state 3).
macro_rules! ferro_instance {
    ($name:ident, $suite:ident $(, $arg:expr)*) => {
        ferro_on!($name, $suite $(, $arg)*);
    };
}

/// State 1: the ferromq API is missing: compile nothing.
macro_rules! ferro_off {
    ($name:ident, $suite:ident $(, $arg:expr)*) => {};
}

/// State 2: the API compiles, the engine is missing: compiled, `#[ignore = "needs engine"]`.
macro_rules! ferro_ignored {
    ($name:ident, $suite:ident $(, $arg:expr)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use ferromq as zmq;
            #[allow(unused_imports)]
            use ferromq as fz;
            #[allow(unused_imports)]
            use ::zmq as lz;
            $suite!([$($arg),*] #[ignore = "needs engine"]);
        }
    };
}

/// State 3: the engine works: the ferromq instances run.
macro_rules! ferro_on {
    ($name:ident, $suite:ident $(, $arg:expr)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use ferromq as zmq;
            #[allow(unused_imports)]
            use ferromq as fz;
            #[allow(unused_imports)]
            use ::zmq as lz;
            $suite!([$($arg),*]);
        }
    };
}

/// Instantiates `$suite!` inside `mod $name` for libzmq (the reference; always on).
macro_rules! libzmq_instance {
    ($name:ident, $suite:ident $(, $arg:expr)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use ::zmq as fz;
            #[allow(unused_imports)]
            use ::zmq as lz;
            $suite!([$($arg),*]);
        }
    };
}

/// Send/receive timeout put on every test socket: a hang becomes an `EAGAIN` failure.
pub const IO_TIMEOUT_MS: i32 = 5000;
/// Whole-test deadline used by [`run`].
pub const TEST_DEADLINE: Duration = Duration::from_secs(90);

/// A socket of type `$ty` from `$ctx` with send/recv timeouts of [`IO_TIMEOUT_MS`] and linger 0
/// (so that a failing test never hangs in context termination). Works for both crates.
macro_rules! sock {
    ($ctx:expr, $ty:expr) => {{
        let s = $ctx.socket($ty).expect("socket()");
        s.set_rcvtimeo($crate::common::IO_TIMEOUT_MS)
            .expect("set_rcvtimeo");
        s.set_sndtimeo($crate::common::IO_TIMEOUT_MS)
            .expect("set_sndtimeo");
        s.set_linger(0).expect("set_linger");
        s
    }};
}

/// Binds `$s` to `tcp://127.0.0.1:*` and returns the endpoint actually bound.
macro_rules! bind_any {
    ($s:expr) => {{
        $s.bind("tcp://127.0.0.1:*")
            .expect("bind tcp://127.0.0.1:*");
        $s.get_last_endpoint()
            .expect("get_last_endpoint")
            .expect("endpoint is utf-8")
    }};
}

/// Runs `f` on its own thread and fails the test if it does not finish within
/// [`TEST_DEADLINE`]; a panic inside `f` is propagated.
pub fn run<F: FnOnce() + Send + 'static>(f: F) {
    run_within(TEST_DEADLINE, f)
}

/// [`run`] with an explicit deadline.
pub fn run_within<F: FnOnce() + Send + 'static>(deadline: Duration, f: F) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(deadline) {
        Ok(()) => handle.join().expect("test body panicked"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: join to re-raise its panic message.
            match handle.join() {
                Ok(()) => unreachable!("body finished without signalling"),
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test body did not finish within {deadline:?} (hang?)")
        }
    }
}

/// Polls `cond` every 10 ms until it is true or `within` has passed; returns its last value.
pub fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bind a throwaway listener to port 0,
/// read the port, drop the listener).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// True if this machine can bind the IPv6 loopback `::1`.
pub fn has_ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// The port of a `tcp://host:port` endpoint.
pub fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint:?}"))
}

/// The socket address of a `tcp://host:port` endpoint.
pub fn addr_of(endpoint: &str) -> SocketAddr {
    let rest = endpoint
        .strip_prefix("tcp://")
        .unwrap_or_else(|| panic!("not a tcp endpoint: {endpoint:?}"));
    rest.to_socket_addrs()
        .expect("resolve endpoint")
        .next()
        .expect("endpoint resolves")
}

/// Deterministic payload of `len` bytes (so corruption and reordering are visible).
pub fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed as u32) as u8)
        .collect()
}

// ------------------------------------------------------------------------------------------
// Hand-built ZMTP 3.1 (RFC 23/37) bytes for raw peers.
// ------------------------------------------------------------------------------------------

/// The 64-byte greeting: signature (0xFF, 8 bytes padding, 0x7F), version `major.minor`,
/// mechanism (padded with zeros to 20 bytes), as-server, 31 bytes filler.
pub fn greeting(major: u8, minor: u8, mechanism: &str, as_server: bool) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xFF;
    g[9] = 0x7F;
    g[10] = major;
    g[11] = minor;
    assert!(mechanism.len() <= 20);
    g[12..12 + mechanism.len()].copy_from_slice(mechanism.as_bytes());
    g[32] = as_server as u8;
    g
}

/// A ZMTP 3.1 NULL-mechanism client greeting.
pub fn null_greeting() -> [u8; 64] {
    greeting(3, 1, "NULL", false)
}

/// A command frame (`flags` 0x04 short or 0x06 long) named `name` with `body`.
pub fn command(name: &str, body: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(1 + name.len() + body.len());
    data.push(name.len() as u8);
    data.extend_from_slice(name.as_bytes());
    data.extend_from_slice(body);
    let mut out = Vec::new();
    if data.len() <= 255 {
        out.push(0x04);
        out.push(data.len() as u8);
    } else {
        out.push(0x06);
        out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(&data);
    out
}

/// A READY command with the given metadata properties (name-len u8, name, value-len u32 BE,
/// value).
pub fn ready(props: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in props {
        body.push(name.len() as u8);
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    }
    command("READY", &body)
}

/// A message frame; `more` sets the MORE flag; long form is used above 255 bytes.
pub fn frame(body: &[u8], more: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    let more_bit = more as u8;
    if body.len() <= 255 {
        out.push(more_bit);
        out.push(body.len() as u8);
    } else {
        out.push(0x02 | more_bit);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// Just the header of a long message frame announcing `len` bytes (no body).
pub fn long_frame_header(len: u64) -> Vec<u8> {
    let mut out = vec![0x02];
    out.extend_from_slice(&len.to_be_bytes());
    out
}

/// A raw TCP client of a ZMTP socket.
pub struct RawPeer {
    pub stream: TcpStream,
}

impl RawPeer {
    /// Connects to `endpoint` (`tcp://...`) with 5 s read/write timeouts.
    pub fn connect(endpoint: &str) -> RawPeer {
        let stream = TcpStream::connect_timeout(&addr_of(endpoint), Duration::from_secs(5))
            .expect("raw connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawPeer { stream }
    }

    /// Writes all of `bytes`; an error (the peer already closed) is returned, not a panic.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads exactly `n` bytes (or fails: timeout, EOF, reset).
    pub fn read_exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.stream.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// Reads the peer's 64-byte greeting and checks its signature and ZMTP 3.x version.
    pub fn read_greeting(&mut self) -> [u8; 64] {
        let g = self.read_exact(64).expect("read peer greeting");
        assert_eq!(g[0], 0xFF, "greeting signature start: {g:02x?}");
        assert_eq!(g[9] & 0x01, 0x01, "greeting signature end: {g:02x?}");
        assert_eq!(g[10], 3, "peer speaks ZMTP 3.x: {g:02x?}");
        let mut out = [0u8; 64];
        out.copy_from_slice(&g);
        out
    }

    /// Reads one frame: returns (flags, body).
    pub fn read_frame(&mut self) -> std::io::Result<(u8, Vec<u8>)> {
        let flags = self.read_exact(1)?[0];
        let len = if flags & 0x02 != 0 {
            let b = self.read_exact(8)?;
            u64::from_be_bytes(b.try_into().unwrap()) as usize
        } else {
            self.read_exact(1)?[0] as usize
        };
        Ok((flags, self.read_exact(len)?))
    }

    /// Does a full NULL handshake as a client of socket type `socket_type`: sends greeting and
    /// READY, reads and checks the peer's greeting and READY. Returns the peer's READY body.
    pub fn null_handshake(&mut self, socket_type: &str) -> Vec<u8> {
        self.send(&null_greeting()).expect("send greeting");
        self.read_greeting();
        self.send(&ready(&[("Socket-Type", socket_type.as_bytes())]))
            .expect("send READY");
        let (flags, body) = self.read_frame().expect("read peer READY");
        assert_eq!(flags & 0x04, 0x04, "peer's first frame is a command");
        assert!(
            body.starts_with(b"\x05READY"),
            "peer sent READY: {body:02x?}"
        );
        body
    }

    /// True if the peer closes the connection (read returns 0 or a reset/abort error) within
    /// `within`. Any data the peer sends meanwhile is discarded.
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        loop {
            let left = within.saturating_sub(start.elapsed());
            if left.is_zero() {
                return false;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => return false,
                    ErrorKind::Interrupted => continue,
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => return true,
                    _ => return true,
                },
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// The PATTERNS switch (tests/spec_rfc28..31.rs, tests/interop_patterns.rs).
// ------------------------------------------------------------------------------------------

/// Instantiates a pattern suite (REQ/REP/DEALER/ROUTER/PUB/SUB/XPUB/XSUB, RFC 28-31) for
/// ferromq in `mod $name`. Same aliases as [`ferro_instance!`] (`zmq` and `fz` = ferromq,
/// `lz` = libzmq).
///
/// THE PATTERNS SWITCH: the macro called below selects the state of every pattern suite:
/// `patterns_ignored!` (compiled, `#[ignore = "needs patterns"]`; run them with
/// `cargo test --test spec_rfc28 -- --include-ignored`), `ferro_on!` (run like any test) or
/// `ferro_off!` (not compiled). Independent of `ferro_instance!` above.
macro_rules! patterns_instance {
    ($name:ident, $suite:ident $(, $arg:expr)*) => {
        ferro_on!($name, $suite $(, $arg)*);
    };
}

/// Pattern suites compiled for ferromq but `#[ignore = "needs patterns"]`.
macro_rules! patterns_ignored {
    ($name:ident, $suite:ident $(, $arg:expr)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use ferromq as zmq;
            #[allow(unused_imports)]
            use ferromq as fz;
            #[allow(unused_imports)]
            use ::zmq as lz;
            $suite!([$($arg),*] #[ignore = "needs patterns"]);
        }
    };
}

/// Calls `attempt` every `every` until it returns `Some`, or panics with `what` after
/// `within`. For "retry until the peer is attached" loops (e.g. ROUTER_MANDATORY sends,
/// slow-joiner publishing); the awaited event is the `Some`, the interval only paces retries.
pub fn retry_until<T>(
    within: Duration,
    every: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = attempt() {
            return v;
        }
        if start.elapsed() >= within {
            panic!("{what}: not done within {within:?}");
        }
        std::thread::sleep(every);
    }
}

/// Frames as byte vectors, for comparing with `recv_multipart` results:
/// `frames(&[b"a", b""])`.
pub fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}
