//! RPUB wire codec: byte-exact encode/decode of every message in
//! `zmtp-spec/reliable-pub.md`: RPUB/1, and the RPUB/2 DATA layout (§5.1.1: the header and
//! the first payload frame in one frame). Decoders accept DATA of both versions.
//!
//! Every decoder takes untrusted bytes and returns `Result<_, WireError>`; none of them panics
//! on any input. All multi-byte integers are big-endian. Trailing bytes after the defined
//! fields and reserved bytes are ignored (forward compatibility), as the spec requires.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// The two magic bytes every RPUB header frame starts with (`"RP"`).
pub const MAGIC: [u8; 2] = *b"RP";
/// The protocol version of every message but RPUB/2 DATA (version byte `01`).
pub const VERSION: u8 = 1;
/// Version byte of a DATA message in the RPUB/2 layout (§5.1.1); decoders accept DATA of
/// version 1 and 2, every other type only of version 1.
pub const DATA_VERSION_2: u8 = 2;
/// Length of the common prefix of every header frame.
pub const PREFIX_LEN: usize = 8;
/// Length of a DATA header frame.
pub const DATA_HEADER_LEN: usize = 48;
/// Topic frame of HEARTBEAT messages on the data channel (`"\0RPHB"`).
pub const HEARTBEAT_TOPIC: &[u8] = b"\0RPHB";
/// Topic frame of discovery EVENT messages on an instance's PUB socket (`"\0RPDISC"`).
pub const DISCOVERY_TOPIC: &[u8] = b"\0RPDISC";
/// DATA flag: the message is a retransmission sent on the replay channel.
pub const FLAG_RETRANSMISSION: u8 = 0x01;
/// RPUB/2 DATA flag (layout, not a property of the message: decoders clear it): the header
/// frame carries no payload bytes, the payload frames follow it (zero or more).
pub const FLAG_DETACHED: u8 = 0x02;
/// An RPUB/2 encoder attaches the first payload frame to the header when header + frame are
/// at most this long (a copy that small costs less than a frame); longer ones are detached
/// (sent as their own frames, not copied).
pub const ATTACH_MAX: usize = 1024;
/// Longest stream name, in bytes.
pub const MAX_STREAM_NAME: usize = 255;

/// Message type codes (byte 3 of the prefix).
pub mod msg_type {
    /// DATA (live or retransmitted).
    pub const DATA: u8 = 0x01;
    /// HEARTBEAT.
    pub const HEARTBEAT: u8 = 0x02;
    /// Replay REQUEST.
    pub const REQUEST: u8 = 0x10;
    /// Late-join answer.
    pub const JOIN: u8 = 0x11;
    /// End of a replayed range.
    pub const END: u8 = 0x12;
    /// Sequence numbers that are gone.
    pub const GAP: u8 = 0x13;
    /// Publisher busy, retry later.
    pub const BUSY: u8 = 0x14;
    /// Discovery REGISTER.
    pub const REGISTER: u8 = 0x20;
    /// Discovery RENEW.
    pub const RENEW: u8 = 0x21;
    /// Discovery UNREGISTER.
    pub const UNREGISTER: u8 = 0x22;
    /// Discovery LIST.
    pub const LIST: u8 = 0x23;
    /// Discovery ACK.
    pub const ACK: u8 = 0x24;
    /// Discovery LIST_REPLY.
    pub const LIST_REPLY: u8 = 0x25;
    /// Discovery EVENT.
    pub const EVENT: u8 = 0x26;
    /// Serialized durable cursor (never on the wire between peers).
    pub const CURSOR: u8 = 0x7f;
}

/// Errors from decoding RPUB messages. Receivers ignore messages that fail to decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The frame is shorter than its layout requires.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The frame does not start with `"RP"`.
    #[error("bad magic")]
    BadMagic,
    /// The version byte is not one this implementation speaks.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The type byte is unknown.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// The type is known but not valid on this channel / in this position.
    #[error("unexpected message type {0:#04x}")]
    UnexpectedType(u8),
    /// The multipart message has too few frames.
    #[error("missing frame")]
    MissingFrame,
    /// A stream name is empty, longer than 255 bytes, or starts with `0x00`.
    #[error("invalid stream name")]
    InvalidStreamName,
    /// A sub-code (request kind, ack status, event kind...) is unknown.
    #[error("unknown {what} code {code}")]
    UnknownCode {
        /// Which field.
        what: &'static str,
        /// The value found.
        code: u8,
    },
    /// A field is invalid (bad UTF-8, inverted range, ...).
    #[error("invalid field: {0}")]
    InvalidField(&'static str),
    /// A list or string is too long to encode.
    #[error("too large: {0}")]
    TooLarge(&'static str),
}

/// A 128-bit identifier (publisher id, node id, discovery instance id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id128(pub [u8; 16]);

/// A publisher's random 128-bit id.
pub type PublisherId = Id128;
/// A discovery node's 128-bit id.
pub type NodeId = Id128;

impl Id128 {
    /// A fresh random id from the OS (getrandom).
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b)?;
        Ok(Id128(b))
    }
}

impl fmt::Debug for Id128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Id128 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Checks a stream name: 1..=255 bytes, not starting with `0x00`.
pub fn validate_stream_name(name: &[u8]) -> Result<(), WireError> {
    if name.is_empty() || name.len() > MAX_STREAM_NAME || name[0] == 0 {
        return Err(WireError::InvalidStreamName);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reader / writer helpers

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated {
            need: usize::MAX,
            have: self.buf.len(),
        })?;
        if end > self.buf.len() {
            return Err(WireError::Truncated {
                need: end,
                have: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    fn id(&mut self) -> Result<Id128, WireError> {
        let s = self.take(16)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(s);
        Ok(Id128(a))
    }
    fn stream_name(&mut self) -> Result<Bytes, WireError> {
        let n = self.u8()? as usize;
        let s = self.take(n)?;
        validate_stream_name(s)?;
        Ok(Bytes::copy_from_slice(s))
    }
    fn string_u8(&mut self) -> Result<String, WireError> {
        let n = self.u8()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| WireError::InvalidField("utf-8"))
    }
    fn string_u16(&mut self) -> Result<String, WireError> {
        let n = self.u16()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| WireError::InvalidField("utf-8"))
    }
}

/// The decoded common 8-byte prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix {
    version: u8,
    ty: u8,
    flags: u8,
    sub: u8,
    sub2: u8,
}

fn read_prefix(r: &mut Reader<'_>) -> Result<Prefix, WireError> {
    let have = r.buf.len();
    if have < PREFIX_LEN {
        if have >= 2 && r.buf[..2] != MAGIC {
            return Err(WireError::BadMagic);
        }
        return Err(WireError::Truncated {
            need: PREFIX_LEN,
            have,
        });
    }
    let p = r.take(PREFIX_LEN)?;
    if p[..2] != MAGIC {
        return Err(WireError::BadMagic);
    }
    // Version 2 changed the DATA layout only.
    if p[2] != VERSION && !(p[2] == DATA_VERSION_2 && p[3] == msg_type::DATA) {
        return Err(WireError::UnsupportedVersion(p[2]));
    }
    Ok(Prefix {
        version: p[2],
        ty: p[3],
        flags: p[4],
        sub: p[5],
        sub2: p[6],
    })
}

fn put_prefix(b: &mut BytesMut, ty: u8, flags: u8, sub: u8, sub2: u8) {
    b.put_slice(&MAGIC);
    b.put_u8(VERSION);
    b.put_u8(ty);
    b.put_u8(flags);
    b.put_u8(sub);
    b.put_u8(sub2);
    b.put_u8(0);
}

/// Reads only the type byte of a header frame, checking magic and version.
pub fn peek_type(frame: &[u8]) -> Result<u8, WireError> {
    read_prefix(&mut Reader::new(frame)).map(|p| p.ty)
}

// ---------------------------------------------------------------------------------------------
// Data channel

/// The 48-byte DATA header (frame 2 of a data message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// Flags; bit 0 = [`FLAG_RETRANSMISSION`].
    pub flags: u8,
    /// Publisher id.
    pub publisher: PublisherId,
    /// Publisher epoch.
    pub epoch: u64,
    /// Sequence number within (publisher, epoch, stream), from 1.
    pub seq: u64,
    /// Publisher timestamp in ms.
    pub timestamp_ms: u64,
}

impl DataHeader {
    /// True if this is a retransmission.
    pub fn is_retransmission(&self) -> bool {
        self.flags & FLAG_RETRANSMISSION != 0
    }

    /// Encodes the header (48 bytes).
    pub fn encode(&self) -> Bytes {
        Bytes::copy_from_slice(&self.to_array())
    }

    /// Encodes the header into a fixed array (no allocation; the live publish path copies it
    /// straight into the outgoing frame).
    pub fn to_array(&self) -> [u8; DATA_HEADER_LEN] {
        self.header_array(VERSION, self.flags)
    }

    /// The header of an RPUB/2 DATA message (version `02`); `detached` sets
    /// [`FLAG_DETACHED`]. The first payload frame's bytes follow it in the same frame unless
    /// detached.
    pub fn to_array_v2(&self, detached: bool) -> [u8; DATA_HEADER_LEN] {
        let flags = self.flags & !FLAG_DETACHED;
        let flags = if detached {
            flags | FLAG_DETACHED
        } else {
            flags
        };
        self.header_array(DATA_VERSION_2, flags)
    }

    fn header_array(&self, version: u8, flags: u8) -> [u8; DATA_HEADER_LEN] {
        let mut a = [0u8; DATA_HEADER_LEN];
        a[..2].copy_from_slice(&MAGIC);
        a[2] = version;
        a[3] = msg_type::DATA;
        a[4] = flags;
        // a[5..8]: sub-type, sub2 and reserved, all zero.
        a[8..24].copy_from_slice(&self.publisher.0);
        a[24..32].copy_from_slice(&self.epoch.to_be_bytes());
        a[32..40].copy_from_slice(&self.seq.to_be_bytes());
        a[40..48].copy_from_slice(&self.timestamp_ms.to_be_bytes());
        a
    }

    /// Decodes a header frame (the first 48 bytes; of version 1 or 2). [`FLAG_DETACHED`] is
    /// cleared (a layout flag, reserved in version 1).
    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        Self::decode_v(frame).map(|(h, _, _)| h)
    }

    /// Decodes a header frame; also returns its version byte and whether it was detached.
    fn decode_v(frame: &[u8]) -> Result<(Self, u8, bool), WireError> {
        let mut r = Reader::new(frame);
        let p = read_prefix(&mut r)?;
        if p.ty != msg_type::DATA {
            return Err(WireError::UnexpectedType(p.ty));
        }
        let h = DataHeader {
            flags: p.flags & !FLAG_DETACHED,
            publisher: r.id()?,
            epoch: r.u64()?,
            seq: r.u64()?,
            timestamp_ms: r.u64()?,
        };
        Ok((h, p.version, p.flags & FLAG_DETACHED != 0))
    }
}

/// A whole DATA message: `[stream][header][payload...]` (RPUB/1) or
/// `[stream][header + payload 1][payload 2...]` (RPUB/2, §5.1.1), decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMessage {
    /// Stream name (frame 1).
    pub stream: Bytes,
    /// The header (frame 2; [`FLAG_DETACHED`] is never set here).
    pub header: DataHeader,
    /// Application payload frames (zero or more).
    pub payload: Vec<Bytes>,
}

/// Whether an RPUB/2 encoder attaches a first payload frame of `len` bytes to the header.
pub fn attaches(len: usize) -> bool {
    DATA_HEADER_LEN + len <= ATTACH_MAX
}

impl DataMessage {
    /// Encodes to ZMTP frames, RPUB/1 layout.
    pub fn encode(&self) -> Vec<Bytes> {
        let mut v = Vec::with_capacity(2 + self.payload.len());
        v.push(self.stream.clone());
        v.push(Bytes::copy_from_slice(
            &self
                .header
                .header_array(VERSION, self.header.flags & !FLAG_DETACHED),
        ));
        v.extend(self.payload.iter().cloned());
        v
    }

    /// Encodes to ZMTP frames, RPUB/2 layout: the first payload frame is attached to the
    /// header if [`attaches`] says so, else the message is sent detached.
    pub fn encode_v2(&self) -> Vec<Bytes> {
        let mut v = Vec::with_capacity(2 + self.payload.len());
        v.push(self.stream.clone());
        match self.payload.split_first() {
            Some((first, rest)) if attaches(first.len()) => {
                let mut b = BytesMut::with_capacity(DATA_HEADER_LEN + first.len());
                b.put_slice(&self.header.to_array_v2(false));
                b.put_slice(first);
                v.push(b.freeze());
                v.extend(rest.iter().cloned());
            }
            _ => {
                v.push(Bytes::copy_from_slice(&self.header.to_array_v2(true)));
                v.extend(self.payload.iter().cloned());
            }
        }
        v
    }

    /// Encodes in the layout of `version` (2: [`DataMessage::encode_v2`], else RPUB/1).
    pub fn encode_version(&self, version: u8) -> Vec<Bytes> {
        if version == DATA_VERSION_2 {
            self.encode_v2()
        } else {
            self.encode()
        }
    }

    /// Decodes from ZMTP frames (either version).
    pub fn decode(frames: &[Bytes]) -> Result<Self, WireError> {
        if frames.len() < 2 {
            return Err(WireError::MissingFrame);
        }
        validate_stream_name(&frames[0])?;
        let (header, version, detached) = DataHeader::decode_v(&frames[1])?;
        let mut payload = Vec::with_capacity(frames.len() - 1);
        if version == DATA_VERSION_2 && !detached {
            payload.push(frames[1].slice(DATA_HEADER_LEN..));
        }
        payload.extend(frames[2..].iter().cloned());
        Ok(DataMessage {
            stream: frames[0].clone(),
            header,
            payload,
        })
    }

    /// Decodes from ZMTP frames it takes over: the payload keeps the frames' vector (no
    /// allocation, no reference-count traffic).
    pub fn decode_owned(mut frames: Vec<Bytes>) -> Result<Self, WireError> {
        if frames.len() < 2 {
            return Err(WireError::MissingFrame);
        }
        validate_stream_name(&frames[0])?;
        let stream = frames.remove(0);
        let (header, payload) = Self::decode_rest(frames)?;
        Ok(DataMessage {
            stream,
            header,
            payload,
        })
    }

    /// Decodes the frames after the stream frame (header frame first), which it takes over:
    /// returns the header and the payload frames, in the same vector. The caller checks the
    /// stream name ([`validate_stream_name`]).
    pub fn decode_rest(mut frames: Vec<Bytes>) -> Result<(DataHeader, Vec<Bytes>), WireError> {
        let first = frames.first().ok_or(WireError::MissingFrame)?;
        let (header, version, detached) = DataHeader::decode_v(first)?;
        if version == DATA_VERSION_2 && !detached {
            // The header frame becomes the first payload frame.
            bytes::Buf::advance(&mut frames[0], DATA_HEADER_LEN);
        } else {
            frames.remove(0);
        }
        Ok((header, frames))
    }
}

/// One per-stream entry of a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMark {
    /// Stream name.
    pub stream: Bytes,
    /// Newest seq sent on the stream (0 = none).
    pub newest: u64,
    /// Oldest seq still retained (`newest + 1` if none).
    pub oldest: u64,
}

/// A HEARTBEAT: `["\0RPHB"][heartbeat]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Publisher id.
    pub publisher: PublisherId,
    /// Publisher epoch.
    pub epoch: u64,
    /// Publisher timestamp in ms.
    pub timestamp_ms: u64,
    /// Per-stream marks (at most 65 535).
    pub streams: Vec<StreamMark>,
}

impl Heartbeat {
    /// Encodes the heartbeat body frame.
    pub fn encode_body(&self) -> Result<Bytes, WireError> {
        if self.streams.len() > u16::MAX as usize {
            return Err(WireError::TooLarge("heartbeat entries"));
        }
        let mut b = BytesMut::with_capacity(42 + self.streams.len() * 24);
        put_prefix(&mut b, msg_type::HEARTBEAT, 0, 0, 0);
        b.put_slice(&self.publisher.0);
        b.put_u64(self.epoch);
        b.put_u64(self.timestamp_ms);
        b.put_u16(self.streams.len() as u16);
        for m in &self.streams {
            validate_stream_name(&m.stream)?;
            b.put_u8(m.stream.len() as u8);
            b.put_slice(&m.stream);
            b.put_u64(m.newest);
            b.put_u64(m.oldest);
        }
        Ok(b.freeze())
    }

    /// Encodes to ZMTP frames (topic frame + body).
    pub fn encode(&self) -> Result<Vec<Bytes>, WireError> {
        Ok(vec![
            Bytes::from_static(HEARTBEAT_TOPIC),
            self.encode_body()?,
        ])
    }

    /// Decodes a heartbeat body frame.
    pub fn decode_body(frame: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(frame);
        let p = read_prefix(&mut r)?;
        if p.ty != msg_type::HEARTBEAT {
            return Err(WireError::UnexpectedType(p.ty));
        }
        let publisher = r.id()?;
        let epoch = r.u64()?;
        let timestamp_ms = r.u64()?;
        let n = r.u16()? as usize;
        let mut streams = Vec::with_capacity(n.min(frame.len() / 18 + 1));
        for _ in 0..n {
            streams.push(StreamMark {
                stream: r.stream_name()?,
                newest: r.u64()?,
                oldest: r.u64()?,
            });
        }
        Ok(Heartbeat {
            publisher,
            epoch,
            timestamp_ms,
            streams,
        })
    }
}

/// Anything received on the data (SUB) channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataChannelMessage {
    /// A DATA message.
    Data(DataMessage),
    /// A HEARTBEAT.
    Heartbeat(Heartbeat),
}

/// Decodes a multipart message received on the data channel.
pub fn decode_data_channel(frames: &[Bytes]) -> Result<DataChannelMessage, WireError> {
    if frames.len() < 2 {
        return Err(WireError::MissingFrame);
    }
    if &frames[0][..] == HEARTBEAT_TOPIC {
        return Heartbeat::decode_body(&frames[1]).map(DataChannelMessage::Heartbeat);
    }
    DataMessage::decode(frames).map(DataChannelMessage::Data)
}

// ---------------------------------------------------------------------------------------------
// Replay channel

/// What a replay REQUEST asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// Repair: seqs `from..=to`.
    Range {
        /// First seq.
        from: u64,
        /// Last seq (inclusive).
        to: u64,
    },
    /// Late join from the next message.
    FromNow,
    /// Late join from the oldest retained message.
    FromOldest,
    /// Late join from seq N.
    FromSeq(u64),
    /// Late join with the last N messages.
    LastN(u64),
}

impl RequestKind {
    /// Wire code (byte 5).
    pub fn code(&self) -> u8 {
        match self {
            RequestKind::Range { .. } => 0,
            RequestKind::FromNow => 1,
            RequestKind::FromOldest => 2,
            RequestKind::FromSeq(_) => 3,
            RequestKind::LastN(_) => 4,
        }
    }
    fn ab(&self) -> (u64, u64) {
        match *self {
            RequestKind::Range { from, to } => (from, to),
            RequestKind::FromSeq(n) | RequestKind::LastN(n) => (n, 0),
            _ => (0, 0),
        }
    }
    fn from_code(code: u8, a: u64, b: u64) -> Result<Self, WireError> {
        Ok(match code {
            0 => {
                if b < a {
                    return Err(WireError::InvalidField("range to < from"));
                }
                RequestKind::Range { from: a, to: b }
            }
            1 => RequestKind::FromNow,
            2 => RequestKind::FromOldest,
            3 => RequestKind::FromSeq(a),
            4 => RequestKind::LastN(a),
            _ => {
                return Err(WireError::UnknownCode {
                    what: "request kind",
                    code,
                })
            }
        })
    }
}

/// A replay REQUEST: `[stream][request]` from a DEALER to the publisher's ROUTER.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplayRequest {
    /// Target publisher.
    pub publisher: PublisherId,
    /// Epoch the request is about.
    pub epoch: u64,
    /// Stream.
    pub stream: Bytes,
    /// What is asked for.
    pub kind: RequestKind,
}

fn put_reply_body(b: &mut BytesMut, publisher: &PublisherId, epoch: u64, a: u64, bb: u64) {
    b.put_slice(&publisher.0);
    b.put_u64(epoch);
    b.put_u64(a);
    b.put_u64(bb);
}

impl ReplayRequest {
    /// Encodes to ZMTP frames `[stream][request]`.
    pub fn encode(&self) -> Vec<Bytes> {
        let mut b = BytesMut::with_capacity(48);
        put_prefix(&mut b, msg_type::REQUEST, 0, self.kind.code(), 0);
        let (a, bb) = self.kind.ab();
        put_reply_body(&mut b, &self.publisher, self.epoch, a, bb);
        vec![self.stream.clone(), b.freeze()]
    }

    /// Decodes from ZMTP frames (without the ROUTER's routing-id frame).
    pub fn decode(frames: &[Bytes]) -> Result<Self, WireError> {
        if frames.len() < 2 {
            return Err(WireError::MissingFrame);
        }
        validate_stream_name(&frames[0])?;
        let mut r = Reader::new(&frames[1]);
        let p = read_prefix(&mut r)?;
        if p.ty != msg_type::REQUEST {
            return Err(WireError::UnexpectedType(p.ty));
        }
        let publisher = r.id()?;
        let epoch = r.u64()?;
        let a = r.u64()?;
        let b = r.u64()?;
        Ok(ReplayRequest {
            publisher,
            epoch,
            stream: frames[0].clone(),
            kind: RequestKind::from_code(p.sub, a, b)?,
        })
    }
}

/// Anything the publisher sends back on the replay channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayReply {
    /// A retained message, flagged RETRANSMISSION.
    Retransmission(DataMessage),
    /// Late-join answer: deliver from `join_at`; `newest` was the newest seq at resolution.
    Join {
        /// Publisher.
        publisher: PublisherId,
        /// The publisher's current epoch.
        epoch: u64,
        /// Stream.
        stream: Bytes,
        /// The late-join kind being answered.
        kind_code: u8,
        /// First seq the subscriber shall deliver.
        join_at: u64,
        /// Newest seq at resolution time.
        newest: u64,
    },
    /// The range `from..=to` has been fully answered.
    End {
        /// Publisher.
        publisher: PublisherId,
        /// Epoch.
        epoch: u64,
        /// Stream.
        stream: Bytes,
        /// First seq.
        from: u64,
        /// Last seq.
        to: u64,
    },
    /// Seqs `from..=to` are gone forever.
    Gap {
        /// Publisher.
        publisher: PublisherId,
        /// Epoch.
        epoch: u64,
        /// Stream.
        stream: Bytes,
        /// First lost seq.
        from: u64,
        /// Last lost seq.
        to: u64,
    },
    /// The request was not served; retry after `retry_after_ms`.
    Busy {
        /// The request being refused (echo).
        request: ReplayRequest,
        /// Retry hint in ms.
        retry_after_ms: u32,
    },
}

impl ReplayReply {
    /// The stream this reply is about.
    pub fn stream(&self) -> &Bytes {
        match self {
            ReplayReply::Retransmission(m) => &m.stream,
            ReplayReply::Join { stream, .. }
            | ReplayReply::End { stream, .. }
            | ReplayReply::Gap { stream, .. } => stream,
            ReplayReply::Busy { request, .. } => &request.stream,
        }
    }

    /// Encodes to ZMTP frames `[stream][body][payload...]` (a RETX in the RPUB/1 layout).
    pub fn encode(&self) -> Vec<Bytes> {
        self.encode_version(VERSION)
    }

    /// Encodes to ZMTP frames; a RETX in the DATA layout of `version` (1 or 2, see
    /// [`DataMessage::encode_version`]); the other replies have one layout.
    pub fn encode_version(&self, version: u8) -> Vec<Bytes> {
        let mut b = BytesMut::with_capacity(52);
        let stream = match self {
            ReplayReply::Retransmission(m) => return m.encode_version(version),
            ReplayReply::Join {
                publisher,
                epoch,
                stream,
                kind_code,
                join_at,
                newest,
            } => {
                put_prefix(&mut b, msg_type::JOIN, 0, *kind_code, 0);
                put_reply_body(&mut b, publisher, *epoch, *join_at, *newest);
                stream
            }
            ReplayReply::End {
                publisher,
                epoch,
                stream,
                from,
                to,
            } => {
                put_prefix(&mut b, msg_type::END, 0, 0, 0);
                put_reply_body(&mut b, publisher, *epoch, *from, *to);
                stream
            }
            ReplayReply::Gap {
                publisher,
                epoch,
                stream,
                from,
                to,
            } => {
                put_prefix(&mut b, msg_type::GAP, 0, 0, 0);
                put_reply_body(&mut b, publisher, *epoch, *from, *to);
                stream
            }
            ReplayReply::Busy {
                request,
                retry_after_ms,
            } => {
                put_prefix(&mut b, msg_type::BUSY, 0, request.kind.code(), 0);
                let (a, bb) = request.kind.ab();
                put_reply_body(&mut b, &request.publisher, request.epoch, a, bb);
                b.put_u32(*retry_after_ms);
                &request.stream
            }
        };
        vec![stream.clone(), b.freeze()]
    }

    /// Decodes from ZMTP frames received by the DEALER.
    pub fn decode(frames: &[Bytes]) -> Result<Self, WireError> {
        if frames.len() < 2 {
            return Err(WireError::MissingFrame);
        }
        validate_stream_name(&frames[0])?;
        let stream = frames[0].clone();
        let mut r = Reader::new(&frames[1]);
        let p = read_prefix(&mut r)?;
        if p.ty == msg_type::DATA {
            return DataMessage::decode(frames).map(ReplayReply::Retransmission);
        }
        if !matches!(
            p.ty,
            msg_type::JOIN | msg_type::END | msg_type::GAP | msg_type::BUSY
        ) {
            return Err(if p.ty <= msg_type::EVENT {
                WireError::UnexpectedType(p.ty)
            } else {
                WireError::UnknownType(p.ty)
            });
        }
        let publisher = r.id()?;
        let epoch = r.u64()?;
        let a = r.u64()?;
        let b = r.u64()?;
        Ok(match p.ty {
            msg_type::JOIN => ReplayReply::Join {
                publisher,
                epoch,
                stream,
                kind_code: p.sub,
                join_at: a,
                newest: b,
            },
            msg_type::END | msg_type::GAP => {
                if b < a {
                    return Err(WireError::InvalidField("range to < from"));
                }
                if p.ty == msg_type::END {
                    ReplayReply::End {
                        publisher,
                        epoch,
                        stream,
                        from: a,
                        to: b,
                    }
                } else {
                    ReplayReply::Gap {
                        publisher,
                        epoch,
                        stream,
                        from: a,
                        to: b,
                    }
                }
            }
            _ => {
                let retry_after_ms = r.u32()?;
                ReplayReply::Busy {
                    request: ReplayRequest {
                        publisher,
                        epoch,
                        stream,
                        kind: RequestKind::from_code(p.sub, a, b)?,
                    },
                    retry_after_ms,
                }
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery

/// A named endpoint of a node (`"data"` = PUB, `"replay"` = ROUTER, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Role name (≤ 255 bytes UTF-8).
    pub name: String,
    /// ZeroMQ endpoint URI (≤ 65 535 bytes UTF-8).
    pub uri: String,
}

impl Endpoint {
    /// Convenience constructor.
    pub fn new(name: impl Into<String>, uri: impl Into<String>) -> Self {
        Endpoint {
            name: name.into(),
            uri: uri.into(),
        }
    }
}

fn put_endpoints(b: &mut BytesMut, eps: &[Endpoint]) -> Result<(), WireError> {
    if eps.len() > u8::MAX as usize {
        return Err(WireError::TooLarge("endpoint count"));
    }
    b.put_u8(eps.len() as u8);
    for e in eps {
        if e.name.len() > u8::MAX as usize || e.uri.len() > u16::MAX as usize {
            return Err(WireError::TooLarge("endpoint"));
        }
        b.put_u8(e.name.len() as u8);
        b.put_slice(e.name.as_bytes());
        b.put_u16(e.uri.len() as u16);
        b.put_slice(e.uri.as_bytes());
    }
    Ok(())
}

fn read_endpoints(r: &mut Reader<'_>) -> Result<Vec<Endpoint>, WireError> {
    let n = r.u8()? as usize;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.string_u8()?;
        let uri = r.string_u16()?;
        v.push(Endpoint { name, uri });
    }
    Ok(v)
}

/// State of a node in a lease table or list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Registered with a live lease.
    Alive,
    /// Unregistered or expired (tombstone).
    Left,
}

/// One node as listed by a discovery instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Node id.
    pub id: NodeId,
    /// Incarnation (bumped by the node on every restart).
    pub incarnation: u64,
    /// Alive or left.
    pub state: NodeState,
    /// Remaining lease in ms (0 when left).
    pub lease_left_ms: u32,
    /// Whom to connect to.
    pub endpoints: Vec<Endpoint>,
}

fn put_record(b: &mut BytesMut, n: &NodeRecord) -> Result<(), WireError> {
    b.put_slice(&n.id.0);
    b.put_u64(n.incarnation);
    b.put_u8(match n.state {
        NodeState::Alive => 1,
        NodeState::Left => 2,
    });
    b.put_u32(n.lease_left_ms);
    put_endpoints(b, &n.endpoints)
}

fn read_record(r: &mut Reader<'_>) -> Result<NodeRecord, WireError> {
    let id = r.id()?;
    let incarnation = r.u64()?;
    let state = match r.u8()? {
        1 => NodeState::Alive,
        2 => NodeState::Left,
        code => {
            return Err(WireError::UnknownCode {
                what: "node state",
                code,
            })
        }
    };
    Ok(NodeRecord {
        id,
        incarnation,
        state,
        lease_left_ms: r.u32()?,
        endpoints: read_endpoints(r)?,
    })
}

/// ACK status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckStatus {
    /// Accepted.
    Ok,
    /// The incarnation is older than (or a left copy of) the one known: rejected.
    Stale,
    /// The node is not registered (or a newer incarnation is renewing): REGISTER again.
    Unknown,
    /// Malformed or invalid request.
    Bad,
}

/// Why a node left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaveReason {
    /// Not a leave event.
    None,
    /// The node unregistered.
    Unregistered,
    /// Its lease expired.
    Expired,
    /// A newer incarnation registered.
    Superseded,
}

/// Discovery EVENT kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A node (incarnation) joined.
    Join,
    /// A node (incarnation) left.
    Leave(LeaveReason),
}

/// Every discovery message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryMessage {
    /// Node → instance: register under a lease.
    Register {
        /// Node id.
        id: NodeId,
        /// Incarnation.
        incarnation: u64,
        /// Requested lease.
        lease_ms: u32,
        /// Whom to connect to.
        endpoints: Vec<Endpoint>,
    },
    /// Node → instance: renew the lease.
    Renew {
        /// Node id.
        id: NodeId,
        /// Incarnation.
        incarnation: u64,
    },
    /// Node → instance: graceful leave.
    Unregister {
        /// Node id.
        id: NodeId,
        /// Incarnation.
        incarnation: u64,
    },
    /// Client → instance: list all nodes.
    List {
        /// Echoed in the reply.
        request_id: u64,
    },
    /// Instance → node: answer to REGISTER/RENEW/UNREGISTER.
    Ack {
        /// Status.
        status: AckStatus,
        /// Node id.
        id: NodeId,
        /// Incarnation as known by the instance.
        incarnation: u64,
        /// Granted lease (0 if not OK).
        lease_ms: u32,
    },
    /// Instance → client: the node list.
    ListReply {
        /// Echo of the LIST request id.
        request_id: u64,
        /// The answering instance.
        instance: NodeId,
        /// Nodes, alive and tombstones.
        nodes: Vec<NodeRecord>,
    },
    /// Instance → subscribers (PUB): join/leave.
    Event {
        /// Join or leave.
        kind: EventKind,
        /// The instance publishing it.
        instance: NodeId,
        /// The node.
        node: NodeRecord,
    },
}

impl DiscoveryMessage {
    /// Encodes to one frame.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        let mut b = BytesMut::with_capacity(64);
        match self {
            DiscoveryMessage::Register {
                id,
                incarnation,
                lease_ms,
                endpoints,
            } => {
                put_prefix(&mut b, msg_type::REGISTER, 0, 0, 0);
                b.put_slice(&id.0);
                b.put_u64(*incarnation);
                b.put_u32(*lease_ms);
                put_endpoints(&mut b, endpoints)?;
            }
            DiscoveryMessage::Renew { id, incarnation } => {
                put_prefix(&mut b, msg_type::RENEW, 0, 0, 0);
                b.put_slice(&id.0);
                b.put_u64(*incarnation);
            }
            DiscoveryMessage::Unregister { id, incarnation } => {
                put_prefix(&mut b, msg_type::UNREGISTER, 0, 0, 0);
                b.put_slice(&id.0);
                b.put_u64(*incarnation);
            }
            DiscoveryMessage::List { request_id } => {
                put_prefix(&mut b, msg_type::LIST, 0, 0, 0);
                b.put_u64(*request_id);
            }
            DiscoveryMessage::Ack {
                status,
                id,
                incarnation,
                lease_ms,
            } => {
                let s = match status {
                    AckStatus::Ok => 0,
                    AckStatus::Stale => 1,
                    AckStatus::Unknown => 2,
                    AckStatus::Bad => 3,
                };
                put_prefix(&mut b, msg_type::ACK, 0, s, 0);
                b.put_slice(&id.0);
                b.put_u64(*incarnation);
                b.put_u32(*lease_ms);
            }
            DiscoveryMessage::ListReply {
                request_id,
                instance,
                nodes,
            } => {
                if nodes.len() > u32::MAX as usize {
                    return Err(WireError::TooLarge("node count"));
                }
                put_prefix(&mut b, msg_type::LIST_REPLY, 0, 0, 0);
                b.put_u64(*request_id);
                b.put_slice(&instance.0);
                b.put_u32(nodes.len() as u32);
                for n in nodes {
                    put_record(&mut b, n)?;
                }
            }
            DiscoveryMessage::Event {
                kind,
                instance,
                node,
            } => {
                let (k, reason) = match kind {
                    EventKind::Join => (1, 0),
                    EventKind::Leave(r) => (
                        2,
                        match r {
                            LeaveReason::None => 0,
                            LeaveReason::Unregistered => 1,
                            LeaveReason::Expired => 2,
                            LeaveReason::Superseded => 3,
                        },
                    ),
                };
                put_prefix(&mut b, msg_type::EVENT, 0, k, reason);
                b.put_slice(&instance.0);
                put_record(&mut b, node)?;
            }
        }
        Ok(b.freeze())
    }

    /// Decodes one frame.
    pub fn decode(frame: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(frame);
        let p = read_prefix(&mut r)?;
        Ok(match p.ty {
            msg_type::REGISTER => DiscoveryMessage::Register {
                id: r.id()?,
                incarnation: r.u64()?,
                lease_ms: r.u32()?,
                endpoints: read_endpoints(&mut r)?,
            },
            msg_type::RENEW => DiscoveryMessage::Renew {
                id: r.id()?,
                incarnation: r.u64()?,
            },
            msg_type::UNREGISTER => DiscoveryMessage::Unregister {
                id: r.id()?,
                incarnation: r.u64()?,
            },
            msg_type::LIST => DiscoveryMessage::List {
                request_id: r.u64()?,
            },
            msg_type::ACK => DiscoveryMessage::Ack {
                status: match p.sub {
                    0 => AckStatus::Ok,
                    1 => AckStatus::Stale,
                    2 => AckStatus::Unknown,
                    3 => AckStatus::Bad,
                    code => {
                        return Err(WireError::UnknownCode {
                            what: "ack status",
                            code,
                        })
                    }
                },
                id: r.id()?,
                incarnation: r.u64()?,
                lease_ms: r.u32()?,
            },
            msg_type::LIST_REPLY => {
                let request_id = r.u64()?;
                let instance = r.id()?;
                let n = r.u32()? as usize;
                // Each record is at least 30 bytes: never trust the count for allocation.
                let mut nodes = Vec::with_capacity(n.min(frame.len() / 30 + 1));
                for _ in 0..n {
                    nodes.push(read_record(&mut r)?);
                }
                DiscoveryMessage::ListReply {
                    request_id,
                    instance,
                    nodes,
                }
            }
            msg_type::EVENT => {
                let kind = match (p.sub, p.sub2) {
                    (1, _) => EventKind::Join,
                    (2, 0) => EventKind::Leave(LeaveReason::None),
                    (2, 1) => EventKind::Leave(LeaveReason::Unregistered),
                    (2, 2) => EventKind::Leave(LeaveReason::Expired),
                    (2, 3) => EventKind::Leave(LeaveReason::Superseded),
                    (2, code) => {
                        return Err(WireError::UnknownCode {
                            what: "leave reason",
                            code,
                        })
                    }
                    (code, _) => {
                        return Err(WireError::UnknownCode {
                            what: "event kind",
                            code,
                        })
                    }
                };
                DiscoveryMessage::Event {
                    kind,
                    instance: r.id()?,
                    node: read_record(&mut r)?,
                }
            }
            t @ (msg_type::DATA..=msg_type::BUSY) => return Err(WireError::UnexpectedType(t)),
            t => return Err(WireError::UnknownType(t)),
        })
    }

    /// Encodes an EVENT as PUB frames `["\0RPDISC"][event]`.
    pub fn encode_event_frames(&self) -> Result<Vec<Bytes>, WireError> {
        Ok(vec![Bytes::from_static(DISCOVERY_TOPIC), self.encode()?])
    }
}

// ---------------------------------------------------------------------------------------------
// Durable cursor serialization

/// One entry of a durable subscriber cursor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CursorEntry {
    /// Publisher.
    pub publisher: PublisherId,
    /// Epoch.
    pub epoch: u64,
    /// Stream.
    pub stream: Bytes,
    /// Last seq handed to the application (message or gap end).
    pub last_delivered: u64,
}

/// Encodes cursor entries (spec section 8.1).
pub fn encode_cursor(entries: &[CursorEntry]) -> Result<Bytes, WireError> {
    if entries.len() > u32::MAX as usize {
        return Err(WireError::TooLarge("cursor entries"));
    }
    let mut b = BytesMut::with_capacity(12 + entries.len() * 40);
    put_prefix(&mut b, msg_type::CURSOR, 0, 0, 0);
    b.put_u32(entries.len() as u32);
    for e in entries {
        validate_stream_name(&e.stream)?;
        b.put_slice(&e.publisher.0);
        b.put_u64(e.epoch);
        b.put_u8(e.stream.len() as u8);
        b.put_slice(&e.stream);
        b.put_u64(e.last_delivered);
    }
    Ok(b.freeze())
}

/// Decodes cursor entries.
pub fn decode_cursor(buf: &[u8]) -> Result<Vec<CursorEntry>, WireError> {
    let mut r = Reader::new(buf);
    let p = read_prefix(&mut r)?;
    if p.ty != msg_type::CURSOR {
        return Err(WireError::UnexpectedType(p.ty));
    }
    let n = r.u32()? as usize;
    let mut v = Vec::with_capacity(n.min(buf.len() / 34 + 1));
    for _ in 0..n {
        v.push(CursorEntry {
            publisher: r.id()?,
            epoch: r.u64()?,
            stream: r.stream_name()?,
            last_delivered: r.u64()?,
        });
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    const PUB: Id128 = Id128([
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ]);

    #[test]
    fn data_header_matches_spec_example() {
        let h = DataHeader {
            flags: 0,
            publisher: PUB,
            epoch: 7,
            seq: 42,
            timestamp_ms: 1_763_800_000_000,
        };
        let e = h.encode();
        assert_eq!(
            hex(&e),
            "5250010100000000\
             00112233445566778899aabbccddeeff\
             0000000000000007\
             000000000000002a\
             0000019aaaac2600"
        );
        assert_eq!(e.len(), DATA_HEADER_LEN);
        assert_eq!(DataHeader::decode(&e).unwrap(), h);
        let rt = DataHeader {
            flags: FLAG_RETRANSMISSION,
            ..h
        };
        assert_eq!(rt.encode()[4], 1);
        assert!(DataHeader::decode(&rt.encode())
            .unwrap()
            .is_retransmission());
    }

    #[test]
    fn heartbeat_matches_spec_example() {
        let hb = Heartbeat {
            publisher: PUB,
            epoch: 7,
            timestamp_ms: 1_763_800_000_010,
            streams: vec![StreamMark {
                stream: Bytes::from_static(b"prices"),
                newest: 42,
                oldest: 1,
            }],
        };
        let f = hb.encode().unwrap();
        assert_eq!(&f[0][..], b"\0RPHB");
        assert_eq!(
            hex(&f[1]),
            "5250010200000000\
             00112233445566778899aabbccddeeff\
             0000000000000007\
             0000019aaaac260a\
             0001\
             06707269636573\
             000000000000002a\
             0000000000000001"
        );
        assert_eq!(f[1].len(), 65);
        match decode_data_channel(&f).unwrap() {
            DataChannelMessage::Heartbeat(h) => assert_eq!(h, hb),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replay_roundtrips() {
        let s = Bytes::from_static(b"s");
        for kind in [
            RequestKind::Range { from: 3, to: 9 },
            RequestKind::FromNow,
            RequestKind::FromOldest,
            RequestKind::FromSeq(17),
            RequestKind::LastN(5),
        ] {
            let req = ReplayRequest {
                publisher: PUB,
                epoch: 2,
                stream: s.clone(),
                kind,
            };
            assert_eq!(ReplayRequest::decode(&req.encode()).unwrap(), req);
            let busy = ReplayReply::Busy {
                request: req.clone(),
                retry_after_ms: 50,
            };
            let f = busy.encode();
            assert_eq!(f[1].len(), 52);
            assert_eq!(ReplayReply::decode(&f).unwrap(), busy);
        }
        let replies = [
            ReplayReply::Join {
                publisher: PUB,
                epoch: 2,
                stream: s.clone(),
                kind_code: 4,
                join_at: 5,
                newest: 9,
            },
            ReplayReply::End {
                publisher: PUB,
                epoch: 2,
                stream: s.clone(),
                from: 1,
                to: 4,
            },
            ReplayReply::Gap {
                publisher: PUB,
                epoch: 2,
                stream: s.clone(),
                from: 1,
                to: 1,
            },
            ReplayReply::Retransmission(DataMessage {
                stream: s.clone(),
                header: DataHeader {
                    flags: FLAG_RETRANSMISSION,
                    publisher: PUB,
                    epoch: 2,
                    seq: 3,
                    timestamp_ms: 4,
                },
                payload: vec![Bytes::from_static(b"a"), Bytes::new()],
            }),
        ];
        for r in replies {
            assert_eq!(ReplayReply::decode(&r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn discovery_and_cursor_roundtrip() {
        let rec = NodeRecord {
            id: PUB,
            incarnation: 3,
            state: NodeState::Alive,
            lease_left_ms: 9000,
            endpoints: vec![
                Endpoint::new("data", "tcp://10.0.0.1:5556"),
                Endpoint::new("replay", "tcp://10.0.0.1:5557"),
            ],
        };
        let msgs = vec![
            DiscoveryMessage::Register {
                id: PUB,
                incarnation: 3,
                lease_ms: 10_000,
                endpoints: rec.endpoints.clone(),
            },
            DiscoveryMessage::Renew {
                id: PUB,
                incarnation: 3,
            },
            DiscoveryMessage::Unregister {
                id: PUB,
                incarnation: 3,
            },
            DiscoveryMessage::List { request_id: 77 },
            DiscoveryMessage::Ack {
                status: AckStatus::Stale,
                id: PUB,
                incarnation: 4,
                lease_ms: 0,
            },
            DiscoveryMessage::ListReply {
                request_id: 77,
                instance: Id128([9; 16]),
                nodes: vec![rec.clone(), rec.clone()],
            },
            DiscoveryMessage::Event {
                kind: EventKind::Leave(LeaveReason::Expired),
                instance: Id128([9; 16]),
                node: rec.clone(),
            },
            DiscoveryMessage::Event {
                kind: EventKind::Join,
                instance: Id128([9; 16]),
                node: rec,
            },
        ];
        for m in msgs {
            assert_eq!(DiscoveryMessage::decode(&m.encode().unwrap()).unwrap(), m);
        }
        let cur = vec![CursorEntry {
            publisher: PUB,
            epoch: 1,
            stream: Bytes::from_static(b"x"),
            last_delivered: 99,
        }];
        assert_eq!(decode_cursor(&encode_cursor(&cur).unwrap()).unwrap(), cur);
    }

    #[test]
    fn version_and_magic_rejected() {
        let mut h = DataHeader {
            flags: 0,
            publisher: PUB,
            epoch: 1,
            seq: 1,
            timestamp_ms: 0,
        }
        .encode()
        .to_vec();
        h[2] = 3;
        assert_eq!(
            DataHeader::decode(&h),
            Err(WireError::UnsupportedVersion(3))
        );
        // §4: version 2 exists for DATA only; any other type of version 2 is ignored.
        let mut hb = Heartbeat {
            publisher: PUB,
            epoch: 1,
            timestamp_ms: 0,
            streams: Vec::new(),
        }
        .encode_body()
        .unwrap()
        .to_vec();
        hb[2] = DATA_VERSION_2;
        assert_eq!(
            Heartbeat::decode_body(&hb),
            Err(WireError::UnsupportedVersion(2))
        );
        h[0] = b'X';
        assert_eq!(DataHeader::decode(&h), Err(WireError::BadMagic));
        // Trailing bytes are ignored (forward-compatible extension).
        let mut h2 = DataHeader {
            flags: 0x80,
            publisher: PUB,
            epoch: 1,
            seq: 1,
            timestamp_ms: 0,
        }
        .encode()
        .to_vec();
        h2.extend_from_slice(b"future");
        assert_eq!(DataHeader::decode(&h2).unwrap().seq, 1);
        assert!(validate_stream_name(b"\0x").is_err());
        assert!(validate_stream_name(b"").is_err());
        assert!(validate_stream_name(&[b'a'; 256]).is_err());
    }

    /// The hex examples in `zmtp-spec/reliable-pub.md` decode to what the spec says.
    #[test]
    fn spec_hex_examples_decode() {
        let spec = include_str!("../../zmtp-spec/reliable-pub.md");
        let mut blocks = Vec::new();
        let mut cur: Option<Vec<u8>> = None;
        for line in spec.lines() {
            if line.trim() == "```" {
                match cur.take() {
                    Some(b) if !b.is_empty() => blocks.push(b),
                    Some(_) => {}
                    None => cur = Some(Vec::new()),
                }
                continue;
            }
            if let Some(b) = cur.as_mut() {
                let toks: Vec<&str> = line.split_whitespace().collect();
                if !toks.is_empty() && toks.iter().all(|t| t.len() == 2) {
                    for t in toks {
                        match u8::from_str_radix(t, 16) {
                            Ok(x) => b.push(x),
                            Err(_) => {
                                b.clear();
                                break;
                            }
                        }
                    }
                } else {
                    b.clear();
                    b.push(0xff); // not a hex block
                }
            }
        }
        let blocks: Vec<Vec<u8>> = blocks.into_iter().filter(|b| b[0] == b'R').collect();
        assert_eq!(
            blocks.len(),
            3,
            "data header, RPUB/2 data and heartbeat examples"
        );
        let h = DataHeader::decode(&blocks[0]).unwrap();
        assert_eq!((h.epoch, h.seq, h.timestamp_ms), (7, 42, 1_763_800_000_000));
        assert_eq!(h.publisher, PUB);
        // §5.1.1: the same header, version 2, with the payload "tick" in the same frame.
        let m = DataMessage::decode(&[
            Bytes::from_static(b"prices"),
            Bytes::copy_from_slice(&blocks[1]),
        ])
        .unwrap();
        assert_eq!(m.header, h);
        assert_eq!(m.payload, [Bytes::from_static(b"tick")]);
        let hb = Heartbeat::decode_body(&blocks[2]).unwrap();
        assert_eq!(hb.streams.len(), 1);
        assert_eq!(&hb.streams[0].stream[..], b"prices");
        assert_eq!((hb.streams[0].newest, hb.streams[0].oldest), (42, 1));
        assert_eq!(hb.encode_body().unwrap()[..], blocks[2][..]);
    }

    /// §5.1.1 (RPUB/2 DATA): the header and a small first payload frame share frame 2; an
    /// empty or large payload goes detached; both versions decode to the same message, by
    /// reference and owned, live and as RETX.
    #[test]
    fn data_v2_layout_spec_5_1_1() {
        let header = DataHeader {
            flags: 0,
            publisher: PUB,
            epoch: 7,
            seq: 42,
            timestamp_ms: 1_763_800_000_000,
        };
        let m = |payload: Vec<Bytes>| DataMessage {
            stream: Bytes::from_static(b"prices"),
            header,
            payload,
        };
        let tick = m(vec![Bytes::from_static(b"tick")]);
        let f = tick.encode_v2();
        assert_eq!(f.len(), 2);
        assert_eq!(
            hex(&f[1]),
            "5250020100000000\
             00112233445566778899aabbccddeeff\
             0000000000000007\
             000000000000002a\
             0000019aaaac2600\
             7469636b"
        );
        let large = Bytes::from(vec![7u8; ATTACH_MAX]);
        let cases = [
            (tick.clone(), 2, false),
            (m(vec![]), 2, true),
            (m(vec![Bytes::new()]), 2, false),
            (
                m(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]),
                3,
                false,
            ),
            (m(vec![large.clone()]), 3, true),
            (m(vec![large, Bytes::from_static(b"b")]), 4, true),
        ];
        for (msg, frames, detached) in cases {
            let f = msg.encode_v2();
            assert_eq!(f.len(), frames, "{msg:?}");
            assert_eq!(f[1][2], DATA_VERSION_2);
            assert_eq!(f[1][4] & FLAG_DETACHED != 0, detached, "{msg:?}");
            assert_eq!(DataMessage::decode(&f).unwrap(), msg);
            assert_eq!(DataMessage::decode_owned(f.clone()).unwrap(), msg);
            assert_eq!(
                decode_data_channel(&f),
                Ok(DataChannelMessage::Data(msg.clone()))
            );
            assert_eq!(DataMessage::decode(&msg.encode()).unwrap(), msg);
            let mut retx = msg.clone();
            retx.header.flags = FLAG_RETRANSMISSION;
            let r = ReplayReply::Retransmission(retx);
            let rf = r.encode_version(DATA_VERSION_2);
            assert_eq!(rf[1][4] & FLAG_RETRANSMISSION, FLAG_RETRANSMISSION);
            assert_eq!(ReplayReply::decode(&rf), Ok(r.clone()));
            assert_eq!(ReplayReply::decode(&r.encode()), Ok(r));
        }
        // A detached header frame's trailing bytes are ignored (§4), not payload.
        let mut f = m(vec![]).encode_v2();
        let mut h = f[1].to_vec();
        h.extend_from_slice(b"future");
        f[1] = Bytes::from(h);
        assert_eq!(DataMessage::decode(&f).unwrap(), m(vec![]));
        // A version-2 header frame shorter than 48 bytes is malformed.
        let short = [
            Bytes::from_static(b"prices"),
            tick.encode_v2()[1].slice(..47),
        ];
        assert!(DataMessage::decode(&short).is_err());
        assert!(DataMessage::decode_owned(short.to_vec()).is_err());
    }

    /// Decoders never panic: every truncation and many random mutations of valid messages.
    #[test]
    fn decoders_never_panic_on_garbage() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let hb = Heartbeat {
            publisher: PUB,
            epoch: 1,
            timestamp_ms: 1,
            streams: vec![StreamMark {
                stream: Bytes::from_static(b"ab"),
                newest: 1,
                oldest: 1,
            }],
        }
        .encode()
        .unwrap();
        let list = DiscoveryMessage::ListReply {
            request_id: 1,
            instance: PUB,
            nodes: vec![NodeRecord {
                id: PUB,
                incarnation: 1,
                state: NodeState::Left,
                lease_left_ms: 0,
                endpoints: vec![Endpoint::new("d", "tcp://x")],
            }],
        }
        .encode()
        .unwrap();
        let seeds: Vec<Bytes> = vec![hb[1].clone(), list, encode_cursor(&[]).unwrap()];
        for s in &seeds {
            for cut in 0..=s.len() {
                let f = s.slice(..cut);
                let _ = DiscoveryMessage::decode(&f);
                let _ = decode_cursor(&f);
                let _ = decode_data_channel(&[Bytes::from_static(b"t"), f.clone()]);
                let _ = ReplayReply::decode(&[Bytes::from_static(b"t"), f.clone()]);
                let _ = ReplayRequest::decode(&[Bytes::from_static(b"t"), f]);
            }
        }
        for _ in 0..20_000 {
            let base = &seeds[(rnd() % seeds.len() as u64) as usize];
            let mut v = base.to_vec();
            for _ in 0..(rnd() % 4 + 1) {
                let i = (rnd() % v.len() as u64) as usize;
                v[i] = rnd() as u8;
            }
            // Keep the magic/version sometimes so deeper paths are reached.
            if rnd() % 2 == 0 {
                v[..3].copy_from_slice(b"RP\x01");
            }
            let f = Bytes::from(v);
            let _ = DiscoveryMessage::decode(&f);
            let _ = decode_cursor(&f);
            let _ = decode_data_channel(&[Bytes::from_static(HEARTBEAT_TOPIC), f.clone()]);
            let _ = ReplayReply::decode(&[Bytes::from_static(b"t"), f.clone()]);
            let _ = ReplayRequest::decode(&[Bytes::from_static(b"t"), f]);
        }
        assert!(decode_data_channel(&[]).is_err());
    }
}
