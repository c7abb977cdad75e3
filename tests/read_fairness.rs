//! One connection cannot keep the I/O thread to itself: a peer that writes faster than the
//! engine decodes (with RCVHWM 0 nothing pauses its reads) is read at most a budget of reads
//! per turn of the event loop (`READ_BUDGET` in `engine/mod.rs`), so other connections, here
//! a new one, are still accepted and served while it floods.

#[macro_use]
mod common;
use common::*;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn a_flooding_peer_does_not_starve_a_new_one() {
    run(|| {
        let ctx = ferromq::Context::new();
        let pull = ctx.socket(ferromq::PULL).unwrap();
        pull.set_rcvhwm(0).unwrap();
        pull.set_rcvtimeo(10_000).unwrap();
        pull.set_linger(0).unwrap();
        pull.bind("tcp://127.0.0.1:*").unwrap();
        let ep = pull.get_last_endpoint().unwrap().unwrap();

        // 1-byte frames, 64 per write: many small writes keep the receive queue from ever
        // running dry at a read (measured: with 1 MiB writes the reader catches up between
        // them and the starvation does not show).
        let mut flood = RawPeer::connect(&ep);
        flood.null_handshake("PUSH");
        let mut writer = flood.stream.try_clone().unwrap();
        let chunk: Vec<u8> = std::iter::repeat_n(frame(b"f", false), 64)
            .flatten()
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flooding = Arc::new(AtomicBool::new(true));
        let (stop2, flooding2) = (stop.clone(), flooding.clone());
        let flooder = std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(20);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < until {
                if writer.write_all(&chunk).is_err() {
                    break;
                }
            }
            flooding2.store(false, Ordering::SeqCst);
        });
        assert_eq!(pull.recv_bytes(0).unwrap(), b"f", "the flood is under way");

        let good = ctx.socket(ferromq::PUSH).unwrap();
        good.set_linger(0).unwrap();
        good.connect(&ep).unwrap();
        good.send("good", 0).unwrap();
        let start = Instant::now();
        let mut flooded = 0u64;
        loop {
            let m = pull.recv_bytes(0).expect("within the timeout");
            if m == b"good" {
                break;
            }
            flooded += 1;
        }
        let during = flooding.load(Ordering::SeqCst);
        stop.store(true, Ordering::Relaxed);
        println!(
            "served after {:?} and {flooded} flood messages, flood still running: {during}",
            start.elapsed()
        );
        assert!(
            during,
            "the new peer was served only once the flood had ended"
        );
        flooder.join().unwrap();
        drop(flood);
    });
}
