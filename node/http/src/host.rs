//! Which `Host` names a listener answers (against DNS rebinding).
//!
//! A web page on `evil.example` can point its own name at 127.0.0.1 and then read whatever the
//! loopback API answers, since to the browser it is the same origin. The browser still sends
//! `Host: evil.example`, so a listener that answers only its own names closes that door. Names
//! are compared without their port (the attacker does not choose the port any more than the IP);
//! an IP literal cannot be rebound, so any loopback IP, the listener's own IP, and any IP at all
//! when the listener is bound to every interface (`0.0.0.0`, `::`) pass.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::ApiState;

/// The `Host` names one listener answers.
#[derive(Debug, Clone)]
pub(crate) struct HostPolicy {
    /// Answer every name (the public portal without a configured `public_url`).
    any: bool,
    /// The IP the listener is bound to.
    listen: IpAddr,
    /// Further names (lowercase), e.g. the host of `public_url`.
    names: Vec<String>,
    /// Further IPs, e.g. a `public_url` written with an IP.
    ips: Vec<IpAddr>,
}

/// A `Host` value without its port.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostName {
    Ip(IpAddr),
    Name(String),
}

impl HostPolicy {
    /// Loopback names, the listen address and the host of `public_url` (if any).
    pub(crate) fn strict(listen: SocketAddr, public_url: Option<&str>) -> Self {
        let mut policy = HostPolicy { any: false, listen: listen.ip(), names: Vec::new(), ips: Vec::new() };
        if let Some(host) = public_url.and_then(url_host).and_then(|h| parse_host(&h)) {
            match host {
                HostName::Ip(ip) => policy.ips.push(ip),
                HostName::Name(n) => policy.names.push(n),
            }
        }
        policy
    }

    /// Every name.
    pub(crate) fn any(listen: SocketAddr) -> Self {
        HostPolicy { any: true, listen: listen.ip(), names: Vec::new(), ips: Vec::new() }
    }

    /// Whether a request with this `Host` value (port included or not) is answered.
    pub(crate) fn allows(&self, host: &str) -> bool {
        if self.any {
            return true;
        }
        match parse_host(host) {
            Some(HostName::Ip(ip)) => {
                ip.is_loopback() || ip == self.listen || self.listen.is_unspecified() || self.ips.contains(&ip)
            }
            Some(HostName::Name(name)) => name == "localhost" || self.names.contains(&name),
            None => false,
        }
    }
}

/// Parses `name`, `name:port`, `1.2.3.4[:port]` or `[v6][:port]`; lowercase, without a final dot.
fn parse_host(value: &str) -> Option<HostName> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))) {
            return None;
        }
        return inside.parse().ok().map(HostName::Ip);
    }
    let name = match value.split_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None, // a bare IPv6 address or garbage
        None => value,
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
        return None;
    }
    Some(match name.parse::<IpAddr>() {
        Ok(ip) => HostName::Ip(ip),
        Err(_) => HostName::Name(name),
    })
}

/// The `host[:port]` part of an `http(s)://` URL.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then(|| host.to_owned())
}

/// Answers 421 Misdirected Request when the request's `Host` (or, for an absolute-form request
/// line, its authority) is not one this listener answers. A request without either (HTTP/1.0
/// tools) is answered: browsers always send `Host`, so it cannot come from a rebinding page.
pub(crate) async fn check_host(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let given = match request.headers().get(header::HOST) {
        Some(v) => Some(v.to_str().unwrap_or("").to_owned()),
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
    };
    match given {
        Some(host) if !state.hosts.allows(&host) => {
            let shown: String = host.chars().take(100).collect();
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this listener does not answer for host {shown:?}: use localhost or its address, \
                     or set [api] public_url to the name it is published under"
                ),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 1)))
    }

    #[test]
    fn host_names_of_a_loopback_api() {
        let p = HostPolicy::strict(addr("127.0.0.1:4041"), Some("https://Data.Example.gov.vn:8443/portal"));
        for ok in [
            "localhost",
            "LOCALHOST:4041",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:4041",
            "127.8.9.10:1",
            "[::1]",
            "[::1]:4041",
            "data.example.gov.vn",
            "data.example.gov.vn:443",
        ] {
            assert!(p.allows(ok), "{ok} refused");
        }
        for bad in [
            "evil.example",
            "evil.example:4041",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "::1",
            "[::1]x",
            "",
            "a b",
            "localhost:80:80",
        ] {
            assert!(!p.allows(bad), "{bad} allowed");
        }
    }

    #[test]
    fn host_names_of_other_listeners() {
        let lan = HostPolicy::strict(addr("10.1.2.3:4041"), None);
        assert!(lan.allows("10.1.2.3:4041") && lan.allows("localhost") && !lan.allows("10.1.2.4"));
        let everywhere = HostPolicy::strict(addr("0.0.0.0:8080"), Some("http://192.0.2.7"));
        assert!(everywhere.allows("203.0.113.9:8080") && everywhere.allows("[2001:db8::1]"));
        assert!(!everywhere.allows("portal.example"));
        assert!(HostPolicy::strict(addr("[::]:1"), None).allows("192.0.2.1"));
        assert!(HostPolicy::any(addr("0.0.0.0:8080")).allows("anything.example"));
        assert_eq!(url_host("https://user@h.example:1/x?y"), Some("h.example:1".into()));
        assert_eq!(url_host("http://[::1]:8080"), Some("[::1]:8080".into()));
    }
}
