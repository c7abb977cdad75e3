//! Fuzzing entry points: plain functions over `&[u8]` shared by the libFuzzer targets in
//! `fuzz/` and by `tests/fuzz_corpus.rs`, which replays the committed corpora on stable
//! `cargo test`.
//!
//! Every function accepts any input. The protocol entry points must never panic: malformed
//! input is an `Err` from `proto` (or `rpub::wire`), and a panic there is a bug in that
//! module. Decoded values are also re-encoded and decoded again, and must come back equal.
//! [`trie_ops`] checks the subscription tries against a naive model and panics (assert) when
//! they disagree, which is also a bug. Each function returns a small summary so the work
//! cannot be optimised away.
//!
//! Not part of the public API.
// Fuzz oracles: a failed expectation here is the bug being looked for.
#![allow(clippy::expect_used, clippy::unwrap_used)]
#![doc(hidden)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::pattern::trie::{MultiTrie, Trie};
use crate::proto::command::{encode_metadata, parse_metadata};
use crate::proto::{
    Authenticator, Command, Decoded, Decoder, Encoder, Frame, FrameCipher, Greeting, Handshake,
    HandshakeConfig, HandshakeStatus, LargeBody, MechanismConfig, SecurityConfig, ZapReply,
    ZapRequest,
};
use crate::SocketType;

/// The MAXMSGSIZE the fuzzed decoders run with: small, so oversized frames are common.
pub const FUZZ_MAX_MSG_SIZE: u64 = 4096;

/// Reads the fuzz input front to back; once it is exhausted every read yields zero.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// Cuts `data` into the chunks a reader would see: the low three bits of the first byte give
/// the number of chunk sizes (1 to 8), the following bytes give each size (0 means
/// "everything left"); the rest is the payload, cut in those sizes cyclically.
fn chunks(data: &[u8]) -> Vec<&[u8]> {
    let (sizes, payload) = schedule(data);
    cut(&sizes, payload)
}

/// Splits `data` into a chunk schedule (see `chunks`) and the rest.
fn schedule(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let mut input = Input::new(data);
    let entries = usize::from(input.byte() & 0x07) + 1;
    let sizes: Vec<usize> = input
        .take(entries)
        .iter()
        .map(|&b| if b == 0 { usize::MAX } else { usize::from(b) })
        .collect();
    (sizes, input.data)
}

/// Cuts `payload` in the chunk `sizes`, cyclically.
fn cut<'a>(sizes: &[usize], payload: &'a [u8]) -> Vec<&'a [u8]> {
    let mut rest = payload;
    let mut out = Vec::new();
    if sizes.is_empty() {
        out.push(rest);
        return out;
    }
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

/// Feeds `data` to a [`Decoder`] in chunks whose sizes are derived from the first bytes (see
/// `chunks`; bit `0x80` of the first byte selects no MAXMSGSIZE instead of
/// [`FUZZ_MAX_MSG_SIZE`]), decoding all whole frames after each chunk, until the
/// decoder reports an error or the input is exhausted. Then encodes the decoded frames again
/// and checks they decode to the same frames (the codec round trip).
///
/// Bit 6 of the first byte: small message frames go through `decode_small` first, as the
/// engine does; bit 5 with it: so do large ones from 32 bytes (the engine: 16 KiB), whose
/// bodies are then filled from the following input as the engine reads into them. In those
/// modes the frames must equal what plain `decode` gives for the same chunks.
///
/// Returns the size of the re-encoded frames.
pub fn decode_frames(data: &[u8]) -> u64 {
    let unlimited = data.first().is_some_and(|b| b & 0x80 != 0);
    let max = if unlimited {
        None
    } else {
        Some(FUZZ_MAX_MSG_SIZE)
    };
    let small = data.first().is_some_and(|b| b & 0x40 != 0);
    let large_min = if data.first().is_some_and(|b| b & 0x20 != 0) {
        32
    } else {
        usize::MAX
    };
    let frames = feed_decoder(chunks(data), max, small, large_min);
    if small {
        let plain = feed_decoder(chunks(data), max, false, usize::MAX);
        assert_eq!(frames, plain, "decode_small differs from decode");
    }
    check_reencoding(&frames, max)
}

/// Decodes the frames of `input`, fed in its chunks, until the input ends or an error: with
/// `small`, as the engine does (small frames copied out, bodies of `large_min` bytes or more
/// filled in place from the following chunks); else with plain [`Decoder::decode`].
pub(crate) fn feed_decoder<'a>(
    input: impl IntoIterator<Item = &'a [u8]>,
    max: Option<u64>,
    small: bool,
    large_min: usize,
) -> Vec<Frame> {
    let mut decoder = Decoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut large: Option<LargeBody> = None;
    'feed: for mut chunk in input {
        if let Some(body) = &mut large {
            let dst = body.unfilled();
            let n = dst.len().min(chunk.len());
            dst[..n].copy_from_slice(&chunk[..n]);
            body.advance(n);
            chunk = &chunk[n..];
            if !body.is_complete() {
                continue;
            }
            if let Some(body) = large.take() {
                let (data, more) = body.into_message();
                frames.push(Frame::Message { data, more });
            }
        }
        buf.extend_from_slice(chunk);
        loop {
            if small {
                let copy = |body: &[u8], more| Frame::Message {
                    data: Bytes::copy_from_slice(body),
                    more,
                };
                match decoder.decode_small(&mut buf, 22, large_min, copy) {
                    Ok(Some(Decoded::Small(frame) | Decoded::Frame(frame))) => frames.push(frame),
                    Ok(Some(Decoded::Large(body))) => {
                        assert!(buf.is_empty(), "a large body takes the whole buffer");
                        large = Some(body);
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
                continue;
            }
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    frames
}

/// Encodes `frames` again and checks that they decode to the same frames; returns the
/// encoded size. (ERROR commands whose lossily decoded reason exceeds the 255 bytes the wire
/// can carry are truncated on encoding, as documented, so they are skipped.)
fn check_reencoding(frames: &[Frame], max: Option<u64>) -> u64 {
    let frames: Vec<&Frame> = frames
        .iter()
        .filter(|f| !matches!(f, Frame::Command(Command::Error(r)) if r.len() > 255))
        .collect();
    let mut enc = Encoder::new();
    for frame in &frames {
        match frame {
            Frame::Message { data, more } => {
                if let Some(max) = max {
                    assert!(data.len() as u64 <= max, "MAXMSGSIZE exceeded");
                }
                enc.encode_frame(data, *more);
            }
            Frame::Command(cmd) => enc.encode_command(cmd),
        }
    }
    let encoded = enc.len() as u64;
    let mut buf = BytesMut::new();
    enc.drain_into(&mut buf);
    let mut decoder = Decoder::new(None);
    for frame in frames {
        let again = decoder.decode(&mut buf);
        assert_eq!(
            again.as_ref(),
            Ok(&Some(frame.clone())),
            "frame does not survive re-encoding"
        );
    }
    assert!(buf.is_empty(), "re-encoding left {} extra bytes", buf.len());
    encoded
}

/// The socket types [`handshake`] plays, chosen by the low nibble of the first input byte.
pub const HANDSHAKE_TYPES: [SocketType; 11] = [
    SocketType::PAIR,
    SocketType::PUB,
    SocketType::SUB,
    SocketType::REQ,
    SocketType::REP,
    SocketType::DEALER,
    SocketType::ROUTER,
    SocketType::PULL,
    SocketType::PUSH,
    SocketType::XPUB,
    SocketType::XSUB,
];

/// Runs a [`Handshake`] against arbitrary peer bytes. The first byte picks the socket type
/// (low nibble, see [`HANDSHAKE_TYPES`]), whether to announce an identity (`0x40`) and the
/// as-server flag (`0x80`); the rest is cut into chunks as in [`decode_frames`].
/// Output is polled before and after each chunk. Once the handshake is done, the rest of the
/// input goes through a [`Decoder`] as the engine would do; after a failure, output is polled
/// once more (the ERROR command) and the run stops.
///
/// Checks that:
/// - the outcome (in progress, done with the same peer info, or the same kind of error) does
///   not depend on how the input was split: a second handshake is fed the whole input at once;
/// - a completed handshake reports a peer socket type compatible with ours;
/// - what we sent is our greeting, then at most our READY (announcing our socket type) and
///   an ERROR, and the READY is there whenever the handshake completed.
///
/// Returns the number of output bytes produced plus the number of input bytes consumed.
pub fn handshake(data: &[u8]) -> u64 {
    let Some((&setup, rest)) = data.split_first() else {
        return 0;
    };
    let socket_type = HANDSHAKE_TYPES[usize::from(setup & 0x0F) % HANDSHAKE_TYPES.len()];
    let identity = if setup & 0x40 != 0 {
        Bytes::from_static(b"fuzz-id")
    } else {
        Bytes::new()
    };
    let cfg = HandshakeConfig {
        socket_type,
        identity,
        as_server: setup & 0x80 != 0,
        max_msg_size: Some(FUZZ_MAX_MSG_SIZE),
    };
    let mut hs = Handshake::new(cfg.clone());
    let mut enc = Encoder::new();
    let mut out = BytesMut::new();
    let mut flush = |hs: &mut Handshake, enc: &mut Encoder| {
        hs.poll_output(enc);
        enc.drain_into(&mut out);
    };
    flush(&mut hs, &mut enc);

    let pieces = chunks(rest);
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    let mut outcome = Ok(HandshakeStatus::InProgress);
    let mut traffic: Option<Decoder> = None;
    'feed: for &chunk in &pieces {
        consumed += chunk.len();
        buf.extend_from_slice(chunk);
        if traffic.is_none() {
            outcome = hs.handle_input(&mut buf);
            flush(&mut hs, &mut enc);
            match &outcome {
                Ok(HandshakeStatus::InProgress) => continue,
                Ok(HandshakeStatus::Done(peer)) => {
                    assert!(
                        socket_type.is_compatible_with(peer.socket_type),
                        "handshake accepted an incompatible peer"
                    );
                    traffic = Some(Decoder::new(Some(FUZZ_MAX_MSG_SIZE)));
                }
                Err(_) => break,
            }
        }
        if let Some(decoder) = traffic.as_mut() {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }

    // The same handshake fed everything at once must end the same way.
    let mut whole = Handshake::new(cfg.clone());
    let whole_outcome = whole.handle_input(&mut BytesMut::from(&pieces.concat()[..]));
    match (&outcome, &whole_outcome) {
        (Err(a), Err(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "handshake error depends on chunking: {a:?} vs {b:?}"
        ),
        (a, b) => assert_eq!(a, b, "handshake outcome depends on chunking"),
    }

    check_handshake_output(&cfg, &out, matches!(outcome, Ok(HandshakeStatus::Done(_))));
    (out.len() + consumed) as u64
}

/// Checks what a handshake sent: our greeting, then at most our READY and an ERROR.
fn check_handshake_output(cfg: &HandshakeConfig, out: &[u8], done: bool) {
    let greeting = Greeting::null(cfg.as_server).encode();
    assert_eq!(
        out.get(..64),
        Some(&greeting[..]),
        "greeting not sent first"
    );
    let mut buf = BytesMut::from(&out[64..]);
    let mut decoder = Decoder::new(None);
    let mut ready_sent = false;
    let mut error_sent = false;
    while !buf.is_empty() {
        let frame = decoder.decode(&mut buf);
        match frame {
            Ok(Some(Frame::Command(Command::Ready(md)))) => {
                assert!(
                    !ready_sent && !error_sent,
                    "READY sent twice or after ERROR"
                );
                ready_sent = true;
                let announced = md.get("Socket-Type").map(|v| &v[..]);
                assert_eq!(announced, Some(cfg.socket_type.as_str().as_bytes()));
                let with_identity = matches!(
                    cfg.socket_type,
                    SocketType::REQ | SocketType::DEALER | SocketType::ROUTER
                );
                assert_eq!(md.get("Identity"), with_identity.then_some(&cfg.identity));
            }
            Ok(Some(Frame::Command(Command::Error(_)))) => {
                assert!(!error_sent, "ERROR sent twice");
                error_sent = true;
            }
            other => panic!("handshake sent something unexpected: {other:?}"),
        }
    }
    assert!(
        !done || ready_sent,
        "handshake done but our READY was never sent"
    );
}

/// Parses `data` as the body of a command frame with [`Command::parse`], and checks that
/// whatever parses re-encodes to a body of the announced length that parses back to the same
/// command. Also runs [`parse_metadata`] on the raw bytes.
///
/// Returns the encoded length of the command (0 if it did not parse).
pub fn parse_command(data: &[u8]) -> u64 {
    if let Ok(md) = parse_metadata(data) {
        let mut out = BytesMut::new();
        encode_metadata(&md, &mut out);
        assert_eq!(
            parse_metadata(&out).as_ref(),
            Ok(&md),
            "metadata does not survive a round trip"
        );
    }
    let Ok(cmd) = Command::parse(Bytes::copy_from_slice(data)) else {
        return 0;
    };
    let mut out = BytesMut::new();
    cmd.encode_body(&mut out);
    assert_eq!(
        out.len(),
        cmd.body_len(),
        "body_len disagrees with encode_body"
    );
    let again = Command::parse(out.clone().freeze()).expect("re-encoded command must parse");
    // A lossily decoded ERROR reason can exceed the 255 bytes the wire can carry; it is then
    // truncated on encoding, which is documented.
    let lossy_error = matches!(&cmd, Command::Error(r) if r.len() > 255);
    if !lossy_error {
        assert_eq!(again, cmd, "command does not survive a round trip");
    }
    out.len() as u64
}

/// Splits `data` into a multipart message: the low two bits of the first byte give the number
/// of frames (1 to 4); every frame but the last is a length byte then that many bytes; the
/// last frame is the rest.
fn fuzz_frames(data: &[u8]) -> Vec<Bytes> {
    let mut input = Input::new(data);
    let count = usize::from(input.byte() & 0x03) + 1;
    let mut frames = Vec::with_capacity(count);
    for _ in 1..count {
        let len = usize::from(input.byte());
        frames.push(Bytes::copy_from_slice(input.take(len)));
    }
    frames.push(Bytes::copy_from_slice(input.data));
    frames
}

/// Runs the RPUB decoders of `rpub::wire` on arbitrary bytes: the data-channel, replay
/// request and replay reply decoders on a multipart message cut from the input (see
/// `fuzz_frames`), and the discovery and cursor decoders on each frame. Whatever decodes
/// must encode again and decode back to the same value (decoders ignore trailing and
/// reserved bytes, so the re-encoding is the normal form).
///
/// Returns the number of successful decodes.
pub fn rpub_wire(data: &[u8]) -> u64 {
    use crate::rpub::wire::{
        decode_cursor, decode_data_channel, encode_cursor, DataChannelMessage, DiscoveryMessage,
        ReplayReply, ReplayRequest,
    };
    let frames = fuzz_frames(data);
    let mut decoded = 0u64;
    if let Ok(msg) = decode_data_channel(&frames) {
        decoded += 1;
        let again = match &msg {
            DataChannelMessage::Data(m) => {
                // Both DATA layouts (RPUB/1 and RPUB/2) decode back to the same message.
                assert_eq!(
                    decode_data_channel(&m.encode_v2()),
                    Ok(msg.clone()),
                    "RPUB/2 data round trip"
                );
                m.encode()
            }
            DataChannelMessage::Heartbeat(h) => h.encode().expect("decoded heartbeat encodes"),
        };
        assert_eq!(
            decode_data_channel(&again),
            Ok(msg),
            "data channel round trip"
        );
    }
    if let Ok(req) = ReplayRequest::decode(&frames) {
        decoded += 1;
        assert_eq!(
            ReplayRequest::decode(&req.encode()),
            Ok(req),
            "REQUEST round trip"
        );
    }
    if let Ok(reply) = ReplayReply::decode(&frames) {
        decoded += 1;
        assert_eq!(
            ReplayReply::decode(&reply.encode_version(crate::rpub::wire::DATA_VERSION_2)),
            Ok(reply.clone()),
            "RPUB/2 reply round trip"
        );
        assert_eq!(
            ReplayReply::decode(&reply.encode()),
            Ok(reply),
            "reply round trip"
        );
    }
    for frame in &frames {
        if let Ok(msg) = DiscoveryMessage::decode(frame) {
            decoded += 1;
            let again = msg.encode().expect("decoded discovery message encodes");
            assert_eq!(
                DiscoveryMessage::decode(&again),
                Ok(msg),
                "discovery round trip"
            );
        }
        if let Ok(entries) = decode_cursor(frame) {
            decoded += 1;
            let again = encode_cursor(&entries).expect("decoded cursor encodes");
            assert_eq!(decode_cursor(&again), Ok(entries), "cursor round trip");
        }
    }
    decoded
}

/// Subscription counts per pipe of one prefix, in the model.
type PipeCounts = BTreeMap<u8, u32>;

/// A reference model of the subscription tries: counted prefixes in ordered maps.
#[derive(Default)]
struct TrieModel {
    /// `Trie`: prefix -> count (entries with a zero count are removed).
    subs: BTreeMap<Vec<u8>, u32>,
    /// `MultiTrie`: prefix -> pipe -> count (empty maps are removed).
    pipes: BTreeMap<Vec<u8>, PipeCounts>,
}

/// Reads a prefix: a length of 0 to 8, then bytes mostly over a four-letter alphabet so that
/// prefixes share stems (bytes with the top bit set are kept raw).
fn fuzz_key(input: &mut Input<'_>, max_len: u8) -> Vec<u8> {
    let len = input.byte() % (max_len + 1);
    (0..len)
        .map(|_| {
            let b = input.byte();
            if b & 0x80 != 0 {
                b
            } else {
                b'a' + b % 4
            }
        })
        .collect()
}

/// Interprets `data` as subscribe / unsubscribe / match operations on a [`Trie`] and a
/// [`MultiTrie`] and checks every result, and the final contents, against a naive model.
/// Panics (assert) on any disagreement: that is a bug in the tries.
///
/// Returns the number of operations run.
pub fn trie_ops(data: &[u8]) -> u64 {
    let mut input = Input::new(data);
    let mut trie = Trie::new();
    let mut multi: MultiTrie<u8> = MultiTrie::new();
    let mut model = TrieModel::default();
    let mut ops = 0u64;
    let mut out = Vec::new();
    while !input.is_empty() {
        ops += 1;
        let op = input.byte() % 8;
        match op {
            0 => {
                let key = fuzz_key(&mut input, 8);
                let count = model.subs.entry(key.clone()).or_insert(0);
                *count += 1;
                assert_eq!(trie.add(&key), *count == 1, "Trie::add({key:?})");
            }
            1 => {
                let key = fuzz_key(&mut input, 8);
                let last = match model.subs.get_mut(&key) {
                    Some(count) => {
                        *count -= 1;
                        *count == 0
                    }
                    None => false,
                };
                if last {
                    model.subs.remove(&key);
                }
                assert_eq!(trie.remove(&key), last, "Trie::remove({key:?})");
            }
            2 => {
                let data = fuzz_key(&mut input, 12);
                let expected = model.subs.keys().any(|k| data.starts_with(k));
                assert_eq!(trie.matches(&data), expected, "Trie::matches({data:?})");
            }
            3 => {
                let key = fuzz_key(&mut input, 8);
                let pipe = input.byte() % 4;
                let pipes = model.pipes.entry(key.clone()).or_default();
                let was_vacant = pipes.is_empty();
                *pipes.entry(pipe).or_insert(0) += 1;
                assert_eq!(
                    multi.add(&key, pipe),
                    was_vacant,
                    "MultiTrie::add({key:?}, {pipe})"
                );
            }
            4 => {
                let key = fuzz_key(&mut input, 8);
                let pipe = input.byte() % 4;
                let mut now_vacant = false;
                if let Some(pipes) = model.pipes.get_mut(&key) {
                    if let Some(count) = pipes.get_mut(&pipe) {
                        *count -= 1;
                        if *count == 0 {
                            pipes.remove(&pipe);
                            now_vacant = pipes.is_empty();
                        }
                    }
                    if pipes.is_empty() {
                        model.pipes.remove(&key);
                    }
                }
                assert_eq!(
                    multi.remove(&key, pipe),
                    now_vacant,
                    "MultiTrie::remove({key:?}, {pipe})"
                );
            }
            5 => {
                let pipe = input.byte() % 4;
                let mut expected = Vec::new();
                model.pipes.retain(|key, pipes| {
                    if pipes.remove(&pipe).is_some() && pipes.is_empty() {
                        expected.push(key.clone());
                        false
                    } else {
                        true
                    }
                });
                let mut gone = Vec::new();
                multi.remove_pipe(pipe, |key| gone.push(key.to_vec()));
                assert_eq!(gone, expected, "MultiTrie::remove_pipe({pipe})");
            }
            6 => {
                let data = fuzz_key(&mut input, 12);
                let mut expected: Vec<u8> = model
                    .pipes
                    .iter()
                    .filter(|(k, _)| data.starts_with(k))
                    .flat_map(|(_, pipes)| pipes.keys().copied())
                    .collect();
                expected.sort_unstable();
                expected.dedup();
                out.clear();
                multi.match_into(&data, &mut out);
                out.sort_unstable();
                assert_eq!(out, expected, "MultiTrie::match_into({data:?})");
            }
            _ => check_trie_contents(&trie, &multi, &model),
        }
        assert_eq!(trie.len(), model.subs.len(), "Trie::len");
        assert_eq!(multi.len(), model.pipes.len(), "MultiTrie::len");
    }
    check_trie_contents(&trie, &multi, &model);

    // Unsubscribe everything: both tries must end up empty and fully pruned.
    for (key, count) in std::mem::take(&mut model.subs) {
        for i in 1..=count {
            assert_eq!(trie.remove(&key), i == count, "draining Trie at {key:?}");
        }
    }
    for (key, pipes) in std::mem::take(&mut model.pipes) {
        let npipes = pipes.len();
        for (n, (pipe, count)) in pipes.into_iter().enumerate() {
            for i in 1..=count {
                let last = n + 1 == npipes && i == count;
                assert_eq!(
                    multi.remove(&key, pipe),
                    last,
                    "draining MultiTrie at {key:?}"
                );
            }
        }
    }
    assert!(trie.is_empty() && multi.is_empty());
    assert_eq!(trie.node_count(), 1, "Trie not pruned when empty");
    assert_eq!(multi.node_count(), 1, "MultiTrie not pruned when empty");
    ops
}

/// Compares the whole contents of both tries with the model.
fn check_trie_contents(trie: &Trie, multi: &MultiTrie<u8>, model: &TrieModel) {
    let mut prefixes = Vec::new();
    trie.for_each(|p| prefixes.push(p.to_vec()));
    let expected: Vec<Vec<u8>> = model.subs.keys().cloned().collect();
    assert_eq!(prefixes, expected, "Trie::for_each");
    assert!(
        trie.node_count() <= 2 * trie.len() + 1,
        "Trie has {} nodes for {} prefixes",
        trie.node_count(),
        trie.len()
    );
    let mut entries: Vec<(Vec<u8>, PipeCounts)> = Vec::new();
    multi.for_each(|p, pipes| entries.push((p.to_vec(), pipes.iter().copied().collect())));
    let expected: Vec<(Vec<u8>, PipeCounts)> = model
        .pipes
        .iter()
        .map(|(k, pipes)| (k.clone(), pipes.clone()))
        .collect();
    assert_eq!(entries, expected, "MultiTrie::for_each (in order)");
}

// ---------------------------------------------------------------------------------------------
// Security handshakes (PLAIN, CURVE) and the CURVE frame cipher

/// The long-term CURVE secret key of the fuzzed servers (fixed, so that a seed can carry a
/// valid client HELLO).
pub const FUZZ_SERVER_SECRET: [u8; 32] = [0x11; 32];
/// The long-term CURVE secret key of the fuzzed clients.
pub const FUZZ_CLIENT_SECRET: [u8; 32] = [0x22; 32];
/// The PLAIN user name and password of the fuzzed clients.
pub const FUZZ_PLAIN_CREDENTIALS: (&[u8], &[u8]) = (b"admin", b"secret");
/// The user id the fuzz authenticator grants.
const FUZZ_USER_ID: &[u8] = b"fuzz";

/// The security settings [`security_handshake`] plays, from its setup byte: bits 0-1 pick
/// PLAIN client, PLAIN server, CURVE client or CURVE server; `0x04` installs an authenticator
/// (it accepts credentials whose last part has an even length, with user id `fuzz`: the
/// PLAIN password `secret` and every CURVE key pass);
/// `0x08` defers authentication to the caller.
pub fn fuzz_security(setup: u8) -> SecurityConfig {
    let server_public = crate::CurveKeyPair::from_secret_key(FUZZ_SERVER_SECRET).public_key;
    let mechanism = match setup % 4 {
        0 => MechanismConfig::PlainClient {
            username: Bytes::from_static(FUZZ_PLAIN_CREDENTIALS.0),
            password: Bytes::from_static(FUZZ_PLAIN_CREDENTIALS.1),
        },
        1 => MechanismConfig::PlainServer,
        2 => MechanismConfig::CurveClient {
            server_key: server_public,
            secret_key: FUZZ_CLIENT_SECRET,
        },
        _ => MechanismConfig::CurveServer {
            secret_key: FUZZ_SERVER_SECRET,
        },
    };
    let authenticator: Option<Arc<dyn Authenticator>> = if setup & 0x04 != 0 {
        Some(Arc::new(|r: &ZapRequest| {
            if r.credentials.last().is_some_and(|c| c.len() % 2 == 0) {
                ZapReply::ok(FUZZ_USER_ID)
            } else {
                ZapReply::denied("odd")
            }
        }))
    } else {
        None
    };
    SecurityConfig {
        mechanism,
        authenticator,
        defer_auth: setup & 0x08 != 0,
        ..SecurityConfig::default()
    }
}

/// The greeting a peer of `security` sends: same mechanism, the other role.
pub fn fuzz_peer_greeting(security: &SecurityConfig) -> [u8; 64] {
    Greeting {
        mechanism: crate::proto::greeting::mechanism_field(security.mechanism.kind().name()),
        ..Greeting::null(!security.mechanism.is_server())
    }
    .encode()
}

/// Runs a PLAIN or CURVE [`Handshake`] against arbitrary peer bytes. Byte 0 is the setup
/// (see [`fuzz_security`]; `0x10` = a deferred authentication is answered 200, else 400;
/// bits 5-7 pick our socket type from [`HANDSHAKE_TYPES`]); then a chunk schedule as in
/// [`decode_frames`]; the rest follows a valid peer greeting for the mechanism and is fed
/// in those chunks.
///
/// Checks that nothing panics; that we send our greeting (right mechanism and role) first;
/// that a completed handshake has a compatible peer and the right mechanism; that a CURVE
/// handshake never completes (forged input cannot hold valid boxes: the client's transient
/// key and the server's cookie key are fresh); that a PLAIN server completes only when the
/// authentication granted the fuzz user id. After completion the rest of the input goes
/// through a [`Decoder`].
///
/// Returns the number of bytes sent plus consumed.
pub fn security_handshake(data: &[u8]) -> u64 {
    let Some((&setup, rest)) = data.split_first() else {
        return 0;
    };
    let security = fuzz_security(setup);
    let kind = security.mechanism.kind();
    let is_server = security.mechanism.is_server();
    let socket_type = HANDSHAKE_TYPES[usize::from(setup >> 5) % HANDSHAKE_TYPES.len()];
    let cfg = HandshakeConfig {
        socket_type,
        identity: Bytes::new(),
        as_server: false,
        max_msg_size: Some(FUZZ_MAX_MSG_SIZE),
    };
    let our_greeting = Greeting {
        mechanism: crate::proto::greeting::mechanism_field(kind.name()),
        ..Greeting::null(is_server)
    }
    .encode();
    let peer_greeting = fuzz_peer_greeting(&security);
    let mut hs = Handshake::new(cfg).with_security(security);
    let (sizes, payload) = schedule(rest);
    let stream = [&peer_greeting[..], payload].concat();

    let mut enc = Encoder::new();
    let mut out = BytesMut::new();
    hs.poll_output(&mut enc);
    enc.drain_into(&mut out);
    let mut buf = BytesMut::new();
    let mut consumed = 0;
    let mut done = None;
    let mut traffic: Option<Decoder> = None;
    'feed: for chunk in cut(&sizes, &stream) {
        consumed += chunk.len();
        buf.extend_from_slice(chunk);
        if traffic.is_none() {
            let mut status = hs.handle_input(&mut buf);
            // A deferred authentication is answered at once, then the buffer handled again.
            while matches!(status, Ok(HandshakeStatus::InProgress)) && hs.pending_auth().is_some() {
                let reply = if setup & 0x10 != 0 {
                    ZapReply::ok(FUZZ_USER_ID)
                } else {
                    ZapReply::denied("deferred")
                };
                status = hs
                    .resolve_auth(Some(reply))
                    .and_then(|_| hs.handle_input(&mut buf));
            }
            hs.poll_output(&mut enc);
            enc.drain_into(&mut out);
            match status {
                Ok(HandshakeStatus::InProgress) => continue,
                Ok(HandshakeStatus::Done(peer)) => {
                    done = Some(peer);
                    traffic = Some(Decoder::new(Some(FUZZ_MAX_MSG_SIZE)));
                }
                Err(_) => break,
            }
        }
        if let Some(decoder) = traffic.as_mut() {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
    hs.poll_output(&mut enc);
    enc.drain_into(&mut out);
    assert_eq!(
        out.get(..64),
        Some(&our_greeting[..]),
        "our greeting not sent first"
    );
    if let Some(peer) = done {
        assert!(
            socket_type.is_compatible_with(peer.socket_type),
            "handshake accepted an incompatible peer"
        );
        assert_eq!(peer.mechanism, kind, "wrong mechanism reported");
        assert_ne!(
            kind,
            crate::proto::mechanism::MechanismKind::Curve,
            "CURVE handshake completed on forged input"
        );
        if is_server {
            assert_eq!(
                &peer.user_id[..],
                FUZZ_USER_ID,
                "PLAIN server accepted a client the authenticator did not approve"
            );
        }
        assert!(hs.take_cipher().is_none(), "PLAIN has no cipher");
    }
    (out.len() + consumed) as u64
}

/// Runs an in-memory CURVE handshake between a client and a server (fixed long-term keys,
/// fresh transient keys), returning both ciphers (client's, server's).
pub fn curve_pair() -> (FrameCipher, FrameCipher) {
    let cfg = HandshakeConfig {
        socket_type: SocketType::DEALER,
        identity: Bytes::new(),
        as_server: false,
        max_msg_size: None,
    };
    let mut c = Handshake::new(cfg.clone()).with_security(fuzz_security(2));
    let mut s = Handshake::new(cfg).with_security(fuzz_security(3));
    let (mut to_c, mut to_s) = (BytesMut::new(), BytesMut::new());
    let mut enc = Encoder::new();
    for _ in 0..6 {
        c.poll_output(&mut enc);
        enc.drain_into(&mut to_s);
        s.poll_output(&mut enc);
        enc.drain_into(&mut to_c);
        let _ = c.handle_input(&mut to_c);
        let _ = s.handle_input(&mut to_s);
    }
    match (c.take_cipher(), s.take_cipher()) {
        (Some(cc), Some(sc)) => (cc, sc),
        _ => panic!("in-memory CURVE handshake did not complete"),
    }
}

/// Feeds arbitrary MESSAGE bodies to the [`FrameCipher`] of a fresh CURVE connection. The
/// input is split at each `0xFF` byte; each piece is tried as a MESSAGE body (behind the
/// `\x07MESSAGE` name, and as a MESSAGE command frame), and must never open. After each
/// piece a genuine frame (the piece itself, flags from its length) goes through and opens to
/// the same bytes and flags; replaying it, or flipping one bit of it, must fail.
///
/// Returns the number of genuine frames opened.
pub fn curve_frames(data: &[u8]) -> u64 {
    let (mut client, mut server) = curve_pair();
    let mut opened = 0u64;
    for (i, body) in data.split(|&b| b == 0xFF).enumerate() {
        let forged = [&b"\x07MESSAGE"[..], body].concat();
        assert!(server.decrypt(&forged).is_err(), "forged MESSAGE opened");
        assert!(
            server.decrypt_after_name(body).is_err(),
            "forged MESSAGE opened"
        );
        let as_command = Frame::Command(Command::Unknown {
            name: Bytes::from_static(b"MESSAGE"),
            body: Bytes::copy_from_slice(body),
        });
        assert!(
            server.decrypt_frame(&as_command).is_err(),
            "forged MESSAGE command opened"
        );
        let as_message = Frame::Message {
            data: Bytes::from(forged),
            more: false,
        };
        assert!(
            server.decrypt_frame(&as_message).is_err(),
            "forged MESSAGE frame opened"
        );

        let (more, command) = (body.len() % 2 == 1, body.len() % 3 == 1);
        let genuine = client.encrypt(body, more, command).expect("encrypt");
        if let Some(&pos) = body.first() {
            // One flipped bit anywhere after the name must be refused.
            let mut tampered = genuine.to_vec();
            let at = 8 + usize::from(pos) % (tampered.len() - 8);
            tampered[at] ^= 1 << (i % 8);
            assert!(
                server.decrypt(&tampered).is_err(),
                "tampered MESSAGE opened"
            );
        }
        let plain = server.decrypt(&genuine).expect("genuine MESSAGE must open");
        assert_eq!(
            (&plain.data[..], plain.more, plain.command),
            (body, more, command)
        );
        assert!(server.decrypt(&genuine).is_err(), "replayed MESSAGE opened");
        // And the other direction.
        let back = server.encrypt(body, more, command).expect("encrypt");
        let plain = client.decrypt(&back).expect("genuine reply must open");
        assert_eq!(&plain.data[..], body);
        opened += 1;
    }
    opened
}

// ---------------------------------------------------------------------------------------------
// Socket patterns driven by arbitrary operation sequences

/// The socket types [`pattern_ops`] drives, chosen by its first input byte.
pub const PATTERN_TYPES: [SocketType; 11] = [
    SocketType::PAIR,
    SocketType::PUSH,
    SocketType::PULL,
    SocketType::REQ,
    SocketType::REP,
    SocketType::DEALER,
    SocketType::ROUTER,
    SocketType::PUB,
    SocketType::SUB,
    SocketType::XPUB,
    SocketType::XSUB,
];

/// The trailer of a tracked frame: magic, message tag (u32 LE), frame index, frame count.
const TAG_MAGIC: u8 = 0xF7;
const TRAILER_LEN: usize = 7;

/// The trailer of a tracked frame, if `frame` has one: (tag, index, count).
fn trailer(frame: &[u8]) -> Option<(u32, u8, u8)> {
    let start = frame.len().checked_sub(TRAILER_LEN)?;
    let t = &frame[start..];
    (t[0] == TAG_MAGIC).then(|| (u32::from_le_bytes([t[1], t[2], t[3], t[4]]), t[5], t[6]))
}

/// One peer of the fuzzed pattern: the far ends of its pipes.
struct FuzzPeer {
    id: u64,
    out: Arc<crate::pattern::Pipe>,
    inp: Arc<crate::pattern::Pipe>,
    routing_id: Bytes,
    attached: bool,
}

/// Checks the frames of a delivered message: its tracked frames (those with a trailer) form
/// a contiguous suffix of one message, all its frames in order. Returns the tag, if tracked.
fn check_whole(frames: &[crate::pattern::Frame], what: &str) -> Option<u32> {
    let first = frames.iter().position(|f| trailer(f).is_some())?;
    let tracked = &frames[first..];
    let (tag, _, count) = trailer(&tracked[0]).expect("tracked");
    assert_eq!(
        tracked.len(),
        usize::from(count),
        "{what}: multipart message split or padded: {frames:?}"
    );
    for (i, f) in tracked.iter().enumerate() {
        assert_eq!(
            trailer(f),
            Some((tag, i as u8, count)),
            "{what}: frames interleaved or reordered: {frames:?}"
        );
    }
    Some(tag)
}

/// Drives a [`crate::pattern::Pattern`] (from [`crate::pattern::for_type`]) with an
/// arbitrary sequence of operations, playing its peers' ends of the pipes. Byte 0 picks the
/// socket type ([`PATTERN_TYPES`]), byte 1 the pipes' HWM (0-4, 0 = none); then each
/// operation is a byte (`% 12`) and its operands: attach a peer, detach one, close one of its
/// pipes, push a message into a peer's inbound pipe (tracked, with an optional untracked
/// envelope, or a raw untracked message such as a subscription), pop from (or pop a batch
/// from) a peer's outbound pipe, set an option, send through the pattern (single frame:
/// `send(msg, false)`; multipart: `admit` on the first frame, then `send(msg, true)` as the
/// socket does), receive, or ask `can_send` / `can_recv`.
///
/// Tracked messages carry a unique tag in a trailer on every frame. Checks that:
/// - nothing panics;
/// - every delivered message (to the application by `recv`, to a peer by its outbound pipe,
///   or handed back by `WouldBlock`) is whole: its tracked frames are one message, complete
///   and in order (never split or interleaved);
/// - a message pushed by a peer is received at most once, and only if it was pushed;
/// - a message sent is delivered at most once to each peer, to at most one peer unless the
///   type broadcasts (PUB, XPUB, XSUB), and only if it was sent (and not handed back);
/// - no pipe with an HWM ever holds more than HWM + 1 messages (except the outbound pipes of
///   SUB and XSUB, where subscriptions are never dropped).
///
/// Returns the number of operations run.
pub fn pattern_ops(data: &[u8]) -> u64 {
    use crate::pattern::pipe::NoNotify;
    use crate::pattern::{for_type, Msg, PatternOpt, Peer, Pipe, SendError};

    let mut input = Input::new(data);
    let socket_type = PATTERN_TYPES[usize::from(input.byte()) % PATTERN_TYPES.len()];
    let hwm = usize::from(input.byte() % 5);
    let Some(mut pattern) = for_type(socket_type) else {
        return 0;
    };
    let broadcast = matches!(
        socket_type,
        SocketType::PUB | SocketType::XPUB | SocketType::XSUB
    );
    let mut peers: Vec<FuzzPeer> = Vec::new();
    let mut next_id = 1u64;
    let mut next_tag = 0u32;
    // Tags pushed by peers, and those the application received.
    let mut pushed: HashSet<u32> = HashSet::new();
    let mut received: HashSet<u32> = HashSet::new();
    // Tags sent through the pattern, and which peers got each one.
    let mut sent: HashSet<u32> = HashSet::new();
    let mut handed_back: HashSet<u32> = HashSet::new();
    let mut delivered: HashMap<u32, BTreeSet<u64>> = HashMap::new();
    let mut ops = 0u64;

    // Builds a tracked message: an envelope of 0-2 untracked frames (0-3 bytes each), then
    // 1-3 tracked frames, each with 0-2 bytes of content before its trailer. With
    // `data_only` (messages from peers to an XPUB, or from the application to an XSUB: both
    // take a first frame starting with 0 or 1 for a subscription and pass that frame alone),
    // no envelope and a first frame starting with `m`.
    let mut tracked_msg =
        |input: &mut Input<'_>, first: Option<Bytes>, data_only: bool| -> (u32, Msg) {
            let shape = input.byte();
            let tag = next_tag;
            next_tag += 1;
            let mut frames: Vec<crate::pattern::Frame> =
                first.into_iter().map(crate::pattern::Frame::from).collect();
            let envelope = if data_only { 0 } else { (shape & 0x03) % 3 };
            for _ in 0..envelope {
                let len = usize::from(input.byte() % 4);
                frames.push(crate::pattern::Frame::copy_from_slice(input.take(len)));
            }
            let count = (shape >> 2) % 3 + 1;
            for i in 0..count {
                let len = usize::from(input.byte() % 3);
                let mut f = if data_only && i == 0 {
                    vec![b'm']
                } else {
                    Vec::new()
                };
                f.extend_from_slice(input.take(len));
                f.push(TAG_MAGIC);
                f.extend_from_slice(&tag.to_le_bytes());
                f.extend_from_slice(&[i, count]);
                frames.push(crate::pattern::Frame::from(f));
            }
            (tag, Msg::from_frames(frames))
        };
    // An untracked message of 1-2 frames of at most 6 bytes (never mistaken for a trailer).
    let raw_msg = |input: &mut Input<'_>| -> Msg {
        let n = input.byte() % 2 + 1;
        let frames = (0..n)
            .map(|_| {
                let len = usize::from(input.byte() % 7);
                crate::pattern::Frame::copy_from_slice(input.take(len))
            })
            .collect();
        Msg::from_frames(frames)
    };

    while !input.is_empty() {
        ops += 1;
        let op = input.byte();
        let pick = usize::from(input.byte());
        let peer_idx = (!peers.is_empty()).then(|| pick % peers.len());
        match op % 12 {
            0 if peers.len() < 8 => {
                let id = next_id;
                next_id += 1;
                let routing_id = match input.byte() % 4 {
                    0 => Bytes::new(),
                    k => Bytes::from(vec![b'r', k]),
                };
                let fp = FuzzPeer {
                    id,
                    out: Arc::new(Pipe::new(hwm, Arc::new(NoNotify), Arc::new(NoNotify))),
                    inp: Arc::new(Pipe::new(hwm, Arc::new(NoNotify), Arc::new(NoNotify))),
                    routing_id: routing_id.clone(),
                    attached: false,
                };
                let peer = Peer {
                    id,
                    out: fp.out.clone(),
                    inp: fp.inp.clone(),
                    routing_id,
                    meta: None,
                };
                let mut fp = fp;
                fp.attached = pattern.attach(peer);
                if !fp.attached {
                    fp.out.close();
                    fp.inp.close();
                }
                peers.push(fp);
            }
            1 => {
                if let Some(i) = peer_idx {
                    let p = &mut peers[i];
                    if p.attached {
                        // The connection is gone: the engine closes both pipes.
                        p.inp.close();
                        p.out.close();
                        pattern.detach(p.id);
                        p.attached = false;
                    }
                }
            }
            2 => {
                if let Some(i) = peer_idx {
                    if pick & 0x80 != 0 {
                        peers[i].inp.close();
                    } else {
                        peers[i].out.close();
                    }
                }
            }
            3 => {
                if let Some(i) = peer_idx {
                    let xpub = socket_type == SocketType::XPUB;
                    let (tag, msg) = tracked_msg(&mut input, None, xpub);
                    if peers[i].inp.push(msg).is_ok() {
                        pushed.insert(tag);
                    }
                }
            }
            4 => {
                if let Some(i) = peer_idx {
                    let msg = raw_msg(&mut input);
                    let _ = peers[i].inp.push(msg);
                }
            }
            5 | 6 => {
                if let Some(i) = peer_idx {
                    let mut batch = Vec::new();
                    if op % 12 == 5 {
                        batch.extend(peers[i].out.pop());
                    } else {
                        peers[i].out.pop_batch(&mut batch, 1 + pick % 4);
                    }
                    let id = peers[i].id;
                    for msg in batch {
                        if let Some(tag) = check_whole(msg.frames(), "peer outbound") {
                            assert!(
                                sent.contains(&tag),
                                "peer got a message never sent: {msg:?}"
                            );
                            let to = delivered.entry(tag).or_default();
                            assert!(to.insert(id), "message {tag} delivered twice to a peer");
                            assert!(
                                broadcast || to.len() == 1,
                                "message {tag} delivered to several peers"
                            );
                        }
                    }
                }
            }
            7 => {
                let arg = input.byte();
                let on = arg & 1 != 0;
                let len = usize::from(arg >> 1) % 4;
                let bytes = input.take(len);
                let opt = match pick % 10 {
                    0 => PatternOpt::Subscribe(bytes),
                    1 => PatternOpt::Unsubscribe(bytes),
                    2 => PatternOpt::ReqRelaxed(on),
                    3 => PatternOpt::ReqCorrelate(on),
                    4 => PatternOpt::RouterMandatory(on),
                    5 => PatternOpt::RouterHandover(on),
                    6 => PatternOpt::ProbeRouter(on),
                    7 => PatternOpt::XpubVerbose(on),
                    8 => PatternOpt::XpubWelcomeMsg(on.then_some(bytes)),
                    _ => PatternOpt::ConnectRoutingId(bytes),
                };
                let _ = pattern.set_opt(opt);
            }
            8 | 9 => {
                // ROUTER: address a known peer (or an unknown id) in the first frame.
                let first = (socket_type == SocketType::ROUTER).then(|| match peer_idx {
                    Some(i) if pick & 0x80 == 0 => peers[i].routing_id.clone(),
                    _ => Bytes::from_static(b"nobody"),
                });
                let (tag, msg) = if op % 12 == 9 {
                    (None, raw_msg(&mut input))
                } else {
                    // XSUB takes a first frame starting with 0 or 1 for a subscription and
                    // replays that frame alone to later peers.
                    let xsub = socket_type == SocketType::XSUB;
                    let (tag, msg) = tracked_msg(&mut input, first, xsub);
                    (Some(tag), msg)
                };
                let result = if msg.frames().len() == 1 {
                    pattern.send(msg, false)
                } else {
                    match pattern.admit(&msg.frames()[0]) {
                        Ok(true) => pattern.send(msg, true),
                        Ok(false) => Err(SendError::WouldBlock(msg)),
                        Err(e) => Err(e),
                    }
                };
                match (result, tag) {
                    (Ok(()), Some(tag)) => {
                        sent.insert(tag);
                    }
                    (Err(SendError::WouldBlock(back)), Some(tag)) => {
                        assert_eq!(
                            check_whole(back.frames(), "handed back"),
                            Some(tag),
                            "a refused message came back altered"
                        );
                        handed_back.insert(tag);
                    }
                    _ => {}
                }
            }
            10 => {
                if let Ok(Some((msg, _))) = pattern.recv() {
                    if let Some(tag) = check_whole(msg.frames(), "recv") {
                        assert!(
                            pushed.contains(&tag),
                            "received a message no peer pushed: {msg:?}"
                        );
                        assert!(received.insert(tag), "message {tag} received twice");
                    }
                }
            }
            _ => {
                let _ = pattern.can_send();
                let _ = pattern.can_recv();
            }
        }
        // SUB and XSUB force their subscriptions into the outbound pipes (they are never
        // dropped, by design), so only their inbound pipes are bounded.
        let out_bounded = !matches!(socket_type, SocketType::SUB | SocketType::XSUB);
        for p in &peers {
            for pipe in [&p.out, &p.inp] {
                if hwm > 0 && (out_bounded || Arc::ptr_eq(pipe, &p.inp)) {
                    assert!(
                        pipe.len() <= hwm + 1,
                        "{socket_type:?}: pipe holds {} messages with HWM {hwm}",
                        pipe.len()
                    );
                }
            }
        }
    }
    assert!(
        sent.is_disjoint(&handed_back),
        "a message was both taken and handed back"
    );
    ops
}

// ---------------------------------------------------------------------------------------------
// Reliable-PUB discovery and subscriber machines

/// A node id from one input byte (a handful of ids, so that operations collide).
fn fuzz_node(b: u8) -> crate::rpub::wire::Id128 {
    crate::rpub::wire::Id128([b % 4; 16])
}

/// A length byte then that many bytes.
fn fuzz_blob<'a>(input: &mut Input<'a>) -> &'a [u8] {
    let len = usize::from(input.byte());
    input.take(len)
}

/// A structured discovery message from a few input bytes.
fn fuzz_discovery_msg(input: &mut Input<'_>) -> crate::rpub::wire::DiscoveryMessage {
    use crate::rpub::wire::{
        AckStatus, DiscoveryMessage, Endpoint, EventKind, LeaveReason, NodeRecord, NodeState,
    };
    let kind = input.byte();
    let id = fuzz_node(input.byte());
    let incarnation = u64::from(input.byte() % 4);
    let endpoints = (0..input.byte() % 3)
        .map(|i| Endpoint {
            name: format!("role{i}"),
            uri: format!("tcp://10.0.0.{}:5555", input.byte() % 3),
        })
        .collect::<Vec<_>>();
    let record = |input: &mut Input<'_>| NodeRecord {
        id: fuzz_node(input.byte()),
        incarnation: u64::from(input.byte() % 4),
        state: if input.byte() & 1 == 0 {
            NodeState::Alive
        } else {
            NodeState::Left
        },
        lease_left_ms: u32::from(input.byte()) * 100,
        endpoints: endpoints.clone(),
    };
    match kind % 8 {
        0 => DiscoveryMessage::Register {
            id,
            incarnation,
            lease_ms: u32::from(input.byte()) * 50,
            endpoints: endpoints.clone(),
        },
        1 => DiscoveryMessage::Renew { id, incarnation },
        2 => DiscoveryMessage::Unregister { id, incarnation },
        3 => DiscoveryMessage::List {
            request_id: u64::from(input.byte()),
        },
        4 => DiscoveryMessage::Ack {
            status: match input.byte() % 4 {
                0 => AckStatus::Ok,
                1 => AckStatus::Stale,
                2 => AckStatus::Unknown,
                _ => AckStatus::Bad,
            },
            id,
            incarnation,
            lease_ms: u32::from(input.byte()) * 50,
        },
        5 => DiscoveryMessage::ListReply {
            request_id: u64::from(input.byte()),
            instance: id,
            nodes: (0..input.byte() % 4).map(|_| record(input)).collect(),
        },
        _ => DiscoveryMessage::Event {
            kind: match input.byte() % 5 {
                0 => EventKind::Join,
                1 => EventKind::Leave(LeaveReason::None),
                2 => EventKind::Leave(LeaveReason::Unregistered),
                3 => EventKind::Leave(LeaveReason::Expired),
                _ => EventKind::Leave(LeaveReason::Superseded),
            },
            instance: id,
            node: record(input),
        },
    }
}

/// Drives the discovery machines of `rpub::discovery` with arbitrary operations: a
/// [`LeaseTable`](crate::rpub::discovery::LeaseTable) (instance 0), a
/// [`Registrar`](crate::rpub::discovery::Registrar) registering with it, and a
/// [`DiscoveryClient`](crate::rpub::discovery::DiscoveryClient) of three instances, fed
/// structured messages, raw frames (decoded by their `handle_frame`), the table's own
/// replies and events, and a clock that only moves forward (op byte `% 8`).
///
/// Checks that nothing panics; every reply and event the table produces encodes and
/// decodes back to itself; the table answers every request; after `poll_expired(now)` no
/// entry expires at or before `now`; the client's `Up`/`Down` changes, applied to a model,
/// always give exactly its `nodes()`, all alive, and a `Down` only for a node that was up.
///
/// Returns the number of operations run.
pub fn discovery_ops(data: &[u8]) -> u64 {
    use crate::rpub::discovery::{
        ClientConfig, DiscoveryClient, LeaseConfig, LeaseTable, NodeChange, Registrar,
    };
    use crate::rpub::wire::{DiscoveryMessage, Endpoint, NodeState};

    let mut input = Input::new(data);
    let mut now = 0u64;
    let mut table = LeaseTable::new(fuzz_node(9), LeaseConfig::default());
    let mut registrar = Registrar::new(
        fuzz_node(1),
        1,
        3000,
        vec![Endpoint {
            name: "pub".into(),
            uri: "tcp://10.0.0.1:5555".into(),
        }],
        1,
    );
    let mut client = DiscoveryClient::new(ClientConfig::default(), 3);
    let mut model: BTreeMap<crate::rpub::wire::Id128, crate::rpub::wire::NodeRecord> =
        BTreeMap::new();
    let mut ops = 0u64;

    let roundtrip = |m: &DiscoveryMessage| {
        let enc = m.encode().expect("a produced message encodes");
        assert_eq!(
            DiscoveryMessage::decode(&enc).as_ref(),
            Ok(m),
            "produced message does not round-trip"
        );
    };
    let apply = |model: &mut BTreeMap<_, _>, changes: Vec<NodeChange>| {
        for c in changes {
            match c {
                NodeChange::Up(r) => {
                    assert_eq!(r.state, NodeState::Alive, "Up with a left record");
                    model.insert(r.id, r);
                }
                NodeChange::Down { id, .. } => {
                    assert!(model.remove(&id).is_some(), "Down for a node not up");
                }
            }
        }
    };

    while !input.is_empty() {
        ops += 1;
        let op = input.byte();
        match op % 8 {
            0 => {
                let msg = fuzz_discovery_msg(&mut input);
                let out = table.handle(&msg, now);
                let reply = out.reply.expect("the table answers every request");
                roundtrip(&reply);
                for e in &out.events {
                    roundtrip(e);
                    apply(&mut model, client.handle(0, e, now));
                }
                if let DiscoveryMessage::ListReply { .. } = reply {
                    apply(&mut model, client.handle(0, &reply, now));
                }
            }
            1 => {
                let frame = fuzz_blob(&mut input);
                if let Ok((reply, events)) = table.handle_frame(frame, now) {
                    assert!(reply.is_some(), "the table answers every request");
                    for e in events {
                        assert_eq!(e.len(), 2, "event frames");
                        let msg = DiscoveryMessage::decode(&e[1]).expect("event decodes");
                        apply(&mut model, client.handle(0, &msg, now));
                    }
                }
            }
            2 => {
                let instance = usize::from(op >> 3) % 4;
                let frame = fuzz_blob(&mut input);
                if let Ok(changes) = client.handle_frame(instance, frame, now) {
                    apply(&mut model, changes);
                }
            }
            3 => {
                let instance = usize::from(op >> 3) % 4;
                let msg = fuzz_discovery_msg(&mut input);
                apply(&mut model, client.handle(instance, &msg, now));
            }
            4 => {
                now += u64::from(input.byte()) * 250;
                for e in table.poll_expired(now) {
                    roundtrip(&e);
                    apply(&mut model, client.handle(0, &e, now));
                }
                if let Some(t) = table.next_expiry() {
                    assert!(
                        t > now,
                        "an entry expires at {t} <= now {now} after polling"
                    );
                }
                let (reqs, changes) = client.poll(now);
                apply(&mut model, changes);
                for (_, req) in reqs {
                    let out = table.handle(&req, now);
                    let reply = out.reply.expect("the table answers LIST");
                    roundtrip(&reply);
                    for e in &out.events {
                        apply(&mut model, client.handle(0, e, now));
                    }
                    apply(&mut model, client.handle(0, &reply, now));
                }
            }
            5 => {
                for (_, msg) in registrar.poll(now) {
                    roundtrip(&msg);
                    let out = table.handle(&msg, now);
                    let reply = out.reply.expect("the table answers");
                    for e in &out.events {
                        apply(&mut model, client.handle(0, e, now));
                    }
                    let _ = registrar.handle_ack(0, &reply, now);
                }
            }
            6 => {
                let msg = fuzz_discovery_msg(&mut input);
                let _ = registrar.handle_ack(usize::from(op >> 3) % 2, &msg, now);
                if op & 0x80 != 0 {
                    registrar.set_incarnation(registrar.incarnation() + 1);
                }
            }
            _ => {
                if op & 0x80 != 0 {
                    for (_, msg) in registrar.unregister() {
                        let out = table.handle(&msg, now);
                        for e in &out.events {
                            apply(&mut model, client.handle(0, e, now));
                        }
                    }
                }
                let _ = client.next_timer_at();
                let _ = table.list(now);
            }
        }
        let nodes = client.nodes();
        assert!(
            nodes.iter().all(|r| r.state == NodeState::Alive),
            "client lists a left node"
        );
        // `Up` is reported for a new node, incarnation or endpoints, not for a lease that
        // only got longer, so the remaining lease is not compared.
        let view = |r: &crate::rpub::wire::NodeRecord| (r.id, r.incarnation, r.endpoints.clone());
        assert_eq!(
            nodes.iter().map(view).collect::<Vec<_>>(),
            model.values().map(view).collect::<Vec<_>>(),
            "client changes disagree with its nodes()"
        );
    }
    ops
}

/// Drives an rpub [`Subscriber`](crate::rpub::subscriber::Subscriber) (subscribed to every
/// stream) with arbitrary DATA, HEARTBEAT and replay-channel frames, structured (two
/// publishers, three epochs, three streams, small seqs) or raw, and a clock that only moves
/// forward. Byte 0: join policy (`% 5`), byte 1: reorder window (`% 16 + 1`). Then each op
/// (byte `% 8`; bit 6 picks the RPUB/2 DATA layout): DATA, HEARTBEAT, replay reply
/// (RETRANSMISSION, JOIN, END, GAP, BUSY), raw
/// data-channel frames, raw replay frames, advance the clock and poll the timers (the
/// REQUESTs must encode and decode back), take up to a few deliveries, cursor and stats.
///
/// Checks that nothing panics and that, per (publisher, epoch, stream), delivered messages
/// and gaps come in increasing seq order with no seq delivered twice (a gap `from..=to` has
/// `from <= to` and lies after everything delivered before it).
///
/// Returns the number of deliveries taken.
pub fn rpub_subscriber_ops(data: &[u8]) -> u64 {
    use crate::rpub::subscriber::{Delivery, JoinPolicy, Subscriber, SubscriberConfig};
    use crate::rpub::wire::{
        encode_cursor, DataHeader, DataMessage, Heartbeat, Id128, ReplayReply, ReplayRequest,
        RequestKind, StreamMark, FLAG_RETRANSMISSION,
    };

    let mut input = Input::new(data);
    let join_policy = match input.byte() % 5 {
        0 => JoinPolicy::FromNow,
        1 => JoinPolicy::FromOldest,
        2 => JoinPolicy::FromSeq(3),
        3 => JoinPolicy::LastN(2),
        _ => JoinPolicy::FromSeq(0),
    };
    let config = SubscriberConfig {
        join_policy,
        reorder_window: u64::from(input.byte() % 16) + 1,
        slow_consumer_threshold: 64,
        ..SubscriberConfig::default()
    };
    let mut sub = Subscriber::new(config);
    sub.subscribe(b"");
    let publisher = |b: u8| Id128([b & 1; 16]);
    let stream = |b: u8| Bytes::from_static([&b"a"[..], b"b", b"ab"][usize::from(b % 3)]);
    let mut now = 1u64;
    let mut last: HashMap<(Id128, u64, Bytes), u64> = HashMap::new();
    let mut taken = 0u64;

    let mut take = |sub: &mut Subscriber, max: usize| {
        for _ in 0..max {
            let Some(d) = sub.poll_event() else { break };
            taken += 1;
            let (key, from, to) = match d {
                Delivery::Message(m) => ((m.publisher, m.epoch, m.stream), m.seq, m.seq),
                Delivery::UnrecoverableGap {
                    publisher,
                    epoch,
                    stream,
                    from,
                    to,
                } => ((publisher, epoch, stream), from, to),
                _ => continue,
            };
            assert!(from <= to, "gap {from}..={to} is empty");
            if let Some(&prev) = last.get(&key) {
                assert!(
                    from > prev,
                    "{key:?}: seq {from} delivered after {prev} (duplicate or out of order)"
                );
            }
            last.insert(key, to);
        }
    };

    while !input.is_empty() {
        let op = input.byte();
        match op % 8 {
            0 => {
                let (p, e, s, seq) = (input.byte(), input.byte(), input.byte(), input.byte());
                let m = DataMessage {
                    stream: stream(s),
                    header: DataHeader {
                        flags: if op & 0x80 != 0 {
                            FLAG_RETRANSMISSION
                        } else {
                            0
                        },
                        publisher: publisher(p),
                        epoch: u64::from(e % 3) + 1,
                        seq: u64::from(seq % 32),
                        timestamp_ms: now,
                    },
                    payload: vec![Bytes::copy_from_slice(fuzz_blob(&mut input))],
                };
                // Both DATA layouts; RPUB/2 through the owned decoder of the bus.
                let _ = if op & 0x40 != 0 {
                    sub.handle_data_owned(m.encode_v2(), now)
                } else {
                    sub.handle_data(&m.encode(), now)
                };
            }
            1 => {
                let (p, e) = (input.byte(), input.byte());
                let streams = (0..input.byte() % 3)
                    .map(|_| {
                        let (s, newest, oldest) = (input.byte(), input.byte(), input.byte());
                        StreamMark {
                            stream: stream(s),
                            newest: u64::from(newest % 32),
                            oldest: u64::from(oldest % 32),
                        }
                    })
                    .collect();
                let hb = Heartbeat {
                    publisher: publisher(p),
                    epoch: u64::from(e % 3) + 1,
                    timestamp_ms: now,
                    streams,
                };
                if let Ok(frames) = hb.encode() {
                    let _ = sub.handle_data(&frames, now);
                }
            }
            2 => {
                let (p, e, s, a, b) = (
                    input.byte(),
                    input.byte(),
                    input.byte(),
                    input.byte(),
                    input.byte(),
                );
                let (publisher, epoch, stream) = (publisher(p), u64::from(e % 3) + 1, stream(s));
                let (a, b) = (u64::from(a % 32), u64::from(b % 32));
                let reply = match op >> 3 & 0x07 {
                    0 | 1 => ReplayReply::Retransmission(DataMessage {
                        stream,
                        header: DataHeader {
                            flags: FLAG_RETRANSMISSION,
                            publisher,
                            epoch,
                            seq: a,
                            timestamp_ms: now,
                        },
                        payload: vec![Bytes::from_static(b"r")],
                    }),
                    2 => ReplayReply::Join {
                        publisher,
                        epoch,
                        stream,
                        kind_code: (b % 5) as u8,
                        join_at: a,
                        newest: b,
                    },
                    3 => ReplayReply::End {
                        publisher,
                        epoch,
                        stream,
                        from: a,
                        to: b,
                    },
                    4 | 5 => ReplayReply::Gap {
                        publisher,
                        epoch,
                        stream,
                        from: a,
                        to: b,
                    },
                    _ => ReplayReply::Busy {
                        request: ReplayRequest {
                            publisher,
                            epoch,
                            stream,
                            kind: RequestKind::Range { from: a, to: b },
                        },
                        retry_after_ms: u32::from(b as u8) * 10,
                    },
                };
                let version = if op & 0x40 != 0 { 2 } else { 1 };
                let _ = sub.handle_replay_reply(&reply.encode_version(version), now);
            }
            3 | 4 => {
                let frames = fuzz_frames(fuzz_blob(&mut input));
                if op % 8 == 3 {
                    let _ = sub.handle_data(&frames, now);
                } else {
                    let _ = sub.handle_replay_reply(&frames, now);
                }
            }
            5 => {
                now += u64::from(input.byte()) * 20;
                for req in sub.poll_timers(now) {
                    assert_eq!(
                        ReplayRequest::decode(&req.encode()).as_ref(),
                        Ok(&req),
                        "REQUEST round trip"
                    );
                }
                let _ = sub.next_timer_at();
            }
            6 => take(&mut sub, usize::from(op >> 3) + 1),
            _ => {
                let cursor = sub.cursor();
                encode_cursor(&cursor).expect("cursor encodes");
                let _ = sub.stats();
                let _ = sub.queued();
            }
        }
    }
    take(&mut sub, usize::MAX);
    taken
}

// ---------------------------------------------------------------------------------------------
// Reliable-PUB publisher (the replay service)

/// The publisher's epoch in [`rpub_publisher_ops`].
const PUB_EPOCH: u64 = 7;

/// Streams of [`rpub_publisher_ops`]: the first three are published on, `zz` never is.
const PUB_STREAMS: [&[u8]; 4] = [b"a", b"b", b"ab", b"zz"];

/// ROUTER routing ids of the peers that send replay requests.
const PUB_PEERS: [&[u8]; 4] = [b"p0", b"p1", b"p2", b"p3"];

/// What the retention ring must hold, after the spec (section 7.1): one FIFO over all
/// streams, evicting the oldest entry while the count, byte (payload + stream name) or age
/// bound is exceeded, checked when a message is appended and when the publisher expires
/// (`poll_replay`, and building heartbeats).
struct RetentionModel {
    limits: crate::rpub::retention::RetentionLimits,
    /// (stream, seq, stored at, size).
    ring: std::collections::VecDeque<(Bytes, u64, u64, usize)>,
    bytes: usize,
}

impl RetentionModel {
    fn enforce(&mut self, now: u64) {
        while let Some(&(_, _, stored, _)) = self.ring.front() {
            if self.ring.len() > self.limits.max_messages
                || self.bytes > self.limits.max_bytes
                || now.saturating_sub(stored) > self.limits.max_age_ms
            {
                let (_, _, _, size) = self.ring.pop_front().unwrap();
                self.bytes -= size;
            } else {
                break;
            }
        }
    }

    fn append(&mut self, stream: &Bytes, seq: u64, size: usize, now: u64) {
        self.ring.push_back((stream.clone(), seq, now, size));
        self.bytes += size;
        self.enforce(now);
    }

    fn retained(&self, stream: &[u8], seq: u64) -> bool {
        self.ring.iter().any(|(s, q, ..)| s == stream && *q == seq)
    }

    fn oldest(&self, stream: &[u8]) -> Option<u64> {
        self.ring.iter().find(|(s, ..)| s == stream).map(|e| e.1)
    }
}

/// What one ROUTER peer asked and got on one stream (current epoch only).
#[derive(Default)]
struct ReplayLedger {
    /// Every accepted RANGE request (queued or merged, not refused with BUSY): `(from, to)`.
    accepted: Vec<(u64, u64)>,
    /// RETX and GAP answers received, per seq.
    answered: HashMap<u64, u32>,
    /// Answers per seq that the ENDs received so far vouch for (each END completes a job,
    /// which answered every seq of its range up to `newest`).
    required: HashMap<u64, u32>,
    /// END replies per `(from, to)`.
    ends: HashMap<(u64, u64), u32>,
    /// Ranges accepted since their last END.
    awaiting: BTreeSet<(u64, u64)>,
}

impl ReplayLedger {
    /// Number of accepted requests whose range holds `seq`.
    fn covering(&self, seq: u64) -> u32 {
        self.accepted
            .iter()
            .filter(|&&(from, to)| from <= seq && seq <= to)
            .count() as u32
    }

    /// Records one answer (RETX or GAP) for `seq`: no request may get a seq twice.
    fn answer(&mut self, seq: u64, what: &str) {
        let n = self.answered.entry(seq).or_default();
        *n += 1;
        let n = *n;
        // (The first answer only needs one covering request: cheaper to find than all.)
        let ok = if n == 1 {
            self.accepted
                .iter()
                .any(|&(from, to)| from <= seq && seq <= to)
        } else {
            n <= self.covering(seq)
        };
        assert!(
            ok,
            "{what}: seq {seq} answered {n} times for {} covering request(s)",
            self.covering(seq)
        );
    }
}

/// The publisher under test and everything [`rpub_publisher_ops`] knows it should do.
struct PublisherHarness {
    publisher: crate::rpub::publisher::Publisher,
    config: crate::rpub::publisher::PublisherConfig,
    now: u64,
    /// Payload and timestamp of every published seq, per stream (index = seq - 1).
    published: BTreeMap<Bytes, Vec<(Vec<Bytes>, u64)>>,
    retention: RetentionModel,
    ledgers: HashMap<(Bytes, Bytes), ReplayLedger>,
    /// `(stream, from, to)` of the RANGE requests accepted since the last `poll_replay`: their
    /// jobs have not started, so an identical request must merge, never get BUSY.
    fresh: HashSet<(Bytes, u64, u64)>,
    /// Latest bound on `next_heartbeat_at()` (spec 5.2: `hb_initial` after the last DATA,
    /// at least every `hb_max`).
    hb_bound: u64,
    last_hb: Option<u64>,
    /// Expected counters.
    requests: u64,
    retransmissions: u64,
    gaps: u64,
    busy: u64,
    heartbeats: u64,
    replies: u64,
}

impl PublisherHarness {
    fn newest(&self, stream: &[u8]) -> u64 {
        self.published.get(stream).map_or(0, |v| v.len() as u64)
    }

    /// Oldest retained seq of `stream`, or newest + 1 (as heartbeats and JOIN put it).
    fn oldest_or_next(&self, stream: &[u8]) -> u64 {
        self.retention
            .oldest(stream)
            .unwrap_or(self.newest(stream) + 1)
    }

    fn publish(&mut self, stream: &[u8], payload: Vec<Bytes>) {
        use crate::rpub::wire::{decode_data_channel, validate_stream_name, DataChannelMessage};
        let now = self.now;
        let newest = self.newest(stream);
        match self.publisher.publish_parts(stream, payload.clone(), now) {
            Ok(frames) => {
                assert!(
                    validate_stream_name(stream).is_ok(),
                    "published on {stream:?}"
                );
                let Ok(DataChannelMessage::Data(m)) = decode_data_channel(&frames) else {
                    panic!("publish produced {frames:?}");
                };
                assert_eq!(&m.stream[..], stream, "DATA stream");
                assert_eq!(m.header.flags, 0, "live DATA flags");
                assert_eq!(m.header.publisher, self.publisher.id(), "DATA publisher");
                assert_eq!(m.header.epoch, PUB_EPOCH, "DATA epoch");
                assert_eq!(m.header.seq, newest + 1, "DATA seq");
                assert_eq!(m.header.timestamp_ms, now, "DATA timestamp");
                assert_eq!(m.payload, payload, "DATA payload");
                let size = payload.iter().map(Bytes::len).sum::<usize>() + stream.len();
                self.published
                    .entry(m.stream.clone())
                    .or_default()
                    .push((payload, now));
                self.retention.append(&m.stream, m.header.seq, size, now);
                let initial = now.saturating_add(self.config.heartbeat_initial_ms.max(1));
                self.hb_bound = match self.last_hb {
                    Some(t) => initial.min(t.saturating_add(self.config.heartbeat_max_ms.max(1))),
                    None => initial,
                };
            }
            Err(_) => {
                assert!(
                    validate_stream_name(stream).is_err(),
                    "publish on {stream:?} refused"
                );
                assert_eq!(self.publisher.newest(stream), newest, "refused publish");
            }
        }
    }

    /// `poll_heartbeat` (or, if `forced`, `heartbeat`): what is due and nothing else; every
    /// stream once with its newest and oldest retained seq, at most `max_heartbeat_entries`
    /// per message.
    fn heartbeat(&mut self, forced: bool) {
        use crate::rpub::wire::{decode_data_channel, DataChannelMessage, StreamMark};
        let now = self.now;
        let due = self.publisher.next_heartbeat_at();
        let out = if forced {
            self.publisher.heartbeat(now)
        } else {
            self.publisher.poll_heartbeat(now)
        };
        if out.is_empty() {
            assert!(!forced && now < due, "no heartbeat at {now}, due at {due}");
            return;
        }
        assert!(
            forced || now >= due,
            "heartbeat at {now} before it was due at {due}"
        );
        self.retention.enforce(now);
        let per = self
            .config
            .max_heartbeat_entries
            .clamp(1, usize::from(u16::MAX));
        let expected: Vec<StreamMark> = self
            .published
            .iter()
            .map(|(stream, msgs)| StreamMark {
                stream: stream.clone(),
                newest: msgs.len() as u64,
                oldest: self.oldest_or_next(stream),
            })
            .collect();
        assert_eq!(
            out.len(),
            expected.len().div_ceil(per).max(1),
            "HEARTBEAT messages for {} streams",
            expected.len()
        );
        let mut marks = Vec::new();
        for frames in &out {
            let Ok(DataChannelMessage::Heartbeat(hb)) = decode_data_channel(frames) else {
                panic!("heartbeat produced {frames:?}");
            };
            assert_eq!(hb.publisher, self.publisher.id(), "HEARTBEAT publisher");
            assert_eq!(hb.epoch, PUB_EPOCH, "HEARTBEAT epoch");
            assert_eq!(hb.timestamp_ms, now, "HEARTBEAT timestamp");
            assert!(hb.streams.len() <= per, "HEARTBEAT with too many streams");
            marks.extend(hb.streams);
        }
        assert_eq!(marks, expected, "HEARTBEAT stream marks");
        self.heartbeats += out.len() as u64;
        if !forced {
            let next = self.publisher.next_heartbeat_at();
            let max = self.config.heartbeat_max_ms.max(1);
            assert!(
                next > now && next <= now.saturating_add(max),
                "next heartbeat at {next} after one at {now} (hb_max {max})"
            );
            self.last_hb = Some(now);
            self.hb_bound = now.saturating_add(max);
        }
    }

    /// Hands `frames` from `peer` to `handle_replay_frames` and checks the immediate answer
    /// against spec 6.2.
    fn request(&mut self, peer: &[u8], frames: &[Bytes]) {
        use crate::rpub::wire::{ReplayReply, ReplayRequest, RequestKind};
        let peer = Bytes::copy_from_slice(peer);
        let decoded = ReplayRequest::decode(frames);
        let result = self
            .publisher
            .handle_replay_frames(peer.clone(), frames, self.now);
        let (req, out) = match (decoded, result) {
            (Ok(req), Ok(out)) => (req, out),
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "handle_replay_frames error");
                return;
            }
            (d, r) => panic!("REQUEST decodes as {d:?} but is handled as {r:?}"),
        };
        self.replies += out.len() as u64;
        let replies: Vec<ReplayReply> = out
            .iter()
            .map(|f| ReplayReply::decode(f).expect("immediate reply decodes"))
            .collect();
        let id = self.publisher.id();
        if req.publisher != id {
            assert!(
                replies.is_empty(),
                "answered a request for another publisher"
            );
            return;
        }
        self.requests += 1;
        let stream = req.stream.clone();
        let newest = self.newest(&stream);
        let oldest = self.oldest_or_next(&stream);
        let kind = req.kind;
        match kind {
            RequestKind::Range { from, to } if req.epoch != PUB_EPOCH => {
                // Spec: GAP(from, to) + END. Seq 0 never exists, so the GAP starts at 1 and
                // is left out for 0..=0.
                let mut expected = Vec::new();
                if to >= 1 {
                    expected.push(ReplayReply::Gap {
                        publisher: id,
                        epoch: req.epoch,
                        stream: stream.clone(),
                        from: from.max(1),
                        to,
                    });
                }
                expected.push(ReplayReply::End {
                    publisher: id,
                    epoch: req.epoch,
                    stream,
                    from,
                    to,
                });
                assert_eq!(replies, expected, "answer to a RANGE of another epoch");
            }
            RequestKind::Range { from, to } => match replies.as_slice() {
                [] => {
                    let ledger = self.ledgers.entry((peer, stream.clone())).or_default();
                    ledger.accepted.push((from, to));
                    ledger.awaiting.insert((from, to));
                    self.fresh.insert((stream, from, to));
                }
                [ReplayReply::Busy {
                    request,
                    retry_after_ms,
                }] => {
                    assert_eq!(request, &req, "BUSY echoes the request");
                    assert_eq!(*retry_after_ms, self.config.busy_retry_ms, "BUSY hint");
                    assert!(
                        self.publisher.has_pending_replay(),
                        "BUSY with no job queued"
                    );
                    assert!(
                        !self.fresh.contains(&(stream, from, to)),
                        "BUSY for a request identical to a job that has not started"
                    );
                    self.busy += 1;
                }
                other => panic!("RANGE {from}..={to} answered at once with {other:?}"),
            },
            _ => {
                let join_at = match kind {
                    RequestKind::FromNow => newest + 1,
                    RequestKind::FromOldest => oldest,
                    // Seq 0 never exists: joining at 0 is joining at 1.
                    RequestKind::FromSeq(n) => n.max(1),
                    RequestKind::LastN(n) => oldest.max((newest + 1).saturating_sub(n)),
                    RequestKind::Range { .. } => unreachable!(),
                };
                let expected = ReplayReply::Join {
                    publisher: id,
                    epoch: PUB_EPOCH,
                    stream,
                    kind_code: kind.code(),
                    join_at,
                    newest,
                };
                assert_eq!(replies, [expected], "late-join answer");
            }
        }
    }

    /// `poll_replay(now, budget)`: within the budget; every RETX a retained, published
    /// message of a range the peer asked for, every GAP a run of seqs not retained, no seq
    /// twice per request; an END only for an accepted request, after every seq of its range
    /// (up to newest) was answered.
    fn poll_replay(&mut self, budget: usize) {
        use crate::rpub::wire::{ReplayReply, FLAG_RETRANSMISSION};
        let now = self.now;
        let out = self.publisher.poll_replay(now, budget);
        self.fresh.clear();
        self.retention.enforce(now);
        self.replies += out.len() as u64;
        let decoded: Vec<(Bytes, ReplayReply)> = out
            .iter()
            .map(|(peer, f)| {
                let reply = ReplayReply::decode(f).expect("replay reply decodes");
                (peer.clone(), reply)
            })
            .collect();
        // The budget counts RETX and GAP per destination peer; END is free. The code lets
        // the last step overshoot (a message is not split across its merged peers), so
        // check that the last step started within the budget.
        let sends: Vec<(&Bytes, &Vec<Bytes>)> = out
            .iter()
            .zip(&decoded)
            .filter(|(_, (_, r))| !matches!(r, ReplayReply::End { .. }))
            .map(|((p, f), _)| (p, f))
            .collect();
        if let Some(&(_, last)) = sends.last() {
            // The last step: the trailing run of the same frames to distinct peers.
            let mut peers = Vec::new();
            let last_step = sends
                .iter()
                .rev()
                .take_while(|&&(p, f)| {
                    let new_peer = f == last && !peers.contains(&p);
                    peers.push(p);
                    new_peer
                })
                .count();
            assert!(
                sends.len() - last_step < budget,
                "poll_replay(budget {budget}) started a step after {} sends",
                sends.len() - last_step
            );
        }
        let id = self.publisher.id();
        for (peer, reply) in decoded {
            match reply {
                ReplayReply::Retransmission(m) => {
                    assert_eq!(m.header.flags, FLAG_RETRANSMISSION, "RETX flags");
                    assert_eq!(m.header.publisher, id, "RETX publisher");
                    assert_eq!(m.header.epoch, PUB_EPOCH, "RETX epoch");
                    let seq = m.header.seq;
                    let sent = seq
                        .checked_sub(1)
                        .and_then(|i| self.published.get(&m.stream)?.get(usize::try_from(i).ok()?));
                    let Some((payload, ts)) = sent else {
                        panic!("RETX of {:?} seq {seq}, never published", m.stream);
                    };
                    assert_eq!(&m.payload, payload, "RETX payload of seq {seq}");
                    assert_eq!(m.header.timestamp_ms, *ts, "RETX timestamp of seq {seq}");
                    assert!(
                        self.retention.retained(&m.stream, seq),
                        "RETX of seq {seq}, which is no longer retained"
                    );
                    self.retransmissions += 1;
                    self.ledgers
                        .entry((peer, m.stream))
                        .or_default()
                        .answer(seq, "RETX");
                }
                ReplayReply::Gap {
                    publisher,
                    epoch,
                    stream,
                    from,
                    to,
                } => {
                    assert_eq!((publisher, epoch), (id, PUB_EPOCH), "GAP publisher, epoch");
                    let newest = self.newest(&stream);
                    assert!(
                        1 <= from && to <= newest,
                        "GAP {from}..={to} outside 1..={newest}"
                    );
                    for seq in from..=to {
                        assert!(
                            !self.retention.retained(&stream, seq),
                            "GAP {from}..={to} names retained seq {seq}"
                        );
                    }
                    let ledger = self.ledgers.entry((peer, stream.clone())).or_default();
                    for seq in from..=to {
                        ledger.answer(seq, "GAP");
                    }
                    // A GAP is a maximal run: it stops before a retained seq, at newest, or at
                    // the end of a requested range.
                    assert!(
                        to == newest
                            || self.retention.retained(&stream, to + 1)
                            || ledger.accepted.iter().any(|&(_, t)| t == to),
                        "GAP {from}..={to} stops before seq {} which is not retained",
                        to + 1
                    );
                    self.gaps += 1;
                }
                ReplayReply::End {
                    publisher,
                    epoch,
                    stream,
                    from,
                    to,
                } => {
                    assert_eq!((publisher, epoch), (id, PUB_EPOCH), "END publisher, epoch");
                    let newest = self.newest(&stream);
                    let ledger = self.ledgers.entry((peer, stream)).or_default();
                    let accepted = ledger.accepted.iter().filter(|&&r| r == (from, to)).count();
                    let ends = ledger.ends.entry((from, to)).or_default();
                    *ends += 1;
                    assert!(
                        *ends as usize <= accepted,
                        "END {from}..={to} #{ends} for {accepted} accepted request(s)"
                    );
                    ledger.awaiting.remove(&(from, to));
                    for seq in from.max(1)..=to.min(newest) {
                        let required = ledger.required.entry(seq).or_default();
                        *required += 1;
                        let answered = ledger.answered.get(&seq).copied().unwrap_or(0);
                        assert!(
                            answered >= *required,
                            "END {from}..={to} but seq {seq} answered {answered} times, {required} expected"
                        );
                    }
                }
                other => panic!("poll_replay produced {other:?}"),
            }
        }
    }

    /// Runs `poll_replay` until no job is left, then checks that every accepted request got
    /// its END.
    fn drain(&mut self, budget: usize) {
        let mut rounds = 0;
        while self.publisher.has_pending_replay() {
            rounds += 1;
            assert!(rounds <= 100_000, "replay jobs never finish");
            self.poll_replay(budget);
        }
    }

    /// Invariants between operations: the store holds what the model holds, counters agree,
    /// an accepted request is answered before the queue runs dry, heartbeats stay due.
    fn check(&self) {
        use crate::rpub::retention::RetentionStore;
        let store = self.publisher.store();
        assert_eq!(store.len(), self.retention.ring.len(), "retained messages");
        assert_eq!(store.bytes(), self.retention.bytes, "retained bytes");
        for stream in PUB_STREAMS {
            assert_eq!(
                store.oldest(stream),
                self.retention.oldest(stream),
                "oldest retained of {stream:?}"
            );
            assert_eq!(self.publisher.newest(stream), self.newest(stream), "newest");
        }
        if !self.publisher.has_pending_replay() {
            for ((peer, stream), ledger) in &self.ledgers {
                assert!(
                    ledger.awaiting.is_empty(),
                    "no job left but {peer:?} {stream:?} {:?} never got END",
                    ledger.awaiting
                );
            }
        }
        let stats = self.publisher.stats();
        let published: u64 = self.published.values().map(|v| v.len() as u64).sum();
        assert_eq!(stats.published, published, "stats.published");
        assert_eq!(stats.requests, self.requests, "stats.requests");
        assert_eq!(
            stats.retransmissions, self.retransmissions,
            "stats.retransmissions"
        );
        assert_eq!(stats.gaps, self.gaps, "stats.gaps");
        assert_eq!(stats.busy, self.busy, "stats.busy");
        assert_eq!(stats.heartbeats, self.heartbeats, "stats.heartbeats");
        assert!(
            stats.merged_requests <= stats.requests,
            "stats.merged_requests"
        );
        assert!(
            self.publisher.next_heartbeat_at() <= self.hb_bound,
            "next heartbeat at {} later than {}",
            self.publisher.next_heartbeat_at(),
            self.hb_bound
        );
    }
}

/// A seq operand for a request from one input byte, relative to a stream's newest and oldest
/// retained seq where that finds the edges: 0, 1, newest, newest + 1, oldest, oldest - 1,
/// `u64::MAX` (- 1), or a small value.
fn fuzz_seq(b: u8, newest: u64, oldest: u64) -> u64 {
    match b % 8 {
        0 => 0,
        1 => 1,
        2 => newest,
        3 => newest + 1,
        4 => oldest,
        5 => oldest.saturating_sub(1),
        6 => u64::MAX - u64::from(b >> 3 & 1),
        _ => u64::from(b >> 3),
    }
}

/// Drives an rpub [`Publisher`](crate::rpub::publisher::Publisher) (small retention ring, small
/// replay queue) as its ROUTER peers and its application would: publishes, clock steps,
/// heartbeats, replay REQUESTs (structured, mutated or raw) from four peers, and
/// `poll_replay` with budgets from 0 to 1000.
///
/// Byte 0: retention bounds (bits 0-2: 1-8 messages; bits 3-4: no byte bound, 48, 16 or
/// 4 bytes; bits 5-6: no age bound, 200, 40 or 0 ms). Byte 1: bits 0-1 `max_replay_jobs`
/// 1-4, bits 2-3 `replay_chunk` 0-3, bits 4-5 `max_heartbeat_entries` 0-3, bits 6-7
/// `heartbeat_initial_ms` 0, 5, 10, 15 (`heartbeat_max_ms` is 40). Then operations (byte
/// `% 8`, high bits as operands): publish (0-3 frames of 0-8 bytes on `a`, `b` or `ab`, or
/// with bit 7 on an invalid name), clock step (bit 7: backwards), `poll_heartbeat` (bit 7:
/// `heartbeat`), a RANGE request (seqs from [`fuzz_seq`], epochs current / other / 0 /
/// `u64::MAX`, bit 7 of the epoch byte: another publisher id), a late-join request, raw
/// frames (bit 7: a valid RANGE with one byte overwritten and maybe an extra frame),
/// `poll_replay` with a budget from op bits 3-5, drain the replay queue.
///
/// Checks (panics otherwise): nothing panics; what is published and heartbeats match a
/// model of the streams and of the retention ring (spec 7.1), and so do the store's length,
/// bytes and oldest seqs; every reply decodes; a request that does not decode is an error,
/// one for another publisher gets nothing; a RANGE of another epoch gets GAP + END, a
/// late join the JOIN of spec 6.1, a current RANGE nothing or BUSY (never while an identical
/// job has not started); `poll_replay` starts no send past its budget; a RETX is a retained,
/// published message (same payload and timestamp) of a range the peer asked for, a GAP a
/// maximal run of seqs up to newest that are not retained, and no request gets a seq twice;
/// an END answers an accepted request after every seq of it up to newest was answered; no
/// accepted request is left without END when the queue is empty; the counters agree.
///
/// Returns the number of replies checked.
pub fn rpub_publisher_ops(data: &[u8]) -> u64 {
    use crate::rpub::publisher::{Publisher, PublisherConfig};
    use crate::rpub::retention::RetentionLimits;
    use crate::rpub::wire::{Id128, ReplayRequest, RequestKind};

    let mut input = Input::new(data);
    let (l, c) = (input.byte(), input.byte());
    let limits = RetentionLimits {
        max_messages: usize::from(l & 0x07) + 1,
        max_bytes: [usize::MAX, 48, 16, 4][usize::from(l >> 3 & 3)],
        max_age_ms: [u64::MAX, 200, 40, 0][usize::from(l >> 5 & 3)],
    };
    let config = PublisherConfig {
        max_replay_jobs: usize::from(c & 3) + 1,
        replay_chunk: usize::from(c >> 2 & 3),
        max_heartbeat_entries: usize::from(c >> 4 & 3),
        heartbeat_initial_ms: u64::from(c >> 6) * 5,
        heartbeat_max_ms: 40,
        busy_retry_ms: 50,
        // Both DATA layouts (RPUB/1 and RPUB/2).
        data_version: 1 + (c & 1),
    };
    let id = Id128(*b"fuzzed-publisher");
    let mut h = PublisherHarness {
        publisher: Publisher::with_ring(id, PUB_EPOCH, config.clone(), limits),
        config,
        now: 1_000,
        published: BTreeMap::new(),
        retention: RetentionModel {
            limits,
            ring: std::collections::VecDeque::new(),
            bytes: 0,
        },
        ledgers: HashMap::new(),
        fresh: HashSet::new(),
        hb_bound: u64::MAX,
        last_hb: None,
        requests: 0,
        retransmissions: 0,
        gaps: 0,
        busy: 0,
        heartbeats: 0,
        replies: 0,
    };
    let long_name = [b'x'; 256];
    let epoch = |b: u8| match b % 8 {
        0 => PUB_EPOCH - 1,
        1 => PUB_EPOCH + 1,
        2 => 0,
        3 => u64::MAX,
        _ => PUB_EPOCH,
    };
    let publisher_id = |b: u8| if b & 0x80 != 0 { Id128([0xEE; 16]) } else { id };

    while !input.is_empty() {
        let op = input.byte();
        match op % 8 {
            0 => {
                let s = input.byte();
                let payload = (0..s >> 4 & 3)
                    .map(|_| {
                        let len = usize::from(input.byte() % 9);
                        Bytes::copy_from_slice(input.take(len))
                    })
                    .collect();
                let stream: &[u8] = if op & 0x80 != 0 {
                    [&b""[..], b"\0a", &long_name][usize::from(s & 0x0f) % 3]
                } else {
                    PUB_STREAMS[usize::from(s & 0x0f) % 3]
                };
                h.publish(stream, payload);
            }
            1 => {
                let step = u64::from(input.byte());
                h.now = if op & 0x80 != 0 {
                    h.now.saturating_sub(step)
                } else {
                    h.now + step * 2
                };
            }
            2 => h.heartbeat(op & 0x80 != 0),
            3 | 4 => {
                let (p, s, a, b, e) = (
                    input.byte(),
                    input.byte(),
                    input.byte(),
                    input.byte(),
                    input.byte(),
                );
                let stream = PUB_STREAMS[usize::from(s % 4)];
                let (newest, oldest) = (h.newest(stream), h.oldest_or_next(stream));
                let kind = if op % 8 == 3 {
                    RequestKind::Range {
                        from: fuzz_seq(a, newest, oldest),
                        to: fuzz_seq(b, newest, oldest),
                    }
                } else {
                    match a % 4 {
                        0 => RequestKind::FromNow,
                        1 => RequestKind::FromOldest,
                        2 => RequestKind::FromSeq(fuzz_seq(b, newest, oldest)),
                        _ => RequestKind::LastN(fuzz_seq(b, newest, oldest)),
                    }
                };
                let req = ReplayRequest {
                    publisher: publisher_id(e),
                    epoch: epoch(e),
                    stream: Bytes::from_static(stream),
                    kind,
                };
                h.request(PUB_PEERS[usize::from(p % 4)], &req.encode());
            }
            5 => {
                let peer = PUB_PEERS[usize::from(op >> 3 & 3)];
                let frames = if op & 0x80 != 0 {
                    let (s, a, b, pos, val) = (
                        input.byte(),
                        input.byte(),
                        input.byte(),
                        input.byte(),
                        input.byte(),
                    );
                    let req = ReplayRequest {
                        publisher: id,
                        epoch: PUB_EPOCH,
                        stream: Bytes::from_static(PUB_STREAMS[usize::from(s % 4)]),
                        kind: RequestKind::Range {
                            from: u64::from(a % 16),
                            to: u64::from(b % 16),
                        },
                    };
                    let mut frames = req.encode();
                    let mut body = frames[1].to_vec();
                    let i = usize::from(pos) % (body.len() + 8);
                    match body.get_mut(i) {
                        Some(byte) => *byte = val,
                        None => body.truncate(i),
                    }
                    frames[1] = Bytes::from(body);
                    if s & 0x80 != 0 {
                        frames.push(Bytes::copy_from_slice(fuzz_blob(&mut input)));
                    }
                    frames
                } else {
                    fuzz_frames(fuzz_blob(&mut input))
                };
                h.request(peer, &frames);
            }
            6 => {
                let budget = [0, 1, 2, 3, 4, 7, 16, 1000][usize::from(op >> 3 & 7)];
                h.poll_replay(budget);
            }
            _ => h.drain(usize::from(op >> 3) + 1),
        }
        h.check();
    }
    h.drain(64);
    h.check();
    h.replies
}
