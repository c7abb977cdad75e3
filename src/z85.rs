//! Z85: the printable encoding of binary data defined by
//! [ZeroMQ RFC 32](https://rfc.zeromq.org/spec/32/), used for CURVE keys in text form.
//!
//! Every 4 bytes of input, read as a big-endian 32-bit number, become 5 characters of an
//! 85-character alphabet (most significant digit first), so encoded text is 25% longer than
//! the data. The API matches `zmq::z85_encode` / `zmq::z85_decode` of the `zmq` crate 0.10,
//! error types included, so code written against that crate compiles unchanged.
//!
//! Unlike the `zmq` crate (which ignores libzmq's return value), [`z85_decode`] rejects text
//! that is not valid Z85: characters outside the alphabet and 5-character groups whose value
//! does not fit in 32 bits are reported as [`DecodeError::InvalidChar`] and
//! [`DecodeError::Overflow`] instead of producing garbage.
//!
//! ```
//! use ferromq::{z85_decode, z85_encode};
//!
//! let data = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
//! assert_eq!(z85_encode(&data).unwrap(), "HelloWorld");
//! assert_eq!(z85_decode("HelloWorld").unwrap(), data);
//! ```

use std::error::Error as StdError;
use std::ffi::{CString, NulError};
use std::fmt;
use std::string::FromUtf8Error;

/// The Z85 alphabet of RFC 32: the digit of value `i` is `ALPHABET[i]`.
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Marks bytes that are not Z85 digits in [`DECODE`].
const INVALID: u8 = 0xFF;

/// Byte -> digit value, or [`INVALID`].
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Errors that can occur while encoding Z85 (same variants as `zmq::EncodeError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The input length was not a multiple of 4.
    BadLength,
    /// The encoded bytes were not valid UTF-8. Kept for compatibility with the `zmq` crate:
    /// the Z85 alphabet is ASCII, so [`z85_encode`] never returns it.
    FromUtf8Error(FromUtf8Error),
}

impl From<FromUtf8Error> for EncodeError {
    fn from(err: FromUtf8Error) -> Self {
        EncodeError::FromUtf8Error(err)
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BadLength => write!(f, "Invalid data length. Should be multiple of 4."),
            EncodeError::FromUtf8Error(e) => write!(f, "UTF8 conversion error: {e}"),
        }
    }
}

impl StdError for EncodeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            EncodeError::BadLength => None,
            EncodeError::FromUtf8Error(e) => Some(e),
        }
    }
}

/// Errors that can occur while decoding Z85 (the variants of `zmq::DecodeError`, plus
/// [`InvalidChar`](DecodeError::InvalidChar) and [`Overflow`](DecodeError::Overflow)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input string's length (in bytes) was not a multiple of 5.
    BadLength,
    /// The input string had an embedded NUL byte.
    NulError(NulError),
    /// A byte of the input is not a character of the Z85 alphabet.
    InvalidChar {
        /// Byte offset of the offending byte in the input.
        position: usize,
        /// The offending byte (for a non-ASCII character, its first UTF-8 byte).
        byte: u8,
    },
    /// A 5-character group encodes a value above `u32::MAX` (such as `"%%%%%"`).
    Overflow {
        /// Byte offset of the group's first character in the input.
        position: usize,
    },
}

impl From<NulError> for DecodeError {
    fn from(err: NulError) -> Self {
        DecodeError::NulError(err)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadLength => write!(f, "Invalid data length. Should be multiple of 5."),
            DecodeError::NulError(e) => write!(f, "Nul byte error: {e}"),
            DecodeError::InvalidChar { position, byte } => write!(
                f,
                "Invalid Z85 character (byte {byte:#04x}) at offset {position}."
            ),
            DecodeError::Overflow { position } => {
                write!(f, "Z85 group at offset {position} does not fit in 32 bits.")
            }
        }
    }
}

impl StdError for DecodeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            DecodeError::NulError(e) => Some(e),
            _ => None,
        }
    }
}

/// Encodes binary data as Z85 printable text (RFC 32).
///
/// The input length must be a multiple of 4 (else [`EncodeError::BadLength`]); the result
/// has `data.len() / 4 * 5` characters.
///
/// ```
/// assert_eq!(ferromq::z85_encode(&[0, 0, 0, 0]).unwrap(), "00000");
/// assert!(ferromq::z85_encode(&[1, 2, 3]).is_err());
/// ```
pub fn z85_encode(data: &[u8]) -> Result<String, EncodeError> {
    if data.len() % 4 != 0 {
        return Err(EncodeError::BadLength);
    }
    let mut out = Vec::with_capacity(data.len() / 4 * 5);
    for chunk in data.chunks_exact(4) {
        let mut value = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let mut group = [0u8; 5];
        for digit in group.iter_mut().rev() {
            *digit = ALPHABET[(value % 85) as usize];
            value /= 85;
        }
        out.extend_from_slice(&group);
    }
    Ok(String::from_utf8(out)?)
}

/// Decodes Z85 printable text (RFC 32) into binary data.
///
/// The input length must be a multiple of 5 (else [`DecodeError::BadLength`]); the result
/// has `data.len() / 5 * 4` bytes. Checks are made in the order of the `zmq` crate: length,
/// then embedded NUL ([`DecodeError::NulError`]), then characters outside the alphabet
/// ([`DecodeError::InvalidChar`]) and groups above `u32::MAX` ([`DecodeError::Overflow`]).
///
/// ```
/// use ferromq::{z85_decode, DecodeError};
///
/// assert_eq!(z85_decode("00000").unwrap(), [0, 0, 0, 0]);
/// assert_eq!(z85_decode("%nSc0").unwrap(), [0xFF; 4]);
/// assert!(matches!(z85_decode("%%%%%"), Err(DecodeError::Overflow { position: 0 })));
/// assert!(matches!(z85_decode("abc"), Err(DecodeError::BadLength)));
/// ```
pub fn z85_decode(data: &str) -> Result<Vec<u8>, DecodeError> {
    let bytes = data.as_bytes();
    if bytes.len() % 5 != 0 {
        return Err(DecodeError::BadLength);
    }
    if bytes.contains(&0) {
        if let Err(e) = CString::new(bytes) {
            return Err(DecodeError::NulError(e));
        }
    }
    let mut out = Vec::with_capacity(bytes.len() / 5 * 4);
    for (group_index, group) in bytes.chunks_exact(5).enumerate() {
        let start = group_index * 5;
        let mut value: u64 = 0;
        for (i, &byte) in group.iter().enumerate() {
            let digit = DECODE[byte as usize];
            if digit == INVALID {
                return Err(DecodeError::InvalidChar {
                    position: start + i,
                    byte,
                });
            }
            value = value * 85 + u64::from(digit);
        }
        // 85^5 - 1 < 2^33, so `value` cannot overflow a u64 but may exceed a u32.
        let value = u32::try_from(value).map_err(|_| DecodeError::Overflow { position: start })?;
        out.extend_from_slice(&value.to_be_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64: a tiny deterministic PRNG for tests.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }

    const HELLO: [u8; 8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];

    #[test]
    fn rfc32_test_vector() {
        assert_eq!(z85_encode(&HELLO).unwrap(), "HelloWorld");
        assert_eq!(z85_decode("HelloWorld").unwrap(), HELLO);
    }

    #[test]
    fn zmq_crate_vector_round_trips() {
        // The 32-byte key from the zmq crate's own z85 test.
        let text = "/AB8cGJ*-$lEbr2=TW$Q?i7:)<?G/4zr-hjppA3d";
        let bytes = z85_decode(text).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_eq!(z85_encode(&bytes).unwrap(), text);
    }

    #[test]
    fn empty_and_extremes() {
        assert_eq!(z85_encode(&[]).unwrap(), "");
        assert_eq!(z85_decode("").unwrap(), Vec::<u8>::new());
        assert_eq!(z85_encode(&[0; 4]).unwrap(), "00000");
        assert_eq!(z85_encode(&[0xFF; 4]).unwrap(), "%nSc0");
        assert_eq!(z85_decode("%nSc0").unwrap(), [0xFF; 4]);
        // "%nSc1" is u32::MAX + 1: the smallest overflowing group.
        assert_eq!(
            z85_decode("%nSc1"),
            Err(DecodeError::Overflow { position: 0 })
        );
    }

    #[test]
    fn every_digit_decodes_to_its_value() {
        for (i, &c) in ALPHABET.iter().enumerate() {
            let text: String = ['0', '0', '0', '0', c as char].iter().collect();
            assert_eq!(z85_decode(&text).unwrap(), (i as u32).to_be_bytes());
        }
        let distinct: std::collections::HashSet<u8> = ALPHABET.iter().copied().collect();
        assert_eq!(distinct.len(), 85);
    }

    #[test]
    fn random_round_trips() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..2000 {
            let len = (rng.next() % 64) as usize * 4;
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let text = z85_encode(&data).unwrap();
            assert_eq!(text.len(), len / 4 * 5);
            assert!(text.bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(z85_decode(&text).unwrap(), data);
        }
    }

    #[test]
    fn random_text_never_panics_and_valid_groups_round_trip() {
        let mut rng = Rng(12345);
        for _ in 0..5000 {
            let len = (rng.next() % 8) as usize * 5;
            let text: String = (0..len)
                .map(|_| ALPHABET[(rng.next() % 85) as usize] as char)
                .collect();
            match z85_decode(&text) {
                Ok(bytes) => assert_eq!(z85_encode(&bytes).unwrap(), text),
                Err(DecodeError::Overflow { position }) => assert_eq!(position % 5, 0),
                Err(e) => panic!("unexpected error {e:?} for {text:?}"),
            }
        }
        // Arbitrary bytes (valid UTF-8 or not) never panic.
        for _ in 0..5000 {
            let len = (rng.next() % 16) as usize;
            let raw: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let text = String::from_utf8_lossy(&raw);
            let _ = z85_decode(&text);
        }
    }

    #[test]
    fn encode_bad_length() {
        for len in [1, 2, 3, 5, 6, 7, 9, 31, 33] {
            assert_eq!(z85_encode(&vec![0; len]), Err(EncodeError::BadLength));
        }
        let err = z85_encode(b"\x01\x01\x01\x01\x01").unwrap_err();
        assert!(matches!(err, EncodeError::BadLength));
        assert_eq!(
            err.to_string(),
            "Invalid data length. Should be multiple of 4."
        );
    }

    #[test]
    fn decode_bad_length() {
        for text in ["0", "0000", "000000", "HelloWorl", "/AB8"] {
            assert_eq!(z85_decode(text), Err(DecodeError::BadLength));
        }
        // The length is counted in bytes, like the zmq crate: "é" is 2 bytes.
        assert_eq!(z85_decode("éé"), Err(DecodeError::BadLength));
        assert_eq!(z85_decode("ééé"), Err(DecodeError::BadLength));
        assert_eq!(
            z85_decode("0éé"),
            Err(DecodeError::InvalidChar {
                position: 1,
                byte: 0xC3
            })
        );
        assert_eq!(
            DecodeError::BadLength.to_string(),
            "Invalid data length. Should be multiple of 5."
        );
    }

    #[test]
    fn decode_nul() {
        let err = z85_decode("/AB\x008").unwrap_err();
        match &err {
            DecodeError::NulError(e) => assert_eq!(e.nul_position(), 3),
            other => panic!("expected NulError, got {other:?}"),
        }
        assert!(err.source().is_some());
        assert!(err.to_string().starts_with("Nul byte error"));
        // NUL is reported before an invalid character that precedes it, like the zmq crate.
        assert!(matches!(
            z85_decode("~~~~\0"),
            Err(DecodeError::NulError(_))
        ));
    }

    #[test]
    fn decode_invalid_chars() {
        for (text, position, byte) in [
            ("Hello Worl", 5, b' '),
            ("~0000", 0, b'~'),
            ("0000\"", 4, b'"'),
            ("00000abcd,", 9, b','),
            ("0000\x7f", 4, 0x7F),
            ("'0000", 0, b'\''),
        ] {
            let err = z85_decode(text).unwrap_err();
            assert_eq!(err, DecodeError::InvalidChar { position, byte }, "{text:?}");
            assert!(err.to_string().contains(&position.to_string()));
        }
    }

    #[test]
    fn decode_overflow() {
        assert_eq!(
            z85_decode("%%%%%"),
            Err(DecodeError::Overflow { position: 0 })
        );
        assert_eq!(
            z85_decode("HelloWorld#####"),
            Err(DecodeError::Overflow { position: 10 })
        );
        assert!(z85_decode("%%%%%")
            .unwrap_err()
            .to_string()
            .contains("32 bits"));
    }

    #[test]
    fn error_conversions() {
        let nul = CString::new(vec![b'a', 0]).unwrap_err();
        assert!(matches!(DecodeError::from(nul), DecodeError::NulError(_)));
        let utf8 = String::from_utf8(vec![0xFF]).unwrap_err();
        let err = EncodeError::from(utf8);
        assert!(matches!(err, EncodeError::FromUtf8Error(_)));
        assert!(err.source().is_some());
        assert!(err.to_string().starts_with("UTF8 conversion error"));
        assert!(EncodeError::BadLength.source().is_none());
    }
}
