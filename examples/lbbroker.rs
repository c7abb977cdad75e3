//! Load-balancing broker: a ROUTER frontend for REQ clients, a ROUTER backend for REQ
//! workers. Workers announce themselves with "READY"; the broker keeps a queue of idle
//! workers and hands each client request to the least recently used one, so a slow worker
//! never gets a second job before it is done.
//!
//! Run: `cargo run --example lbbroker`

use ferromq as zmq;
use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

const CLIENTS: usize = 6;
const WORKERS: usize = 3;

fn socket(ctx: &zmq::Context, kind: zmq::SocketType) -> Result<zmq::Socket, zmq::Error> {
    let s = ctx.socket(kind)?;
    s.set_rcvtimeo(5000)?;
    s.set_sndtimeo(5000)?;
    s.set_linger(0)?;
    Ok(s)
}

/// A client: one request, one reply.
fn client(ctx: zmq::Context, id: usize, frontend: String) -> Result<String, zmq::Error> {
    let req = socket(&ctx, zmq::REQ)?;
    req.set_identity(format!("client-{id}").as_bytes())?;
    req.connect(&frontend)?;
    req.send("HELLO", 0)?;
    Ok(req.recv_string(0)?.expect("utf-8"))
}

/// A worker: announces itself, then serves requests until told "STOP".
/// Messages on its REQ socket are [client id, "", body].
fn worker(ctx: zmq::Context, id: usize, backend: String) -> Result<usize, zmq::Error> {
    let req = socket(&ctx, zmq::REQ)?;
    req.set_identity(format!("worker-{id}").as_bytes())?;
    req.connect(&backend)?;
    req.send("READY", 0)?;
    let mut served = 0;
    loop {
        let msg = req.recv_multipart(0)?;
        if msg == [b"STOP".to_vec()] {
            return Ok(served);
        }
        assert_eq!(msg.len(), 3, "[client, empty, request]");
        thread::sleep(Duration::from_millis(5 * (id as u64 + 1))); // uneven workers
        let reply = format!("OK from worker-{id}");
        req.send_multipart([&msg[0][..], b"", reply.as_bytes()], 0)?;
        served += 1;
    }
}

fn main() -> Result<(), zmq::Error> {
    let ctx = zmq::Context::new();
    let frontend = socket(&ctx, zmq::ROUTER)?;
    let backend = socket(&ctx, zmq::ROUTER)?;
    frontend.bind("tcp://127.0.0.1:*")?;
    backend.bind("tcp://127.0.0.1:*")?;
    let front_ep = frontend.get_last_endpoint()?.unwrap();
    let back_ep = backend.get_last_endpoint()?.unwrap();

    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let (ctx, ep) = (ctx.clone(), back_ep.clone());
            thread::spawn(move || worker(ctx, id, ep))
        })
        .collect();
    let (done_tx, done_rx) = mpsc::channel();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (ctx, ep, done) = (ctx.clone(), front_ep.clone(), done_tx.clone());
            thread::spawn(move || {
                let r = client(ctx, id, ep);
                done.send(()).ok();
                r
            })
        })
        .collect();
    drop(done_tx);

    // The broker loop: poll the backend always, the frontend only when a worker is idle.
    let mut idle: VecDeque<Vec<u8>> = VecDeque::new();
    let mut replies = 0;
    while replies < CLIENTS {
        let mut items = [
            backend.as_poll_item(zmq::POLLIN),
            frontend.as_poll_item(zmq::POLLIN),
        ];
        let polled = if idle.is_empty() {
            &mut items[..1]
        } else {
            &mut items[..]
        };
        if zmq::poll(polled, 5000)? == 0 {
            panic!("broker idle for 5 s with {replies}/{CLIENTS} replies");
        }
        let backend_ready = polled[0].is_readable();
        let frontend_ready = polled.len() > 1 && polled[1].is_readable();
        if backend_ready {
            // [worker id, "", "READY"] or [worker id, "", client id, "", reply]
            let msg = backend.recv_multipart(0)?;
            idle.push_back(msg[0].clone());
            if msg.len() == 5 {
                frontend.send_multipart([&msg[2][..], b"", &msg[4][..]], 0)?;
                replies += 1;
            }
        }
        if frontend_ready {
            if let Some(w) = idle.pop_front() {
                // [client id, "", request] -> [worker id, "", client id, "", request]
                let msg = frontend.recv_multipart(0)?;
                backend.send_multipart([&w[..], b"", &msg[0][..], b"", &msg[2][..]], 0)?;
            }
        }
    }
    for _ in 0..CLIENTS {
        done_rx.recv().expect("client finished");
    }
    for (id, c) in clients.into_iter().enumerate() {
        println!("client-{id}: {}", c.join().expect("client thread")?);
    }
    // Every worker is idle now (each has sent READY or a reply): stop them.
    while idle.len() < WORKERS {
        let msg = backend.recv_multipart(0)?;
        idle.push_back(msg[0].clone());
    }
    for w in idle.drain(..) {
        backend.send_multipart([&w[..], b"", b"STOP"], 0)?;
    }
    let served: Vec<usize> = workers
        .into_iter()
        .map(|w| w.join().expect("worker thread"))
        .collect::<Result<_, _>>()?;
    println!("requests per worker: {served:?}");
    assert_eq!(served.iter().sum::<usize>(), CLIENTS);
    Ok(())
}
