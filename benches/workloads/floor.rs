//! The workloads of `benches/floor.rs` (what the machine allows with no messaging library),
//! shared with the smoke test in `tests/bench_smoke.rs`. See that bench for what each one
//! measures.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

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

pub fn lat_blocking(size: usize, n: usize) -> Vec<f64> {
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

pub fn lat_epoll(size: usize, n: usize) -> Vec<f64> {
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

pub fn lat_io_thread(size: usize, n: usize) -> Vec<f64> {
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

pub fn thr_tcp(size: usize, n: usize) -> f64 {
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

pub fn memcpy(size: usize, n: usize) -> f64 {
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
