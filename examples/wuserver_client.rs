//! Publish-subscribe "weather updates": a PUB server publishes "<zip> <temperature>
//! <humidity>" for random zip codes; a SUB client subscribes to one zip code, collects 20
//! updates and prints their average temperature.
//!
//! Run: `cargo run --example wuserver_client`

use ferromq as zmq;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

const ZIP: &str = "10001";
const UPDATES: usize = 20;

/// Small deterministic pseudo-random generator (xorshift), so the example needs no crate.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn server(
    ctx: zmq::Context,
    ready: mpsc::Sender<String>,
    stop: Arc<AtomicBool>,
) -> Result<u64, zmq::Error> {
    let publisher = ctx.socket(zmq::PUB)?;
    publisher.set_linger(0)?;
    publisher.bind("tcp://127.0.0.1:*")?;
    ready
        .send(publisher.get_last_endpoint()?.expect("utf-8 endpoint"))
        .expect("main thread waits");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut sent = 0u64;
    // Publish until the client has what it needs (a PUB never blocks: updates nobody
    // subscribed to are dropped). Zip codes 10000..10009 so the client's comes up often.
    while !stop.load(Ordering::Relaxed) {
        let zip = 10_000 + rng.below(10);
        let temperature = rng.below(215) as i64 - 80;
        let humidity = rng.below(50) + 10;
        publisher.send(format!("{zip:05} {temperature} {humidity}").as_bytes(), 0)?;
        sent += 1;
        if sent % 1000 == 0 {
            thread::sleep(Duration::from_millis(1)); // pacing, not synchronisation
        }
    }
    Ok(sent)
}

fn main() -> Result<(), zmq::Error> {
    let ctx = zmq::Context::new();
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        thread::spawn(move || server(ctx, tx, stop))
    };
    let endpoint = rx.recv().expect("server endpoint");

    let subscriber = ctx.socket(zmq::SUB)?;
    subscriber.set_rcvtimeo(5000)?;
    subscriber.set_linger(0)?;
    subscriber.connect(&endpoint)?;
    subscriber.set_subscribe(ZIP.as_bytes())?;

    let started = Instant::now();
    let mut total = 0i64;
    for _ in 0..UPDATES {
        let update = subscriber.recv_string(0)?.expect("utf-8 update");
        let mut fields = update.split_whitespace();
        assert_eq!(
            fields.next(),
            Some(ZIP),
            "the filter let through {update:?}"
        );
        total += fields
            .next()
            .and_then(|t| t.parse::<i64>().ok())
            .expect("temperature");
    }
    stop.store(true, Ordering::Relaxed);
    let published = server.join().expect("server thread")?;
    println!(
        "average temperature for zip code {ZIP} over {UPDATES} updates: {:.1}F ({published} published, {:?})",
        total as f64 / UPDATES as f64,
        started.elapsed()
    );
    Ok(())
}
