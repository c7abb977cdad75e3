//! The 64-byte ZMTP 3.x greeting (RFC 23 section "The Greeting", RFC 37).
//!
//! ```text
//! offset  size  content
//!      0     1  0xFF                 signature
//!      1     8  padding (zeros)      signature
//!      9     1  0x7F                 signature (bit 0 set: "versioned" ZMTP)
//!     10     1  major version (3)
//!     11     1  minor version (1; 0 for ZMTP 3.0)
//!     12    20  mechanism name, ASCII, zero padded ("NULL", "PLAIN", "CURVE")
//!     32     1  as-server (0 or 1)
//!     33    31  filler (zeros)
//! ```
//!
//! libzmq puts its routing-id length + 1 into the padding (a ZMTP 1.0 compatibility trick);
//! the padding is not significant and is ignored when parsing.

use super::ProtoError;

/// Size of a complete greeting.
pub const GREETING_LEN: usize = 64;
/// Size of the signature part of a greeting (enough to tell ZMTP 3.x from garbage).
pub const SIGNATURE_LEN: usize = 10;
/// Offset of the major version byte.
pub const MAJOR_OFFSET: usize = 10;
/// Offset of the minor version byte.
pub const MINOR_OFFSET: usize = 11;
/// Offset of the 20-byte mechanism field.
pub const MECHANISM_OFFSET: usize = 12;
/// Offset of the as-server byte.
pub const AS_SERVER_OFFSET: usize = 32;

/// The ZMTP version ferromq speaks (3.1).
pub const VERSION: (u8, u8) = (3, 1);

/// A ZMTP 3.x greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting {
    /// Major protocol version (3).
    pub major: u8,
    /// Minor protocol version (1 for ZMTP 3.1, 0 for 3.0).
    pub minor: u8,
    /// Security mechanism name, zero padded (`b"NULL\0\0..."`). See [`Greeting::mechanism_name`].
    pub mechanism: [u8; 20],
    /// Whether the sender acts as server for the security mechanism (false for NULL).
    pub as_server: bool,
}

/// Checks the first bytes of a peer greeting as they arrive (any prefix of it, up to the
/// major version byte) so that non-ZMTP or pre-3.0 peers are refused without waiting for 64
/// bytes (a ZMTP 2.0 peer never sends more than 12).
///
/// Errors: [`ProtoError::BadSignature`] if byte 0 is not `0xFF` or byte 9 has bit 0 clear;
/// [`ProtoError::UnsupportedVersion`] if the major version is below 3.
pub fn check_prefix(prefix: &[u8]) -> Result<(), ProtoError> {
    if let Some(&b) = prefix.first() {
        if b != 0xFF {
            return Err(ProtoError::BadSignature);
        }
    }
    if let Some(&b) = prefix.get(SIGNATURE_LEN - 1) {
        if b & 0x01 == 0 {
            return Err(ProtoError::BadSignature);
        }
    }
    if let Some(&major) = prefix.get(MAJOR_OFFSET) {
        if major < 3 {
            // Refused as soon as the major byte is in; before 3.0 the next byte is not a
            // minor version (ZMTP 2.0 puts the socket type there), so 0 is reported.
            return Err(ProtoError::UnsupportedVersion { major, minor: 0 });
        }
    }
    Ok(())
}

/// Builds the zero-padded 20-byte mechanism field for `name` (truncated to 20 bytes).
pub fn mechanism_field(name: &str) -> [u8; 20] {
    let mut field = [0u8; 20];
    let n = name.len().min(20);
    field[..n].copy_from_slice(&name.as_bytes()[..n]);
    field
}

impl Greeting {
    /// Our greeting for the NULL mechanism: version 3.1.
    pub fn null(as_server: bool) -> Self {
        Greeting {
            major: VERSION.0,
            minor: VERSION.1,
            mechanism: mechanism_field("NULL"),
            as_server,
        }
    }

    /// The 64 bytes on the wire.
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; GREETING_LEN];
        b[0] = 0xFF;
        b[SIGNATURE_LEN - 1] = 0x7F;
        b[MAJOR_OFFSET] = self.major;
        b[MINOR_OFFSET] = self.minor;
        b[MECHANISM_OFFSET..MECHANISM_OFFSET + 20].copy_from_slice(&self.mechanism);
        b[AS_SERVER_OFFSET] = u8::from(self.as_server);
        b
    }

    /// Parses a peer's greeting. Refuses bad signatures and versions below 3.0; accepts any
    /// later version (RFC 23: a peer MUST accept higher versions). The padding, the
    /// as-server byte's upper bits and the filler are not checked.
    pub fn parse(b: &[u8; 64]) -> Result<Greeting, ProtoError> {
        check_prefix(b)?;
        let mut mechanism = [0u8; 20];
        mechanism.copy_from_slice(&b[MECHANISM_OFFSET..MECHANISM_OFFSET + 20]);
        Ok(Greeting {
            major: b[MAJOR_OFFSET],
            minor: b[MINOR_OFFSET],
            mechanism,
            as_server: b[AS_SERVER_OFFSET] & 0x01 != 0,
        })
    }

    /// The mechanism name without its zero padding (`b"NULL"`).
    pub fn mechanism_name(&self) -> &[u8] {
        let end = self
            .mechanism
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.mechanism.len());
        let (name, padding) = self.mechanism.split_at(end);
        // RFC 37: the name is padded with zero bytes and compared as the whole field. A
        // field like "NULL\0X..." names no mechanism (libzmq refuses it too): return it
        // whole so that it matches none.
        if padding.iter().all(|&c| c == 0) {
            name
        } else {
            &self.mechanism
        }
    }

    /// The ZMTP 3.x minor version to speak with the sender of this greeting: 0 for a 3.0 peer,
    /// 1 for 3.1 and anything later (which must be backwards compatible).
    pub fn effective_minor(&self) -> u8 {
        if self.major == 3 {
            self.minor.min(1)
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::parse_hex;

    fn vector(text: &str) -> [u8; 64] {
        let v = parse_hex(text);
        v.as_slice().try_into().expect("64-byte greeting vector")
    }

    #[test]
    fn null_client_greeting_is_byte_exact() {
        let expected = vector(include_str!(
            "../../zmtp-spec/vectors/greeting-null-3.1-client.hex"
        ));
        assert_eq!(Greeting::null(false).encode(), expected);
        let g = Greeting::parse(&expected).unwrap();
        assert_eq!(g, Greeting::null(false));
        assert_eq!(g.mechanism_name(), b"NULL");
        let mut odd = g;
        odd.mechanism[6] = b'X';
        assert_ne!(
            odd.mechanism_name(),
            b"NULL",
            "GRT-4: the whole field is compared"
        );
        assert_eq!(g.effective_minor(), 1);
    }

    #[test]
    fn libzmq_greeting_parses() {
        // Captured from libzmq 4.3.4 (padding holds routing-id length + 1).
        let b = vector(include_str!(
            "../../zmtp-spec/vectors/greeting-libzmq-4.3.hex"
        ));
        let g = Greeting::parse(&b).unwrap();
        assert_eq!((g.major, g.minor), (3, 1));
        assert_eq!(g.mechanism_name(), b"NULL");
        assert!(!g.as_server);
    }

    #[test]
    fn zmtp_3_0_greeting_accepted() {
        let b = vector(include_str!(
            "../../zmtp-spec/vectors/greeting-null-3.0.hex"
        ));
        let g = Greeting::parse(&b).unwrap();
        assert_eq!((g.major, g.minor), (3, 0));
        assert_eq!(g.effective_minor(), 0);
    }

    #[test]
    fn later_versions_accepted() {
        let mut b = Greeting::null(true).encode();
        b[MINOR_OFFSET] = 7;
        assert_eq!(Greeting::parse(&b).unwrap().effective_minor(), 1);
        b[MAJOR_OFFSET] = 4;
        let g = Greeting::parse(&b).unwrap();
        assert!(g.as_server);
        assert_eq!(g.effective_minor(), 1);
    }

    #[test]
    fn zmtp_2_0_refused() {
        let v = parse_hex(include_str!(
            "../../zmtp-spec/vectors/greeting-2.0-refused.hex"
        ));
        assert_eq!(
            check_prefix(&v),
            Err(ProtoError::UnsupportedVersion { major: 1, minor: 0 })
        );
        assert_eq!(check_prefix(&v[..10]), Ok(()));
    }

    #[test]
    fn bad_signatures() {
        assert_eq!(check_prefix(b"G"), Err(ProtoError::BadSignature));
        assert_eq!(check_prefix(b"\xff"), Ok(()));
        // ZMTP 1.0: byte 9 bit 0 clear.
        let mut b = Greeting::null(false).encode();
        b[9] = 0x7E;
        assert_eq!(Greeting::parse(&b), Err(ProtoError::BadSignature));
        b[9] = 0x7F;
        b[0] = 0x00;
        assert_eq!(Greeting::parse(&b), Err(ProtoError::BadSignature));
    }
}
