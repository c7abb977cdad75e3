//! Soak: peer churn, reconnect storms and mixed patterns over tcp, ipc and inproc, sampling
//! RSS and open descriptors every second; fails if either grows past a bound.
//!
//! `FERROMQ_SOAK_SECS` sets the duration (default 30 s, as CI runs it; 600 for the
//! documented 10-minute soak).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn soak_churn_reconnects_and_mixed_patterns_stay_bounded() {
    let secs: u64 = std::env::var("FERROMQ_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let stop = Arc::new(AtomicBool::new(false));
    let work = Arc::new(AtomicU64::new(0));
    let ctx = ferromq::Context::new();
    let mut threads = Vec::new();

    // 1. PUSH/PULL over tcp with peer churn: short-lived pushers connect, send, leave.
    {
        let (ctx, stop, work) = (ctx.clone(), stop.clone(), work.clone());
        threads.push(std::thread::spawn(move || {
            let pull = ctx.socket(ferromq::PULL).unwrap();
            pull.set_linger(0).unwrap();
            pull.set_rcvtimeo(100).unwrap();
            pull.bind("tcp://127.0.0.1:*").unwrap();
            let ep = pull.get_last_endpoint().unwrap().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let push = ctx.socket(ferromq::PUSH).unwrap();
                push.set_linger(0).unwrap();
                push.set_sndtimeo(1000).unwrap();
                push.connect(&ep).unwrap();
                for i in 0..200u32 {
                    if push.send(i.to_be_bytes(), 0).is_err() {
                        break;
                    }
                }
                drop(push);
                while pull.recv_bytes(0).is_ok() {
                    work.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // 2. REQ/REP over ipc with a reconnect storm: the server goes away and comes back.
    {
        let (ctx, stop, work) = (ctx.clone(), stop.clone(), work.clone());
        threads.push(std::thread::spawn(move || {
            let path = std::env::temp_dir().join(format!("ferromq-soak-{}", std::process::id()));
            let ep = format!("ipc://{}", path.display());
            let req = ctx.socket(ferromq::REQ).unwrap();
            req.set_linger(0).unwrap();
            req.set_req_relaxed(true).unwrap();
            req.set_req_correlate(true).unwrap();
            req.set_rcvtimeo(50).unwrap();
            req.set_reconnect_ivl(10).unwrap();
            req.connect(&ep).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let rep = ctx.socket(ferromq::REP).unwrap();
                rep.set_linger(0).unwrap();
                rep.set_rcvtimeo(50).unwrap();
                rep.bind(&ep).unwrap();
                for _ in 0..20 {
                    let _ = req.send("ping", 0);
                    if let Ok(m) = rep.recv_bytes(0) {
                        let _ = rep.send(m, 0);
                        if req.recv_bytes(0).is_ok() {
                            work.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                drop(rep);
            }
            let _ = std::fs::remove_file(path);
        }));
    }

    // 3. PUB/SUB over inproc with subscription churn, plus a subscriber that never reads
    //    (the publisher must drop for it, not grow).
    {
        let (ctx, stop, work) = (ctx.clone(), stop.clone(), work.clone());
        threads.push(std::thread::spawn(move || {
            let publ = ctx.socket(ferromq::PUB).unwrap();
            publ.set_linger(0).unwrap();
            publ.bind("inproc://soak-pub").unwrap();
            let deaf = ctx.socket(ferromq::SUB).unwrap();
            deaf.set_subscribe(b"").unwrap();
            deaf.connect("inproc://soak-pub").unwrap();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sub = ctx.socket(ferromq::SUB).unwrap();
                sub.set_linger(0).unwrap();
                sub.set_rcvtimeo(0).unwrap();
                let topic = format!("t{}", round % 7);
                sub.set_subscribe(topic.as_bytes()).unwrap();
                sub.connect("inproc://soak-pub").unwrap();
                for i in 0..500u32 {
                    let _ = publ.send_multipart([topic.as_bytes(), &i.to_be_bytes()[..]], 0);
                }
                while sub.recv_multipart(0).is_ok() {
                    work.fetch_add(1, Ordering::Relaxed);
                }
                sub.set_unsubscribe(topic.as_bytes()).unwrap();
                round += 1;
            }
            drop(deaf);
        }));
    }

    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_secs(1));
        samples.push((rss_kib(), fds()));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("soak worker panicked");
    }
    let warm = samples.len().min(5);
    let (base_rss, base_fds) = samples[..warm]
        .iter()
        .fold((0, 0), |(r, f), &(sr, sf)| (r.max(sr), f.max(sf)));
    let (max_rss, max_fds) = samples[warm..]
        .iter()
        .fold((0, 0), |(r, f), &(sr, sf)| (r.max(sr), f.max(sf)));
    println!(
        "soak {secs} s: {} operations; RSS {base_rss} KiB after warm-up, max {max_rss} KiB; \
         fds {base_fds} -> max {max_fds}",
        work.load(Ordering::Relaxed)
    );
    assert!(work.load(Ordering::Relaxed) > 1000, "the soak did no work");
    assert!(
        max_rss <= base_rss + 64 * 1024,
        "RSS grew from {base_rss} KiB to {max_rss} KiB"
    );
    assert!(
        max_fds <= base_fds + 64,
        "fds grew from {base_fds} to {max_fds}"
    );
}
