//! Who may read and who may change, for the status page and `/api/v1`.
//!
//! Owns: the bearer token check (constant time), the page's session cookie (an HMAC of the
//! token, never the token), the cross-site checks on the page's forms, and the `Host` check
//! that keeps a DNS-rebinding site from reading a loopback page. The policy itself is
//! [`Access`], decided once in config from the listen address. Must not: log or echo a
//! token or a cookie, or serve anything (handlers ask it, then answer).

use axum::http::{HeaderMap, StatusCode, header};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::Access;

/// The page's session cookie.
pub const COOKIE: &str = "logward_session";
/// How long a sign-in on the page lasts.
pub const SESSION_SECONDS: u64 = 12 * 3600;

/// What a request proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// The bearer token.
    Bearer,
    /// The page's session cookie (set by signing in with the token).
    Session,
}

/// Why a request is refused, and what to tell its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: &'static str,
}

pub const NEEDS_TOKEN: Refusal = Refusal {
    status: StatusCode::UNAUTHORIZED,
    message: "this needs the [http] token: send `Authorization: Bearer <token>` (or sign in on the status page)",
};
pub const WRONG_TOKEN: Refusal = Refusal {
    status: StatusCode::UNAUTHORIZED,
    message: "wrong token: send the [http] token of this agent's config",
};
pub const NO_TOKEN: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    message: "changes over HTTP are off: this agent has no [http] token (set token or token_file, or use `logward silence` on its host)",
};
pub const CROSS_SITE: Refusal = Refusal {
    status: StatusCode::FORBIDDEN,
    message: "refused: the form was sent from another site",
};
pub const FOREIGN_HOST: Refusal = Refusal {
    status: StatusCode::MISDIRECTED_REQUEST,
    message: "refused: a loopback agent answers only to localhost or an IP address in the Host header",
};

/// The endpoint's policy and the values derived from its token.
pub struct Auth {
    access: Access,
    /// `SHA-256(token)`: what a presented token's hash is compared with.
    token_hash: Option<[u8; 32]>,
    /// The session cookie's value: hex `HMAC-SHA256(token, "logward session")`.
    session: Option<String>,
}

impl Auth {
    pub fn new(access: Access) -> Auth {
        let token = access.token().map(|t| t.expose().as_bytes().to_vec());
        let token_hash = token.as_deref().map(|t| Sha256::digest(t).into());
        let session = token.as_deref().and_then(|t| {
            let mut mac = Hmac::<Sha256>::new_from_slice(t).ok()?;
            mac.update(b"logward session");
            Some(hex::encode(mac.finalize().into_bytes()))
        });
        Auth {
            access,
            token_hash,
            session,
        }
    }

    /// Whether a token is configured (so the page can offer to sign in).
    pub fn has_token(&self) -> bool {
        self.token_hash.is_some()
    }

    /// Whether `candidate` is the token.
    pub fn is_token(&self, candidate: &str) -> bool {
        self.token_hash
            .is_some_and(|h| same(&h, &Sha256::digest(candidate.as_bytes()).into()))
    }

    /// The cookie that signs a browser in, for `Set-Cookie`.
    pub fn session_cookie(&self) -> Option<String> {
        self.session.as_ref().map(|v| {
            format!("{COOKIE}={v}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}")
        })
    }

    /// The `Set-Cookie` that signs a browser out.
    pub fn cleared_cookie() -> String {
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
    }

    /// What the request proves. A bearer header that is not the token is refused outright
    /// (not read as anonymous), so a typo is told, not silently downgraded.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let given = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            return match given {
                Some(t) if self.is_token(t) => Ok(Caller::Bearer),
                _ if self.has_token() => Err(WRONG_TOKEN),
                _ => Err(NO_TOKEN),
            };
        }
        let cookie = cookie(headers, COOKIE);
        match (&self.session, cookie) {
            (Some(s), Some(c)) if same_text(s, c) => Ok(Caller::Session),
            _ => Ok(Caller::Anonymous),
        }
    }

    /// May this caller read the page and the API?
    pub fn may_read(&self, headers: &HeaderMap) -> Result<Caller, Refusal> {
        self.check_host(headers)?;
        let caller = self.caller(headers)?;
        if caller == Caller::Anonymous && self.access.reads_need_token() {
            return Err(NEEDS_TOKEN);
        }
        Ok(caller)
    }

    /// May this caller change state through the API? Only with the bearer token.
    pub fn may_change_api(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_host(headers)?;
        if !self.has_token() {
            return Err(NO_TOKEN);
        }
        match self.caller(headers)? {
            Caller::Bearer => Ok(()),
            Caller::Session | Caller::Anonymous => Err(NEEDS_TOKEN),
        }
    }

    /// May this caller change state through the page's forms? The bearer token, or the
    /// session cookie on a request that the browser says comes from this very page.
    pub fn may_change_page(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_host(headers)?;
        if !self.has_token() {
            return Err(NO_TOKEN);
        }
        match self.caller(headers)? {
            Caller::Bearer => Ok(()),
            Caller::Session if same_origin(headers) => Ok(()),
            Caller::Session => Err(CROSS_SITE),
            Caller::Anonymous => Err(NEEDS_TOKEN),
        }
    }

    /// A page at a loopback address reads without credentials, so a name that a hostile DNS
    /// server points at 127.0.0.1 must not reach it: only `localhost` and IP literals.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if self.access.reads_need_token() {
            return Ok(());
        }
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return Ok(());
        };
        if local_host(host) {
            Ok(())
        } else {
            Err(FOREIGN_HOST)
        }
    }
}

/// `localhost`, an IPv4 address or a bracketed IPv6 address, with or without a port.
fn local_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => {
            return rest
                .split_once(']')
                .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The browser says the request comes from a page of this origin: `Sec-Fetch-Site` is
/// `same-origin` when sent, else `Origin` names the `Host`. A request with neither (not a
/// browser's) is let through: the cookie alone is then all there is, and SameSite=Strict
/// keeps it off cross-site requests.
fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get(header::HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin";
    }
    match (get(header::ORIGIN), get(header::HOST)) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// [`same`] for texts of any length: their hashes are compared.
fn same_text(a: &str, b: &str) -> bool {
    same(
        &Sha256::digest(a.as_bytes()).into(),
        &Sha256::digest(b.as_bytes()).into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn loopback(token: Option<&str>) -> Auth {
        Auth::new(Access::Loopback {
            token: token.map(Secret::for_test),
        })
    }

    #[test]
    fn reading_on_loopback_is_open_and_changing_needs_the_bearer_token() {
        let auth = loopback(Some("s3cret"));
        assert_eq!(
            auth.may_read(&headers(&[("host", "127.0.0.1:9898")])),
            Ok(Caller::Anonymous)
        );
        assert_eq!(auth.may_change_api(&headers(&[])), Err(NEEDS_TOKEN));
        assert_eq!(
            auth.may_change_api(&headers(&[("authorization", "Bearer nope")])),
            Err(WRONG_TOKEN)
        );
        assert_eq!(
            auth.may_change_api(&headers(&[("authorization", "Bearer s3cret")])),
            Ok(())
        );
        assert_eq!(
            loopback(None).may_change_api(&headers(&[("authorization", "Bearer s3cret")])),
            Err(NO_TOKEN)
        );
    }

    #[test]
    fn a_network_listener_needs_the_token_to_read() {
        let auth = Auth::new(Access::Network {
            token: Secret::for_test("s3cret"),
        });
        assert_eq!(auth.may_read(&headers(&[])), Err(NEEDS_TOKEN));
        assert_eq!(
            auth.may_read(&headers(&[("authorization", "Bearer s3cret")])),
            Ok(Caller::Bearer)
        );
    }

    #[test]
    fn the_session_cookie_is_not_the_token_and_forms_must_come_from_the_page() {
        let auth = loopback(Some("s3cret"));
        let cookie = auth.session_cookie().unwrap();
        assert!(!cookie.contains("s3cret"));
        let value = cookie.split(';').next().unwrap().to_string();
        let same = headers(&[("cookie", &value), ("sec-fetch-site", "same-origin")]);
        assert_eq!(auth.may_change_page(&same), Ok(()));
        let cross = headers(&[("cookie", &value), ("sec-fetch-site", "cross-site")]);
        assert_eq!(auth.may_change_page(&cross), Err(CROSS_SITE));
        let origin = headers(&[
            ("cookie", &value),
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:9898"),
        ]);
        assert_eq!(auth.may_change_page(&origin), Err(CROSS_SITE));
        let forged = headers(&[("cookie", "logward_session=00")]);
        assert_eq!(auth.may_change_page(&forged), Err(NEEDS_TOKEN));
        assert_eq!(
            auth.may_change_api(&headers(&[("cookie", &value)])),
            Err(NEEDS_TOKEN)
        );
    }

    #[test]
    fn a_loopback_page_answers_only_to_local_host_names() {
        let auth = loopback(None);
        for ok in ["localhost:9898", "127.0.0.1", "[::1]:9898", "LOCALHOST"] {
            assert!(auth.may_read(&headers(&[("host", ok)])).is_ok(), "{ok}");
        }
        for bad in ["rebind.evil.example:9898", "evil.example", "[::1"] {
            assert_eq!(
                auth.may_read(&headers(&[("host", bad)])),
                Err(FOREIGN_HOST),
                "{bad}"
            );
        }
    }
}
