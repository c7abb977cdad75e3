//! Security configuration of a connection and the authentication hook of the PLAIN and CURVE
//! servers, shaped after ZAP (RFC 27, <https://rfc.zeromq.org/spec/27/>).
//!
//! A server-side mechanism that has learned the client's credentials (PLAIN user name and
//! password, CURVE long-term public key) builds a [`ZapRequest`] and asks the connection's
//! [`Authenticator`]; the [`ZapReply`]'s status code decides, as in libzmq:
//!
//! | status | effect                                                                 |
//! |--------|------------------------------------------------------------------------|
//! | 200    | accepted; `user_id` and `metadata` are reported in the peer's info     |
//! | 300    | temporary failure: the connection is closed without an ERROR command   |
//! | 400    | denied: an ERROR command with reason "400" is sent, then closed         |
//! | 500    | internal error: an ERROR command with reason "500" is sent, then closed |
//!
//! Without an authenticator (libzmq without a handler on `inproc://zeromq.zap.01`), CURVE
//! servers accept every client that completes the handshake (the "Stonehouse" pattern: the
//! traffic is encrypted but clients are not authenticated), and PLAIN servers refuse every
//! client, closing without an ERROR command, as libzmq 4.3 does.

use std::sync::Arc;

use bytes::Bytes;

use super::mechanism::MechanismKind;
use crate::Metadata;

/// The ZAP protocol version of [`ZapRequest`]s (RFC 27).
pub const ZAP_VERSION: &str = "1.0";

/// An authentication request (the frames of a ZAP request after version and request id).
#[derive(Clone, PartialEq, Eq)]
pub struct ZapRequest {
    /// The server socket's ZAP domain (`ZMQ_ZAP_DOMAIN`; empty by default).
    pub domain: String,
    /// The client's address as text (for TCP, its IP address), as the engine configured it.
    pub address: String,
    /// The server socket's routing id (`ZMQ_ROUTING_ID`), as libzmq sends it.
    pub identity: Bytes,
    /// The mechanism: [`MechanismKind::Plain`] or [`MechanismKind::Curve`].
    pub mechanism: MechanismKind,
    /// PLAIN: `[username, password]`; CURVE: `[client long-term public key (32 bytes)]`.
    pub credentials: Vec<Bytes>,
}

impl std::fmt::Debug for ZapRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A PLAIN password never goes to logs.
        let creds: Vec<String> = self
            .credentials
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if self.mechanism == MechanismKind::Plain && i == 1 {
                    "<redacted>".to_owned()
                } else {
                    format!("{c:?}")
                }
            })
            .collect();
        f.debug_struct("ZapRequest")
            .field("domain", &self.domain)
            .field("address", &self.address)
            .field("identity", &self.identity)
            .field("mechanism", &self.mechanism)
            .field("credentials", &creds)
            .finish()
    }
}

/// The answer to a [`ZapRequest`] (the frames of a ZAP reply after version and request id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZapReply {
    /// "200" (accepted), "300" (temporary failure), "400" (denied) or "500" (server error).
    pub status_code: String,
    /// Human-readable reason (not sent to the client).
    pub status_text: String,
    /// The authenticated user id (libzmq's `User-Id` message property); 200 only.
    pub user_id: Bytes,
    /// Properties attached to the connection's messages (200 only).
    pub metadata: Metadata,
}

impl ZapReply {
    /// A 200 reply for user `user_id`.
    pub fn ok(user_id: impl Into<Bytes>) -> Self {
        ZapReply {
            status_code: "200".to_owned(),
            status_text: "OK".to_owned(),
            user_id: user_id.into(),
            metadata: Metadata::new(),
        }
    }

    /// A 400 reply (credentials refused).
    pub fn denied(text: impl Into<String>) -> Self {
        ZapReply {
            status_code: "400".to_owned(),
            status_text: text.into(),
            user_id: Bytes::new(),
            metadata: Metadata::new(),
        }
    }
}

/// Decides whether a client may connect (what a ZAP handler does).
///
/// Called on the engine's thread during the handshake: it must answer quickly and not block.
/// Any `Fn(&ZapRequest) -> ZapReply + Send + Sync` closure is an authenticator.
pub trait Authenticator: Send + Sync {
    /// Answers one request.
    fn authenticate(&self, req: &ZapRequest) -> ZapReply;
}

impl<F> Authenticator for F
where
    F: Fn(&ZapRequest) -> ZapReply + Send + Sync,
{
    fn authenticate(&self, req: &ZapRequest) -> ZapReply {
        self(req)
    }
}

/// Which mechanism a connection uses, and in which role, with its secrets.
///
/// Keys are raw 32-byte X25519 keys (decode `ZMQ_CURVE_*KEY` Z85 text with
/// [`z85_decode`](crate::z85_decode)); public halves are derived from the secret keys, so a
/// mismatched pair cannot be configured.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum MechanismConfig {
    /// No security (RFC 23).
    #[default]
    Null,
    /// PLAIN client (RFC 24): sends these credentials (each truncated to 255 bytes).
    PlainClient {
        /// `ZMQ_PLAIN_USERNAME`.
        username: Bytes,
        /// `ZMQ_PLAIN_PASSWORD`.
        password: Bytes,
    },
    /// PLAIN server (`ZMQ_PLAIN_SERVER`): checks credentials with the authenticator.
    PlainServer,
    /// CURVE client (RFC 25/26).
    CurveClient {
        /// The server's long-term public key (`ZMQ_CURVE_SERVERKEY`).
        server_key: [u8; 32],
        /// Our long-term secret key (`ZMQ_CURVE_SECRETKEY`).
        secret_key: [u8; 32],
    },
    /// CURVE server (`ZMQ_CURVE_SERVER`).
    CurveServer {
        /// Our long-term secret key (`ZMQ_CURVE_SECRETKEY`).
        secret_key: [u8; 32],
    },
}

impl std::fmt::Debug for MechanismConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MechanismConfig::Null => f.write_str("Null"),
            MechanismConfig::PlainClient { username, .. } => f
                .debug_struct("PlainClient")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            MechanismConfig::PlainServer => f.write_str("PlainServer"),
            MechanismConfig::CurveClient { server_key, .. } => f
                .debug_struct("CurveClient")
                .field("server_key", server_key)
                .field("secret_key", &"<redacted>")
                .finish(),
            MechanismConfig::CurveServer { .. } => f
                .debug_struct("CurveServer")
                .field("secret_key", &"<redacted>")
                .finish(),
        }
    }
}

impl MechanismConfig {
    /// The mechanism announced in the greeting.
    pub fn kind(&self) -> MechanismKind {
        match self {
            MechanismConfig::Null => MechanismKind::Null,
            MechanismConfig::PlainClient { .. } | MechanismConfig::PlainServer => {
                MechanismKind::Plain
            }
            MechanismConfig::CurveClient { .. } | MechanismConfig::CurveServer { .. } => {
                MechanismKind::Curve
            }
        }
    }

    /// Whether we are the mechanism's server (the greeting's as-server byte; always false
    /// for NULL).
    pub fn is_server(&self) -> bool {
        matches!(
            self,
            MechanismConfig::PlainServer | MechanismConfig::CurveServer { .. }
        )
    }
}

/// The security settings of one connection (see [`Handshake::with_security`]).
///
/// [`Handshake::with_security`]: super::Handshake::with_security
#[derive(Clone, Default)]
pub struct SecurityConfig {
    /// Mechanism and role.
    pub mechanism: MechanismConfig,
    /// Who checks the client's credentials on the server side (see the module docs for what
    /// happens without one).
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// `ZMQ_ZAP_DOMAIN`, passed in every [`ZapRequest`].
    pub zap_domain: String,
    /// The peer's address as text, passed in every [`ZapRequest`].
    pub peer_address: String,
    /// Leave authentication to the caller instead of calling `authenticator`: the handshake
    /// pauses at [`Handshake::pending_auth`] until [`Handshake::resolve_auth`] (for an engine
    /// that forwards requests to a ZAP handler asynchronously).
    ///
    /// [`Handshake::pending_auth`]: super::Handshake::pending_auth
    /// [`Handshake::resolve_auth`]: super::Handshake::resolve_auth
    pub defer_auth: bool,
}

impl std::fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("mechanism", &self.mechanism)
            .field("authenticator", &self.authenticator.as_ref().map(|_| ".."))
            .field("zap_domain", &self.zap_domain)
            .field("peer_address", &self.peer_address)
            .field("defer_auth", &self.defer_auth)
            .finish()
    }
}

/// What the handshake does with a [`ZapReply`] (or with no authenticator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    /// Accepted.
    Accepted,
    /// Refused; send an ERROR with this reason if any, then close.
    Refused {
        /// What to report locally.
        why: String,
        /// The ERROR reason to send, if any.
        error_reason: Option<String>,
    },
}

/// Interprets a reply's status code as libzmq does (RFC 27 allows exactly 200/300/400/500).
pub(crate) fn outcome(reply: &ZapReply) -> AuthOutcome {
    match reply.status_code.as_str() {
        "200" => AuthOutcome::Accepted,
        "300" => AuthOutcome::Refused {
            why: format!("300 {}", reply.status_text),
            error_reason: None,
        },
        code @ ("400" | "500") => AuthOutcome::Refused {
            why: format!("{code} {}", reply.status_text),
            error_reason: Some(code.to_owned()),
        },
        other => AuthOutcome::Refused {
            why: format!("invalid ZAP status code {other:?}"),
            error_reason: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes() {
        assert_eq!(outcome(&ZapReply::ok("u")), AuthOutcome::Accepted);
        let r = outcome(&ZapReply::denied("no"));
        assert!(matches!(r, AuthOutcome::Refused { error_reason: Some(ref c), .. } if c == "400"));
        let mut rep = ZapReply::denied("x");
        rep.status_code = "300".into();
        assert!(matches!(
            outcome(&rep),
            AuthOutcome::Refused {
                error_reason: None,
                ..
            }
        ));
        rep.status_code = "500".into();
        assert!(
            matches!(outcome(&rep), AuthOutcome::Refused { error_reason: Some(ref c), .. } if c == "500")
        );
        rep.status_code = "201".into();
        assert!(matches!(
            outcome(&rep),
            AuthOutcome::Refused {
                error_reason: None,
                ..
            }
        ));
    }

    #[test]
    fn secrets_redacted() {
        let req = ZapRequest {
            domain: String::new(),
            address: "127.0.0.1".into(),
            identity: Bytes::new(),
            mechanism: MechanismKind::Plain,
            credentials: vec![Bytes::from_static(b"admin"), Bytes::from_static(b"hunter2")],
        };
        let s = format!("{req:?}");
        assert!(s.contains("admin") && !s.contains("hunter2"));
        let m = MechanismConfig::PlainClient {
            username: Bytes::from_static(b"admin"),
            password: Bytes::from_static(b"hunter2"),
        };
        assert!(!format!("{m:?}").contains("hunter2"));
        let m = MechanismConfig::CurveServer {
            secret_key: [7; 32],
        };
        assert!(!format!("{m:?}").contains('7'));
        let f = |_: &ZapRequest| ZapReply::ok("u");
        assert_eq!(f.authenticate(&req).user_id, "u");
    }
}
