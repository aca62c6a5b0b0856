//! Where an ingress may send requests: internal destinations only.

use std::net::IpAddr;

use url::{Host, Url};

use super::path::{PathRefused, join_path, split_service_path};
use tower_authkit::ConfigError;

/// A checked downstream service URL: http(s), no user info, query or
/// fragment, and a host that is loopback, a private address (10/8,
/// 172.16/12, 192.168/16, fc00::/7) or a name ending in `.internal`. A public
/// destination would let anyone who knows its URL bypass the ingress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    name: String,
    url: Url,
}

fn is_internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

impl Destination {
    /// Checks `url` for the service `name`; the error names the service.
    pub fn parse(name: &str, url: &str) -> Result<Self, ConfigError> {
        let refuse = |reason: &str| ConfigError::Invalid {
            setting: "service",
            reason: format!("service {name:?}: {reason}"),
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
            return Err(refuse("names use letters, digits, `-` and `_`"));
        }
        let parsed = Url::parse(url).map_err(|e| refuse(&format!("not a URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refuse("only http and https destinations"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refuse("the URL carries user info"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(refuse("the URL carries a query or a fragment"));
        }
        let internal = match parsed.host() {
            Some(Host::Ipv4(ip)) => is_internal_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => is_internal_ip(IpAddr::V6(ip)),
            Some(Host::Domain(domain)) => {
                let domain = domain.to_ascii_lowercase();
                domain == "localhost" || domain.ends_with(".internal")
            }
            None => false,
        };
        if !internal {
            return Err(refuse(
                "the host must be loopback, a private address or a name ending in .internal",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            url: parsed,
        })
    }

    /// The service's name (its path prefix is `/s/{name}/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The checked base URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The base URL's path (`/` at least).
    pub(crate) fn base_path(&self) -> &str {
        self.url.path()
    }

    /// `scheme://host[:port]` of the service, for recognising its own
    /// redirects.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// The downstream URI for a request the ingress received at
    /// `/s/{name}{rest}` (`request_uri` as received, still percent-encoded):
    /// the raw `rest` appended to the service's base path, the query kept as
    /// sent. Refused when the path is not this service's, or breaks the
    /// [path rule](super::join_path).
    pub fn target(&self, request_uri: &http::Uri) -> Result<http::Uri, PathRefused> {
        let rest = match split_service_path(request_uri.path()) {
            Some((name, rest)) if name == self.name => rest,
            _ => return Err(PathRefused::new("the path is not under this service's prefix")),
        };
        let path = join_path(self.url.path(), rest)?;
        let path_and_query = match request_uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        http::Uri::builder()
            .scheme(self.url.scheme())
            .authority(&self.url[url::Position::BeforeHost..url::Position::AfterPort])
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| PathRefused::new("not a valid request-target"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internal_destinations_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:3000/app",
            "https://10.1.2.3/",
            "http://172.16.0.9",
            "http://172.31.255.1",
            "http://192.168.1.20:81",
            "http://[::1]:9000",
            "http://[fd12::1]/",
            "https://wiki.corp.internal/",
        ] {
            assert!(Destination::parse("svc", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/",
            "http://8.8.8.8/",
            "http://172.32.0.1/",
            "http://[2001:db8::1]/",
            "http://user:pw@127.0.0.1/",
            "http://127.0.0.1/?a=1",
            "http://127.0.0.1/#frag",
            "ftp://127.0.0.1/",
            "http://internal/",
            "http://evil.internal.example.com/",
            "not a url",
        ] {
            let error = Destination::parse("wiki", bad).unwrap_err().to_string();
            assert!(error.contains("\"wiki\""), "{bad}: {error}");
        }
        assert!(Destination::parse("bad name", "http://127.0.0.1").is_err());
    }

    #[test]
    fn targets_keep_the_base_path_the_raw_bytes_and_the_query() {
        let d = Destination::parse("app", "http://127.0.0.1:9/base/").unwrap();
        let target = |uri: &str| d.target(&uri.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(target("/s/app/a/b?x=1").unwrap(), "http://127.0.0.1:9/base/a/b?x=1");
        assert_eq!(target("/s/app/").unwrap(), "http://127.0.0.1:9/base/");
        assert_eq!(
            target("/s/app/a%20b?q=%2F").unwrap(),
            "http://127.0.0.1:9/base/a%20b?q=%2F"
        );
        assert!(target("/s/other/a").is_err());
        assert!(target("/s/app/..%2Fother").is_err());
        assert_eq!(d.origin(), "http://127.0.0.1:9");
        let v6 = Destination::parse("v6", "http://[::1]:8080").unwrap();
        assert_eq!(
            v6.target(&"/s/v6/x".parse().unwrap()).unwrap().to_string(),
            "http://[::1]:8080/x"
        );
    }
}
