//! Endpoint strings: `tcp://host:port` (and, later, `ipc://` and `inproc://`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use crate::error::{Error, Result};

/// A parsed TCP endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpEndpoint {
    /// Host part: `*`, an IP literal (brackets removed) or a host name.
    pub host: String,
    /// Port; `None` for `*` (any free port, bind only).
    pub port: Option<u16>,
}

/// A parsed ipc endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IpcEndpoint {
    /// A filesystem path.
    Path(String),
    /// A Linux abstract-namespace name (`ipc://@name`).
    Abstract(String),
}

/// A parsed endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `tcp://host:port`.
    Tcp(TcpEndpoint),
    /// `ipc://path` or `ipc://@name`.
    Ipc(IpcEndpoint),
    /// `inproc://name` (handled by sockets directly, never by the engine).
    Inproc(String),
}

/// Parses `endpoint`. Unknown or not yet supported transports give `EPROTONOSUPPORT`,
/// malformed addresses `EINVAL`, as libzmq does.
pub fn parse(endpoint: &str) -> Result<Endpoint> {
    let (scheme, addr) = endpoint.split_once("://").ok_or(Error::EINVAL)?;
    match scheme {
        "tcp" => parse_tcp(addr).map(Endpoint::Tcp),
        "ipc" => parse_ipc(addr).map(Endpoint::Ipc),
        "inproc" if !addr.is_empty() && addr.len() <= 256 => Ok(Endpoint::Inproc(addr.into())),
        "inproc" => Err(Error::EINVAL),
        _ => Err(Error::EPROTONOSUPPORT),
    }
}

fn parse_ipc(addr: &str) -> Result<IpcEndpoint> {
    if addr.is_empty() {
        return Err(Error::EINVAL);
    }
    // sockaddr_un holds 107 bytes of path plus a NUL.
    if addr.len() > 107 {
        return Err(Error::ENAMETOOLONG);
    }
    Ok(match addr.strip_prefix('@') {
        Some(name) if !name.is_empty() => IpcEndpoint::Abstract(name.into()),
        Some(_) => return Err(Error::EINVAL),
        None => IpcEndpoint::Path(addr.into()),
    })
}

fn parse_tcp(addr: &str) -> Result<TcpEndpoint> {
    let (host, port) = addr.rsplit_once(':').ok_or(Error::EINVAL)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port = match port {
        "*" | "0" => None,
        p => Some(p.parse::<u16>().map_err(|_| Error::EINVAL)?),
    };
    Ok(TcpEndpoint {
        host: host.to_string(),
        port,
    })
}

impl TcpEndpoint {
    /// The address to bind: `*` is the IPv4 (or, with `ipv6`, IPv6) wildcard. As in libzmq,
    /// bind takes an IP address, not a host name (`ENODEV`), and an IPv6 address only with
    /// the `IPV6` option.
    pub fn bind_addr(&self, ipv6: bool) -> Result<SocketAddr> {
        let port = self.port.unwrap_or(0);
        if self.host == "*" {
            let ip = if ipv6 {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            };
            return Ok(SocketAddr::new(ip, port));
        }
        match self.host.parse::<IpAddr>() {
            Ok(ip) if ip.is_ipv4() || ipv6 => Ok(SocketAddr::new(ip, port)),
            _ => Err(Error::ENODEV),
        }
    }

    /// The addresses to connect to (a port is required).
    pub fn connect_addrs(&self, ipv6: bool) -> Result<Vec<SocketAddr>> {
        let port = self.port.ok_or(Error::EINVAL)?;
        let numeric = self.host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if self.host == "*"
            || self.host.is_empty()
            || (numeric && self.host.parse::<IpAddr>().is_err())
        {
            // Not a usable address (and not worth a DNS query from the I/O thread).
            return Err(Error::EINVAL);
        }
        let mut addrs: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (self.host.as_str(), port)
                .to_socket_addrs()
                .map_err(|_| Error::EINVAL)?
                .collect(),
        };
        if !ipv6 && addrs.iter().any(SocketAddr::is_ipv4) {
            addrs.retain(SocketAddr::is_ipv4);
        }
        if addrs.is_empty() {
            return Err(Error::EINVAL);
        }
        Ok(addrs)
    }
}

/// Formats a bound address as libzmq's `LAST_ENDPOINT` does.
pub fn format_tcp(addr: &SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("tcp://{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("tcp://[{}]:{}", a.ip(), a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(e: Endpoint) -> Option<TcpEndpoint> {
        match e {
            Endpoint::Tcp(t) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn parses_ipc_and_inproc() {
        assert_eq!(
            parse("ipc:///tmp/x.sock"),
            Ok(Endpoint::Ipc(IpcEndpoint::Path("/tmp/x.sock".into())))
        );
        assert_eq!(
            parse("ipc://@name"),
            Ok(Endpoint::Ipc(IpcEndpoint::Abstract("name".into())))
        );
        assert_eq!(parse("ipc://"), Err(Error::EINVAL));
        assert_eq!(
            parse(&format!("ipc:///{}", "x".repeat(200))),
            Err(Error::ENAMETOOLONG)
        );
        assert_eq!(parse("inproc://a"), Ok(Endpoint::Inproc("a".into())));
        assert_eq!(parse("inproc://"), Err(Error::EINVAL));
    }

    #[test]
    fn parses_the_libzmq_forms() {
        let Some(e) = tcp(parse("tcp://127.0.0.1:*").unwrap()) else {
            panic!()
        };
        assert_eq!(e.port, None);
        assert_eq!(e.bind_addr(false).unwrap().ip().to_string(), "127.0.0.1");
        let Some(e) = tcp(parse("tcp://*:5555").unwrap()) else {
            panic!()
        };
        assert_eq!(e.bind_addr(false).unwrap().to_string(), "0.0.0.0:5555");
        assert_eq!(e.bind_addr(true).unwrap().to_string(), "[::]:5555");
        let Some(e) = tcp(parse("tcp://[::1]:7").unwrap()) else {
            panic!()
        };
        assert_eq!(e.connect_addrs(true).unwrap()[0].to_string(), "[::1]:7");
        let Some(e) = tcp(parse("tcp://localhost:7").unwrap()) else {
            panic!()
        };
        assert!(!e.connect_addrs(false).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_endpoints() {
        assert_eq!(parse("nope"), Err(Error::EINVAL));
        assert_eq!(parse("foo://x"), Err(Error::EPROTONOSUPPORT));
        assert_eq!(parse("tcp://nope"), Err(Error::EINVAL));
        let Some(e) = tcp(parse("tcp://:5").unwrap()) else {
            panic!()
        };
        assert_eq!(e.bind_addr(false), Err(Error::ENODEV));
        let Some(e) = tcp(parse("tcp://localhost:*").unwrap()) else {
            panic!()
        };
        assert_eq!(e.bind_addr(false), Err(Error::ENODEV));
        let Some(e) = tcp(parse("tcp://[::1]:*").unwrap()) else {
            panic!()
        };
        assert_eq!(e.bind_addr(false), Err(Error::ENODEV));
        assert_eq!(parse("tcp://h:99999"), Err(Error::EINVAL));
        let Some(e) = tcp(parse("tcp://127.0.0.1:*").unwrap()) else {
            panic!()
        };
        assert_eq!(e.connect_addrs(false), Err(Error::EINVAL));
    }

    #[test]
    fn formats_like_last_endpoint() {
        assert_eq!(
            format_tcp(&"127.0.0.1:80".parse().unwrap()),
            "tcp://127.0.0.1:80"
        );
        assert_eq!(format_tcp(&"[::1]:80".parse().unwrap()), "tcp://[::1]:80");
    }
}
