//! [`Context`]: owns the I/O thread and creates sockets, like `zmq::Context`.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use crate::engine::EngineHandle;
use crate::error::{Error, Result};
use crate::shared::SocketShared;
use crate::socket::Socket;
use crate::SocketType;

/// A ferromq context: one background I/O thread (started with the first socket) that does
/// all network I/O for the sockets created from it.
///
/// Cloning is cheap and shares the context. When the last clone and the last socket are
/// dropped, the context shuts down: like `zmq_ctx_term`, this waits until every closed
/// socket has delivered its queued messages, for up to each socket's `LINGER` (default:
/// forever, as in libzmq; set `linger` to 0 or a few ms on sockets whose peer may be gone).
///
/// ```
/// let ctx = ferromq::Context::new();
/// let s = ctx.socket(ferromq::PAIR).unwrap();
/// assert_eq!(s.get_socket_type().unwrap(), ferromq::PAIR);
/// ```
#[derive(Clone)]
pub struct Context {
    pub(crate) inner: Arc<ContextInner>,
}

pub(crate) struct ContextInner {
    engine: Mutex<Option<EngineHandle>>,
    pub ids: Arc<AtomicU64>,
    terminated: AtomicBool,
    sockets: Arc<SocketList>,
    open: Mutex<usize>,
    open_cv: Condvar,
    io_threads: AtomicI32,
    pub inproc: Arc<crate::inproc::Registry>,
}

/// The sockets of a context, shared with its I/O thread so that a failing I/O thread can
/// wake every socket.
#[derive(Default)]
pub(crate) struct SocketList {
    list: Mutex<Vec<Weak<SocketShared>>>,
    /// Set by the I/O thread if it panicked.
    pub engine_failed: AtomicBool,
}

impl SocketList {
    /// Raises every live socket's signal.
    pub fn wake_all(&self) {
        let socks: Vec<Arc<SocketShared>> =
            lock(&self.list).iter().filter_map(Weak::upgrade).collect();
        for s in socks {
            s.signal.raise();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Context {
    /// A new context. No thread is started until the first socket is created.
    pub fn new() -> Context {
        let ids = Arc::new(AtomicU64::new(1));
        Context {
            inner: Arc::new(ContextInner {
                engine: Mutex::new(None),
                inproc: Arc::new(crate::inproc::Registry::new(ids.clone())),
                ids,
                terminated: AtomicBool::new(false),
                sockets: Arc::new(SocketList::default()),
                open: Mutex::new(0),
                open_cv: Condvar::new(),
                io_threads: AtomicI32::new(1),
            }),
        }
    }

    /// Creates a socket of the given type.
    ///
    /// Fails with `ETERM` after [`Context::destroy`], and with `EINVAL` for `STREAM`, which
    /// ferromq does not implement.
    pub fn socket(&self, socket_type: SocketType) -> Result<Socket> {
        if self.inner.is_terminated() {
            return Err(Error::ETERM);
        }
        let engine = self.inner.engine()?;
        let id = self.inner.next_id();
        let shared = Arc::new(SocketShared::new(id, socket_type));
        let socket = Socket::new(self.clone(), shared.clone(), engine)?;
        {
            let mut socks = lock(&self.inner.sockets.list);
            socks.retain(|w| w.strong_count() > 0);
            socks.push(Arc::downgrade(&shared));
        }
        *lock(&self.inner.open) += 1;
        Ok(socket)
    }

    /// The number of I/O threads (ferromq uses one per context).
    pub fn get_io_threads(&self) -> Result<i32> {
        Ok(self.inner.io_threads.load(Ordering::Relaxed))
    }

    /// Accepted for compatibility; ferromq always runs one I/O thread per context.
    pub fn set_io_threads(&self, value: i32) -> Result<()> {
        if value < 0 {
            return Err(Error::EINVAL);
        }
        self.inner.io_threads.store(value, Ordering::Relaxed);
        Ok(())
    }

    /// Terminates the context, like `zmq_ctx_term`: every blocking call on its sockets
    /// returns `ETERM`, and this call waits until all of its sockets are dropped.
    pub fn destroy(&mut self) -> Result<()> {
        self.inner.terminate();
        let mut open = lock(&self.inner.open);
        while *open > 0 {
            open = self
                .inner
                .open_cv
                .wait(open)
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    /// Test hook: makes this context's I/O thread panic, to check that every socket then
    /// fails with `ETERM` instead of hanging. Not part of the API.
    #[doc(hidden)]
    pub fn __inject_io_thread_panic(&self) {
        if let Some(h) = lock(&self.inner.engine).as_ref() {
            h.inject_panic();
        }
    }

    /// True once [`Context::destroy`] was called.
    pub fn is_terminated(&self) -> bool {
        self.inner.terminated.load(Ordering::Acquire)
    }
}

impl Default for Context {
    fn default() -> Context {
        Context::new()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("terminated", &self.is_terminated())
            .finish()
    }
}

impl ContextInner {
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// True once the context was terminated, or its I/O thread died (a bug): blocking
    /// calls then return `ETERM` instead of hanging.
    pub fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::Acquire)
            || self.sockets.engine_failed.load(Ordering::Acquire)
    }

    fn engine(&self) -> Result<EngineHandle> {
        let mut e = lock(&self.engine);
        if let Some(h) = e.as_ref() {
            return Ok(h.clone());
        }
        let h = EngineHandle::spawn(self.ids.clone(), self.sockets.clone(), self.inproc.clone())
            .map_err(|err| {
                log::error!("cannot start the I/O thread: {err}");
                Error::EMTHREAD
            })?;
        *e = Some(h.clone());
        Ok(h)
    }

    /// Marks the context terminated and wakes every socket so blocked calls return ETERM.
    pub fn terminate(&self) {
        self.terminated.store(true, Ordering::Release);
        self.sockets.wake_all();
    }

    /// A socket handle was dropped.
    pub fn socket_closed(&self) {
        let mut open = lock(&self.open);
        *open = open.saturating_sub(1);
        self.open_cv.notify_all();
    }
}

impl Drop for ContextInner {
    fn drop(&mut self) {
        let engine = self
            .engine
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = engine {
            h.shutdown_and_join();
        }
    }
}
