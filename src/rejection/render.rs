//! Rendering an [`AuthError`] for HTTP (RFC 6750 challenges; a JSON body, or
//! an HTML page for a refused browser session) and for gRPC.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};
use std::sync::Arc;

use super::{AuthError, AuthErrorKind, DPOP_ALGORITHMS, Scheme};

/// Which wire protocol a rejection is rendered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// Plain HTTP: status code, challenge and JSON body.
    Http,
    /// gRPC (`content-type: application/grpc*`): a trailers-only response.
    Grpc,
}

impl Protocol {
    /// Detects gRPC from the request's `content-type`.
    pub fn of(headers: &HeaderMap) -> Self {
        match headers.get(CONTENT_TYPE) {
            Some(value) if value.as_bytes().starts_with(b"application/grpc") => Protocol::Grpc,
            _ => Protocol::Http,
        }
    }
}

/// Renders `error` with `renderer` and puts the error in the response's
/// extensions, so outer layers (access logs, metrics, error pages) can read
/// why a request was refused: `response.extensions().get::<AuthError>()`.
pub(crate) fn rendered<R: Renderer + ?Sized>(renderer: &R, error: &AuthError, protocol: Protocol) -> Response<Bytes> {
    let mut response = renderer.render(error, protocol);
    response.extensions_mut().insert(error.clone());
    response
}

/// Turns an [`AuthError`] into a response. Implement it to render your own
/// error pages; closures `Fn(&AuthError, Protocol) -> Response<Bytes>` work
/// too. Whatever it renders, the response the layers send also carries the
/// `AuthError` in its extensions, for outer layers.
pub trait Renderer: Send + Sync + 'static {
    /// Renders `error` for a request of the given protocol.
    fn render(&self, error: &AuthError, protocol: Protocol) -> Response<Bytes>;
}

impl<F> Renderer for F
where
    F: Fn(&AuthError, Protocol) -> Response<Bytes> + Send + Sync + 'static,
{
    fn render(&self, error: &AuthError, protocol: Protocol) -> Response<Bytes> {
        self(error, protocol)
    }
}

/// The crate's rendering: RFC 6750 challenges with the configured realm, JSON
/// bodies, `Retry-After`, and trailers-only gRPC responses.
#[derive(Clone, Debug)]
pub struct DefaultRenderer {
    /// The challenge's fixed opening: `realm` and, when configured,
    /// `resource_metadata`, sanitized once here, not per rejection.
    realm: Arc<str>,
    /// Added to 401 challenges that name no scope of their own.
    scope: Option<Arc<str>>,
}

fn sanitized(text: &str) -> String {
    let mut clean = String::with_capacity(text.len());
    push_sanitized(&mut clean, text);
    clean
}

impl DefaultRenderer {
    /// A renderer whose challenges name `realm`.
    pub fn new(realm: impl Into<Arc<str>>) -> Self {
        let realm: Arc<str> = realm.into();
        Self {
            realm: sanitized(&realm).into(),
            scope: None,
        }
    }

    /// Adds `resource_metadata="<url>"` (RFC 9728 §5.1) to every bearer
    /// challenge, so a client can find the authorization server.
    pub fn with_resource_metadata(mut self, url: impl AsRef<str>) -> Self {
        self.realm = format!("{}\", resource_metadata=\"{}", self.realm, sanitized(url.as_ref())).into();
        self
    }

    /// Adds `scope="<scopes>"` to 401 challenges (the scopes a client
    /// should ask for); `insufficient_scope` names its own.
    pub fn with_scope(mut self, scope: impl AsRef<str>) -> Self {
        self.scope = Some(sanitized(scope.as_ref()).into());
        self
    }
}

impl Default for DefaultRenderer {
    fn default() -> Self {
        Self::new("api")
    }
}

impl Renderer for DefaultRenderer {
    fn render(&self, error: &AuthError, protocol: Protocol) -> Response<Bytes> {
        match protocol {
            Protocol::Http => render_http(error, &self.realm, self.scope.as_deref()),
            Protocol::Grpc => render_grpc(error),
        }
    }
}

/// Appends `text` kept to printable ASCII without quotes or backslashes, so
/// a description can never break out of its quoted-string.
fn push_sanitized(out: &mut String, text: &str) {
    out.extend(text.chars().map(|c| match c {
        ' '..='~' if c != '"' && c != '\\' => c,
        _ => '?',
    }));
}

/// Opens a challenge: `Bearer realm="…"`, or `DPoP algs="…", realm="…"`.
fn open_challenge(value: &mut String, dpop: bool, realm: &str) {
    if dpop {
        value.push_str("DPoP algs=\"");
        value.push_str(DPOP_ALGORITHMS);
        value.push_str("\", realm=\"");
    } else {
        value.push_str("Bearer realm=\"");
    }
    value.push_str(realm);
    value.push('"');
}

/// The `WWW-Authenticate` values; `realm` (with any `resource_metadata`)
/// and `default_scope` are already sanitized. Built in one buffer:
/// rejections of garbage are a hot path for hostile traffic.
fn challenges(error: &AuthError, realm: &str, default_scope: Option<&str>) -> (Option<String>, Option<String>) {
    if matches!(error.scheme, Scheme::Cookie | Scheme::CookieHtml) {
        // A browser session: no token to ask for, no scope to name.
        let challenge = (error.status() == StatusCode::UNAUTHORIZED).then(|| format!("Cookie realm=\"{realm}\""));
        return (challenge, None);
    }
    let default_scope = default_scope.filter(|_| error.status() == StatusCode::UNAUTHORIZED);
    let push_default_scope = |value: &mut String| {
        if let Some(scope) = default_scope {
            value.push_str(", scope=\"");
            value.push_str(scope);
            value.push('"');
        }
    };
    match error.kind {
        AuthErrorKind::MissingCredentials => {
            // DPoP required: the one challenge is DPoP's (RFC 9449 §7.1).
            let only_dpop = error.scheme == Scheme::Dpop;
            let mut bearer = String::with_capacity(if only_dpop { 100 } else { 40 } + realm.len());
            open_challenge(&mut bearer, only_dpop, realm);
            push_default_scope(&mut bearer);
            let dpop = (error.scheme == Scheme::BearerAndDpop).then(|| {
                let mut dpop = String::with_capacity(100 + realm.len());
                open_challenge(&mut dpop, true, realm);
                push_default_scope(&mut dpop);
                dpop
            });
            (Some(bearer), dpop)
        }
        // Not a problem with the token: no bearer challenge.
        AuthErrorKind::Unavailable
        | AuthErrorKind::BadGateway
        | AuthErrorKind::TooManyRequests
        | AuthErrorKind::Forbidden => (None, None),
        _ => {
            let scope_len = error.scope.as_ref().map_or(0, |s| s.len() + 10);
            let mut value = String::with_capacity(120 + realm.len() + error.description.len() + scope_len);
            open_challenge(&mut value, error.challenges_dpop(), realm);
            value.push_str(", error=\"");
            value.push_str(error.code());
            value.push_str("\", error_description=\"");
            push_sanitized(&mut value, &error.description);
            value.push('"');
            if let Some(scope) = &error.scope {
                value.push_str(", scope=\"");
                push_sanitized(&mut value, scope);
                value.push('"');
            } else {
                push_default_scope(&mut value);
            }
            if let Some(acr_values) = error.acr_values() {
                value.push_str(", acr_values=\"");
                push_sanitized(&mut value, acr_values);
                value.push('"');
            }
            if let Some(max_age) = error.max_age() {
                value.push_str(", max_age=");
                value.push_str(&max_age.to_string());
            }
            (Some(value), None)
        }
    }
}

/// `text` escaped for HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A minimal page for a browser: the status and the description, escaped.
fn html_body(error: &AuthError) -> Bytes {
    let status = error.status();
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    let description = escape_html(error.description());
    Bytes::from(format!(
        "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>{description}</p></body></html>"
    ))
}

/// `{"error": code, "error_description": description}`, written directly
/// (no intermediate JSON value).
fn json_body(error: &AuthError) -> Bytes {
    let mut body = Vec::with_capacity(40 + error.description.len());
    body.extend_from_slice(b"{\"error\":\"");
    // Codes are fixed snake_case words: nothing to escape.
    body.extend_from_slice(error.code().as_bytes());
    body.extend_from_slice(b"\",\"error_description\":");
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut body, error.description());
    if let Some(acr_values) = error.acr_values() {
        body.extend_from_slice(b",\"acr_values\":");
        let _ = serde_json::to_writer(&mut body, acr_values);
    }
    if let Some(max_age) = error.max_age() {
        body.extend_from_slice(format!(",\"max_age\":{max_age}").as_bytes());
    }
    body.push(b'}');
    Bytes::from(body)
}

fn render_http(error: &AuthError, realm: &str, default_scope: Option<&str>) -> Response<Bytes> {
    let html = error.scheme == Scheme::CookieHtml;
    let mut response = Response::new(if html { html_body(error) } else { json_body(error) });
    *response.status_mut() = error.status();
    let headers = response.headers_mut();
    let content_type = if html {
        "text/html; charset=utf-8"
    } else {
        "application/json"
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let (first, second) = challenges(error, realm, default_scope);
    for value in [first, second].into_iter().flatten() {
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.append(WWW_AUTHENTICATE, value);
        }
    }
    if let Some(retry) = error.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(retry.as_secs().max(1)));
    }
    if let Some(nonce) = error.dpop_nonce().and_then(|n| HeaderValue::try_from(n).ok()) {
        headers.insert("dpop-nonce", nonce);
    }
    response
}

/// Percent-encodes a gRPC message as the gRPC HTTP/2 spec asks.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn render_grpc(error: &AuthError) -> Response<Bytes> {
    let mut response = Response::new(Bytes::new());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(error.grpc_status()));
    if let Ok(value) = HeaderValue::try_from(grpc_message(error.description())) {
        headers.insert("grpc-message", value);
    }
    if let Some(retry) = error.retry_after {
        headers.insert(RETRY_AFTER, HeaderValue::from(retry.as_secs().max(1)));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn challenges_name_the_resource_metadata_and_401s_the_scope() {
        let renderer = DefaultRenderer::new("api")
            .with_resource_metadata("https://api.example/.well-known/oauth-protected-resource/mcp")
            .with_scope("mcp:tools");
        let header = |error: &AuthError| {
            let response = renderer.render(error, Protocol::Http);
            response.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned()
        };
        let metadata = "resource_metadata=\"https://api.example/.well-known/oauth-protected-resource/mcp\"";
        assert_eq!(
            header(&AuthError::missing_credentials()),
            format!("Bearer realm=\"api\", {metadata}, scope=\"mcp:tools\"")
        );
        assert_eq!(
            header(&AuthError::invalid_token("token expired")),
            format!(
                "Bearer realm=\"api\", {metadata}, error=\"invalid_token\", error_description=\"token expired\", scope=\"mcp:tools\""
            )
        );
        // 403: the scope the error names, not the default.
        assert_eq!(
            header(&AuthError::insufficient_scope("mcp:admin")),
            format!(
                "Bearer realm=\"api\", {metadata}, error=\"insufficient_scope\", error_description=\"insufficient scope\", scope=\"mcp:admin\""
            )
        );
        // A quote in a configured value cannot break out either.
        let odd = DefaultRenderer::new("api").with_resource_metadata("https://x/\"evil");
        let response = odd.render(&AuthError::missing_credentials(), Protocol::Http);
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"api\", resource_metadata=\"https://x/?evil\""
        );
    }

    #[test]
    fn dpop_requests_are_challenged_in_the_dpop_scheme() {
        let renderer = DefaultRenderer::new("api")
            .with_resource_metadata("https://api.example/.well-known/oauth-protected-resource");
        let mut dpop_request = http::HeaderMap::new();
        dpop_request.insert("authorization", HeaderValue::from_static("dpop abc"));
        let render = |error: AuthError, headers: &http::HeaderMap, offers_dpop: bool| {
            let response = renderer.render(&error.in_scheme_of(headers, offers_dpop, true), Protocol::Http);
            response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let metadata = "resource_metadata=\"https://api.example/.well-known/oauth-protected-resource\"";
        assert_eq!(
            render(AuthError::invalid_token("token expired"), &dpop_request, true),
            [format!(
                "DPoP algs=\"{DPOP_ALGORITHMS}\", realm=\"api\", {metadata}, error=\"invalid_token\", error_description=\"token expired\""
            )]
        );
        // 403s after a DPoP authentication too.
        let forbidden = render(AuthError::insufficient_scope("a b"), &dpop_request, false);
        assert!(forbidden[0].starts_with("DPoP algs="), "{forbidden:?}");
        assert!(forbidden[0].ends_with("scope=\"a b\""), "{forbidden:?}");
        // No credential where DPoP is taken: both schemes are offered.
        assert_eq!(
            render(AuthError::missing_credentials(), &http::HeaderMap::new(), true),
            [
                format!("Bearer realm=\"api\", {metadata}"),
                format!("DPoP algs=\"{DPOP_ALGORITHMS}\", realm=\"api\", {metadata}"),
            ]
        );
        // DPoP required: no credential is offered the DPoP scheme alone.
        let only = renderer.render(
            &AuthError::missing_credentials().in_scheme_of(&http::HeaderMap::new(), true, false),
            Protocol::Http,
        );
        let offered: Vec<_> = only
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            offered,
            [format!("DPoP algs=\"{DPOP_ALGORITHMS}\", realm=\"api\", {metadata}")]
        );
        // A DPoP header the layer does not take is no credential: Bearer only.
        assert_eq!(
            render(AuthError::missing_credentials(), &dpop_request, false),
            [format!("Bearer realm=\"api\", {metadata}")]
        );
        // Bearer requests keep the Bearer scheme.
        let mut bearer_request = http::HeaderMap::new();
        bearer_request.insert("authorization", HeaderValue::from_static("Bearer abc"));
        let bearer = render(AuthError::invalid_token("token expired"), &bearer_request, true);
        assert!(bearer[0].starts_with("Bearer realm=\"api\""), "{bearer:?}");
    }

    #[test]
    fn missing_credentials_challenge_has_no_error_code() {
        let response = DefaultRenderer::new("r").render(&AuthError::missing_credentials(), Protocol::Http);
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer realm=\"r\"");
    }

    #[test]
    fn bodies_and_challenges_stay_well_formed_for_any_description() {
        let tricky = AuthError::invalid_token("quote \" backslash \\ newline \n é");
        let response = DefaultRenderer::new("my \"realm\"").render(&tricky, Protocol::Http);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], "quote \" backslash \\ newline \n é");
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert_eq!(
            challenge,
            "Bearer realm=\"my ?realm?\", error=\"invalid_token\", error_description=\"quote ? backslash ? newline ? ?\""
        );
    }

    #[test]
    fn insufficient_scope_names_the_scope() {
        let response =
            DefaultRenderer::default().render(&AuthError::insufficient_scope("reports:read"), Protocol::Http);
        assert_eq!(response.status(), 403);
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
        assert!(challenge.contains("scope=\"reports:read\""), "{challenge}");
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn descriptions_cannot_break_out_of_the_challenge() {
        let error = AuthError::invalid_token("bad \"quote\" \\ and\nnewline");
        let response = DefaultRenderer::default().render(&error, Protocol::Http);
        let challenge = response.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.ends_with("error_description=\"bad ?quote? ? and?newline\""),
            "{challenge}"
        );
    }

    #[test]
    fn unavailable_sets_retry_after_and_no_challenge() {
        let error = AuthError::unavailable("keys unavailable", Duration::from_millis(200));
        let response = DefaultRenderer::default().render(&error, Protocol::Http);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
    }

    #[test]
    fn grpc_rejections_are_trailers_only_with_status_codes() {
        for (error, code) in [
            (AuthError::missing_credentials(), "16"),
            (AuthError::forbidden("missing role"), "7"),
            (AuthError::unavailable("down", Duration::from_secs(3)), "14"),
        ] {
            let response = DefaultRenderer::default().render(&error, Protocol::Grpc);
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["grpc-status"], code);
            assert!(response.body().is_empty());
        }
        assert_eq!(grpc_message("50% ü"), "50%25 %C3%BC");
    }
}
