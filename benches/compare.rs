//! ferromq vs libzmq (the `zmq` crate) vs zmq.rs (the `zeromq` crate), same workloads, one run.
//!
//! ```text
//! cargo bench --bench compare                      full run (< 10 min on 2 cores), writes
//!                                                  BENCHMARKS.{md,json,svg}
//! cargo bench --bench compare -- --quick           tiny counts, prints only
//! cargo bench --bench compare -- --only tcp,lat    only cases whose id contains a filter
//! options: --reps N (default 5), --write (write the files even when filtered or quick),
//!          --no-pinned (skip the `taskset -c 1` latency re-run), --imp ferromq|libzmq|zmq.rs
//!          (run only that implementation, e.g. under a profiler)
//! ```
//!
//! Case ids: `thr/<transport>/<size>`, `lat/tcp/<size>`, `pubsub/tcp/64B`, `router/tcp/1000`,
//! `mem/tcp`, `rpub/tcp/64B` (ferromq only: Reliable-PUB vs plain PUB/SUB, side by side). Each
//! repetition runs the implementations one after the other (alternating), and the tables report
//! medians over the repetitions.

#[path = "workloads/rpub.rs"]
mod rpub_workload;
#[path = "workloads/mod.rs"]
mod workloads;
#[path = "workloads/zmqrs.rs"]
mod zmqrs;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use workloads::{Lat, Transport};

/// Counts live heap bytes so the idle-connection case can read per-connection deltas.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: a minimal forwarding impl. Every call goes unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the only addition is a relaxed counter update that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same layout, forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same layout, forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed).max(0) as usize
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Imp {
    Ferro,
    Libzmq,
    Zmqrs,
}

const IMPS: [Imp; 3] = [Imp::Ferro, Imp::Libzmq, Imp::Zmqrs];

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Ferro => "ferromq",
            Imp::Libzmq => "libzmq",
            Imp::Zmqrs => "zmq.rs",
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// PUSH/PULL messages per second
    Thr { size: usize, count: u64 },
    /// REQ/REP half round trip
    Lat { size: usize, count: u64 },
    /// PUB -> 4 SUB, delivered messages per second (sum)
    Pubsub { size: usize, count: u64 },
    /// ROUTER with N DEALERs, requests per second
    Router { dealers: usize, rounds: u64 },
    /// ferromq Reliable-PUB -> 1 subscriber and plain PUB -> 1 SUB, msg/s of each
    Rpub { size: usize, count: u64 },
}

struct Case {
    id: String,
    t: Transport,
    kind: Kind,
}

/// One case's outcome per implementation: a list of values per repetition (`None` when the
/// implementation does not support the case).
#[derive(Default, Clone)]
struct Outcome {
    /// throughput (msg/s) or p50 (us)
    main: Vec<f64>,
    /// p99 (us) or loss (fraction)
    extra: Vec<f64>,
    error: Option<String>,
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(s[s.len() / 2])
}

fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

fn cases(quick: bool) -> Vec<Case> {
    let q = |full: u64, tiny: u64| if quick { tiny } else { full };
    let mut v = Vec::new();
    let thr_sizes: [(usize, u64, u64); 5] = [
        (1, 1_000_000, 2_000),
        (64, 1_000_000, 2_000),
        (1024, 300_000, 1_000),
        (64 << 10, 10_000, 100),
        (1 << 20, 500, 10),
    ];
    for t in [Transport::Tcp, Transport::Ipc, Transport::Inproc] {
        for &(size, full, tiny) in &thr_sizes {
            // Large messages: enough of them that a repetition lasts a few hundred
            // milliseconds (at 10,000 x 64 KiB an inproc repetition took 35 ms, and its
            // medians moved by 1.5x between runs of the same build).
            let scale = match (t, size >= 64 << 10) {
                (Transport::Inproc, true) => 10,
                (_, true) => 3,
                _ => 1,
            };
            v.push(Case {
                id: format!("thr/{}/{}", t.name(), size_name(size)),
                t,
                kind: Kind::Thr {
                    size,
                    count: q(full * scale, tiny),
                },
            });
        }
    }
    for size in [1, 1024] {
        v.push(lat_case(size, q(20_000, 300)));
    }
    v.push(Case {
        id: "pubsub/tcp/64B".into(),
        t: Transport::Tcp,
        kind: Kind::Pubsub {
            size: 64,
            count: q(200_000, 500),
        },
    });
    v.push(Case {
        id: "rpub/tcp/64B".into(),
        t: Transport::Tcp,
        kind: Kind::Rpub {
            size: 64,
            count: q(200_000, 500),
        },
    });
    v.push(Case {
        id: format!("router/tcp/{}", q(1000, 50)),
        t: Transport::Tcp,
        kind: Kind::Router {
            dealers: q(1000, 50) as usize,
            rounds: q(50, 3),
        },
    });
    v
}

fn lat_case(size: usize, count: u64) -> Case {
    Case {
        id: format!("lat/tcp/{}", size_name(size)),
        t: Transport::Tcp,
        kind: Kind::Lat { size, count },
    }
}

fn run_one(imp: Imp, c: &Case) -> Result<Option<(f64, f64)>, String> {
    use workloads::{ferro, libzmq};
    let t = c.t;
    if imp == Imp::Zmqrs && (!zmqrs::supports(t) || matches!(c.kind, Kind::Router { .. })) {
        return Ok(None);
    }
    let r = match (c.kind, imp) {
        (Kind::Thr { size, count }, Imp::Ferro) => (ferro::thr(t, size, count)?, 0.0),
        (Kind::Thr { size, count }, Imp::Libzmq) => (libzmq::thr(t, size, count)?, 0.0),
        (Kind::Thr { size, count }, Imp::Zmqrs) => (zmqrs::thr(t, size, count)?, 0.0),
        (Kind::Lat { size, count }, imp) => {
            let l = Lat::of(match imp {
                Imp::Ferro => ferro::lat(t, size, count)?,
                Imp::Libzmq => libzmq::lat(t, size, count)?,
                Imp::Zmqrs => zmqrs::lat(t, size, count)?,
            });
            (l.p50, l.p99)
        }
        (Kind::Pubsub { size, count }, imp) => {
            let f = match imp {
                Imp::Ferro => ferro::pubsub(t, size, count, 4)?,
                Imp::Libzmq => libzmq::pubsub(t, size, count, 4)?,
                Imp::Zmqrs => zmqrs::pubsub(t, size, count, 4)?,
            };
            (f.delivered_per_sec, f.loss)
        }
        (Kind::Router { dealers, rounds }, Imp::Ferro) => (ferro::router(t, dealers, rounds)?, 0.0),
        (Kind::Router { dealers, rounds }, Imp::Libzmq) => {
            (libzmq::router(t, dealers, rounds)?, 0.0)
        }
        (Kind::Router { .. }, Imp::Zmqrs) => return Ok(None),
        // main: Reliable-PUB msg/s, extra: plain PUB/SUB msg/s of the same call.
        (Kind::Rpub { size, count }, Imp::Ferro) => {
            let r = rpub_workload::side_by_side(size, count)?;
            (r.rpub, r.plain)
        }
        (Kind::Rpub { .. }, _) => return Ok(None),
    };
    Ok(Some(r))
}

struct Opts {
    quick: bool,
    only: Vec<String>,
    reps: usize,
    write: bool,
    pinned: bool,
    pinned_child: bool,
    imps: Vec<String>,
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        quick: false,
        only: Vec::new(),
        reps: 5,
        write: false,
        pinned: true,
        pinned_child: false,
        imps: Vec::new(),
    };
    let mut force_write = false;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--only" => {
                if let Some(f) = it.next() {
                    o.only.extend(f.split(',').map(str::to_string));
                }
            }
            "--reps" => o.reps = it.next().and_then(|n| n.parse().ok()).unwrap_or(5).max(1),
            "--write" => force_write = true,
            "--no-pinned" => o.pinned = false,
            "--imp" => o.imps.extend(
                it.next()
                    .map(|s| s.split(',').map(str::to_string))
                    .into_iter()
                    .flatten(),
            ),
            "--pinned-child" => o.pinned_child = true,
            _ => {} // `cargo bench` passes --bench; ignore what is not ours
        }
    }
    o.write = force_write || (!o.quick && o.only.is_empty() && !o.pinned_child);
    o
}

fn selected(o: &Opts, id: &str) -> bool {
    o.only.is_empty() || o.only.iter().any(|f| id.contains(f.as_str()))
}

fn run_cases(o: &Opts, cases: &[Case]) -> Vec<[Outcome; 3]> {
    let mut out = vec![<[Outcome; 3]>::default(); cases.len()];
    for (ci, c) in cases.iter().enumerate() {
        for rep in 0..o.reps {
            // Alternate the order each repetition so no implementation always runs first.
            let order: Vec<usize> = if rep % 2 == 0 {
                vec![0, 1, 2]
            } else {
                vec![2, 1, 0]
            };
            for i in order {
                let imp = IMPS[i];
                if !o.imps.is_empty() && !o.imps.iter().any(|n| n == imp.name()) {
                    continue;
                }
                if out[ci][i].error.is_some() {
                    continue;
                }
                let t0 = Instant::now();
                match run_one(imp, c) {
                    Ok(Some((a, b))) => {
                        out[ci][i].main.push(a);
                        out[ci][i].extra.push(b);
                        eprintln!(
                            "  {:<22} {:<8} rep {} {:>14.1} {:>10.2} ({:.2} s)",
                            c.id,
                            imp.name(),
                            rep + 1,
                            a,
                            b,
                            t0.elapsed().as_secs_f64()
                        );
                    }
                    Ok(None) => {}
                    Err(e) => {
                        eprintln!("  {:<22} {:<8} FAILED: {e}", c.id, imp.name());
                        out[ci][i].error = Some(e);
                    }
                }
            }
        }
    }
    out
}

fn fmt_rate(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M/s", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k/s", v / 1e3)
    } else {
        format!("{v:.0} /s")
    }
}

/// One table row, also the source of JSON and chart entries.
struct Row {
    id: String,
    metric: &'static str,
    higher_better: bool,
    values: [Option<f64>; 3],
    extra: [Option<f64>; 3],
    errors: [Option<String>; 3],
    bytes: usize,
    /// (target ratio, what it is relative to)
    target: Option<(f64, &'static str)>,
}

impl Row {
    /// ferromq relative to the better of the others, oriented so that > 1 is ferromq ahead.
    fn ratio_vs(&self, which: &[usize]) -> Option<f64> {
        let f = self.values[0]?;
        let others: Vec<f64> = which.iter().filter_map(|&i| self.values[i]).collect();
        if others.is_empty() || f <= 0.0 {
            return None;
        }
        Some(if self.higher_better {
            f / others.iter().cloned().fold(f64::MIN, f64::max)
        } else {
            others.iter().cloned().fold(f64::MAX, f64::min) / f
        })
    }
    fn target_ratio(&self) -> Option<f64> {
        match self.target?.1 {
            "libzmq" => self.ratio_vs(&[1]),
            "zmq.rs" => self.ratio_vs(&[2]),
            // Reliable-PUB relative to plain PUB/SUB (both ferromq, same run).
            "plain" => Some(self.values[0]? / self.extra[0]?.max(1e-9)),
            _ => self.ratio_vs(&[1, 2]),
        }
    }
    fn met(&self) -> Option<bool> {
        Some(self.target_ratio()? >= self.target?.0)
    }
}

fn rows_of(cases: &[Case], out: &[[Outcome; 3]], pinned: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    for (c, o) in cases.iter().zip(out) {
        let values = [0, 1, 2].map(|i| median(&o[i].main));
        let extra = [0, 1, 2].map(|i| median(&o[i].extra));
        let errors = [0, 1, 2].map(|i| o[i].error.clone());
        let (metric, higher_better, bytes, target) = match c.kind {
            Kind::Thr { size, .. } => (
                "msg/s",
                true,
                size,
                match c.t {
                    Transport::Tcp => Some((1.3, "best")),
                    Transport::Inproc => Some((1.5, "libzmq")),
                    Transport::Ipc => None,
                },
            ),
            // Latency target: p50 <= 0.8x zmq.rs, i.e. zmq.rs/ferromq >= 1.25 (pinned run).
            Kind::Lat { .. } => ("p50 us", false, 0, pinned.then_some((1.25, "zmq.rs"))),
            Kind::Pubsub { .. } => ("delivered msg/s", true, 0, None),
            Kind::Router { .. } => ("req/s", true, 0, None),
            Kind::Rpub { .. } => ("RPUB msg/s", true, 0, Some((0.85, "plain"))),
        };
        let id = if pinned {
            format!("{} (pinned)", c.id)
        } else {
            c.id.clone()
        };
        rows.push(Row {
            id,
            metric,
            higher_better,
            values,
            extra,
            errors,
            bytes,
            target,
        });
    }
    rows
}

fn cell(r: &Row, i: usize) -> String {
    if let Some(e) = &r.errors[i] {
        if r.values[i].is_none() {
            return format!("error: {}", e.chars().take(40).collect::<String>());
        }
    }
    let Some(v) = r.values[i] else {
        return "n/a".into();
    };
    match r.metric {
        "p50 us" => format!("{v:.1} / {:.1}", r.extra[i].unwrap_or(0.0)),
        "delivered msg/s" => format!(
            "{} ({:.1}% lost)",
            fmt_rate(v),
            100.0 * r.extra[i].unwrap_or(0.0)
        ),
        "RPUB msg/s" => format!(
            "{} (plain {}: {})",
            fmt_rate(v),
            fmt_rate(r.extra[i].unwrap_or(0.0)),
            ratio_cell(r.target_ratio())
        ),
        _ if r.bytes >= 1024 => format!("{} ({:.0} MB/s)", fmt_rate(v), v * r.bytes as f64 / 1e6),
        _ => fmt_rate(v),
    }
}

fn ratio_cell(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:.2}x"))
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str("| case | metric | ferromq | libzmq | zmq.rs | ferromq vs libzmq | ferromq vs zmq.rs | target | met |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let metric = if r.metric == "p50 us" {
            "p50 / p99 us (half RT)"
        } else {
            r.metric
        };
        let target = r.target.map_or("–".into(), |(x, vs)| {
            format!("≥ {x:.2}x {}", if vs == "best" { "best" } else { vs })
        });
        let met = match r.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            metric,
            cell(r, 0),
            cell(r, 1),
            cell(r, 2),
            ratio_cell(r.ratio_vs(&[1])),
            ratio_cell(r.ratio_vs(&[2])),
            target,
            met
        );
    }
    s.push_str(
        "\nRatios are oriented so that > 1.00x means ferromq is ahead (throughput: ferromq / other; \
         latency: other / ferromq).\n",
    );
    s
}

fn json_num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".into(),
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json(rows: &[Row], mem: Option<(f64, f64)>, machine: &Machine, command: &str) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"command\": {},", json_str(command));
    let _ = writeln!(
        s,
        "  \"machine\": {{\"nproc\": {}, \"cpu\": {}, \"date\": {}, \"load_before\": {}, \"load_after\": {}}},",
        machine.nproc,
        json_str(&machine.cpu),
        json_str(&machine.date),
        json_str(&machine.load_before),
        json_str(&machine.load_after)
    );
    if let Some((b, c)) = mem {
        let _ = writeln!(
            s,
            "  \"idle_tcp_connection_heap_bytes\": {{\"ferromq_bind_side\": {b:.0}, \"ferromq_connect_side\": {c:.0}, \"target_per_side\": 65536}},"
        );
    }
    s.push_str("  \"cases\": [\n");
    for (n, r) in rows.iter().enumerate() {
        let mut imps = String::new();
        for (i, imp) in IMPS.iter().enumerate() {
            let second = match r.metric {
                "p50 us" => "p99_us",
                "delivered msg/s" => "loss",
                "RPUB msg/s" => "plain_pubsub_msg_per_s",
                _ => "unused",
            };
            let _ = write!(
                imps,
                "{}{}: {{\"value\": {}, \"{second}\": {}, \"error\": {}}}",
                if i > 0 { ", " } else { "" },
                json_str(imp.name()),
                json_num(r.values[i]),
                json_num(r.extra[i]),
                r.errors[i].as_deref().map_or("null".into(), json_str)
            );
        }
        let _ = writeln!(
            s,
            "    {{\"id\": {}, \"metric\": {}, \"higher_is_better\": {}, \"results\": {{{imps}}}, \"ratio_vs_libzmq\": {}, \"ratio_vs_zmqrs\": {}, \"target\": {}, \"met\": {}}}{}",
            json_str(&r.id),
            json_str(r.metric),
            r.higher_better,
            json_num(r.ratio_vs(&[1])),
            json_num(r.ratio_vs(&[2])),
            r.target
                .map_or("null".into(), |(x, vs)| format!("{{\"ratio\": {x}, \"vs\": {}}}", json_str(vs))),
            r.met().map_or("null".into(), |m| m.to_string()),
            if n + 1 < rows.len() { "," } else { "" }
        );
    }
    s.push_str("  ]\n}\n");
    s
}

/// A horizontal bar chart of ratios (ferromq vs libzmq, ferromq vs zmq.rs), log scale, with
/// the 1.0x line and each row's target marked.
fn svg(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.ratio_vs(&[1]).is_some() || r.ratio_vs(&[2]).is_some())
        .collect();
    let (label_w, plot_w, row_h, top) = (230.0, 560.0, 30.0, 50.0);
    let height = top + row_h * rows.len() as f64 + 50.0;
    let width = label_w + plot_w + 90.0;
    // log2 scale from 1/8x to 8x
    let (lo, hi) = (-3.0f64, 3.0f64);
    let x = |ratio: f64| {
        let l = ratio.max(1e-6).log2().clamp(lo, hi);
        label_w + (l - lo) / (hi - lo) * plot_w
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        s,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" font-size=\"15\" font-weight=\"bold\">ferromq relative to libzmq and zmq.rs (&gt; 1 = ferromq ahead, log scale)</text>"
    );
    let _ = writeln!(
        s,
        "<rect x=\"{}\" y=\"30\" width=\"12\" height=\"10\" fill=\"#3b7dd8\"/><text x=\"{}\" y=\"40\">vs libzmq</text><rect x=\"{}\" y=\"30\" width=\"12\" height=\"10\" fill=\"#e08a2c\"/><text x=\"{}\" y=\"40\">vs zmq.rs</text><line x1=\"{}\" y1=\"30\" x2=\"{}\" y2=\"40\" stroke=\"#c00\" stroke-width=\"2\"/><text x=\"{}\" y=\"40\">target</text>",
        label_w,
        label_w + 16.0,
        label_w + 100.0,
        label_w + 116.0,
        label_w + 200.0,
        label_w + 200.0,
        label_w + 206.0
    );
    for tick in [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0] {
        let tx = x(tick);
        let _ = writeln!(
            s,
            "<line x1=\"{tx:.1}\" y1=\"{top}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"{}\"/><text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{tick}x</text>",
            height - 40.0,
            if tick == 1.0 { "#000" } else { "#ddd" },
            if tick == 1.0 { 1.5 } else { 1.0 },
            height - 25.0
        );
    }
    for (n, r) in rows.iter().enumerate() {
        let y = top + row_h * n as f64;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + row_h / 2.0 + 4.0,
            r.id
        );
        for (k, (which, color)) in [(1usize, "#3b7dd8"), (2, "#e08a2c")].iter().enumerate() {
            let Some(ratio) = r.ratio_vs(&[*which]) else {
                continue;
            };
            let (x0, x1) = (x(1.0), x(ratio));
            let by = y + 4.0 + k as f64 * 11.0;
            let _ = writeln!(
                s,
                "<rect x=\"{:.1}\" y=\"{by:.1}\" width=\"{:.1}\" height=\"10\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{ratio:.2}</text>",
                x0.min(x1),
                (x1 - x0).abs().max(1.0),
                x0.max(x1) + 3.0,
                by + 9.0
            );
        }
        if let Some((t, _)) = r.target {
            let tx = x(t);
            let _ = writeln!(
                s,
                "<line x1=\"{tx:.1}\" y1=\"{:.1}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#c00\" stroke-width=\"2\"/>",
                y + 2.0,
                y + row_h - 4.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// BENCHMARKS.md keeps everything from this line on when the harness rewrites it.
const NOTES_MARKER: &str = "<!-- notes: kept across runs of the harness -->";

struct Machine {
    nproc: usize,
    cpu: String,
    date: String,
    load_before: String,
    load_after: String,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        date,
        load_before: loadavg(),
        load_after: String::new(),
    }
}

/// Re-runs the latency cases under `taskset -c 1` (both sides on one core) and parses the
/// child's `PINNED` lines.
fn pinned_latency(o: &Opts, cases: &[Case]) -> Option<Vec<[Outcome; 3]>> {
    let exe = std::env::current_exe().ok()?;
    let mut cmd = std::process::Command::new("taskset");
    cmd.arg("-c").arg("1").arg(exe).arg("--pinned-child");
    cmd.arg("--reps").arg(o.reps.to_string());
    if o.quick {
        cmd.arg("--quick");
    }
    eprintln!("latency again, pinned: taskset -c 1 ... --pinned-child");
    let out = cmd.stderr(std::process::Stdio::inherit()).output().ok()?;
    if !out.status.success() {
        eprintln!("pinned run failed ({})", out.status);
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut res = vec![<[Outcome; 3]>::default(); cases.len()];
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 5 && f[0] == "PINNED" {
            let Some(ci) = cases.iter().position(|c| c.id == f[1]) else {
                continue;
            };
            let Some(i) = IMPS.iter().position(|m| m.name() == f[2]) else {
                continue;
            };
            if let (Ok(a), Ok(b)) = (f[3].parse(), f[4].parse()) {
                res[ci][i].main.push(a);
                res[ci][i].extra.push(b);
            }
        }
    }
    Some(res)
}

fn main() {
    let o = parse_opts();
    let all = cases(o.quick);
    if o.pinned_child {
        let lat: Vec<Case> = all
            .into_iter()
            .filter(|c| matches!(c.kind, Kind::Lat { .. }))
            .collect();
        let out = run_cases(&o, &lat);
        for (c, r) in lat.iter().zip(&out) {
            for (i, imp) in IMPS.iter().enumerate() {
                for (a, b) in r[i].main.iter().zip(&r[i].extra) {
                    println!("PINNED {} {} {a} {b}", c.id, imp.name());
                }
            }
        }
        return;
    }
    let mut m = machine();
    let start = Instant::now();
    let cases: Vec<Case> = all.into_iter().filter(|c| selected(&o, &c.id)).collect();
    eprintln!(
        "{} cases x {} reps x 3 implementations (load {})",
        cases.len(),
        o.reps,
        m.load_before
    );
    let out = run_cases(&o, &cases);
    let mut rows = rows_of(&cases, &out, false);
    let lat_cases: Vec<Case> = cases
        .iter()
        .filter(|c| matches!(c.kind, Kind::Lat { .. }))
        .map(|c| Case {
            id: c.id.clone(),
            t: c.t,
            kind: c.kind,
        })
        .collect();
    if o.pinned && !lat_cases.is_empty() {
        if let Some(p) = pinned_latency(&o, &lat_cases) {
            rows.extend(rows_of(&lat_cases, &p, true));
        }
    }
    let mem = if selected(&o, "mem/tcp") {
        let conns = if o.quick { 20 } else { 200 };
        match workloads::ferro_conn_mem(conns, &live_bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("mem/tcp FAILED: {e}");
                None
            }
        }
    } else {
        None
    };
    m.load_after = loadavg();
    let elapsed = start.elapsed().as_secs_f64();

    let mut md_table = table(&rows);
    if let Some((b, c)) = mem {
        let _ = write!(
            md_table,
            "\nIdle TCP connection, ferromq heap per connection (counting global allocator, libzmq as the peer \
             so only ferromq's side is counted): bind side {:.1} KiB, connect side {:.1} KiB (target < 64 KiB each): {}.\n",
            b / 1024.0,
            c / 1024.0,
            if b < 65536.0 && c < 65536.0 { "met" } else { "**not met**" }
        );
    }
    println!("{md_table}");
    println!(
        "run took {elapsed:.0} s; load average before {}, after {}",
        m.load_before, m.load_after
    );

    if o.write {
        let mut command = String::from("cargo bench --bench compare");
        let extra: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect();
        if !extra.is_empty() {
            command.push_str(" -- ");
            command.push_str(&extra.join(" "));
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let md = format!(
            "# Benchmarks: ferromq vs libzmq vs zmq.rs\n\n\
             Generated by `benches/compare.rs`; do not edit by hand, re-run instead.\n\n\
             ## How\n\n\
             ```sh\n{command}\n```\n\n\
             Release build (`[profile.bench]`), one process per run: the receiver binds, a sender thread \
             connects (tcp and ipc: one context per side; inproc: one shared context). Each case runs \
             ferromq, libzmq 4.3.4 (`zmq` crate 0.10) and zmq.rs (`zeromq` crate 0.7, a current-thread \
             tokio runtime per side) in turn, {reps} repetitions, alternating the order; figures are medians. \
             Senders of PUSH/PULL and REQ/REP pass their payload the cheapest way each API allows: zmq.rs \
             a shared `Bytes` (reference-counted, no copy per send); ferromq over tcp and ipc a shared \
             `Bytes` from 8 KiB and a slice copied per send below (cheaper for small frames), over inproc \
             a copied slice at every size; libzmq a slice copied per send (the `zmq` crate has no shared \
             message). See `benches/workloads/mod.rs`, `ferro_payload`. \
             Latency is REQ/REP, half a round trip, p50 / p99 in microseconds, run once unpinned and once \
             with both sides on one core: the harness re-runs itself as `taskset -c 1 <bench binary> \
             --pinned-child` (rows marked *pinned*). PUB/SUB: 1 PUB, 4 SUBs on tcp, 64 B, HWM 0 where the \
             implementation has the option; delivered messages per second summed over the subscribers. \
             ROUTER: one ROUTER echoing for 1,000 DEALERs on tcp, each round every DEALER sends one \
             request then reads its reply. RPUB: ferromq only, Reliable-PUB (`src/rpub`) to one reliable \
             subscriber vs plain PUB to one SUB, tcp, 64 B, one stream, HWM 0, no loss, the two run \
             alternately in the same repetition; the ferromq cell reads `RPUB (plain: ratio)`, target \
             RPUB >= 0.85x plain (`benches/workloads/rpub.rs`).\n\n\
             Filters: `-- --only tcp` (or `thr/inproc`, `lat`, `pubsub`, `rpub`, `router`, `mem`; comma-separated), \
             `-- --quick` (tiny counts), `-- --reps N`, `-- --no-pinned`; filtered and quick runs only print \
             unless `--write` is given.\n\n\
             ## Machine\n\n\
             - nproc: {nproc}\n- CPU: {cpu}\n- date: {date}\n- load average (1/5/15 min) before: {lb}, after: {la} \
             (the machine is shared with other engineers' builds, which skew the figures)\n- run time: {elapsed:.0} s\n\n\
             ## Results\n\n{md_table}\n![ratios](BENCHMARKS.svg)\n\nMachine-readable: `BENCHMARKS.json`.\n",
            reps = o.reps,
            nproc = m.nproc,
            cpu = m.cpu,
            date = m.date,
            lb = m.load_before,
            la = m.load_after,
        );
        // Hand-written notes (profiles, analysis) below the marker survive re-runs.
        let kept = std::fs::read_to_string(dir.join("BENCHMARKS.md"))
            .ok()
            .and_then(|old| old.find(NOTES_MARKER).map(|i| old[i..].to_string()))
            .unwrap_or_else(|| format!("{NOTES_MARKER}\n"));
        let md = format!("{md}\n{kept}");
        let files = [
            ("BENCHMARKS.md", md),
            ("BENCHMARKS.json", json(&rows, mem, &m, &command)),
            ("BENCHMARKS.svg", svg(&rows)),
        ];
        for (name, body) in files {
            match std::fs::write(dir.join(name), body) {
                Ok(()) => eprintln!("wrote {name}"),
                Err(e) => eprintln!("writing {name}: {e}"),
            }
        }
    }
}
