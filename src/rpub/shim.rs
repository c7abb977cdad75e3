//! A fault-injection TCP proxy for tests (not a stable API).
//!
//! [`Shim`] listens on `127.0.0.1:0` and forwards every accepted connection to one upstream
//! ZMTP endpoint. The client-to-upstream direction is copied verbatim. The
//! upstream-to-client direction is parsed passively: the 64-byte greeting is forwarded as it
//! arrives, then frames are read as `flags, size (1 or 8 bytes), body`; command frames pass
//! through, and message frames are collected until the last one (no MORE flag) so a whole
//! multipart message is forwarded or dropped as a unit. Put the shim between a PUB and a SUB
//! (or a ROUTER and a DEALER: the upstream is the binding side) to lose messages at ZMTP
//! frame granularity, cut and restore connections, or stall delivery.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const FLAG_MORE: u8 = 0x01;
const FLAG_LONG: u8 = 0x02;
const FLAG_COMMAND: u8 = 0x04;
const GREETING_LEN: usize = 64;
/// Largest frame the shim buffers (a test tool: larger frames end the connection).
const MAX_FRAME: usize = 64 << 20;

#[derive(Debug)]
struct Ctl {
    /// Drop probability per message, parts per million.
    rate_ppm: u32,
    /// Frames still to drop (whole messages, until this is used up).
    burst_frames: u64,
    cut: bool,
    stalled: bool,
    /// Never drop messages whose first frame starts with 0x00 (heartbeats, control topics).
    spare_control: bool,
    rng: u64,
}

#[derive(Debug)]
struct State {
    ctl: Mutex<Ctl>,
    cv: Condvar,
    conns: Mutex<Vec<TcpStream>>,
    dropped_msgs: AtomicU64,
    dropped_frames: AtomicU64,
    forwarded_msgs: AtomicU64,
    accepted: AtomicU64,
    stop: AtomicBool,
}

/// The proxy. Dropping it stops accepting and cuts every connection.
#[derive(Debug)]
pub struct Shim {
    state: Arc<State>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

fn parse_tcp(endpoint: &str) -> io::Result<SocketAddr> {
    let hostport = endpoint.strip_prefix("tcp://").unwrap_or(endpoint);
    hostport
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "need tcp://IP:PORT"))
}

impl Shim {
    /// Starts a proxy to `upstream` (`tcp://IP:PORT`).
    pub fn start(upstream: &str) -> io::Result<Shim> {
        let up = parse_tcp(upstream)?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15)
            | 1;
        let state = Arc::new(State {
            ctl: Mutex::new(Ctl {
                rate_ppm: 0,
                burst_frames: 0,
                cut: false,
                stalled: false,
                spare_control: false,
                rng: seed,
            }),
            cv: Condvar::new(),
            conns: Mutex::new(Vec::new()),
            dropped_msgs: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
            forwarded_msgs: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("rpub-shim".into())
            .spawn(move || accept_loop(listener, up, st))?;
        Ok(Shim {
            state,
            addr,
            thread: Some(thread),
        })
    }

    /// The endpoint to connect to instead of the upstream (`tcp://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    fn ctl(&self) -> std::sync::MutexGuard<'_, Ctl> {
        match self.state.ctl.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Drops each message with probability `p` (0.0..=1.0).
    pub fn set_drop_rate(&self, p: f64) {
        self.ctl().rate_ppm = (p.clamp(0.0, 1.0) * 1e6) as u32;
    }

    /// Seeds the drop decisions (reproducible runs).
    pub fn set_seed(&self, seed: u64) {
        self.ctl().rng = seed | 1;
    }

    /// Drops the next whole messages until at least `frames` frames are dropped.
    pub fn drop_burst(&self, frames: u64) {
        self.ctl().burst_frames = frames;
    }

    /// Frames of a pending burst not dropped yet.
    pub fn burst_left(&self) -> u64 {
        self.ctl().burst_frames
    }

    /// Never drop messages whose first frame begins with `0x00` (heartbeats).
    pub fn spare_control(&self, on: bool) {
        self.ctl().spare_control = on;
    }

    /// Closes every connection and refuses new ones until [`Shim::restore`].
    pub fn cut(&self) {
        self.ctl().cut = true;
        self.state.cv.notify_all();
        let conns = match self.state.conns.lock() {
            Ok(mut c) => std::mem::take(&mut *c),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        for c in conns {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.ctl().cut = false;
        self.state.cv.notify_all();
    }

    /// Stops (true) or resumes (false) forwarding upstream-to-client traffic; a stalled
    /// connection stops reading, so TCP backpressure reaches the sender.
    pub fn stall(&self, on: bool) {
        self.ctl().stalled = on;
        self.state.cv.notify_all();
    }

    /// Messages dropped so far.
    pub fn dropped_messages(&self) -> u64 {
        self.state.dropped_msgs.load(Ordering::Relaxed)
    }

    /// Frames dropped so far.
    pub fn dropped_frames(&self) -> u64 {
        self.state.dropped_frames.load(Ordering::Relaxed)
    }

    /// Messages forwarded so far.
    pub fn forwarded_messages(&self) -> u64 {
        self.state.forwarded_msgs.load(Ordering::Relaxed)
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, up: SocketAddr, st: Arc<State>) {
    for conn in listener.incoming() {
        if st.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        let cut = st.ctl.lock().map(|c| c.cut).unwrap_or(true);
        if cut {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&up, Duration::from_secs(2)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let clones = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        );
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = clones else {
            continue;
        };
        if let Ok(mut conns) = st.conns.lock() {
            conns.push(c3);
            conns.push(s3);
        }
        st.accepted.fetch_add(1, Ordering::Relaxed);
        // client -> upstream: verbatim.
        let _ = std::thread::Builder::new()
            .name("rpub-shim-up".into())
            .spawn(move || {
                let (mut from, mut to) = (c2, s2);
                let _ = io::copy(&mut from, &mut to);
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            });
        let st2 = st.clone();
        let _ = std::thread::Builder::new()
            .name("rpub-shim-down".into())
            .spawn(move || {
                let _ = pump_down(&server, &client, &st2);
                let _ = server.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Both);
            });
    }
}

fn next_rand(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Decides whether to drop a whole message of `frames` frames.
fn should_drop(st: &State, frames: u64, control: bool) -> bool {
    let Ok(mut c) = st.ctl.lock() else {
        return false;
    };
    if control && c.spare_control {
        return false;
    }
    if c.burst_frames > 0 {
        c.burst_frames = c.burst_frames.saturating_sub(frames);
        return true;
    }
    c.rate_ppm > 0 && next_rand(&mut c.rng) % 1_000_000 < u64::from(c.rate_ppm)
}

fn wait_unstalled(st: &State) -> bool {
    let Ok(mut c) = st.ctl.lock() else {
        return false;
    };
    while c.stalled && !c.cut {
        c = match st.cv.wait(c) {
            Ok(g) => g,
            Err(_) => return false,
        };
    }
    !c.cut
}

fn pump_down(server: &TcpStream, client: &TcpStream, st: &State) -> io::Result<()> {
    let mut r = BufReader::with_capacity(256 * 1024, server);
    let mut w = BufWriter::with_capacity(256 * 1024, client);
    // Greeting: forwarded as it arrives (the peers exchange it in steps).
    let mut left = GREETING_LEN;
    let mut buf = [0u8; GREETING_LEN];
    while left > 0 {
        let n = r.read(&mut buf[..left])?;
        if n == 0 {
            return Ok(());
        }
        w.write_all(&buf[..n])?;
        w.flush()?;
        left -= n;
    }
    let mut msg: Vec<u8> = Vec::new();
    let mut frames = 0u64;
    let mut control = false;
    loop {
        if r.buffer().is_empty() {
            w.flush()?;
        }
        let mut flags = [0u8; 1];
        if r.read(&mut flags)? == 0 {
            w.flush()?;
            return Ok(());
        }
        let flags = flags[0];
        let size = if flags & FLAG_LONG != 0 {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        } else {
            let mut b = [0u8; 1];
            r.read_exact(&mut b)?;
            u64::from(b[0])
        };
        let size = usize::try_from(size)
            .ok()
            .filter(|&n| n <= MAX_FRAME)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
        let start = msg.len();
        msg.push(flags);
        if flags & FLAG_LONG != 0 {
            msg.extend_from_slice(&(size as u64).to_be_bytes());
        } else {
            msg.push(size as u8);
        }
        let body_at = msg.len();
        msg.resize(body_at + size, 0);
        r.read_exact(&mut msg[body_at..])?;
        if flags & FLAG_COMMAND != 0 {
            // Commands never belong to a message: forward at once.
            let cmd = msg.split_off(start);
            if !wait_unstalled(st) {
                return Ok(());
            }
            w.write_all(&cmd)?;
            continue;
        }
        if frames == 0 {
            control = msg.get(body_at) == Some(&0);
        }
        frames += 1;
        if flags & FLAG_MORE != 0 {
            continue;
        }
        if !wait_unstalled(st) {
            return Ok(());
        }
        if should_drop(st, frames, control) {
            st.dropped_msgs.fetch_add(1, Ordering::Relaxed);
            st.dropped_frames.fetch_add(frames, Ordering::Relaxed);
        } else {
            w.write_all(&msg)?;
            st.forwarded_msgs.fetch_add(1, Ordering::Relaxed);
        }
        msg.clear();
        frames = 0;
    }
}
