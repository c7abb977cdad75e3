//! The `ferromq` command-line tool: cat-like socket tools, perf tools and a demo.
//!
//! ```text
//! ferromq demo                                   run a self-contained demo on this machine
//! ferromq push  (--bind|--connect) ENDPOINT      send each stdin line as a message
//! ferromq pull  (--bind|--connect) ENDPOINT      print each message received
//! ferromq pair  (--bind|--connect) ENDPOINT      both: stdin lines out, messages printed
//! ferromq perf thr (--bind|--connect) ENDPOINT [--size S] [--count N]
//!                                                one side --bind receives, the other sends
//! ferromq perf lat (--bind|--connect) ENDPOINT [--size S] [--count N]
//!                                                --bind echoes, --connect measures
//! ```

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferromq::{Context, Socket, SocketType};

const USAGE: &str = "usage:
  ferromq demo
  ferromq push|pull|pair (--bind|--connect) ENDPOINT
  ferromq perf thr (--bind|--connect) ENDPOINT [--size BYTES] [--count N]
  ferromq perf lat (--bind|--connect) ENDPOINT [--size BYTES] [--count N]";

struct Args {
    bind: Vec<String>,
    connect: Vec<String>,
    size: usize,
    count: u64,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        bind: Vec::new(),
        connect: Vec::new(),
        size: 64,
        count: 1_000_000,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--bind" | "-b" => a.bind.push(value()?),
            "--connect" | "-c" => a.connect.push(value()?),
            "--size" | "-s" => a.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--count" | "-n" => a.count = value()?.parse().map_err(|e| format!("--count: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.bind.is_empty() && a.connect.is_empty() {
        return Err("give at least one --bind or --connect endpoint".into());
    }
    Ok(a)
}

fn open(ctx: &Context, t: SocketType, a: &Args) -> Result<Socket, String> {
    let s = ctx.socket(t).map_err(|e| e.to_string())?;
    for ep in &a.bind {
        s.bind(ep).map_err(|e| format!("bind {ep}: {e}"))?;
        eprintln!(
            "bound {}",
            s.get_last_endpoint()
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default()
        );
    }
    for ep in &a.connect {
        s.connect(ep).map_err(|e| format!("connect {ep}: {e}"))?;
    }
    Ok(s)
}

fn cat_send(s: &Socket) -> Result<(), String> {
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        s.send(line.as_str(), 0).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn cat_recv(s: &Socket) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    loop {
        let parts = s.recv_multipart(0).map_err(|e| e.to_string())?;
        let text: Vec<String> = parts
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        writeln!(out, "{}", text.join(" | ")).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
}

/// Stdin lines out, messages printed; a reader thread feeds lines through a channel because
/// a socket is used from one thread only.
fn cat_pair(s: &Socket) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    s.set_rcvtimeo(50).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    loop {
        while let Ok(line) = rx.try_recv() {
            s.send(line.as_str(), 0).map_err(|e| e.to_string())?;
        }
        match s.recv_multipart(0) {
            Ok(parts) => {
                let text: Vec<String> = parts
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                writeln!(out, "{}", text.join(" | ")).map_err(|e| e.to_string())?;
            }
            Err(ferromq::Error::EAGAIN) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Nanoseconds since the Unix epoch, never 0 (0 marks an unstamped message).
fn stamp_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        .max(1)
}

/// Percentile of sorted samples.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Every this many messages the sender stamps its wall clock into the first 8 bytes, so the
/// receiver can report one-way latency under load (sender and receiver on one host).
const THR_STAMP_EVERY: u64 = 64;

/// PUSH -> PULL throughput like libzmq's local_thr/remote_thr: `--bind` receives and reports
/// msg/s, MB/s and (for messages of 8 B or more) p50/p99 one-way latency under load; the other
/// side sends.
fn perf_thr(ctx: &Context, a: &Args) -> Result<(), String> {
    let e = |e: ferromq::Error| e.to_string();
    if a.count == 0 {
        return Err("--count must be at least 1".into());
    }
    if !a.bind.is_empty() {
        let s = open(ctx, ferromq::PULL, a)?;
        let mut msg = ferromq::Message::new();
        let mut lat = Vec::new();
        let sample = |m: &ferromq::Message, lat: &mut Vec<f64>| {
            if m.len() >= 8 {
                let sent = u64::from_le_bytes(m[..8].try_into().unwrap_or_default());
                if sent != 0 {
                    lat.push(stamp_now().saturating_sub(sent) as f64 / 1e3);
                }
            }
        };
        s.recv(&mut msg, 0).map_err(e)?;
        sample(&msg, &mut lat);
        let start = Instant::now();
        let mut last = Instant::now();
        for i in 1..a.count {
            s.recv(&mut msg, 0).map_err(e)?;
            if i % THR_STAMP_EVERY == 0 {
                sample(&msg, &mut lat);
                if last.elapsed() > Duration::from_secs(1) {
                    last = Instant::now();
                    let rate = i as f64 / start.elapsed().as_secs_f64();
                    eprint!("\r{i}/{} messages, {rate:.0} msg/s   ", a.count);
                }
            }
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let rate = (a.count - 1).max(1) as f64 / secs;
        lat.sort_by(f64::total_cmp);
        println!(
            "\rmessage size: {} B\nmessage count: {}\nthroughput: {:.0} msg/s\nthroughput: {:.3} MB/s",
            a.size,
            a.count,
            rate,
            rate * a.size as f64 / 1e6
        );
        if lat.is_empty() {
            println!("one-way latency under load: n/a (messages under 8 B carry no timestamp)");
        } else {
            println!(
                "one-way latency under load: p50 {:.1} us, p99 {:.1} us ({} samples)",
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                lat.len()
            );
        }
    } else {
        let s = open(ctx, ferromq::PUSH, a)?;
        let payload = bytes::Bytes::from(vec![0u8; a.size]);
        let mut last = Instant::now();
        for i in 0..a.count {
            if a.size >= 8 && i % THR_STAMP_EVERY == 0 {
                let mut v = vec![0u8; a.size];
                v[..8].copy_from_slice(&stamp_now().to_le_bytes());
                s.send(v, 0).map_err(e)?;
                if last.elapsed() > Duration::from_secs(1) {
                    last = Instant::now();
                    eprint!("\r{i}/{} messages sent   ", a.count);
                }
            } else {
                s.send(payload.clone(), 0).map_err(e)?;
            }
        }
        eprintln!("\rsent {} messages of {} B          ", a.count, a.size);
    }
    Ok(())
}

/// REQ/REP round trips like libzmq's local_lat/remote_lat: `--bind` is the REP that echoes,
/// `--connect` the REQ that measures (after a short warm-up) and reports round trips/s, MB/s
/// both ways, and p50/p99/max of half a round trip.
fn perf_lat(ctx: &Context, a: &Args) -> Result<(), String> {
    let e = |e: ferromq::Error| e.to_string();
    if a.count == 0 {
        return Err("--count must be at least 1".into());
    }
    let warmup = (a.count / 10).clamp(1, 1000);
    let total = a.count + warmup;
    if !a.bind.is_empty() {
        let s = open(ctx, ferromq::REP, a)?;
        let mut msg = ferromq::Message::new();
        for _ in 0..total {
            s.recv(&mut msg, 0).map_err(e)?;
            s.send(std::mem::take(&mut msg), 0).map_err(e)?;
        }
        return Ok(());
    }
    let s = open(ctx, ferromq::REQ, a)?;
    let payload = bytes::Bytes::from(vec![0u8; a.size]);
    let mut msg = ferromq::Message::new();
    let mut samples = Vec::with_capacity(a.count as usize);
    let mut last = Instant::now();
    let mut start = Instant::now();
    for i in 0..total {
        if i == warmup {
            start = Instant::now();
        }
        let t = Instant::now();
        s.send(payload.clone(), 0).map_err(e)?;
        s.recv(&mut msg, 0).map_err(e)?;
        if i >= warmup {
            samples.push(t.elapsed().as_nanos() as f64 / 2e3);
        }
        if last.elapsed() > Duration::from_secs(1) {
            last = Instant::now();
            eprint!("\r{}/{} round trips   ", i.saturating_sub(warmup), a.count);
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let rate = a.count as f64 / secs;
    samples.sort_by(f64::total_cmp);
    println!(
        "\rmessage size: {} B\nround trips: {} (after {warmup} warm-up)\nthroughput: {:.0} round trips/s ({:.0} msg/s)\nthroughput: {:.3} MB/s (both ways)\nhalf round trip latency: p50 {:.1} us, p99 {:.1} us, max {:.1} us",
        a.size,
        a.count,
        rate,
        rate * 2.0,
        rate * 2.0 * a.size as f64 / 1e6,
        pct(&samples, 0.5),
        pct(&samples, 0.99),
        pct(&samples, 1.0)
    );
    Ok(())
}

/// The reliable PUB/SUB bus on this machine: three discovery instances, two publishers, three
/// subscribers, injected drops, cuts and a discovery failure; prints the summary table and
/// fails unless every message was delivered once, in order (`--quick`: a short run).
fn demo(args: &[String]) -> Result<(), String> {
    let mut opts = ferromq::rpub::demo::DemoOptions {
        progress: true,
        ..Default::default()
    };
    for a in args {
        match a.as_str() {
            "--quick" => opts.quick = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let report = ferromq::rpub::demo::run(opts)?;
    print!("{}", report.to_markdown());
    Ok(())
}

/// A pipeline on this machine: a ventilator fans work out to three workers, a sink collects.
fn demo_pipeline() -> Result<(), String> {
    let ctx = Context::new();
    let e = |e: ferromq::Error| e.to_string();
    let sink = ctx.socket(ferromq::PULL).map_err(e)?;
    sink.bind("tcp://127.0.0.1:*").map_err(e)?;
    let sink_ep = sink.get_last_endpoint().map_err(e)?.unwrap_or_default();
    let vent = ctx.socket(ferromq::PUSH).map_err(e)?;
    vent.bind("tcp://127.0.0.1:*").map_err(e)?;
    let vent_ep = vent.get_last_endpoint().map_err(e)?.unwrap_or_default();
    let total: u32 = 300_000;
    let mut workers = Vec::new();
    for w in 0..3u8 {
        let ctx = ctx.clone();
        let (vent_ep, sink_ep) = (vent_ep.clone(), sink_ep.clone());
        workers.push(std::thread::spawn(move || -> ferromq::Result<u32> {
            let pull = ctx.socket(ferromq::PULL)?;
            pull.connect(&vent_ep)?;
            pull.set_rcvtimeo(1000)?;
            let push = ctx.socket(ferromq::PUSH)?;
            push.connect(&sink_ep)?;
            let mut done = 0;
            while let Ok(task) = pull.recv_bytes(0) {
                push.send_multipart([vec![w], task], 0)?;
                done += 1;
            }
            Ok(done)
        }));
    }
    let start = Instant::now();
    for i in 0..total {
        vent.send(i.to_be_bytes(), 0).map_err(e)?;
    }
    let mut per_worker = [0u32; 3];
    for i in 0..total {
        let parts = sink.recv_multipart(0).map_err(e)?;
        if let Some(&w) = parts.first().and_then(|p| p.first()) {
            per_worker[usize::from(w) % 3] += 1;
        }
        if i % 50_000 == 0 {
            eprint!("\rcollected {i}/{total}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    for w in workers {
        w.join()
            .map_err(|_| "worker panicked".to_string())?
            .map_err(e)?;
    }
    println!(
        "\rpipeline demo: {total} tasks through 3 workers in {secs:.2} s ({:.0} tasks/s)",
        f64::from(total) / secs
    );
    println!("| worker | tasks |\n|---|---|");
    for (w, n) in per_worker.iter().enumerate() {
        println!("| {w} | {n} |");
    }
    Ok(())
}

fn run(args: &[String]) -> Result<(), String> {
    let ctx = Context::new();
    match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]),
        Some("demo-pipeline") => demo_pipeline(),
        Some("discovery") => ferromq::rpub::service::run_cli(&args[1..]),
        Some("push") => cat_send(&open(&ctx, ferromq::PUSH, &parse(&args[1..])?)?),
        Some("pull") => cat_recv(&open(&ctx, ferromq::PULL, &parse(&args[1..])?)?),
        Some("pair") => cat_pair(&open(&ctx, ferromq::PAIR, &parse(&args[1..])?)?),
        Some("perf") => match args.get(1).map(String::as_str) {
            Some("thr") => perf_thr(&ctx, &parse(&args[2..])?),
            Some("lat") => perf_lat(&ctx, &parse(&args[2..])?),
            _ => Err(USAGE.into()),
        },
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
