//! Request-reply "hello world": a REP server thread answers "World" to each "Hello" from a
//! REQ client; 10 round trips, then both sides exit.
//!
//! Run: `cargo run --example hwserver_client`

use ferromq as zmq;
use std::sync::mpsc;
use std::thread;

const REQUESTS: usize = 10;

fn server(ctx: zmq::Context, ready: mpsc::Sender<String>) -> Result<(), zmq::Error> {
    let rep = ctx.socket(zmq::REP)?;
    rep.set_rcvtimeo(5000)?;
    rep.set_sndtimeo(5000)?;
    rep.set_linger(0)?;
    rep.bind("tcp://127.0.0.1:*")?;
    let endpoint = rep.get_last_endpoint()?.expect("utf-8 endpoint");
    ready
        .send(endpoint)
        .expect("main thread waits for the endpoint");
    for _ in 0..REQUESTS {
        let request = rep.recv_string(0)?.expect("utf-8 request");
        println!("server: received {request:?}");
        rep.send("World", 0)?;
    }
    Ok(())
}

fn main() -> Result<(), zmq::Error> {
    let ctx = zmq::Context::new();
    let (tx, rx) = mpsc::channel();
    let server_ctx = ctx.clone();
    let server = thread::spawn(move || server(server_ctx, tx));
    let endpoint = rx.recv().expect("server endpoint");

    let req = ctx.socket(zmq::REQ)?;
    req.set_rcvtimeo(5000)?;
    req.set_sndtimeo(5000)?;
    req.set_linger(0)?;
    req.connect(&endpoint)?;
    for n in 0..REQUESTS {
        req.send("Hello", 0)?;
        let reply = req.recv_string(0)?.expect("utf-8 reply");
        println!("client: request {n} -> {reply:?}");
        assert_eq!(reply, "World");
    }
    server.join().expect("server thread")?;
    println!("done: {REQUESTS} round trips");
    Ok(())
}
