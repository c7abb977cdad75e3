//! Pipeline "divide and conquer": a ventilator PUSHes 100 tasks (a workload in ms each) to 3
//! workers (PULL in, PUSH out); a sink PULLs the results and reports the total time. Then
//! the ventilator sends each worker a "stop" task and everything exits.
//!
//! Run: `cargo run --example taskvent_work_sink`

use ferromq as zmq;
use std::thread;
use std::time::{Duration, Instant};

const TASKS: u32 = 100;
const WORKERS: usize = 3;

fn socket(ctx: &zmq::Context, kind: zmq::SocketType) -> Result<zmq::Socket, zmq::Error> {
    let s = ctx.socket(kind)?;
    s.set_rcvtimeo(10_000)?;
    s.set_sndtimeo(10_000)?;
    s.set_linger(1000)?;
    Ok(s)
}

fn bind_any(s: &zmq::Socket) -> Result<String, zmq::Error> {
    s.bind("tcp://127.0.0.1:*")?;
    Ok(s.get_last_endpoint()?.expect("utf-8 endpoint"))
}

/// Receives tasks, "works" (sleeps the task's milliseconds) and pushes the result to the sink.
fn worker(ctx: zmq::Context, id: usize, tasks: String, results: String) -> Result<u32, zmq::Error> {
    let receiver = socket(&ctx, zmq::PULL)?;
    receiver.connect(&tasks)?;
    let sender = socket(&ctx, zmq::PUSH)?;
    sender.connect(&results)?;
    let mut done = 0;
    loop {
        let task = receiver.recv_string(0)?.expect("utf-8 task");
        if task == "stop" {
            return Ok(done);
        }
        let ms: u64 = task.parse().expect("workload in ms");
        thread::sleep(Duration::from_millis(ms)); // the "work"
        sender.send(format!("{id}:{ms}").as_bytes(), 0)?;
        done += 1;
    }
}

fn main() -> Result<(), zmq::Error> {
    let ctx = zmq::Context::new();

    // The sink and the ventilator bind; workers connect to both.
    let sink = socket(&ctx, zmq::PULL)?;
    let results_ep = bind_any(&sink)?;
    let ventilator = socket(&ctx, zmq::PUSH)?;
    let tasks_ep = bind_any(&ventilator)?;

    let workers: Vec<_> = (0..WORKERS)
        .map(|id| {
            let (ctx, t, r) = (ctx.clone(), tasks_ep.clone(), results_ep.clone());
            thread::spawn(move || worker(ctx, id, t, r))
        })
        .collect();

    // Wait until all workers are connected before the batch starts, or the first one to
    // connect would take every task: each worker must answer one warm-up task. A PUSH
    // round-robins over connected peers only, so resend until each worker has answered.
    let mut warmed = [false; WORKERS];
    let start = Instant::now();
    while !warmed.iter().all(|w| *w) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "workers did not connect"
        );
        ventilator.send("0", 0)?;
        let r = sink.recv_string(0)?.expect("utf-8");
        let id: usize = r.split(':').next().unwrap().parse().unwrap();
        warmed[id] = true;
    }

    // The batch: random-ish workloads of 1..=20 ms, 100 tasks.
    let batch = Instant::now();
    let mut expected_ms = 0u64;
    let mut seed = 7u32;
    for _ in 0..TASKS {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let ms = (seed >> 16) as u64 % 20 + 1;
        expected_ms += ms;
        ventilator.send(ms.to_string().as_bytes(), 0)?;
    }
    println!("ventilator: {TASKS} tasks, {expected_ms} ms of work in total");

    let mut per_worker = [0u32; WORKERS];
    for _ in 0..TASKS {
        let r = sink.recv_string(0)?.expect("utf-8 result");
        let id: usize = r.split(':').next().unwrap().parse().unwrap();
        per_worker[id] += 1;
    }
    println!(
        "sink: {TASKS} results in {:?} (work spread over {WORKERS} workers: {per_worker:?})",
        batch.elapsed()
    );

    for _ in 0..WORKERS {
        ventilator.send("stop", 0)?;
    }
    for w in workers {
        w.join().expect("worker thread")?;
    }
    Ok(())
}
