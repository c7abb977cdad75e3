//! [`Socket`]: the user-side handle, with the `zmq` crate's methods.
//!
//! Blocking calls follow the crossbeam recipe: try, read the wake-up sequence, re-check,
//! park until the sequence moves or the deadline passes. The I/O thread never waits for a
//! user thread: it only pushes into pipes and raises the socket's signal.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::context::Context;
use crate::engine::EngineHandle;
use crate::error::{Error, Result};
use crate::inproc;
use crate::message::Message;
use crate::metadata::Metadata;
use crate::monitor::EventReceiver;
use crate::options::Options;
use crate::pattern::{self, Frame, Msg, Pattern, Peer, Pipe, RecvError, SendError};
use crate::poll::{PollEvents, PollItem, POLLIN, POLLOUT};
use crate::shared::{spin_budget, MailEvent, SocketShared};
use crate::{SocketType, DONTWAIT, SNDMORE};

/// Something that can be sent with [`Socket::send`]: anything convertible into a
/// [`Message`] (`&str`, `&[u8]`, `Vec<u8>`, `String`, `&[u8; N]`, `Bytes`, `Message`, ...).
pub trait Sendable {
    /// Sends `self` on `socket`.
    fn send(self, socket: &Socket, flags: i32) -> Result<()>;
}

impl<T> Sendable for T
where
    T: Into<Message>,
{
    fn send(self, socket: &Socket, flags: i32) -> Result<()> {
        socket.send_msg(self.into(), flags)
    }
}

/// A ferromq socket. Like `zmq::Socket` it is `Send` but not `Sync`: use it from one thread
/// at a time.
pub struct Socket {
    ctx: Context,
    shared: Arc<SocketShared>,
    engine: EngineHandle,
    core: RefCell<Core>,
}

struct Core {
    opts: Options,
    pattern: Box<dyn Pattern>,
    mail: Vec<MailEvent>,
    /// Frames of the multipart message being sent; its first frame was admitted.
    out_frames: Vec<Frame>,
    out_admitted: bool,
    /// Frames of the message being received, after the one last returned.
    in_frames: VecDeque<Frame>,
    in_meta: Option<Arc<Metadata>>,
    rcvmore: bool,
    /// A whole message went out since the last one came in: the next receive most likely
    /// waits for a reply (or, on REP, for the request after the reply), so it spins briefly
    /// before sleeping (see [`Signal::wait_spinning`](crate::shared::Signal)).
    awaiting_reply: bool,
    last_endpoint: String,
}

impl Core {
    fn process_mail(&mut self, shared: &SocketShared) {
        shared.take_mail(&mut self.mail);
        if self.mail.is_empty() {
            return;
        }
        for ev in std::mem::take(&mut self.mail) {
            match ev {
                MailEvent::Attach(peer) => {
                    let (out, inp) = (peer.out.clone(), peer.inp.clone());
                    if !self.pattern.attach(peer) {
                        // Refused (a PAIR with a peer already): closing the pipes tells the
                        // engine to drop the connection.
                        out.close_and_clear();
                        inp.close_and_clear();
                    }
                }
                MailEvent::Detach(id) => self.pattern.detach(id),
            }
        }
    }

    /// Pops the next whole message into `in_frames`. Ok(false) if none is ready.
    fn fetch(&mut self) -> Result<bool> {
        match self.pattern.recv() {
            Ok(Some((msg, meta))) => {
                match msg {
                    Msg::One(b) => self.in_frames.push_back(b),
                    Msg::Many(v) => self.in_frames.extend(v),
                }
                self.in_meta = meta;
                self.awaiting_reply = false;
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(RecvError::NotSupported) => Err(Error::ENOTSUP),
            Err(RecvError::State) => Err(Error::EFSM),
        }
    }
}

fn send_error(e: SendError) -> Error {
    match e {
        SendError::WouldBlock(_) => Error::EAGAIN,
        SendError::NotSupported => Error::ENOTSUP,
        SendError::State => Error::EFSM,
        SendError::Unroutable => Error::EHOSTUNREACH,
    }
}

/// The name of an `inproc://` endpoint, `None` for other transports.
fn inproc_name(endpoint: &str) -> Result<Option<&str>> {
    match endpoint.strip_prefix("inproc://") {
        Some(name) if name.is_empty() || name.len() > 256 => Err(Error::EINVAL),
        Some(name) => Ok(Some(name)),
        None => Ok(None),
    }
}

fn deadline(timeout_ms: i32) -> Option<Instant> {
    u64::try_from(timeout_ms)
        .ok()
        .map(|ms| Instant::now() + Duration::from_millis(ms))
}

impl Socket {
    pub(crate) fn new(
        ctx: Context,
        shared: Arc<SocketShared>,
        engine: EngineHandle,
    ) -> Result<Socket> {
        let socket_type = shared.socket_type;
        let pattern = pattern::for_type(socket_type).ok_or(Error::EINVAL)?;
        Ok(Socket {
            ctx,
            shared,
            engine,
            core: RefCell::new(Core {
                opts: Options::new(socket_type),
                pattern,
                mail: Vec::new(),
                out_frames: Vec::new(),
                out_admitted: false,
                in_frames: VecDeque::new(),
                in_meta: None,
                rcvmore: false,
                awaiting_reply: false,
                last_endpoint: String::new(),
            }),
        })
    }

    fn core(&self) -> std::cell::RefMut<'_, Core> {
        self.core.borrow_mut()
    }

    /// Waits until `ready` holds, honouring `DONTWAIT`, the timeout and context termination.
    fn wait_until(
        &self,
        core: &mut Core,
        nonblocking: bool,
        timeout_ms: i32,
        spin: Duration,
        mut ready: impl FnMut(&mut Core) -> Result<bool>,
    ) -> Result<()> {
        let mut deadline_at = None;
        loop {
            if self.ctx.inner.is_terminated() {
                return Err(Error::ETERM);
            }
            // Fast path: no clock read and no lock on the signal unless we may sleep.
            core.process_mail(&self.shared);
            if ready(core)? {
                return Ok(());
            }
            if nonblocking {
                return Err(Error::EAGAIN);
            }
            let deadline = *deadline_at.get_or_insert_with(|| deadline(timeout_ms));
            let seen = self.shared.signal.seq();
            core.process_mail(&self.shared);
            if ready(core)? {
                return Ok(());
            }
            if !self.shared.signal.wait_spinning(seen, deadline, spin) {
                return Err(Error::EAGAIN);
            }
        }
    }

    /// Hands a whole message to the pattern; a refusal for lack of room waits (unless
    /// `DONTWAIT`) until the pipes drain, as a blocking libzmq send does.
    fn deliver(&self, core: &mut Core, msg: Msg, flags: i32, force: bool) -> Result<()> {
        let nonblocking = flags & DONTWAIT != 0;
        let mut msg = msg;
        let mut deadline_at = None;
        loop {
            match core.pattern.send(msg, force) {
                Ok(()) => {
                    core.awaiting_reply = true;
                    return Ok(());
                }
                Err(SendError::WouldBlock(back)) if !nonblocking => msg = back,
                Err(e) => return Err(send_error(e)),
            }
            if self.ctx.inner.is_terminated() {
                return Err(Error::ETERM);
            }
            let deadline = *deadline_at.get_or_insert_with(|| deadline(core.opts.sndtimeo));
            let seen = self.shared.signal.seq();
            core.process_mail(&self.shared);
            match core.pattern.send(msg, force) {
                Ok(()) => {
                    core.awaiting_reply = true;
                    return Ok(());
                }
                Err(SendError::WouldBlock(back)) => msg = back,
                Err(e) => return Err(send_error(e)),
            }
            if !self.shared.signal.wait(seen, deadline) {
                return Err(Error::EAGAIN);
            }
            core.process_mail(&self.shared);
        }
    }

    // ----- endpoints -------------------------------------------------------------------

    /// Accepts connections on `endpoint` (`tcp://127.0.0.1:*` picks a free port; read it
    /// back with [`Socket::get_last_endpoint`]).
    pub fn bind(&self, endpoint: &str) -> Result<()> {
        let opts = self.core().opts.clone();
        if let Some(name) = inproc_name(endpoint)? {
            let side = inproc::Side::new(self.shared.clone(), &opts);
            self.ctx.inner.inproc.bind(name, side)?;
            self.core().last_endpoint = endpoint.to_string();
            return Ok(());
        }
        let resolved = self.engine.bind(self.shared.clone(), endpoint, opts)?;
        self.core().last_endpoint = resolved;
        Ok(())
    }

    /// Stops accepting on `endpoint` (as returned by `get_last_endpoint`) and closes the
    /// connections accepted through it.
    pub fn unbind(&self, endpoint: &str) -> Result<()> {
        if let Some(name) = inproc_name(endpoint)? {
            return self.ctx.inner.inproc.unbind(name, self.shared.id);
        }
        self.engine.unbind(self.shared.id, endpoint)
    }

    /// Connects to `endpoint`. The connection is made in the background and remade after
    /// failures; unless `IMMEDIATE` is set, messages can be queued to it at once.
    pub fn connect(&self, endpoint: &str) -> Result<()> {
        let mut core = self.core();
        let opts = core.opts.clone();
        // CONNECT_ROUTING_ID applies to this one connect.
        core.opts.connect_routing_id = None;
        if let Some(name) = inproc_name(endpoint)? {
            let side = inproc::Side::new(self.shared.clone(), &opts);
            let mut peer = self.ctx.inner.inproc.connect(name, side)?;
            if let Some(rid) = &opts.connect_routing_id {
                peer.routing_id = rid.clone();
            }
            core.last_endpoint = endpoint.to_string();
            let (out, inp) = (peer.out.clone(), peer.inp.clone());
            if !core.pattern.attach(peer) {
                out.close_and_clear();
                inp.close_and_clear();
            }
            return Ok(());
        }
        let id = self.ctx.inner.next_id();
        // Pipes exist before the connection (messages queue to a peer not yet reached) only
        // for types that send to any peer; the others attach once the peer is known.
        let pre_attach = !opts.immediate
            && matches!(
                opts.socket_type,
                SocketType::PUSH
                    | SocketType::DEALER
                    | SocketType::REQ
                    | SocketType::PAIR
                    | SocketType::SUB
                    | SocketType::XSUB
            );
        let pipes = if !pre_attach {
            None
        } else {
            let notify = self.engine.notifier(id);
            let out = Arc::new(Pipe::new(
                Options::pipe_hwm(opts.sndhwm),
                notify.clone(),
                self.shared.signal.clone(),
            ));
            let inp = Arc::new(Pipe::new(
                Options::pipe_hwm(opts.rcvhwm),
                self.shared.signal.clone(),
                notify,
            ));
            Some((out, inp))
        };
        self.engine.connect(
            self.shared.clone(),
            id,
            endpoint,
            opts.clone(),
            pipes.clone(),
        )?;
        core.last_endpoint = endpoint.to_string();
        if let Some((out, inp)) = pipes {
            let peer = Peer {
                id,
                out: out.clone(),
                inp: inp.clone(),
                routing_id: Bytes::new(),
                meta: None,
            };
            if !core.pattern.attach(peer) {
                out.close_and_clear();
                inp.close_and_clear();
            }
        }
        Ok(())
    }

    /// Closes the connection made by `connect(endpoint)`.
    pub fn disconnect(&self, endpoint: &str) -> Result<()> {
        if let Some(name) = inproc_name(endpoint)? {
            return self.ctx.inner.inproc.disconnect(name, self.shared.id);
        }
        self.engine.disconnect(self.shared.id, endpoint)
    }

    // ----- sending ---------------------------------------------------------------------

    /// Sends one frame; `flags` may contain [`DONTWAIT`] and [`SNDMORE`].
    ///
    /// ```
    /// # let ctx = ferromq::Context::new();
    /// # let peer = ctx.socket(ferromq::PAIR).unwrap();
    /// # peer.bind("inproc://doc-send").unwrap();
    /// # let s = ctx.socket(ferromq::PAIR).unwrap();
    /// # s.connect("inproc://doc-send").unwrap();
    /// s.send("part 1", ferromq::SNDMORE).unwrap();
    /// s.send(vec![1u8, 2, 3], 0).unwrap();
    /// assert_eq!(peer.recv_multipart(0).unwrap(), vec![b"part 1".to_vec(), vec![1, 2, 3]]);
    /// ```
    pub fn send<T: Sendable>(&self, data: T, flags: i32) -> Result<()> {
        data.send(self, flags)
    }

    /// Sends a [`Message`].
    pub fn send_msg(&self, msg: Message, flags: i32) -> Result<()> {
        let mut core = self.core();
        if self.ctx.inner.is_terminated() {
            return Err(Error::ETERM);
        }
        let more = flags & SNDMORE != 0;
        if !core.out_admitted && !more {
            // A single-frame message: straight to the pattern, one pipe operation.
            let frame = msg.into_frame();
            if self.shared.socket_type == SocketType::XSUB && matches!(frame.first(), Some(0 | 1)) {
                self.engine
                    .subscription(self.shared.id, Bytes::copy_from_slice(&frame));
            }
            core.process_mail(&self.shared);
            return self.deliver(&mut core, Msg::One(frame), flags, false);
        }
        let frame = msg.into_frame();
        if !core.out_admitted {
            // The first frame of a multipart message decides: wait until the pattern can
            // take a message, so a multipart message never blocks halfway.
            let timeout = core.opts.sndtimeo;
            self.wait_until(
                &mut core,
                flags & DONTWAIT != 0,
                timeout,
                Duration::ZERO,
                |c| c.pattern.admit(&frame).map_err(send_error),
            )?;
            core.out_admitted = true;
        }
        core.out_frames.push(frame);
        if more {
            return Ok(());
        }
        core.out_admitted = false;
        let frames = std::mem::take(&mut core.out_frames);
        if self.shared.socket_type == SocketType::XSUB
            && frames.len() == 1
            && matches!(frames[0].first(), Some(0 | 1))
        {
            self.engine
                .subscription(self.shared.id, Bytes::copy_from_slice(&frames[0]));
        }
        // Admitted: the pattern may exceed the HWM by this one message, and a pattern that
        // still refuses (ROUTER_MANDATORY to a full peer) makes a blocking send wait.
        self.deliver(&mut core, Msg::from_frames(frames), flags, true)
    }

    /// Sends a `&str`.
    pub fn send_str(&self, data: &str, flags: i32) -> Result<()> {
        self.send_msg(Message::from(data), flags)
    }

    /// Sends all parts of a multipart message (`SNDMORE` on all but the last).
    pub fn send_multipart<I, T>(&self, iter: I, flags: i32) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<Message>,
    {
        let mut parts = iter.into_iter().peekable();
        while let Some(part) = parts.next() {
            let more = if parts.peek().is_some() { SNDMORE } else { 0 };
            self.send_msg(part.into(), flags | more)?;
        }
        Ok(())
    }

    // ----- receiving -------------------------------------------------------------------

    fn recv_frame(&self, flags: i32) -> Result<(Frame, bool, Option<Arc<Metadata>>)> {
        let mut core = self.core();
        if core.in_frames.is_empty() {
            let timeout = core.opts.rcvtimeo;
            let spin = if core.awaiting_reply {
                spin_budget()
            } else {
                Duration::ZERO
            };
            self.wait_until(&mut core, flags & DONTWAIT != 0, timeout, spin, Core::fetch)?;
        }
        let frame = core.in_frames.pop_front().unwrap_or_default();
        let more = !core.in_frames.is_empty();
        core.rcvmore = more;
        // The last frame takes the metadata with it: no reference count traffic per message.
        let meta = if more {
            core.in_meta.clone()
        } else {
            core.in_meta.take()
        };
        Ok((frame, more, meta))
    }

    /// Receives one frame into `msg`.
    pub fn recv(&self, msg: &mut Message, flags: i32) -> Result<()> {
        *msg = self.recv_msg(flags)?;
        Ok(())
    }

    /// Receives one frame as a [`Message`].
    pub fn recv_msg(&self, flags: i32) -> Result<Message> {
        let (frame, more, meta) = self.recv_frame(flags)?;
        let mut m = Message::from_frame(frame);
        m.set_more(more);
        m.set_meta(meta);
        Ok(m)
    }

    /// Receives one frame into `bytes`, truncating it if it does not fit; returns the
    /// frame's full size, as `zmq_recv` does.
    pub fn recv_into(&self, bytes: &mut [u8], flags: i32) -> Result<usize> {
        let (frame, _, _) = self.recv_frame(flags)?;
        let n = frame.len().min(bytes.len());
        bytes[..n].copy_from_slice(&frame[..n]);
        Ok(frame.len())
    }

    /// Receives one frame as bytes.
    pub fn recv_bytes(&self, flags: i32) -> Result<Vec<u8>> {
        Ok(self.recv_frame(flags)?.0.to_vec())
    }

    /// Receives one frame as a `String`, or the bytes if they are not UTF-8.
    pub fn recv_string(&self, flags: i32) -> Result<std::result::Result<String, Vec<u8>>> {
        let bytes = self.recv_bytes(flags)?;
        Ok(String::from_utf8(bytes).map_err(|e| e.into_bytes()))
    }

    /// Receives all frames of a multipart message.
    pub fn recv_multipart(&self, flags: i32) -> Result<Vec<Vec<u8>>> {
        let mut parts = Vec::new();
        loop {
            let (frame, more, _) = self.recv_frame(flags)?;
            parts.push(frame.to_vec());
            if !more {
                return Ok(parts);
            }
        }
    }

    /// True if the last frame received has more frames after it.
    pub fn get_rcvmore(&self) -> Result<bool> {
        Ok(self.core().rcvmore)
    }

    /// Reads or changes this socket's options (for option accessors defined elsewhere in
    /// the crate).
    pub(crate) fn with_opts<R>(&self, f: impl FnOnce(&mut Options) -> R) -> R {
        f(&mut self.core().opts)
    }

    // ----- polling ---------------------------------------------------------------------

    pub(crate) fn signal(&self) -> &crate::shared::Signal {
        &self.shared.signal
    }

    /// The events ready now; a socket not ready is woken when it may become so.
    pub(crate) fn ready_events(&self) -> Result<PollEvents> {
        if self.ctx.inner.is_terminated() {
            return Err(Error::ETERM);
        }
        let mut core = self.core();
        core.process_mail(&self.shared);
        let mut ev = PollEvents::empty();
        if !core.in_frames.is_empty() || core.pattern.can_recv() {
            ev |= POLLIN;
        }
        if core.out_admitted || matches!(core.pattern.can_send(), Ok(true)) {
            ev |= POLLOUT;
        }
        Ok(ev)
    }

    /// `ZMQ_EVENTS`: whether a receive (`POLLIN`) or send (`POLLOUT`) would succeed now.
    pub fn get_events(&self) -> Result<PollEvents> {
        self.ready_events()
    }

    // ----- monitoring ------------------------------------------------------------------

    /// Publishes this socket's events (a bit mask of [`crate::SocketEvent`] values) in libzmq's
    /// two-frame format on a PAIR socket bound to `endpoint` (an `inproc://` address), as
    /// `zmq_socket_monitor` does. Connect a PAIR socket to it to read them. An empty
    /// endpoint or a mask of 0 stops monitoring.
    pub fn monitor(&self, endpoint: &str, events: i32) -> Result<()> {
        if endpoint.is_empty() || events == 0 {
            let old = self.shared.monitor.set_zmq(None, 0);
            drop(old);
            return Ok(());
        }
        if !endpoint.starts_with("inproc://") {
            return Err(Error::EPROTONOSUPPORT);
        }
        let pair = self.ctx.socket(SocketType::PAIR)?;
        pair.set_linger(0)?;
        pair.bind(endpoint)?;
        let old = self.shared.monitor.set_zmq(Some(pair), events as u32);
        drop(old);
        Ok(())
    }

    /// A typed channel of this socket's events that needs no socket and never blocks the
    /// socket: at most 1024 events wait; more are dropped and counted.
    ///
    /// ```
    /// let ctx = ferromq::Context::new();
    /// let s = ctx.socket(ferromq::PULL).unwrap();
    /// let events = s.events();
    /// s.bind("tcp://127.0.0.1:*").unwrap();
    /// let ev = events.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    /// assert_eq!(ev.kind, ferromq::SocketEvent::LISTENING);
    /// ```
    pub fn events(&self) -> EventReceiver {
        self.events_with_capacity(1024)
    }

    /// [`Socket::events`] with a channel of `capacity` events.
    pub fn events_with_capacity(&self, capacity: usize) -> EventReceiver {
        self.shared.monitor.typed(capacity)
    }

    /// An item for [`crate::poll`].
    pub fn as_poll_item(&self, events: PollEvents) -> PollItem<'_> {
        PollItem::from_socket(self, events)
    }

    /// Polls this socket alone; returns 1 if ready, 0 on timeout.
    pub fn poll(&self, events: PollEvents, timeout_ms: i64) -> Result<i32> {
        crate::poll::poll(&mut [self.as_poll_item(events)], timeout_ms)
    }

    // ----- options ---------------------------------------------------------------------

    /// The socket's type.
    pub fn get_socket_type(&self) -> Result<SocketType> {
        Ok(self.shared.socket_type)
    }

    /// The endpoint of the last `bind`, with wildcards resolved (`tcp://127.0.0.1:40123`).
    pub fn get_last_endpoint(&self) -> Result<std::result::Result<String, Vec<u8>>> {
        Ok(Ok(self.core().last_endpoint.clone()))
    }

    /// Sets the routing id this socket announces to peers (1 to 255 bytes).
    pub fn set_identity(&self, value: &[u8]) -> Result<()> {
        if value.is_empty() || value.len() > 255 {
            return Err(Error::EINVAL);
        }
        self.core().opts.routing_id = Bytes::copy_from_slice(value);
        Ok(())
    }

    /// The routing id set with [`Socket::set_identity`].
    pub fn get_identity(&self) -> Result<Vec<u8>> {
        Ok(self.core().opts.routing_id.to_vec())
    }

    /// `ZMQ_MAXMSGSIZE`: the largest frame accepted from peers (-1 = no limit).
    pub fn set_maxmsgsize(&self, value: i64) -> Result<()> {
        // As libzmq: any value is stored; every negative one means "no limit".
        self.core().opts.maxmsgsize = value;
        Ok(())
    }

    /// `ZMQ_MAXMSGSIZE`.
    pub fn get_maxmsgsize(&self) -> Result<i64> {
        Ok(self.core().opts.maxmsgsize)
    }

    /// `ZMQ_IMMEDIATE`: queue messages only to completed connections.
    pub fn set_immediate(&self, value: bool) -> Result<()> {
        self.core().opts.immediate = value;
        Ok(())
    }

    /// `ZMQ_IMMEDIATE`.
    pub fn is_immediate(&self) -> Result<bool> {
        Ok(self.core().opts.immediate)
    }

    fn pattern_opt(&self, opt: pattern::PatternOpt<'_>) -> Result<()> {
        let mut core = self.core();
        core.process_mail(&self.shared);
        match core.pattern.set_opt(opt) {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::EINVAL),
        }
    }

    /// SUB: receive messages whose first frame starts with `prefix` (empty = everything).
    pub fn set_subscribe(&self, prefix: &[u8]) -> Result<()> {
        self.pattern_opt(pattern::PatternOpt::Subscribe(prefix))?;
        let msg = [&[1u8][..], prefix].concat();
        self.engine.subscription(self.shared.id, Bytes::from(msg));
        Ok(())
    }

    /// SUB: cancel one earlier `set_subscribe(prefix)`.
    pub fn set_unsubscribe(&self, prefix: &[u8]) -> Result<()> {
        self.pattern_opt(pattern::PatternOpt::Unsubscribe(prefix))?;
        let msg = [&[0u8][..], prefix].concat();
        self.engine.subscription(self.shared.id, Bytes::from(msg));
        Ok(())
    }

    /// REQ: allow a new request before the reply to the previous one (`ZMQ_REQ_RELAXED`).
    pub fn set_req_relaxed(&self, value: bool) -> Result<()> {
        self.pattern_opt(pattern::PatternOpt::ReqRelaxed(value))
    }

    /// REQ: match replies to requests with a request id (`ZMQ_REQ_CORRELATE`).
    pub fn set_req_correlate(&self, value: bool) -> Result<()> {
        self.pattern_opt(pattern::PatternOpt::ReqCorrelate(value))
    }

    /// ROUTER: `EHOSTUNREACH` instead of silently dropping unroutable messages.
    pub fn set_router_mandatory(&self, value: bool) -> Result<()> {
        self.pattern_opt(pattern::PatternOpt::RouterMandatory(value))
    }

    /// `ZMQ_ROUTER_MANDATORY` (write-only in libzmq).
    pub fn is_router_mandatory(&self) -> Result<bool> {
        // Write-only in libzmq 4.3: reading it fails with EINVAL.
        Err(Error::EINVAL)
    }

    /// ROUTER: a new peer with a routing id already in use takes it over.
    pub fn set_router_handover(&self, value: bool) -> Result<()> {
        self.pattern_opt(pattern::PatternOpt::RouterHandover(value))
    }

    /// `ZMQ_ROUTER_HANDOVER` (write-only in libzmq).
    pub fn is_router_handover(&self) -> Result<bool> {
        // Write-only in libzmq 4.3: reading it fails with EINVAL.
        Err(Error::EINVAL)
    }

    /// ROUTER/DEALER: send an empty message to every new peer (`ZMQ_PROBE_ROUTER`).
    pub fn set_probe_router(&self, value: bool) -> Result<()> {
        // The I/O thread sends the probe on every (re)connection, before anything else.
        if !matches!(
            self.shared.socket_type,
            SocketType::ROUTER | SocketType::DEALER
        ) {
            return Err(Error::EINVAL);
        }
        self.core().opts.probe_router = value;
        Ok(())
    }

    /// `ZMQ_PROBE_ROUTER` (write-only in libzmq).
    pub fn is_probe_router(&self) -> Result<bool> {
        // Write-only in libzmq 4.3: reading it fails with EINVAL.
        Err(Error::EINVAL)
    }

    /// XPUB: pass every subscription message to the application, duplicates included.
    pub fn set_xpub_verbose(&self, value: bool) -> Result<()> {
        self.pattern_opt(pattern::PatternOpt::XpubVerbose(value))
    }

    /// XPUB: a message sent to every new subscriber (`None` turns it off).
    pub fn set_xpub_welcome_msg(&self, value: Option<&str>) -> Result<()> {
        self.pattern_opt(pattern::PatternOpt::XpubWelcomeMsg(
            value.map(str::as_bytes),
        ))
    }

    /// ROUTER: the routing id to give the peer of the next `connect`.
    pub fn set_connect_routing_id(&self, value: &[u8]) -> Result<()> {
        if value.is_empty() || value.len() > 255 {
            return Err(Error::EINVAL);
        }
        self.core().opts.connect_routing_id = Some(Bytes::copy_from_slice(value));
        Ok(())
    }

    /// PLAIN/CURVE server: checks each client's credentials (what a ZAP handler does in
    /// libzmq, without a socket). Any `Fn(&ZapRequest) -> ZapReply + Send + Sync` works;
    /// it runs on the I/O thread during the handshake, so it must answer quickly. A PLAIN
    /// server without one refuses every client, as libzmq without a ZAP handler does; a
    /// CURVE server without one accepts any client key. Applies to later `bind` calls.
    ///
    /// ```
    /// use ferromq::proto::{ZapReply, ZapRequest};
    /// let ctx = ferromq::Context::new();
    /// let server = ctx.socket(ferromq::PULL).unwrap();
    /// server.set_plain_server(true).unwrap();
    /// server
    ///     .set_authenticator(|req: &ZapRequest| match req.credentials.as_slice() {
    ///         [user, pass] if &user[..] == b"admin" && &pass[..] == b"secret" => {
    ///             ZapReply::ok("admin")
    ///         }
    ///         _ => ZapReply::denied("bad credentials"),
    ///     })
    ///     .unwrap();
    /// ```
    pub fn set_authenticator(
        &self,
        auth: impl crate::proto::Authenticator + 'static,
    ) -> Result<()> {
        self.core().opts.authenticator = Some(crate::options::AuthHandle(Arc::new(auth)));
        Ok(())
    }

    /// Most connections this socket accepts at once on its bound endpoints (0 = no limit,
    /// the default); extra connections are closed at once, with a log line. A ferromq
    /// extension (libzmq has no such limit). Applies to later `bind` calls.
    pub fn set_max_connections(&self, value: usize) -> Result<()> {
        self.core().opts.max_connections = value;
        Ok(())
    }

    /// See [`Socket::set_max_connections`].
    pub fn get_max_connections(&self) -> Result<usize> {
        Ok(self.core().opts.max_connections)
    }

    /// `ZMQ_TCP_KEEPALIVE`: -1 (OS default), 0 (off) or 1 (on).
    pub fn set_tcp_keepalive(&self, value: i32) -> Result<()> {
        if !(-1..=1).contains(&value) {
            return Err(Error::EINVAL);
        }
        self.core().opts.tcp_keepalive = value;
        Ok(())
    }

    /// `ZMQ_TCP_KEEPALIVE`.
    pub fn get_tcp_keepalive(&self) -> Result<i32> {
        Ok(self.core().opts.tcp_keepalive)
    }

    /// `ZMQ_HEARTBEAT_TTL` in ms, up to 6,553,599; kept in
    /// whole deciseconds as the PING command carries it, as libzmq does.
    pub fn set_heartbeat_ttl(&self, value: i32) -> Result<()> {
        // Whole deciseconds that fit the PING's 16-bit TTL (value / 100 rounds toward
        // zero, so -99..=-1 mean 0), as libzmq checks it.
        let deciseconds = value / 100;
        if !(0..=65_535).contains(&deciseconds) {
            return Err(Error::EINVAL);
        }
        self.core().opts.heartbeat_ttl = deciseconds * 100;
        Ok(())
    }

    /// `ZMQ_HEARTBEAT_TTL` in ms.
    pub fn get_heartbeat_ttl(&self) -> Result<i32> {
        Ok(self.core().opts.heartbeat_ttl)
    }

    /// `ZMQ_IPV6`: wildcard binds accept IPv6 too.
    pub fn set_ipv6(&self, value: bool) -> Result<()> {
        self.core().opts.ipv6 = value;
        Ok(())
    }

    /// `ZMQ_IPV6`.
    pub fn is_ipv6(&self) -> Result<bool> {
        Ok(self.core().opts.ipv6)
    }
}

macro_rules! int_options {
    ($($(#[$doc:meta])* ($get:ident, $set:ident, $field:ident, $min:expr)),* $(,)?) => {
        impl Socket {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> Result<i32> {
                    Ok(self.core().opts.$field)
                }
                $(#[$doc])*
                pub fn $set(&self, value: i32) -> Result<()> {
                    if value < $min {
                        return Err(Error::EINVAL);
                    }
                    self.core().opts.$field = value;
                    Ok(())
                }
            )*
        }
    };
}

int_options! {
    /// `ZMQ_SNDHWM`: messages queued per peer before sends block or drop (0 = no limit).
    (get_sndhwm, set_sndhwm, sndhwm, 0),
    /// `ZMQ_RCVHWM`: messages queued per peer on receive (0 = no limit).
    (get_rcvhwm, set_rcvhwm, rcvhwm, 0),
    /// `ZMQ_LINGER` in ms (-1 = forever).
    (get_linger, set_linger, linger, -1),
    /// `ZMQ_RCVTIMEO` in ms (-1 = forever).
    (get_rcvtimeo, set_rcvtimeo, rcvtimeo, -1),
    /// `ZMQ_SNDTIMEO` in ms (-1 = forever).
    (get_sndtimeo, set_sndtimeo, sndtimeo, -1),
    /// `ZMQ_RECONNECT_IVL` in ms (-1 = no reconnect).
    (get_reconnect_ivl, set_reconnect_ivl, reconnect_ivl, -1),
    /// `ZMQ_RECONNECT_IVL_MAX` in ms (0 = no backoff).
    (get_reconnect_ivl_max, set_reconnect_ivl_max, reconnect_ivl_max, 0),
    /// `ZMQ_BACKLOG`.
    (get_backlog, set_backlog, backlog, 0),
    /// `ZMQ_SNDBUF` in bytes (-1 = OS default).
    (get_sndbuf, set_sndbuf, sndbuf, -1),
    /// `ZMQ_RCVBUF` in bytes (-1 = OS default).
    (get_rcvbuf, set_rcvbuf, rcvbuf, -1),
    /// `ZMQ_HANDSHAKE_IVL` in ms (0 = no timeout).
    (get_handshake_ivl, set_handshake_ivl, handshake_ivl, 0),
    /// `ZMQ_CONNECT_TIMEOUT` in ms (0 = OS default).
    (get_connect_timeout, set_connect_timeout, connect_timeout, 0),
    /// `ZMQ_TCP_KEEPALIVE_CNT` (-1 = OS default).
    (get_tcp_keepalive_cnt, set_tcp_keepalive_cnt, tcp_keepalive_cnt, -1),
    /// `ZMQ_TCP_KEEPALIVE_IDLE` in s (-1 = OS default).
    (get_tcp_keepalive_idle, set_tcp_keepalive_idle, tcp_keepalive_idle, -1),
    /// `ZMQ_TCP_KEEPALIVE_INTVL` in s (-1 = OS default).
    (get_tcp_keepalive_intvl, set_tcp_keepalive_intvl, tcp_keepalive_intvl, -1),
    /// `ZMQ_HEARTBEAT_IVL` in ms (0 = off).
    (get_heartbeat_ivl, set_heartbeat_ivl, heartbeat_ivl, 0),
    /// `ZMQ_HEARTBEAT_TIMEOUT` in ms (-1 = the heartbeat interval).
    (get_heartbeat_timeout, set_heartbeat_timeout, heartbeat_timeout, -1),
}

impl Drop for Socket {
    fn drop(&mut self) {
        let linger = self.core.get_mut().opts.linger;
        let endpoint = std::mem::take(&mut self.core.get_mut().last_endpoint);
        let monitor = self.shared.monitor.stop(&endpoint);
        drop(monitor);
        self.ctx.inner.inproc.socket_closed(self.shared.id);
        self.engine.close_socket(self.shared.id, linger);
        self.ctx.inner.socket_closed();
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("type", &self.shared.socket_type)
            .field("id", &self.shared.id)
            .finish()
    }
}
