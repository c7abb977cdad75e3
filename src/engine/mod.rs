//! The I/O thread: one `mio` loop per [`crate::Context`] that drives every connection.
//!
//! The engine holds no routing logic. For each connection it asks the protocol core what it
//! wants (handshake bytes to send, frames decoded), moves whole messages between the socket
//! and the wire through the peer's [`Pipe`]s, and reads and writes until `WouldBlock`:
//! many messages are encoded into one buffer and written with one `writev`, and each read
//! takes up to 64 KiB and decodes every whole frame in it.
//!
//! User threads talk to it through a command channel plus a `mio::Waker`; pipes wake it only
//! on the empty -> non-empty edge (see [`crate::pattern::pipe`]).
//!
//! Sessions: a *session* is the engine's side of one peer of a socket. A `connect` creates
//! a session at once, with its pipes already attached to the socket (unless `IMMEDIATE`),
//! so messages queue before the connection exists and survive reconnects; the session
//! reconnects with `RECONNECT_IVL`, doubling up to `RECONNECT_IVL_MAX`. An accepted
//! connection gets a session whose pipes are created when its handshake succeeds and which
//! ends with the connection.

mod direct;
pub mod endpoint;
mod transport;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::context::SocketList;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::monitor::{MonitorEvent, SocketEvent};
use crate::options::Options;
use crate::pattern::frame::Frame as MsgFrame;
use crate::pattern::{Msg, Notify, Peer, Pipe};
use crate::proto::{Command, PeerInfo};
use crate::proto::{
    Decoded, Decoder, Encoder, Frame, Handshake, HandshakeConfig, HandshakeStatus, LargeBody,
};
use crate::shared::{MailEvent, SocketShared};
use crate::SocketType;

use direct::DirectWriter;
use endpoint::Endpoint;
use transport::{Listener as NetListener, Stream};

const WAKER: Token = Token(usize::MAX);
/// Bytes requested per `read`.
const READ_CHUNK: usize = 64 * 1024;
/// The rest of a frame at least this large is read straight into the frame's buffer.
const IN_PLACE_MIN: usize = 16 * 1024;
/// The length of a long frame header (flags + 8-octet size).
const LONG_HEADER: usize = 9;
/// Encode more messages only while less than this is waiting to be written.
const WRITE_HIGH: usize = 256 * 1024;
/// Messages taken from a pipe per lock.
const POP_BATCH: usize = 256;
/// Where the application's ZAP handler binds (RFC 27).
const ZAP_ENDPOINT: &str = "zeromq.zap.01";
/// Pause before accepting again after EMFILE and the like.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Messages decoded before handing them to the socket under one pipe lock.
const DECODE_BATCH: usize = 256;
/// Reads of one connection per turn of the event loop (up to 1 MiB with 64 KiB reads).
const READ_BUDGET: usize = 16;
/// Slices per `writev`.
const MAX_IOV: usize = 64;

/// Pipes as the engine holds them: `out` is read by the engine, `inp` written by it.
type PipePair = (Arc<Pipe>, Arc<Pipe>);

pub(crate) enum Cmd {
    Bind {
        sock: Arc<SocketShared>,
        ep: Endpoint,
        opts: Options,
        spec: String,
        reply: Sender<Result<String>>,
    },
    Connect {
        sock: Arc<SocketShared>,
        id: u64,
        ep: Endpoint,
        spec: String,
        opts: Options,
        pipes: Option<PipePair>,
    },
    Unbind {
        sock_id: u64,
        spec: String,
        reply: Sender<Result<()>>,
    },
    Disconnect {
        sock_id: u64,
        spec: String,
        reply: Sender<Result<()>>,
    },
    /// A pipe of session `id` changed (readable, writable, or closed by the socket).
    Notify(u64),
    /// SUB/XSUB: a subscription (`[0x01, prefix]`) or cancel (`[0x00, prefix]`) to send to
    /// every connected publisher, and to every one that connects later.
    Subscription {
        sock_id: u64,
        msg: Bytes,
    },
    /// The ZAP handler answered (or went away).
    ZapReply,
    /// Test hook: make the I/O thread panic (to test that sockets see ETERM).
    InjectPanic,
    CloseSocket {
        sock_id: u64,
        linger: i32,
    },
    Shutdown,
}

/// A clonable handle on a context's I/O thread.
#[derive(Clone)]
pub(crate) struct EngineHandle {
    bell: Doorbell,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

/// Wakes the I/O thread only when it is (about to be) blocked in `poll`: a busy thread
/// finds the command at the top of its loop, and a wake-up is a syscall.
#[derive(Clone)]
struct Doorbell {
    tx: Sender<Cmd>,
    waker: Arc<Waker>,
    asleep: Arc<AtomicBool>,
}

impl Doorbell {
    fn ring(&self, cmd: Cmd) {
        if self.tx.send(cmd).is_ok() && self.asleep.swap(false, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
}

/// Rings the engine when the ZAP link's socket signal is raised (a reply arrived).
struct ZapBell(Doorbell);

impl Notify for ZapBell {
    fn notify(&self) {
        self.0.ring(Cmd::ZapReply);
    }
}

struct EngineNotify {
    bell: Doorbell,
    id: u64,
}

impl Notify for EngineNotify {
    fn notify(&self) {
        self.bell.ring(Cmd::Notify(self.id));
    }
}

impl EngineHandle {
    /// Starts the I/O thread.
    pub fn spawn(
        ids: Arc<AtomicU64>,
        sockets: Arc<SocketList>,
        inproc: Arc<crate::inproc::Registry>,
    ) -> io::Result<EngineHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let bell = Doorbell {
            tx,
            waker,
            asleep: Arc::new(AtomicBool::new(false)),
        };
        let mut engine = Engine {
            poll,
            rx,
            bell: bell.clone(),
            ids,
            io: Slab::new(),
            sessions: Slab::new(),
            by_id: HashMap::new(),
            timers: BinaryHeap::new(),
            serial: 0,
            shutdown: false,
            scratch: Vec::new(),
            draining: false,
            barred: Vec::new(),
            reread: Vec::new(),
            subs: HashMap::new(),
            read_buf: vec![0; READ_CHUNK],
            inproc,
            zap: None,
            zap_bell: None,
        };
        let thread = std::thread::Builder::new()
            .name("ferromq-io".into())
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run()));
                if run.is_err() {
                    // A bug, never peer data: surface it to every socket as ETERM rather
                    // than leaving user threads blocked forever.
                    log::error!("the ferromq I/O thread panicked; the context is unusable");
                    sockets.engine_failed.store(true, Ordering::Release);
                    sockets.wake_all();
                }
            })?;
        Ok(EngineHandle {
            bell,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    fn send(&self, cmd: Cmd) {
        self.bell.ring(cmd);
    }

    fn call<T>(&self, make: impl FnOnce(Sender<Result<T>>) -> Cmd) -> Result<T> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(make(tx));
        rx.recv().unwrap_or(Err(Error::ETERM))
    }

    /// Binds; returns the resolved endpoint.
    pub fn bind(&self, sock: Arc<SocketShared>, spec: &str, opts: Options) -> Result<String> {
        let ep = endpoint::parse(spec)?;
        let spec = spec.to_string();
        self.call(|reply| Cmd::Bind {
            sock,
            ep,
            spec,
            opts,
            reply,
        })
    }

    /// Starts connecting; the endpoint is checked here, resolved in the engine.
    pub fn connect(
        &self,
        sock: Arc<SocketShared>,
        id: u64,
        spec: &str,
        opts: Options,
        pipes: Option<PipePair>,
    ) -> Result<()> {
        let ep = endpoint::parse(spec)?;
        match &ep {
            Endpoint::Tcp(t) if t.port.is_none() || t.host == "*" => return Err(Error::EINVAL),
            Endpoint::Inproc(_) => return Err(Error::EPROTONOSUPPORT),
            _ => {}
        }
        self.send(Cmd::Connect {
            sock,
            id,
            ep,
            spec: spec.to_string(),
            opts,
            pipes,
        });
        Ok(())
    }

    pub fn unbind(&self, sock_id: u64, spec: &str) -> Result<()> {
        let spec = spec.to_string();
        self.call(|reply| Cmd::Unbind {
            sock_id,
            spec,
            reply,
        })
    }

    pub fn disconnect(&self, sock_id: u64, spec: &str) -> Result<()> {
        let spec = spec.to_string();
        self.call(|reply| Cmd::Disconnect {
            sock_id,
            spec,
            reply,
        })
    }

    /// The notifier a pipe of session `id` uses to wake the engine.
    pub fn notifier(&self, id: u64) -> Arc<dyn Notify> {
        Arc::new(EngineNotify {
            bell: self.bell.clone(),
            id,
        })
    }

    /// SUB/XSUB: forwards a subscription change (see `Cmd::Subscription`).
    pub fn subscription(&self, sock_id: u64, msg: Bytes) {
        self.send(Cmd::Subscription { sock_id, msg });
    }

    /// Test hook: makes the I/O thread panic.
    pub fn inject_panic(&self) {
        self.send(Cmd::InjectPanic);
    }

    pub fn close_socket(&self, sock_id: u64, linger: i32) {
        self.send(Cmd::CloseSocket { sock_id, linger });
    }

    /// Asks the thread to finish (after lingering sessions are done) and waits for it.
    pub fn shutdown_and_join(self) {
        self.send(Cmd::Shutdown);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Reconnect(u64),
    Handshake(usize, u64),
    Linger(u64),
    /// Send the next PING on connection (token, serial).
    Ping(usize, u64),
    /// The PING sent at this instant must have been answered by now.
    PingTimeout(usize, u64, Instant),
    /// The peer's PING TTL: the connection must have seen traffic within it.
    PeerTtl(usize, u64, Duration),
    /// Retry accepting on a listener after running out of descriptors.
    Accept(usize),
}

struct Listener {
    sock: Arc<SocketShared>,
    opts: Options,
    spec: String,
    resolved: String,
    inner: NetListener,
}

enum ConnState {
    Connecting,
    Handshaking(Box<Handshake>),
    Active,
}

struct Conn {
    serial: u64,
    stream: Stream,
    session: usize,
    state: ConnState,
    rbuf: BytesMut,
    /// The last frame decoded was large (>= `IN_PLACE_MIN`): read headers on their own so
    /// that bodies are read in place.
    large_frames: bool,
    /// Bytes returned by the last in-place read (sizes the next one's zero-filled room).
    read_hint: usize,
    /// An event reported the peer's side closed (or an error): read until EOF from now on,
    /// instead of stopping at a short read.
    hup: bool,
    /// A large frame whose body is being read straight into a pooled buffer (see
    /// `Decoder::decode_small`); nothing behind it is in `rbuf` until it is complete.
    large: Option<LargeBody>,
    enc: Encoder,
    dec: Decoder,
    frames: Vec<MsgFrame>,
    /// Decoded messages not yet in the inbound pipe (handed over in batches).
    pending: VecDeque<Msg>,
    paused: bool,
    peer: String,
    /// The peer speaks ZMTP 3.1 (commands for subscriptions, PING/PONG).
    zmtp31: bool,
    /// Last time any byte arrived (heartbeats: any traffic counts as life).
    last_rx: Instant,
    /// CURVE: boxes every frame after the handshake.
    cipher: Option<crate::proto::FrameCipher>,
    /// A ZAP request for this connection's handshake is out.
    zap_sent: bool,
    /// REQ/REP: lets the application thread write a message itself (see `direct`).
    direct: Option<Arc<DirectWriter>>,
    /// SUB/XSUB: a subscription copy was taken from the outbound pipe; nothing more is
    /// encoded from it until the engine has applied the commands sent before that copy
    /// (see [`Engine::subscription`]), so a subscription never arrives after data the
    /// application sent after it. It may arrive before data the application sent before it
    /// (the engine applies commands as soon as it sees them), which only makes a publisher
    /// act on it sooner.
    barrier: bool,
    /// The rest of the batch popped with that copy, encoded once the barrier lifts.
    held: Vec<Msg>,
}

impl Conn {
    /// Takes a decoded message frame: a message is complete with its last frame, and then
    /// waits in `pending` (unless the socket discards input).
    fn message_frame(&mut self, data: MsgFrame, more: bool, discard: bool) {
        if more {
            self.frames.push(data);
            return;
        }
        let msg = if self.frames.is_empty() {
            Msg::One(data)
        } else {
            self.frames.push(data);
            Msg::Many(std::mem::take(&mut self.frames))
        };
        if !discard {
            self.pending.push_back(msg);
        }
    }

    /// Queues a command, boxed when the connection is encrypted.
    fn send_command(&mut self, cmd: &Command) -> std::result::Result<(), Close> {
        match &mut self.cipher {
            None => self.enc.encode_command(cmd),
            Some(cipher) => {
                let mut body = BytesMut::new();
                cmd.encode_body(&mut body);
                let boxed = cipher.encrypt(&body, false, true).map_err(Close::Proto)?;
                self.enc.encode_frame(&boxed, false);
            }
        }
        Ok(())
    }

    /// Queues one message frame, boxed when the connection is encrypted.
    fn send_frame(&mut self, data: &MsgFrame, more: bool) -> std::result::Result<(), Close> {
        match &mut self.cipher {
            None => match data.shared() {
                Some(b) => self.enc.encode_frame(b, more),
                None => self.enc.encode_small_frame(data, more),
            },
            Some(cipher) => {
                let boxed = cipher.encrypt(data, more, false).map_err(Close::Proto)?;
                self.enc.encode_frame(&boxed, false);
            }
        }
        Ok(())
    }

    /// A subscription as a ZMTP 3.1 command, or in the message form for ZMTP 3.0 peers.
    fn send_subscription(&mut self, kind: u8, prefix: &[u8]) -> std::result::Result<(), Close> {
        let prefix = Bytes::copy_from_slice(prefix);
        if self.zmtp31 {
            let cmd = if kind == 1 {
                Command::Subscribe(prefix)
            } else {
                Command::Cancel(prefix)
            };
            self.send_command(&cmd)
        } else {
            let mut m = BytesMut::with_capacity(prefix.len() + 1);
            m.extend_from_slice(&[kind]);
            m.extend_from_slice(&prefix);
            self.send_frame(&m.freeze().into(), false)
        }
    }
}

enum Io {
    Listener(Box<Listener>),
    Conn(Box<Conn>),
}

enum Origin {
    Connect { ep: Endpoint, spec: String },
    Accepted { listener: usize },
}

struct Session {
    id: u64,
    sock: Arc<SocketShared>,
    opts: Options,
    origin: Origin,
    pipes: Option<PipePair>,
    /// The pipes were created by `connect` and stay across reconnects.
    pre_attached: bool,
    /// The socket knows this session's pipes (a Detach is owed when it ends).
    attached: bool,
    conn: Option<usize>,
    closing: bool,
    backoff: Duration,
    /// The endpoint as connected, or the listener's resolved endpoint (monitor events).
    endpoint: String,
    /// The peer's routing id once its handshake is done (monitor events).
    peer_id: Option<Bytes>,
}

impl Session {
    /// Reports an event to the socket's monitors, if any.
    fn emit(&self, kind: SocketEvent, value: u32, reason: Option<String>) {
        emit_to(
            &self.sock,
            kind,
            value,
            &self.endpoint,
            self.peer_id.clone(),
            reason,
        );
    }
}

fn emit_to(
    sock: &SocketShared,
    kind: SocketEvent,
    value: u32,
    endpoint: &str,
    peer: Option<Bytes>,
    reason: Option<String>,
) {
    if sock.monitor.is_active() {
        sock.monitor.emit(MonitorEvent {
            kind,
            value,
            endpoint: endpoint.to_string(),
            peer,
            reason,
        });
    }
}

fn errno(e: &io::Error) -> u32 {
    e.raw_os_error()
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(0)
}

/// Why a connection is being closed.
#[derive(Debug)]
enum Close {
    Eof,
    Io(io::Error),
    Proto(crate::proto::ProtoError),
    PeerError(String),
    Timeout,
    HeartbeatTimeout,
}

impl std::fmt::Display for Close {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Close::Eof => f.write_str("closed by peer"),
            Close::Io(e) => write!(f, "I/O error: {e}"),
            Close::Proto(e) => write!(f, "protocol error: {e}"),
            Close::PeerError(r) => write!(f, "peer sent ERROR: {r}"),
            Close::Timeout => f.write_str("handshake timed out"),
            Close::HeartbeatTimeout => f.write_str("heartbeat timed out (peer silent)"),
        }
    }
}

struct Engine {
    poll: Poll,
    rx: Receiver<Cmd>,
    bell: Doorbell,
    ids: Arc<AtomicU64>,
    io: Slab<Io>,
    sessions: Slab<Session>,
    by_id: HashMap<u64, usize>,
    timers: BinaryHeap<Reverse<(Instant, Timer)>>,
    serial: u64,
    shutdown: bool,
    scratch: Vec<Msg>,
    /// Commands are being applied (`drain_commands` does not nest).
    draining: bool,
    /// Connections that hit their subscription barrier while commands were being applied:
    /// released when the drain ends.
    barred: Vec<usize>,
    /// Connections whose read loop stopped at [`READ_BUDGET`] with data still waiting: read
    /// again after this turn's other events (edge-triggered: no new event would say so).
    reread: Vec<usize>,
    /// SUB/XSUB sockets' subscriptions (counted), sent to each new connection.
    subs: HashMap<u64, crate::pattern::trie::Trie>,
    /// Where small reads land before they are appended to a connection's buffer.
    read_buf: Vec<u8>,
    /// The context's inproc names (to find a ZAP handler).
    inproc: Arc<crate::inproc::Registry>,
    /// The link to the application's ZAP handler, once one was needed.
    zap: Option<Peer>,
    /// Wakes the engine when the ZAP handler replies (kept alive with the link).
    zap_bell: Option<Arc<dyn Notify>>,
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

/// Socket types that never take data messages from peers.
fn discards_input(t: SocketType) -> bool {
    matches!(t, SocketType::PUSH)
}

/// Socket types whose outgoing `[0x01|0x00, prefix]` messages are subscriptions, sent as
/// SUBSCRIBE/CANCEL commands to ZMTP 3.1 peers (RFC 29, RFC 37).
fn sends_subscriptions(t: SocketType) -> bool {
    matches!(t, SocketType::SUB | SocketType::XSUB)
}

impl Engine {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            self.drain_commands();
            if self.shutdown && self.sessions.is_empty() {
                break;
            }
            // Declare the sleep before the last look at the mailbox (the Doorbell pairs
            // with this): a command sent after the look finds `asleep` and rings.
            self.bell.asleep.store(true, Ordering::SeqCst);
            let timeout = if self.rx.is_empty() && self.reread.is_empty() {
                self.next_timeout()
            } else {
                Some(Duration::ZERO)
            };
            let polled = self.poll.poll(&mut events, timeout);
            self.bell.asleep.store(false, Ordering::SeqCst);
            if let Err(e) = polled {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("I/O thread poll failed: {e}");
                break;
            }
            for ev in events.iter() {
                let tok = ev.token();
                if tok != WAKER {
                    let hup = ev.is_read_closed() || ev.is_error();
                    self.io_event(tok.0, hup);
                }
            }
            for tok in std::mem::take(&mut self.reread) {
                // (A token reused by a new connection meanwhile costs one read.)
                if matches!(self.io.get(tok), Some(Io::Conn(c)) if matches!(c.state, ConnState::Active))
                {
                    self.drive(tok, true);
                }
            }
            self.fire_timers();
        }
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    // ----- timers ----------------------------------------------------------------------

    fn add_timer(&mut self, after: Duration, t: Timer) {
        self.timers.push(Reverse((Instant::now() + after, t)));
    }

    fn next_timeout(&self) -> Option<Duration> {
        self.timers
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()))
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let mut fired = false;
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            fired = true;
            let Some(Reverse((_, t))) = self.timers.pop() else {
                break;
            };
            match t {
                Timer::Reconnect(id) => {
                    if let Some(&s) = self.by_id.get(&id) {
                        if self.sessions[s].conn.is_none() {
                            self.start_connect(s);
                        }
                    }
                }
                Timer::Handshake(tok, serial) => {
                    let expired = matches!(self.io.get(tok), Some(Io::Conn(c))
                        if c.serial == serial && !matches!(c.state, ConnState::Active));
                    if expired {
                        self.close_conn(tok, Close::Timeout);
                    }
                }
                Timer::Ping(tok, serial) => self.heartbeat(tok, serial),
                Timer::Accept(ltok) => {
                    if matches!(self.io.get(ltok), Some(Io::Listener(_))) {
                        self.accept(ltok);
                    }
                }
                Timer::PingTimeout(tok, serial, sent) => {
                    let dead = matches!(self.io.get(tok), Some(Io::Conn(c))
                        if c.serial == serial && c.last_rx < sent);
                    if dead {
                        self.close_conn(tok, Close::HeartbeatTimeout);
                    }
                }
                Timer::PeerTtl(tok, serial, ttl) => {
                    let dead = matches!(self.io.get(tok), Some(Io::Conn(c))
                        if c.serial == serial && c.last_rx.elapsed() >= ttl);
                    if dead {
                        self.close_conn(tok, Close::HeartbeatTimeout);
                    }
                }
                Timer::Linger(sock_id) => {
                    let doomed: Vec<usize> = self
                        .sessions
                        .iter()
                        .filter(|(_, s)| s.sock.id == sock_id && s.closing)
                        .map(|(i, _)| i)
                        .collect();
                    for s in doomed {
                        self.remove_session(s);
                    }
                }
            }
        }
        if fired {
            self.trim();
        }
    }

    /// Applies a SUB/XSUB subscription change and sends it to every connected publisher:
    /// every subscribe (publishers keep a set per peer), a cancel only when the last count
    /// of the prefix goes, as libzmq's XSUB does.
    fn subscription(&mut self, sock_id: u64, msg: &[u8]) {
        let Some((&kind, prefix)) = msg.split_first() else {
            return;
        };
        let trie = self.subs.entry(sock_id).or_default();
        let forward = match kind {
            1 => {
                trie.add(prefix);
                true
            }
            0 => trie.remove(prefix),
            _ => false,
        };
        if !forward {
            return;
        }
        let conns: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.sock.id == sock_id)
            .filter_map(|(_, s)| s.conn)
            .collect();
        for tok in conns {
            if let Some(Io::Conn(c)) = self.io.get_mut(tok) {
                if matches!(c.state, ConnState::Active) {
                    if let Err(e) = c.send_subscription(kind, prefix) {
                        self.close_conn(tok, e);
                        continue;
                    }
                    self.drive(tok, false);
                }
            }
        }
    }

    /// Sends a PING (ZMTP 3.1 peers only), arms its deadline and the next PING.
    fn heartbeat(&mut self, tok: usize, serial: u64) {
        let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
            return;
        };
        if c.serial != serial {
            return;
        }
        let opts = &self.sessions[c.session].opts;
        let ivl = ms(opts.heartbeat_ivl);
        let timeout = if opts.heartbeat_timeout >= 0 {
            ms(opts.heartbeat_timeout)
        } else {
            ivl
        };
        let ttl = u16::try_from(opts.heartbeat_ttl / 100).unwrap_or(u16::MAX);
        let ping = Command::Ping {
            ttl_deciseconds: ttl,
            context: Bytes::new(),
        };
        if let Err(e) = c.send_command(&ping) {
            self.close_conn(tok, e);
            return;
        }
        let now = Instant::now();
        self.add_timer(timeout, Timer::PingTimeout(tok, serial, now));
        self.add_timer(ivl, Timer::Ping(tok, serial));
        self.drive(tok, false);
    }

    // ----- commands --------------------------------------------------------------------

    fn drain_commands(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        while let Ok(cmd) = self.rx.try_recv() {
            self.command(cmd);
        }
        self.draining = false;
        while let Some(tok) = self.barred.pop() {
            if let Some(Io::Conn(c)) = self.io.get_mut(tok) {
                c.barrier = false;
                self.drive(tok, false);
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Bind {
                sock,
                ep,
                spec,
                opts,
                reply,
            } => {
                let r = self.bind(sock.clone(), &ep, spec.clone(), opts);
                if let Err(e) = &r {
                    emit_to(
                        &sock,
                        SocketEvent::BIND_FAILED,
                        e.to_raw() as u32,
                        &spec,
                        None,
                        Some(e.to_string()),
                    );
                }
                let _ = reply.send(r);
            }
            Cmd::Connect {
                sock,
                id,
                ep,
                spec,
                opts,
                pipes,
            } => {
                let pre_attached = pipes.is_some();
                let backoff = ms(opts.reconnect_ivl);
                let endpoint = spec.clone();
                let s = self.sessions.insert(Session {
                    id,
                    sock,
                    opts,
                    endpoint,
                    peer_id: None,
                    origin: Origin::Connect { ep, spec },
                    pipes,
                    pre_attached,
                    attached: pre_attached,
                    conn: None,
                    closing: false,
                    backoff,
                });
                self.by_id.insert(id, s);
                self.start_connect(s);
            }
            Cmd::Unbind {
                sock_id,
                spec,
                reply,
            } => {
                let r = self.unbind(sock_id, &spec);
                let _ = reply.send(r);
            }
            Cmd::Disconnect {
                sock_id,
                spec,
                reply,
            } => {
                let doomed: Vec<usize> = self
                    .sessions
                    .iter()
                    .filter(|(_, s)| {
                        s.sock.id == sock_id
                            && matches!(&s.origin, Origin::Connect { spec: sp, .. } if *sp == spec)
                    })
                    .map(|(i, _)| i)
                    .collect();
                let r = if doomed.is_empty() {
                    Err(Error::ENOENT)
                } else {
                    Ok(())
                };
                for s in doomed {
                    self.remove_session(s);
                }
                let _ = reply.send(r);
            }
            Cmd::Notify(id) => {
                if let Some(&s) = self.by_id.get(&id) {
                    self.service_session(s);
                }
            }
            Cmd::CloseSocket { sock_id, linger } => self.close_socket(sock_id, linger),
            Cmd::Subscription { sock_id, msg } => self.subscription(sock_id, &msg),
            Cmd::ZapReply => self.zap_replies(),
            Cmd::Shutdown => self.shutdown = true,
            Cmd::InjectPanic => panic!("injected I/O thread panic (test hook)"),
        }
    }

    fn bind(
        &mut self,
        sock: Arc<SocketShared>,
        ep: &Endpoint,
        spec: String,
        opts: Options,
    ) -> Result<String> {
        if matches!(ep, Endpoint::Inproc(_)) {
            return Err(Error::EPROTONOSUPPORT);
        }
        let (mut inner, resolved) = NetListener::bind(ep, &opts)?;
        let entry = self.io.vacant_entry();
        let tok = entry.key();
        self.poll
            .registry()
            .register(&mut inner, Token(tok), Interest::READABLE)
            .map_err(|e| Error::from_io(&e))?;
        emit_to(
            &sock,
            SocketEvent::LISTENING,
            inner.raw_fd() as u32,
            &resolved,
            None,
            None,
        );
        entry.insert(Io::Listener(Box::new(Listener {
            sock,
            opts,
            spec,
            resolved: resolved.clone(),
            inner,
        })));
        Ok(resolved)
    }

    fn unbind(&mut self, sock_id: u64, spec: &str) -> Result<()> {
        let found = self.io.iter().find_map(|(tok, io)| match io {
            Io::Listener(l)
                if l.sock.id == sock_id
                    && (l.resolved == spec || (l.spec == spec && !spec.contains('*'))) =>
            {
                Some(tok)
            }
            _ => None,
        });
        let tok = found.ok_or(Error::ENOENT)?;
        self.close_listener(tok);
        let doomed: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| matches!(s.origin, Origin::Accepted { listener } if listener == tok))
            .map(|(i, _)| i)
            .collect();
        for s in doomed {
            self.remove_session(s);
        }
        Ok(())
    }

    fn close_listener(&mut self, tok: usize) {
        if let Some(Io::Listener(mut l)) = self.io.try_remove(tok) {
            let _ = self.poll.registry().deregister(&mut l.inner);
            emit_to(
                &l.sock,
                SocketEvent::CLOSED,
                l.inner.raw_fd() as u32,
                &l.resolved,
                None,
                None,
            );
        }
    }

    fn close_socket(&mut self, sock_id: u64, linger: i32) {
        self.subs.remove(&sock_id);
        let listeners: Vec<usize> = self
            .io
            .iter()
            .filter(|(_, io)| matches!(io, Io::Listener(l) if l.sock.id == sock_id))
            .map(|(t, _)| t)
            .collect();
        for t in listeners {
            self.close_listener(t);
        }
        let mine: Vec<usize> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.sock.id == sock_id)
            .map(|(i, _)| i)
            .collect();
        for s in mine {
            self.sessions[s].closing = true;
            if linger == 0 {
                self.remove_session(s);
            } else {
                self.service_session(s);
            }
        }
        if linger > 0 {
            self.add_timer(ms(linger), Timer::Linger(sock_id));
        }
    }

    // ----- sessions --------------------------------------------------------------------

    /// Reacts to a pipe notification: flush output, resume paused input, finish closing.
    fn service_session(&mut self, s: usize) {
        let Some(sess) = self.sessions.get(s) else {
            return;
        };
        if let Some((out, _)) = &sess.pipes {
            if out.is_closed() && !sess.closing {
                // The socket refused or dropped this peer.
                self.remove_session(s);
                return;
            }
        }
        if let Some(tok) = sess.conn {
            let active = matches!(self.io.get(tok), Some(Io::Conn(c)) if matches!(c.state, ConnState::Active));
            if active {
                let resume = matches!(self.io.get(tok), Some(Io::Conn(c)) if c.paused);
                if resume {
                    if let Some(Io::Conn(c)) = self.io.get_mut(tok) {
                        c.paused = false;
                    }
                    self.drive(tok, true);
                } else {
                    self.drive(tok, false);
                }
            }
        }
        self.maybe_finish(s);
    }

    /// Removes a closing session once everything it queued was written.
    fn maybe_finish(&mut self, s: usize) {
        let Some(sess) = self.sessions.get(s) else {
            return;
        };
        if !sess.closing {
            return;
        }
        let out_empty = sess.pipes.as_ref().is_none_or(|(out, _)| out.is_empty());
        let conn_done = match sess.conn.and_then(|t| self.io.get(t)) {
            None => true,
            Some(Io::Conn(c)) => match c.state {
                ConnState::Active => {
                    c.enc.is_empty()
                        && c.held.is_empty()
                        && c.direct.as_ref().is_none_or(|d| !d.has_rest())
                }
                _ => out_empty,
            },
            Some(Io::Listener(_)) => true,
        };
        if out_empty && conn_done {
            self.remove_session(s);
        }
    }

    fn remove_session(&mut self, s: usize) {
        let Some(sess) = self.sessions.try_remove(s) else {
            return;
        };
        self.by_id.remove(&sess.id);
        if let Some(tok) = sess.conn {
            self.drop_conn(tok);
        }
        if let Some((out, inp)) = &sess.pipes {
            out.close_and_clear();
            inp.close();
        }
        if sess.attached {
            sess.sock.post(MailEvent::Detach(sess.id));
        }
        self.trim();
    }

    /// Gives back table capacity after a burst of connections (10,000 short-lived ones
    /// left about 0.9 MB of empty slots behind), once the tables are a quarter full.
    /// Amortised: a table shrinks to twice its length, so it must fill again before the
    /// next shrink is worth doing.
    fn trim(&mut self) {
        const MIN: usize = 64;
        if self.io.capacity() > MIN && self.io.len() * 4 < self.io.capacity() {
            self.io.shrink_to_fit();
        }
        if self.sessions.capacity() > MIN && self.sessions.len() * 4 < self.sessions.capacity() {
            self.sessions.shrink_to_fit();
        }
        if self.by_id.capacity() > MIN && self.by_id.len() * 4 < self.by_id.capacity() {
            self.by_id.shrink_to(self.by_id.len() * 2);
        }
        if self.timers.capacity() > MIN && self.timers.len() * 4 < self.timers.capacity() {
            self.timers.shrink_to(self.timers.len() * 2);
        }
    }

    fn start_connect(&mut self, s: usize) {
        let sess = &self.sessions[s];
        let Origin::Connect { ep, spec } = &sess.origin else {
            return;
        };
        match Stream::connect(ep, &sess.opts) {
            Ok((stream, peer)) => {
                sess.emit(SocketEvent::CONNECT_DELAYED, 115, None);
                let tok = self.add_conn(stream, s, ConnState::Connecting, peer);
                self.sessions[s].conn = tok;
                if tok.is_none() {
                    self.schedule_reconnect(s);
                }
            }
            Err(e) => {
                log::debug!("connect to {spec} failed: {e}");
                self.schedule_reconnect(s);
            }
        }
    }

    fn schedule_reconnect(&mut self, s: usize) {
        let sess = &mut self.sessions[s];
        if sess.closing && sess.pipes.as_ref().is_none_or(|(o, _)| o.is_empty()) {
            self.remove_session(s);
            return;
        }
        if sess.opts.reconnect_ivl < 0 {
            return;
        }
        let delay = sess.backoff;
        let ivl = ms(sess.opts.reconnect_ivl);
        let max = ms(sess.opts.reconnect_ivl_max);
        sess.backoff = if max > ivl { (delay * 2).min(max) } else { ivl };
        let id = sess.id;
        let delay_ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
        sess.emit(SocketEvent::CONNECT_RETRIED, delay_ms, None);
        self.add_timer(delay, Timer::Reconnect(id));
    }

    // ----- connections -----------------------------------------------------------------

    fn add_conn(
        &mut self,
        mut stream: Stream,
        s: usize,
        state: ConnState,
        peer: String,
    ) -> Option<usize> {
        let entry = self.io.vacant_entry();
        let tok = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(tok),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("cannot register a connection: {e}");
            return None;
        }
        self.serial += 1;
        let opts = &self.sessions[s].opts;
        entry.insert(Io::Conn(Box::new(Conn {
            serial: self.serial,
            stream,
            session: s,
            state,
            rbuf: BytesMut::new(),
            large_frames: false,
            read_hint: READ_CHUNK,
            large: None,
            hup: false,
            enc: Encoder::new(),
            dec: Decoder::new(opts.max_msg_size()),
            frames: Vec::new(),
            pending: VecDeque::new(),
            paused: false,
            peer,
            zmtp31: true,
            last_rx: Instant::now(),
            cipher: None,
            zap_sent: false,
            direct: None,
            barrier: false,
            held: Vec::new(),
        })));
        Some(tok)
    }

    fn drop_conn(&mut self, tok: usize) {
        if let Some(Io::Conn(mut c)) = self.io.try_remove(tok) {
            if let Some(dw) = c.direct.take() {
                if let Some((out, _)) = self.sessions.get(c.session).and_then(|s| s.pipes.as_ref())
                {
                    out.set_direct(None);
                }
                // Closes the duplicate descriptor, so the connection really closes.
                dw.lock().sock = None;
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    fn accept(&mut self, ltok: usize) {
        loop {
            let Some(Io::Listener(l)) = self.io.get(ltok) else {
                return;
            };
            match l.inner.accept() {
                Ok((stream, addr)) => {
                    let sock = l.sock.clone();
                    let opts = l.opts.clone();
                    let endpoint = l.resolved.clone();
                    if opts.max_connections > 0 {
                        let open = self
                            .sessions
                            .iter()
                            .filter(|(_, s)| {
                                s.sock.id == sock.id && matches!(s.origin, Origin::Accepted { .. })
                            })
                            .count();
                        if open >= opts.max_connections {
                            log::warn!(
                                "{endpoint}: refusing a connection from {addr}: \
                                 {open} connections open (MAX_CONNECTIONS)"
                            );
                            drop(stream);
                            continue;
                        }
                    }
                    emit_to(
                        &sock,
                        SocketEvent::ACCEPTED,
                        stream.raw_fd() as u32,
                        &endpoint,
                        None,
                        None,
                    );
                    let id = self.next_id();
                    let backoff = ms(opts.reconnect_ivl);
                    let s = self.sessions.insert(Session {
                        id,
                        sock,
                        opts,
                        origin: Origin::Accepted { listener: ltok },
                        endpoint,
                        peer_id: None,
                        pipes: None,
                        pre_attached: false,
                        attached: false,
                        conn: None,
                        closing: false,
                        backoff,
                    });
                    self.by_id.insert(id, s);
                    match self.add_conn(stream, s, ConnState::Connecting, addr) {
                        Some(tok) => {
                            self.sessions[s].conn = Some(tok);
                            self.start_handshake(tok);
                        }
                        None => self.remove_session(s),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("accept failed: {e}");
                    if matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) {
                        // Out of descriptors or memory (ENFILE, EMFILE, ENOBUFS, ENOMEM):
                        // the pending connection stays in the backlog, and with
                        // edge-triggered polling nothing would retry it: try again shortly
                        // instead of spinning.
                        let at = Instant::now() + ACCEPT_BACKOFF;
                        self.timers.push(Reverse((at, Timer::Accept(ltok))));
                    }
                    emit_to(
                        &l.sock,
                        SocketEvent::ACCEPT_FAILED,
                        errno(&e),
                        &l.resolved,
                        None,
                        Some(e.to_string()),
                    );
                    return;
                }
            }
        }
    }

    fn start_handshake(&mut self, tok: usize) {
        let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
            return;
        };
        let sess = &self.sessions[c.session];
        let opts = &sess.opts;
        c.stream.configure(opts);
        let mut hs = Handshake::new(HandshakeConfig {
            socket_type: sess.sock.socket_type,
            identity: opts.routing_id.clone(),
            as_server: false,
            max_msg_size: opts.max_msg_size(),
        });
        if let Some(mut sec) = security_config(opts, &c.peer) {
            // Without an authenticator callback, a server asks the application's ZAP handler
            // (a socket bound to inproc://zeromq.zap.01), as libzmq does.
            sec.defer_auth = sec.authenticator.is_none() && self.inproc.is_bound(ZAP_ENDPOINT);
            hs = hs.with_security(sec);
        }
        hs.poll_output(&mut c.enc);
        c.state = ConnState::Handshaking(Box::new(hs));
        let serial = c.serial;
        let ivl = opts.handshake_ivl;
        if ivl > 0 {
            self.add_timer(ms(ivl), Timer::Handshake(tok, serial));
        }
        self.drive(tok, true);
    }

    /// `hup`: the event says the peer closed its side (or the socket has an error).
    fn io_event(&mut self, tok: usize, hup: bool) {
        match self.io.get_mut(tok) {
            Some(Io::Listener(_)) => self.accept(tok),
            Some(Io::Conn(c)) => {
                c.hup |= hup;
                if matches!(c.state, ConnState::Connecting) {
                    match c.stream.connect_result() {
                        Ok(true) => {
                            let fd = c.stream.raw_fd() as u32;
                            self.sessions[c.session].emit(SocketEvent::CONNECTED, fd, None);
                            self.start_handshake(tok)
                        }
                        Ok(false) => {}
                        Err(e) => self.close_conn(tok, Close::Io(e)),
                    }
                } else {
                    self.drive(tok, true);
                }
            }
            None => {}
        }
    }

    /// Reads (if asked) and writes as far as the socket allows; closes on error.
    fn drive(&mut self, tok: usize, read: bool) {
        let r = self.try_drive(tok, read);
        if let Err(reason) = r {
            self.close_conn(tok, reason);
            return;
        }
        if let Some(Io::Conn(c)) = self.io.get(tok) {
            let s = c.session;
            self.maybe_finish(s);
        }
    }

    fn try_drive(&mut self, tok: usize, read: bool) -> std::result::Result<(), Close> {
        if read {
            self.read_input(tok)?;
        }
        loop {
            let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
                return Ok(());
            };
            if c.barrier {
                // A subscription copy was popped: its command went to the channel before
                // the copy went into the pipe, so one drain applies it (and writes it).
                if self.draining {
                    // Inside a drain: released when that drain ends.
                    if !self.barred.contains(&tok) {
                        self.barred.push(tok);
                    }
                    return Ok(());
                }
                self.drain_commands();
                match self.io.get_mut(tok) {
                    Some(Io::Conn(c)) => c.barrier = false,
                    _ => return Ok(()),
                }
                continue;
            }
            let sess = &self.sessions[c.session];
            flush(c, sess, &mut self.scratch)?;
            if !c.barrier {
                return Ok(());
            }
        }
    }

    fn read_input(&mut self, tok: usize) -> std::result::Result<(), Close> {
        // A read that returned less than asked emptied the socket's receive queue, and data
        // arriving after it raises a new edge (Linux epoll, edge-triggered): no read is
        // needed to see it would block, saving a syscall per wake-up (two per REQ/REP round
        // trip). Not once the peer's side closed: its FIN raised no edge of its own.
        let mut drained = false;
        let mut reads = 0;
        loop {
            self.process_input(tok)?;
            let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
                return Ok(());
            };
            if c.paused {
                return Ok(());
            }
            if drained && !c.hup {
                if c.rbuf.is_empty() && c.large.is_none() {
                    c.rbuf = BytesMut::new();
                }
                return Ok(());
            }
            if reads == READ_BUDGET {
                // A peer writing faster than this thread decodes (with RCVHWM 0 nothing
                // pauses it) must not keep the other connections waiting: come back to it
                // after them.
                if !self.reread.contains(&tok) {
                    self.reread.push(tok);
                }
                return Ok(());
            }
            reads += 1;
            // Small reads go through one engine-wide scratch buffer (zeroed once) and are
            // appended: an idle connection holds no read buffer, and no per-read memset.
            // The rest of a large frame (the decoder reserved room for it) is read in
            // place, at most that many bytes: no copy, and no reallocation of a partly
            // read frame when the read also brings the next frame's bytes.
            //
            // While large frames arrive, a read that starts a frame takes only its header
            // (a long header is 9 bytes), so that the body lands in place too: one more
            // syscall per frame instead of copying the frame once or twice.
            let active = matches!(c.state, ConnState::Active);
            if let Some(large) = &mut c.large {
                // The body of a large frame: straight into its pooled buffer, no zero-fill,
                // and in the same syscall at most the next frame's header (a long header is
                // 9 bytes), so that a stream of large frames costs one read per frame.
                let asked = large.unfilled().len();
                let mut head = [0u8; LONG_HEADER];
                let r = c.stream.read_vectored(&mut [
                    io::IoSliceMut::new(large.unfilled()),
                    io::IoSliceMut::new(&mut head),
                ]);
                match r {
                    Ok(0) => return Err(Close::Eof),
                    Ok(n) => {
                        drained = n < asked + LONG_HEADER;
                        large.advance(n.min(asked));
                        c.rbuf.extend_from_slice(&head[..n.saturating_sub(asked)]);
                        c.last_rx = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Close::Io(e)),
                }
                continue;
            }
            let want = match c.dec.front_frame(&c.rbuf) {
                Some((total, missing)) if active && total >= IN_PLACE_MIN => {
                    missing.min(4 * READ_CHUNK)
                }
                _ => 0,
            };
            let spare = c.rbuf.capacity() - c.rbuf.len();
            let limit = if active && c.large_frames && c.rbuf.is_empty() {
                LONG_HEADER
            } else {
                READ_CHUNK
            };
            let res = if want > 0 && spare >= want {
                // Safe Rust zero-fills the room before reading into it; sizing that room to
                // about what the last in-place read returned keeps the zeroing close to the
                // bytes actually read instead of up to 4x more (1 MiB frames: 9 % of the I/O
                // thread went to memset with the whole 256 KiB zeroed per read).
                let room = want.min(c.read_hint.saturating_mul(2).max(IN_PLACE_MIN));
                let start = c.rbuf.len();
                c.rbuf.resize(start + room, 0);
                let r = c.stream.read(&mut c.rbuf[start..]);
                let n = *r.as_ref().unwrap_or(&0);
                c.rbuf.truncate(start + n);
                if n > 0 {
                    c.read_hint = n;
                }
                drained = n < room;
                r
            } else {
                let r = c.stream.read(&mut self.read_buf[..limit]);
                if let Ok(n) = r {
                    c.rbuf.extend_from_slice(&self.read_buf[..n]);
                    drained = n < limit;
                }
                r
            };
            match res {
                Ok(0) => return Err(Close::Eof),
                Ok(_) => c.last_rx = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if c.rbuf.is_empty() {
                        // Give back a buffer whose messages are all gone.
                        c.rbuf = BytesMut::new();
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Close::Io(e)),
            }
        }
    }

    /// Consumes buffered input: handshake bytes, then frames into the inbound pipe.
    fn process_input(&mut self, tok: usize) -> std::result::Result<(), Close> {
        let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
            return Ok(());
        };
        if let ConnState::Handshaking(hs) = &mut c.state {
            let status = hs.handle_input(&mut c.rbuf);
            hs.poll_output(&mut c.enc);
            let zap = match (&status, hs.pending_auth()) {
                (Ok(HandshakeStatus::InProgress), Some(req)) if !c.zap_sent => Some(req.clone()),
                _ => None,
            };
            if let Some(req) = zap {
                c.zap_sent = true;
                let serial = c.serial;
                self.zap_request(tok, serial, &req);
                return Ok(());
            }
            self.handshake_status(tok, status)?;
        }
        let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
            return Ok(());
        };
        if !matches!(c.state, ConnState::Active) {
            return Ok(());
        }
        let sess = &self.sessions[c.session];
        let discard = discards_input(sess.sock.socket_type);
        let inp = sess.pipes.as_ref().map(|(_, inp)| inp.clone());
        loop {
            let mut exhausted = false;
            while c.pending.len() < DECODE_BATCH {
                if let Some(large) = c.large.take_if(|l| l.is_complete()) {
                    c.large_frames = true;
                    let (data, more) = large.into_message();
                    c.message_frame(data.into(), more, discard);
                    continue;
                }
                if c.large.is_some() {
                    exhausted = true;
                    break;
                }
                let decoded = if c.cipher.is_none() {
                    // Small frames are copied out whole: no split of the read buffer; large
                    // ones are read into a pooled buffer.
                    let small = |body: &[u8], more| (MsgFrame::copy_from_slice(body), more);
                    c.dec.decode_small(
                        &mut c.rbuf,
                        crate::pattern::frame::INLINE_MAX,
                        IN_PLACE_MIN,
                        small,
                    )
                } else {
                    c.dec.decode(&mut c.rbuf).map(|f| f.map(Decoded::Frame))
                };
                let mut frame = match decoded.map_err(Close::Proto)? {
                    None => {
                        exhausted = true;
                        break;
                    }
                    Some(Decoded::Small((data, more))) => {
                        c.large_frames = false;
                        c.message_frame(data, more, discard);
                        continue;
                    }
                    Some(Decoded::Large(large)) => {
                        c.large = Some(large);
                        continue;
                    }
                    Some(Decoded::Frame(frame)) => frame,
                };
                c.large_frames =
                    matches!(&frame, Frame::Message { data, .. } if data.len() >= IN_PLACE_MIN);
                if let Some(cipher) = &mut c.cipher {
                    let p = cipher.decrypt_frame(&frame).map_err(Close::Proto)?;
                    frame = if p.command {
                        Frame::Command(Command::parse(p.data).map_err(Close::Proto)?)
                    } else {
                        Frame::Message {
                            data: p.data,
                            more: p.more,
                        }
                    };
                }
                match frame {
                    Frame::Message { data, more } => c.message_frame(data.into(), more, discard),
                    Frame::Command(cmd) => match cmd {
                        Command::Ping {
                            context,
                            ttl_deciseconds,
                        } => {
                            c.send_command(&Command::Pong { context })?;
                            if ttl_deciseconds > 0 {
                                let ttl = Duration::from_millis(u64::from(ttl_deciseconds) * 100);
                                let (serial, at) = (c.serial, c.last_rx);
                                self.timers
                                    .push(Reverse((at + ttl, Timer::PeerTtl(tok, serial, ttl))));
                            }
                        }
                        Command::Error(reason) => return Err(Close::PeerError(reason)),
                        Command::Subscribe(ref topic) | Command::Cancel(ref topic) => {
                            // Subscriptions reach PUB/XPUB patterns in the message form,
                            // with the same backpressure as data (never dropped, never
                            // unbounded).
                            let flag = u8::from(matches!(cmd, Command::Subscribe(_)));
                            let mut m = BytesMut::with_capacity(topic.len() + 1);
                            m.extend_from_slice(&[flag]);
                            m.extend_from_slice(topic);
                            c.pending.push_back(Msg::One(m.freeze().into()));
                        }
                        _ => {}
                    },
                }
            }
            if !c.pending.is_empty() {
                match &inp {
                    Some(inp) => {
                        if inp.push_many(&mut c.pending) == 0 && inp.is_closed() {
                            // The socket dropped this peer (a subscriber cut off, say): stop
                            // reading, or a peer writing as fast as this thread reads would
                            // keep it here; the pipe's notification removes the session.
                            c.pending.clear();
                            c.paused = true;
                            return Ok(());
                        }
                    }
                    None => c.pending.clear(),
                }
                if !c.pending.is_empty() {
                    // The socket is behind: stop reading until the pipe drains.
                    c.paused = true;
                    return Ok(());
                }
            }
            if exhausted {
                return Ok(());
            }
        }
    }

    /// Acts on a handshake step: completion sets the connection up, failure flushes the
    /// ERROR and closes.
    fn handshake_status(
        &mut self,
        tok: usize,
        status: std::result::Result<HandshakeStatus, crate::proto::ProtoError>,
    ) -> std::result::Result<(), Close> {
        let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
            return Ok(());
        };
        let ConnState::Handshaking(hs) = &mut c.state else {
            return Ok(());
        };
        match status {
            Ok(HandshakeStatus::InProgress) => Ok(()),
            Ok(HandshakeStatus::Done(peer)) => {
                c.cipher = hs.take_cipher();
                c.state = ConnState::Active;
                c.zmtp31 = peer.minor_version >= 1;
                let s = c.session;
                let sock = &self.sessions[s].sock;
                if self.sessions[s].opts.probe_router {
                    // PROBE_ROUTER: an empty message before anything else.
                    c.send_frame(&MsgFrame::new(), false)?;
                }
                if sends_subscriptions(sock.socket_type) {
                    // The I/O thread subscribes a new or reconnected publisher at once,
                    // without waiting for the user thread (no slow-joiner gap of ours).
                    if let Some(trie) = self.subs.get(&sock.id) {
                        let mut res = Ok(());
                        trie.for_each(|prefix| {
                            if res.is_ok() {
                                res = c.send_subscription(1, prefix);
                            }
                        });
                        res?;
                    }
                }
                let addr = c.peer.clone();
                let serial = c.serial;
                let ivl = self.sessions[s].opts.heartbeat_ivl;
                if ivl > 0 && c.zmtp31 {
                    self.add_timer(ms(ivl), Timer::Ping(tok, serial));
                }
                self.handshake_done(s, peer, addr);
                self.start_direct(tok);
                Ok(())
            }
            Err(e) => {
                // Best effort: let an ERROR command reach the peer before closing.
                let sess = &self.sessions[c.session];
                let _ = flush(c, sess, &mut self.scratch);
                Err(Close::Proto(e))
            }
        }
    }

    /// REQ and REP connections without CURVE get a direct writer (see `direct`).
    fn start_direct(&mut self, tok: usize) {
        let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
            return;
        };
        let Some(sess) = self.sessions.get(c.session) else {
            return;
        };
        if c.cipher.is_some() || !matches!(sess.sock.socket_type, SocketType::REQ | SocketType::REP)
        {
            return;
        }
        let Some((out, _)) = sess.pipes.as_ref() else {
            return;
        };
        match c.stream.duplicate() {
            Ok(dup) => {
                let dw = Arc::new(DirectWriter::new(dup));
                out.set_direct(Some(dw.clone()));
                c.direct = Some(dw);
            }
            // Out of descriptors: the usual path still works.
            Err(e) => log::debug!("no direct writer for {}: {e}", c.peer),
        }
    }

    /// Sends a ZAP request (RFC 27) for connection `tok` to the application's handler; with
    /// no handler reachable the handshake is resolved as libzmq does without one.
    fn zap_request(&mut self, tok: usize, serial: u64, req: &crate::proto::ZapRequest) {
        if self.zap.as_ref().is_none_or(|p| p.out.is_closed()) {
            self.zap = self.zap_connect();
        }
        let mut frames = vec![
            Bytes::new(),
            Bytes::from_static(crate::proto::zap::ZAP_VERSION.as_bytes()),
            Bytes::from(serial.to_string().into_bytes()),
            Bytes::from(req.domain.clone().into_bytes()),
            Bytes::from(req.address.clone().into_bytes()),
            req.identity.clone(),
            Bytes::from_static(req.mechanism.name().as_bytes()),
        ];
        frames.extend(req.credentials.iter().cloned());
        let sent = self.zap.as_ref().is_some_and(|p| {
            p.out
                .push(Msg::Many(frames.into_iter().map(MsgFrame::from).collect()))
                .is_ok()
        });
        if !sent {
            log::warn!("ZAP handler unreachable; resolving as without a handler");
            self.zap_resolve(tok, serial, None);
        }
    }

    /// Links the engine to the socket bound at inproc://zeromq.zap.01 (as a DEALER would).
    fn zap_connect(&mut self) -> Option<Peer> {
        let id = self.next_id();
        let shared = Arc::new(SocketShared::new(id, SocketType::DEALER));
        let bell: Arc<dyn Notify> = Arc::new(ZapBell(self.bell.clone()));
        shared.signal.subscribe(&bell);
        let mut opts = Options::new(SocketType::DEALER);
        opts.sndhwm = 0;
        opts.rcvhwm = 0;
        let side = crate::inproc::Side::new(shared.clone(), &opts);
        match self.inproc.connect(ZAP_ENDPOINT, side) {
            Ok(peer) => {
                // Keep the notifier alive as long as the link.
                self.zap_bell = Some(bell);
                Some(peer)
            }
            Err(e) => {
                log::warn!("cannot reach the ZAP handler: {e}");
                None
            }
        }
    }

    /// Reads the ZAP handler's replies and resumes the handshakes they answer.
    fn zap_replies(&mut self) {
        let Some(peer) = self.zap.clone() else {
            return;
        };
        while let Some(msg) = peer.inp.pop() {
            let frames = msg.into_frames();
            // [empty delimiter], version, request id, status code, status text, user id,
            // metadata.
            let f: Vec<&MsgFrame> = frames.iter().skip_while(|f| f.is_empty()).collect();
            let text = |i: usize| {
                f.get(i)
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default()
            };
            let Ok(serial) = text(1).parse::<u64>() else {
                log::warn!("ZAP reply without a valid request id dropped");
                continue;
            };
            let reply = crate::proto::ZapReply {
                status_code: text(2),
                status_text: text(3),
                user_id: f
                    .get(4)
                    .map(|b| Bytes::copy_from_slice(b))
                    .unwrap_or_default(),
                metadata: f
                    .get(5)
                    .and_then(|b| crate::proto::command::parse_metadata(b).ok())
                    .unwrap_or_default(),
            };
            let tok = self.io.iter().find_map(|(t, io)| match io {
                Io::Conn(c) if c.serial == serial => Some(t),
                _ => None,
            });
            if let Some(tok) = tok {
                self.zap_resolve(tok, serial, Some(reply));
            }
        }
    }

    fn zap_resolve(&mut self, tok: usize, serial: u64, reply: Option<crate::proto::ZapReply>) {
        let Some(Io::Conn(c)) = self.io.get_mut(tok) else {
            return;
        };
        if c.serial != serial {
            return;
        }
        let ConnState::Handshaking(hs) = &mut c.state else {
            return;
        };
        let status = hs.resolve_auth(reply);
        hs.poll_output(&mut c.enc);
        if let Err(reason) = self.handshake_status(tok, status) {
            self.close_conn(tok, reason);
            return;
        }
        // Bytes that arrived while the handler was deciding are still buffered.
        self.drive(tok, true);
    }

    fn handshake_done(&mut self, s: usize, peer: PeerInfo, addr: String) {
        let engine_notify: Arc<dyn Notify> = Arc::new(EngineNotify {
            bell: self.bell.clone(),
            id: self.sessions[s].id,
        });
        let sess = &mut self.sessions[s];
        sess.backoff = ms(sess.opts.reconnect_ivl);
        sess.peer_id = Some(peer.identity.clone());
        sess.emit(SocketEvent::HANDSHAKE_SUCCEEDED, 0, None);
        if sess.pipes.is_some() {
            return;
        }
        let mut meta: Metadata = peer.metadata.clone();
        meta.insert("Peer-Address", Bytes::from(addr.into_bytes()));
        if !peer.user_id.is_empty() {
            meta.insert("User-Id", peer.user_id.clone());
        }
        for (name, value) in peer.zap_properties.iter() {
            meta.insert(name, value.clone());
        }
        let signal: Arc<dyn Notify> = sess.sock.signal.clone();
        let out = Arc::new(Pipe::new(
            Options::pipe_hwm(sess.opts.sndhwm),
            engine_notify.clone(),
            signal.clone(),
        ));
        let inp = Arc::new(Pipe::new(
            Options::pipe_hwm(sess.opts.rcvhwm),
            signal,
            engine_notify,
        ));
        sess.pipes = Some((out.clone(), inp.clone()));
        sess.attached = true;
        sess.sock.post(MailEvent::Attach(Peer {
            id: sess.id,
            out,
            inp,
            routing_id: sess
                .opts
                .connect_routing_id
                .clone()
                .unwrap_or(peer.identity),
            meta: Some(Arc::new(meta)),
        }));
    }

    fn close_conn(&mut self, tok: usize, reason: Close) {
        let Some(Io::Conn(c)) = self.io.get(tok) else {
            return;
        };
        let s = c.session;
        match &reason {
            Close::Proto(_) | Close::PeerError(_) | Close::Timeout | Close::HeartbeatTimeout => {
                log::warn!("closing connection with {}: {reason}", c.peer)
            }
            _ => log::debug!("closing connection with {}: {reason}", c.peer),
        }
        let fd = c.stream.raw_fd() as u32;
        let phase = match c.state {
            ConnState::Connecting => 0,
            ConnState::Handshaking(_) => 1,
            ConnState::Active => 2,
        };
        if let Some(sess) = self.sessions.get(s) {
            let why = Some(reason.to_string());
            match (phase, &reason) {
                (0, _) => {}
                (1, Close::Proto(crate::proto::ProtoError::AuthenticationFailed(text))) => {
                    // The ZAP status code leads the text ("400 ...").
                    let status = text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(400);
                    sess.emit(SocketEvent::HANDSHAKE_FAILED_AUTH, status, why.clone());
                    sess.emit(SocketEvent::DISCONNECTED, fd, why);
                }
                (1, Close::Proto(_) | Close::PeerError(_)) => {
                    sess.emit(
                        SocketEvent::HANDSHAKE_FAILED_PROTOCOL,
                        0x1000_0000,
                        why.clone(),
                    );
                    sess.emit(SocketEvent::DISCONNECTED, fd, why);
                }
                (1, _) => {
                    sess.emit(SocketEvent::HANDSHAKE_FAILED_NO_DETAIL, 0, why.clone());
                    sess.emit(SocketEvent::DISCONNECTED, fd, why);
                }
                _ => sess.emit(SocketEvent::DISCONNECTED, fd, why),
            }
        }
        self.drop_conn(tok);
        let Some(sess) = self.sessions.get_mut(s) else {
            return;
        };
        sess.conn = None;
        match sess.origin {
            Origin::Accepted { .. } => self.remove_session(s),
            Origin::Connect { .. } => {
                if !sess.pre_attached {
                    // IMMEDIATE: the pipes lived with the connection.
                    if let Some((out, inp)) = sess.pipes.take() {
                        out.close_and_clear();
                        inp.close();
                    }
                    if std::mem::take(&mut sess.attached) {
                        sess.sock.post(MailEvent::Detach(sess.id));
                    }
                }
                self.schedule_reconnect(s);
            }
        }
    }
}

/// The PLAIN/CURVE configuration the socket's options select (`None` for NULL).
fn security_config(opts: &Options, peer: &str) -> Option<crate::proto::SecurityConfig> {
    use crate::proto::MechanismConfig as M;
    let mechanism = match (opts.mechanism, opts.as_server) {
        (crate::Mechanism::ZMQ_PLAIN, true) => M::PlainServer,
        (crate::Mechanism::ZMQ_PLAIN, false) => M::PlainClient {
            username: Bytes::copy_from_slice(opts.plain_username.as_bytes()),
            password: Bytes::copy_from_slice(opts.plain_password.as_bytes()),
        },
        (crate::Mechanism::ZMQ_CURVE, true) => M::CurveServer {
            secret_key: opts.curve_secretkey,
        },
        (crate::Mechanism::ZMQ_CURVE, false) => M::CurveClient {
            server_key: opts.curve_serverkey,
            secret_key: opts.curve_secretkey,
        },
        // NULL with a ZAP domain: the peer is checked by ZAP too (RFC 27).
        (crate::Mechanism::ZMQ_NULL, _) if !opts.zap_domain.is_empty() => M::Null,
        _ => return None,
    };
    Some(crate::proto::SecurityConfig {
        mechanism,
        authenticator: opts.authenticator.as_ref().map(|a| a.0.clone()),
        zap_domain: opts.zap_domain.clone(),
        peer_address: peer.to_string(),
        defer_auth: false,
    })
}

/// Encodes queued messages and writes until the socket would block. With a direct writer,
/// holds its lock throughout (the application thread never writes meanwhile), puts the rest
/// of a direct write ahead of everything encoded (a direct write only starts while nothing
/// encoded waits, so nothing there is partly written), and leaves `busy` set while encoded
/// bytes wait.
fn flush(c: &mut Conn, sess: &Session, scratch: &mut Vec<Msg>) -> std::result::Result<(), Close> {
    let Some(dw) = c.direct.clone() else {
        return flush_queued(c, sess, scratch);
    };
    // Nothing to write: leave the lock alone. The application thread often holds it right
    // then, writing its reply to the message this thread has just delivered (measured:
    // every REQ/REP round trip made this thread sleep on the lock and the application
    // thread wake it). A message pushed meanwhile notifies this thread (the pipe's reader
    // wake-up is armed whenever it was found empty), and so does a partial direct write.
    let idle = c.enc.is_empty()
        && c.held.is_empty()
        && !dw.has_rest()
        && sess
            .pipes
            .as_ref()
            .is_none_or(|(out, _)| !out.maybe_readable());
    if idle {
        return Ok(());
    }
    let mut st = dw.lock();
    if let Some(rest) = dw.take_rest(&mut st) {
        c.enc.prepend(rest);
    }
    let res = flush_queued(c, sess, scratch);
    st.busy = !c.enc.is_empty();
    res
}

/// [`flush`] without the direct writer.
fn flush_queued(
    c: &mut Conn,
    sess: &Session,
    scratch: &mut Vec<Msg>,
) -> std::result::Result<(), Close> {
    let active = matches!(c.state, ConnState::Active);
    let subs = sends_subscriptions(sess.sock.socket_type);
    loop {
        if active && !c.barrier && c.enc.len() < WRITE_HIGH {
            if let Some((out, _)) = &sess.pipes {
                scratch.clear();
                if c.held.is_empty() {
                    out.pop_batch(scratch, POP_BATCH);
                } else {
                    std::mem::swap(scratch, &mut c.held);
                }
                let mut batch = scratch.drain(..);
                while let Some(m) = batch.next() {
                    if subs && matches!(&m, Msg::One(b) if matches!(b.first(), Some(0 | 1))) {
                        // SUB/XSUB subscriptions are sent by the engine from its own
                        // per-socket set (see `Engine::subscription`), in order with
                        // handshakes; the pattern's copy is a barrier: what follows it
                        // waits until the engine has applied the subscription.
                        c.barrier = true;
                        c.held.extend(batch);
                        break;
                    }
                    let frames = m.frames();
                    let last = frames.len().saturating_sub(1);
                    for (i, f) in frames.iter().enumerate() {
                        c.send_frame(f, i < last)?;
                    }
                }
            }
        }
        if c.enc.is_empty() {
            return Ok(());
        }
        let mut slices = [IoSlice::new(&[]); MAX_IOV];
        let n = c.enc.chunks(&mut slices);
        match c.stream.write_vectored(&slices[..n]) {
            Ok(0) => return Err(Close::Eof),
            Ok(k) => c.enc.advance(k),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Close::Io(e)),
        }
    }
}
