//! Interop of the PLAIN and CURVE handshakes with real libzmq (the one bundled in pyzmq: the
//! `zmq` crate's vendored libzmq is built without CURVE).
//!
//! `tests/py/security_peer.py` runs a libzmq DEALER over TCP on 127.0.0.1; here a raw
//! ferromq handshake driver (`ferromq::proto::Handshake` over a `std::net::TcpStream`)
//! completes the handshake and exchanges a multipart message both ways, through the
//! `FrameCipher` for CURVE. Every test is skipped (passes, with a note on stderr) when
//! `python3` cannot `import zmq` or its libzmq lacks CURVE.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferromq::proto::{
    Authenticator, Decoder, Encoder, Frame, FrameCipher, Handshake, HandshakeConfig,
    HandshakeStatus, MechanismConfig, PeerInfo, ProtoError, SecurityConfig, ZapReply, ZapRequest,
};
use ferromq::{z85_decode, z85_encode, CurveKeyPair, SocketType};

fn pyzmq_available() -> bool {
    let ok = Command::new("python3")
        .args([
            "-c",
            "import zmq, sys; sys.exit(0 if zmq.has('curve') else 1)",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: python3 with pyzmq (and CURVE) is not available");
    }
    ok
}

/// The Python peer, killed on drop if still running.
struct Peer {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Peer {
    fn start(args: &[&str]) -> Peer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/security_peer.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn python3");
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        Peer { child, out }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).expect("read peer output");
        l.trim().to_owned()
    }

    fn port(&mut self) -> u16 {
        let l = self.line();
        l.strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("peer said {l:?}"))
    }

    fn finish(mut self) -> String {
        let l = self.line();
        let _ = self.child.wait();
        l
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cfg() -> HandshakeConfig {
    HandshakeConfig {
        socket_type: SocketType::DEALER,
        identity: Bytes::new(),
        as_server: false,
        max_msg_size: None,
    }
}

/// A connection after the handshake: the stream, the bytes read past the handshake, the
/// cipher (CURVE) and a decoder.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    cipher: Option<FrameCipher>,
    dec: Decoder,
}

fn write_out(stream: &mut TcpStream, enc: &mut Encoder) {
    let mut out = BytesMut::new();
    enc.drain_into(&mut out);
    stream.write_all(&out).expect("write");
}

/// Runs `hs` over `stream` to completion.
fn handshake(mut stream: TcpStream, mut hs: Handshake) -> Result<(PeerInfo, Conn), ProtoError> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut enc = Encoder::new();
    let mut buf = BytesMut::new();
    let peer = loop {
        hs.poll_output(&mut enc);
        write_out(&mut stream, &mut enc);
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).expect("read during handshake");
        if n == 0 {
            // Closed by the peer (libzmq sends no ERROR for some failures).
            return Err(ProtoError::PeerError("connection closed".into()));
        }
        buf.extend_from_slice(&chunk[..n]);
        match hs.handle_input(&mut buf) {
            Ok(HandshakeStatus::Done(p)) => break p,
            Ok(HandshakeStatus::InProgress) => {}
            Err(e) => {
                hs.poll_output(&mut enc);
                write_out(&mut stream, &mut enc);
                return Err(e);
            }
        }
    };
    hs.poll_output(&mut enc);
    write_out(&mut stream, &mut enc);
    let cipher = hs.take_cipher();
    Ok((
        peer,
        Conn {
            stream,
            buf,
            cipher,
            dec: Decoder::new(None),
        },
    ))
}

impl Conn {
    fn send(&mut self, parts: &[&[u8]]) {
        let mut enc = Encoder::new();
        for (i, p) in parts.iter().enumerate() {
            let more = i + 1 < parts.len();
            match self.cipher.as_mut() {
                Some(c) => enc.encode_frame(&c.encrypt(p, more, false).unwrap(), false),
                None => enc.encode_frame(&Bytes::copy_from_slice(p), more),
            }
        }
        write_out(&mut self.stream, &mut enc);
    }

    fn recv(&mut self) -> Vec<Bytes> {
        let mut parts = Vec::new();
        loop {
            let frame = loop {
                if let Some(f) = self.dec.decode(&mut self.buf).expect("decode") {
                    break f;
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).expect("read");
                assert!(n > 0, "peer closed");
                self.buf.extend_from_slice(&chunk[..n]);
            };
            let (data, more, command) = match (self.cipher.as_mut(), frame) {
                (Some(c), f) => {
                    let p = c.decrypt_frame(&f).expect("decrypt");
                    (p.data, p.more, p.command)
                }
                (None, Frame::Message { data, more }) => (data, more, false),
                (None, Frame::Command(_)) => continue,
            };
            if command {
                continue;
            }
            parts.push(data);
            if !more {
                return parts;
            }
        }
    }
}

fn z85(key: &[u8; 32]) -> String {
    z85_encode(key).unwrap()
}

fn key(text: &str) -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(&z85_decode(text).unwrap());
    k
}

/// ferromq client against a libzmq server: handshake, then [ping, ferromq] -> libzmq, and
/// libzmq's [pong, ping, ferromq] back.
fn client_exchange(peer: Peer, port: u16, security: SecurityConfig) -> Result<String, ProtoError> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (info, mut conn) = handshake(stream, Handshake::new(cfg()).with_security(security))?;
    assert_eq!(info.socket_type, SocketType::DEALER);
    conn.send(&[b"ping", b"ferromq"]);
    let reply = conn.recv();
    assert_eq!(reply, [&b"pong"[..], b"ping", b"ferromq"]);
    conn.send(&[b"done"]);
    let l = peer.finish();
    assert!(l.starts_with("OK"), "libzmq peer: {l}");
    Ok(l)
}

#[test]
fn curve_ferromq_client_to_libzmq_server() {
    if !pyzmq_available() {
        return;
    }
    let server = CurveKeyPair::new().unwrap();
    let client = CurveKeyPair::new().unwrap();
    let mut peer = Peer::start(&[
        "curve-server",
        &z85(&server.secret_key),
        &z85(&client.public_key),
    ]);
    let port = peer.port();
    client_exchange(
        peer,
        port,
        SecurityConfig {
            mechanism: MechanismConfig::CurveClient {
                server_key: server.public_key,
                secret_key: client.secret_key,
            },
            ..SecurityConfig::default()
        },
    )
    .unwrap();
}

#[test]
fn curve_wrong_server_key_fails_against_libzmq() {
    if !pyzmq_available() {
        return;
    }
    let server = CurveKeyPair::new().unwrap();
    let client = CurveKeyPair::new().unwrap();
    let mut peer = Peer::start(&[
        "curve-server",
        &z85(&server.secret_key),
        &z85(&client.public_key),
    ]);
    let port = peer.port();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let hs = Handshake::new(cfg()).with_security(SecurityConfig {
        mechanism: MechanismConfig::CurveClient {
            server_key: CurveKeyPair::new().unwrap().public_key,
            secret_key: client.secret_key,
        },
        ..SecurityConfig::default()
    });
    // libzmq cannot open HELLO and drops the connection.
    assert!(handshake(stream, hs).is_err());
}

#[test]
fn curve_client_key_refused_by_libzmq_zap() {
    if !pyzmq_available() {
        return;
    }
    let server = CurveKeyPair::new().unwrap();
    let allowed = CurveKeyPair::new().unwrap();
    let stranger = CurveKeyPair::new().unwrap();
    let mut peer = Peer::start(&[
        "curve-server",
        &z85(&server.secret_key),
        &z85(&allowed.public_key),
    ]);
    let port = peer.port();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let hs = Handshake::new(cfg()).with_security(SecurityConfig {
        mechanism: MechanismConfig::CurveClient {
            server_key: server.public_key,
            secret_key: stranger.secret_key,
        },
        ..SecurityConfig::default()
    });
    // libzmq's ZAP handler answers 400: libzmq sends ERROR "400".
    assert_eq!(
        handshake(stream, hs).err(),
        Some(ProtoError::PeerError("400".into()))
    );
}

#[test]
fn curve_libzmq_client_to_ferromq_server() {
    if !pyzmq_available() {
        return;
    }
    let server = CurveKeyPair::new().unwrap();
    let client = CurveKeyPair::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let peer = Peer::start(&[
        "curve-client",
        &port,
        &z85(&server.public_key),
        &z85(&client.secret_key),
    ]);
    let allowed = client.public_key;
    let auth: Arc<dyn Authenticator> = Arc::new(move |req: &ZapRequest| {
        if req
            .credentials
            .first()
            .is_some_and(|c| c[..] == allowed[..])
        {
            ZapReply::ok("libzmq-client")
        } else {
            ZapReply::denied("unknown")
        }
    });
    let (stream, addr) = listener.accept().unwrap();
    let hs = Handshake::new(cfg()).with_security(SecurityConfig {
        mechanism: MechanismConfig::CurveServer {
            secret_key: server.secret_key,
        },
        authenticator: Some(auth),
        zap_domain: String::new(),
        peer_address: addr.ip().to_string(),
        defer_auth: false,
    });
    let (info, mut conn) = handshake(stream, hs).unwrap();
    assert_eq!(info.user_id, "libzmq-client");
    assert_eq!(info.socket_type, SocketType::DEALER);
    let msg = conn.recv();
    assert_eq!(msg, [&b"hello"[..], b"from-libzmq"]);
    conn.send(&[b"pong", b"hello", b"from-libzmq"]);
    let l = peer.finish();
    assert!(l.starts_with("OK"), "libzmq peer: {l}");
}

#[test]
fn curve_ferromq_server_refuses_libzmq_client() {
    if !pyzmq_available() {
        return;
    }
    let server = CurveKeyPair::new().unwrap();
    let client = CurveKeyPair::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let _peer = Peer::start(&[
        "curve-client",
        &port,
        &z85(&server.public_key),
        &z85(&client.secret_key),
    ]);
    let (stream, _) = listener.accept().unwrap();
    let hs = Handshake::new(cfg()).with_security(SecurityConfig {
        mechanism: MechanismConfig::CurveServer {
            secret_key: server.secret_key,
        },
        authenticator: Some(Arc::new(|_: &ZapRequest| ZapReply::denied("no"))),
        ..SecurityConfig::default()
    });
    assert!(matches!(
        handshake(stream, hs),
        Err(ProtoError::AuthenticationFailed(_))
    ));
}

#[test]
fn plain_ferromq_client_to_libzmq_server() {
    if !pyzmq_available() {
        return;
    }
    let mut peer = Peer::start(&["plain-server", "admin", "s3cret"]);
    let port = peer.port();
    client_exchange(
        peer,
        port,
        SecurityConfig {
            mechanism: MechanismConfig::PlainClient {
                username: Bytes::from_static(b"admin"),
                password: Bytes::from_static(b"s3cret"),
            },
            ..SecurityConfig::default()
        },
    )
    .unwrap();
}

#[test]
fn plain_wrong_password_refused_by_libzmq() {
    if !pyzmq_available() {
        return;
    }
    let mut peer = Peer::start(&["plain-server", "admin", "s3cret"]);
    let port = peer.port();
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let hs = Handshake::new(cfg()).with_security(SecurityConfig {
        mechanism: MechanismConfig::PlainClient {
            username: Bytes::from_static(b"admin"),
            password: Bytes::from_static(b"guess"),
        },
        ..SecurityConfig::default()
    });
    assert_eq!(
        handshake(stream, hs).err(),
        Some(ProtoError::PeerError("400".into()))
    );
}

#[test]
fn plain_libzmq_client_to_ferromq_server() {
    if !pyzmq_available() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let peer = Peer::start(&["plain-client", &port, "admin", "s3cret"]);
    let (stream, _) = listener.accept().unwrap();
    let auth: Arc<dyn Authenticator> = Arc::new(|req: &ZapRequest| {
        if req.credentials == [&b"admin"[..], b"s3cret"] {
            ZapReply::ok("admin")
        } else {
            ZapReply::denied("bad")
        }
    });
    let hs = Handshake::new(cfg()).with_security(SecurityConfig {
        mechanism: MechanismConfig::PlainServer,
        authenticator: Some(auth),
        ..SecurityConfig::default()
    });
    let (info, mut conn) = handshake(stream, hs).unwrap();
    assert_eq!(info.user_id, "admin");
    let msg = conn.recv();
    assert_eq!(msg, [&b"hello"[..], b"from-libzmq"]);
    conn.send(&[b"pong", b"hello", b"from-libzmq"]);
    let l = peer.finish();
    assert!(l.starts_with("OK"), "libzmq peer: {l}");
}

#[test]
fn z85_keys_round_trip_with_libzmq() {
    if !pyzmq_available() {
        return;
    }
    // libzmq's zmq_curve_public agrees with CurveKeyPair::from_secret_key.
    let pair = CurveKeyPair::new().unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zmq; print(zmq.curve_public(sys.argv[1].encode()).decode())",
            &z85(&pair.secret_key),
        ])
        .output()
        .unwrap();
    let public = String::from_utf8(out.stdout).unwrap();
    assert_eq!(key(public.trim()), pair.public_key);
}
