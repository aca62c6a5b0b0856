//! Session ids, the store keys derived from them, and the signed cookie.
//!
//! The cookie carries only a 256-bit random id, signed with the `cookie`
//! crate's signed jar (HMAC-SHA256). Stores never see the id: records are
//! keyed by its SHA-256, so a leaked store dump cannot be replayed as cookies.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, CookieJar, Key};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ConfigError;

/// A session id: 32 random bytes. Never logged, never stored.
pub(crate) struct SessionId([u8; 32]);

impl SessionId {
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(32) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The key its record is stored under.
    pub(crate) fn key(&self) -> SessionHandle {
        SessionHandle(Sha256::digest(self.0).into())
    }
}

/// What a session record is stored under: the SHA-256 of the session id.
/// Also the public handle of a session (in listings, for revocation): it
/// cannot be turned back into an id or a cookie.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle([u8; 32]);

impl SessionHandle {
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// Parses [`to_hex`](Self::to_hex)'s form.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines.
        write!(f, "SessionHandle({}…)", &self.to_hex()[..8])
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for SessionHandle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for SessionHandle {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not a session key"))
    }
}

/// The shortest accepted signing key.
pub(crate) const MIN_KEY_LEN: usize = 32;

/// The current signing key and previous ones that still verify. The MAC
/// covers the value only (the `cookie` crate's format), so these keys must
/// sign nothing but session cookies.
#[derive(Clone)]
pub(crate) struct CookieKeys {
    keys: Vec<Key>,
}

impl CookieKeys {
    /// `current` signs; `previous` only verify. Each must be at least 32 bytes.
    pub(crate) fn new(current: &[u8], previous: &[Vec<u8>]) -> Result<Self, ConfigError> {
        let mut keys = Vec::with_capacity(1 + previous.len());
        for (setting, key) in std::iter::once(("key", current)).chain(previous.iter().map(|k| ("old_key", &k[..]))) {
            if key.len() < MIN_KEY_LEN {
                return Err(ConfigError::Invalid {
                    setting,
                    reason: format!("session signing keys must be at least {MIN_KEY_LEN} bytes"),
                });
            }
            keys.push(Key::derive_from(key));
        }
        Ok(Self { keys })
    }

    /// The signed cookie value for `id`.
    pub(crate) fn sign(&self, name: &str, id: &SessionId) -> String {
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.keys[0])
            .add(Cookie::new(name.to_owned(), id.encode()));
        jar.get(name).map(|c| c.value().to_owned()).unwrap_or_default()
    }

    /// The id in a signed cookie value, if any key verifies it.
    pub(crate) fn verify(&self, name: &str, value: &str) -> Option<SessionId> {
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(name.to_owned(), value.to_owned()));
        self.keys
            .iter()
            .find_map(|key| jar.signed(key).get(name))
            .and_then(|cookie| SessionId::decode(cookie.value()))
    }
}

/// A session cookie the layer issued: its name and signed value, for a
/// `Cookie` request header. The value lets anyone act as the session's
/// user, so `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCookie {
    name: String,
    value: String,
}

impl SessionCookie {
    pub(crate) fn new(name: String, value: String) -> Self {
        SessionCookie { name, value }
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed value (a secret).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `name=value`, as a `Cookie` request header carries it.
    pub fn header_value(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionCookie")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const OTHER: &[u8] = b"fedcba9876543210fedcba9876543210";

    #[test]
    fn signed_ids_verify_and_tampering_or_foreign_keys_do_not() {
        let keys = CookieKeys::new(KEY, &[]).unwrap();
        let id = SessionId::generate().unwrap();
        let value = keys.sign("sid", &id);
        assert!(value.len() > 43, "the value carries a signature");
        assert_eq!(keys.verify("sid", &value).unwrap().key(), id.key());
        // Unsigned: the bare id.
        assert!(keys.verify("sid", &id.encode()).is_none());
        // Tampered: one character of the id changed.
        let mut tampered = value.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(keys.verify("sid", std::str::from_utf8(&tampered).unwrap()).is_none());
        assert!(CookieKeys::new(OTHER, &[]).unwrap().verify("sid", &value).is_none());
    }

    #[test]
    fn previous_keys_verify_but_only_the_current_one_signs() {
        let old = CookieKeys::new(OTHER, &[]).unwrap();
        let rotated = CookieKeys::new(KEY, &[OTHER.to_vec()]).unwrap();
        let id = SessionId::generate().unwrap();
        let old_cookie = old.sign("sid", &id);
        assert_eq!(rotated.verify("sid", &old_cookie).unwrap().key(), id.key());
        let new_cookie = rotated.sign("sid", &id);
        assert!(old.verify("sid", &new_cookie).is_none(), "signed with the new key");
    }

    #[test]
    fn short_keys_are_a_config_error() {
        assert!(CookieKeys::new(b"short", &[]).is_err());
        assert!(CookieKeys::new(KEY, &[b"short".to_vec()]).is_err());
    }

    #[test]
    fn keys_are_hashes_in_hex_and_debug_shows_a_prefix() {
        let id = SessionId::generate().unwrap();
        let key = id.key();
        assert_eq!(SessionHandle::from_hex(&key.to_hex()), Some(key));
        assert_ne!(key.to_hex(), id.encode());
        assert_eq!(format!("{key:?}").len(), "SessionHandle(…)".len() + 8);
        assert!(SessionHandle::from_hex("zz").is_none());
    }
}
