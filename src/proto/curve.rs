//! The CURVE mechanism (RFC 25, <https://rfc.zeromq.org/spec/25/>) running the CurveZMQ
//! handshake (RFC 26, <https://rfc.zeromq.org/spec/26/>), and the [`FrameCipher`] that
//! boxes every frame afterwards.
//!
//! Notation of RFC 26: `C`/`c` the client's long-term public/secret key, `C'`/`c'` its
//! transient (per connection) keys, `S`/`s` and `S'`/`s'` the server's. `Box[x](A->B)` is
//! NaCl `crypto_box` (X25519 + XSalsa20Poly1305) of `x` from secret `a` to public `B`; its
//! output is 16 bytes longer than `x`. Short nonces are 8-byte big-endian counters, one per
//! direction, starting at 1 and strictly increasing; each box's 24-byte nonce is a 16-byte
//! prefix naming its purpose plus the short nonce (or an 8-byte prefix plus 16 random bytes
//! for WELCOME, the cookie and the vouch).
//!
//! ```text
//! C: HELLO    version(1,0) padding(72) C' nonce Box[64 zeros](C'->S)      "CurveZMQHELLO---"
//! S: WELCOME  nonce(16) Box[S' + cookie](S->C')                           "WELCOME-"
//!             cookie = nonce(16) SecretBox[C' + s'](K), K per connection  "COOKIE--"
//! C: INITIATE cookie nonce Box[C + vnonce(16) + vouch + metadata](C'->S') "CurveZMQINITIATE"
//!             vouch = Box[C' + S](C->S')                                  "VOUCH---"
//! S: READY    nonce Box[metadata](S'->C')                                 "CurveZMQREADY---"
//!    MESSAGE  nonce Box[flags + frame](C'->S' or S'->C')      "CurveZMQMESSAGEC"/"...MESSAGES"
//! ```
//!
//! The server authenticates `C` with its [`Authenticator`](super::Authenticator)
//! (mechanism CURVE, credentials `[C]`) before READY. Byte layouts follow libzmq 4.3.

use bytes::{BufMut, Bytes, BytesMut};
use crypto_box::aead::{Aead, AeadInPlace};
use crypto_box::{Nonce, PublicKey, SalsaBox, SecretKey};
use crypto_secretbox::{KeyInit, XSalsa20Poly1305};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::codec::Frame;
use super::command::{encode_metadata, parse_metadata};
use super::mechanism::{Mechanism, MechanismKind, MechanismStatus};
use super::zap::{ZapReply, ZapRequest};
use super::{Command, Encoder, ProtoError};
use crate::Metadata;

/// Nonce prefix of the HELLO signature box.
pub const HELLO_PREFIX: &[u8; 16] = b"CurveZMQHELLO---";
/// Nonce prefix of the WELCOME box (followed by 16 random bytes).
pub const WELCOME_PREFIX: &[u8; 8] = b"WELCOME-";
/// Nonce prefix of the cookie secret box (followed by 16 random bytes).
pub const COOKIE_PREFIX: &[u8; 8] = b"COOKIE--";
/// Nonce prefix of the INITIATE box.
pub const INITIATE_PREFIX: &[u8; 16] = b"CurveZMQINITIATE";
/// Nonce prefix of the vouch box (followed by 16 random bytes).
pub const VOUCH_PREFIX: &[u8; 8] = b"VOUCH---";
/// Nonce prefix of the READY box.
pub const READY_PREFIX: &[u8; 16] = b"CurveZMQREADY---";
/// Nonce prefix of MESSAGE boxes sent by the client.
pub const MESSAGE_CLIENT_PREFIX: &[u8; 16] = b"CurveZMQMESSAGEC";
/// Nonce prefix of MESSAGE boxes sent by the server.
pub const MESSAGE_SERVER_PREFIX: &[u8; 16] = b"CurveZMQMESSAGES";

/// Name of the command that carries every frame after the handshake.
pub const MESSAGE: &[u8] = b"MESSAGE";
/// The start of every MESSAGE command body: name size and name.
pub const MESSAGE_HEADER: &[u8; 8] = b"\x07MESSAGE";

const HELLO: &[u8] = b"HELLO";
const WELCOME: &[u8] = b"WELCOME";
const INITIATE: &[u8] = b"INITIATE";
const READY: &[u8] = b"READY";
const ERROR: &[u8] = b"ERROR";

/// Bytes a box adds to its plaintext (the Poly1305 tag, NaCl `crypto_box_MACBYTES`).
pub const BOX_OVERHEAD: usize = 16;
/// Size of the HELLO body after its name: version, padding, C', nonce, signature box.
const HELLO_LEN: usize = 2 + 72 + 32 + 8 + 64 + BOX_OVERHEAD;
/// Size of the WELCOME body after its name: nonce and Box[S' + cookie].
const WELCOME_LEN: usize = 16 + 128 + BOX_OVERHEAD;
/// Size of a cookie: nonce and SecretBox[C' + s'].
const COOKIE_LEN: usize = 16 + 64 + BOX_OVERHEAD;
/// Minimum INITIATE body after its name: cookie, nonce, Box[C + vouch nonce + vouch].
const INITIATE_MIN_LEN: usize = COOKIE_LEN + 8 + 128 + BOX_OVERHEAD;
/// Size of the vouch box.
const VOUCH_LEN: usize = 64 + BOX_OVERHEAD;

/// Fills an array with OS randomness.
fn random<const N: usize>() -> Result<[u8; N], ProtoError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| ProtoError::Cryptographic)?;
    Ok(b)
}

/// A fresh transient key pair.
fn transient_keys() -> Result<(SecretKey, PublicKey), ProtoError> {
    let bytes = Zeroizing::new(random::<32>()?);
    let secret = SecretKey::from_bytes(*bytes);
    let public = secret.public_key();
    Ok((secret, public))
}

/// A 24-byte nonce: `prefix` then `tail` (they always add up to 24 bytes here).
fn nonce(prefix: &[u8], tail: &[u8]) -> Nonce {
    let mut n = [0u8; 24];
    let split = prefix.len().min(24);
    n[..split].copy_from_slice(&prefix[..split]);
    let rest = tail.len().min(24 - split);
    n[split..split + rest].copy_from_slice(&tail[..rest]);
    Nonce::from(n)
}

fn seal(b: &SalsaBox, n: &Nonce, plaintext: &[u8]) -> Result<Vec<u8>, ProtoError> {
    b.encrypt(n, plaintext)
        .map_err(|_| ProtoError::Cryptographic)
}

fn open(b: &SalsaBox, n: &Nonce, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ProtoError> {
    b.decrypt(n, ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| ProtoError::Cryptographic)
}

fn key32(bytes: &[u8]) -> Result<[u8; 32], ProtoError> {
    bytes.try_into().map_err(|_| ProtoError::MalformedCommand)
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, ProtoError> {
    let raw: [u8; 8] = bytes
        .get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or(ProtoError::MalformedCommand)?;
    Ok(u64::from_be_bytes(raw))
}

/// Splits a command frame body into name and the rest.
fn split_name(body: &Bytes) -> Result<(Bytes, Bytes), ProtoError> {
    let len = usize::from(*body.first().ok_or(ProtoError::MalformedCommand)?);
    if len == 0 || body.len() < 1 + len {
        return Err(ProtoError::MalformedCommand);
    }
    Ok((body.slice(1..1 + len), body.slice(1 + len..)))
}

fn command(name: &'static [u8], body: Vec<u8>) -> Command {
    Command::Unknown {
        name: Bytes::from_static(name),
        body: Bytes::from(body),
    }
}

/// A decrypted frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plaintext {
    /// The frame's payload (a command's body, name included, when `command` is set).
    pub data: Bytes,
    /// The MORE flag (more frames of this message follow).
    pub more: bool,
    /// The COMMAND flag (ZMTP 3.1: SUBSCRIBE, CANCEL, PING, PONG travel boxed too).
    pub command: bool,
}

/// Boxes and unboxes the frames of a connection after a successful CURVE handshake
/// (RFC 26 MESSAGE command). Obtained from [`Handshake::take_cipher`](super::Handshake::take_cipher).
///
/// Each direction has its own nonce prefix and short-nonce counter: outgoing nonces continue
/// after the handshake's and never repeat; an incoming nonce that is not larger than the
/// previous one is refused ([`ProtoError::InvalidNonce`]). Not `Clone`, so that a nonce can
/// never be used twice.
pub struct FrameCipher {
    shared: SalsaBox,
    send_prefix: &'static [u8; 16],
    recv_prefix: &'static [u8; 16],
    next_send: u64,
    last_recv: u64,
}

impl std::fmt::Debug for FrameCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameCipher")
            .field("send_prefix", &String::from_utf8_lossy(self.send_prefix))
            .field("next_send", &self.next_send)
            .field("last_recv", &self.last_recv)
            .finish_non_exhaustive()
    }
}

impl FrameCipher {
    /// Boxes one frame into the body of a MESSAGE command: `"\x07MESSAGE"`, the 8-byte short
    /// nonce and `Box[flags + frame]`, flags bit 0 = MORE, bit 1 = COMMAND. libzmq sends
    /// this body as an ordinary single frame (flags 0, no MORE): use
    /// [`Encoder::encode_frame`]`(&body, false)`.
    ///
    /// Fails only when the 2^64 - 1 nonces of this direction are used up.
    pub fn encrypt(
        &mut self,
        frame: &[u8],
        more: bool,
        command: bool,
    ) -> Result<Bytes, ProtoError> {
        let short = self.next_send;
        self.next_send = short.checked_add(1).ok_or(ProtoError::InvalidNonce)?;
        // The box is built in place in the outgoing body (name, nonce, tag, flags + frame):
        // the plaintext is written once, where its ciphertext goes, and no copy of it is left.
        let mut out =
            BytesMut::with_capacity(MESSAGE_HEADER.len() + 8 + BOX_OVERHEAD + 1 + frame.len());
        out.put_slice(MESSAGE_HEADER);
        out.put_u64(short);
        let tag_at = out.len();
        out.put_bytes(0, BOX_OVERHEAD);
        out.put_u8(u8::from(more) | (u8::from(command) << 1));
        out.put_slice(frame);
        let tag = self
            .shared
            .encrypt_in_place_detached(
                &nonce(self.send_prefix, &short.to_be_bytes()),
                b"",
                &mut out[tag_at + BOX_OVERHEAD..],
            )
            .map_err(|_| ProtoError::Cryptographic)?;
        // NaCl's box layout: the tag, then the ciphertext.
        out[tag_at..tag_at + BOX_OVERHEAD].copy_from_slice(&tag);
        Ok(out.freeze())
    }

    /// Unboxes the body of a MESSAGE command (starting with `"\x07MESSAGE"`), as received in
    /// a message frame from libzmq.
    pub fn decrypt(&mut self, body: &[u8]) -> Result<Plaintext, ProtoError> {
        match body.strip_prefix(&MESSAGE_HEADER[..]) {
            Some(rest) => self.decrypt_after_name(rest),
            None => Err(ProtoError::UnexpectedCommand(
                String::from_utf8_lossy(body.get(1..).unwrap_or_default()).into_owned(),
            )),
        }
    }

    /// Unboxes what follows the name of a MESSAGE command: short nonce and box.
    pub fn decrypt_after_name(&mut self, rest: &[u8]) -> Result<Plaintext, ProtoError> {
        if rest.len() < 8 + BOX_OVERHEAD + 1 {
            return Err(ProtoError::MalformedCommand);
        }
        let short = u64_at(rest, 0)?;
        if short <= self.last_recv {
            return Err(ProtoError::InvalidNonce);
        }
        let sealed = rest.get(8..).unwrap_or_default();
        let (tag, ciphertext) = sealed.split_at(BOX_OVERHEAD);
        // One copy of the ciphertext, opened in place; the frame is a slice of it.
        let mut buf = BytesMut::from(ciphertext);
        self.shared
            .decrypt_in_place_detached(
                &nonce(self.recv_prefix, &short.to_be_bytes()),
                b"",
                &mut buf,
                crypto_box::aead::generic_array::GenericArray::from_slice(tag),
            )
            .map_err(|_| ProtoError::Cryptographic)?;
        // Only an authentic box advances the window (a forged nonce cannot block it).
        self.last_recv = short;
        let flags = *buf.first().ok_or(ProtoError::MalformedCommand)?;
        Ok(Plaintext {
            data: buf.freeze().slice(1..),
            more: flags & 0x01 != 0,
            command: flags & 0x02 != 0,
        })
    }

    /// Unboxes a decoded frame: a message frame holding a MESSAGE body (what libzmq sends)
    /// or a MESSAGE command frame. Anything else is refused.
    pub fn decrypt_frame(&mut self, frame: &Frame) -> Result<Plaintext, ProtoError> {
        match frame {
            Frame::Message { data, .. } => self.decrypt(data),
            Frame::Command(Command::Unknown { name, body }) if name == MESSAGE => {
                self.decrypt_after_name(body)
            }
            Frame::Command(cmd) => Err(ProtoError::UnexpectedCommand(cmd.name_lossy())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    ExpectWelcome,
    ExpectReady,
    Done,
}

/// CURVE client: HELLO, WELCOME, INITIATE (vouching for its transient key with its
/// long-term key), READY.
pub struct CurveClient {
    server_key: PublicKey,
    secret: SecretKey,
    public: PublicKey,
    cn_secret: Option<SecretKey>,
    cn_public: PublicKey,
    our_props: Metadata,
    next_nonce: u64,
    shared: Option<SalsaBox>,
    pending: Option<Command>,
    state: ClientState,
    cipher: Option<FrameCipher>,
}

impl std::fmt::Debug for CurveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveClient")
            .field("server_key", &self.server_key)
            .field("public", &self.public)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl CurveClient {
    /// A client for the server whose long-term public key is `server_key`, using our
    /// long-term `secret_key` and announcing `our_props` in INITIATE. HELLO is ready to send.
    pub fn new(
        server_key: [u8; 32],
        secret_key: [u8; 32],
        our_props: Metadata,
    ) -> Result<Self, ProtoError> {
        let secret = SecretKey::from_bytes(secret_key);
        let public = secret.public_key();
        let server_key = PublicKey::from_bytes(server_key);
        let (cn_secret, cn_public) = transient_keys()?;
        let mut c = CurveClient {
            server_key,
            secret,
            public,
            cn_secret: Some(cn_secret),
            cn_public,
            our_props,
            next_nonce: 1,
            shared: None,
            pending: None,
            state: ClientState::ExpectWelcome,
            cipher: None,
        };
        c.pending = Some(c.hello()?);
        Ok(c)
    }

    fn take_nonce(&mut self) -> Result<u64, ProtoError> {
        let n = self.next_nonce;
        self.next_nonce = n.checked_add(1).ok_or(ProtoError::InvalidNonce)?;
        Ok(n)
    }

    fn hello(&mut self) -> Result<Command, ProtoError> {
        let short = self.take_nonce()?;
        let cn_secret = self.cn_secret.as_ref().ok_or(ProtoError::Cryptographic)?;
        let signature = seal(
            &SalsaBox::new(&self.server_key, cn_secret),
            &nonce(HELLO_PREFIX, &short.to_be_bytes()),
            &[0u8; 64],
        )?;
        let mut body = Vec::with_capacity(HELLO_LEN);
        body.extend_from_slice(&[1, 0]);
        body.extend_from_slice(&[0u8; 72]);
        body.extend_from_slice(self.cn_public.as_bytes());
        body.extend_from_slice(&short.to_be_bytes());
        body.extend_from_slice(&signature);
        Ok(command(HELLO, body))
    }

    fn on_welcome(&mut self, rest: &[u8]) -> Result<MechanismStatus, ProtoError> {
        if rest.len() != WELCOME_LEN {
            return Err(ProtoError::MalformedCommand);
        }
        let cn_secret = self.cn_secret.take().ok_or(ProtoError::Cryptographic)?;
        let plain = open(
            &SalsaBox::new(&self.server_key, &cn_secret),
            &nonce(WELCOME_PREFIX, &rest[..16]),
            &rest[16..],
        )?;
        let cn_server = PublicKey::from_bytes(key32(plain.get(..32).unwrap_or_default())?);
        let cookie = plain.get(32..128).ok_or(ProtoError::Cryptographic)?;
        let shared = SalsaBox::new(&cn_server, &cn_secret);

        // vouch = Box[C' + S](C->S')
        let vouch_nonce = random::<16>()?;
        let mut vouch_plain = Vec::with_capacity(64);
        vouch_plain.extend_from_slice(self.cn_public.as_bytes());
        vouch_plain.extend_from_slice(self.server_key.as_bytes());
        let vouch = seal(
            &SalsaBox::new(&cn_server, &self.secret),
            &nonce(VOUCH_PREFIX, &vouch_nonce),
            &vouch_plain,
        )?;
        let mut inner = Zeroizing::new(Vec::with_capacity(128 + 64));
        inner.extend_from_slice(self.public.as_bytes());
        inner.extend_from_slice(&vouch_nonce);
        inner.extend_from_slice(&vouch);
        let mut md = BytesMut::new();
        encode_metadata(&std::mem::take(&mut self.our_props), &mut md);
        inner.extend_from_slice(&md);
        let short = self.take_nonce()?;
        let boxed = seal(
            &shared,
            &nonce(INITIATE_PREFIX, &short.to_be_bytes()),
            &inner,
        )?;
        let mut body = Vec::with_capacity(COOKIE_LEN + 8 + boxed.len());
        body.extend_from_slice(cookie);
        body.extend_from_slice(&short.to_be_bytes());
        body.extend_from_slice(&boxed);
        self.pending = Some(command(INITIATE, body));
        self.shared = Some(shared);
        self.state = ClientState::ExpectReady;
        Ok(MechanismStatus::InProgress)
    }

    fn on_ready(&mut self, rest: &[u8]) -> Result<MechanismStatus, ProtoError> {
        if rest.len() < 8 + BOX_OVERHEAD {
            return Err(ProtoError::MalformedCommand);
        }
        let short = u64_at(rest, 0)?;
        if short == 0 {
            return Err(ProtoError::InvalidNonce);
        }
        let shared = self.shared.take().ok_or(ProtoError::Cryptographic)?;
        let plain = open(
            &shared,
            &nonce(READY_PREFIX, &short.to_be_bytes()),
            &rest[8..],
        )?;
        let props = parse_metadata(&plain)?;
        self.cipher = Some(FrameCipher {
            shared,
            send_prefix: MESSAGE_CLIENT_PREFIX,
            recv_prefix: MESSAGE_SERVER_PREFIX,
            next_send: self.next_nonce,
            last_recv: short,
        });
        self.state = ClientState::Done;
        Ok(MechanismStatus::Ready(props))
    }

    fn on_command(&mut self, name: &[u8], rest: Bytes) -> Result<MechanismStatus, ProtoError> {
        match (self.state, name) {
            (ClientState::ExpectWelcome, WELCOME) => self.on_welcome(&rest),
            (ClientState::ExpectReady, READY) => self.on_ready(&rest),
            (ClientState::ExpectWelcome | ClientState::ExpectReady, ERROR) => {
                match Command::parse(error_body(&rest))? {
                    Command::Error(reason) => Err(ProtoError::PeerError(reason)),
                    other => Err(ProtoError::UnexpectedCommand(other.name_lossy())),
                }
            }
            _ => Err(ProtoError::UnexpectedCommand(
                String::from_utf8_lossy(name).into_owned(),
            )),
        }
    }
}

/// Rebuilds an ERROR command body from what follows its name.
fn error_body(rest: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(6 + rest.len());
    b.put_u8(ERROR.len() as u8);
    b.put_slice(ERROR);
    b.put_slice(rest);
    b.freeze()
}

/// Dispatch shared by both roles: `handle_command` for commands parsed by someone else.
fn unparsed(cmd: Command) -> Result<(Bytes, Bytes), ProtoError> {
    match cmd {
        Command::Unknown { name, body } => Ok((name, body)),
        Command::Error(reason) => Err(ProtoError::PeerError(reason)),
        other => Err(ProtoError::UnexpectedCommand(other.name_lossy())),
    }
}

impl Mechanism for CurveClient {
    fn kind(&self) -> MechanismKind {
        MechanismKind::Curve
    }

    fn poll_output(&mut self, enc: &mut Encoder) {
        if let Some(cmd) = self.pending.take() {
            enc.encode_command(&cmd);
        }
    }

    fn handle_command(&mut self, cmd: Command) -> Result<MechanismStatus, ProtoError> {
        let (name, rest) = unparsed(cmd)?;
        self.on_command(&name, rest)
    }

    fn handle_raw(&mut self, body: Bytes) -> Result<MechanismStatus, ProtoError> {
        let (name, rest) = split_name(&body)?;
        self.on_command(&name, rest)
    }

    fn output_done(&self) -> bool {
        self.pending.is_none()
    }

    fn take_cipher(&mut self) -> Option<FrameCipher> {
        self.cipher.take()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    ExpectHello,
    ExpectInitiate,
    Authenticating,
    Done,
}

/// CURVE server: checks HELLO, answers WELCOME with a cookie, checks INITIATE (cookie,
/// vouch), asks the authenticator about the client's long-term key, then READY.
pub struct CurveServer {
    secret: SecretKey,
    public: PublicKey,
    cn_secret: Option<SecretKey>,
    cn_public: PublicKey,
    cn_client: Option<PublicKey>,
    /// Cookie key, fresh for each WELCOME and forgotten once INITIATE is checked.
    cookie_key: Option<Zeroizing<[u8; 32]>>,
    our_props: Metadata,
    request: ZapRequest,
    next_nonce: u64,
    peer_nonce: u64,
    shared: Option<SalsaBox>,
    peer_props: Option<Metadata>,
    pending: Option<Command>,
    state: ServerState,
    cipher: Option<FrameCipher>,
}

impl std::fmt::Debug for CurveServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurveServer")
            .field("public", &self.public)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl CurveServer {
    /// A server with long-term `secret_key`, announcing `our_props` in READY; `request`
    /// carries the ZAP domain, address and identity for the authenticator.
    pub fn new(
        secret_key: [u8; 32],
        our_props: Metadata,
        request: ZapRequest,
    ) -> Result<Self, ProtoError> {
        let secret = SecretKey::from_bytes(secret_key);
        let public = secret.public_key();
        let (cn_secret, cn_public) = transient_keys()?;
        Ok(CurveServer {
            secret,
            public,
            cn_secret: Some(cn_secret),
            cn_public,
            cn_client: None,
            cookie_key: None,
            our_props,
            request,
            next_nonce: 1,
            peer_nonce: 0,
            shared: None,
            peer_props: None,
            pending: None,
            state: ServerState::ExpectHello,
            cipher: None,
        })
    }

    fn on_hello(&mut self, rest: &[u8]) -> Result<MechanismStatus, ProtoError> {
        if rest.len() != HELLO_LEN || rest[..2] != [1, 0] {
            return Err(ProtoError::MalformedCommand);
        }
        let cn_client = PublicKey::from_bytes(key32(&rest[74..106])?);
        let short = u64_at(rest, 106)?;
        if short == 0 {
            return Err(ProtoError::InvalidNonce);
        }
        let signature = open(
            &SalsaBox::new(&cn_client, &self.secret),
            &nonce(HELLO_PREFIX, &short.to_be_bytes()),
            &rest[114..],
        )?;
        if signature.iter().any(|&b| b != 0) {
            return Err(ProtoError::Cryptographic);
        }
        self.peer_nonce = short;
        let cn_secret = self.cn_secret.as_ref().ok_or(ProtoError::Cryptographic)?;

        // cookie = nonce + SecretBox[C' + s'](K)
        let key = Zeroizing::new(random::<32>()?);
        let cookie_nonce = random::<16>()?;
        let mut cookie_plain = Zeroizing::new(Vec::with_capacity(64));
        cookie_plain.extend_from_slice(cn_client.as_bytes());
        cookie_plain.extend_from_slice(&cn_secret.to_bytes());
        let cookie = XSalsa20Poly1305::new(&(*key).into())
            .encrypt(
                &nonce(COOKIE_PREFIX, &cookie_nonce),
                cookie_plain.as_slice(),
            )
            .map_err(|_| ProtoError::Cryptographic)?;

        // WELCOME = nonce + Box[S' + cookie](S->C')
        let welcome_nonce = random::<16>()?;
        let mut inner = Vec::with_capacity(128);
        inner.extend_from_slice(self.cn_public.as_bytes());
        inner.extend_from_slice(&cookie_nonce);
        inner.extend_from_slice(&cookie);
        let boxed = seal(
            &SalsaBox::new(&cn_client, &self.secret),
            &nonce(WELCOME_PREFIX, &welcome_nonce),
            &inner,
        )?;
        let mut body = Vec::with_capacity(WELCOME_LEN);
        body.extend_from_slice(&welcome_nonce);
        body.extend_from_slice(&boxed);
        self.pending = Some(command(WELCOME, body));
        self.cookie_key = Some(key);
        self.cn_client = Some(cn_client);
        self.state = ServerState::ExpectInitiate;
        Ok(MechanismStatus::InProgress)
    }

    fn on_initiate(&mut self, rest: &[u8]) -> Result<MechanismStatus, ProtoError> {
        if rest.len() < INITIATE_MIN_LEN {
            return Err(ProtoError::MalformedCommand);
        }
        let cn_client = self.cn_client.clone().ok_or(ProtoError::Cryptographic)?;
        // The cookie key is single use: forget it whatever happens next.
        let key = self.cookie_key.take().ok_or(ProtoError::Cryptographic)?;
        let cn_secret = self.cn_secret.take().ok_or(ProtoError::Cryptographic)?;
        let cookie = XSalsa20Poly1305::new(&(*key).into())
            .decrypt(&nonce(COOKIE_PREFIX, &rest[..16]), &rest[16..COOKIE_LEN])
            .map(Zeroizing::new)
            .map_err(|_| ProtoError::Cryptographic)?;
        let mut expected = Zeroizing::new(Vec::with_capacity(64));
        expected.extend_from_slice(cn_client.as_bytes());
        expected.extend_from_slice(&cn_secret.to_bytes());
        if !bool::from(cookie.as_slice().ct_eq(expected.as_slice())) {
            return Err(ProtoError::Cryptographic);
        }
        let short = u64_at(rest, COOKIE_LEN)?;
        if short <= self.peer_nonce {
            return Err(ProtoError::InvalidNonce);
        }
        let shared = SalsaBox::new(&cn_client, &cn_secret);
        let inner = open(
            &shared,
            &nonce(INITIATE_PREFIX, &short.to_be_bytes()),
            &rest[COOKIE_LEN + 8..],
        )?;
        let client_key = key32(inner.get(..32).ok_or(ProtoError::Cryptographic)?)?;
        let vouch_nonce = inner.get(32..48).ok_or(ProtoError::Cryptographic)?;
        let vouch = inner
            .get(48..48 + VOUCH_LEN)
            .ok_or(ProtoError::Cryptographic)?;
        let vouched = open(
            &SalsaBox::new(&PublicKey::from_bytes(client_key), &cn_secret),
            &nonce(VOUCH_PREFIX, vouch_nonce),
            vouch,
        )?;
        // The vouch must name this connection's C' and our S.
        let mut expected = Vec::with_capacity(64);
        expected.extend_from_slice(cn_client.as_bytes());
        expected.extend_from_slice(self.public.as_bytes());
        if !bool::from(vouched.as_slice().ct_eq(expected.as_slice())) {
            return Err(ProtoError::Cryptographic);
        }
        let props = parse_metadata(inner.get(48 + VOUCH_LEN..).unwrap_or_default())?;
        self.peer_nonce = short;
        self.shared = Some(shared);
        self.peer_props = Some(props);
        self.state = ServerState::Authenticating;
        let mut req = self.request.clone();
        req.mechanism = MechanismKind::Curve;
        req.credentials = vec![Bytes::copy_from_slice(&client_key)];
        Ok(MechanismStatus::Authenticate(Box::new(req)))
    }

    fn on_command(&mut self, name: &[u8], rest: Bytes) -> Result<MechanismStatus, ProtoError> {
        match (self.state, name) {
            (ServerState::ExpectHello, HELLO) => self.on_hello(&rest),
            (ServerState::ExpectInitiate, INITIATE) => self.on_initiate(&rest),
            (ServerState::ExpectHello | ServerState::ExpectInitiate, ERROR) => {
                match Command::parse(error_body(&rest))? {
                    Command::Error(reason) => Err(ProtoError::PeerError(reason)),
                    other => Err(ProtoError::UnexpectedCommand(other.name_lossy())),
                }
            }
            _ => Err(ProtoError::UnexpectedCommand(
                String::from_utf8_lossy(name).into_owned(),
            )),
        }
    }
}

impl Mechanism for CurveServer {
    fn kind(&self) -> MechanismKind {
        MechanismKind::Curve
    }

    fn poll_output(&mut self, enc: &mut Encoder) {
        if let Some(cmd) = self.pending.take() {
            enc.encode_command(&cmd);
        }
    }

    fn handle_command(&mut self, cmd: Command) -> Result<MechanismStatus, ProtoError> {
        let (name, rest) = unparsed(cmd)?;
        self.on_command(&name, rest)
    }

    fn handle_raw(&mut self, body: Bytes) -> Result<MechanismStatus, ProtoError> {
        let (name, rest) = split_name(&body)?;
        self.on_command(&name, rest)
    }

    /// Without an authenticator every client is accepted (libzmq's behaviour without a ZAP
    /// handler: encryption without authentication).
    fn auth_result(&mut self, _reply: Option<&ZapReply>) -> Result<MechanismStatus, ProtoError> {
        if self.state != ServerState::Authenticating {
            return Err(ProtoError::UnexpectedCommand("ZAP reply".into()));
        }
        let shared = self.shared.take().ok_or(ProtoError::Cryptographic)?;
        let short = self.next_nonce;
        let mut md = Zeroizing::new(Vec::new());
        let mut buf = BytesMut::new();
        encode_metadata(&std::mem::take(&mut self.our_props), &mut buf);
        md.extend_from_slice(&buf);
        let boxed = seal(&shared, &nonce(READY_PREFIX, &short.to_be_bytes()), &md)?;
        let mut body = Vec::with_capacity(8 + boxed.len());
        body.extend_from_slice(&short.to_be_bytes());
        body.extend_from_slice(&boxed);
        self.pending = Some(command(READY, body));
        self.cipher = Some(FrameCipher {
            shared,
            send_prefix: MESSAGE_SERVER_PREFIX,
            recv_prefix: MESSAGE_CLIENT_PREFIX,
            next_send: short.checked_add(1).ok_or(ProtoError::InvalidNonce)?,
            last_recv: self.peer_nonce,
        });
        self.state = ServerState::Done;
        Ok(MechanismStatus::Ready(
            self.peer_props.take().unwrap_or_default(),
        ))
    }

    fn output_done(&self) -> bool {
        self.pending.is_none()
    }

    fn take_cipher(&mut self) -> Option<FrameCipher> {
        self.cipher.take()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::proto::greeting::Greeting;
    use crate::proto::plain::test_util::{output, run_pair};
    use crate::proto::{
        Authenticator, Decoder, Handshake, HandshakeConfig, HandshakeStatus, MechanismConfig,
        PeerInfo, SecurityConfig, XorShift,
    };
    use crate::{CurveKeyPair, SocketType};

    fn cfg(socket_type: SocketType) -> HandshakeConfig {
        HandshakeConfig {
            socket_type,
            identity: Bytes::new(),
            as_server: false,
            max_msg_size: None,
        }
    }

    struct Keys {
        server: CurveKeyPair,
        client: CurveKeyPair,
    }

    fn keys() -> Keys {
        Keys {
            server: CurveKeyPair::new().unwrap(),
            client: CurveKeyPair::new().unwrap(),
        }
    }

    fn client(server_key: [u8; 32], k: &CurveKeyPair) -> Handshake {
        Handshake::new(cfg(SocketType::DEALER)).with_security(SecurityConfig {
            mechanism: MechanismConfig::CurveClient {
                server_key,
                secret_key: k.secret_key,
            },
            ..SecurityConfig::default()
        })
    }

    fn server(k: &CurveKeyPair, auth: Option<Arc<dyn Authenticator>>) -> Handshake {
        Handshake::new(cfg(SocketType::ROUTER)).with_security(SecurityConfig {
            mechanism: MechanismConfig::CurveServer {
                secret_key: k.secret_key,
            },
            authenticator: auth,
            zap_domain: "test".into(),
            peer_address: "127.0.0.1".into(),
            defer_auth: false,
        })
    }

    /// Accepts exactly `allowed`, recording every request.
    fn allow(allowed: [u8; 32], seen: Arc<Mutex<Vec<ZapRequest>>>) -> Arc<dyn Authenticator> {
        Arc::new(move |req: &ZapRequest| {
            seen.lock().unwrap().push(req.clone());
            if req.credentials.len() == 1 && req.credentials[0] == allowed[..] {
                ZapReply::ok("client-1")
            } else {
                ZapReply::denied("unknown key")
            }
        })
    }

    /// A completed CURVE handshake: (client, server, client peer info, server peer info).
    fn connected() -> (Handshake, Handshake, PeerInfo, PeerInfo) {
        let k = keys();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut c = client(k.server.public_key, &k.client);
        let mut s = server(&k.server, Some(allow(k.client.public_key, seen.clone())));
        let (rc, rs) = run_pair(&mut c, &mut s);
        let (pc, ps) = (rc.unwrap(), rs.unwrap());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].mechanism, MechanismKind::Curve);
        assert_eq!(seen[0].domain, "test");
        assert_eq!(seen[0].address, "127.0.0.1");
        (c, s, pc, ps)
    }

    #[test]
    fn curve_ok_with_round_trips_both_ways() {
        let (mut c, mut s, pc, ps) = connected();
        assert_eq!(pc.socket_type, SocketType::ROUTER);
        assert_eq!(ps.socket_type, SocketType::DEALER);
        assert_eq!(ps.user_id, "client-1");
        assert_eq!(ps.mechanism, MechanismKind::Curve);
        let mut cc = c.take_cipher().unwrap();
        let mut sc = s.take_cipher().unwrap();
        assert!(c.take_cipher().is_none(), "taken once");
        let big = vec![0xA5u8; 100_000];
        for (data, more, command) in [
            (&b"hello"[..], true, false),
            (b"", false, false),
            (b"\x04PING\x00\x0a", false, true),
            (&big[..], false, false),
        ] {
            let body = cc.encrypt(data, more, command).unwrap();
            assert_eq!(body.len(), 8 + 8 + BOX_OVERHEAD + 1 + data.len());
            assert_eq!(&body[..8], MESSAGE_HEADER);
            let p = sc.decrypt(&body).unwrap();
            assert_eq!((&p.data[..], p.more, p.command), (data, more, command));
            let body = sc.encrypt(data, more, command).unwrap();
            let p = cc.decrypt(&body).unwrap();
            assert_eq!((&p.data[..], p.more, p.command), (data, more, command));
        }
        // Through the codec: libzmq sends the body as a plain frame; a MESSAGE command frame
        // is accepted too.
        let mut enc = Encoder::new();
        enc.encode_frame(&cc.encrypt(b"one", false, false).unwrap(), false);
        let body = cc.encrypt(b"two", false, false).unwrap();
        enc.encode_command(&Command::Unknown {
            name: Bytes::from_static(MESSAGE),
            body: body.slice(8..),
        });
        let mut wire = BytesMut::new();
        enc.drain_into(&mut wire);
        let mut dec = Decoder::new(None);
        let f1 = dec.decode(&mut wire).unwrap().unwrap();
        let f2 = dec.decode(&mut wire).unwrap().unwrap();
        assert_eq!(sc.decrypt_frame(&f1).unwrap().data, "one");
        assert_eq!(sc.decrypt_frame(&f2).unwrap().data, "two");
        assert!(sc
            .decrypt_frame(&Frame::Command(Command::Ping {
                ttl_deciseconds: 0,
                context: Bytes::new()
            }))
            .is_err());
    }

    #[test]
    fn nonces_follow_libzmq() {
        // Client: HELLO 1, INITIATE 2, messages from 3. Server: READY 1, messages from 2.
        let (mut c, mut s, _, _) = connected();
        let mut cc = c.take_cipher().unwrap();
        let mut sc = s.take_cipher().unwrap();
        assert_eq!(u64_at(&cc.encrypt(b"", false, false).unwrap(), 8), Ok(3));
        assert_eq!(u64_at(&cc.encrypt(b"", false, false).unwrap(), 8), Ok(4));
        assert_eq!(u64_at(&sc.encrypt(b"", false, false).unwrap(), 8), Ok(2));
        // Nonce exhaustion is an error, never a wrap-around.
        cc.next_send = u64::MAX;
        assert_eq!(cc.encrypt(b"", false, false), Err(ProtoError::InvalidNonce));
    }

    #[test]
    fn data_right_after_ready_is_left_in_the_buffer() {
        let k = keys();
        let mut c = client(k.server.public_key, &k.client);
        let mut s = server(&k.server, None);
        let mut to_s = output(&mut c); // greeting
        let mut to_c = output(&mut s); // greeting
        c.handle_input(&mut to_c).unwrap();
        to_s.extend_from_slice(&output(&mut c)); // HELLO
        s.handle_input(&mut to_s).unwrap();
        to_c.extend_from_slice(&output(&mut s)); // WELCOME
        c.handle_input(&mut to_c).unwrap();
        to_s.extend_from_slice(&output(&mut c)); // INITIATE
        let ps = s.handle_input(&mut to_s).unwrap();
        assert!(matches!(ps, HandshakeStatus::Done(ref p) if p.user_id.is_empty()));
        to_c.extend_from_slice(&output(&mut s)); // READY
        let mut sc = s.take_cipher().unwrap();
        let mut enc = Encoder::new();
        enc.encode_frame(&sc.encrypt(b"first", false, false).unwrap(), false);
        enc.drain_into(&mut to_c);
        assert!(matches!(
            c.handle_input(&mut to_c),
            Ok(HandshakeStatus::Done(_))
        ));
        let mut cc = c.take_cipher().unwrap();
        let f = Decoder::new(None).decode(&mut to_c).unwrap().unwrap();
        assert_eq!(cc.decrypt_frame(&f).unwrap().data, "first");
    }

    #[test]
    fn wire_layout_matches_rfc() {
        let k = keys();
        let mut c = client(k.server.public_key, &k.client);
        let mut s = server(&k.server, None);
        let out = output(&mut c);
        let mut g = [0u8; 64];
        g.copy_from_slice(&out[..64]);
        let g = Greeting::parse(&g).unwrap();
        assert_eq!(g.mechanism_name(), b"CURVE");
        assert!(!g.as_server);
        assert_eq!(out.len(), 64, "HELLO waits for the server's greeting");
        let sout = output(&mut s);
        let mut h = [0u8; 64];
        h.copy_from_slice(&sout[..64]);
        assert!(Greeting::parse(&h).unwrap().as_server);
        let mut to_c = BytesMut::from(&sout[..]);
        c.handle_input(&mut to_c).unwrap();
        let hello = output(&mut c);
        // HELLO: command frame of 200 bytes (RFC 26: 1 + 5 + 2 + 72 + 32 + 8 + 80).
        assert_eq!(&hello[..2], &[0x04, 200]);
        assert_eq!(&hello[2..10], b"\x05HELLO\x01\x00");
        assert!(hello[10..82].iter().all(|&b| b == 0));
        assert_eq!(u64_at(&hello, 114), Ok(1));
        let mut to_s = BytesMut::from(&out[..]);
        to_s.extend_from_slice(&hello);
        s.handle_input(&mut to_s).unwrap();
        let welcome = output(&mut s);
        assert_eq!(&welcome[..2], &[0x04, 168]);
        assert_eq!(&welcome[2..10], b"\x07WELCOME");
        to_c.extend_from_slice(&welcome);
        c.handle_input(&mut to_c).unwrap();
        let initiate = output(&mut c);
        // INITIATE: long frame; 9 + 96 + 8 + 16 + 128 + metadata.
        let md_len = 1 + 11 + 4 + 6 + 1 + 8 + 4; // Socket-Type DEALER, Identity empty
        assert_eq!(initiate[0], 0x06);
        assert_eq!(u64_at(&initiate, 1), Ok((257 + md_len) as u64));
        assert_eq!(&initiate[9..18], b"\x08INITIATE");
        assert_eq!(u64_at(&initiate, 9 + 9 + 96), Ok(2));
        to_s.extend_from_slice(&initiate);
        assert!(matches!(
            s.handle_input(&mut to_s),
            Ok(HandshakeStatus::Done(_))
        ));
        let ready = output(&mut s);
        assert_eq!(&ready[2..8], b"\x05READY");
        assert_eq!(u64_at(&ready, 8), Ok(1));
        let md_len = 1 + 11 + 4 + 6 + 1 + 8 + 4;
        assert_eq!(usize::from(ready[1]), 6 + 8 + BOX_OVERHEAD + md_len);
    }

    #[test]
    fn wrong_server_key_fails() {
        let k = keys();
        let other = CurveKeyPair::new().unwrap();
        let mut c = client(other.public_key, &k.client);
        let mut s = server(&k.server, None);
        let (rc, rs) = run_pair(&mut c, &mut s);
        // The server cannot open the HELLO signature box.
        assert_eq!(rs, Err(ProtoError::Cryptographic));
        assert!(rc.is_err());
    }

    #[test]
    fn refused_client_key_gets_error() {
        let k = keys();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stranger = CurveKeyPair::new().unwrap();
        let mut c = client(k.server.public_key, &stranger);
        let mut s = server(&k.server, Some(allow(k.client.public_key, seen.clone())));
        let (rc, rs) = run_pair(&mut c, &mut s);
        assert!(matches!(rs, Err(ProtoError::AuthenticationFailed(_))));
        assert_eq!(rc, Err(ProtoError::PeerError("400".into())));
        // The authenticator saw the stranger's long-term key.
        assert_eq!(
            seen.lock().unwrap()[0].credentials,
            vec![Bytes::copy_from_slice(&stranger.public_key)]
        );
        assert!(s.take_cipher().is_none());
    }

    #[test]
    fn deferred_authentication() {
        // The engine forwards the request to a ZAP handler and answers later; bytes that
        // arrive meanwhile stay in the buffer.
        let k = keys();
        let mut c = client(k.server.public_key, &k.client);
        let mut s = Handshake::new(cfg(SocketType::ROUTER)).with_security(SecurityConfig {
            mechanism: MechanismConfig::CurveServer {
                secret_key: k.server.secret_key,
            },
            defer_auth: true,
            ..SecurityConfig::default()
        });
        assert!(s.resolve_auth(None).is_err(), "nothing pending yet");
        let (rc, rs) = run_pair(&mut c, &mut s);
        assert_eq!(
            rs,
            Err(ProtoError::UnexpectedMessage),
            "server still in progress"
        );
        assert_eq!(
            rc,
            Err(ProtoError::UnexpectedMessage),
            "client waits for READY"
        );
        let req = s.pending_auth().unwrap().clone();
        assert_eq!(
            req.credentials,
            vec![Bytes::copy_from_slice(&k.client.public_key)]
        );
        assert!(!s.has_pending_output());
        let mut junk = BytesMut::from(&b"\x00\x01x"[..]);
        assert_eq!(s.handle_input(&mut junk), Ok(HandshakeStatus::InProgress));
        assert_eq!(junk.len(), 3, "nothing consumed while authenticating");
        let done = s.resolve_auth(Some(ZapReply::ok("deferred"))).unwrap();
        assert!(matches!(done, HandshakeStatus::Done(ref p) if p.user_id == "deferred"));
        assert!(s.pending_auth().is_none());
        let mut to_c = output(&mut s);
        assert!(matches!(
            c.handle_input(&mut to_c),
            Ok(HandshakeStatus::Done(_))
        ));
        let mut sc = s.take_cipher().unwrap();
        let mut cc = c.take_cipher().unwrap();
        let m = cc.encrypt(b"after zap", false, false).unwrap();
        assert_eq!(sc.decrypt(&m).unwrap().data, "after zap");

        // Refused later: ERROR 400 goes out, the client sees it.
        let mut c = client(k.server.public_key, &k.client);
        let mut s = Handshake::new(cfg(SocketType::ROUTER)).with_security(SecurityConfig {
            mechanism: MechanismConfig::CurveServer {
                secret_key: k.server.secret_key,
            },
            defer_auth: true,
            ..SecurityConfig::default()
        });
        let _ = run_pair(&mut c, &mut s);
        assert!(matches!(
            s.resolve_auth(Some(ZapReply::denied("no"))),
            Err(ProtoError::AuthenticationFailed(_))
        ));
        let mut to_c = output(&mut s);
        assert_eq!(
            c.handle_input(&mut to_c),
            Err(ProtoError::PeerError("400".into()))
        );
    }

    #[test]
    fn no_authenticator_is_stonehouse() {
        let k = keys();
        let mut c = client(k.server.public_key, &k.client);
        let mut s = server(&k.server, None);
        let (rc, rs) = run_pair(&mut c, &mut s);
        assert!(rc.is_ok());
        assert!(rs.unwrap().user_id.is_empty());
    }

    #[test]
    fn tampered_replayed_and_reordered_messages_fail() {
        let (mut c, mut s, _, _) = connected();
        let mut cc = c.take_cipher().unwrap();
        let mut sc = s.take_cipher().unwrap();
        // Tampered: any flipped bit in the nonce or box.
        let body = cc.encrypt(b"payload", false, false).unwrap();
        for i in 8..body.len() {
            let mut t = body.to_vec();
            t[i] ^= 0x01;
            let r = sc.decrypt(&t);
            assert!(
                matches!(r, Err(ProtoError::Cryptographic | ProtoError::InvalidNonce)),
                "byte {i}: {r:?}"
            );
        }
        // Truncated.
        assert_eq!(
            sc.decrypt(&body[..8 + 8 + 16]),
            Err(ProtoError::MalformedCommand)
        );
        assert!(sc.decrypt(b"\x07MESSAG").is_err());
        // The genuine one still opens after the failed attempts.
        assert_eq!(sc.decrypt(&body).unwrap().data, "payload");
        // Replayed.
        assert_eq!(sc.decrypt(&body), Err(ProtoError::InvalidNonce));
        // Reordered.
        let m1 = cc.encrypt(b"1", false, false).unwrap();
        let m2 = cc.encrypt(b"2", false, false).unwrap();
        assert_eq!(sc.decrypt(&m2).unwrap().data, "2");
        assert_eq!(sc.decrypt(&m1), Err(ProtoError::InvalidNonce));
        // A message boxed for the other direction (reflected back) does not open.
        let reflected = sc.encrypt(b"x", false, false).unwrap();
        let mut reflected = reflected.to_vec();
        reflected[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(sc.decrypt(&reflected), Err(ProtoError::Cryptographic));
        // Messages from another connection do not open either.
        let (mut c2, _, _, _) = connected();
        let mut other = c2.take_cipher().unwrap();
        let mut foreign = other.encrypt(b"x", false, false).unwrap().to_vec();
        foreign[8..16].copy_from_slice(&1000u64.to_be_bytes());
        assert_eq!(sc.decrypt(&foreign), Err(ProtoError::Cryptographic));
    }

    /// Runs the handshake, letting `mutate` change the client's bytes of the given step
    /// (0 = greeting + HELLO, 1 = INITIATE) before the server sees them; returns the server's
    /// result.
    fn server_result_with(
        step: usize,
        mutate: impl Fn(&mut Vec<u8>),
    ) -> Result<PeerInfo, ProtoError> {
        let k = keys();
        let mut c = client(k.server.public_key, &k.client);
        let mut s = server(&k.server, None);
        let mut to_c = BytesMut::from(&output(&mut s)[..]);
        c.handle_input(&mut to_c).unwrap();
        let mut first = output(&mut c).to_vec();
        if step == 0 {
            mutate(&mut first);
        }
        let mut to_s = BytesMut::from(&first[..]);
        s.handle_input(&mut to_s)?;
        to_c.extend_from_slice(&output(&mut s));
        c.handle_input(&mut to_c).unwrap();
        let mut initiate = output(&mut c).to_vec();
        if step == 1 {
            mutate(&mut initiate);
        }
        to_s.extend_from_slice(&initiate);
        match s.handle_input(&mut to_s)? {
            HandshakeStatus::Done(p) => Ok(p),
            HandshakeStatus::InProgress => Err(ProtoError::UnexpectedMessage),
        }
    }

    #[test]
    fn tampered_handshake_commands_fail() {
        assert!(server_result_with(1, |_| {}).is_ok());
        // HELLO: version, C', nonce, signature box.
        assert_eq!(
            server_result_with(0, |h| h[64 + 8] = 2),
            Err(ProtoError::MalformedCommand)
        );
        for at in [64 + 2 + 6 + 2 + 72, 64 + 2 + 6 + 2 + 72 + 32 + 7, 64 + 150] {
            assert_eq!(
                server_result_with(0, |h| h[at] ^= 0x10),
                Err(ProtoError::Cryptographic),
                "HELLO byte {at}"
            );
        }
        // INITIATE: 9-byte long header, "\x08INITIATE", cookie nonce, cookie, nonce, box.
        for (at, err) in [
            (9 + 9 + 3, ProtoError::Cryptographic),        // cookie nonce
            (9 + 9 + 16 + 40, ProtoError::Cryptographic),  // cookie box
            (9 + 9 + 96 + 7, ProtoError::Cryptographic),   // short nonce (box no longer opens)
            (9 + 9 + 104 + 20, ProtoError::Cryptographic), // C inside the box
        ] {
            assert_eq!(
                server_result_with(1, |i| i[at] ^= 0x01),
                Err(err),
                "INITIATE byte {at}"
            );
        }
        // INITIATE replaying HELLO's nonce (1): refused before opening the box.
        assert_eq!(
            server_result_with(1, |i| i[9 + 9 + 96 + 7] = 1),
            Err(ProtoError::InvalidNonce)
        );
        // Truncated INITIATE (length fixed up so the frame is well-formed).
        assert_eq!(
            server_result_with(1, |i| {
                i.truncate(9 + 9 + 200);
                i[1..9].copy_from_slice(&209u64.to_be_bytes());
            }),
            Err(ProtoError::MalformedCommand)
        );
    }

    #[test]
    fn cookie_is_bound_to_its_connection() {
        // An INITIATE carrying the cookie of another connection is refused.
        let k = keys();
        let mk = || {
            let mut c = client(k.server.public_key, &k.client);
            let mut s = server(&k.server, None);
            let mut to_c = BytesMut::from(&output(&mut s)[..]);
            c.handle_input(&mut to_c).unwrap();
            let mut to_s = BytesMut::from(&output(&mut c)[..]);
            s.handle_input(&mut to_s).unwrap();
            to_c.extend_from_slice(&output(&mut s));
            c.handle_input(&mut to_c).unwrap();
            let initiate = output(&mut c).to_vec();
            (s, to_s, initiate)
        };
        let (mut s1, mut to_s1, i1) = mk();
        let (_, _, i2) = mk();
        let mut spliced = i1.clone();
        spliced[18..18 + 96].copy_from_slice(&i2[18..18 + 96]);
        to_s1.extend_from_slice(&spliced);
        assert_eq!(s1.handle_input(&mut to_s1), Err(ProtoError::Cryptographic));
    }

    #[test]
    fn state_machine_rejects_out_of_order_commands() {
        let k = keys();
        let req = ZapRequest {
            domain: String::new(),
            address: String::new(),
            identity: Bytes::new(),
            mechanism: MechanismKind::Curve,
            credentials: Vec::new(),
        };
        let mut s = CurveServer::new(k.server.secret_key, Metadata::new(), req).unwrap();
        assert!(s.output_done());
        for name in ["INITIATE", "READY", "MESSAGE", "WELCOME"] {
            let mut body = vec![name.len() as u8];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(&[0u8; 300]);
            assert!(s.handle_raw(Bytes::from(body)).is_err(), "{name}");
        }
        assert!(s.auth_result(None).is_err(), "no ZAP reply before INITIATE");
        assert_eq!(
            s.handle_raw(Bytes::from_static(b"\x05ERROR\x03400")),
            Err(ProtoError::PeerError("400".into()))
        );
        assert_eq!(
            s.handle_raw(Bytes::from_static(b"\x05HEL")),
            Err(ProtoError::MalformedCommand)
        );
        assert_eq!(
            s.handle_command(Command::Ready(Metadata::new())),
            Err(ProtoError::UnexpectedCommand("READY".into()))
        );
        let mut c =
            CurveClient::new(k.server.public_key, k.client.secret_key, Metadata::new()).unwrap();
        assert!(!c.output_done());
        let mut enc = Encoder::new();
        c.poll_output(&mut enc);
        assert!(c.output_done());
        assert_eq!(
            c.handle_raw(Bytes::from_static(b"\x07WELCOME")),
            Err(ProtoError::MalformedCommand)
        );
        let mut c =
            CurveClient::new(k.server.public_key, k.client.secret_key, Metadata::new()).unwrap();
        let mut ready = b"\x05READY".to_vec();
        ready.extend_from_slice(&[1u8; 40]);
        assert!(
            c.handle_raw(Bytes::from(ready)).is_err(),
            "READY before WELCOME"
        );
        assert_eq!(
            c.handle_command(Command::Error("500".into())),
            Err(ProtoError::PeerError("500".into()))
        );
    }

    #[test]
    fn mutated_handshakes_never_panic() {
        // Record a client transcript, then feed mutated copies to fresh servers in random
        // chunks (and the server's to fresh clients): errors are fine, panics are not.
        let k = keys();
        let mut c = client(k.server.public_key, &k.client);
        let mut s = server(&k.server, None);
        let mut to_c = BytesMut::from(&output(&mut s)[..]);
        c.handle_input(&mut to_c).unwrap();
        let mut c_out = output(&mut c).to_vec();
        let mut to_s = BytesMut::from(&c_out[..]);
        s.handle_input(&mut to_s).unwrap();
        let s_out_welcome = output(&mut s).to_vec();
        to_c.extend_from_slice(&s_out_welcome);
        c.handle_input(&mut to_c).unwrap();
        c_out.extend_from_slice(&output(&mut c));
        let mut rng = XorShift(0xC0FFEE);
        for round in 0..100 {
            let mut data = c_out.clone();
            for _ in 0..1 + rng.next() % 3 {
                let i = (rng.next() as usize) % data.len();
                match rng.next() % 3 {
                    0 => data[i] = rng.next() as u8,
                    1 => data[i] ^= 1 << (rng.next() % 8),
                    _ => data.truncate(i.max(1)),
                }
            }
            let mut srv = server(&k.server, None);
            let _ = output(&mut srv);
            let mut buf = BytesMut::new();
            for chunk in rng.chunks(&data, 1 + round % 90) {
                buf.extend_from_slice(chunk);
                if srv.handle_input(&mut buf).is_err() {
                    break;
                }
                let _ = output(&mut srv);
            }
        }
    }
}
