//! Header hygiene at a trust boundary: what an authenticating proxy strips
//! from requests before forwarding them, the identity it asserts instead, and
//! how it rewrites a downstream's redirects and cookies to its own paths.

use std::net::IpAddr;

use http::HeaderMap;
use http::header::{
    AUTHORIZATION, CONNECTION, COOKIE, HeaderName, HeaderValue, LOCATION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
    SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};

use super::Destination;

/// The prefix of the identity headers the ingress sets; every incoming
/// header with it is dropped first, so clients cannot assert an identity.
pub const IDENTITY_PREFIX: &str = "x-authkit-";

/// The signed-in user's e-mail (or subject).
pub const USER_HEADER: &str = "x-authkit-user";

/// The user's groups, comma-separated.
pub const GROUPS_HEADER: &str = "x-authkit-groups";

/// The identity asserted downstream.
#[derive(Clone, Copy, Debug)]
pub struct Identity<'a> {
    /// E-mail or subject.
    pub user: &'a str,
    /// Groups.
    pub groups: &'a [String],
}

/// Where the request came from, as the ingress saw it.
#[derive(Clone, Copy, Debug)]
pub struct Forwarded<'a> {
    /// The client's address (from the socket, or a trusted proxy's header).
    pub client: IpAddr,
    /// `http` or `https`, as the client reached the ingress.
    pub proto: &'a str,
    /// The `Host` the client asked for.
    pub host: Option<&'a str>,
}

/// Removes RFC 9110 hop-by-hop headers, including those `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        CONNECTION,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Removes the cookie `name` from the `Cookie` headers, keeping the others.
fn remove_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<String> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && pair.split('=').next().map(str::trim) != Some(name))
        .map(str::to_owned)
        .collect();
    headers.remove(COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::try_from(kept.join("; "))
    {
        headers.insert(COOKIE, value);
    }
}

/// What happens to request headers whose name contains `_`.
///
/// Many servers (CGI/WSGI-style stacks such as gunicorn, some Rack and PHP
/// set-ups) fold `_` into `-`, so `X_Authkit_User` would reach a service as
/// `X-Authkit-User`. Whatever the setting, a header whose name, with `_`
/// read as `-`, is one the ingress protects never passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnderscoreHeaders {
    /// Drop every request header whose name contains `_` (nginx's default).
    #[default]
    Drop,
    /// Forward them, except those whose folded name is protected.
    Keep,
}

/// Whether `name` (lowercase, with `_` read as `-`) is one the ingress
/// owns: identity and forwarding headers, credentials and hop-by-hop
/// headers, which a client must never set for the service.
fn is_protected(name: &str) -> bool {
    // Runs for every header of every proxied request: allocate only for
    // the rare name that has an `_` to fold.
    let folded: std::borrow::Cow<'_, str> = if name.contains('_') {
        name.replace('_', "-").into()
    } else {
        name.into()
    };
    folded.starts_with(IDENTITY_PREFIX)
        || folded.starts_with("x-forwarded-")
        || matches!(
            &*folded,
            "forwarded"
                | "x-real-ip"
                | "x-request-id"
                | "authorization"
                | "proxy-authorization"
                | "proxy-authenticate"
                | "proxy-connection"
                | "keep-alive"
                | "transfer-encoding"
                | "connection"
                | "upgrade"
                | "te"
                | "trailer"
                | "host"
                | "cookie"
        )
}

/// Prepares a request's headers for a downstream: hop-by-hop headers,
/// `Authorization` and the session cookie `session_cookie` removed; every
/// incoming identity or forwarding header (`X-Authkit-*`, `Forwarded`,
/// `X-Forwarded-*`, `X-Real-Ip`, `X-Request-Id`) dropped, and so is any
/// header whose name contains `_` unless `underscores` keeps them (never
/// one that folds to a protected name); then exactly one `X-Authkit-User`,
/// `X-Authkit-Groups` (groups that cannot be a header value or contain a
/// comma are left out) and `X-Forwarded-For`, `-Proto`, `-Host` set from
/// what the ingress knows.
pub fn forward_request_headers(
    headers: &mut HeaderMap,
    identity: Identity<'_>,
    forwarded: Forwarded<'_>,
    session_cookie: &str,
    underscores: UnderscoreHeaders,
) {
    remove_hop_by_hop(headers);
    headers.remove(AUTHORIZATION);
    remove_cookie(headers, session_cookie);
    let spoofable: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            let underscored = name.contains('_');
            (underscored && (underscores == UnderscoreHeaders::Drop || is_protected(name)))
                || (!underscored && is_protected(name) && name != "cookie" && name != "host")
        })
        .cloned()
        .collect();
    for name in spoofable {
        headers.remove(name);
    }
    if let Ok(user) = HeaderValue::try_from(identity.user) {
        headers.insert(USER_HEADER, user);
    }
    let groups: Vec<&str> = identity
        .groups
        .iter()
        .map(String::as_str)
        .filter(|g| !g.contains(',') && HeaderValue::try_from(*g).is_ok())
        .collect();
    if let Ok(groups) = HeaderValue::try_from(groups.join(",")) {
        headers.insert(GROUPS_HEADER, groups);
    }
    if let Ok(client) = HeaderValue::try_from(forwarded.client.to_string()) {
        headers.insert("x-forwarded-for", client);
    }
    if let Ok(proto) = HeaderValue::try_from(forwarded.proto) {
        headers.insert("x-forwarded-proto", proto);
    }
    if let Some(host) = forwarded.host.and_then(|h| HeaderValue::try_from(h).ok()) {
        headers.insert("x-forwarded-host", host);
    }
}

/// A downstream redirect to its own origin, moved under `/s/{name}/`;
/// `None` for redirects elsewhere (left as they are).
pub fn rewrite_location(location: &str, destination: &Destination) -> Option<String> {
    let base_path = destination.base_path().trim_end_matches('/');
    let path = if let Some(rest) = location.strip_prefix(&destination.origin()) {
        if !(rest.is_empty() || rest.starts_with(['/', '?'])) {
            return None; // e.g. http://127.0.0.1:80800 vs :8080
        }
        rest
    } else if location.starts_with('/') && !location.starts_with("//") {
        location
    } else {
        return None;
    };
    let under = path.strip_prefix(base_path).unwrap_or(path);
    let under = under.trim_start_matches('/');
    Some(format!("/s/{}/{under}", destination.name()))
}

/// A downstream cookie confined to `/s/{name}/` on the ingress's own host:
/// `Path` replaced, `Domain` removed. `None` if it does not parse.
pub fn scope_set_cookie(value: &str, destination: &Destination) -> Option<String> {
    let mut cookie = cookie::Cookie::parse(value.to_owned()).ok()?;
    cookie.set_path(format!("/s/{}/", destination.name()));
    cookie.unset_domain();
    Some(cookie.to_string())
}

/// Whether the `Set-Cookie` value `set_cookie` sets the cookie `name`
/// (compared without case: browsers differ in how they treat case).
fn names_cookie(set_cookie: &str, name: &str) -> bool {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .is_some_and(|(cookie, _)| cookie.trim().eq_ignore_ascii_case(name))
}

/// Prepares a downstream response's headers for the client: hop-by-hop
/// headers removed, own-origin `Location`s rewritten, `Set-Cookie`s scoped
/// (cookies that do not parse are dropped, and so is any cookie named like
/// the portal's `session_cookie`: a service must not shadow the session or
/// outlive a sign-out with it).
pub fn forward_response_headers(headers: &mut HeaderMap, destination: &Destination, session_cookie: &str) {
    remove_hop_by_hop(headers);
    if let Some(rewritten) = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| rewrite_location(l, destination))
        .and_then(|l| HeaderValue::try_from(l).ok())
    {
        headers.insert(LOCATION, rewritten);
    }
    let cookies: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !names_cookie(v, session_cookie))
        .filter_map(|v| scope_set_cookie(v, destination))
        .filter_map(|v| HeaderValue::try_from(v).ok())
        .collect();
    headers.remove(SET_COOKIE);
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination() -> Destination {
        Destination::parse("wiki", "http://127.0.0.1:8080/base/").unwrap()
    }

    #[test]
    fn requests_lose_credentials_hop_by_hop_and_spoofed_identity_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer secret"),
            ("cookie", "theme=dark; authkit_session=SIGNED; lang=en"),
            ("x-authkit-user", "admin@example.com"),
            ("X-Authkit-Groups", "admins"),
            ("x-authkit-anything", "x"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("connection", "keep-alive, x-private-hop"),
            ("x-private-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("accept", "text/html"),
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static(value),
            );
        }
        let groups = vec!["staff".to_owned(), "bad,group".to_owned(), "ops".to_owned()];
        forward_request_headers(
            &mut headers,
            Identity {
                user: "alice@example.com",
                groups: &groups,
            },
            Forwarded {
                client: "127.0.0.1".parse().unwrap(),
                proto: "https",
                host: Some("portal.example.com"),
            },
            "authkit_session",
            UnderscoreHeaders::Drop,
        );
        assert!(headers.get("authorization").is_none());
        assert_eq!(headers["cookie"], "theme=dark; lang=en");
        assert_eq!(headers["x-authkit-user"], "alice@example.com");
        assert_eq!(headers["x-authkit-groups"], "staff,ops");
        assert!(headers.get("x-authkit-anything").is_none());
        assert_eq!(headers.get_all("x-authkit-user").iter().count(), 1);
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "portal.example.com");
        for gone in ["forwarded", "connection", "x-private-hop", "keep-alive", "te"] {
            assert!(headers.get(gone).is_none(), "{gone}");
        }
        assert_eq!(headers["accept"], "text/html");
    }

    #[test]
    fn a_request_carrying_only_the_session_cookie_forwards_no_cookie_header() {
        let mut headers = HeaderMap::new();
        headers.insert("cookie", HeaderValue::from_static("authkit_session=SIGNED"));
        forward_request_headers(
            &mut headers,
            Identity { user: "a", groups: &[] },
            Forwarded {
                client: "::1".parse().unwrap(),
                proto: "http",
                host: None,
            },
            "authkit_session",
            UnderscoreHeaders::Drop,
        );
        assert!(headers.get("cookie").is_none());
        assert_eq!(headers["x-authkit-groups"], "");
    }

    fn forward_with(underscores: UnderscoreHeaders, sent: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in sent {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        forward_request_headers(
            &mut headers,
            Identity {
                user: "alice@example.com",
                groups: &["staff".to_owned()],
            },
            Forwarded {
                client: "192.0.2.1".parse().unwrap(),
                proto: "https",
                host: None,
            },
            "authkit_session",
            underscores,
        );
        headers
    }

    const FORGED: &[(&str, &str)] = &[
        ("X_Authkit_Groups", "hr;admins"),
        ("X-Authkit_User", "root@example.com"),
        ("x_authkit_user", "root@example.com"),
        ("X_Forwarded_For", "6.6.6.6"),
        ("x-forwarded_host", "evil.example"),
        ("X_Real_IP", "6.6.6.6"),
        ("x-real_ip", "6.6.6.6"),
        ("X-Real-Ip", "6.6.6.6"),
        ("x_request_id", "forged"),
        ("X-Request-Id", "forged"),
        ("Proxy_Authorization", "Basic eDp5"),
        ("transfer_encoding", "chunked"),
        ("X_Custom", "1"),
        ("x-custom", "2"),
    ];

    #[test]
    fn underscored_names_are_dropped_so_no_folding_server_sees_a_forged_identity() {
        let headers = forward_with(UnderscoreHeaders::Drop, FORGED);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert!(names.iter().all(|n| !n.contains('_')), "{names:?}");
        assert_eq!(headers.get_all(USER_HEADER).iter().count(), 1);
        assert_eq!(headers[USER_HEADER], "alice@example.com");
        assert_eq!(headers.get_all(GROUPS_HEADER).iter().count(), 1);
        assert_eq!(headers[GROUPS_HEADER], "staff");
        assert_eq!(headers["x-forwarded-for"], "192.0.2.1");
        assert!(headers.get("x-real-ip").is_none());
        assert!(headers.get("x-request-id").is_none());
        assert_eq!(headers["x-custom"], "2");
    }

    #[test]
    fn kept_underscored_names_still_never_fold_to_a_protected_one() {
        let headers = forward_with(UnderscoreHeaders::Keep, FORGED);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(headers["x_custom"], "1");
        for name in &names {
            if name.contains('_') {
                assert!(!is_protected(name), "{name} passed");
            }
        }
        assert_eq!(names.iter().filter(|n| n.contains('_')).count(), 1, "{names:?}");
        assert_eq!(headers[USER_HEADER], "alice@example.com");
    }

    #[test]
    fn a_service_cannot_set_the_portal_session_cookie() {
        let d = destination();
        let mut headers = HeaderMap::new();
        for cookie in [
            "authkit_session=planted; Path=/",
            "AUTHKIT_SESSION=planted",
            " authkit_session =planted",
            "authkit_session_other=1",
            "theme=dark",
        ] {
            headers.append("set-cookie", HeaderValue::from_str(cookie).unwrap());
        }
        forward_response_headers(&mut headers, &d, "authkit_session");
        let kept: Vec<&str> = headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept[0].starts_with("authkit_session_other=1"));
        assert!(kept[1].starts_with("theme=dark"));
    }

    #[test]
    fn own_redirects_move_under_the_service_prefix() {
        let d = destination();
        assert_eq!(
            rewrite_location("http://127.0.0.1:8080/base/page?x=1", &d).as_deref(),
            Some("/s/wiki/page?x=1")
        );
        assert_eq!(rewrite_location("/base/login", &d).as_deref(), Some("/s/wiki/login"));
        assert_eq!(rewrite_location("/other", &d).as_deref(), Some("/s/wiki/other"));
        assert_eq!(rewrite_location("https://elsewhere.example/", &d), None);
        assert_eq!(rewrite_location("//evil.example/", &d), None);
        assert_eq!(rewrite_location("http://127.0.0.1:80801/", &d), None);
    }

    #[test]
    fn downstream_cookies_are_scoped_to_the_service_path() {
        let d = destination();
        let scoped = scope_set_cookie("sid=abc; Path=/; Domain=127.0.0.1; HttpOnly", &d).unwrap();
        let cookie = cookie::Cookie::parse(scoped).unwrap();
        assert_eq!(cookie.path(), Some("/s/wiki/"));
        assert_eq!(cookie.domain(), None);
        assert_eq!(cookie.http_only(), Some(true));
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", HeaderValue::from_static("a=1; Path=/"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        headers.insert("location", HeaderValue::from_static("/base/next"));
        headers.insert("connection", HeaderValue::from_static("close"));
        forward_response_headers(&mut headers, &d, "authkit_session");
        assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
        assert!(
            headers
                .get_all("set-cookie")
                .iter()
                .all(|v| v.to_str().unwrap().contains("Path=/s/wiki/"))
        );
        assert_eq!(headers["location"], "/s/wiki/next");
        assert!(headers.get("connection").is_none());
    }
}
