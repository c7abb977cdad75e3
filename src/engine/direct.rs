//! [`DirectWriter`]: lets the application thread write a REQ/REP message straight to the
//! connection when nothing is queued ahead of it.
//!
//! A request or a reply normally crosses two threads before it reaches the kernel: the
//! application pushes it into the pipe and rings the I/O thread, which wakes from
//! `epoll_wait`, encodes and writes it. REQ and REP have at most one message in flight, so
//! that hand-off is pure latency. With a direct writer, [`Pipe::push`](crate::pattern::Pipe)
//! offers the message here first; it is written on the caller's thread, through a duplicate
//! of the connection's descriptor, when:
//!
//! - the connection is active and not encrypted (CURVE boxes frames with a per-connection
//!   nonce the I/O thread owns),
//! - the pipe is empty and the I/O thread has no encoded bytes waiting (`busy`), checked
//!   under this writer's lock, which the I/O thread also holds for the whole of each flush:
//!   the two threads never write to the socket at the same time, and a message never
//!   overtakes one queued before it,
//! - the message has at most [`MAX_FRAMES`] frames.
//!
//! A write the kernel takes only in part keeps its rest here; the pipe then rings the I/O
//! thread, whose next flush writes that rest before anything else. A write that would block
//! or fails leaves the message to the usual path (the I/O thread sees the error itself).
//! Closing the connection drops the duplicate descriptor (see `Engine::drop_conn`).

use std::io::{IoSlice, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use bytes::BytesMut;

use crate::pattern::{DirectOutcome, DirectSink, Msg};
use crate::proto::codec::message_header;

/// Messages with more frames than this go through the pipe.
pub const MAX_FRAMES: usize = 4;

pub(crate) struct DwState {
    /// A duplicate of the connection's descriptor; `None` once the connection closed.
    pub sock: Option<socket2::Socket>,
    /// The I/O thread has encoded bytes not yet written.
    pub busy: bool,
    /// The unwritten rest of a direct write, for the I/O thread to finish first.
    rest: BytesMut,
}

/// See the module docs.
pub(crate) struct DirectWriter {
    st: Mutex<DwState>,
    /// Set while `rest` holds bytes (changed under the lock, read without it): the I/O
    /// thread's flush skips the lock when this is clear and it has nothing else to write.
    has_rest: AtomicBool,
}

impl DirectWriter {
    pub fn new(sock: socket2::Socket) -> DirectWriter {
        DirectWriter {
            st: Mutex::new(DwState {
                sock: Some(sock),
                busy: false,
                rest: BytesMut::new(),
            }),
            has_rest: AtomicBool::new(false),
        }
    }

    /// True while the unwritten rest of a direct write waits for the I/O thread.
    pub fn has_rest(&self) -> bool {
        self.has_rest.load(Ordering::Acquire)
    }

    /// Takes the unwritten rest (the I/O thread, holding `st`).
    pub fn take_rest(&self, st: &mut DwState) -> Option<bytes::Bytes> {
        if st.rest.is_empty() {
            return None;
        }
        self.has_rest.store(false, Ordering::Release);
        Some(st.rest.split().freeze())
    }

    /// The state, for the I/O thread (held across a flush).
    pub fn lock(&self) -> MutexGuard<'_, DwState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DirectSink for DirectWriter {
    fn try_send(&self, msg: Msg, idle: &dyn Fn() -> bool) -> DirectOutcome {
        let mut st = self.lock();
        let frames = msg.frames();
        if st.busy || !st.rest.is_empty() || frames.len() > MAX_FRAMES || !idle() {
            return DirectOutcome::Refused(msg);
        }
        let Some(sock) = st.sock.as_ref() else {
            return DirectOutcome::Refused(msg);
        };
        let last = frames.len().saturating_sub(1);
        let mut heads = [([0u8; 9], 0usize); MAX_FRAMES];
        for (i, f) in frames.iter().enumerate() {
            heads[i] = message_header(i < last, f.len());
        }
        let mut slices = [IoSlice::new(&[]); 2 * MAX_FRAMES];
        let mut total = 0;
        for (i, f) in frames.iter().enumerate() {
            let (h, n) = &heads[i];
            slices[2 * i] = IoSlice::new(&h[..*n]);
            slices[2 * i + 1] = IoSlice::new(f);
            total += n + f.len();
        }
        let used = &slices[..2 * frames.len()];
        let written = loop {
            match (&*sock).write_vectored(used) {
                Ok(k) => break k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return DirectOutcome::Refused(msg),
            }
        };
        if written == 0 && total > 0 {
            return DirectOutcome::Refused(msg);
        }
        if written >= total {
            return DirectOutcome::Sent;
        }
        // Keep what the kernel did not take, in order, for the I/O thread.
        let mut rest = BytesMut::with_capacity(total - written);
        let mut skip = written;
        for s in used {
            if skip >= s.len() {
                skip -= s.len();
                continue;
            }
            rest.extend_from_slice(&s[skip..]);
            skip = 0;
        }
        st.rest = rest;
        self.has_rest.store(true, Ordering::Release);
        DirectOutcome::Started
    }
}
