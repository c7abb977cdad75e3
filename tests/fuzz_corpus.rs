//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and crash regressions
//! (`fuzz/regressions/<target>/`) through the same `ferromq::fuzzing` entry points the
//! libFuzzer targets call, so stable `cargo test` guards them without libFuzzer.
//!
//! `cargo test --test fuzz_corpus -- --ignored seed_corpus` (what `fuzz/seed.sh` runs)
//! regenerates the seed inputs from `zmtp-spec/vectors/*.hex`.

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use ferromq::fuzzing;
use ferromq::proto::{Decoder, Frame};

/// A `ferromq::fuzzing` entry point.
type Entry = fn(&[u8]) -> u64;

/// The fuzz targets and the entry point each one calls.
const TARGETS: [(&str, Entry); 5] = [
    ("decoder", fuzzing::decode_frames),
    ("handshake", fuzzing::handshake),
    ("command", fuzzing::parse_command),
    ("trie", fuzzing::trie_ops),
    ("rpub", fuzzing::rpub_wire),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Every regular file directly under `dir`, sorted (none if `dir` does not exist).
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file of `kind/<target>/` through its entry point; reports all failures at once.
fn replay(kind: &str) -> usize {
    let mut failures = Vec::new();
    let mut count = 0;
    for (target, entry) in TARGETS {
        for path in files_in(&fuzz_dir().join(kind).join(target)) {
            let data = fs::read(&path).expect("readable corpus file");
            count += 1;
            if let Err(e) = panic::catch_unwind(|| entry(&data)) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {msg}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} input(s) panicked:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}

#[test]
fn corpus_replays_cleanly() {
    let n = replay("corpus");
    assert!(n > 0, "no corpus files under {}", fuzz_dir().display());
}

#[test]
fn regressions_replay_cleanly() {
    replay("regressions");
}

/// Parses a `*.hex` vector: hex digit pairs, whitespace ignored, `#` comment lines skipped.
fn parse_hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| line.chars())
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_digit(16).expect("hex digit in vector") as u8)
        .collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// Chunk-schedule headers prepended to stream seeds (see `fuzzing::decode_frames`): the
/// whole input at once, one byte at a time, and 7-byte chunks.
const SCHEDULES: [(&str, &[u8]); 3] = [
    ("whole", &[0x00, 0x00]),
    ("bytewise", &[0x00, 0x01]),
    ("by7", &[0x00, 0x07]),
];

/// The command bodies in `stream` when it is read as frames (after a greeting, if any).
fn command_bodies(stream: &[u8]) -> Vec<Vec<u8>> {
    let start = if stream.len() >= 64 && stream[0] == 0xFF {
        64
    } else {
        0
    };
    let mut buf = BytesMut::from(&stream[start..]);
    let mut decoder = Decoder::new(None);
    let mut bodies = Vec::new();
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        if let Frame::Command(cmd) = frame {
            let mut body = BytesMut::new();
            cmd.encode_body(&mut body);
            bodies.push(body.to_vec());
        }
    }
    bodies
}

/// Writes the seed corpora from `zmtp-spec/vectors/*.hex`:
/// - `decoder`: each vector that is not a greeting, behind each chunk schedule;
/// - `handshake`: each vector that starts with a greeting, and each bare greeting followed
///   by each `ready-*` vector and the `multipart` one, played by every socket type of
///   `fuzzing::HANDSHAKE_TYPES` with the whole input at once, and by DEALER (with an
///   identity) and PULL with the other schedules;
/// - `command`: the body of every command frame found in any vector;
/// - `trie`: a few hand-made operation sequences;
/// - `rpub`: one valid RPUB/1 message of each kind the target decodes.
#[test]
#[ignore = "regenerates fuzz/corpus seeds; run by fuzz/seed.sh"]
fn seed_corpus() {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("zmtp-spec/vectors");
    let out = fuzz_dir().join("corpus");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = out.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    let mut all = Vec::new();
    for path in files_in(&vectors) {
        if path.extension().and_then(|e| e.to_str()) != Some("hex") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = parse_hex(&fs::read_to_string(&path).unwrap());
        all.push((stem, bytes));
    }
    let find = |prefix: &str| -> Vec<(String, Vec<u8>)> {
        all.iter()
            .filter(|(stem, _)| stem.starts_with(prefix))
            .cloned()
            .collect()
    };
    let mut streams = Vec::new();
    for (stem, bytes) in &all {
        if bytes.first() != Some(&0xFF) {
            for (sched_name, sched) in SCHEDULES {
                write(
                    "decoder",
                    &format!("{stem}-{sched_name}"),
                    &[sched, bytes].concat(),
                );
            }
        } else {
            streams.push((stem.clone(), bytes.clone()));
        }
        if bytes.len() == 64 && bytes[0] == 0xFF {
            // A bare greeting: also follow it with each READY and a multipart message.
            let traffic = find("multipart").into_iter().flat_map(|(_, b)| b);
            let traffic: Vec<u8> = traffic.collect();
            for (ready, ready_bytes) in find("ready-") {
                let stream = [&bytes[..], &ready_bytes, &traffic].concat();
                streams.push((format!("{stem}+{ready}"), stream));
            }
        }
        for (i, body) in command_bodies(bytes).into_iter().enumerate() {
            write("command", &format!("{stem}-{i}"), &body);
        }
    }
    for (name, stream) in &streams {
        for (i, socket_type) in fuzzing::HANDSHAKE_TYPES.iter().enumerate() {
            let seed = [&[i as u8][..], SCHEDULES[0].1, stream].concat();
            write("handshake", &format!("{name}-{socket_type:?}-whole"), &seed);
        }
        for (sched_name, sched) in &SCHEDULES[1..] {
            for (who, setup) in [("dealer-id", 0x45u8), ("pull", 0x07)] {
                let seed = [&[setup][..], sched, stream].concat();
                write("handshake", &format!("{name}-{who}-{sched_name}"), &seed);
            }
        }
    }
    // trie: op byte % 8 then operands (see fuzzing::trie_ops).
    let trie_seeds: [(&str, &[u8]); 3] = [
        // add "ab", add "", match "abc", remove "ab", check
        ("basic", &[0, 2, 0, 1, 0, 0, 2, 3, 0, 1, 2, 1, 2, 0, 1, 7]),
        // multi: add "a"/pipe1, add "ab"/pipe2, match "abc", remove_pipe 2, check
        (
            "multi",
            &[3, 1, 0, 1, 3, 2, 0, 1, 2, 6, 3, 0, 1, 2, 5, 2, 7],
        ),
        // counted: add "x" twice, remove twice, raw bytes
        (
            "counted",
            &[0, 1, 0x80, 0, 1, 0x80, 1, 1, 0x80, 1, 1, 0x80, 7],
        ),
    ];
    for (name, seed) in trie_seeds {
        write("trie", name, seed);
    }
    for (name, frames) in rpub_messages() {
        write("rpub", name, &rpub_seed(&frames));
    }
}

/// Lays out a multipart message the way `fuzzing::rpub_wire` reads it: frame count - 1, then
/// each frame but the last behind a length byte, then the last frame.
fn rpub_seed(frames: &[Bytes]) -> Vec<u8> {
    let mut seed = vec![(frames.len() - 1) as u8];
    for frame in &frames[..frames.len() - 1] {
        seed.push(frame.len() as u8);
        seed.extend_from_slice(frame);
    }
    seed.extend_from_slice(frames.last().unwrap());
    seed
}

/// One valid message of each RPUB/1 kind the `rpub` target decodes.
fn rpub_messages() -> Vec<(&'static str, Vec<Bytes>)> {
    use ferromq::rpub::wire::*;
    let publisher = Id128(*b"publisher-id-16b");
    let stream = Bytes::from_static(b"prices");
    let header = DataHeader {
        flags: 0,
        publisher,
        epoch: 7,
        seq: 42,
        timestamp_ms: 1_763_800_000_000,
    };
    let data = DataMessage {
        stream: stream.clone(),
        header,
        payload: vec![Bytes::from_static(b"tick")],
    };
    let heartbeat = Heartbeat {
        publisher,
        epoch: 7,
        timestamp_ms: 1,
        streams: vec![StreamMark {
            stream: stream.clone(),
            newest: 42,
            oldest: 1,
        }],
    };
    let request = ReplayRequest {
        publisher,
        epoch: 7,
        stream: stream.clone(),
        kind: RequestKind::Range { from: 3, to: 9 },
    };
    let renew = DiscoveryMessage::Renew {
        id: publisher,
        incarnation: 2,
    };
    let cursor = encode_cursor(&[CursorEntry {
        publisher,
        epoch: 7,
        stream,
        last_delivered: 41,
    }])
    .unwrap();
    vec![
        ("data", data.encode()),
        ("heartbeat", heartbeat.encode().unwrap()),
        ("request", request.encode()),
        ("discovery-renew", vec![renew.encode().unwrap()]),
        ("cursor", vec![cursor]),
    ]
}
