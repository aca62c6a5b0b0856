//! DPoP (RFC 9449): sender-constrained access tokens. A client proves
//! possession of a key with a `DPoP` header, a JWT it signs per request;
//! the access token names that key's RFC 7638 thumbprint in `cnf.jkt`.
//!
//! Checked here, once the access token itself verified (or came from the
//! cache): the proof's `typ` (`dpop+jwt`), an asymmetric allowlisted
//! `alg`, a public `jwk` in its header (private members refused), its
//! signature with that key, `htm` = the request method, `htu` = the public
//! base URL + the request path (no query or fragment; compared after URL
//! normalization), `iat` within the window (default ±60 s), `jti` not seen
//! before within the window ([`DpopReplayCache`]), `ath` = base64url(SHA-256
//! of the access token), and `cnf.jkt` of the token = the key's thumbprint.
//!
//! Settings per issuer: one [`Dpop`] value. Modes ([`DpopMode`]): `Off` (bearer tokens only, the
//! default), `Allowed` (bearer tokens, and DPoP-bound tokens with a proof;
//! a bound token presented as `Bearer` is refused), `Required` (every
//! token must come with a proof). Failures answer 401 with
//! `WWW-Authenticate: DPoP algs="…", error="invalid_dpop_proof"`.
//!
//! **Server nonces** (RFC 9449 §8, opt-in with [`Dpop::nonces`]): a proof
//! must then carry a current `nonce`; without one it is answered 401
//! `use_dpop_nonce` with a fresh nonce in `DPoP-Nonce`, which the client
//! puts in its retry. Nonces are stateless (an HMAC of the time period
//! under a secret of yours) and change every period (default 5 min; the
//! previous period's is still accepted), so replicas sharing the secret
//! need nothing shared at run time.
//!
//! # Use
//!
//! ```rust,no_run
//! use tower_authkit::jwt::dpop::Dpop;
//! use tower_authkit::jwt::JwksAuthLayer;
//!
//! fn layer() -> Result<JwksAuthLayer, tower_authkit::ConfigError> {
//!     JwksAuthLayer::builder()
//!         .issuer("https://login.example.com")
//!         .audience("https://api.example.com")
//!         .dpop(Dpop::allowed("https://api.example.com")) // what clients see, for htu; or Dpop::required
//!         .build()
//! }
//! ```
//!
//! Any refusal of a request sent as `Authorization: DPoP` is challenged in
//! the DPoP scheme (RFC 9449 §7.1), and a request with no credential is
//! offered both `Bearer` and `DPoP` (only `DPoP` when every issuer requires
//! it). The default replay cache remembers `jti`s in the process; replicas
//! share one with [`Dpop::replay_cache`] and
//! [`RedisReplayCache`](crate::jwt::RedisReplayCache) (feature `dpop-redis`:
//! one `SET NX PX` per proof, 503 while Redis is unreachable, never a proof
//! accepted unrecorded) or a [`DpopReplayCache`] of your own. A cached token
//! costs one proof verification.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::jwk::usable_key;
use super::verify;
use crate::layer::{AuthFuture, RequestHead};
use crate::principal::{BoxFuture, Principal};
use crate::rejection::AuthError;
use crate::token::SourceKind;
use http::{HeaderValue, Method, Uri};

pub use super::dpop_settings::Dpop;

/// How an issuer treats DPoP; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopMode {
    /// Bearer tokens only.
    #[default]
    Off,
    /// Bearer tokens, and DPoP-bound tokens with a proof.
    Allowed,
    /// Every token with a proof.
    Required,
}

/// Remembers proof `jti`s for as long as a proof can be accepted, so none
/// is accepted twice. Share one between replicas (e.g. in Redis) to refuse
/// a proof replayed against another replica.
pub trait DpopReplayCache: Send + Sync + 'static {
    /// Records `id` (a digest of the key and the `jti`) until `until` and
    /// says whether it is new. An `Err` answers 503.
    fn first_use<'a>(&'a self, id: [u8; 32], until: SystemTime) -> BoxFuture<'a, Result<bool, AuthError>>;
}

/// An in-process [`DpopReplayCache`], bounded (default 100 000 ids; when
/// full of live ids, new proofs are refused with 503 rather than accepted
/// unrecorded).
pub struct MemoryReplayCache {
    seen: Mutex<HashMap<[u8; 16], SystemTime>>,
    capacity: usize,
}

impl MemoryReplayCache {
    /// A cache holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl DpopReplayCache for MemoryReplayCache {
    fn first_use<'a>(&'a self, id: [u8; 32], until: SystemTime) -> BoxFuture<'a, Result<bool, AuthError>> {
        let answer = (|| {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let now = SystemTime::now();
            let mut short = [0u8; 16];
            short.copy_from_slice(&id[..16]);
            if let Some(expires) = seen.get(&short)
                && *expires > now
            {
                return Ok(false);
            }
            if seen.len() >= self.capacity {
                seen.retain(|_, expires| *expires > now);
                if seen.len() >= self.capacity {
                    return Err(AuthError::unavailable(
                        "too many DPoP proofs to remember",
                        Duration::from_secs(1),
                    ));
                }
            }
            seen.insert(short, until);
            Ok(true)
        })();
        Box::pin(std::future::ready(answer))
    }
}

/// An issuer's DPoP settings.
#[derive(Clone)]
pub(crate) struct DpopPolicy {
    pub(crate) mode: DpopMode,
    /// Scheme, host and port the client sees; `htu` is this + the path.
    pub(crate) public_url: Option<Url>,
    pub(crate) window: Duration,
    pub(crate) replay: Arc<dyn DpopReplayCache>,
    /// Server nonces, when required (RFC 9449 §8).
    pub(crate) nonces: Option<Arc<Nonces>>,
}

/// Stateless server nonces: `base64url(period || HMAC-SHA256(secret,
/// period)[..16])`, valid in their period and the one after. Replicas with
/// the same secret accept each other's nonces; nothing is stored.
pub(crate) struct Nonces {
    /// Keyed once; cloned per nonce.
    keyed: hmac::Hmac<Sha256>,
    period: Duration,
}

impl Nonces {
    /// `None` when HMAC refuses the key (it takes any length, so never).
    pub(crate) fn new(secret: &[u8], period: Duration) -> Option<Self> {
        use hmac::Mac;
        let keyed = <hmac::Hmac<Sha256> as Mac>::new_from_slice(secret).ok()?;
        Some(Self { keyed, period })
    }

    fn period_index(&self, at: SystemTime) -> u64 {
        let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        secs / self.period.as_secs().max(1)
    }

    fn mac(&self, index: u64) -> hmac::Hmac<Sha256> {
        use hmac::Mac;
        let mut mac = self.keyed.clone();
        mac.update(&index.to_be_bytes());
        mac
    }

    /// The nonce of the current period.
    pub(crate) fn current(&self) -> String {
        use hmac::Mac;
        let index = self.period_index(SystemTime::now());
        let tag = self.mac(index).finalize().into_bytes();
        let mut raw = index.to_be_bytes().to_vec();
        raw.extend_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Whether `nonce` is this or the previous period's.
    pub(crate) fn accepts(&self, nonce: &str) -> bool {
        use hmac::Mac;
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if raw.len() != 24 {
            return false;
        }
        let mut index = [0u8; 8];
        index.copy_from_slice(&raw[..8]);
        let index = u64::from_be_bytes(index);
        let now = self.period_index(SystemTime::now());
        (index == now || index + 1 == now) && self.mac(index).verify_truncated_left(&raw[8..]).is_ok()
    }
}

impl Default for DpopPolicy {
    fn default() -> Self {
        Self {
            mode: DpopMode::Off,
            public_url: None,
            window: Duration::from_secs(60),
            replay: Arc::new(MemoryReplayCache::default()),
            nonces: None,
        }
    }
}

impl fmt::Debug for DpopPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopPolicy")
            .field("mode", &self.mode)
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("window", &self.window)
            .field("nonces", &self.nonces.is_some())
            .finish_non_exhaustive()
    }
}

fn invalid_proof(reason: &'static str) -> AuthError {
    AuthError::invalid_dpop_proof(reason)
}

/// The RFC 7638 thumbprint of a public JWK, base64url.
pub(crate) fn thumbprint(jwk: &serde_json::Map<String, Value>) -> Option<String> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let kty = text("kty")?;
    // Required members only, in lexicographic order, no whitespace.
    let canonical = match kty {
        "EC" => serde_json::json!({"crv": text("crv")?, "kty": kty, "x": text("x")?, "y": text("y")?}),
        "RSA" => serde_json::json!({"e": text("e")?, "kty": kty, "n": text("n")?}),
        "OKP" => serde_json::json!({"crv": text("crv")?, "kty": kty, "x": text("x")?}),
        _ => return None,
    };
    // serde_json's map keeps keys sorted (BTreeMap) unless preserve_order is
    // on somewhere in the build: write them in order by hand to be sure.
    let object = canonical.as_object()?;
    let mut names: Vec<&String> = object.keys().collect();
    names.sort();
    let mut out = String::from("{");
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(name).ok()?);
        out.push(':');
        out.push_str(&serde_json::to_string(&object[name]).ok()?);
    }
    out.push('}');
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(out.as_bytes())))
}

/// What a proof is checked against, taken from the request (owned: the
/// check may run after the token's own verification waited on I/O).
pub(crate) struct ProofContext {
    method: Method,
    uri: Uri,
    proofs: Vec<HeaderValue>,
}

impl ProofContext {
    pub(crate) fn of(request: &RequestHead<'_>) -> Self {
        Self {
            method: request.method.clone(),
            uri: request.uri.clone(),
            proofs: request.headers.get_all("dpop").iter().cloned().collect(),
        }
    }
}

/// What a verified token needs checked for DPoP, before it is accepted.
pub(crate) enum DpopCheck {
    /// Nothing to check (a bearer token where that is fine).
    None,
    /// A proof to verify and record.
    Proof(AuthFuture),
}

#[derive(serde::Deserialize)]
struct Confirmation {
    #[serde(default)]
    cnf: Option<Value>,
}

fn bound_thumbprint(principal: &Principal) -> Option<String> {
    let confirmation = principal.claims_as::<Confirmation>().ok()?;
    confirmation.cnf?.get("jkt")?.as_str().map(str::to_owned)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl DpopPolicy {
    /// Decides what `principal` (verified from `token`, found by `source`)
    /// still needs for this request.
    pub(crate) fn check(
        &self,
        principal: Principal,
        token: &str,
        source: SourceKind,
        request: Option<&ProofContext>,
    ) -> Result<(Principal, DpopCheck), AuthError> {
        let bound = bound_thumbprint(&principal);
        match (self.mode, source) {
            (DpopMode::Off, SourceKind::Dpop) => Err(AuthError::invalid_token("DPoP is not accepted for this issuer")),
            (DpopMode::Off, _) => Ok((principal, DpopCheck::None)),
            (_, SourceKind::Dpop) => {
                let Some(bound) = bound else {
                    return Err(AuthError::invalid_token("token is not DPoP-bound (no cnf.jkt)"));
                };
                let request = request.ok_or_else(|| invalid_proof("a DPoP proof is required"))?;
                let id = self.verify_proof(token, &bound, request)?;
                let replay = Arc::clone(&self.replay);
                let until = SystemTime::now() + self.window * 2;
                Ok((
                    principal.clone(),
                    DpopCheck::Proof(AuthFuture::new(async move {
                        match replay.first_use(id, until).await? {
                            true => Ok(principal),
                            false => Err(invalid_proof("DPoP proof replayed (jti seen before)")),
                        }
                    })),
                ))
            }
            (DpopMode::Allowed, _) if bound.is_some() => {
                Err(AuthError::invalid_token("DPoP-bound token presented as a bearer token"))
            }
            (DpopMode::Allowed, _) => Ok((principal, DpopCheck::None)),
            (DpopMode::Required, _) => Err(invalid_proof("a DPoP proof is required")),
        }
    }

    /// Verifies the request's proof for `token` and key thumbprint
    /// `bound`; returns the id to record for replay detection.
    fn verify_proof(&self, token: &str, bound: &str, request: &ProofContext) -> Result<[u8; 32], AuthError> {
        let mut proofs = request.proofs.iter();
        let (Some(proof), None) = (proofs.next(), proofs.next()) else {
            return Err(invalid_proof("exactly one DPoP header is required"));
        };
        let proof = proof.to_str().map_err(|_| invalid_proof("malformed DPoP proof"))?;
        let header = proof.split('.').next().unwrap_or("");
        let header: Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| invalid_proof("malformed DPoP proof"))?;
        if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
            return Err(invalid_proof("DPoP proof typ must be dpop+jwt"));
        }
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_name)
            .ok_or_else(|| invalid_proof("DPoP proof algorithm not allowed (asymmetric only)"))?;
        let Some(Value::Object(jwk)) = header.get("jwk") else {
            return Err(invalid_proof("DPoP proof has no jwk"));
        };
        if ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
            .iter()
            .any(|private| jwk.contains_key(*private))
        {
            return Err(invalid_proof("DPoP proof jwk holds private key material"));
        }
        let allowed: AlgorithmSet = [alg].into_iter().collect();
        let key = usable_key(&Value::Object(jwk.clone()), allowed, 0)
            .ok_or_else(|| invalid_proof("DPoP proof jwk is not a usable public key for its alg"))?;
        let jws = verify::parse(proof, allowed).map_err(|_| invalid_proof("malformed DPoP proof"))?;
        jws.verify_signature(&key)
            .map_err(|_| invalid_proof("DPoP proof signature invalid"))?;
        let claims = jws.claims().map_err(|_| invalid_proof("malformed DPoP proof"))?;
        let text = |name: &str| claims.get(name).and_then(Value::as_str);
        if text("htm") != Some(request.method.as_str()) {
            return Err(invalid_proof("DPoP proof htm does not match the request method"));
        }
        let expected = self.expected_htu(request)?;
        let htu = text("htu").and_then(|htu| Url::parse(htu).ok()).map(|mut url| {
            url.set_query(None);
            url.set_fragment(None);
            url
        });
        if htu.as_ref() != Some(&expected) {
            return Err(invalid_proof("DPoP proof htu does not match the request URL"));
        }
        let iat = claims
            .get("iat")
            .and_then(Value::as_f64)
            .ok_or_else(|| invalid_proof("DPoP proof has no iat"))?;
        if (now_secs() - iat).abs() > self.window.as_secs_f64() {
            return Err(invalid_proof("DPoP proof iat outside the accepted window"));
        }
        let jti = text("jti")
            .filter(|jti| !jti.is_empty() && jti.len() <= 256)
            .ok_or_else(|| invalid_proof("DPoP proof has no usable jti"))?;
        if let Some(nonces) = &self.nonces
            && !text("nonce").is_some_and(|nonce| nonces.accepts(nonce))
        {
            return Err(AuthError::use_dpop_nonce(
                "DPoP proof needs the server's current nonce",
                nonces.current(),
            ));
        }
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if text("ath") != Some(ath.as_str()) {
            return Err(invalid_proof("DPoP proof ath does not match the access token"));
        }
        let thumbprint = thumbprint(jwk).ok_or_else(|| invalid_proof("DPoP proof jwk has no thumbprint"))?;
        if thumbprint != bound {
            return Err(invalid_proof("DPoP proof key does not match the token's cnf.jkt"));
        }
        let mut id = Sha256::new();
        id.update(thumbprint.as_bytes());
        id.update(b".");
        id.update(jti.as_bytes());
        Ok(id.finalize().into())
    }

    /// The public base URL with the request's path (query and fragment
    /// never take part).
    fn expected_htu(&self, request: &ProofContext) -> Result<Url, AuthError> {
        let base = self
            .public_url
            .as_ref()
            .ok_or_else(|| AuthError::unavailable("DPoP public URL not configured", Duration::from_secs(1)))?;
        let mut url = base.clone();
        let prefix = base.path().trim_end_matches('/');
        url.set_path(&format!("{prefix}{}", request.uri.path()));
        url.set_query(None);
        url.set_fragment(None);
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;

    #[test]
    fn thumbprints_follow_rfc_7638() {
        // RFC 7638 §3.1's example key and thumbprint.
        let jwk: serde_json::Map<String, Value> = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn nonces_are_accepted_in_their_period_only_under_their_secret() {
        let nonces = Nonces::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(300)).unwrap();
        let nonce = nonces.current();
        assert!(nonces.accepts(&nonce));
        let other = Nonces::new(b"another secret, 32 bytes long!!!", Duration::from_secs(300)).unwrap();
        assert!(!other.accepts(&nonce));
        assert!(!nonces.accepts("not-a-nonce"));
        // A period long gone.
        let old_index: u64 = 1;
        let tag = nonces.mac(old_index).finalize().into_bytes();
        let mut raw = old_index.to_be_bytes().to_vec();
        raw.extend_from_slice(&tag[..16]);
        assert!(!nonces.accepts(&URL_SAFE_NO_PAD.encode(raw)));
    }

    #[test]
    fn the_memory_replay_cache_refuses_a_second_use_and_stays_bounded() {
        let cache = MemoryReplayCache::new(2);
        let later = SystemTime::now() + Duration::from_secs(60);
        let first = |id: u8| futures_util::FutureExt::now_or_never(cache.first_use([id; 32], later)).unwrap();
        assert!(first(1).unwrap());
        assert!(!first(1).unwrap());
        assert!(first(2).unwrap());
        assert_eq!(first(3).unwrap_err().status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }
}
