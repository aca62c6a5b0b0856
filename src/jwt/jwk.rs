//! JWKS parsing: usable verification keys, decoded once per key-set version.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use serde_json::Value;

use super::algorithm::{Algorithm, AlgorithmSet};

/// A public key ready to verify signatures.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<String>,
    /// What this key may verify: its `alg`, else what its kty/crv allow,
    /// intersected with the configured allowlist.
    pub(crate) algorithms: AlgorithmSet,
    pub(crate) verifier: Verifier,
    /// Identifies the key material across key-set versions (a kid could be
    /// reused for new material; cached tokens must not survive that).
    pub(crate) material_id: u64,
    /// The key-set version this key was parsed in.
    pub(crate) generation: u64,
}

/// Parsed key material, decoded once per key-set version.
pub(crate) enum Verifier {
    /// aws-lc-rs keys parsed up front, one per algorithm the key allows:
    /// verification then skips key parsing entirely.
    #[cfg(feature = "aws-lc-rs")]
    Parsed(Vec<(Algorithm, aws_lc_rs::signature::ParsedPublicKey)>),
    /// Through jsonwebtoken's installed crypto provider (RustCrypto, or a
    /// provider the application installed).
    #[cfg_attr(feature = "aws-lc-rs", allow(dead_code))]
    Provider(DecodingKey),
}

impl Verifier {
    /// Checks `signature` (raw bytes) over `message` for `alg`.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8], signature_b64: &str) -> bool {
        match self {
            #[cfg(feature = "aws-lc-rs")]
            Verifier::Parsed(keys) => keys
                .iter()
                .find(|(a, _)| *a == alg)
                .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok()),
            Verifier::Provider(key) => {
                let _ = signature;
                matches!(
                    jsonwebtoken::crypto::verify(signature_b64, message, key, alg.to_jsonwebtoken()),
                    Ok(true)
                )
            }
        }
    }
}

#[cfg(feature = "aws-lc-rs")]
mod parsed {
    use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};

    use super::{Algorithm, AlgorithmSet};

    fn rsa_parameters(alg: Algorithm) -> Option<&'static RsaParameters> {
        Some(match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    pub(super) fn rsa(n: &[u8], e: &[u8], algorithms: AlgorithmSet) -> Option<Vec<(Algorithm, ParsedPublicKey)>> {
        let components = RsaPublicKeyComponents { n, e };
        algorithms
            .iter()
            .map(|alg| Some((alg, components.to_parsed_public_key(rsa_parameters(alg)?).ok()?)))
            .collect()
    }

    pub(super) fn ec(alg: Algorithm, point: &[u8]) -> Option<Vec<(Algorithm, ParsedPublicKey)>> {
        let algorithm = match alg {
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            _ => return None,
        };
        Some(vec![(alg, ParsedPublicKey::new(algorithm, point).ok()?)])
    }

    pub(super) fn ed25519(x: &[u8]) -> Option<Vec<(Algorithm, ParsedPublicKey)>> {
        Some(vec![(
            Algorithm::EdDSA,
            ParsedPublicKey::new(&signature::ED25519, x).ok()?,
        )])
    }
}

/// The usable keys of one JWKS document.
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Vec<Arc<VerifyingKey>>>,
    all: Vec<Arc<VerifyingKey>>,
}

/// The result of looking a token's key up.
pub(crate) enum Lookup {
    Found(Arc<VerifyingKey>),
    /// No key has this kid (or, for kid-less tokens, fits the algorithm):
    /// a rotation may explain it, so a refetch may help.
    Unknown,
    /// The kid exists but its key is not for this algorithm.
    WrongAlgorithm,
    /// A kid-less token that more than one key could verify.
    Ambiguous,
}

impl KeySet {
    /// Parses a JWKS document. Unusable entries are skipped, never fatal; a
    /// document without a `keys` array is an error.
    pub(crate) fn parse(body: &[u8], allowed: AlgorithmSet, generation: u64) -> Result<KeySet, &'static str> {
        let document: Value = serde_json::from_slice(body).map_err(|_| "JWKS is not valid JSON")?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS has no `keys` array")?;
        let mut set = KeySet::default();
        for entry in entries {
            match usable_key(entry, allowed, generation) {
                Some(key) => {
                    let key = Arc::new(key);
                    if let Some(kid) = &key.kid {
                        set.by_kid.entry(kid.clone()).or_default().push(Arc::clone(&key));
                    }
                    set.all.push(key);
                }
                None => {
                    let kid = text(entry, "kid").unwrap_or("");
                    tracing::debug!(kid, "skipping unusable JWKS entry");
                }
            }
        }
        Ok(set)
    }

    /// The number of usable keys.
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether a key with `kid` is in the set.
    #[cfg(test)]
    pub(crate) fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Whether `key` (same kid, same material) is still in the set.
    pub(crate) fn still_has(&self, key: &VerifyingKey) -> bool {
        let same = |k: &Arc<VerifyingKey>| k.material_id == key.material_id;
        match &key.kid {
            Some(kid) => self.by_kid.get(kid).is_some_and(|keys| keys.iter().any(same)),
            None => self.all.iter().any(same),
        }
    }

    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                None => Lookup::Unknown,
                Some(keys) => keys
                    .iter()
                    .find(|key| key.algorithms.contains(alg))
                    .map_or(Lookup::WrongAlgorithm, |key| Lookup::Found(Arc::clone(key))),
            },
            None => {
                let mut fitting = self.all.iter().filter(|key| key.algorithms.contains(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Lookup::Found(Arc::clone(key)),
                    (None, _) => Lookup::Unknown,
                    (Some(_), Some(_)) => Lookup::Ambiguous,
                }
            }
        }
    }
}

fn text<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    entry.get(name).and_then(Value::as_str)
}

/// Decides whether a JWKS entry can verify signatures, and for which
/// algorithms. `None` for encryption keys, symmetric keys, unknown key types
/// and curves, and malformed material.
pub(crate) fn usable_key(entry: &Value, allowed: AlgorithmSet, generation: u64) -> Option<VerifyingKey> {
    if entry.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return None;
    }
    if let Some(ops) = entry.get("key_ops") {
        let ops = ops.as_array()?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return None;
        }
    }
    let declared = match entry.get("alg") {
        None => None,
        Some(alg) => Some(Algorithm::from_name(alg.as_str()?)?),
    };
    let material = match text(entry, "kty")? {
        "RSA" => Material::Rsa {
            n: decode(text(entry, "n")?)?,
            e: decode(text(entry, "e")?)?,
        },
        "EC" => {
            let alg = match text(entry, "crv")? {
                "P-256" => Algorithm::ES256,
                "P-384" => Algorithm::ES384,
                _ => return None,
            };
            let size = if alg == Algorithm::ES256 { 32 } else { 48 };
            let (x, y) = (decode(text(entry, "x")?)?, decode(text(entry, "y")?)?);
            if x.len() != size || y.len() != size {
                return None;
            }
            Material::Ec { alg, x, y }
        }
        "OKP" => {
            if text(entry, "crv")? != "Ed25519" {
                return None;
            }
            let x = decode(text(entry, "x")?)?;
            if x.len() != 32 {
                return None;
            }
            Material::Ed25519 { x }
        }
        _ => return None,
    };
    // The key decides: its declared alg must fit its type; without one, its
    // type decides. Either way, only allowlisted algorithms remain.
    let family = material.family();
    let algorithms = match declared {
        Some(alg) if family.contains(alg) => AlgorithmSet::from(alg),
        Some(_) => return None,
        None => family,
    }
    .intersect(allowed);
    if algorithms.is_empty() {
        return None;
    }
    Some(VerifyingKey {
        kid: text(entry, "kid").map(str::to_owned),
        algorithms,
        verifier: material.verifier(algorithms)?,
        material_id: material.id(),
        generation,
    })
}

/// Decoded public key material of one JWK.
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { alg: Algorithm, x: Vec<u8>, y: Vec<u8> },
    Ed25519 { x: Vec<u8> },
}

impl Material {
    /// A stable hash of the public key bytes (fixed-key SipHash).
    fn id(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        match self {
            Material::Rsa { n, e } => (0u8, n, e).hash(&mut hasher),
            Material::Ec { x, y, .. } => (1u8, x, y).hash(&mut hasher),
            Material::Ed25519 { x } => (2u8, x).hash(&mut hasher),
        }
        hasher.finish()
    }

    fn family(&self) -> AlgorithmSet {
        match self {
            Material::Rsa { .. } => AlgorithmSet::RSA,
            Material::Ec { alg, .. } => AlgorithmSet::from(*alg),
            Material::Ed25519 { .. } => AlgorithmSet::from(Algorithm::EdDSA),
        }
    }

    /// Parses the key once for every algorithm it may verify; `None` when the
    /// material is unusable (e.g. an RSA modulus under 2048 bits).
    #[cfg(feature = "aws-lc-rs")]
    fn verifier(&self, algorithms: AlgorithmSet) -> Option<Verifier> {
        let keys = match self {
            Material::Rsa { n, e } => parsed::rsa(n, e, algorithms)?,
            Material::Ec { alg, x, y } => {
                let point: Vec<u8> = [&[0x04][..], x, y].concat();
                parsed::ec(*alg, &point)?
            }
            Material::Ed25519 { x } => parsed::ed25519(x)?,
        };
        Some(Verifier::Parsed(keys))
    }

    #[cfg(not(feature = "aws-lc-rs"))]
    fn verifier(&self, _algorithms: AlgorithmSet) -> Option<Verifier> {
        let key = match self {
            Material::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
            Material::Ec { x, y, .. } => DecodingKey::from_ec_der(&[&[0x04][..], x, y].concat()),
            Material::Ed25519 { x } => DecodingKey::from_ed_der(x),
        };
        Some(Verifier::Provider(key))
    }
}

fn decode(b64: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    fn parse(keys: Value) -> KeySet {
        KeySet::parse(
            json!({ "keys": keys }).to_string().as_bytes(),
            Algorithm::ALL.into_iter().collect(),
            0,
        )
        .unwrap()
    }

    #[test]
    fn unusable_entries_are_skipped_not_fatal() {
        let set = parse(json!([
            {"kty": "RSA", "kid": "sig", "use": "sig", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": N, "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": "AA"},
            {"kty": "RSA", "kid": "hs", "alg": "HS256", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "mismatch", "alg": "ES256", "n": N, "e": "AQAB"},
            {"kty": "EC", "kid": "short", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "FOO", "kid": "foo"},
            "not an object",
        ]));
        assert_eq!(set.len(), 1);
        assert!(set.contains_kid("sig"));
    }

    #[test]
    fn documents_without_keys_are_errors() {
        assert!(KeySet::parse(b"{}", AlgorithmSet::RSA, 0).is_err());
        assert!(KeySet::parse(b"not json", AlgorithmSet::RSA, 0).is_err());
        assert!(KeySet::parse(b"{\"keys\": {}}", AlgorithmSet::RSA, 0).is_err());
    }

    #[test]
    fn the_key_decides_the_algorithm() {
        let set = parse(json!([
            {"kty": "RSA", "kid": "rs", "alg": "RS256", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "any-rsa", "n": N, "e": "AQAB"},
        ]));
        assert!(matches!(set.find(Some("rs"), Algorithm::RS256), Lookup::Found(_)));
        assert!(matches!(set.find(Some("rs"), Algorithm::PS256), Lookup::WrongAlgorithm));
        assert!(matches!(set.find(Some("rs"), Algorithm::ES256), Lookup::WrongAlgorithm));
        assert!(matches!(set.find(Some("any-rsa"), Algorithm::PS384), Lookup::Found(_)));
        assert!(matches!(set.find(Some("other"), Algorithm::RS256), Lookup::Unknown));
        // No kid: two RSA keys fit RS256, one fits PS256.
        assert!(matches!(set.find(None, Algorithm::RS256), Lookup::Ambiguous));
        assert!(matches!(set.find(None, Algorithm::PS256), Lookup::Found(_)));
    }

    /// Provider JWKS shapes written from their public docs (with our own key
    /// material): all parse, and only unusable entries are skipped.
    #[test]
    fn real_world_jwks_shapes_parse() {
        let fixtures = [
            ("google", include_str!("../../tests/fixtures/jwks/google.json"), 2),
            ("entra", include_str!("../../tests/fixtures/jwks/entra.json"), 3),
            ("keycloak", include_str!("../../tests/fixtures/jwks/keycloak.json"), 2),
            ("auth0", include_str!("../../tests/fixtures/jwks/auth0.json"), 2),
            ("okta", include_str!("../../tests/fixtures/jwks/okta.json"), 1),
            (
                "cloudflare",
                include_str!("../../tests/fixtures/jwks/cloudflare.json"),
                2,
            ),
            ("pomerium", include_str!("../../tests/fixtures/jwks/pomerium.json"), 1),
        ];
        for (provider, document, usable) in fixtures {
            let set = KeySet::parse(document.as_bytes(), Algorithm::ALL.into_iter().collect(), 0).unwrap();
            assert_eq!(set.len(), usable, "{provider}");
        }
        let keycloak = KeySet::parse(
            include_str!("../../tests/fixtures/jwks/keycloak.json").as_bytes(),
            Algorithm::ALL.into_iter().collect(),
            0,
        )
        .unwrap();
        assert!(keycloak.contains_kid("kc-sig") && keycloak.contains_kid("kc-ec") && !keycloak.contains_kid("kc-enc"));
        // Entra keys carry no alg: any RSA algorithm on the allowlist fits.
        let entra = KeySet::parse(
            include_str!("../../tests/fixtures/jwks/entra.json").as_bytes(),
            Algorithm::ALL.into_iter().collect(),
            0,
        )
        .unwrap();
        assert!(matches!(
            entra.find(Some("entra-0"), Algorithm::RS256),
            Lookup::Found(_)
        ));
    }
}
