use std::fmt;

/// A JWS signature algorithm usable with public keys from a JWKS.
///
/// Symmetric (`HS*`) algorithms and `none` are deliberately absent: they can
/// never be verified with JWKS public keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA (Ed25519).
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm, which is also the default allowlist.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// The JOSE name (`"RS256"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name; `None` for anything unsupported (including `none`
    /// and `HS*`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            // RFC 9864's fully specified name for EdDSA over Ed25519.
            "Ed25519" => Some(Algorithm::EdDSA),
            _ => Self::ALL.into_iter().find(|alg| alg.as_str() == name),
        }
    }

    pub(crate) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::RS384 => jsonwebtoken::Algorithm::RS384,
            Algorithm::RS512 => jsonwebtoken::Algorithm::RS512,
            Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
            Algorithm::PS384 => jsonwebtoken::Algorithm::PS384,
            Algorithm::PS512 => jsonwebtoken::Algorithm::PS512,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A small set of algorithms (a bitset: checked on every request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AlgorithmSet(u16);

impl AlgorithmSet {
    pub(crate) const RSA: AlgorithmSet = AlgorithmSet(0b11_1111);

    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        self.0 & alg.bit() != 0
    }

    pub(crate) fn intersect(self, other: AlgorithmSet) -> AlgorithmSet {
        AlgorithmSet(self.0 & other.0)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    #[cfg_attr(not(feature = "aws-lc-rs"), allow(dead_code))]
    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL.into_iter().filter(move |alg| self.contains(*alg))
    }
}

impl FromIterator<Algorithm> for AlgorithmSet {
    fn from_iter<I: IntoIterator<Item = Algorithm>>(iter: I) -> Self {
        AlgorithmSet(iter.into_iter().fold(0, |bits, alg| bits | alg.bit()))
    }
}

impl From<Algorithm> for AlgorithmSet {
    fn from(alg: Algorithm) -> Self {
        AlgorithmSet(alg.bit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unsafe_algorithms_do_not_parse() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.as_str()), Some(alg));
        }
        for name in ["none", "HS256", "HS384", "HS512", "rs256", ""] {
            assert_eq!(Algorithm::from_name(name), None);
        }
        assert_eq!(AlgorithmSet::RSA.iter().count(), 6);
        assert_eq!(Algorithm::from_name("Ed25519"), Some(Algorithm::EdDSA));
    }
}
