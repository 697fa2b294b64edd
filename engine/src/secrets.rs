//! Secrets at rest: what Weft must be able to read back in clear (signing
//! secrets, receivers' credentials) is sealed with AES-256-GCM under a master
//! key that the operator holds outside the database.
//!
//! A sealed value names the key that sealed it (`weft-sealed:v1:<key id>:…`),
//! so the master key can be replaced: a [`Keyring`] seals with its current key
//! and opens with the current or any previous one, and `weft secrets rotate`
//! re-seals everything under the current key. Each value is bound to where it
//! is stored (its "context", such as `endpoint acme/ep_…/secret`), so a sealed
//! value copied to another row or column does not open.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::fmt;

/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "weft-sealed:v1:";

/// Bytes of a master key.
pub const KEY_BYTES: usize = 32;

/// One AES-256 master key and its id (derived from the key, so the same key
/// always has the same id and no one has to name keys).
pub struct MasterKey {
    id: String,
    key: LessSafeKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

/// A master key that cannot be used, and why (never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidKey(String);

impl MasterKey {
    /// A new random key, base64-encoded, as `weft secrets generate-key` prints it.
    pub fn generate() -> String {
        let mut bytes = [0u8; KEY_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("the system's random number generator works");
        STANDARD.encode(bytes)
    }

    /// The key written as base64 (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, InvalidKey> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| {
            InvalidKey(
                "a master key is 32 bytes in base64 (see `weft secrets generate-key`)".into(),
            )
        })?;
        if bytes.len() != KEY_BYTES {
            return Err(InvalidKey(format!(
                "a master key is {KEY_BYTES} bytes; this one is {}",
                bytes.len()
            )));
        }
        let digest = Sha256::digest([b"weft master key id\0".as_slice(), &bytes].concat());
        let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key");
        Ok(Self {
            id: hex::encode(&digest[..4]),
            key: LessSafeKey::new(key),
        })
    }

    /// Eight hex digits naming the key in every value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A sealed value that cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(
        "it was sealed with master key {0}, which this process does not have \
         (give it as a previous master key)"
    )]
    UnknownKey(String),
    #[error("it does not open with master key {0}: it was altered or moved")]
    Tampered(String),
    #[error("it is not a sealed value")]
    Malformed,
}

/// The master keys of a process: the current one seals, all of them open.
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
    random: SystemRandom,
}

impl Keyring {
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Self {
        Self {
            current,
            previous,
            random: SystemRandom::new(),
        }
    }

    /// A keyring with a new random key that lives as long as the process:
    /// for throwaway databases (`sqlite::memory:`) and tests.
    pub fn ephemeral() -> Self {
        let key = MasterKey::from_base64(&MasterKey::generate()).expect("a generated key is valid");
        Self::new(key, Vec::new())
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// `plaintext` sealed under the current key, bound to `context`.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .expect("the system's random number generator works");
        let mut sealed = plaintext.as_bytes().to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .expect("AES-GCM seals any value under 64 GiB");
        let mut payload = nonce.to_vec();
        payload.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{}:{}",
            self.current.id(),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    /// The plaintext of `sealed`, which must have been sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, OpenError> {
        let (key_id, payload) = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or(OpenError::Malformed)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id() == key_id)
            .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| OpenError::Malformed)?;
        if payload.len() < NONCE_LEN {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = key
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| OpenError::Tampered(key_id.to_owned()))?;
        String::from_utf8(plaintext.to_vec()).map_err(|_| OpenError::Malformed)
    }

    /// Whether `stored` is sealed under the current key already.
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(key_id, _)| key_id == self.current.id())
    }
}

/// Whether `stored` is a sealed value (rather than one written in clear by a
/// release that did not seal it).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate()).unwrap()
    }

    #[test]
    fn a_value_opens_only_with_its_key_and_in_its_context() {
        let keyring = Keyring::new(key(), Vec::new());
        let sealed = keyring.seal("whsec_abc", "endpoint acme/ep_1/secret");
        assert!(sealed.starts_with(&format!("{SEALED_PREFIX}{}:", keyring.current_key_id())));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            keyring.seal("whsec_abc", "endpoint acme/ep_1/secret"),
            "fresh nonce"
        );
        assert_eq!(
            keyring.open(&sealed, "endpoint acme/ep_1/secret").unwrap(),
            "whsec_abc"
        );

        let moved = keyring.open(&sealed, "endpoint globex/ep_1/secret");
        assert!(matches!(moved, Err(OpenError::Tampered(_))), "{moved:?}");
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(keyring.open(&altered, "endpoint acme/ep_1/secret").is_err());
        let other = Keyring::new(key(), Vec::new());
        let unknown = other.open(&sealed, "endpoint acme/ep_1/secret");
        assert_eq!(
            unknown,
            Err(OpenError::UnknownKey(keyring.current_key_id().into()))
        );
        assert_eq!(keyring.open("whsec_abc", "x"), Err(OpenError::Malformed));
    }

    #[test]
    fn a_new_key_opens_what_the_previous_one_sealed() {
        let old_text = MasterKey::generate();
        let old = Keyring::new(MasterKey::from_base64(&old_text).unwrap(), Vec::new());
        let sealed = old.seal("secret", "ctx");
        let rotated = Keyring::new(key(), vec![MasterKey::from_base64(&old_text).unwrap()]);
        assert!(!rotated.is_current(&sealed));
        assert_eq!(rotated.open(&sealed, "ctx").unwrap(), "secret");
        let resealed = rotated.seal("secret", "ctx");
        assert!(rotated.is_current(&resealed));
    }

    #[test]
    fn a_bad_key_is_refused_without_quoting_it() {
        let error = MasterKey::from_base64("c2hvcnQ=").unwrap_err().to_string();
        assert_eq!(error, "a master key is 32 bytes; this one is 5");
        let error = MasterKey::from_base64("not base64!")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("not base64"), "{error}");
        let same = MasterKey::generate();
        assert_eq!(
            MasterKey::from_base64(&same).unwrap().id(),
            MasterKey::from_base64(&format!("{same}\n")).unwrap().id()
        );
    }
}
