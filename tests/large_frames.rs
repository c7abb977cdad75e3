//! Frames of 16 KiB to 1 MiB are read by the I/O thread straight into recycled buffers
//! (`bufpool`, `Decoder::decode_small`'s `Decoded::Large`), and copies of such payloads reuse
//! them too. A recycled buffer keeps its previous contents and is usually larger than the
//! frame, so these tests check every byte of frames of many sizes, around the pool's bounds,
//! while earlier messages are still held by the application; from libzmq and from ferromq;
//! and that a peer vanishing in the middle of such a frame costs nobody else anything.

#[macro_use]
mod common;
use common::*;

const TIMEOUT_MS: i32 = 10_000;

/// Sizes on both sides of the pool's bounds (16 KiB, 1 MiB) and its classes, and small ones
/// between them (so small and large frames follow each other on the wire).
const SIZES: [usize; 12] = [
    16 * 1024 - 1,
    16 * 1024,
    16 * 1024 + 1,
    3,
    20_000,
    65_536,
    300_001,
    0,
    1024 * 1024,
    1024 * 1024 + 1,
    100_000,
    2 * 1024 * 1024 + 5,
];

fn messages() -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for round in 0..3u8 {
        for (i, &len) in SIZES.iter().enumerate() {
            let seed = round.wrapping_mul(13).wrapping_add(i as u8);
            if i % 3 == 0 {
                // Multipart: a large frame with MORE, then a small one.
                out.push(vec![payload(len, seed), vec![seed; 5]]);
            } else {
                out.push(vec![payload(len, seed)]);
            }
        }
    }
    out
}

/// Receives `expected` on `pull`, holding every other message until the end (so buffers are
/// both reused and held while new frames arrive), and checks every byte.
fn receive_all(pull: &ferromq::Socket, expected: &[Vec<Vec<u8>>]) {
    let mut held = Vec::new();
    for (n, want) in expected.iter().enumerate() {
        let got = pull.recv_multipart(0).expect("recv within the timeout");
        assert_eq!(got.len(), want.len(), "message {n}: frame count");
        for (f, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                g == w,
                "message {n} frame {f}: {} bytes received, {} sent, contents differ",
                g.len(),
                w.len()
            );
        }
        if n % 2 == 0 {
            held.push(got);
        }
    }
    // The held ones are untouched by the reuse of the others' buffers.
    for (k, got) in held.iter().enumerate() {
        assert!(got == &expected[2 * k], "held message {} changed", 2 * k);
    }
}

/// A PULL bound to `endpoint`, with the receive timeout, and the endpoint it got.
fn bound_pull(ctx: &ferromq::Context, endpoint: &str) -> (ferromq::Socket, String) {
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_rcvtimeo(TIMEOUT_MS).unwrap();
    pull.bind(endpoint).unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    (pull, ep)
}

fn ferromq_to_ferromq(endpoint: &str) {
    let ctx = ferromq::Context::new();
    let (pull, ep) = bound_pull(&ctx, endpoint);
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.set_sndtimeo(TIMEOUT_MS).unwrap();
    push.connect(&ep).unwrap();
    let msgs = messages();
    let sent = msgs.clone();
    let sender = std::thread::spawn(move || {
        // Slices: the sender copies them (into pooled buffers from 16 KiB).
        for m in sent {
            let last = m.len() - 1;
            for (i, part) in m.iter().enumerate() {
                let flags = if i < last { ferromq::SNDMORE } else { 0 };
                push.send(&part[..], flags).unwrap();
            }
        }
        push
    });
    receive_all(&pull, &msgs);
    let _push = sender.join().unwrap();
}

#[test]
fn large_frames_arrive_intact_over_tcp() {
    run(|| ferromq_to_ferromq("tcp://127.0.0.1:*"));
}

#[test]
fn large_frames_arrive_intact_over_ipc() {
    run(|| {
        let dir = std::env::temp_dir().join(format!("ferromq-large-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ferromq_to_ferromq(&format!("ipc://{}/s", dir.display()));
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn large_frames_arrive_intact_over_inproc() {
    run(|| ferromq_to_ferromq("inproc://large-frames"));
}

#[test]
fn large_frames_from_libzmq_arrive_intact() {
    run(|| {
        let ctx = ferromq::Context::new();
        let (pull, ep) = bound_pull(&ctx, "tcp://127.0.0.1:*");
        let msgs = messages();
        let sent = msgs.clone();
        let sender = std::thread::spawn(move || {
            let zctx = zmq::Context::new();
            let push = zctx.socket(zmq::PUSH).unwrap();
            push.set_sndtimeo(TIMEOUT_MS).unwrap();
            push.set_linger(TIMEOUT_MS).unwrap();
            push.connect(&ep).unwrap();
            for m in sent {
                push.send_multipart(m, 0).unwrap();
            }
        });
        receive_all(&pull, &msgs);
        sender.join().unwrap();
    });
}

#[test]
fn a_peer_vanishing_inside_a_large_frame_costs_nobody_else() {
    run(|| {
        let ctx = ferromq::Context::new();
        let (pull, ep) = bound_pull(&ctx, "tcp://127.0.0.1:*");
        let good = ctx.socket(ferromq::PUSH).unwrap();
        good.connect(&ep).unwrap();
        for round in 0..20u8 {
            // Announces 1 MiB, sends a third of it, vanishes.
            let mut raw = RawPeer::connect(&ep);
            raw.null_handshake("PUSH");
            raw.send(&long_frame_header(1 << 20)).unwrap();
            raw.send(&payload(350_000, round)).unwrap();
            drop(raw);
            // The good peer's large and small messages arrive whole, and nothing of the
            // vanished one does.
            let big = payload(200_000, round);
            good.send(&big, 0).unwrap();
            good.send(&[round][..], 0).unwrap();
            assert!(pull.recv_bytes(0).unwrap() == big, "round {round}");
            assert_eq!(pull.recv_bytes(0).unwrap(), [round]);
        }
        pull.set_rcvtimeo(100).unwrap();
        assert!(pull.recv_bytes(0).is_err(), "nothing else delivered");
    });
}
