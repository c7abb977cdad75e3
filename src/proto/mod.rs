//! Sans-IO ZMTP 3.1 protocol core: greeting, framing, commands and the NULL handshake.
//!
//! Nothing in this module touches sockets, threads or clocks: the engine feeds it the bytes it
//! read ([`Decoder::decode`], [`Handshake::handle_input`]) and writes out whatever it produced
//! ([`Encoder::chunks`] / [`Encoder::advance`]).
//!
//! Specifications: RFC 23 (ZMTP 3.0) and RFC 37 (ZMTP 3.1), <https://rfc.zeromq.org>.
//! Byte-exact test vectors live in `zmtp-spec/vectors/`.
//!
//! Every byte that comes from the network is untrusted: malformed input yields a
//! [`ProtoError`], never a panic, and frame sizes are checked against the configured maximum
//! message size before any memory is reserved for them.

pub mod codec;
pub mod command;
pub mod curve;
pub mod greeting;
pub mod handshake;
pub mod mechanism;
pub mod plain;
pub mod zap;

pub use codec::{Decoded, Decoder, Encoder, Frame, LargeBody};
pub use command::Command;
pub use curve::FrameCipher;
pub use greeting::Greeting;
pub use handshake::{Handshake, HandshakeConfig, HandshakeStatus, PeerInfo};
pub use zap::{Authenticator, MechanismConfig, SecurityConfig, ZapReply, ZapRequest};

use crate::SocketType;

/// Errors of the protocol layer.
///
/// All of them are fatal for the connection they happened on: the engine should flush any
/// pending output (the handshake may have queued an `ERROR` command) and close it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The peer's greeting does not start with a ZMTP 3.x signature (`0xFF`, 8 bytes padding,
    /// a byte with bit 0 set): it is not a ZMTP peer, or an unversioned ZMTP 1.0 one.
    #[error("invalid ZMTP greeting signature (not a ZMTP 3.x peer)")]
    BadSignature,
    /// The peer speaks a ZMTP version older than 3.0.
    #[error("unsupported ZMTP version {major}.{minor} (3.0 or later required)")]
    UnsupportedVersion {
        /// Major version the peer announced.
        major: u8,
        /// Minor version the peer announced (always 0 when the major version is below 3:
        /// the peer is refused as soon as the major byte is in).
        minor: u8,
    },
    /// The peer asked for a security mechanism ferromq does not implement.
    #[error("unsupported security mechanism {0:?}")]
    UnsupportedMechanism(String),
    /// The peer uses a different (known) security mechanism than this socket.
    #[error("security mechanism mismatch: we use {ours}, the peer uses {peer}")]
    MechanismMismatch {
        /// Our mechanism name.
        ours: String,
        /// The peer's mechanism name.
        peer: String,
    },
    /// A frame is larger than the configured maximum message size (`ZMQ_MAXMSGSIZE`), or
    /// announces a size that cannot be valid (more than `i64::MAX` bytes).
    #[error("frame of {size} bytes exceeds the maximum message size of {max} bytes")]
    MessageTooLarge {
        /// The size announced by the frame header.
        size: u64,
        /// The limit it was checked against.
        max: u64,
    },
    /// A frame's flags byte has reserved bits (3 to 7) set.
    #[error("invalid frame flags 0x{0:02x} (reserved bits set)")]
    InvalidFlags(u8),
    /// A command frame is empty, its name length runs past its end, or its body does not
    /// match the command's grammar.
    #[error("malformed command frame")]
    MalformedCommand,
    /// The metadata (properties) of a READY command is malformed.
    #[error("malformed metadata in READY command")]
    MalformedMetadata,
    /// A command frame has the MORE flag set.
    #[error("command frame with the MORE flag set")]
    CommandWithMore,
    /// The peer sent a command that is not valid at this point (the name is given).
    #[error("unexpected command {0:?}")]
    UnexpectedCommand(String),
    /// The peer sent a message frame before the handshake was complete.
    #[error("message frame received during the handshake")]
    UnexpectedMessage,
    /// The peer's socket type cannot talk to ours (RFC 37 compatibility table).
    #[error("incompatible socket types: ours is {ours}, the peer is {peer}")]
    IncompatibleSocketType {
        /// Our socket type.
        ours: SocketType,
        /// The peer's socket type.
        peer: SocketType,
    },
    /// The peer's READY command has no `Socket-Type` property.
    #[error("peer did not announce its socket type")]
    MissingSocketType,
    /// The peer's `Socket-Type` property names no known socket type.
    #[error("unknown peer socket type {0:?}")]
    UnknownSocketType(String),
    /// The peer rejected the handshake with an ERROR command (the reason is given).
    #[error("peer sent ERROR: {0}")]
    PeerError(String),
    /// The server refused the client's credentials (ZAP status and text, or why no
    /// authentication was possible).
    #[error("authentication failed: {0}")]
    AuthenticationFailed(String),
    /// A CURVE box did not open (wrong key, tampered or truncated ciphertext), or a cookie or
    /// vouch did not match.
    #[error("CURVE decryption or verification failed")]
    Cryptographic,
    /// A CURVE short nonce was not larger than the previous one from the same peer (replay
    /// or reordering), or our own nonces are exhausted.
    #[error("CURVE nonce replayed, reordered or exhausted")]
    InvalidNonce,
}

/// Parses a hex test vector: hex digit pairs, whitespace ignored, lines whose first non-blank
/// character is `#` are comments. Test helper shared by the modules of `proto`.
#[cfg(test)]
pub(crate) fn parse_hex(text: &str) -> Vec<u8> {
    let mut digits = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        for c in line.chars().filter(|c| !c.is_whitespace()) {
            digits.push(c.to_digit(16).expect("hex digit in vector") as u8);
        }
    }
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Tiny xorshift PRNG for the chunked-input tests (no dependencies).
#[cfg(test)]
pub(crate) struct XorShift(pub u64);

#[cfg(test)]
impl XorShift {
    /// Next pseudo-random value.
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Splits `data` into random chunks of 1 to `max` bytes.
    pub(crate) fn chunks<'a>(&mut self, data: &'a [u8], max: usize) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = (self.next() as usize % max + 1).min(rest.len());
            let (a, b) = rest.split_at(n);
            out.push(a);
            rest = b;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vector_file_is_valid_hex() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zmtp-spec/vectors");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "hex") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(!parse_hex(&text).is_empty(), "{}", path.display());
                count += 1;
            }
        }
        assert!(count >= 15, "only {count} vectors");
    }

    #[test]
    fn hex_parser_skips_comments_and_whitespace() {
        assert_eq!(
            parse_hex("# c\n 0a ff\n\t# x 12\nFF00"),
            [0x0a, 0xff, 0xff, 0x00]
        );
    }

    #[test]
    fn errors_display() {
        let e = ProtoError::IncompatibleSocketType {
            ours: SocketType::PUSH,
            peer: SocketType::PUSH,
        };
        assert_eq!(
            e.to_string(),
            "incompatible socket types: ours is PUSH, the peer is PUSH"
        );
        assert_eq!(
            ProtoError::PeerError("x".into()).to_string(),
            "peer sent ERROR: x"
        );
    }
}
