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
const TARGETS: [(&str, Entry); 11] = [
    ("decoder", fuzzing::decode_frames),
    ("handshake", fuzzing::handshake),
    ("command", fuzzing::parse_command),
    ("trie", fuzzing::trie_ops),
    ("rpub", fuzzing::rpub_wire),
    ("patterns", fuzzing::pattern_ops),
    ("security", fuzzing::security_handshake),
    ("curve_frames", fuzzing::curve_frames),
    ("discovery", fuzzing::discovery_ops),
    ("rpub_machines", fuzzing::rpub_subscriber_ops),
    ("rpub_publisher", fuzzing::rpub_publisher_ops),
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
            let data = match fs::read(&path) {
                Ok(data) => data,
                // A running fuzzer may drop a corpus file between listing and reading.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", path.display()),
            };
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

/// A few hundred pseudo-random inputs through every entry point (a smoke test of the
/// oracles themselves; the corpora do the real work).
#[test]
fn random_inputs_do_not_panic() {
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for (target, entry) in TARGETS {
        // Each curve_frames input runs a CURVE handshake (slow without optimisations).
        let runs = if target == "curve_frames" { 3 } else { 40 };
        for i in 0..runs {
            let len = i * 7 % 300;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Err(e) = panic::catch_unwind(|| entry(&data)) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{target} panicked on {data:02x?}: {msg}");
            }
        }
    }
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
/// - `rpub`: one valid RPUB message of each kind the target decodes (DATA in both layouts).
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
    for (name, seed) in pattern_seeds() {
        write("patterns", &name, &seed);
    }
    for (name, seed) in security_seeds() {
        write("security", &name, &seed);
    }
    let curve_seeds: [(&str, &[u8]); 3] = [
        ("two", b"hello\xffworld"),
        ("empty", b""),
        ("long", &[0x5a; 200]),
    ];
    for (name, seed) in curve_seeds {
        write("curve_frames", name, seed);
    }
    for (name, seed) in discovery_seeds() {
        write("discovery", name, &seed);
    }
    for (name, seed) in rpub_machine_seeds() {
        write("rpub_machines", name, &seed);
    }
    for (name, seed) in rpub_publisher_seeds() {
        write("rpub_publisher", name, &seed);
    }
}

/// `fuzzing::pattern_ops` inputs: for every socket type, attach two peers, subscribe to
/// everything, send a two-frame and a one-frame message, pop them, push a request with an
/// empty delimiter from each peer and a subscription, receive, detach, query.
fn pattern_seeds() -> Vec<(String, Vec<u8>)> {
    let ops: &[u8] = &[
        0, 0, 1, // attach peer 1 (routing id "r\x01")
        0, 0, 2, // attach peer 2 (routing id "r\x02")
        7, 0, 0, // Subscribe("")
        8, 0, 0x04, 0, 0, // send a two-frame message (ROUTER: to peer 1)
        8, 1, 0x00, 1, b'x', // send a one-frame message "x" (ROUTER: to peer 2)
        5, 0, 5, 1, 6, 0, 6, 1, // pop from both peers
        3, 0, 0x01, 0, 0, // peer 1 pushes [""][tracked]
        3, 1, 0x05, 0, 0, 1, b'y', // peer 2 pushes [""][tracked][tracked "y"]
        4, 0, 0, 2, 1, b'a', // peer 1 pushes the subscription "\x01a"
        10, 0, 10, 0, 10, 0, // receive
        8, 0, 0x00, 0, // reply / send again
        5, 0, 5, 1, // pop
        1, 0, 11, 0, 10, 0, // detach peer 1, query, receive
    ];
    (0..fuzzing::PATTERN_TYPES.len())
        .flat_map(|t| {
            let name = format!("{:?}", fuzzing::PATTERN_TYPES[t]);
            [
                (format!("{name}-hwm2"), [&[t as u8, 2][..], ops].concat()),
                (format!("{name}-nohwm"), [&[t as u8, 0][..], ops].concat()),
            ]
        })
        .collect()
}

/// `fuzzing::security_handshake` inputs: the bytes each side of a successful in-memory
/// PLAIN or CURVE handshake (DEALER to DEALER) sends after its greeting, played to the other
/// role (authenticator installed, or deferred and approved), whole and byte by byte.
fn security_seeds() -> Vec<(String, Vec<u8>)> {
    use ferromq::proto::{Encoder, Handshake, HandshakeConfig};
    let cfg = HandshakeConfig {
        socket_type: ferromq::SocketType::DEALER,
        identity: Bytes::new(),
        as_server: false,
        max_msg_size: None,
    };
    let dealer = 0xA0u8; // bits 5-7: HANDSHAKE_TYPES[5] = DEALER
    let mut seeds = Vec::new();
    for (mech, client_setup, server_setup) in [("plain", 0u8, 1u8), ("curve", 2, 3)] {
        let mut c = Handshake::new(cfg.clone()).with_security(fuzzing::fuzz_security(client_setup));
        let mut s =
            Handshake::new(cfg.clone()).with_security(fuzzing::fuzz_security(server_setup | 0x04));
        let (mut to_c, mut to_s) = (BytesMut::new(), BytesMut::new());
        let (mut c_sent, mut s_sent) = (Vec::new(), Vec::new());
        let mut enc = Encoder::new();
        for _ in 0..6 {
            c.poll_output(&mut enc);
            let mut out = BytesMut::new();
            enc.drain_into(&mut out);
            c_sent.extend_from_slice(&out);
            to_s.extend_from_slice(&out);
            s.poll_output(&mut enc);
            let mut out = BytesMut::new();
            enc.drain_into(&mut out);
            s_sent.extend_from_slice(&out);
            to_c.extend_from_slice(&out);
            let _ = c.handle_input(&mut to_c);
            let _ = s.handle_input(&mut to_s);
        }
        assert!(
            c.is_done() && s.is_done(),
            "{mech} handshake did not complete"
        );
        // A message after the handshake, as traffic.
        let traffic = [0x00u8, 0x02, b'h', b'i'];
        for (role, setup, peer_bytes) in [
            ("client", client_setup | dealer, &s_sent[64..]),
            ("server-auth", server_setup | 0x04 | dealer, &c_sent[64..]),
            (
                "server-deferred",
                server_setup | 0x18 | dealer,
                &c_sent[64..],
            ),
        ] {
            for (sched, header) in [("whole", &[0x00u8, 0x00][..]), ("bytewise", &[0x00, 0x01])] {
                let seed = [&[setup][..], header, peer_bytes, &traffic].concat();
                seeds.push((format!("{mech}-{role}-{sched}"), seed));
            }
        }
    }
    seeds
}

/// `fuzzing::discovery_ops` inputs (op byte % 8, see its docs).
fn discovery_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use ferromq::rpub::wire::{DiscoveryMessage, Endpoint, Id128};
    let register = DiscoveryMessage::Register {
        id: Id128([2; 16]),
        incarnation: 1,
        lease_ms: 2000,
        endpoints: vec![Endpoint {
            name: "pub".into(),
            uri: "tcp://10.0.0.2:5555".into(),
        }],
    }
    .encode()
    .unwrap();
    let list = DiscoveryMessage::List { request_id: 1 }.encode().unwrap();
    let mut frames = vec![1, register.len() as u8];
    frames.extend_from_slice(&register);
    frames.extend_from_slice(&[1, list.len() as u8]);
    frames.extend_from_slice(&list);
    frames.extend_from_slice(&[2, list.len() as u8]);
    frames.extend_from_slice(&list);
    vec![
        // registrar registers, the client lists, time passes, leases expire
        (
            "lifecycle",
            vec![5, 4, 0, 5, 4, 8, 5, 4, 40, 4, 255, 4, 255, 7],
        ),
        // structured REGISTER / RENEW / UNREGISTER / LIST to the table, events to the client
        (
            "requests",
            vec![
                0, 0, 1, 1, 1, 1, 20, // REGISTER node 1 inc 1, one endpoint, lease 1000
                0, 0, 2, 2, 0, 40, // REGISTER node 2 inc 2
                0, 1, 1, 1, // RENEW node 1
                4, 10, // time
                0, 2, 2, 2, // UNREGISTER node 2
                0, 3, 0, 0, 5, // LIST
                3, 5, 3, 1, 2, 1, 0, 1, 0, 2, // LIST_REPLY to the client
                3, 6, 1, 1, 0, 0, 2, 1, 0, 3, // EVENT
                6, 4, 1, 1, 0, 0, 10, 7, 0x87, // ACKs, unregister
            ],
        ),
        ("frames", frames),
    ]
}

/// `fuzzing::rpub_subscriber_ops` inputs (op byte % 8, see its docs).
fn rpub_machine_seeds() -> Vec<(&'static str, Vec<u8>)> {
    // DATA: [0, publisher, epoch, stream, seq, payload len, payload]
    let data = |seq: u8| vec![0, 0, 0, 0, seq, 1, b'p'];
    let mut in_order = vec![0u8, 8];
    for seq in 1..=4 {
        in_order.extend(data(seq));
    }
    in_order.extend_from_slice(&[6 | 3 << 3]);
    let mut with_loss = vec![1u8, 4];
    for seq in [1, 2, 4, 5, 9] {
        with_loss.extend(data(seq));
    }
    with_loss.extend_from_slice(&[
        1,
        0,
        0,
        1,
        0,
        9,
        1, // heartbeat: stream "a" newest 9 oldest 1
        5,
        20, // 400 ms: requests
        2,  // (op >> 3) & 7 = 0: retransmission
        0,
        0,
        0,
        3,
        0, // retransmission of seq 3
        2 | 4 << 3,
        0,
        0,
        0,
        6,
        8, // gap 6..=8
        2 | 3 << 3,
        0,
        0,
        0,
        3,
        3, // end 3..=3
        2 | 6 << 3,
        0,
        0,
        0,
        6,
        8, // busy
        5,
        100,
        5,
        200, // time passes
        0x80,
        0,
        1,
        0,
        1,
        0, // restarted publisher (epoch 2), retransmission flag
        7,
        6 | 31 << 3,
    ]);
    let mut join = vec![2u8, 16];
    join.extend_from_slice(&[2 | 2 << 3, 1, 0, 1, 3, 7]); // JOIN at 3, newest 7
    for seq in [3, 4, 5, 6, 7, 8] {
        join.extend([0, 1, 0, 1, seq, 0]);
    }
    join.extend_from_slice(&[5, 50, 6 | 31 << 3, 7]);
    // The same in the RPUB/2 DATA layout (op bit 6), through the owned decoder.
    let mut in_order_v2 = vec![0u8, 8];
    for seq in 1..=4 {
        let mut d = data(seq);
        d[0] |= 0x40;
        in_order_v2.extend(d);
    }
    in_order_v2.extend_from_slice(&[6 | 3 << 3]);
    vec![
        ("in-order", in_order),
        ("in-order-v2", in_order_v2),
        ("loss-repair", with_loss),
        ("join", join),
    ]
}

/// `fuzzing::rpub_publisher_ops` inputs (two setup bytes, then op byte % 8, see its docs).
fn rpub_publisher_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use ferromq::rpub::wire::{Id128, ReplayRequest, RequestKind};
    // publish one frame "x" on stream a / b / ab
    let publish = |stream: u8| vec![0, 0x10 | stream, 1, b'x'];
    // 4 messages retained, 2 jobs, chunk 2, 2 streams per heartbeat, hb_initial 10 ms
    let mut repair = vec![0x03, 0xA9];
    for _ in 0..6 {
        repair.extend(publish(0));
    }
    repair.extend(publish(1));
    repair.extend_from_slice(&[
        3,
        0,
        0,
        1,
        2,
        4, // p0: RANGE a 1..=newest (a GAP, then RETX)
        3,
        1,
        0,
        1,
        2,
        4, // p1: the same request (merged)
        3,
        2,
        1,
        7,
        3,
        4, // p2: RANGE b 0..=newest+1
        3,
        3,
        3,
        1,
        6,
        4,          // p3: RANGE zz 1..=u64::MAX (unknown stream; BUSY: 2 jobs)
        6 | 3 << 3, // poll_replay, budget 3
        0,
        0x10,
        1,
        b'y',       // publish on a meanwhile
        6 | 7 << 3, // poll_replay, budget 1000
        1,
        10,
        2, // 20 ms, heartbeat
        3,
        0,
        0,
        4,
        3,
        4, // p0: RANGE a oldest..=newest+1
        7, // drain
    ]);
    // 8 messages, 4 jobs, chunk 1, 1 stream per heartbeat
    let mut join = vec![0x07, 0x13];
    for stream in [0, 1, 2, 0, 1, 0] {
        join.extend(publish(stream));
    }
    join.extend_from_slice(&[
        2, // heartbeat (due at once)
        4, 0, 0, 0, 0, 4, // FROM_NOW on a
        4, 1, 0, 1, 0, 4, // FROM_OLDEST on a
        4, 2, 1, 2, 0, 4, // FROM_SEQ 0 on b
        4, 3, 2, 3, 1, 1, // LAST_N 1 on ab, epoch 8 (JOIN still names epoch 7)
        4, 0, 3, 3, 6, 4, // LAST_N u64::MAX on zz
        3, 0, 0, 1, 2, 0, // RANGE of epoch 6: GAP + END at once
        3, 0, 0, 1, 2, 0x84, // for another publisher: ignored
        3, 1, 0, 3, 1, 4,    // newest+1..=1, inverted: refused
        0x82, // forced heartbeat
        7,
    ]);
    // 2 messages, 48 bytes, 200 ms; 1 job, chunk 3, 3 streams per heartbeat, hb_initial 5 ms
    let mut raw = vec![0x29, 0x7C];
    let req = ReplayRequest {
        publisher: Id128(*b"fuzzed-publisher"),
        epoch: 7,
        stream: Bytes::from_static(b"a"),
        kind: RequestKind::Range { from: 1, to: 3 },
    }
    .encode();
    let frames = [&[1u8, 1, b'a'][..], &req[1]].concat();
    for stream in [0, 1, 0] {
        raw.extend(publish(stream));
    }
    raw.extend_from_slice(&[0, 0x22, 8]);
    raw.extend_from_slice(b"12345678");
    raw.extend_from_slice(&[1, 8]); // 16 ms
    raw.push(5 | 1 << 3); // raw frames from p1: a valid RANGE a 1..=3
    raw.push(frames.len() as u8);
    raw.extend_from_slice(&frames);
    raw.extend_from_slice(&[
        0x85,
        0x80,
        1,
        3,
        40,
        0x12,
        3,
        b'e',
        b'x',
        b't', // mutated RANGE + extra frame
        0x85 | 2 << 3,
        0,
        2,
        3,
        5,
        0x09, // RANGE with a bad kind code
        0x80,
        0x00,
        0x80,
        0x01,       // publish on "" and "\0a": refused
        6 | 1 << 3, // poll_replay, budget 1
        1,
        150,        // 300 ms: everything expires
        6 | 6 << 3, // poll_replay, budget 16
        0x81,
        200,
        2, // clock steps back 200 ms, heartbeat
        7,
    ]);
    vec![("repair", repair), ("join", join), ("raw-eviction", raw)]
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

/// One valid message of each RPUB kind the `rpub` target decodes (DATA in both layouts).
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
        ("data-v2", data.encode_v2()),
        ("heartbeat", heartbeat.encode().unwrap()),
        ("request", request.encode()),
        ("discovery-renew", vec![renew.encode().unwrap()]),
        ("cursor", vec![cursor]),
    ]
}
