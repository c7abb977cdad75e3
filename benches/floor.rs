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

#[path = "workloads/floor.rs"]
mod floor_workload;

use floor_workload::{lat_blocking, lat_epoll, lat_io_thread, memcpy, thr_tcp};

const LAT_COUNT: usize = 20_000;

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
type RateFn = fn(usize, usize) -> f64;
/// A throughput floor: its name, the workload, and (size, count) of each row.
type RateCase = (&'static str, RateFn, [(usize, usize); 2]);

const RATES: [RateCase; 2] = [
    (
        "tcp stream",
        thr_tcp,
        [(64 << 10, 20_000), (1 << 20, 1_000)],
    ),
    ("memcpy", memcpy, [(64 << 10, 200_000), (1 << 20, 10_000)]),
];

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
    for (name, f, sizes) in RATES {
        for (size, n) in sizes {
            let r = median((0..reps).map(|_| f(size, n)).collect());
            println!(
                "| {name} | {} KiB | {} | – |",
                size >> 10,
                fmt_rate(r, size)
            );
        }
    }
}
