//! CURVE long-term key pairs (`zmq_curve_keypair`, `zmq_curve_public`), as in the `zmq`
//! crate 0.10: keys are raw 32-byte arrays; use [`z85_encode`](crate::z85_encode) for the
//! 40-character text form that `ZMQ_CURVE_*KEY` socket options also accept.

use crate::{Error, Result};

/// A CURVE (X25519) key pair, binary form (the `zmq` crate's `CurveKeyPair`).
///
/// ```
/// let pair = ferromq::CurveKeyPair::new().unwrap();
/// let again = ferromq::CurveKeyPair::from_secret_key(pair.secret_key);
/// assert_eq!(pair.public_key, again.public_key);
/// assert_eq!(ferromq::z85_encode(&pair.public_key).unwrap().len(), 40);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct CurveKeyPair {
    /// The public key, shared with peers (`ZMQ_CURVE_PUBLICKEY`, `ZMQ_CURVE_SERVERKEY`).
    pub public_key: [u8; 32],
    /// The secret key (`ZMQ_CURVE_SECRETKEY`); keep it private.
    pub secret_key: [u8; 32],
}

impl std::fmt::Debug for CurveKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveKeyPair")
            .field("public_key", &self.public_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl CurveKeyPair {
    /// A fresh random key pair (`zmq_curve_keypair`). Fails only if the operating system's
    /// random number generator is unavailable (as `EFAULT`, libzmq's error for that case).
    pub fn new() -> Result<CurveKeyPair> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|_| Error::EFAULT)?;
        let pair = CurveKeyPair::from_secret_key(secret);
        zeroize::Zeroize::zeroize(&mut secret);
        Ok(pair)
    }

    /// The key pair whose secret key is `secret_key` (`zmq_curve_public` computes the public
    /// half). Any 32 bytes are a valid X25519 secret key.
    pub fn from_secret_key(secret_key: [u8; 32]) -> CurveKeyPair {
        CurveKeyPair {
            public_key: public_key_of(&secret_key),
            secret_key,
        }
    }
}

impl Drop for CurveKeyPair {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret_key);
    }
}

/// The public key of an X25519 secret key (`zmq_curve_public`, binary form).
pub fn public_key_of(secret_key: &[u8; 32]) -> [u8; 32] {
    crypto_box::SecretKey::from_bytes(*secret_key)
        .public_key()
        .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{z85_decode, z85_encode};

    #[test]
    fn zmq_curve_man_page_test_keys() {
        // zmq_curve(7), "TEST KEY VALUES": the client's and the server's key pairs in Z85.
        for (public, secret) in [
            (
                "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID",
                "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs",
            ),
            (
                "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7",
                "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6",
            ),
        ] {
            let mut s = [0u8; 32];
            s.copy_from_slice(&z85_decode(secret).unwrap());
            let pair = CurveKeyPair::from_secret_key(s);
            assert_eq!(z85_encode(&pair.public_key).unwrap(), public);
        }
    }

    #[test]
    fn new_pairs_differ_and_are_consistent() {
        let a = CurveKeyPair::new().unwrap();
        let b = CurveKeyPair::new().unwrap();
        assert_ne!(a.secret_key, b.secret_key);
        assert_eq!(public_key_of(&a.secret_key), a.public_key);
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.secret_key)));
    }
}
