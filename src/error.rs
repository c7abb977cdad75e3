//! The public error type, identical in variants and meaning to the `zmq` crate's `Error`.
//!
//! Lower layers have their own error enums (for example [`crate::proto::ProtoError`]); they are
//! mapped to these errno-style values where they reach the user.

use std::fmt;

/// `zmq`-compatible result type.
pub type Result<T> = std::result::Result<T, Error>;

/// An error returned by a ferromq API function: the errno values of libzmq, with the same
/// variants as the `zmq` crate 0.10 so that code matching on them compiles unchanged.
#[derive(Clone, Copy, Eq, PartialEq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Error {
    /// Permission denied.
    EACCES,
    /// Address already in use.
    EADDRINUSE,
    /// Resource temporarily unavailable: the operation would block (`DONTWAIT`) or timed out.
    EAGAIN,
    /// Device or resource busy.
    EBUSY,
    /// Connection refused.
    ECONNREFUSED,
    /// Bad address.
    EFAULT,
    /// Interrupted.
    EINTR,
    /// No route to host: a ROUTER with `ROUTER_MANDATORY` has no such peer.
    EHOSTUNREACH,
    /// Operation now in progress.
    EINPROGRESS,
    /// Invalid argument (bad endpoint, option value, ...).
    EINVAL,
    /// Too many open files.
    EMFILE,
    /// Message too long.
    EMSGSIZE,
    /// Name too long.
    ENAMETOOLONG,
    /// No such device (for example an inproc endpoint in another context).
    ENODEV,
    /// No such file or directory (for example `unbind` of an endpoint never bound).
    ENOENT,
    /// Out of memory.
    ENOMEM,
    /// Not connected.
    ENOTCONN,
    /// Not a socket (the socket was closed).
    ENOTSOCK,
    /// Protocol error.
    EPROTO,
    /// Transport not supported.
    EPROTONOSUPPORT,
    /// Operation not supported by this socket type.
    ENOTSUP,
    /// No buffer space available.
    ENOBUFS,
    /// Network is down.
    ENETDOWN,
    /// Address not available.
    EADDRNOTAVAIL,
    /// Operation cannot be accomplished in the current state (REQ/REP alternation).
    EFSM,
    /// The protocol is not compatible with the socket type.
    ENOCOMPATPROTO,
    /// The context was terminated.
    ETERM,
    /// No I/O thread available.
    EMTHREAD,
}

/// libzmq's base for its own error numbers.
const HAUSNUMERO: i32 = 156_384_712;

impl Error {
    /// The errno value (Linux numbering; libzmq's own codes for `EFSM`, `ETERM`, ...).
    pub fn to_raw(self) -> i32 {
        match self {
            Error::EACCES => 13,
            Error::EADDRINUSE => 98,
            Error::EAGAIN => 11,
            Error::EBUSY => 16,
            Error::ECONNREFUSED => 111,
            Error::EFAULT => 14,
            Error::EINTR => 4,
            Error::EHOSTUNREACH => 113,
            Error::EINPROGRESS => 115,
            Error::EINVAL => 22,
            Error::EMFILE => 24,
            Error::EMSGSIZE => 90,
            Error::ENAMETOOLONG => 36,
            Error::ENODEV => 19,
            Error::ENOENT => 2,
            Error::ENOMEM => 12,
            Error::ENOTCONN => 107,
            Error::ENOTSOCK => 88,
            Error::EPROTO => 71,
            Error::EPROTONOSUPPORT => 93,
            Error::ENOTSUP => 95,
            Error::ENOBUFS => 105,
            Error::ENETDOWN => 100,
            Error::EADDRNOTAVAIL => 99,
            Error::EFSM => HAUSNUMERO + 51,
            Error::ENOCOMPATPROTO => HAUSNUMERO + 52,
            Error::ETERM => HAUSNUMERO + 53,
            Error::EMTHREAD => HAUSNUMERO + 54,
        }
    }

    /// The error for errno value `raw`. Unknown values map to `EINVAL` (the `zmq` crate
    /// panics there; a library on the network edge does not).
    pub fn from_raw(raw: i32) -> Error {
        ALL.iter()
            .copied()
            .find(|e| e.to_raw() == raw)
            .unwrap_or(Error::EINVAL)
    }

    /// The message libzmq's `zmq_strerror` gives for this error on Linux.
    pub fn message(self) -> &'static str {
        match self {
            Error::EACCES => "Permission denied",
            Error::EADDRINUSE => "Address already in use",
            Error::EAGAIN => "Resource temporarily unavailable",
            Error::EBUSY => "Device or resource busy",
            Error::ECONNREFUSED => "Connection refused",
            Error::EFAULT => "Bad address",
            Error::EINTR => "Interrupted system call",
            Error::EHOSTUNREACH => "Host unreachable",
            Error::EINPROGRESS => "Operation now in progress",
            Error::EINVAL => "Invalid argument",
            Error::EMFILE => "Too many open files",
            Error::EMSGSIZE => "Message too long",
            Error::ENAMETOOLONG => "File name too long",
            Error::ENODEV => "No such device",
            Error::ENOENT => "No such file or directory",
            Error::ENOMEM => "Cannot allocate memory",
            Error::ENOTCONN => "Transport endpoint is not connected",
            Error::ENOTSOCK => "Socket operation on non-socket",
            Error::EPROTO => "Protocol error",
            Error::EPROTONOSUPPORT => "Protocol not supported",
            Error::ENOTSUP => "Operation not supported",
            Error::ENOBUFS => "No buffer space available",
            Error::ENETDOWN => "Network is down",
            Error::EADDRNOTAVAIL => "Cannot assign requested address",
            Error::EFSM => "Operation cannot be accomplished in current state",
            Error::ENOCOMPATPROTO => "The protocol is not compatible with the socket type",
            Error::ETERM => "Context was terminated",
            Error::EMTHREAD => "No thread available",
        }
    }

    /// Maps an OS I/O error to the closest errno-style variant.
    pub fn from_io(err: &std::io::Error) -> Error {
        use std::io::ErrorKind as K;
        if let Some(code) = err.raw_os_error() {
            let e = Error::from_raw(code);
            if e != Error::EINVAL || code == 22 {
                return e;
            }
        }
        match err.kind() {
            K::NotFound => Error::ENOENT,
            K::PermissionDenied => Error::EACCES,
            K::ConnectionRefused => Error::ECONNREFUSED,
            K::NotConnected => Error::ENOTCONN,
            K::AddrInUse => Error::EADDRINUSE,
            K::AddrNotAvailable => Error::EADDRNOTAVAIL,
            K::WouldBlock => Error::EAGAIN,
            K::Interrupted => Error::EINTR,
            K::OutOfMemory => Error::ENOMEM,
            _ => Error::EINVAL,
        }
    }
}

const ALL: [Error; 28] = [
    Error::EACCES,
    Error::EADDRINUSE,
    Error::EAGAIN,
    Error::EBUSY,
    Error::ECONNREFUSED,
    Error::EFAULT,
    Error::EINTR,
    Error::EHOSTUNREACH,
    Error::EINPROGRESS,
    Error::EINVAL,
    Error::EMFILE,
    Error::EMSGSIZE,
    Error::ENAMETOOLONG,
    Error::ENODEV,
    Error::ENOENT,
    Error::ENOMEM,
    Error::ENOTCONN,
    Error::ENOTSOCK,
    Error::EPROTO,
    Error::EPROTONOSUPPORT,
    Error::ENOTSUP,
    Error::ENOBUFS,
    Error::ENETDOWN,
    Error::EADDRNOTAVAIL,
    Error::EFSM,
    Error::ENOCOMPATPROTO,
    Error::ETERM,
    Error::EMTHREAD,
];

impl std::error::Error for Error {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same as the zmq crate: the message, unquoted.
        f.write_str(self.message())
    }
}

impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        use std::io::ErrorKind;
        let kind = match error {
            Error::ENOENT => ErrorKind::NotFound,
            Error::EACCES => ErrorKind::PermissionDenied,
            Error::ECONNREFUSED => ErrorKind::ConnectionRefused,
            Error::ENOTCONN => ErrorKind::NotConnected,
            Error::EADDRINUSE => ErrorKind::AddrInUse,
            Error::EADDRNOTAVAIL => ErrorKind::AddrNotAvailable,
            Error::EAGAIN => ErrorKind::WouldBlock,
            Error::EINVAL => ErrorKind::InvalidInput,
            Error::EINTR => ErrorKind::Interrupted,
            _ => ErrorKind::Other,
        };
        std::io::Error::new(kind, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip_for_every_variant() {
        for e in ALL {
            assert_eq!(Error::from_raw(e.to_raw()), e);
            assert!(!e.message().is_empty());
        }
        assert_eq!(Error::ETERM.to_raw(), 156_384_765);
        assert_eq!(Error::from_raw(-1), Error::EINVAL);
    }

    #[test]
    fn io_errors_map_to_errno_variants() {
        let e = std::io::Error::from_raw_os_error(98);
        assert_eq!(Error::from_io(&e), Error::EADDRINUSE);
        let e = std::io::Error::from(std::io::ErrorKind::WouldBlock);
        assert_eq!(Error::from_io(&e), Error::EAGAIN);
        let io: std::io::Error = Error::EAGAIN.into();
        assert_eq!(io.kind(), std::io::ErrorKind::WouldBlock);
    }
}
