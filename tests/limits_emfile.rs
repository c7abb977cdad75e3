//! Descriptor exhaustion (EMFILE) on accept must back off instead of spinning and recover
//! once descriptors free up. Alone in this file because it lowers the descriptor limit of
//! the whole test process (and measures the process's CPU time): any test running beside it
//! would fail to open sockets, or add to the measured CPU.

mod common;

use std::net::TcpStream;
use std::time::Duration;

/// utime + stime of this process (clock ticks of 10 ms), read through a file opened before
/// descriptors run out.
fn cpu_time(stat_file: &mut std::fs::File) -> Duration {
    use std::io::{Read, Seek};
    stat_file.rewind().unwrap();
    let mut stat = String::new();
    stat_file.read_to_string(&mut stat).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn emfile_on_accept_backs_off_and_recovers() {
    // Lower this process's descriptor limit with prlimit(1) (util-linux); skip if absent.
    let pid = std::process::id().to_string();
    let limit = open_fds() + 40;
    let ok = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={limit}:{limit}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        println!("prlimit not available: skipped");
        return;
    }
    let mut stat_file = std::fs::File::open("/proc/self/stat").unwrap();
    let ctx = ferromq::Context::new();
    let pull = ctx.socket(ferromq::PULL).unwrap();
    pull.set_linger(0).unwrap();
    pull.set_rcvtimeo(5000).unwrap();
    pull.bind("tcp://127.0.0.1:*").unwrap();
    let ep = pull.get_last_endpoint().unwrap().unwrap();
    let addr = common::addr_of(&ep);
    // Sockets for later, created while descriptors are still available.
    let push = ctx.socket(ferromq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    // Exhaust descriptors: each raw connection costs one here and one when accepted.
    let mut clients = Vec::new();
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        clients.push(s);
        if clients.len() > 200 {
            break;
        }
    }
    // Connections now wait in the backlog while accept fails with EMFILE: the I/O thread
    // must not spin.
    let before = cpu_time(&mut stat_file);
    std::thread::sleep(Duration::from_millis(1000));
    let used = cpu_time(&mut stat_file) - before;
    println!(
        "{} clients, CPU over 1 s of EMFILE: {used:?}",
        clients.len()
    );
    assert!(
        used < Duration::from_millis(300),
        "I/O thread spins on EMFILE: {used:?}"
    );
    // Free descriptors: a real peer gets through.
    clients.clear();
    push.connect(&ep).unwrap();
    push.send("after EMFILE", 0).unwrap();
    assert_eq!(pull.recv_bytes(0).unwrap(), b"after EMFILE");
    // The limit stays lowered: this process runs no other test.
}
