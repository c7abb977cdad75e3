//! CURVE PUSH -> PULL throughput over tcp in one process (the ferromq half of the CURVE
//! comparison in BENCHMARKS.md; `benches/curve_pyzmq.py` is the libzmq half).
//!
//! `cargo run --release --example curve_throughput -- [size] [count]`

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(64);
    let count: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let ctx = ferromq::Context::new();
    let server = ferromq::CurveKeyPair::new().unwrap();
    let client = ferromq::CurveKeyPair::new().unwrap();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_curve_server(true).unwrap();
    pull.set_curve_secretkey(&server.secret_key).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let sender = std::thread::spawn({
        let ctx = ctx.clone();
        move || {
            let push = ctx.socket(ferromq::PUSH).unwrap();
            push.set_curve_serverkey(&server.public_key).unwrap();
            push.set_curve_publickey(&client.public_key).unwrap();
            push.set_curve_secretkey(&client.secret_key).unwrap();
            push.connect(&ep).unwrap();
            let payload = bytes::Bytes::from(vec![0u8; size]);
            for _ in 0..count {
                push.send(payload.clone(), 0).unwrap();
            }
        }
    });
    let mut msg = ferromq::Message::new();
    pull.recv(&mut msg, 0).unwrap();
    let start = Instant::now();
    for _ in 1..count {
        pull.recv(&mut msg, 0).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    sender.join().unwrap();
    let rate = (count - 1) as f64 / secs;
    println!(
        "ferromq CURVE tcp {size} B: {rate:.0} msg/s ({:.1} MB/s)",
        rate * size as f64 / 1e6
    );
}
