//! `zmq::proxy` and its variants: forward whole messages between two sockets.

use crate::error::{Error, Result};
use crate::poll::{poll, POLLIN};
use crate::socket::Socket;
use crate::{DONTWAIT, SNDMORE};

/// Messages forwarded per readiness check before polling again (keeps both directions fair).
const BURST: usize = 1000;

#[derive(Default)]
struct Stats {
    msgs_in: u64,
    bytes_in: u64,
    msgs_out: u64,
    bytes_out: u64,
}

/// Forwards one whole message from `from` to `to` (and a copy to `capture`); `Ok(false)`
/// if `from` had nothing.
fn forward(
    from: &Socket,
    to: &Socket,
    capture: Option<&Socket>,
    stats_from: &mut Stats,
    stats_to: &mut Stats,
) -> Result<bool> {
    let mut first = true;
    loop {
        let msg = match from.recv_msg(DONTWAIT) {
            Ok(m) => m,
            Err(Error::EAGAIN) if first => return Ok(false),
            Err(e) => return Err(e),
        };
        first = false;
        let more = msg.get_more();
        let flags = if more { SNDMORE } else { 0 };
        let len = msg.len() as u64;
        if let Some(c) = capture {
            c.send_msg(msg.clone(), flags)?;
        }
        to.send_msg(msg, flags)?;
        stats_from.bytes_in += len;
        stats_to.bytes_out += len;
        if !more {
            stats_from.msgs_in += 1;
            stats_to.msgs_out += 1;
            return Ok(true);
        }
    }
}

fn run(
    frontend: &Socket,
    backend: &Socket,
    capture: Option<&Socket>,
    control: Option<&Socket>,
) -> Result<()> {
    let mut front_stats = Stats::default();
    let mut back_stats = Stats::default();
    let mut paused = false;
    loop {
        let (front_ready, back_ready, control_ready) = {
            let mut items = vec![frontend.as_poll_item(POLLIN), backend.as_poll_item(POLLIN)];
            if let Some(c) = control {
                items.push(c.as_poll_item(POLLIN));
            }
            if paused {
                items[0].set_events(crate::PollEvents::empty());
                items[1].set_events(crate::PollEvents::empty());
            }
            poll(&mut items, -1)?;
            (
                items[0].is_readable(),
                items[1].is_readable(),
                items.get(2).is_some_and(|i| i.is_readable()),
            )
        };
        if control_ready {
            if let Some(c) = control {
                let cmd = c.recv_bytes(0)?;
                match &cmd[..] {
                    b"PAUSE" => paused = true,
                    b"RESUME" => paused = false,
                    b"TERMINATE" => return Ok(()),
                    b"STATISTICS" => {
                        let v = [
                            front_stats.msgs_in,
                            front_stats.bytes_in,
                            front_stats.msgs_out,
                            front_stats.bytes_out,
                            back_stats.msgs_in,
                            back_stats.bytes_in,
                            back_stats.msgs_out,
                            back_stats.bytes_out,
                        ];
                        for (i, n) in v.iter().enumerate() {
                            let flags = if i + 1 < v.len() { SNDMORE } else { 0 };
                            c.send(n.to_ne_bytes(), flags)?;
                        }
                    }
                    _ => log::warn!("proxy: unknown control command {cmd:?}"),
                }
            }
        }
        if front_ready {
            for _ in 0..BURST {
                if !forward(
                    frontend,
                    backend,
                    capture,
                    &mut front_stats,
                    &mut back_stats,
                )? {
                    break;
                }
            }
        }
        if back_ready && !std::ptr::eq(frontend, backend) {
            for _ in 0..BURST {
                if !forward(
                    backend,
                    frontend,
                    capture,
                    &mut back_stats,
                    &mut front_stats,
                )? {
                    break;
                }
            }
        }
    }
}

/// Forwards messages between `frontend` and `backend` in both directions until the context
/// is terminated (then returns `Err(ETERM)`, like `zmq_proxy`).
pub fn proxy(frontend: &Socket, backend: &Socket) -> Result<()> {
    run(frontend, backend, None, None)
}

/// [`proxy`], sending a copy of every frame to `capture`.
pub fn proxy_with_capture(
    frontend: &mut Socket,
    backend: &mut Socket,
    capture: &mut Socket,
) -> Result<()> {
    run(frontend, backend, Some(capture), None)
}

/// [`proxy`] controlled by `PAUSE`, `RESUME`, `TERMINATE` and `STATISTICS` messages on
/// `control`, as `zmq_proxy_steerable` in libzmq 4.3.
pub fn proxy_steerable(
    frontend: &mut Socket,
    backend: &mut Socket,
    control: &mut Socket,
) -> Result<()> {
    run(frontend, backend, None, Some(control))
}

/// [`proxy_steerable`] with a capture socket.
pub fn proxy_steerable_with_capture(
    frontend: &mut Socket,
    backend: &mut Socket,
    capture: &mut Socket,
    control: &mut Socket,
) -> Result<()> {
    run(frontend, backend, Some(capture), Some(control))
}
