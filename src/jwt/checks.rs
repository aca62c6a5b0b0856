//! Optional per-issuer checks on verified tokens, beyond the registered-claim
//! rules: the RFC 9068 access-token profile, a maximum lifetime, required
//! claims, a subject matcher and custom claim checks. Each is cheap (no
//! I/O) and runs once per token, before the principal is mapped; cached
//! tokens passed them when they were verified.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::principal::RawClaims;
use crate::rejection::AuthError;

/// A custom claim check: `Err(message)` refuses the token with `message`
/// as the 401's description.
pub(crate) type ClaimCheck = Arc<dyn Fn(&RawClaims) -> Result<(), String> + Send + Sync>;
pub(crate) type SubjectMatcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// The claims RFC 9068 §2.2 makes mandatory in a JWT access token.
const ACCESS_TOKEN_CLAIMS: [&str; 7] = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"];

#[derive(Clone, Default)]
pub(crate) struct TokenChecks {
    pub(crate) access_token_profile: bool,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) required: Vec<String>,
    pub(crate) subject: Option<SubjectMatcher>,
    pub(crate) custom: Vec<ClaimCheck>,
}

impl fmt::Debug for TokenChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenChecks")
            .field("access_token_profile", &self.access_token_profile)
            .field("max_lifetime", &self.max_lifetime)
            .field("required", &self.required)
            .field("subject_matcher", &self.subject.is_some())
            .field("custom", &self.custom.len())
            .finish()
    }
}

/// Whether a JOSE `typ` names an RFC 9068 access token: `at+jwt` or
/// `application/at+jwt`, compared case-insensitively (RFC 9068 §4).
pub(crate) fn is_access_token_typ(typ: &str) -> bool {
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    typ.eq_ignore_ascii_case("at+jwt")
}

fn refuse(reason: impl Into<std::borrow::Cow<'static, str>>) -> AuthError {
    AuthError::invalid_token(reason)
}

impl TokenChecks {
    /// `access_token_typ`: whether the header's `typ` said `at+jwt`.
    pub(crate) fn check(&self, access_token_typ: bool, claims: &RawClaims) -> Result<(), AuthError> {
        if self.access_token_profile {
            if !access_token_typ {
                return Err(refuse(
                    "not an access token: typ must be at+jwt (an ID token is not an access token)",
                ));
            }
            if let Some(missing) = ACCESS_TOKEN_CLAIMS.iter().find(|name| !claims.contains_key(**name)) {
                return Err(refuse(format!("access token lacks the {missing} claim")));
            }
        }
        if let Some(missing) = self.required.iter().find(|name| !claims.contains_key(name.as_str())) {
            return Err(refuse(format!("token lacks the {missing} claim")));
        }
        if let Some(max) = self.max_lifetime {
            let (Some(iat), Some(exp)) = (
                claims.get("iat").and_then(Value::as_f64),
                claims.get("exp").and_then(Value::as_f64),
            ) else {
                return Err(refuse("token lifetime unknown: iat and exp are required"));
            };
            if exp - iat > max.as_secs_f64() {
                return Err(refuse("token lifetime too long"));
            }
        }
        if let Some(matches) = &self.subject {
            let subject = claims.get("sub").and_then(Value::as_str).unwrap_or("");
            if !matches(subject) {
                return Err(refuse("token subject not allowed"));
            }
        }
        for check in &self.custom {
            check(claims).map_err(refuse)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> RawClaims {
        value.as_object().cloned().unwrap_or_default()
    }

    fn access_token() -> RawClaims {
        claims(json!({"iss": "i", "exp": 200, "aud": "a", "sub": "s", "client_id": "c", "iat": 100, "jti": "j"}))
    }

    #[test]
    fn typ_at_jwt_in_either_spelling_and_any_case() {
        for typ in ["at+jwt", "AT+JWT", "application/at+jwt", "application/AT+jwt"] {
            assert!(is_access_token_typ(typ), "{typ}");
        }
        for typ in ["JWT", "jwt", "application/jwt", "at+jwt+x", "dpop+jwt", ""] {
            assert!(!is_access_token_typ(typ), "{typ}");
        }
    }

    #[test]
    fn the_access_token_profile_needs_the_typ_and_every_mandatory_claim() {
        let profile = TokenChecks {
            access_token_profile: true,
            ..TokenChecks::default()
        };
        assert!(profile.check(true, &access_token()).is_ok());
        let id_token = profile.check(false, &access_token()).unwrap_err();
        assert!(id_token.description().contains("an ID token is not an access token"));
        for name in ACCESS_TOKEN_CLAIMS {
            let mut partial = access_token();
            partial.remove(name);
            let refused = profile.check(true, &partial).unwrap_err();
            assert_eq!(refused.description(), format!("access token lacks the {name} claim"));
        }
    }

    #[test]
    fn lifetime_required_claims_subject_and_custom_checks() {
        let checks = TokenChecks {
            max_lifetime: Some(Duration::from_secs(100)),
            required: vec!["client_id".into()],
            subject: Some(Arc::new(|sub: &str| sub.starts_with('s'))),
            custom: vec![Arc::new(|claims: &RawClaims| match claims.get("jti") {
                Some(_) => Ok(()),
                None => Err("replay protection needs a jti".to_owned()),
            })],
            ..TokenChecks::default()
        };
        assert!(checks.check(false, &access_token()).is_ok());
        let too_long = claims(json!({"iat": 100, "exp": 201, "client_id": "c", "sub": "s", "jti": "j"}));
        assert_eq!(
            checks.check(false, &too_long).unwrap_err().description(),
            "token lifetime too long"
        );
        let no_iat = claims(json!({"exp": 201, "client_id": "c", "sub": "s", "jti": "j"}));
        assert!(checks.check(false, &no_iat).unwrap_err().description().contains("iat"));
        let no_client = claims(json!({"iat": 100, "exp": 200, "sub": "s", "jti": "j"}));
        assert_eq!(
            checks.check(false, &no_client).unwrap_err().description(),
            "token lacks the client_id claim"
        );
        let other_subject = claims(json!({"iat": 100, "exp": 200, "client_id": "c", "sub": "x", "jti": "j"}));
        assert_eq!(
            checks.check(false, &other_subject).unwrap_err().description(),
            "token subject not allowed"
        );
        let no_jti = claims(json!({"iat": 100, "exp": 200, "client_id": "c", "sub": "s"}));
        assert_eq!(
            checks.check(false, &no_jti).unwrap_err().description(),
            "replay protection needs a jti"
        );
    }
}
