//! Request-reply broker: REQ clients -> ROUTER (frontend) | `zmq::proxy` | DEALER (backend)
//! -> REP workers. The broker runs in its own context; main stops it by terminating that
//! context, which makes `zmq::proxy` return ETERM.
//!
//! Run: `cargo run --example rrbroker`

use ferromq as zmq;
use std::sync::mpsc;
use std::thread;

const CLIENTS: usize = 3;
const WORKERS: usize = 2;
const REQUESTS_PER_CLIENT: usize = 5;

fn socket(ctx: &zmq::Context, kind: zmq::SocketType) -> Result<zmq::Socket, zmq::Error> {
    let s = ctx.socket(kind)?;
    s.set_rcvtimeo(5000)?;
    s.set_sndtimeo(5000)?;
    s.set_linger(0)?;
    Ok(s)
}

/// The broker: binds both sides, reports the endpoints, forwards until its context ends.
fn broker(ctx: zmq::Context, ready: mpsc::Sender<(String, String)>) -> zmq::Error {
    let setup = || -> Result<(zmq::Socket, zmq::Socket), zmq::Error> {
        let frontend = ctx.socket(zmq::ROUTER)?;
        let backend = ctx.socket(zmq::DEALER)?;
        frontend.set_linger(0)?;
        backend.set_linger(0)?;
        frontend.bind("tcp://127.0.0.1:*")?;
        backend.bind("tcp://127.0.0.1:*")?;
        Ok((frontend, backend))
    };
    let (frontend, backend) = match setup() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let endpoints = (
        frontend.get_last_endpoint().unwrap().unwrap(),
        backend.get_last_endpoint().unwrap().unwrap(),
    );
    ready.send(endpoints).expect("main waits for the endpoints");
    // Returns only with an error: ETERM once the context is terminated. The sockets are
    // dropped when this function returns, which lets the context termination complete.
    match zmq::proxy(&frontend, &backend) {
        Ok(()) => unreachable!("proxy returns only on error"),
        Err(e) => e,
    }
}

fn worker(ctx: zmq::Context, id: usize, backend: String) -> Result<usize, zmq::Error> {
    let rep = socket(&ctx, zmq::REP)?;
    rep.set_rcvtimeo(500)?; // idle workers leave after 0.5 s without requests
    rep.connect(&backend)?;
    let mut served = 0;
    loop {
        match rep.recv_string(0) {
            Ok(request) => {
                let request = request.expect("utf-8");
                rep.send(format!("{request} handled by worker {id}").as_bytes(), 0)?;
                served += 1;
            }
            Err(zmq::Error::EAGAIN) => return Ok(served),
            Err(e) => return Err(e),
        }
    }
}

fn client(ctx: zmq::Context, id: usize, frontend: String) -> Result<(), zmq::Error> {
    let req = socket(&ctx, zmq::REQ)?;
    req.connect(&frontend)?;
    for n in 0..REQUESTS_PER_CLIENT {
        req.send(format!("request {n} of client {id}").as_bytes(), 0)?;
        let reply = req.recv_string(0)?.expect("utf-8");
        assert!(
            reply.starts_with(&format!("request {n} of client {id} ")),
            "{reply}"
        );
        println!("client {id}: {reply}");
    }
    Ok(())
}

fn main() -> Result<(), zmq::Error> {
    let mut broker_ctx = zmq::Context::new();
    let (tx, rx) = mpsc::channel();
    let broker_thread = {
        let ctx = broker_ctx.clone();
        thread::spawn(move || broker(ctx, tx))
    };
    let (frontend, backend) = rx.recv().expect("broker endpoints");

    let ctx = zmq::Context::new();
    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let (ctx, ep) = (ctx.clone(), backend.clone());
            thread::spawn(move || worker(ctx, id, ep))
        })
        .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (ctx, ep) = (ctx.clone(), frontend.clone());
            thread::spawn(move || client(ctx, id, ep))
        })
        .collect();
    for c in clients {
        c.join().expect("client thread")?;
    }
    let mut served = 0;
    for w in workers {
        served += w.join().expect("worker thread")?;
    }
    println!("{served} requests served by {WORKERS} workers");
    assert_eq!(served, CLIENTS * REQUESTS_PER_CLIENT);

    // Stop the broker: terminating its context makes the proxy return ETERM.
    broker_ctx.destroy()?;
    let why = broker_thread.join().expect("broker thread");
    println!("broker stopped: {why:?}");
    assert_eq!(why, zmq::Error::ETERM);
    Ok(())
}
