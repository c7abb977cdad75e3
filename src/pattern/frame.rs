//! [`Frame`]: the bytes of one message frame, held inline when small.
//!
//! A frame of up to [`INLINE_MAX`] bytes is stored inside the `Frame` value itself (as
//! libzmq's "very small messages" are inside `zmq_msg_t`): no allocation, and above all no
//! reference count, which for small messages crossing threads was the costliest part of a
//! hand-off (the sending thread's increment and the receiving thread's decrement moved one
//! cache line between the cores for every message). Larger frames share a [`Bytes`].

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Frames up to this many bytes are stored inline (a `Frame` is then 72 bytes, a `Bytes` 32).
///
/// Measured at 22 (the most that kept a `Frame` as small as a `Bytes`) and at 64
/// (`cargo bench --bench compare`, alternated 3 rounds): inproc 64 B 5.08 -> 6.61 M/s and
/// PUB/SUB fan-out of 64 B 3.55 -> 4.16 M/s (PUB clones each message once per subscriber:
/// four reference-count increments on the sending thread and four decrements on the I/O
/// threads, one contended cache line, became four 72-byte copies); 1 B, tcp 64 B and 1 KiB
/// unchanged within the noise.
pub const INLINE_MAX: usize = 64;

/// One frame's bytes (see the module docs). Dereferences to `[u8]`.
///
/// ```
/// use bytes::Bytes;
/// use ferromq::pattern::Frame;
/// let small = Frame::copy_from_slice(b"hi");
/// let big = Frame::from(Bytes::from(vec![7u8; 100]));
/// assert_eq!(&small[..], b"hi");
/// assert_eq!(big.len(), 100);
/// assert!(small.shared().is_none() && big.shared().is_some());
/// ```
#[derive(Clone)]
pub struct Frame(Repr);

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE_MAX]),
    Shared(Bytes),
}

impl Frame {
    /// An empty frame.
    pub const fn new() -> Frame {
        Frame(Repr::Inline(0, [0; INLINE_MAX]))
    }

    /// A copy of `data`: inline when small, else in a new buffer (copies of up to 1 KiB
    /// share a per-thread chunk, see [`crate::message`]).
    pub fn copy_from_slice(data: &[u8]) -> Frame {
        match inline(data) {
            Some(f) => f,
            None => Frame(Repr::Shared(crate::message::copy_bytes(data))),
        }
    }

    /// A copy of static bytes (tests and constants).
    pub fn from_static(data: &'static [u8]) -> Frame {
        Frame::copy_from_slice(data)
    }

    /// The shared buffer of a large frame (`None` for an inline one).
    pub fn shared(&self) -> Option<&Bytes> {
        match &self.0 {
            Repr::Shared(b) => Some(b),
            Repr::Inline(..) => None,
        }
    }

    /// The bytes as [`Bytes`] (a copy for an inline frame).
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Shared(b) => b,
            Repr::Inline(n, buf) => crate::message::copy_bytes(&buf[..usize::from(n)]),
        }
    }

    /// The bytes of an inline frame, writable in place (`None` for a shared one).
    pub(crate) fn inline_mut(&mut self) -> Option<&mut [u8]> {
        match &mut self.0 {
            Repr::Inline(n, buf) => Some(&mut buf[..usize::from(*n)]),
            Repr::Shared(_) => None,
        }
    }
}

fn inline(data: &[u8]) -> Option<Frame> {
    if data.len() > INLINE_MAX {
        return None;
    }
    let mut buf = [0; INLINE_MAX];
    buf[..data.len()].copy_from_slice(data);
    Some(Frame(Repr::Inline(data.len() as u8, buf)))
}

impl Default for Frame {
    fn default() -> Frame {
        Frame::new()
    }
}

impl Deref for Frame {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(n, buf) => &buf[..usize::from(*n)],
            Repr::Shared(b) => b,
        }
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// Small `Bytes` are copied inline (and the `Bytes` dropped here, on the thread that holds
/// it); larger ones are kept as they are.
impl From<Bytes> for Frame {
    fn from(b: Bytes) -> Frame {
        match inline(&b) {
            Some(f) => f,
            None => Frame(Repr::Shared(b)),
        }
    }
}

impl From<&'static [u8]> for Frame {
    fn from(data: &'static [u8]) -> Frame {
        Frame::from(Bytes::from_static(data))
    }
}

impl From<Vec<u8>> for Frame {
    fn from(data: Vec<u8>) -> Frame {
        match inline(&data) {
            Some(f) => f,
            None => Frame(Repr::Shared(Bytes::from(data))),
        }
    }
}

impl From<Frame> for Bytes {
    fn from(f: Frame) -> Bytes {
        f.into_bytes()
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Frame) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Frame {}

impl PartialEq<[u8]> for Frame {
    fn eq(&self, other: &[u8]) -> bool {
        &self[..] == other
    }
}

impl std::hash::Hash for Frame {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self[..].hash(state)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As `Bytes` prints: b"..." with escapes.
        fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_are_inline_and_large_ones_shared() {
        assert!(
            std::mem::size_of::<Frame>() <= INLINE_MAX + 8,
            "{}",
            std::mem::size_of::<Frame>()
        );
        for len in [0, 1, INLINE_MAX, INLINE_MAX + 1, 1000] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            for f in [
                Frame::copy_from_slice(&data),
                Frame::from(Bytes::from(data.clone())),
                Frame::from(data.clone()),
            ] {
                assert_eq!(&f[..], &data[..]);
                assert_eq!(f.shared().is_none(), len <= INLINE_MAX, "len {len}");
                assert_eq!(f.clone().into_bytes(), data);
            }
        }
        let mut f = Frame::copy_from_slice(b"abc");
        f.inline_mut().unwrap()[0] = b'x';
        assert_eq!(&f[..], b"xbc");
        assert_eq!(format!("{:?}", Frame::copy_from_slice(b"a\0")), "b\"a\\0\"");
    }
}
