//! The byte streams the engine drives: TCP and Unix domain sockets (ipc://), behind one
//! type so the connection code is written once.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::endpoint::{self, Endpoint, IpcEndpoint, TcpEndpoint};
use crate::error::{Error, Result};
use crate::options::Options;

/// A connected stream.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Starts a non-blocking connect to `ep`; returns the stream and a peer description.
    pub fn connect(ep: &Endpoint, opts: &Options) -> io::Result<(Stream, String)> {
        match ep {
            Endpoint::Tcp(t) => {
                let addr = t
                    .connect_addrs(opts.ipv6)
                    .map_err(|_| io::Error::new(io::ErrorKind::NotFound, "cannot resolve"))?[0];
                Ok((
                    Stream::Tcp(TcpStream::connect(addr)?),
                    addr.ip().to_string(),
                ))
            }
            Endpoint::Ipc(p) => {
                let s = match p {
                    IpcEndpoint::Path(path) => UnixStream::connect(path)?,
                    IpcEndpoint::Abstract(name) => UnixStream::connect_addr(&abstract_addr(name)?)?,
                };
                Ok((Stream::Unix(s), String::new()))
            }
            Endpoint::Inproc(_) => Err(io::Error::from(io::ErrorKind::Unsupported)),
        }
    }

    /// Ok(true) once a non-blocking connect completed, Ok(false) while in progress.
    pub fn connect_result(&self) -> io::Result<bool> {
        let (err, peer) = match self {
            Stream::Tcp(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
            Stream::Unix(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
        };
        if let Some(e) = err {
            return Err(e);
        }
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Socket options applied once connected (TCP only).
    pub fn configure(&self, opts: &Options) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
            apply_tcp_options(s, opts);
        }
    }

    /// The OS descriptor (reported in monitor events, as libzmq does).
    pub fn raw_fd(&self) -> i32 {
        use std::os::unix::io::AsRawFd;
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    /// A duplicate of the descriptor (for the direct writer of REQ/REP connections).
    pub fn duplicate(&self) -> io::Result<socket2::Socket> {
        match self {
            Stream::Tcp(s) => socket2::SockRef::from(s).try_clone(),
            Stream::Unix(s) => socket2::SockRef::from(s).try_clone(),
        }
    }

    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    pub fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_vectored(bufs),
            Stream::Unix(s) => s.read_vectored(bufs),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
        }
    }
}

/// A listening socket. A Unix listener bound to a path removes it when dropped.
pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, Option<PathBuf>),
}

impl Listener {
    /// Binds `ep`; returns the listener and the resolved endpoint string (LAST_ENDPOINT).
    pub fn bind(ep: &Endpoint, opts: &Options) -> Result<(Listener, String)> {
        match ep {
            Endpoint::Tcp(t) => bind_tcp(t, opts),
            Endpoint::Ipc(IpcEndpoint::Path(path)) => {
                let std = bind_unix_path(path).map_err(|e| Error::from_io(&e))?;
                std.set_nonblocking(true).map_err(|e| Error::from_io(&e))?;
                let l = UnixListener::from_std(std);
                Ok((
                    Listener::Unix(l, Some(PathBuf::from(path))),
                    format!("ipc://{path}"),
                ))
            }
            Endpoint::Ipc(IpcEndpoint::Abstract(name)) => {
                let addr = abstract_addr(name).map_err(|e| Error::from_io(&e))?;
                let std = std::os::unix::net::UnixListener::bind_addr(&addr)
                    .map_err(|e| Error::from_io(&e))?;
                std.set_nonblocking(true).map_err(|e| Error::from_io(&e))?;
                Ok((
                    Listener::Unix(UnixListener::from_std(std), None),
                    format!("ipc://@{name}"),
                ))
            }
            Endpoint::Inproc(_) => Err(Error::EPROTONOSUPPORT),
        }
    }

    /// The OS descriptor (reported in monitor events).
    pub fn raw_fd(&self) -> i32 {
        use std::os::unix::io::AsRawFd;
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }

    pub fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => l
                .accept()
                .map(|(s, a)| (Stream::Tcp(s), a.ip().to_string())),
            Listener::Unix(l, _) => l.accept().map(|(s, _)| (Stream::Unix(s), String::new())),
        }
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.register(r, t, i),
            Listener::Unix(l, _) => l.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.reregister(r, t, i),
            Listener::Unix(l, _) => l.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.deregister(r),
            Listener::Unix(l, _) => l.deregister(r),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, Some(path)) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn abstract_addr(name: &str) -> io::Result<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
}

/// Binds a Unix socket path. A socket file left behind by a dead process (nobody accepts
/// on it) is removed and the bind retried; a live one gives `EADDRINUSE`.
fn bind_unix_path(path: &str) -> io::Result<std::os::unix::net::UnixListener> {
    match std::os::unix::net::UnixListener::bind(path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse && is_stale(Path::new(path)) => {
            log::info!("removing stale ipc socket file {path}");
            std::fs::remove_file(path)?;
            std::os::unix::net::UnixListener::bind(path)
        }
        r => r,
    }
}

fn is_stale(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false);
    is_socket
        && matches!(
            std::os::unix::net::UnixStream::connect(path),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
        )
}

fn bind_tcp(t: &TcpEndpoint, opts: &Options) -> Result<(Listener, String)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr: SocketAddr = t.bind_addr(opts.ipv6)?;
    let io = |e: io::Error| Error::from_io(&e);
    let sock =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(io)?;
    sock.set_reuse_address(true).map_err(io)?;
    if addr.is_ipv6() {
        let _ = sock.set_only_v6(!opts.ipv6 && !addr.ip().is_unspecified());
    }
    sock.bind(&addr.into()).map_err(io)?;
    sock.listen(opts.backlog.max(1)).map_err(io)?;
    sock.set_nonblocking(true).map_err(io)?;
    let std: std::net::TcpListener = sock.into();
    let local = std.local_addr().map_err(io)?;
    Ok((
        Listener::Tcp(TcpListener::from_std(std)),
        endpoint::format_tcp(&local),
    ))
}

fn apply_tcp_options(stream: &TcpStream, opts: &Options) {
    let sock = socket2::SockRef::from(stream);
    if opts.sndbuf >= 0 {
        let _ = sock.set_send_buffer_size(opts.sndbuf as usize);
    }
    if opts.rcvbuf >= 0 {
        let _ = sock.set_recv_buffer_size(opts.rcvbuf as usize);
    }
    match opts.tcp_keepalive {
        0 => {
            let _ = sock.set_keepalive(false);
        }
        1 => {
            let mut ka = socket2::TcpKeepalive::new();
            if opts.tcp_keepalive_idle > 0 {
                ka = ka.with_time(Duration::from_secs(opts.tcp_keepalive_idle as u64));
            }
            if opts.tcp_keepalive_intvl > 0 {
                ka = ka.with_interval(Duration::from_secs(opts.tcp_keepalive_intvl as u64));
            }
            if opts.tcp_keepalive_cnt > 0 {
                ka = ka.with_retries(opts.tcp_keepalive_cnt as u32);
            }
            let _ = sock.set_tcp_keepalive(&ka);
        }
        _ => {}
    }
}
