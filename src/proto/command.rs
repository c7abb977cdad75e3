//! ZMTP commands (RFC 23 / RFC 37): READY, ERROR, SUBSCRIBE, CANCEL, PING, PONG.
//!
//! A command frame's body is `name-size (1 octet) name data`. [`Command::parse`] decodes such
//! a body, [`Command::encode_body`] produces one. The metadata of READY is encoded as a list of
//! `name-size (1 octet) name value-size (4 octets, big endian) value` properties
//! ([`encode_metadata`], [`parse_metadata`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::ProtoError;
use crate::Metadata;

/// Longest ERROR reason the wire format can carry (its length is one octet).
pub const MAX_ERROR_REASON: usize = 255;
/// Longest PING context RFC 37 allows; longer ones are truncated when parsed (as libzmq does).
pub const MAX_PING_CONTEXT: usize = 16;

/// A ZMTP command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `READY`: ends the NULL (and PLAIN/CURVE) handshake, carrying the sender's properties.
    Ready(Metadata),
    /// `ERROR`: the sender rejects the handshake; the reason is at most 255 bytes on the wire
    /// (longer reasons are truncated when encoded).
    Error(String),
    /// `SUBSCRIBE` (ZMTP 3.1): subscribe to messages starting with this prefix.
    Subscribe(Bytes),
    /// `CANCEL` (ZMTP 3.1): cancel a subscription.
    Cancel(Bytes),
    /// `PING` (ZMTP 3.1 heartbeat).
    Ping {
        /// How long the peer may wait for traffic before closing, in tenths of a second
        /// (0 = no timeout).
        ttl_deciseconds: u16,
        /// Opaque context (at most 16 bytes) that the PONG must echo.
        context: Bytes,
    },
    /// `PONG` (ZMTP 3.1 heartbeat reply).
    Pong {
        /// The context of the PING being answered.
        context: Bytes,
    },
    /// Any other command. libzmq ignores unknown commands; the caller should too.
    Unknown {
        /// The command name.
        name: Bytes,
        /// The bytes after the name.
        body: Bytes,
    },
}

const READY: &[u8] = b"READY";
const ERROR: &[u8] = b"ERROR";
const SUBSCRIBE: &[u8] = b"SUBSCRIBE";
const CANCEL: &[u8] = b"CANCEL";
const PING: &[u8] = b"PING";
const PONG: &[u8] = b"PONG";

impl Command {
    /// Parses the body of a command frame (everything after the frame header).
    ///
    /// Takes `Bytes` so that subscription prefixes, contexts and unknown bodies share the
    /// read buffer (zero-copy). Command names are matched exactly (case-sensitive).
    pub fn parse(body: Bytes) -> Result<Command, ProtoError> {
        let name_len = *body.first().ok_or(ProtoError::MalformedCommand)? as usize;
        if name_len == 0 || body.len() < 1 + name_len {
            return Err(ProtoError::MalformedCommand);
        }
        let name = body.slice(1..1 + name_len);
        let data = body.slice(1 + name_len..);
        Ok(match &name[..] {
            READY => Command::Ready(parse_metadata(&data)?),
            ERROR => {
                // error-reason = OCTET 0*255VCHAR. Trailing bytes are tolerated, as in libzmq.
                let len = *data.first().ok_or(ProtoError::MalformedCommand)? as usize;
                let reason = data.get(1..1 + len).ok_or(ProtoError::MalformedCommand)?;
                Command::Error(String::from_utf8_lossy(reason).into_owned())
            }
            SUBSCRIBE => Command::Subscribe(data),
            CANCEL => Command::Cancel(data),
            PING => {
                let ttl = data.get(..2).ok_or(ProtoError::MalformedCommand)?;
                let ttl_deciseconds = u16::from_be_bytes([ttl[0], ttl[1]]);
                let end = data.len().min(2 + MAX_PING_CONTEXT);
                Command::Ping {
                    ttl_deciseconds,
                    context: data.slice(2..end),
                }
            }
            PONG => Command::Pong { context: data },
            _ => Command::Unknown { name, body: data },
        })
    }

    /// The command name as it appears on the wire (`b"READY"`, ...).
    pub fn name(&self) -> &[u8] {
        match self {
            Command::Ready(_) => READY,
            Command::Error(_) => ERROR,
            Command::Subscribe(_) => SUBSCRIBE,
            Command::Cancel(_) => CANCEL,
            Command::Ping { .. } => PING,
            Command::Pong { .. } => PONG,
            Command::Unknown { name, .. } => name,
        }
    }

    /// The command name as text (lossy), for error messages and logs.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(self.name()).into_owned()
    }

    /// Length in bytes of the body [`Command::encode_body`] produces.
    pub fn body_len(&self) -> usize {
        let name = 1 + self.name().len().min(255);
        name + match self {
            Command::Ready(md) => metadata_len(md),
            Command::Error(reason) => 1 + truncated_reason(reason).len(),
            Command::Subscribe(b) | Command::Cancel(b) => b.len(),
            Command::Ping { context, .. } => 2 + context.len(),
            Command::Pong { context } => context.len(),
            Command::Unknown { body, .. } => body.len(),
        }
    }

    /// Appends the command's body (`name-size name data`, without frame header) to `out`.
    ///
    /// An ERROR reason longer than 255 bytes is truncated (at a character boundary); an
    /// unknown command's name longer than 255 bytes is truncated to 255.
    pub fn encode_body(&self, out: &mut BytesMut) {
        out.reserve(self.body_len());
        let name = self.name();
        let name = &name[..name.len().min(255)];
        out.put_u8(name.len() as u8);
        out.put_slice(name);
        match self {
            Command::Ready(md) => encode_metadata(md, out),
            Command::Error(reason) => {
                let r = truncated_reason(reason);
                out.put_u8(r.len() as u8);
                out.put_slice(r.as_bytes());
            }
            Command::Subscribe(b) | Command::Cancel(b) => out.put_slice(b),
            Command::Ping {
                ttl_deciseconds,
                context,
            } => {
                out.put_u16(*ttl_deciseconds);
                out.put_slice(context);
            }
            Command::Pong { context } => out.put_slice(context),
            Command::Unknown { body, .. } => out.put_slice(body),
        }
    }
}

fn truncated_reason(reason: &str) -> &str {
    if reason.len() <= MAX_ERROR_REASON {
        return reason;
    }
    let mut end = MAX_ERROR_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

fn metadata_len(md: &Metadata) -> usize {
    md.iter()
        .map(|(n, v)| 1 + n.len().min(255) + 4 + v.len())
        .sum()
}

/// Appends `md` in the ZMTP metadata wire format: for each property, in order,
/// `name-size (u8) name value-size (u32 big endian) value`.
///
/// Names longer than 255 bytes (invalid per RFC 23) are truncated to 255.
pub fn encode_metadata(md: &Metadata, out: &mut BytesMut) {
    out.reserve(metadata_len(md));
    for (name, value) in md.iter() {
        let name = &name.as_bytes()[..name.len().min(255)];
        out.put_u8(name.len() as u8);
        out.put_slice(name);
        // A value of 4 GiB or more cannot be represented; properties are tiny in practice.
        out.put_u32(u32::try_from(value.len()).unwrap_or(u32::MAX));
        out.put_slice(value);
    }
}

/// Parses ZMTP metadata (the body of READY after its name, or of a PLAIN/CURVE command).
///
/// Errors with [`ProtoError::MalformedMetadata`] if a name or value runs past the end, if a
/// name is empty, or if a name is not UTF-8 (RFC 23 restricts names to ASCII letters, digits
/// and `-_.+`). Names are case-insensitive; a repeated name replaces the earlier value.
pub fn parse_metadata(mut data: &[u8]) -> Result<Metadata, ProtoError> {
    let mut md = Metadata::new();
    while let Some((&name_len, rest)) = data.split_first() {
        let name_len = name_len as usize;
        if name_len == 0 || rest.len() < name_len {
            return Err(ProtoError::MalformedMetadata);
        }
        let (name, rest) = rest.split_at(name_len);
        let name = std::str::from_utf8(name).map_err(|_| ProtoError::MalformedMetadata)?;
        if rest.len() < 4 {
            return Err(ProtoError::MalformedMetadata);
        }
        let (len, rest) = rest.split_at(4);
        let value_len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if rest.len() < value_len {
            return Err(ProtoError::MalformedMetadata);
        }
        let (value, rest) = rest.split_at(value_len);
        md.insert(name, Bytes::copy_from_slice(value));
        data = rest;
    }
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::parse_hex;

    fn round_trip(cmd: &Command) -> Command {
        let mut out = BytesMut::new();
        cmd.encode_body(&mut out);
        assert_eq!(out.len(), cmd.body_len());
        Command::parse(out.freeze()).unwrap()
    }

    #[test]
    fn commands_round_trip() {
        let mut md = Metadata::new();
        md.insert("Socket-Type", Bytes::from_static(b"DEALER"));
        md.insert("Identity", Bytes::from_static(b"abc"));
        md.insert("X-Empty", Bytes::new());
        let cmds = [
            Command::Ready(md),
            Command::Ready(Metadata::new()),
            Command::Error("Invalid socket type".into()),
            Command::Error(String::new()),
            Command::Subscribe(Bytes::from_static(b"topic")),
            Command::Subscribe(Bytes::new()),
            Command::Cancel(Bytes::from_static(b"topic")),
            Command::Ping {
                ttl_deciseconds: 300,
                context: Bytes::from_static(b"ctx"),
            },
            Command::Ping {
                ttl_deciseconds: 0,
                context: Bytes::new(),
            },
            Command::Pong {
                context: Bytes::from_static(b"ctx"),
            },
            Command::Unknown {
                name: Bytes::from_static(b"HELLO"),
                body: Bytes::from_static(b"\x00\x01"),
            },
        ];
        for cmd in &cmds {
            assert_eq!(&round_trip(cmd), cmd);
        }
    }

    #[test]
    fn long_error_reason_truncated_at_char_boundary() {
        let reason = "é".repeat(200); // 400 bytes
        match round_trip(&Command::Error(reason)) {
            Command::Error(r) => {
                assert_eq!(r.len(), 254);
                assert!(r.chars().all(|c| c == 'é'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_commands() {
        let bad: &[&[u8]] = &[
            b"",                 // empty body
            b"\x00",             // empty name
            b"\x05REA",          // name past end
            b"\x05ERROR",        // no reason length
            b"\x05ERROR\x05abc", // reason past end
            b"\x04PING",         // no ttl
            b"\x04PING\x01",     // half a ttl
        ];
        for b in bad {
            assert_eq!(
                Command::parse(Bytes::copy_from_slice(b)),
                Err(ProtoError::MalformedCommand),
                "{b:?}"
            );
        }
    }

    #[test]
    fn malformed_metadata() {
        let bad: &[&[u8]] = &[
            b"\x05READY\x0bSocket-Type",                          // no value length
            b"\x05READY\x0bSocket-Type\x00\x00\x00",              // short value length
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x05PUS",       // value past end
            b"\x05READY\x0cSocket-Type",                          // name past end
            b"\x05READY\xffSocket-Type\x00\x00\x00\x04PUSH",      // name length 255 past end
            b"\x05READY\x0bSocket-Type\xff\xff\xff\xffPUSH",      // value length 4G
            b"\x05READY\x00\x00\x00\x00\x00",                     // empty name
            b"\x05READY\x02\xff\xfe\x00\x00\x00\x00",             // name not UTF-8
            b"\x05READY\x0bSocket-Type\x00\x00\x00\x04PUSH\x01X", // trailing junk
        ];
        for b in bad {
            assert_eq!(
                Command::parse(Bytes::copy_from_slice(b)),
                Err(ProtoError::MalformedMetadata),
                "{b:?}"
            );
        }
    }

    #[test]
    fn error_reason_trailing_bytes_tolerated() {
        // As libzmq: only the announced reason length is read.
        let cmd = Command::parse(Bytes::from_static(b"\x05ERROR\x02nojunk")).unwrap();
        assert_eq!(cmd, Command::Error("no".into()));
        let cmd = Command::parse(Bytes::from_static(b"\x05ERROR\x00")).unwrap();
        assert_eq!(cmd, Command::Error(String::new()));
    }

    #[test]
    fn unknown_command_kept() {
        let cmd = Command::parse(Bytes::from_static(b"\x05HELLO\x01\x02\x03")).unwrap();
        assert_eq!(
            cmd,
            Command::Unknown {
                name: Bytes::from_static(b"HELLO"),
                body: Bytes::from_static(b"\x01\x02\x03"),
            }
        );
        // Names are case-sensitive: "ready" is not READY.
        let cmd = Command::parse(Bytes::from_static(b"\x05ready")).unwrap();
        assert!(matches!(cmd, Command::Unknown { .. }));
        assert_eq!(cmd.name_lossy(), "ready");
    }

    #[test]
    fn ping_context_truncated_to_16() {
        let mut body = b"\x04PING\x00\x0a".to_vec();
        body.extend_from_slice(&[7u8; 20]);
        match Command::parse(Bytes::from(body)).unwrap() {
            Command::Ping {
                ttl_deciseconds,
                context,
            } => {
                assert_eq!(ttl_deciseconds, 10);
                assert_eq!(&context[..], &[7u8; 16]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metadata_vector_and_duplicates() {
        let data = parse_hex("0b 536f636b65742d54797065 00000004 50555348  02 5821 00000000");
        let md = parse_metadata(&data).unwrap();
        assert_eq!(md.get_str("socket-type"), Some("PUSH"));
        assert_eq!(md.get("X!").map(|v| v.len()), Some(0));
        let mut out = BytesMut::new();
        encode_metadata(&md, &mut out);
        assert_eq!(&out[..], &data[..]);
        let dup = parse_hex("01 41 00000001 31 01 61 00000001 32");
        let md = parse_metadata(&dup).unwrap();
        assert_eq!(md.len(), 1);
        assert_eq!(md.get_str("A"), Some("2"));
    }
}
