//! The rest of the `zmq` crate 0.10 surface: [`has`], [`Mechanism`], `ZMQ_FD`
//! ([`Socket::get_fd`]), the security and multicast options, the raw-pointer conversions
//! (`into_raw`/`from_raw`/`as_mut_ptr`, without `unsafe`) and the `bitflags` 1.x methods of
//! [`PollEvents`].
//!
//! Options that ferromq does not act on are stored and read back exactly as libzmq 4.3 does
//! (same defaults, same accepted values, `EINVAL` for the others); `docs/zmq-api.md` lists
//! which ones. The security options (PLAIN, CURVE, ZAP domain) are stored here with
//! libzmq's rules and read by the engine when it builds a connection's handshake. Options of
//! capabilities that ferromq lacks (GSSAPI) fail with `EINVAL`, as they do in a libzmq
//! built without them.

use std::ffi::c_void;
use std::io::{Read, Write};
use std::ops::{BitAndAssign, BitXor, BitXorAssign, Not, Sub, SubAssign};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::message::Message;
use crate::options::Options;
use crate::pattern::Notify;
use crate::poll::PollEvents;
use crate::socket::Socket;

/// Whether the CURVE options are accepted (and `has("curve")` is true). When false, every
/// CURVE option fails with `EINVAL`, as in a libzmq built without CURVE: never store keys
/// that the handshake would ignore, or a socket meant to be encrypted would talk in clear.
pub(crate) const HAS_CURVE: bool = true;

/// Returns whether this library has `capability`, as `zmq_has` does: `"ipc"` (yes),
/// `"curve"` (yes), `"pgm"`, `"tipc"`, `"norm"`, `"vmci"`, `"gssapi"`, `"draft"` (no). Like `zmq_has`, any other name (`"tcp"` too: it is not a capability
/// name) gives `false`. Always `Some`, as in the `zmq` crate 0.10.
///
/// ```
/// assert_eq!(ferromq::has("ipc"), Some(true));
/// assert_eq!(ferromq::has("curve"), Some(true));
/// assert_eq!(ferromq::has("gssapi"), Some(false));
/// ```
pub fn has(capability: &str) -> Option<bool> {
    Some(match capability {
        "ipc" => true,
        "curve" => HAS_CURVE,
        _ => false,
    })
}

/// Security mechanism of a socket (`ZMQ_MECHANISM`), named as in the `zmq` crate.
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// No security (RFC 23), the default.
    ZMQ_NULL,
    /// User name and password in clear (RFC 24).
    ZMQ_PLAIN,
    /// CurveZMQ (RFC 25/26).
    ZMQ_CURVE,
    /// Kerberos; never reported by ferromq, which has no GSSAPI.
    ZMQ_GSSAPI,
}

/// libzmq's `CURVE_KEYSIZE`, and the length of a key in Z85 text.
const KEY_SIZE: usize = 32;
const KEY_SIZE_Z85: usize = 40;

/// A key given as 32 raw bytes, 40 Z85 characters, or 40 Z85 characters and a NUL, as
/// libzmq's `set_curve_key` takes it.
fn curve_key(value: &[u8]) -> Result<[u8; KEY_SIZE]> {
    let text = match value.len() {
        KEY_SIZE => {
            let mut key = [0u8; KEY_SIZE];
            key.copy_from_slice(value);
            return Ok(key);
        }
        KEY_SIZE_Z85 => value,
        n if n == KEY_SIZE_Z85 + 1 && value[KEY_SIZE_Z85] == 0 => &value[..KEY_SIZE_Z85],
        _ => return Err(Error::EINVAL),
    };
    let text = std::str::from_utf8(text).map_err(|_| Error::EINVAL)?;
    let decoded = crate::z85::z85_decode(text).map_err(|_| Error::EINVAL)?;
    let mut key = [0u8; KEY_SIZE];
    key.copy_from_slice(&decoded);
    Ok(key)
}

/// A PLAIN credential: 1 to 255 bytes, or `None` to switch back to NULL (the credential
/// itself is kept, as in libzmq).
fn plain_credential(
    o: &mut Options,
    value: Option<&str>,
    field: fn(&mut Options) -> &mut String,
) -> Result<()> {
    match value {
        None => o.mechanism = Mechanism::ZMQ_NULL,
        Some(s) if !s.is_empty() && s.len() <= 255 => {
            *field(o) = s.to_owned();
            o.as_server = false;
            o.mechanism = Mechanism::ZMQ_PLAIN;
        }
        Some(_) => return Err(Error::EINVAL),
    }
    Ok(())
}

fn need_curve() -> Result<()> {
    if HAS_CURVE {
        Ok(())
    } else {
        Err(Error::EINVAL)
    }
}

/// ferromq has no GSSAPI: its options fail as in a libzmq built without it.
fn no_gssapi<T>() -> Result<T> {
    Err(Error::EINVAL)
}

impl Socket {
    fn get_opt<T>(&self, f: impl FnOnce(&Options) -> T) -> Result<T> {
        Ok(self.with_opts(|o| f(o)))
    }

    fn set_opt(&self, valid: bool, f: impl FnOnce(&mut Options)) -> Result<()> {
        if !valid {
            return Err(Error::EINVAL);
        }
        self.with_opts(f);
        Ok(())
    }

    // ----- stored only: multicast, affinity, TOS, SOCKS, CONFLATE ------------------------

    /// `ZMQ_AFFINITY`: stored only (ferromq has one I/O thread per context).
    pub fn get_affinity(&self) -> Result<u64> {
        self.get_opt(|o| o.affinity)
    }

    /// `ZMQ_AFFINITY`: stored only (ferromq has one I/O thread per context).
    pub fn set_affinity(&self, value: u64) -> Result<()> {
        self.set_opt(true, |o| o.affinity = value)
    }

    /// `ZMQ_RATE` (multicast, kbit/s): stored only; must be positive.
    pub fn get_rate(&self) -> Result<i32> {
        self.get_opt(|o| o.rate)
    }

    /// `ZMQ_RATE` (multicast, kbit/s): stored only; must be positive.
    pub fn set_rate(&self, value: i32) -> Result<()> {
        self.set_opt(value > 0, |o| o.rate = value)
    }

    /// `ZMQ_RECOVERY_IVL` (multicast, ms): stored only; must not be negative.
    pub fn get_recovery_ivl(&self) -> Result<i32> {
        self.get_opt(|o| o.recovery_ivl)
    }

    /// `ZMQ_RECOVERY_IVL` (multicast, ms): stored only; must not be negative.
    pub fn set_recovery_ivl(&self, value: i32) -> Result<()> {
        self.set_opt(value >= 0, |o| o.recovery_ivl = value)
    }

    /// `ZMQ_MULTICAST_HOPS`: stored only; must be positive.
    pub fn get_multicast_hops(&self) -> Result<i32> {
        self.get_opt(|o| o.multicast_hops)
    }

    /// `ZMQ_MULTICAST_HOPS`: stored only; must be positive.
    pub fn set_multicast_hops(&self, value: i32) -> Result<()> {
        self.set_opt(value > 0, |o| o.multicast_hops = value)
    }

    /// `ZMQ_TOS` (IP type of service): stored only; must not be negative.
    pub fn get_tos(&self) -> Result<i32> {
        self.get_opt(|o| o.tos)
    }

    /// `ZMQ_TOS` (IP type of service): stored only; must not be negative.
    pub fn set_tos(&self, value: i32) -> Result<()> {
        self.set_opt(value >= 0, |o| o.tos = value)
    }

    /// `ZMQ_SOCKS_PROXY`: stored only (ferromq connects directly).
    pub fn get_socks_proxy(&self) -> Result<std::result::Result<String, Vec<u8>>> {
        self.get_opt(|o| Ok(o.socks_proxy.clone()))
    }

    /// `ZMQ_SOCKS_PROXY`: stored only (ferromq connects directly). `None` clears it; an
    /// empty string is refused with `EINVAL`, as by libzmq.
    pub fn set_socks_proxy(&self, value: Option<&str>) -> Result<()> {
        let valid = value.is_none_or(|s| !s.is_empty());
        self.set_opt(valid, |o| {
            o.socks_proxy = value.unwrap_or_default().to_owned()
        })
    }

    /// `ZMQ_CONFLATE`: stored only (ferromq keeps every message).
    pub fn is_conflate(&self) -> Result<bool> {
        self.get_opt(|o| o.conflate)
    }

    /// `ZMQ_CONFLATE`: stored only (ferromq keeps every message).
    pub fn set_conflate(&self, value: bool) -> Result<()> {
        self.set_opt(true, |o| o.conflate = value)
    }

    // ----- security --------------------------------------------------------------------

    /// `ZMQ_MECHANISM`: the mechanism the options set so far select.
    pub fn get_mechanism(&self) -> Result<Mechanism> {
        self.get_opt(|o| o.mechanism)
    }

    /// `ZMQ_PLAIN_SERVER`: true if PLAIN is selected in the server role.
    pub fn is_plain_server(&self) -> Result<bool> {
        self.get_opt(|o| o.as_server && o.mechanism == Mechanism::ZMQ_PLAIN)
    }

    /// `ZMQ_PLAIN_SERVER`: true selects PLAIN as server, false selects NULL.
    pub fn set_plain_server(&self, value: bool) -> Result<()> {
        self.set_opt(true, |o| {
            o.as_server = value;
            o.mechanism = if value {
                Mechanism::ZMQ_PLAIN
            } else {
                Mechanism::ZMQ_NULL
            };
        })
    }

    /// `ZMQ_PLAIN_USERNAME`.
    pub fn get_plain_username(&self) -> Result<std::result::Result<String, Vec<u8>>> {
        self.get_opt(|o| Ok(o.plain_username.clone()))
    }

    /// `ZMQ_PLAIN_USERNAME` (1 to 255 bytes): selects PLAIN as client. `None` selects NULL.
    pub fn set_plain_username(&self, value: Option<&str>) -> Result<()> {
        self.with_opts(|o| plain_credential(o, value, |o| &mut o.plain_username))
    }

    /// `ZMQ_PLAIN_PASSWORD`.
    pub fn get_plain_password(&self) -> Result<std::result::Result<String, Vec<u8>>> {
        self.get_opt(|o| Ok(o.plain_password.clone()))
    }

    /// `ZMQ_PLAIN_PASSWORD` (1 to 255 bytes): selects PLAIN as client. `None` selects NULL.
    pub fn set_plain_password(&self, value: Option<&str>) -> Result<()> {
        self.with_opts(|o| plain_credential(o, value, |o| &mut o.plain_password))
    }

    /// `ZMQ_ZAP_DOMAIN`.
    pub fn get_zap_domain(&self) -> Result<std::result::Result<String, Vec<u8>>> {
        self.get_opt(|o| Ok(o.zap_domain.clone()))
    }

    /// `ZMQ_ZAP_DOMAIN` (1 to 255 bytes; libzmq refuses an empty one with `EINVAL`).
    pub fn set_zap_domain(&self, value: &str) -> Result<()> {
        let valid = !value.is_empty() && value.len() <= 255;
        self.set_opt(valid, |o| o.zap_domain = value.to_owned())
    }

    /// `ZMQ_CURVE_SERVER`: true if CURVE is selected in the server role.
    pub fn is_curve_server(&self) -> Result<bool> {
        need_curve()?;
        self.get_opt(|o| o.as_server && o.mechanism == Mechanism::ZMQ_CURVE)
    }

    /// `ZMQ_CURVE_SERVER`: true selects CURVE as server, false selects NULL.
    pub fn set_curve_server(&self, value: bool) -> Result<()> {
        need_curve()?;
        self.set_opt(true, |o| {
            o.as_server = value;
            o.mechanism = if value {
                Mechanism::ZMQ_CURVE
            } else {
                Mechanism::ZMQ_NULL
            };
        })
    }

    /// `ZMQ_CURVE_PUBLICKEY`, 32 raw bytes (all zero until set).
    pub fn get_curve_publickey(&self) -> Result<Vec<u8>> {
        need_curve()?;
        self.get_opt(|o| o.curve_publickey.to_vec())
    }

    /// `ZMQ_CURVE_PUBLICKEY`: 32 raw bytes, or 40 Z85 characters (and an optional NUL);
    /// selects CURVE.
    pub fn set_curve_publickey(&self, value: &[u8]) -> Result<()> {
        need_curve()?;
        let key = curve_key(value)?;
        self.set_opt(true, |o| {
            o.curve_publickey = key;
            o.mechanism = Mechanism::ZMQ_CURVE;
        })
    }

    /// `ZMQ_CURVE_SECRETKEY`, 32 raw bytes (all zero until set).
    pub fn get_curve_secretkey(&self) -> Result<Vec<u8>> {
        need_curve()?;
        self.get_opt(|o| o.curve_secretkey.to_vec())
    }

    /// `ZMQ_CURVE_SECRETKEY`: 32 raw bytes, or 40 Z85 characters (and an optional NUL);
    /// selects CURVE.
    pub fn set_curve_secretkey(&self, value: &[u8]) -> Result<()> {
        need_curve()?;
        let key = curve_key(value)?;
        self.set_opt(true, |o| {
            o.curve_secretkey = key;
            o.mechanism = Mechanism::ZMQ_CURVE;
        })
    }

    /// `ZMQ_CURVE_SERVERKEY`, 32 raw bytes (all zero until set).
    pub fn get_curve_serverkey(&self) -> Result<Vec<u8>> {
        need_curve()?;
        self.get_opt(|o| o.curve_serverkey.to_vec())
    }

    /// `ZMQ_CURVE_SERVERKEY`: 32 raw bytes, or 40 Z85 characters (and an optional NUL);
    /// selects CURVE as client.
    pub fn set_curve_serverkey(&self, value: &[u8]) -> Result<()> {
        need_curve()?;
        let key = curve_key(value)?;
        self.set_opt(true, |o| {
            o.curve_serverkey = key;
            o.as_server = false;
            o.mechanism = Mechanism::ZMQ_CURVE;
        })
    }

    /// `ZMQ_GSSAPI_SERVER`: always `EINVAL` (no GSSAPI, as `has("gssapi")` says).
    pub fn is_gssapi_server(&self) -> Result<bool> {
        no_gssapi()
    }

    /// `ZMQ_GSSAPI_SERVER`: always `EINVAL` (no GSSAPI, as `has("gssapi")` says).
    pub fn set_gssapi_server(&self, _value: bool) -> Result<()> {
        no_gssapi()
    }

    /// `ZMQ_GSSAPI_PLAINTEXT`: always `EINVAL` (no GSSAPI, as `has("gssapi")` says).
    pub fn is_gssapi_plaintext(&self) -> Result<bool> {
        no_gssapi()
    }

    /// `ZMQ_GSSAPI_PLAINTEXT`: always `EINVAL` (no GSSAPI, as `has("gssapi")` says).
    pub fn set_gssapi_plaintext(&self, _value: bool) -> Result<()> {
        no_gssapi()
    }

    /// `ZMQ_GSSAPI_PRINCIPAL`: always `EINVAL` (no GSSAPI, as `has("gssapi")` says).
    pub fn get_gssapi_principal(&self) -> Result<std::result::Result<String, Vec<u8>>> {
        no_gssapi()
    }

    /// `ZMQ_GSSAPI_PRINCIPAL`: always `EINVAL` (no GSSAPI, as `has("gssapi")` says).
    pub fn set_gssapi_principal(&self, _value: &str) -> Result<()> {
        no_gssapi()
    }

    /// `ZMQ_GSSAPI_SERVICE_PRINCIPAL`: always `EINVAL` (no GSSAPI).
    pub fn get_gssapi_service_principal(&self) -> Result<std::result::Result<String, Vec<u8>>> {
        no_gssapi()
    }

    /// `ZMQ_GSSAPI_SERVICE_PRINCIPAL`: always `EINVAL` (no GSSAPI).
    pub fn set_gssapi_service_principal(&self, _value: &str) -> Result<()> {
        no_gssapi()
    }

    // ----- ZMQ_FD ----------------------------------------------------------------------

    /// `ZMQ_FD`: a file descriptor that becomes readable when this socket's events may have
    /// changed (a message arrived on an empty queue, a full queue got room, a peer came or
    /// went). As with libzmq, readability does not mean a message is ready: check
    /// [`Socket::get_events`] after each wake-up and once before the first wait, and poll
    /// the descriptor for reading only.
    ///
    /// Every change writes one byte to the descriptor after discarding the previous ones,
    /// so edge-triggered pollers (`epoll` with `EPOLLET`, `mio`, `tokio`'s `AsyncFd`) see one
    /// edge per change. The descriptor stays readable from the first change on: a
    /// level-triggered loop must read what is pending itself (any amount; reading is
    /// optional) before waiting again, or it wakes at once. The descriptor belongs to the
    /// socket and is closed after it.
    pub fn get_fd(&self) -> Result<RawFd> {
        self.with_opts(|o| {
            if let Some(fd) = &o.zmq_fd {
                return Ok(fd.reader.as_raw_fd());
            }
            let fd = Arc::new(ZmqFd::new().map_err(|e| Error::from_io(&e))?);
            let notify: Arc<dyn Notify> = fd.clone();
            self.signal().subscribe(&notify);
            let raw = fd.reader.as_raw_fd();
            o.zmq_fd = Some(fd);
            Ok(raw)
        })
    }

    // ----- raw pointers ----------------------------------------------------------------

    /// The address that stands for this socket in [`Socket::into_raw`] and
    /// [`Socket::from_raw`]: stable while the socket lives, unique among live sockets.
    /// ferromq has no C socket behind it, so the pointer is only a token: never dereference
    /// it or pass it to libzmq.
    pub fn as_mut_ptr(&mut self) -> *mut c_void {
        self.raw_token()
    }

    fn raw_token(&self) -> *mut c_void {
        std::ptr::from_ref(self.signal())
            .cast::<c_void>()
            .cast_mut()
    }

    /// Gives up the socket and returns a token for it (the value [`Socket::as_mut_ptr`]
    /// returns); the socket stays open in a process-wide table until
    /// [`Socket::from_raw`] takes it back. A socket never taken back is never closed (the
    /// `zmq` crate leaks it too).
    pub fn into_raw(self) -> *mut c_void {
        let token = self.raw_token();
        raw_table().push((token.addr(), self));
        token
    }

    /// Takes back a socket given up by [`Socket::into_raw`]. Safe in ferromq (it is an
    /// `unsafe fn` in the `zmq` crate; calls in `unsafe` blocks still compile, with an
    /// `unused_unsafe` warning).
    ///
    /// # Panics
    ///
    /// If `sock` is not a token from `into_raw` that was not taken back yet (undefined
    /// behaviour in the `zmq` crate).
    #[allow(clippy::expect_used)] // the zmq crate's contract: a foreign pointer is a caller bug
    pub fn from_raw(sock: *mut c_void) -> Socket {
        let mut table = raw_table();
        let pos = table
            .iter()
            .position(|(addr, _)| *addr == sock.addr())
            .expect("Socket::from_raw: not a pointer from Socket::into_raw");
        table.swap_remove(pos).1
    }
}

/// Sockets given up by [`Socket::into_raw`], by token address.
fn raw_table() -> MutexGuard<'static, Vec<(usize, Socket)>> {
    static TABLE: Mutex<Vec<(usize, Socket)>> = Mutex::new(Vec::new());
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

impl AsRawFd for Socket {
    /// [`Socket::get_fd`], as in the `zmq` crate (which also panics if it fails).
    #[allow(clippy::expect_used)] // AsRawFd cannot fail; the zmq crate panics here too
    fn as_raw_fd(&self) -> RawFd {
        self.get_fd().expect("ZMQ_FD")
    }
}

/// The `ZMQ_FD` of a socket: a connected pair of Unix stream sockets, both non-blocking.
/// Subscribed to the socket's signal; kept alive by the socket's options.
#[derive(Debug)]
pub struct ZmqFd {
    reader: UnixStream,
    writer: UnixStream,
}

impl ZmqFd {
    fn new() -> std::io::Result<ZmqFd> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(ZmqFd { reader, writer })
    }
}

impl ZmqFd {
    /// Discards what is pending: the descriptor is not readable until the next change.
    /// `Socket::get_events` calling this first (as libzmq's `ZMQ_EVENTS` drains its
    /// mailbox) would give level-triggered pollers libzmq's exact behaviour.
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.reader).read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl Notify for ZmqFd {
    fn notify(&self) {
        // Keep at most one byte pending, then write a fresh one: a new edge each time.
        self.drain();
        let _ = (&self.writer).write(&[1]);
    }
}

// ----- Message ------------------------------------------------------------------------

impl Message {
    /// Deprecated in the `zmq` crate (where it is `unsafe` and leaves the bytes
    /// uninitialized); here a safe alias of [`Message::with_size`]: `len` zero bytes.
    #[deprecated(note = "use `Message::with_size`")]
    pub fn with_capacity_unallocated(len: usize) -> Message {
        Message::with_size(len)
    }
}

// ----- PollEvents: the rest of the bitflags 1.x API -----------------------------------

impl PollEvents {
    /// True if every known event is set.
    pub const fn is_all(&self) -> bool {
        self.bits() == PollEvents::all().bits()
    }

    /// Events from raw bits. Safe here (`unsafe` in `bitflags`); unknown bits are dropped.
    pub const fn from_bits_unchecked(bits: i16) -> PollEvents {
        PollEvents::from_bits_truncate(bits)
    }

    /// Flips the events of `other`.
    pub fn toggle(&mut self, other: PollEvents) {
        *self ^= other;
    }

    /// Sets (`value`) or clears the events of `other`.
    pub fn set(&mut self, other: PollEvents, value: bool) {
        if value {
            self.insert(other);
        } else {
            self.remove(other);
        }
    }

    /// The events set in both.
    #[must_use]
    pub const fn intersection(self, other: PollEvents) -> PollEvents {
        PollEvents::from_bits_truncate(self.bits() & other.bits())
    }

    /// The events set in either.
    #[must_use]
    pub const fn union(self, other: PollEvents) -> PollEvents {
        PollEvents::from_bits_truncate(self.bits() | other.bits())
    }

    /// The events of `self` not in `other`.
    #[must_use]
    pub const fn difference(self, other: PollEvents) -> PollEvents {
        PollEvents::from_bits_truncate(self.bits() & !other.bits())
    }

    /// The events set in exactly one.
    #[must_use]
    pub const fn symmetric_difference(self, other: PollEvents) -> PollEvents {
        PollEvents::from_bits_truncate(self.bits() ^ other.bits())
    }

    /// The known events not in `self`.
    #[must_use]
    pub const fn complement(self) -> PollEvents {
        PollEvents::from_bits_truncate(!self.bits())
    }
}

impl BitXor for PollEvents {
    type Output = PollEvents;
    fn bitxor(self, rhs: PollEvents) -> PollEvents {
        self.symmetric_difference(rhs)
    }
}

impl BitXorAssign for PollEvents {
    fn bitxor_assign(&mut self, rhs: PollEvents) {
        *self = self.symmetric_difference(rhs);
    }
}

impl BitAndAssign for PollEvents {
    fn bitand_assign(&mut self, rhs: PollEvents) {
        *self = self.intersection(rhs);
    }
}

impl Sub for PollEvents {
    type Output = PollEvents;
    fn sub(self, rhs: PollEvents) -> PollEvents {
        self.difference(rhs)
    }
}

impl SubAssign for PollEvents {
    fn sub_assign(&mut self, rhs: PollEvents) {
        *self = self.difference(rhs);
    }
}

impl Not for PollEvents {
    type Output = PollEvents;
    fn not(self) -> PollEvents {
        self.complement()
    }
}

impl Extend<PollEvents> for PollEvents {
    fn extend<I: IntoIterator<Item = PollEvents>>(&mut self, iter: I) {
        for e in iter {
            self.insert(e);
        }
    }
}

impl FromIterator<PollEvents> for PollEvents {
    fn from_iter<I: IntoIterator<Item = PollEvents>>(iter: I) -> PollEvents {
        let mut all = PollEvents::empty();
        all.extend(iter);
        all
    }
}

impl PartialOrd for PollEvents {
    fn partial_cmp(&self, other: &PollEvents) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PollEvents {
    fn cmp(&self, other: &PollEvents) -> std::cmp::Ordering {
        self.bits().cmp(&other.bits())
    }
}

macro_rules! fmt_bits {
    ($($t:ident),*) => {$(
        impl std::fmt::$t for PollEvents {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::$t::fmt(&self.bits(), f)
            }
        }
    )*};
}

fmt_bits!(Binary, Octal, LowerHex, UpperHex);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_keys_in_every_libzmq_form() {
        let z85 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
        let raw = crate::z85_decode(z85).unwrap();
        assert_eq!(curve_key(&raw).unwrap()[..], raw[..]);
        assert_eq!(curve_key(z85.as_bytes()).unwrap()[..], raw[..]);
        let mut nul = z85.as_bytes().to_vec();
        nul.push(0);
        assert_eq!(curve_key(&nul).unwrap()[..], raw[..]);
        nul[40] = b'x';
        assert_eq!(curve_key(&nul), Err(Error::EINVAL));
        assert_eq!(curve_key(&[0; 31]), Err(Error::EINVAL));
        assert_eq!(curve_key(&[b' '; 40]), Err(Error::EINVAL));
    }

    #[test]
    fn poll_events_set_algebra() {
        let io = PollEvents::POLLIN | PollEvents::POLLOUT;
        assert_eq!(io - PollEvents::POLLIN, PollEvents::POLLOUT);
        assert_eq!(io ^ io, PollEvents::empty());
        assert!((!PollEvents::empty()).is_all());
        let collected: PollEvents = [PollEvents::POLLIN, PollEvents::POLLERR]
            .into_iter()
            .collect();
        assert_eq!(collected.bits(), 5);
        assert_eq!(format!("{:b}", io), "11");
    }
}
