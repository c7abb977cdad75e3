//! What the machine allows with no messaging library at all: the floors against which the
//! targets of `benches/compare.rs` are judged.
//!
//! ```text
//! cargo bench --bench floor                 all floors, 5 repetitions, medians
//! cargo bench --bench floor -- --reps 3     fewer repetitions
//! ```
//!
//! - **latency** (half a round trip over tcp on 127.0.0.1, p50 / p99 us, `size` bytes each way,
//!   run unpinned and again with both sides on one core via `taskset -c 1`):
//!   - `blocking`: one thread per side, blocking `write` and `read_exact` (2 system calls and
//!     one thread switch per hop: the least any design pays);
//!   - `epoll`: one thread per side, non-blocking socket, `epoll_wait` (mio) when a read
//!     would block (the structure of zmq.rs with a current-thread runtime);
//!   - `io thread`: per side an I/O thread waits in `epoll_wait`, reads and hands the message
//!     to the application thread (mutex and condition variable); the application writes its
//!     reply straight to the socket (the structure of ferromq's REQ/REP with direct writes:
//!     two thread switches per hop).
//! - **tcp stream** (msg/s): one thread writes `size`-byte buffers with `write_all`, another
//!   reads them with `read_exact`, default socket buffers.
//! - **memcpy** (msg/s): one thread copies a `size`-byte slice into one of 4 destination
//!   buffers in turn (what an inproc send of a borrowed slice costs at least).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

const LAT_COUNT: usize = 20_000;

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let c = TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let (s, _) = l.accept().expect("accept");
    c.set_nodelay(true).expect("nodelay");
    s.set_nodelay(true).expect("nodelay");
    (c, s)
}

/// Times `n` calls of `round_trip` (send a request, wait for the reply); returns half round
/// trips in microseconds.
fn time_round_trips(n: usize, mut round_trip: impl FnMut()) -> Vec<f64> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        round_trip();
        v.push(t0.elapsed().as_secs_f64() * 1e6 / 2.0);
    }
    v
}

fn lat_blocking(size: usize, n: usize) -> Vec<f64> {
    let (mut c, mut s) = pair();
    let echo = std::thread::spawn(move || {
        let mut b = vec![0u8; size];
        for _ in 0..n {
            s.read_exact(&mut b).expect("read");
            s.write_all(&b).expect("write");
        }
    });
    let out = vec![7u8; size];
    let mut b = vec![0u8; size];
    let v = time_round_trips(n, || {
        c.write_all(&out).expect("write");
        c.read_exact(&mut b).expect("read");
    });
    echo.join().expect("echo");
    v
}

/// Reads exactly `buf.len()` bytes from a non-blocking socket, waiting in `poll` when a read
/// would block.
fn read_polled(s: &mut mio::net::TcpStream, poll: &mut mio::Poll, buf: &mut [u8]) {
    let mut events = mio::Events::with_capacity(4);
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => panic!("peer closed"),
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                poll.poll(&mut events, None).expect("poll");
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn polled(s: TcpStream) -> (mio::net::TcpStream, mio::Poll) {
    s.set_nonblocking(true).expect("nonblocking");
    let mut s = mio::net::TcpStream::from_std(s);
    let poll = mio::Poll::new().expect("poll");
    poll.registry()
        .register(&mut s, mio::Token(0), mio::Interest::READABLE)
        .expect("register");
    (s, poll)
}

/// Writes all of `b` to a non-blocking socket (the peer reads promptly; a full buffer spins).
fn write_nb(s: &mut mio::net::TcpStream, b: &[u8]) {
    let mut at = 0;
    while at < b.len() {
        match s.write(&b[at..]) {
            Ok(k) => at += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                std::thread::yield_now()
            }
            Err(e) => panic!("write: {e}"),
        }
    }
}

fn lat_epoll(size: usize, n: usize) -> Vec<f64> {
    let (c, s) = pair();
    let echo = std::thread::spawn(move || {
        let (mut s, mut poll) = polled(s);
        let mut b = vec![0u8; size];
        for _ in 0..n {
            read_polled(&mut s, &mut poll, &mut b);
            write_nb(&mut s, &b);
        }
    });
    let (mut c, mut poll) = polled(c);
    let out = vec![7u8; size];
    let mut b = vec![0u8; size];
    let v = time_round_trips(n, || {
        write_nb(&mut c, &out);
        read_polled(&mut c, &mut poll, &mut b);
    });
    echo.join().expect("echo");
    v
}

/// A one-message hand-off from an I/O thread to an application thread.
#[derive(Default)]
struct Slot {
    msg: Mutex<Option<Vec<u8>>>,
    cv: Condvar,
}

impl Slot {
    fn put(&self, b: Vec<u8>) {
        *self.msg.lock().expect("lock") = Some(b);
        self.cv.notify_one();
    }
    fn take(&self) -> Vec<u8> {
        let mut g = self.msg.lock().expect("lock");
        loop {
            if let Some(b) = g.take() {
                return b;
            }
            g = self.cv.wait(g).expect("wait");
        }
    }
}

/// The I/O thread of one side: waits in `epoll_wait`, reads whole messages, hands them over.
fn io_thread(s: TcpStream, slot: Arc<Slot>, size: usize, n: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut s, mut poll) = polled(s);
        for _ in 0..n {
            let mut b = vec![0u8; size];
            read_polled(&mut s, &mut poll, &mut b);
            slot.put(b);
        }
    })
}

fn lat_io_thread(size: usize, n: usize) -> Vec<f64> {
    let (c, s) = pair();
    let (cslot, sslot) = (Arc::new(Slot::default()), Arc::new(Slot::default()));
    let cio = io_thread(c.try_clone().expect("clone"), cslot.clone(), size, n);
    let sio = io_thread(s.try_clone().expect("clone"), sslot.clone(), size, n);
    let mut sw = s;
    let echo = std::thread::spawn(move || {
        for _ in 0..n {
            let b = sslot.take();
            sw.write_all(&b).expect("write");
        }
    });
    let mut cw = c;
    let out = vec![7u8; size];
    let v = time_round_trips(n, || {
        cw.write_all(&out).expect("write");
        let _ = cslot.take();
    });
    for t in [cio, sio, echo] {
        t.join().expect("thread");
    }
    v
}

fn thr_tcp(size: usize, n: usize) -> f64 {
    let (mut c, mut s) = pair();
    let rx = std::thread::spawn(move || {
        let mut b = vec![0u8; size];
        s.read_exact(&mut b).expect("read");
        let t0 = Instant::now();
        for _ in 1..n {
            s.read_exact(&mut b).expect("read");
        }
        (n - 1) as f64 / t0.elapsed().as_secs_f64()
    });
    let b = vec![1u8; size];
    for _ in 0..n {
        c.write_all(&b).expect("write");
    }
    rx.join().expect("reader")
}

fn memcpy(size: usize, n: usize) -> f64 {
    let src = vec![1u8; size];
    let mut dst: Vec<Vec<u8>> = (0..4).map(|_| vec![0u8; size]).collect();
    let t0 = Instant::now();
    for i in 0..n {
        let d = &mut dst[i % 4];
        d.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&d);
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &mut [f64], p: usize) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn fmt_rate(r: f64, size: usize) -> String {
    let mb = r * size as f64 / 1e6;
    if r >= 1e6 {
        format!("{:.2} M/s ({mb:.0} MB/s)", r / 1e6)
    } else {
        format!("{:.1} k/s ({mb:.0} MB/s)", r / 1e3)
    }
}

type LatFn = fn(usize, usize) -> Vec<f64>;

const LATS: [(&str, LatFn); 3] = [
    ("blocking", lat_blocking),
    ("epoll", lat_epoll),
    ("io thread", lat_io_thread),
];

/// Latency rows: (name, size, p50 median, p99 median) over `reps` repetitions.
fn latency_rows(reps: usize) -> Vec<(String, usize, f64, f64)> {
    let mut rows = Vec::new();
    for size in [1usize, 1024] {
        for (name, f) in LATS {
            let (mut p50, mut p99) = (Vec::new(), Vec::new());
            for _ in 0..reps {
                let mut v = f(size, LAT_COUNT);
                p50.push(percentile(&mut v, 50));
                p99.push(percentile(&mut v, 99));
            }
            rows.push((name.to_string(), size, median(p50), median(p99)));
        }
    }
    rows
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(5usize)
        .max(1);
    if args.iter().any(|a| a == "--pinned-child") {
        for (name, size, p50, p99) in latency_rows(reps) {
            println!("{name}\t{size}\t{p50}\t{p99}");
        }
        return;
    }
    println!("| floor | case | unpinned | pinned (taskset -c 1) |");
    println!("|---|---|---|---|");
    let unpinned = latency_rows(reps);
    let pinned = std::process::Command::new("taskset")
        .args(["-c", "1"])
        .arg(&args[0])
        .args(["--pinned-child", "--reps", &reps.to_string()])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let pinned: Vec<Vec<String>> = pinned
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    for (i, (name, size, p50, p99)) in unpinned.iter().enumerate() {
        let pin = pinned
            .get(i)
            .filter(|r| r.len() == 4)
            .map_or("n/a".to_string(), |r| {
                let x: f64 = r[2].parse().unwrap_or(f64::NAN);
                let y: f64 = r[3].parse().unwrap_or(f64::NAN);
                format!("{x:.1} / {y:.1}")
            });
        println!("| latency, {name} | tcp {size} B, p50 / p99 us (half RT) | {p50:.1} / {p99:.1} | {pin} |");
    }
    for (size, n) in [(64usize << 10, 20_000usize), (1 << 20, 1_000)] {
        let r = median((0..reps).map(|_| thr_tcp(size, n)).collect());
        println!(
            "| tcp stream | {} KiB | {} | – |",
            size >> 10,
            fmt_rate(r, size)
        );
    }
    for (size, n) in [(64usize << 10, 200_000usize), (1 << 20, 10_000)] {
        let r = median((0..reps).map(|_| memcpy(size, n)).collect());
        println!(
            "| memcpy | {} KiB | {} | – |",
            size >> 10,
            fmt_rate(r, size)
        );
    }
}
