//! Keeps `benches/compare.rs` from rotting: the same workload code, tiny counts, ferromq and
//! libzmq (the zmq.rs module is compiled by the bench only, keeping tokio out of this test);
//! and `benches/floor.rs` likewise.

#[path = "../benches/workloads/floor.rs"]
mod floor;
#[path = "../benches/workloads/mod.rs"]
mod workloads;

use workloads::{ferro, libzmq, Lat, Transport};

const N: u64 = 300;

#[test]
fn push_pull_every_transport_and_size() {
    for t in [Transport::Tcp, Transport::Ipc, Transport::Inproc] {
        for (size, count) in [(1, N), (64, N), (1024, N), (64 << 10, 20), (1 << 20, 3)] {
            let f = ferro::thr(t, size, count).unwrap();
            let l = libzmq::thr(t, size, count).unwrap();
            assert!(f > 0.0 && l > 0.0, "{t:?} {size}: {f} {l}");
        }
    }
}

#[test]
fn req_rep_latency() {
    for size in [1, 1024] {
        for samples in [
            ferro::lat(Transport::Tcp, size, N).unwrap(),
            libzmq::lat(Transport::Tcp, size, N).unwrap(),
        ] {
            assert_eq!(samples.len() as u64, N);
            let l = Lat::of(samples);
            assert!(l.p50 > 0.0 && l.p99 >= l.p50);
        }
    }
}

#[test]
fn pub_sub_fanout() {
    for f in [
        ferro::pubsub(Transport::Tcp, 64, N, 4).unwrap(),
        libzmq::pubsub(Transport::Tcp, 64, N, 4).unwrap(),
    ] {
        assert!(f.delivered_per_sec > 0.0);
        assert!(f.loss.abs() < 1e-9, "HWM 0: nothing lost, got {}", f.loss);
    }
}

#[test]
fn router_with_many_dealers() {
    assert!(ferro::router(Transport::Tcp, 50, 3).unwrap() > 0.0);
    assert!(libzmq::router(Transport::Tcp, 50, 3).unwrap() > 0.0);
}

#[test]
fn idle_connection_memory_runs() {
    // No counting allocator here: only checks that the workload completes.
    workloads::ferro_conn_mem(10, &|| 0).unwrap();
}

#[path = "../benches/workloads/rpub.rs"]
mod rpub_workload;

#[test]
fn reliable_pub_vs_plain_side_by_side() {
    for _ in 0..2 {
        // Two calls: each order (plain first, RPUB first) runs once.
        let r = rpub_workload::side_by_side(64, N).unwrap();
        assert!(r.plain > 0.0 && r.rpub > 0.0, "{r:?}");
    }
}

#[test]
fn no_library_floors() {
    // The floor workloads block without timeouts (they measure bare system calls): run them
    // on a thread and give up on them after a minute.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let lats = [
            floor::lat_blocking(1, 50),
            floor::lat_epoll(1024, 50),
            floor::lat_io_thread(1, 50),
        ];
        let _ = tx.send((
            lats,
            floor::thr_tcp(64 << 10, 20),
            floor::memcpy(1 << 20, 5),
        ));
    });
    let (lats, stream, copy) = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("floor workloads stalled");
    for l in lats {
        assert_eq!(l.len(), 50);
        assert!(l.iter().all(|&x| x > 0.0));
    }
    assert!(stream > 0.0 && copy > 0.0, "{stream} {copy}");
}
