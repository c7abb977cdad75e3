//! The I/O thread stops reading a connection after a read that returned less than it asked
//! for (the receive queue was empty; new data raises a new epoll edge), unless the event said
//! the peer closed its side: a FIN that arrives with the last data raises no edge of its own.
//! These tests send data and the close together and check that both the data and the close
//! are seen, for small frames (read through the scratch buffer) and for large ones (read in
//! place into a pooled buffer).

#[macro_use]
mod common;
use common::*;

use std::net::Shutdown;
use std::time::Duration;

/// A raw PUSH sends `frames` and half-closes in one go; the PULL must deliver them all and
/// then close its end.
fn data_then_fin(frames: &[Vec<u8>], rounds: u32) {
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_rcvtimeo(10_000).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    for round in 0..rounds {
        let mut raw = RawPeer::connect(&ep);
        raw.null_handshake("PUSH");
        let mut wire = Vec::new();
        for f in frames {
            wire.extend_from_slice(&frame(f, false));
        }
        raw.send(&wire).unwrap();
        raw.stream.shutdown(Shutdown::Write).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let got = pull.recv_bytes(0).expect("delivered before the close");
            assert!(&got == f, "round {round} message {i}");
        }
        assert!(
            raw.closed_within(Duration::from_secs(5)),
            "round {round}: the peer's close was not noticed"
        );
    }
}

#[test]
fn small_frames_and_the_close_arriving_together_are_both_seen() {
    run(|| data_then_fin(&[b"a".to_vec(), b"bc".to_vec(), vec![7; 300]], 30));
}

#[test]
fn a_large_frame_and_the_close_arriving_together_are_both_seen() {
    run(|| data_then_fin(&[payload(100_000, 3), b"x".to_vec()], 10));
}
