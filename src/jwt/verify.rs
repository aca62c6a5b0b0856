//! Compact JWS verification: split, header rules (RFC 8725), signature, claims.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::algorithm::{Algorithm, AlgorithmSet};
use super::jwk::VerifyingKey;
use crate::principal::RawClaims;
use crate::rejection::AuthError;

/// The header fields we act on. `jwk`, `jku`, `x5u` and `x5c` are ignored:
/// keys come only from the configured key set, never from the token.
/// `alg` and `typ` borrow from the decoded header (no allocation unless
/// they hold escapes): header parsing is on the path of every rejection.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default, borrow)]
    typ: Option<std::borrow::Cow<'a, str>>,
}

/// A compact JWS split into its parts, with its header checked.
pub(crate) struct Jws<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    /// Whether `typ` is `at+jwt` (RFC 9068).
    pub(crate) access_token_typ: bool,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn invalid(reason: &'static str) -> AuthError {
    AuthError::invalid_token(reason)
}

/// Splits `token` and applies the header rules: a supported, allowlisted
/// `alg` (never `none` or `HS*`), no `crit`.
pub(crate) fn parse(token: &str, allowed: AlgorithmSet) -> Result<Jws<'_>, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("malformed token"));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(invalid("malformed token"));
    }
    if signature.is_empty() {
        return Err(invalid("missing signature"));
    }
    // Decoded on the stack when it fits (almost every header; one with an
    // `x5c` chain can be several KiB and goes to the heap).
    let mut buffer = [0u8; 1024];
    let on_heap;
    let bytes: &[u8] = if header.len() / 4 * 3 + 3 <= buffer.len() {
        let length = URL_SAFE_NO_PAD
            .decode_slice(header, &mut buffer)
            .map_err(|_| invalid("malformed token header"))?;
        &buffer[..length]
    } else {
        on_heap = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| invalid("malformed token header"))?;
        &on_heap
    };
    let parsed: Header<'_> = serde_json::from_slice(bytes).map_err(|_| invalid("malformed token header"))?;
    if parsed.crit.is_some() {
        return Err(invalid("unsupported critical header parameters"));
    }
    let alg = Algorithm::from_name(&parsed.alg).ok_or_else(|| invalid("unsupported token algorithm"))?;
    if !allowed.contains(alg) {
        return Err(invalid("token algorithm not allowed"));
    }
    Ok(Jws {
        alg,
        kid: parsed.kid,
        access_token_typ: parsed.typ.as_deref().is_some_and(super::checks::is_access_token_typ),
        signing_input: &token[..header.len() + 1 + payload.len()],
        payload,
        signature,
    })
}

/// The `iss` a token claims, read before anything is verified: only to
/// choose which issuer's rules and keys verify it (whose exact-`iss` check
/// then runs on the verified claims).
pub(crate) fn unverified_issuer(token: &str) -> Result<String, AuthError> {
    #[derive(Deserialize)]
    struct Claimed {
        #[serde(default)]
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1).ok_or_else(|| invalid("malformed token"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| invalid("malformed token payload"))?;
    let claimed: Claimed = serde_json::from_slice(&bytes).map_err(|_| invalid("malformed token payload"))?;
    claimed.iss.ok_or_else(|| invalid("token has no issuer"))
}

impl Jws<'_> {
    /// Verifies the signature with `key`, which the caller chose for `self.alg`.
    pub(crate) fn verify_signature(&self, key: &VerifyingKey) -> Result<(), AuthError> {
        debug_assert!(key.algorithms.contains(self.alg));
        // Decoded on the stack: 1024 bytes holds an RSA-8192 signature.
        let mut buffer = [0u8; 1024];
        let length = URL_SAFE_NO_PAD
            .decode_slice(self.signature, &mut buffer)
            .map_err(|_| invalid("invalid signature"))?;
        if key.verifier.verify(
            self.alg,
            self.signing_input.as_bytes(),
            &buffer[..length],
            self.signature,
        ) {
            Ok(())
        } else {
            Err(invalid("invalid signature"))
        }
    }

    /// Decodes the payload into a claims object (after the signature checked out).
    pub(crate) fn claims(&self) -> Result<RawClaims, AuthError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(self.payload)
            .map_err(|_| invalid("malformed token payload"))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(claims)) => Ok(claims),
            _ => Err(invalid("malformed token payload")),
        }
    }
}

/// Registered-claim rules, built once per layer.
#[derive(Clone, Debug)]
pub(crate) struct ClaimRules {
    pub(crate) issuer: String,
    /// Empty only when audience checking was explicitly disabled.
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway_secs: f64,
}

impl ClaimRules {
    /// Checks `exp` (required), `nbf`, `iat` types, exact `iss`, and `aud`.
    pub(crate) fn check(&self, claims: &RawClaims) -> Result<(), AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let exp = numeric_date(claims, "exp")?.ok_or_else(|| invalid("token has no expiry"))?;
        if now > exp + self.leeway_secs {
            return Err(invalid("token expired"));
        }
        if let Some(nbf) = numeric_date(claims, "nbf")?
            && now + self.leeway_secs < nbf
        {
            return Err(invalid("token not yet valid"));
        }
        numeric_date(claims, "iat")?;
        if claims.get("sub").is_some_and(|sub| !sub.is_string()) {
            return Err(invalid("malformed subject claim"));
        }
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            _ => return Err(invalid("wrong token issuer")),
        }
        if !self.audiences.is_empty() {
            let accepted = |aud: &str| self.audiences.iter().any(|a| a == aud);
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => accepted(aud),
                Some(Value::Array(auds)) => {
                    auds.iter().all(Value::is_string) && auds.iter().filter_map(Value::as_str).any(accepted)
                }
                _ => false,
            };
            if !ok {
                return Err(invalid("wrong token audience"));
            }
        }
        Ok(())
    }
}

/// A NumericDate claim: absent is `None`; present but not a finite number is
/// an error (e.g. `"exp": "1700000000"`).
fn numeric_date(claims: &RawClaims, name: &'static str) -> Result<Option<f64>, AuthError> {
    match claims.get(name) {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|v| v.is_finite())
            .map(Some)
            .ok_or_else(|| invalid("malformed time claim")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn token(header: Value) -> String {
        format!("{}.{}.c2ln", b64(&header), b64(&json!({"sub": "u"})))
    }

    fn all() -> AlgorithmSet {
        Algorithm::ALL.into_iter().collect()
    }

    #[test]
    fn header_rules() {
        assert!(parse(&token(json!({"alg": "RS256", "kid": "k"})), all()).is_ok());
        for header in [
            json!({"alg": "none"}),
            json!({"alg": "HS256"}),
            json!({"kid": "k"}),
            json!({"alg": 1}),
        ] {
            assert!(parse(&token(header.clone()), all()).is_err(), "{header}");
        }
        let crit = parse(&token(json!({"alg": "RS256", "crit": ["exp"]})), all())
            .err()
            .unwrap();
        assert_eq!(crit.description(), "unsupported critical header parameters");
        let ps256 = token(json!({"alg": "PS256"}));
        assert!(parse(&ps256, AlgorithmSet::from(Algorithm::RS256)).is_err());
    }

    #[test]
    fn large_headers_are_parsed_too() {
        let chain: Vec<String> = (0..8).map(|i| format!("{i}").repeat(400)).collect();
        let large = token(json!({"alg": "RS256", "kid": "k", "x5c": chain}));
        assert!(large.len() > 4000);
        assert_eq!(parse(&large, all()).unwrap().kid.as_deref(), Some("k"));
        // Escapes in the header's strings (not borrowable: copied).
        let raw = r#"{"alg":"RS\u0032\u00356","typ":"at\u002bjwt"}"#;
        let escaped = format!("{}.{}.c2ln", URL_SAFE_NO_PAD.encode(raw), b64(&json!({"sub": "u"})));
        assert!(parse(&escaped, all()).is_ok_and(|jws| jws.alg == Algorithm::RS256 && jws.access_token_typ));
    }

    #[test]
    fn structure_rules() {
        let header = b64(&json!({"alg": "RS256"}));
        for bad in [
            "",
            "a",
            "a.b",
            &format!("{header}.e30."),
            &format!("{header}.e30.s.x"),
            ".e30.s",
            "###.e30.s",
        ] {
            assert!(parse(bad, all()).is_err(), "{bad}");
        }
    }

    fn rules() -> ClaimRules {
        ClaimRules {
            issuer: "https://issuer.example".into(),
            audiences: vec!["api".into()],
            leeway_secs: 30.0,
        }
    }

    fn claims(value: Value) -> RawClaims {
        value.as_object().unwrap().clone()
    }

    fn now() -> f64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
    }

    #[test]
    fn claim_rules() {
        let iss = "https://issuer.example";
        let exp = now() + 60.0;
        assert!(
            rules()
                .check(&claims(json!({"iss": iss, "aud": "api", "exp": exp})))
                .is_ok()
        );
        assert!(
            rules()
                .check(&claims(json!({"iss": iss, "aud": ["x", "api"], "exp": exp})))
                .is_ok()
        );
        // Within leeway.
        assert!(
            rules()
                .check(&claims(json!({"iss": iss, "aud": "api", "exp": now() - 10.0})))
                .is_ok()
        );
        let bad = [
            json!({"iss": iss, "aud": "api"}),
            json!({"iss": iss, "aud": "api", "exp": now() - 60.0}),
            json!({"iss": iss, "aud": "api", "exp": exp.to_string()}),
            json!({"iss": iss, "aud": "api", "exp": exp, "nbf": now() + 60.0}),
            json!({"iss": iss, "aud": "api", "exp": exp, "nbf": "soon"}),
            json!({"iss": iss, "aud": "api", "exp": exp, "iat": "then"}),
            json!({"iss": format!("{iss}/"), "aud": "api", "exp": exp}),
            json!({"aud": "api", "exp": exp}),
            json!({"iss": iss, "aud": "other", "exp": exp}),
            json!({"iss": iss, "aud": ["api", 1], "exp": exp}),
            json!({"iss": iss, "exp": exp}),
            json!({"iss": iss, "aud": "api", "exp": exp, "sub": 42}),
        ];
        for claims_value in bad {
            assert!(rules().check(&claims(claims_value.clone())).is_err(), "{claims_value}");
        }
    }
}
