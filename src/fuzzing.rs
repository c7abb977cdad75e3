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

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};

use crate::pattern::trie::{MultiTrie, Trie};
use crate::proto::command::{encode_metadata, parse_metadata};
use crate::proto::{
    Command, Decoder, Encoder, Frame, Greeting, Handshake, HandshakeConfig, HandshakeStatus,
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
    let mut input = Input::new(data);
    let entries = usize::from(input.byte() & 0x07) + 1;
    let sizes: Vec<usize> = input
        .take(entries)
        .iter()
        .map(|&b| if b == 0 { usize::MAX } else { usize::from(b) })
        .collect();
    let mut rest = input.data;
    let mut out = Vec::new();
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
/// Returns the size of the re-encoded frames.
pub fn decode_frames(data: &[u8]) -> u64 {
    let unlimited = data.first().is_some_and(|b| b & 0x80 != 0);
    let max = if unlimited {
        None
    } else {
        Some(FUZZ_MAX_MSG_SIZE)
    };
    let mut decoder = Decoder::new(max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    'feed: for chunk in chunks(data) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    check_reencoding(&frames, max)
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

/// Runs the RPUB/1 decoders of `rpub::wire` on arbitrary bytes: the data-channel, replay
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
            DataChannelMessage::Data(m) => m.encode(),
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
