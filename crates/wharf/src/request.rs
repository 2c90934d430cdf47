//! Who sent a request: the client's address behind our trusted proxies, its user agent, and
//! the key the per-IP rate limits count it under.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::config::{Settings, TrustedProxies};
use crate::events::RequestMeta;

/// The IP address and user agent of a request, for the audit log and the rate limits.
pub fn request_meta(parts: &Parts, settings: &Settings) -> RequestMeta {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let ip_address =
        client_ip(peer, &parts.headers, &settings.trusted_proxies).map(|ip| ip.to_string());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    RequestMeta {
        ip_address,
        user_agent,
    }
}

/// The client's address: the socket peer, unless the peer is one of our trusted proxies; then
/// the right-most address in `X-Forwarded-For` (or, without it, `Forwarded: for=`) that is not
/// a trusted proxy itself. Everything left of that was written by the client and may be
/// forged. A proxy that writes `Forwarded` only must drop a client's `X-Forwarded-For`.
pub fn client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let hops: Vec<Option<IpAddr>> = if headers.contains_key(X_FORWARDED_FOR) {
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
            .map(forwarded_address)
            .collect()
    } else {
        headers
            .get_all(header::FORWARDED)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
            .map(|element| {
                let value = element.split(';').find_map(|pair| {
                    let (name, value) = pair.split_once('=')?;
                    name.trim().eq_ignore_ascii_case("for").then_some(value)
                });
                value.and_then(forwarded_address)
            })
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        // An entry that is no address (`unknown`, garbage) ends the chain we can believe.
        let Some(hop) = hop else { break };
        client = hop;
        if !trusted.contains(hop) {
            break;
        }
    }
    Some(client)
}

const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");

/// One address of a forwarding header: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `"[2001:db8::1]:4711"`.
fn forwarded_address(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let inner = text.strip_prefix('[')?.split(']').next()?;
    inner
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(|ip| IpAddr::V6(ip).to_canonical())
}

/// The key a request's address is counted under by the per-IP rate limits: the address, or
/// for IPv6 its /64 network (one subscriber usually has a whole /64 to pick addresses from).
pub fn rate_key(meta: &RequestMeta) -> String {
    match meta.ip_address.as_deref().map(str::parse::<IpAddr>) {
        Some(Ok(IpAddr::V6(ip))) => ipnet::Ipv6Net::new(ip, 64)
            .map(|net| net.trunc().to_string())
            .unwrap_or_else(|_| ip.to_string()),
        Some(Ok(IpAddr::V4(ip))) => ip.to_string(),
        Some(Err(_)) | None => meta.ip_address.clone().unwrap_or_default(),
    }
}
