#!/usr/bin/env python3
"""A libzmq (pyzmq) peer for tests/security_pyzmq.rs: one DEALER socket using PLAIN or CURVE.

Usage:
  security_peer.py curve-server SERVER_SECRET_Z85 ALLOWED_CLIENT_PUBLIC_Z85
  security_peer.py plain-server USERNAME PASSWORD
      bind tcp://127.0.0.1:* (a ZAP handler accepts only the given client key or
      credentials, with user id "zap-user"), print "PORT <n>", then receive one multipart
      message, check its User-Id property, and answer [b"pong", *parts].
  security_peer.py curve-client PORT SERVER_PUBLIC_Z85 CLIENT_SECRET_Z85
  security_peer.py plain-client PORT USERNAME PASSWORD
      connect to tcp://127.0.0.1:PORT, send [b"hello", b"from-libzmq"], wait for the answer
      and check it is [b"pong", b"hello", b"from-libzmq"].
Prints "OK ..." on success, "FAIL ..." otherwise; exits after at most 10 s.
"""
import sys
import threading

import zmq
import zmq.utils.z85

TIMEOUT_MS = 10000


def zap_handler(ctx, ready, stop, check):
    zap = ctx.socket(zmq.REP)
    zap.linger = 0
    zap.bind("inproc://zeromq.zap.01")
    ready.set()
    poller = zmq.Poller()
    poller.register(zap, zmq.POLLIN)
    while not stop.is_set():
        if not poller.poll(100):
            continue
        frames = zap.recv_multipart()
        version, request_id, _domain, _address, _identity, mechanism = frames[:6]
        creds = frames[6:]
        ok = check(mechanism, creds)
        zap.send_multipart([
            version,
            request_id,
            b"200" if ok else b"400",
            b"OK" if ok else b"denied",
            b"zap-user" if ok else b"",
            b"",
        ])
    zap.close()


def server(kind, args):
    ctx = zmq.Context()
    if kind == "curve":
        secret = args[0].encode()
        allowed = zmq.utils.z85.decode(args[1].encode())

        def check(mechanism, creds):
            return mechanism == b"CURVE" and creds == [allowed]
    else:
        user, password = args[0].encode(), args[1].encode()

        def check(mechanism, creds):
            return mechanism == b"PLAIN" and creds == [user, password]

    ready, stop = threading.Event(), threading.Event()
    t = threading.Thread(target=zap_handler, args=(ctx, ready, stop, check), daemon=True)
    t.start()
    ready.wait()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.rcvtimeo = TIMEOUT_MS
    if kind == "curve":
        sock.curve_server = True
        sock.curve_secretkey = secret
    else:
        sock.plain_server = True
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print("PORT %d" % port, flush=True)
    try:
        parts = sock.recv_multipart(copy=False)
        user_id = parts[0].get("User-Id")
        if user_id != "zap-user":
            print("FAIL User-Id %r" % user_id, flush=True)
            return 1
        data = [p.bytes for p in parts]
        sock.sndtimeo = TIMEOUT_MS
        sock.send_multipart([b"pong"] + data)
        # Wait for the ferromq side to confirm it read the reply before closing.
        final = sock.recv_multipart()
        print("OK %r %r" % (data, final), flush=True)
        return 0
    except zmq.Again:
        print("FAIL timeout", flush=True)
        return 1
    finally:
        stop.set()
        t.join()
        sock.close()
        ctx.term()


def client(kind, args):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 1000
    sock.rcvtimeo = TIMEOUT_MS
    sock.sndtimeo = TIMEOUT_MS
    port = int(args[0])
    if kind == "curve":
        sock.curve_serverkey = args[1].encode()
        secret = args[2].encode()
        sock.curve_secretkey = secret
        sock.curve_publickey = zmq.curve_public(secret)
    else:
        sock.plain_username = args[1].encode()
        sock.plain_password = args[2].encode()
    sock.connect("tcp://127.0.0.1:%d" % port)
    try:
        sock.send_multipart([b"hello", b"from-libzmq"])
        reply = sock.recv_multipart()
        if reply != [b"pong", b"hello", b"from-libzmq"]:
            print("FAIL reply %r" % reply, flush=True)
            return 1
        print("OK %r" % reply, flush=True)
        return 0
    except zmq.Again:
        print("FAIL timeout", flush=True)
        return 1
    finally:
        sock.close()
        ctx.term()


def main():
    role = sys.argv[1]
    kind, side = role.split("-")
    if side == "server":
        return server(kind, sys.argv[2:])
    return client(kind, sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
