//! ZMTP 3.x framing (RFC 23 section "Framing"): decoding frames from a read buffer and
//! encoding them into a batch of chunks ready for vectored writes.
//!
//! ```text
//! frame      = flags size body
//! flags      = 1 octet: bit 0 MORE, bit 1 LONG, bit 2 COMMAND, bits 3..7 reserved (zero)
//! size       = 1 octet (short frame) or 8 octets big endian (LONG)
//! ```

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Command, ProtoError};

/// Flags bit: more frames of this message follow.
pub const FLAG_MORE: u8 = 0x01;
/// Flags bit: the size field is 8 octets.
pub const FLAG_LONG: u8 = 0x02;
/// Flags bit: the frame is a command.
pub const FLAG_COMMAND: u8 = 0x04;
const RESERVED_FLAGS: u8 = !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND);

/// Payloads of at least this many bytes are queued by reference instead of being copied.
pub const ZERO_COPY_THRESHOLD: usize = 8 * 1024;
/// The encoder grows its current chunk by at least this many bytes at a time.
pub const CHUNK_SIZE: usize = 16 * 1024;
/// An idle encoder keeps at most this much buffer capacity.
const MAX_IDLE_CHUNK: usize = 1024 * 1024;
/// The decoder never reserves more than this many bytes at once for an incomplete frame.
pub const MAX_RESERVE: usize = 1024 * 1024;

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A message frame (one part of a possibly multipart message).
    Message {
        /// The payload, sharing the read buffer.
        data: Bytes,
        /// More parts of this message follow.
        more: bool,
    },
    /// A command frame.
    Command(Command),
}

/// Incremental frame decoder.
///
/// It keeps no partial state between calls: a frame stays in the read buffer until it is
/// complete, then it is split off (zero-copy).
#[derive(Debug, Clone)]
pub struct Decoder {
    max_msg_size: Option<u64>,
}

/// A parsed frame header.
struct Header {
    flags: u8,
    header_len: usize,
    size: usize,
}

impl Decoder {
    /// max_msg_size: None = unlimited (libzmq MAXMSGSIZE -1); checked per frame against the
    /// header's size.
    pub fn new(max_msg_size: Option<u64>) -> Self {
        Decoder { max_msg_size }
    }

    /// The configured maximum frame size.
    pub fn max_msg_size(&self) -> Option<u64> {
        self.max_msg_size
    }

    /// Parses the header at the front of `buf`, if complete, and checks it.
    fn header(&self, buf: &[u8]) -> Result<Option<Header>, ProtoError> {
        let Some(&flags) = buf.first() else {
            return Ok(None);
        };
        if flags & RESERVED_FLAGS != 0 {
            return Err(ProtoError::InvalidFlags(flags));
        }
        if flags & FLAG_COMMAND != 0 && flags & FLAG_MORE != 0 {
            return Err(ProtoError::CommandWithMore);
        }
        let (header_len, size) = if flags & FLAG_LONG != 0 {
            let Some(raw) = buf.get(1..9) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(raw);
            (9, u64::from_be_bytes(be))
        } else {
            let Some(&size) = buf.get(1) else {
                return Ok(None);
            };
            (2, u64::from(size))
        };
        if size > i64::MAX as u64 {
            return Err(ProtoError::MessageTooLarge {
                size,
                max: i64::MAX as u64,
            });
        }
        if let Some(max) = self.max_msg_size {
            if size > max {
                return Err(ProtoError::MessageTooLarge { size, max });
            }
        }
        // On 32-bit targets a size may not fit in memory at all.
        let size = usize::try_from(size).map_err(|_| ProtoError::MessageTooLarge {
            size,
            max: usize::MAX as u64,
        })?;
        Ok(Some(Header {
            flags,
            header_len,
            size,
        }))
    }

    /// The size (header included) of the frame at the front of `buf` and how many of its
    /// bytes are still missing, once its header is complete and valid (`decode` reports an
    /// invalid one). Lets a reader size its next read to land straight in the frame.
    pub fn front_frame(&self, buf: &[u8]) -> Option<(usize, usize)> {
        match self.header(buf) {
            Ok(Some(h)) => {
                let total = h.header_len.saturating_add(h.size);
                Some((total, total.saturating_sub(buf.len())))
            }
            _ => None,
        }
    }

    /// [`Decoder::decode`], except that a message frame of at most `max` bytes is not split
    /// off the buffer (no reference count on it): `small` gets its body and MORE flag, and
    /// its result comes back as [`Decoded::Small`]; and the body of an incomplete message
    /// frame of `large_min` bytes or more (up to 1 MiB) moves to a pooled buffer that the
    /// caller fills by reading straight into it ([`Decoded::Large`]): the header and the
    /// body bytes already in `buf` are consumed. Every other frame comes back as
    /// [`Decoded::Frame`], exactly as `decode` returns it; errors are the same.
    pub fn decode_small<T>(
        &mut self,
        buf: &mut BytesMut,
        max: usize,
        large_min: usize,
        small: impl FnOnce(&[u8], bool) -> T,
    ) -> Result<Option<Decoded<T>>, ProtoError> {
        let Some(h) = self.header(buf)? else {
            return Ok(None);
        };
        let total = h.header_len.saturating_add(h.size);
        let message = h.flags & FLAG_COMMAND == 0;
        if buf.len() < total {
            if message && h.size >= large_min {
                if let Some(mut body) = crate::bufpool::take(h.size) {
                    buf.advance(h.header_len);
                    let have = buf.len();
                    body.as_mut_slice()[..have].copy_from_slice(buf);
                    buf.clear();
                    return Ok(Some(Decoded::Large(LargeBody {
                        body,
                        filled: have,
                        more: h.flags & FLAG_MORE != 0,
                    })));
                }
            }
            buf.reserve((total - buf.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        if message && h.size <= max {
            let t = small(&buf[h.header_len..total], h.flags & FLAG_MORE != 0);
            buf.advance(total);
            return Ok(Some(Decoded::Small(t)));
        }
        Self::split_frame(buf, &h, total).map(|f| Some(Decoded::Frame(f)))
    }

    /// Decodes one frame from the front of `buf`, consuming exactly its bytes (use split_to so
    /// payloads share the read buffer, zero-copy). Ok(None): need more bytes (may `reserve` in
    /// buf the rest of a large frame, capped, after the size check). Any split of the input
    /// must work.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        let Some((h, total)) = self.whole_frame(buf)? else {
            return Ok(None);
        };
        Self::split_frame(buf, &h, total).map(Some)
    }

    /// The header of the frame at the front of `buf` and the frame's total length, once
    /// the whole frame is there (else reserves room for the rest, capped).
    fn whole_frame(&self, buf: &mut BytesMut) -> Result<Option<(Header, usize)>, ProtoError> {
        let Some(h) = self.header(buf)? else {
            return Ok(None);
        };
        let total = h.header_len.saturating_add(h.size);
        if buf.len() < total {
            let missing = total - buf.len();
            buf.reserve(missing.min(MAX_RESERVE));
            return Ok(None);
        }
        Ok(Some((h, total)))
    }

    fn split_frame(buf: &mut BytesMut, h: &Header, total: usize) -> Result<Frame, ProtoError> {
        let mut frame = buf.split_to(total);
        frame.advance(h.header_len);
        let body = frame.freeze();
        if h.flags & FLAG_COMMAND != 0 {
            Ok(Frame::Command(Command::parse(body)?))
        } else {
            Ok(Frame::Message {
                data: body,
                more: h.flags & FLAG_MORE != 0,
            })
        }
    }
}

/// What [`Decoder::decode_small`] decoded.
#[derive(Debug)]
pub enum Decoded<T> {
    /// A small message frame, as the caller's closure made it.
    Small(T),
    /// Any other frame.
    Frame(Frame),
    /// The start of a large message frame whose body the caller reads in place.
    Large(LargeBody),
}

/// The body of a large message frame, read straight into a pooled buffer (see
/// [`Decoder::decode_small`]): fill [`LargeBody::unfilled`], report with
/// [`LargeBody::advance`], and take the frame with [`LargeBody::into_message`] once
/// [`LargeBody::is_complete`]. Nothing else of the stream may be decoded before it.
#[derive(Debug)]
pub struct LargeBody {
    body: crate::bufpool::PooledBuf,
    filled: usize,
    more: bool,
}

impl LargeBody {
    /// The part of the body still to be read.
    pub fn unfilled(&mut self) -> &mut [u8] {
        let filled = self.filled;
        &mut self.body.as_mut_slice()[filled..]
    }

    /// Records that `n` more bytes of [`LargeBody::unfilled`] were filled.
    pub fn advance(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.body.as_ref().len());
    }

    /// True once the whole body is there.
    pub fn is_complete(&self) -> bool {
        self.filled == self.body.as_ref().len()
    }

    /// The finished frame's body and MORE flag (call once complete).
    pub fn into_message(self) -> (Bytes, bool) {
        debug_assert!(self.is_complete());
        (self.body.freeze(), self.more)
    }
}

/// The header of a message frame of `size` bytes (`more`: further frames follow), as the
/// [`Encoder`] writes it: the bytes and how many of them are used (2 or 9).
pub fn message_header(more: bool, size: usize) -> ([u8; 9], usize) {
    let mut h = [0u8; 9];
    let flags = if more { FLAG_MORE } else { 0 };
    if size <= 255 {
        h[0] = flags;
        h[1] = size as u8;
        (h, 2)
    } else {
        h[0] = flags | FLAG_LONG;
        h[1..].copy_from_slice(&(size as u64).to_be_bytes());
        (h, 9)
    }
}

/// Frame encoder: batches many frames into one growing buffer, and queues large payloads by
/// reference (a `Bytes` clone) so that they are never copied. The pending bytes are handed to
/// a vectored write with [`Encoder::chunks`] and dropped with [`Encoder::advance`].
#[derive(Debug, Default)]
pub struct Encoder {
    /// Finished chunks, in order, before `cur`.
    queue: VecDeque<Bytes>,
    /// The chunk small writes are appended to (always after everything in `queue`).
    cur: BytesMut,
    /// Total pending bytes.
    len: usize,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes room for `n` more bytes in the current chunk, growing it by at least
    /// [`CHUNK_SIZE`] so that many small frames share one allocation.
    fn room(&mut self, n: usize) {
        if self.cur.capacity() - self.cur.len() < n {
            self.cur.reserve(n.max(CHUNK_SIZE));
        }
    }

    fn put_header(&mut self, flags: u8, size: usize) {
        if size <= 255 {
            self.room(2);
            self.cur.put_u8(flags);
            self.cur.put_u8(size as u8);
            self.len += 2;
        } else {
            self.room(9);
            self.cur.put_u8(flags | FLAG_LONG);
            self.cur.put_u64(size as u64);
            self.len += 9;
        }
    }

    /// Moves the current chunk, if not empty, to the queue.
    fn seal(&mut self) {
        if !self.cur.is_empty() {
            self.queue.push_back(self.cur.split().freeze());
        }
    }

    /// Encodes a message frame: short form (flags 0x00/0x01) up to 255 bytes, long form
    /// (0x02/0x03, u64 big-endian size) above. Payloads of [`ZERO_COPY_THRESHOLD`] bytes or
    /// more are queued by reference; smaller ones are copied into the current chunk.
    pub fn encode_frame(&mut self, data: &Bytes, more: bool) {
        if data.len() < ZERO_COPY_THRESHOLD {
            return self.encode_small_frame(data, more);
        }
        let flags = if more { FLAG_MORE } else { 0 };
        self.put_header(flags, data.len());
        self.seal();
        self.queue.push_back(data.clone());
        self.len += data.len();
    }

    /// Encodes a message frame whose body is copied into the buffer (small bodies, or ones
    /// held by value); [`Encoder::encode_frame`] uses it below `ZERO_COPY_THRESHOLD`.
    pub fn encode_small_frame(&mut self, data: &[u8], more: bool) {
        let flags = if more { FLAG_MORE } else { 0 };
        self.put_header(flags, data.len());
        self.room(data.len());
        self.cur.extend_from_slice(data);
        self.len += data.len();
    }

    /// Encodes a command frame (flags 0x04, or 0x06 when its body exceeds 255 bytes).
    pub fn encode_command(&mut self, cmd: &Command) {
        let size = cmd.body_len();
        self.put_header(FLAG_COMMAND, size);
        self.room(size);
        let before = self.cur.len();
        cmd.encode_body(&mut self.cur);
        debug_assert_eq!(self.cur.len() - before, size);
        self.len += self.cur.len() - before;
    }

    /// Queues `data` ahead of everything pending, by reference. Only for bytes that must go
    /// first while nothing pending has been partly written yet (the engine's direct writer
    /// hands over the unwritten rest of a message this way).
    pub fn prepend(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.len += data.len();
            self.queue.push_front(data);
        }
    }

    /// Appends raw bytes (the greeting).
    pub fn encode_raw(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        self.cur.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Number of bytes pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `dst` with the pending chunks in order (for writev); returns how many were filled.
    pub fn chunks<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let all = self
            .queue
            .iter()
            .map(|b| &b[..])
            .chain(std::iter::once(&self.cur[..]))
            .filter(|c| !c.is_empty());
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(all) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// Drops `n` written bytes from the front.
    ///
    /// # Panics
    /// If `n` is greater than [`Encoder::len`] (a caller bug, never caused by peer data).
    pub fn advance(&mut self, mut n: usize) {
        assert!(
            n <= self.len,
            "Encoder::advance({n}) past {} bytes",
            self.len
        );
        self.len -= n;
        while n > 0 {
            match self.queue.front_mut() {
                Some(front) if front.len() <= n => {
                    n -= front.len();
                    self.queue.pop_front();
                }
                Some(front) => {
                    front.advance(n);
                    n = 0;
                }
                None => {
                    self.cur.advance(n);
                    n = 0;
                }
            }
        }
        if self.len == 0 {
            self.release();
        }
    }

    /// Empties the encoder, dropping an oversized current chunk left by a burst.
    fn release(&mut self) {
        self.queue.clear();
        if self.cur.capacity() > MAX_IDLE_CHUNK {
            self.cur = BytesMut::new();
        } else {
            self.cur.clear();
        }
    }

    /// Moves all pending bytes to the end of `out` (copying them) and empties the encoder.
    /// Handy for in-memory transports and tests.
    pub fn drain_into(&mut self, out: &mut BytesMut) {
        out.reserve(self.len);
        for chunk in &self.queue {
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(&self.cur);
        self.release();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{parse_hex, XorShift};

    /// Decodes all frames of `input`, fed in the given chunks; panics on leftovers.
    fn decode_chunks(chunks: &[&[u8]], max: Option<u64>) -> Result<Vec<Frame>, ProtoError> {
        let mut dec = Decoder::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(f) = dec.decode(&mut buf)? {
                out.push(f);
            }
        }
        assert!(buf.is_empty(), "{} bytes left over", buf.len());
        Ok(out)
    }

    /// Decodes `input` whole, byte by byte and in random chunks; checks all agree.
    pub(crate) fn decode_all_ways(
        input: &[u8],
        max: Option<u64>,
    ) -> Result<Vec<Frame>, ProtoError> {
        let whole = decode_chunks(&[input], max);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(decode_chunks(&bytes, max), whole, "byte by byte");
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for max_chunk in [2, 3, 7, 64, 300] {
            for _ in 0..8 {
                let chunks = rng.chunks(input, max_chunk);
                assert_eq!(decode_chunks(&chunks, max), whole, "random chunks");
            }
        }
        whole
    }

    fn msg(data: &[u8], more: bool) -> Frame {
        Frame::Message {
            data: Bytes::copy_from_slice(data),
            more,
        }
    }

    fn encoded(enc: &Encoder) -> Vec<u8> {
        let mut slices = vec![IoSlice::new(&[]); 4096];
        let n = enc.chunks(&mut slices);
        slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn short_frame_vector() {
        let v = parse_hex(include_str!("../../zmtp-spec/vectors/frame-short.hex"));
        assert_eq!(
            decode_all_ways(&v, None).unwrap(),
            vec![msg(b"hello", false)]
        );
        let mut enc = Encoder::new();
        enc.encode_frame(&Bytes::from_static(b"hello"), false);
        assert_eq!(encoded(&enc), v);
    }

    #[test]
    fn long_frame_vector() {
        let v = parse_hex(include_str!("../../zmtp-spec/vectors/frame-long.hex"));
        let payload: Vec<u8> = (0..256u32).map(|i| i as u8).collect();
        assert_eq!(
            decode_all_ways(&v, None).unwrap(),
            vec![msg(&payload, false)]
        );
        let mut enc = Encoder::new();
        enc.encode_frame(&Bytes::from(payload), false);
        assert_eq!(encoded(&enc), v);
    }

    #[test]
    fn multipart_vector() {
        let v = parse_hex(include_str!("../../zmtp-spec/vectors/multipart.hex"));
        let expected = vec![msg(b"id", true), msg(b"", true), msg(b"body", false)];
        assert_eq!(decode_all_ways(&v, None).unwrap(), expected);
        let mut enc = Encoder::new();
        enc.encode_frame(&Bytes::from_static(b"id"), true);
        enc.encode_frame(&Bytes::new(), true);
        enc.encode_frame(&Bytes::from_static(b"body"), false);
        assert_eq!(encoded(&enc), v);
    }

    fn command_vector(text: &str, expected: Command) {
        let v = parse_hex(text);
        assert_eq!(
            decode_all_ways(&v, None).unwrap(),
            vec![Frame::Command(expected.clone())]
        );
        let mut enc = Encoder::new();
        enc.encode_command(&expected);
        assert_eq!(encoded(&enc), v);
    }

    #[test]
    fn command_vectors() {
        command_vector(
            include_str!("../../zmtp-spec/vectors/command-subscribe.hex"),
            Command::Subscribe(Bytes::from_static(b"weather")),
        );
        command_vector(
            include_str!("../../zmtp-spec/vectors/command-cancel.hex"),
            Command::Cancel(Bytes::from_static(b"weather")),
        );
        command_vector(
            include_str!("../../zmtp-spec/vectors/command-ping.hex"),
            Command::Ping {
                ttl_deciseconds: 100,
                context: Bytes::from_static(b"ctx"),
            },
        );
        command_vector(
            include_str!("../../zmtp-spec/vectors/command-ping-libzmq.hex"),
            Command::Ping {
                ttl_deciseconds: 20,
                context: Bytes::new(),
            },
        );
        command_vector(
            include_str!("../../zmtp-spec/vectors/command-pong.hex"),
            Command::Pong {
                context: Bytes::from_static(b"ctx"),
            },
        );
        command_vector(
            include_str!("../../zmtp-spec/vectors/command-error.hex"),
            Command::Error("Invalid socket type".into()),
        );
    }

    #[test]
    fn ready_vectors() {
        let mut md = crate::Metadata::new();
        md.insert("Socket-Type", Bytes::from_static(b"PUSH"));
        command_vector(
            include_str!("../../zmtp-spec/vectors/ready-push.hex"),
            Command::Ready(md),
        );
        let mut md = crate::Metadata::new();
        md.insert("Socket-Type", Bytes::from_static(b"DEALER"));
        md.insert("Identity", Bytes::from_static(b"client-1"));
        command_vector(
            include_str!("../../zmtp-spec/vectors/ready-dealer-identity.hex"),
            Command::Ready(md),
        );
    }

    #[test]
    fn encoder_round_trip_many_frames() {
        let mut rng = XorShift(12345);
        let mut frames = Vec::new();
        let mut enc = Encoder::new();
        for i in 0..500 {
            let len = match rng.next() % 10 {
                0 => 0,
                1 => 255,
                2 => 256,
                3 => ZERO_COPY_THRESHOLD - 1,
                4 => ZERO_COPY_THRESHOLD + (rng.next() % 5000) as usize,
                _ => (rng.next() % 300) as usize,
            };
            let data: Bytes = (0..len).map(|j| (i + j) as u8).collect::<Vec<u8>>().into();
            if i % 50 == 7 {
                let cmd = Command::Subscribe(data.slice(..len.min(20)));
                enc.encode_command(&cmd);
                frames.push(Frame::Command(cmd));
            } else {
                let more = rng.next() % 2 == 0;
                enc.encode_frame(&data, more);
                frames.push(Frame::Message { data, more });
            }
        }
        let wire = encoded(&enc);
        assert_eq!(wire.len(), enc.len());
        assert_eq!(decode_chunks(&[&wire], None).unwrap(), frames);
        let mut rng = XorShift(777);
        let chunks = rng.chunks(&wire, 4000);
        assert_eq!(decode_chunks(&chunks, None).unwrap(), frames);
    }

    #[test]
    fn short_long_boundary() {
        for (len, flags, header) in [(255usize, 0x00u8, 2usize), (256, 0x02, 9)] {
            let mut enc = Encoder::new();
            enc.encode_frame(&Bytes::from(vec![0xAB; len]), false);
            let wire = encoded(&enc);
            assert_eq!(wire[0], flags);
            assert_eq!(wire.len(), header + len);
            let mut enc = Encoder::new();
            enc.encode_frame(&Bytes::from(vec![0xAB; len]), true);
            assert_eq!(encoded(&enc)[0], flags | FLAG_MORE);
        }
        // A command body above 255 bytes uses the long command form 0x06.
        let mut enc = Encoder::new();
        let cmd = Command::Subscribe(Bytes::from(vec![b'x'; 300]));
        enc.encode_command(&cmd);
        let wire = encoded(&enc);
        assert_eq!(wire[0], 0x06);
        assert_eq!(
            decode_chunks(&[&wire], None).unwrap(),
            vec![Frame::Command(cmd)]
        );
        // A long header announcing a small frame is accepted (non-canonical but valid).
        let wire = parse_hex("02 0000000000000002 6869");
        assert_eq!(
            decode_all_ways(&wire, None).unwrap(),
            vec![msg(b"hi", false)]
        );
    }

    #[test]
    fn zero_length_frames() {
        let mut enc = Encoder::new();
        enc.encode_frame(&Bytes::new(), true);
        enc.encode_frame(&Bytes::new(), false);
        let wire = encoded(&enc);
        assert_eq!(wire, [0x01, 0x00, 0x00, 0x00]);
        assert_eq!(
            decode_all_ways(&wire, Some(0)).unwrap(),
            vec![msg(b"", true), msg(b"", false)]
        );
    }

    #[test]
    fn large_payload_is_zero_copy() {
        let big = Bytes::from(vec![7u8; 100_000]);
        let small = Bytes::from_static(b"small");
        let mut enc = Encoder::new();
        enc.encode_frame(&small, true);
        enc.encode_frame(&big, true);
        enc.encode_frame(&small, false);
        let views = |enc: &Encoder| -> Vec<(usize, usize)> {
            let mut slices = [IoSlice::new(&[]); 8];
            let n = enc.chunks(&mut slices);
            slices[..n]
                .iter()
                .map(|s| (s.as_ptr() as usize, s.len()))
                .collect()
        };
        let v = views(&enc);
        assert_eq!(v.len(), 3);
        assert_eq!(v[1], (big.as_ptr() as usize, big.len()));
        assert_eq!(enc.len(), 2 + 5 + 9 + 100_000 + 2 + 5);
        // A small dst gets the first chunks only.
        let mut one = [IoSlice::new(&[])];
        assert_eq!(enc.chunks(&mut one), 1);
        // Partial writes.
        enc.advance(3);
        enc.advance(20);
        let v = views(&enc);
        assert_eq!(v, [(big.as_ptr() as usize + 7, 100_000 - 7), v[1]]);
        enc.advance(100_000 - 7 + 2);
        assert_eq!(encoded(&enc), b"small");
        assert_eq!(views(&enc).len(), 1);
        enc.advance(5);
        assert!(enc.is_empty());
        assert_eq!(views(&enc).len(), 0);
        // Decoded payloads share the read buffer.
        let mut buf = BytesMut::from(&b"\x00\x05hello\x00\x02hi"[..]);
        let base = buf.as_ptr() as usize;
        let mut dec = Decoder::new(None);
        match dec.decode(&mut buf).unwrap() {
            Some(Frame::Message { data, .. }) => assert_eq!(data.as_ptr() as usize, base + 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn small_frames_are_batched() {
        let mut enc = Encoder::new();
        enc.encode_raw(&[0xFF; 64]);
        for i in 0..100u8 {
            enc.encode_frame(&Bytes::from(vec![i; 50]), i % 2 == 0);
        }
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(enc.chunks(&mut slices), 1);
        assert_eq!(slices[0].len(), 64 + 100 * 52);
        // After everything is written, the encoder is reusable.
        enc.advance(enc.len());
        enc.encode_frame(&Bytes::from_static(b"again"), false);
        assert_eq!(encoded(&enc), b"\x00\x05again");
    }

    #[test]
    fn drain_into_collects_everything() {
        let mut enc = Encoder::new();
        enc.encode_raw(b"raw");
        enc.encode_frame(&Bytes::from(vec![1u8; 10_000]), false);
        enc.encode_frame(&Bytes::from_static(b"x"), false);
        let expected = encoded(&enc);
        let mut out = BytesMut::new();
        enc.drain_into(&mut out);
        assert_eq!(&out[..], &expected[..]);
        assert!(enc.is_empty());
    }

    #[test]
    fn max_msg_size_checked_before_reserve() {
        // A long header announcing 2^63 bytes: refused without allocating.
        let mut buf = BytesMut::from(&parse_hex("02 8000000000000000")[..]);
        let cap = buf.capacity();
        assert_eq!(
            Decoder::new(None).decode(&mut buf),
            Err(ProtoError::MessageTooLarge {
                size: 1 << 63,
                max: i64::MAX as u64
            })
        );
        assert_eq!(buf.capacity(), cap);
        // 2^63 - 1 with a limit.
        let mut buf = BytesMut::from(&parse_hex("02 7fffffffffffffff")[..]);
        assert_eq!(
            Decoder::new(Some(1000)).decode(&mut buf),
            Err(ProtoError::MessageTooLarge {
                size: i64::MAX as u64,
                max: 1000
            })
        );
        assert_eq!(buf.capacity(), cap);
        // Short frames and commands are checked too.
        let v = parse_hex("00 05 68656c6c6f");
        assert_eq!(
            decode_all_ways(&v, Some(4)),
            Err(ProtoError::MessageTooLarge { size: 5, max: 4 })
        );
        assert_eq!(
            decode_all_ways(&v, Some(5)).unwrap(),
            vec![msg(b"hello", false)]
        );
        // Up to the limit, the rest of the frame is reserved, capped.
        let mut buf = BytesMut::from(&parse_hex("02 0000000010000000 00")[..]);
        assert_eq!(Decoder::new(None).decode(&mut buf), Ok(None));
        assert!(buf.capacity() >= 10 + MAX_RESERVE - 1);
        assert!(buf.capacity() < 0x1000_0000);
    }

    #[test]
    fn prepend_goes_ahead_of_pending_frames() {
        let mut enc = Encoder::new();
        enc.encode_frame(&Bytes::from_static(b"ab"), false);
        enc.prepend(Bytes::from_static(b"rest"));
        enc.prepend(Bytes::new());
        let mut out = BytesMut::new();
        assert_eq!(enc.len(), 8);
        enc.drain_into(&mut out);
        assert_eq!(&out[..], b"rest\x00\x02ab");
    }

    #[test]
    fn message_header_matches_the_encoder() {
        for size in [0usize, 1, 255, 256, 70_000] {
            for more in [false, true] {
                let mut enc = Encoder::new();
                enc.encode_frame(&Bytes::from(vec![7u8; size]), more);
                let mut wire = Vec::new();
                let mut slices = [std::io::IoSlice::new(&[]); 8];
                let n = enc.chunks(&mut slices);
                for s in &slices[..n] {
                    wire.extend_from_slice(s);
                }
                let (h, len) = message_header(more, size);
                assert_eq!(&wire[..len], &h[..len], "size {size} more {more}");
                assert_eq!(wire.len(), len + size);
            }
        }
    }

    #[test]
    fn front_frame_tells_its_size_and_what_is_missing() {
        let d = Decoder::new(None);
        assert_eq!(d.front_frame(&[]), None);
        assert_eq!(d.front_frame(&[0x02]), None, "long header incomplete");
        assert_eq!(d.front_frame(&parse_hex("00 05 68")), Some((7, 4)));
        assert_eq!(d.front_frame(&parse_hex("00 05 68656c6c6f")), Some((7, 0)));
        let whole_then_more = parse_hex("00 01 68 00");
        assert_eq!(d.front_frame(&whole_then_more), Some((3, 0)));
        assert_eq!(
            d.front_frame(&parse_hex("02 0000000000010000 00")),
            Some((9 + 0x1_0000, 0x1_0000 - 1))
        );
        assert_eq!(
            d.front_frame(&[0xff, 0x00]),
            None,
            "invalid: decode reports it"
        );
        assert_eq!(Decoder::new(Some(3)).front_frame(&parse_hex("00 05")), None);
    }

    #[test]
    fn reserved_flags_rejected() {
        for flags in [0x08u8, 0x10, 0x20, 0x40, 0x80, 0xFF] {
            let mut buf = BytesMut::from(&[flags][..]);
            assert_eq!(
                Decoder::new(None).decode(&mut buf),
                Err(ProtoError::InvalidFlags(flags))
            );
        }
    }

    #[test]
    fn command_with_more_rejected() {
        for flags in [0x05u8, 0x07] {
            let mut buf = BytesMut::from(&[flags][..]);
            assert_eq!(
                Decoder::new(None).decode(&mut buf),
                Err(ProtoError::CommandWithMore)
            );
        }
    }

    #[test]
    fn malformed_command_frames() {
        // Empty command frame; name length past the end of the frame.
        for hex in ["04 00", "04 03 05 5245", "04 02 00 41"] {
            let v = parse_hex(hex);
            let mut buf = BytesMut::from(&v[..]);
            let r = Decoder::new(None).decode(&mut buf);
            assert!(r.is_err(), "{hex}: {r:?}");
        }
    }

    #[test]
    fn unknown_command_frame_kept() {
        let v = parse_hex("04 08 05 48454c4c4f 0102");
        assert_eq!(
            decode_all_ways(&v, None).unwrap(),
            vec![Frame::Command(Command::Unknown {
                name: Bytes::from_static(b"HELLO"),
                body: Bytes::from_static(b"\x01\x02"),
            })]
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(99);
        for _ in 0..2000 {
            let len = (rng.next() % 40) as usize;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut buf = BytesMut::from(&data[..]);
            let mut dec = Decoder::new(Some(1 << 20));
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
        }
    }

    /// Decodes `chunks` as the engine does: small frames copied, large bodies read in place
    /// (the following chunks filling them).
    fn decode_engine_way(chunks: &[&[u8]], large_min: usize) -> Vec<Frame> {
        crate::fuzzing::feed_decoder(chunks.iter().copied(), None, true, large_min)
    }

    #[test]
    fn large_bodies_read_in_place_decode_like_split_frames() {
        // 20 KiB (a 32 KiB pooled buffer, so stale bytes past the end must not show), a small
        // frame, a command, 16 KiB exactly, then a large frame with MORE and a 3-byte one.
        let big: Vec<u8> = (0..20 * 1024u32).map(|i| (i % 251) as u8).collect();
        let edge = vec![0xAB; 16 * 1024];
        let mut enc = Encoder::new();
        enc.encode_frame(&Bytes::from(big.clone()), false);
        enc.encode_frame(&Bytes::from_static(b"hi"), true);
        enc.encode_command(&Command::Ping {
            ttl_deciseconds: 0,
            context: Bytes::new(),
        });
        enc.encode_frame(&Bytes::from(edge.clone()), false);
        enc.encode_frame(&Bytes::from(big.clone()), true);
        enc.encode_frame(&Bytes::from_static(b"end"), false);
        let wire = encoded(&enc);
        let expected = decode_all_ways(&wire, None).unwrap();
        assert_eq!(expected.len(), 6);
        let mut rng = XorShift(7);
        for max_chunk in [1, 9, 1000, 30_000, wire.len()] {
            for _ in 0..3 {
                let chunks = rng.chunks(&wire, max_chunk.max(1));
                assert_eq!(
                    decode_engine_way(&chunks, 16 * 1024),
                    expected,
                    "{max_chunk}"
                );
            }
        }
        // Off: every frame is split from the buffer as `decode` does.
        let chunks = rng.chunks(&wire, 1000);
        assert_eq!(decode_engine_way(&chunks, usize::MAX), expected);
    }

    #[test]
    fn a_large_body_starts_only_after_its_header_is_checked() {
        // Over MAXMSGSIZE: an error, no body taken.
        let mut buf = BytesMut::from(&[0x02, 0, 0, 0, 0, 0, 0, 0x80, 0][..]);
        let r = Decoder::new(Some(1024)).decode_small(&mut buf, 22, 16, |_, _| ());
        assert!(matches!(r, Err(ProtoError::MessageTooLarge { .. })));
        // A large command frame is never read in place.
        let mut buf = BytesMut::from(&[0x06, 0, 0, 0, 0, 0, 0, 0x80, 0, 4][..]);
        let r = Decoder::new(None).decode_small(&mut buf, 22, 16, |_, _| ());
        assert!(matches!(r, Ok(None)));
        assert_eq!(buf.len(), 10, "the command stays in the buffer");
        // Above the pool's largest class: reserved in the buffer as before.
        let mut buf = BytesMut::from(&[0x02, 0, 0, 0, 0, 0, 0x20, 0, 0, 4][..]);
        let r = Decoder::new(None).decode_small(&mut buf, 22, 16, |_, _| ());
        assert!(matches!(r, Ok(None)));
        assert_eq!(buf.len(), 10);
    }
}
