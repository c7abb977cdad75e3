//! The same workloads as `mod.rs` on zmq.rs (the `zeromq` crate, async on tokio). Each side
//! runs its own current-thread tokio runtime on its own OS thread, mirroring the one
//! application thread per side of the synchronous implementations. zmq.rs has no inproc.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zeromq::{Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::workloads::{bind_endpoint, warmup, Fanout, Transport, FAN_DATA, FAN_END, FAN_HELLO};

fn e<E: std::fmt::Display>(err: E) -> String {
    format!("zmq.rs: {err}")
}

fn rt() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(e)
}

fn endpoint(t: Transport) -> Result<String, String> {
    match t {
        Transport::Tcp => Ok("tcp://127.0.0.1:0".into()),
        Transport::Ipc => Ok(bind_endpoint(t)),
        Transport::Inproc => Err("zmq.rs has no inproc transport".into()),
    }
}

fn join<T>(h: std::thread::JoinHandle<Result<T, String>>) -> Result<T, String> {
    h.join()
        .map_err(|_| "zmq.rs: thread panicked".to_string())?
}

/// Receive timeout, as on the synchronous implementations.
const RECV_TIMEOUT: Duration = Duration::from_millis(crate::workloads::RECV_TIMEOUT_MS as u64);

async fn recv<S: SocketRecv>(s: &mut S) -> Result<ZmqMessage, String> {
    match tokio::time::timeout(RECV_TIMEOUT, s.recv()).await {
        Ok(r) => r.map_err(e),
        Err(_) => Err("zmq.rs: receive timed out".into()),
    }
}

/// Keeps a sending runtime (and so its writer tasks) running until the receiver says it is
/// done: zmq.rs has no linger, and dropping a socket may discard what it has not written yet.
async fn wait_done(done: &mpsc::Receiver<()>) {
    let until = Instant::now() + RECV_TIMEOUT;
    while done.try_recv().is_err() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn first_byte(m: &ZmqMessage) -> Option<u8> {
    m.get(0).and_then(|f| f.first().copied())
}

/// Whether zmq.rs supports `t`.
pub fn supports(t: Transport) -> bool {
    t != Transport::Inproc
}

/// PUSH -> PULL: messages per second seen by the receiver.
pub fn thr(t: Transport, size: usize, count: u64) -> Result<f64, String> {
    let ep = endpoint(t)?;
    rt()?.block_on(async move {
        let mut pull = zeromq::PullSocket::new();
        let bound = pull.bind(&ep).await.map_err(e)?.to_string();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let sender = std::thread::spawn(move || -> Result<(), String> {
            rt()?.block_on(async move {
                let mut push = zeromq::PushSocket::new();
                push.connect(&bound).await.map_err(e)?;
                let payload = Bytes::from(vec![7u8; size]);
                for _ in 0..count {
                    push.send(ZmqMessage::from(payload.clone()))
                        .await
                        .map_err(e)?;
                }
                wait_done(&done_rx).await;
                Ok(())
            })
        });
        let m = recv(&mut pull).await?;
        let start = Instant::now();
        let mut last = m;
        for _ in 1..count {
            last = recv(&mut pull).await?;
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let _ = done_tx.send(());
        let got = last.get(0).map_or(0, |f| f.len());
        if got != size {
            return Err(format!("zmq.rs: got {got} B, sent {size} B"));
        }
        join(sender)?;
        Ok(count.saturating_sub(1).max(1) as f64 / secs)
    })
}

/// REQ/REP half round trip samples in microseconds.
pub fn lat(t: Transport, size: usize, count: u64) -> Result<Vec<f64>, String> {
    let ep = endpoint(t)?;
    let total = count + warmup(count);
    let (tx, rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let echo = std::thread::spawn(move || -> Result<(), String> {
        rt()?.block_on(async move {
            let mut rep = zeromq::RepSocket::new();
            tx.send(rep.bind(&ep).await.map_err(e)?.to_string())
                .map_err(e)?;
            for _ in 0..total {
                let m = recv(&mut rep).await?;
                rep.send(m).await.map_err(e)?;
            }
            wait_done(&done_rx).await;
            Ok(())
        })
    });
    let bound = rx.recv().map_err(e)?;
    let samples = rt()?.block_on(async move {
        let mut req = zeromq::ReqSocket::new();
        req.connect(&bound).await.map_err(e)?;
        let payload = Bytes::from(vec![7u8; size]);
        let mut samples = Vec::with_capacity(count as usize);
        for i in 0..total {
            let t0 = Instant::now();
            req.send(ZmqMessage::from(payload.clone()))
                .await
                .map_err(e)?;
            recv(&mut req).await?;
            if i >= total - count {
                samples.push(t0.elapsed().as_nanos() as f64 / 2e3);
            }
        }
        Ok::<_, String>(samples)
    });
    let _ = done_tx.send(());
    let samples = samples?;
    join(echo)?;
    Ok(samples)
}

/// PUB -> `subs` SUBs: delivered messages per second summed over subscribers. zmq.rs's PUB
/// drops for a full subscriber queue (no HWM option), so `loss` may be non-zero.
pub fn pubsub(t: Transport, size: usize, count: u64, subs: usize) -> Result<Fanout, String> {
    let ep = endpoint(t)?;
    let size = size.max(1);
    rt()?.block_on(async move {
        let mut publ = zeromq::PubSocket::new();
        let bound = publ.bind(&ep).await.map_err(e)?.to_string();
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<(u64, f64)>();
        let mut threads = Vec::new();
        for _ in 0..subs {
            let (bound, ready_tx, done_tx) = (bound.clone(), ready_tx.clone(), done_tx.clone());
            threads.push(std::thread::spawn(move || -> Result<(), String> {
                rt()?.block_on(async move {
                    let mut sub = zeromq::SubSocket::new();
                    sub.subscribe("").await.map_err(e)?;
                    sub.connect(&bound).await.map_err(e)?;
                    let (mut ready, mut n, mut start) = (false, 0u64, None);
                    loop {
                        let m = recv(&mut sub).await?;
                        match first_byte(&m) {
                            Some(FAN_HELLO) if !ready => {
                                ready = true;
                                ready_tx.send(()).map_err(e)?;
                            }
                            Some(FAN_DATA) => {
                                start.get_or_insert_with(Instant::now);
                                n += 1;
                            }
                            Some(FAN_END) => break,
                            _ => {}
                        }
                    }
                    let secs = start.map_or(1e-9, |s: Instant| s.elapsed().as_secs_f64().max(1e-9));
                    done_tx.send((n, secs)).map_err(e)?;
                    Ok(())
                })
            }));
        }
        drop((ready_tx, done_tx));
        let mut buf = vec![0u8; size];
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut ready = 0;
        buf[0] = FAN_HELLO;
        let hello = Bytes::from(buf.clone());
        while ready < subs {
            publ.send(ZmqMessage::from(hello.clone()))
                .await
                .map_err(e)?;
            tokio::time::sleep(Duration::from_millis(1)).await;
            while ready_rx.try_recv().is_ok() {
                ready += 1;
            }
            if Instant::now() > deadline {
                return Err("zmq.rs: subscribers never joined".into());
            }
        }
        buf[0] = FAN_DATA;
        let data = Bytes::from(buf.clone());
        for i in 0..count {
            publ.send(ZmqMessage::from(data.clone())).await.map_err(e)?;
            if i % 256 == 0 {
                tokio::task::yield_now().await; // let the writer tasks of this runtime run
            }
        }
        buf[0] = FAN_END;
        let end = Bytes::from(buf);
        let mut results = Vec::new();
        while results.len() < subs {
            publ.send(ZmqMessage::from(end.clone())).await.map_err(e)?;
            tokio::time::sleep(Duration::from_millis(2)).await;
            while let Ok(r) = done_rx.try_recv() {
                results.push(r);
            }
            if Instant::now() > deadline + Duration::from_secs(120) {
                return Err("zmq.rs: subscribers never finished".into());
            }
        }
        for h in threads {
            join(h)?;
        }
        let delivered: u64 = results.iter().map(|r| r.0).sum();
        Ok(Fanout {
            delivered_per_sec: results.iter().map(|(n, s)| *n as f64 / s).sum(),
            loss: 1.0 - delivered as f64 / (count as f64 * subs as f64),
        })
    })
}
