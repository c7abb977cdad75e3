"""CURVE PUSH -> PULL throughput over tcp with libzmq (pyzmq's bundled libzmq 4.3.5),
the libzmq half of the CURVE comparison in BENCHMARKS.md.

python3 benches/curve_pyzmq.py [size] [count]
"""
import sys
import threading
import time

import zmq

size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
count = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
ctx = zmq.Context()
server_pub, server_sec = zmq.curve_keypair()
client_pub, client_sec = zmq.curve_keypair()
pull = ctx.socket(zmq.PULL)
pull.curve_server = True
pull.curve_secretkey = server_sec
port = pull.bind_to_random_port("tcp://127.0.0.1")


def send():
    push = ctx.socket(zmq.PUSH)
    push.curve_serverkey = server_pub
    push.curve_publickey = client_pub
    push.curve_secretkey = client_sec
    push.connect(f"tcp://127.0.0.1:{port}")
    payload = b"\0" * size
    for _ in range(count):
        push.send(payload, copy=False)
    push.close(linger=-1)


t = threading.Thread(target=send)
t.start()
pull.recv(copy=False)
start = time.perf_counter()
for _ in range(count - 1):
    pull.recv(copy=False)
secs = time.perf_counter() - start
t.join()
rate = (count - 1) / secs
print(f"libzmq CURVE tcp {size} B: {rate:.0f} msg/s ({rate * size / 1e6:.1f} MB/s)")
