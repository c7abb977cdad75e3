//! [`Message`]: one frame of a (possibly multipart) message, compatible with `zmq::Message`.
//!
//! A message is backed by [`bytes::Bytes`] so that it passes from the network to the user,
//! and from the user through inproc pipes or to `writev`, without copying. Mutable access
//! (`DerefMut`) copies on write only when the buffer is shared.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::metadata::Metadata;
use crate::pattern::Frame;

/// Payloads up to this size are copied into a shared per-thread chunk by
/// [`Message::from_slice`] (see there).
pub const SMALL_COPY_MAX: usize = 64;

/// Payloads above [`SMALL_COPY_MAX`] and up to this size are copied into a second, larger
/// per-thread chunk.
pub const CHUNK_COPY_MAX: usize = 1024;

/// Sizes of the per-thread chunks payloads are copied into: at least 32 copies of the
/// largest payload of the tier fit in one. A chunk is freed once every message copied into
/// it is dropped, so a message kept for long keeps up to its chunk alive (as a received
/// frame keeps its read buffer alive).
const SMALL_CHUNK: usize = 2048;
const MID_CHUNK: usize = 32 * 1024;

thread_local! {
    static SMALL: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
    static MID: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// A copy of `data` as [`Bytes`]; copies up to [`CHUNK_COPY_MAX`] bytes share a per-thread
/// chunk (2 KiB for up to 64 bytes, 32 KiB above); copies of 16 KiB to 1 MiB reuse pooled
/// buffers ([`crate::bufpool`]).
///
/// Measured (`cargo bench --bench compare`, PUSH/PULL 1 KiB): one allocation per message,
/// freed by the receiving thread, made glibc's allocator a point of contention between the
/// two threads.
pub(crate) fn copy_bytes(data: &[u8]) -> Bytes {
    let (tier, chunk_size) = match data.len() {
        0 => return Bytes::new(),
        1..=SMALL_COPY_MAX => (&SMALL, SMALL_CHUNK),
        n if n <= CHUNK_COPY_MAX => (&MID, MID_CHUNK),
        n if n < crate::bufpool::MIN => return Bytes::copy_from_slice(data),
        // Large copies reuse the memory of earlier ones (see `bufpool`).
        _ => return crate::bufpool::copy(data).unwrap_or_else(|| Bytes::copy_from_slice(data)),
    };
    tier.try_with(|chunk| {
        let mut chunk = chunk.borrow_mut();
        if chunk.capacity() < data.len() {
            *chunk = BytesMut::with_capacity(chunk_size);
        }
        chunk.extend_from_slice(data);
        chunk.split().freeze()
    })
    // The thread is exiting: no chunk to use.
    .unwrap_or_else(|_| Bytes::copy_from_slice(data))
}

#[derive(Clone)]
enum Data {
    /// Inline when small, else shared (see [`Frame`]).
    Frame(Frame),
    Owned(Vec<u8>),
}

/// A message frame. Dereferences to `[u8]`.
///
/// ```
/// let mut m = ferromq::Message::from("hello");
/// assert_eq!(&m[..], b"hello");
/// assert_eq!(m.as_str(), Some("hello"));
/// m[0] = b'j';
/// assert_eq!(m.as_str(), Some("jello"));
/// ```
#[derive(Clone)]
pub struct Message {
    data: Data,
    more: bool,
    meta: Option<Arc<Metadata>>,
}

impl Message {
    /// An empty message.
    pub fn new() -> Message {
        Message::from_bytes(Bytes::new())
    }

    /// A message of `len` zero bytes.
    pub fn with_size(len: usize) -> Message {
        Message {
            data: Data::Owned(vec![0; len]),
            more: false,
            meta: None,
        }
    }

    /// Deprecated in the `zmq` crate; the same as [`Message::with_size`].
    pub fn with_capacity(len: usize) -> Message {
        Message::with_size(len)
    }

    /// A message holding a copy of `data`.
    ///
    /// Payloads up to [`crate::pattern::frame::INLINE_MAX`] bytes are held inside the
    /// message; larger ones up to [`CHUNK_COPY_MAX`] bytes are copied into a per-thread chunk
    /// shared by many messages instead of an allocation each: the sending thread allocates
    /// once per chunk, and the thread that drops the message (often the I/O thread) only
    /// decrements a count instead of freeing memory allocated by another thread.
    pub fn from_slice(data: &[u8]) -> Message {
        Message::from_frame(Frame::copy_from_slice(data))
    }

    /// A message sharing `data` without copying (up to [`crate::pattern::frame::INLINE_MAX`]
    /// bytes are copied into the message itself, which is cheaper than sharing).
    pub fn from_bytes(data: Bytes) -> Message {
        Message::from_frame(Frame::from(data))
    }

    pub(crate) fn from_frame(frame: Frame) -> Message {
        Message {
            data: Data::Frame(frame),
            more: false,
            meta: None,
        }
    }

    pub(crate) fn into_frame(self) -> Frame {
        match self.data {
            Data::Frame(f) => f,
            Data::Owned(v) => Frame::from(v),
        }
    }

    /// The content as UTF-8 text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self).ok()
    }

    /// True if more frames of the multipart message this frame was received in follow.
    pub fn get_more(&self) -> bool {
        self.more
    }

    /// A metadata property of the connection this message arrived on: `Socket-Type`,
    /// `Identity`, `Peer-Address`, or any property the peer sent in its READY command.
    pub fn gets<'a>(&'a mut self, property: &str) -> Option<&'a str> {
        self.meta.as_deref().and_then(|m| m.get_str(property))
    }

    /// The content as shared [`Bytes`] (no copy unless the message was mutated in place).
    pub fn into_bytes(self) -> Bytes {
        match self.data {
            Data::Frame(f) => f.into_bytes(),
            Data::Owned(v) => Bytes::from(v),
        }
    }

    /// A cheap handle on the content (no copy for received or shared messages).
    pub fn to_bytes(&self) -> Bytes {
        match &self.data {
            Data::Frame(f) => f.clone().into_bytes(),
            Data::Owned(v) => Bytes::copy_from_slice(v),
        }
    }

    pub(crate) fn set_more(&mut self, more: bool) {
        self.more = more;
    }

    pub(crate) fn set_meta(&mut self, meta: Option<Arc<Metadata>>) {
        self.meta = meta;
    }
}

impl Default for Message {
    fn default() -> Self {
        Message::new()
    }
}

impl Deref for Message {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.data {
            Data::Frame(f) => f,
            Data::Owned(v) => v,
        }
    }
}

impl DerefMut for Message {
    fn deref_mut(&mut self) -> &mut [u8] {
        if let Data::Frame(f) = &self.data {
            if f.shared().is_some() {
                self.data = Data::Owned(f.to_vec());
            }
        }
        match &mut self.data {
            Data::Owned(v) => v,
            // Inline: written in place (shared frames were made owned above).
            Data::Frame(f) => f.inline_mut().unwrap_or_default(),
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self[..] == other[..]
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same as the zmq crate: the bytes as a slice.
        write!(f, "{:?}", &self[..])
    }
}

impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Message {
        Message::from_slice(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Message {
        Message::from_bytes(Bytes::from(data))
    }
}

impl From<Box<[u8]>> for Message {
    fn from(data: Box<[u8]>) -> Message {
        Message::from_bytes(Bytes::from(data))
    }
}

impl From<&str> for Message {
    fn from(data: &str) -> Message {
        Message::from_slice(data.as_bytes())
    }
}

impl From<String> for Message {
    fn from(data: String) -> Message {
        Message::from_bytes(Bytes::from(data.into_bytes()))
    }
}

impl<const N: usize> From<[u8; N]> for Message {
    fn from(data: [u8; N]) -> Message {
        Message::from_slice(&data)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Message {
        Message::from_bytes(data)
    }
}

/// As in the `zmq` crate: anything convertible by value is also convertible by reference
/// (`&Vec<u8>`, `&String`, `&[u8; N]`, `&Message`, ...).
impl<T> From<&T> for Message
where
    T: Into<Message> + Clone,
{
    fn from(v: &T) -> Message {
        v.clone().into()
    }
}

impl From<Message> for Vec<u8> {
    fn from(m: Message) -> Vec<u8> {
        match m.data {
            Data::Owned(v) => v,
            Data::Frame(f) => f.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_copies_share_chunks_but_stay_independent() {
        // Enough messages to fill several chunks, of every small size and just above.
        let mut kept = Vec::new();
        for i in 0..5000usize {
            let len = [i % (SMALL_COPY_MAX + 2), 60 + i % (CHUNK_COPY_MAX - 40)][i % 2];
            let data: Vec<u8> = (0..len).map(|k| (i + k) as u8).collect();
            kept.push((data.clone(), Message::from(&data[..])));
        }
        for (data, m) in &kept {
            assert_eq!(&m[..], &data[..]);
        }
        // Writing into one copy never shows through another sharing its chunk.
        let (a, b) = (Message::from(&[1u8, 2][..]), Message::from(&[3u8, 4][..]));
        let mut a2 = a.clone();
        a2[0] = 9;
        assert_eq!(
            (&a[..], &a2[..], &b[..]),
            (&[1u8, 2][..], &[9u8, 2][..], &[3u8, 4][..])
        );
        // Copies made on another thread are fine to drop here.
        let far = std::thread::spawn(|| Message::from(&b"far"[..]))
            .join()
            .unwrap();
        assert_eq!(&far[..], b"far");
    }

    #[test]
    fn conversions_cover_the_zmq_crate_forms() {
        let v = vec![1u8, 2, 3];
        let s = String::from("abc");
        for m in [
            Message::from(&v[..]),
            Message::from(v.clone()),
            Message::from(&v),
            Message::from(v.clone().into_boxed_slice()),
            Message::from([1u8, 2, 3]),
            Message::from(&[1u8, 2, 3]),
        ] {
            assert_eq!(&m[..], &[1, 2, 3]);
        }
        assert_eq!(Message::from(&s).as_str(), Some("abc"));
        assert_eq!(Message::from("abc").as_str(), Some("abc"));
        assert_eq!(Message::with_size(4).len(), 4);
        assert_eq!(format!("{:?}", Message::from("ab")), "[97, 98]");
    }

    #[test]
    fn mutation_copies_on_write_only() {
        let shared = Bytes::from_static(b"xyz");
        let mut m = Message::from_bytes(shared.clone());
        m[0] = b'a';
        assert_eq!(&m[..], b"ayz");
        assert_eq!(&shared[..], b"xyz");
        let b = m.into_bytes();
        assert_eq!(&b[..], b"ayz");
    }

    #[test]
    fn metadata_is_readable_through_gets() {
        let mut meta = Metadata::new();
        meta.insert("Socket-Type", Bytes::from_static(b"PUSH"));
        let mut m = Message::from("x");
        assert_eq!(m.gets("Socket-Type"), None);
        m.set_meta(Some(Arc::new(meta)));
        assert_eq!(m.gets("socket-type"), Some("PUSH"));
    }
}
