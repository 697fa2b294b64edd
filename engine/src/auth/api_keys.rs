//! API keys as secrets: how they are made, and the digest that is stored.

use sha2::{Digest, Sha256};

/// Every key starts with this, so it is recognised at a glance (and by
/// secret scanners) and told apart from a bearer token.
pub const PREFIX: &str = "weft_";
/// Random alphanumeric characters after the prefix: about 238 bits.
const RANDOM_CHARACTERS: usize = 40;
/// The fewest random characters accepted in a key chosen by an operator.
const MIN_CHOSEN_CHARACTERS: usize = 32;

/// A key as it is handed out, once.
#[derive(Clone)]
pub struct IssuedKey {
    /// The key itself: shown to its owner once, never stored.
    pub secret: String,
    /// What is stored: hex SHA-256 of the key.
    pub digest: String,
    /// The key's last four characters.
    pub hint: String,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("hint", &self.hint)
            .finish_non_exhaustive()
    }
}

/// A key an operator chose that is too weak or malformed.
#[derive(Debug, thiserror::Error)]
#[error(
    "an API key must be `weft_` followed by at least {MIN_CHOSEN_CHARACTERS} letters and digits"
)]
pub struct InvalidKey;

/// A new random key.
pub fn issue() -> IssuedKey {
    use rand::Rng;
    let random: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(RANDOM_CHARACTERS)
        .map(char::from)
        .collect();
    described(format!("{PREFIX}{random}"))
}

/// The key `secret` an operator chose (the bootstrap key from the environment).
pub fn issue_from(secret: &str) -> Result<IssuedKey, InvalidKey> {
    let random = secret.strip_prefix(PREFIX).ok_or(InvalidKey)?;
    if random.len() < MIN_CHOSEN_CHARACTERS || !random.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(InvalidKey);
    }
    Ok(described(secret.to_owned()))
}

fn described(secret: String) -> IssuedKey {
    let hint = secret[secret.len() - 4..].to_owned();
    IssuedKey {
        digest: digest(&secret),
        hint,
        secret,
    }
}

/// Hex SHA-256 of `key`: what the store keeps and looks keys up by. A fast
/// digest is enough for random keys of this length; a slow one is for
/// passwords people choose.
pub fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_are_random_and_stored_only_as_digests() {
        let (first, second) = (issue(), issue());
        assert_ne!(first.secret, second.secret);
        assert!(first.secret.starts_with(PREFIX));
        assert_eq!(first.secret.len(), PREFIX.len() + RANDOM_CHARACTERS);
        assert_eq!(first.digest, digest(&first.secret));
        assert!(!first.digest.contains(&first.secret[PREFIX.len()..]));
        assert!(first.secret.ends_with(&first.hint));
        assert!(!format!("{first:?}").contains(&first.secret));
    }

    #[test]
    fn chosen_keys_must_be_as_strong_as_issued_ones() {
        let strong = format!("weft_{}", "a1".repeat(16));
        assert_eq!(issue_from(&strong).unwrap().digest, digest(&strong));
        for weak in [
            "weft_short",
            "key_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &format!("weft_{}!", "a".repeat(32)),
        ] {
            assert!(issue_from(weak).is_err(), "{weak} was accepted");
        }
    }
}
