//! Tokens at rest in the shared store are sealed: AES-256-GCM under `[shared] seal_key_file`,
//! a random nonce per seal, and the key name in the associated data, so a value copied under
//! another key (another credential's) does not open either.

use crate::config::ConfigError;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::Path;

pub const KEY_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error(
        "it does not open with this seal key: it was sealed with another [shared] \
         seal_key_file (another fleet, or a key rotated on some replicas only), or changed"
    )]
    WrongKey,
    #[error("no randomness for a nonce")]
    Random,
}

pub struct Seal {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seal(AES-256-GCM, key redacted)")
    }
}

impl Seal {
    /// Reads the key from `path`: 32 raw bytes, or them as 64 hex digits or in base64 (a
    /// trailing newline is allowed for the text forms).
    pub fn load(path: &Path) -> Result<Seal, ConfigError> {
        let err = |r: String| ConfigError::new("shared.seal_key_file", r);
        let bytes = std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let key = parse_key(&bytes).ok_or_else(|| {
            err(format!(
                "{}: must hold exactly {KEY_LEN} random bytes (raw, as 64 hex digits, or base64); \
                 make one with `head -c 32 /dev/urandom > {}`",
                path.display(),
                path.display()
            ))
        })?;
        Ok(Seal::from_key(&key))
    }

    pub fn from_key(key: &[u8; KEY_LEN]) -> Seal {
        #[allow(clippy::expect_used)]
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key fits AES-256-GCM");
        Seal {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// `nonce || ciphertext || tag`, bound to `context` (the key name it is stored under).
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut body = out.split_off(NONCE_LEN);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut body,
            )
            .map_err(|_| SealError::Random)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(SealError::WrongKey);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::WrongKey)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .map_err(|_| SealError::WrongKey)?;
        Ok(plain.to_vec())
    }

    /// Random bytes (lock values, token versions).
    pub fn random<const N: usize>(&self) -> Result<[u8; N], SealError> {
        let mut b = [0u8; N];
        self.rng.fill(&mut b).map_err(|_| SealError::Random)?;
        Ok(b)
    }
}

fn parse_key(bytes: &[u8]) -> Option<[u8; KEY_LEN]> {
    if bytes.len() == KEY_LEN {
        return bytes.try_into().ok();
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text.len() == KEY_LEN * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; KEY_LEN];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        return Some(key);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()?;
    decoded.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_under_its_name() {
        let a = Seal::from_key(&[7; KEY_LEN]);
        let b = Seal::from_key(&[8; KEY_LEN]);
        let sealed = a.seal(b"k1", b"secret token").unwrap();
        assert!(!sealed
            .windows(b"secret token".len())
            .any(|w| w == b"secret token"));
        assert_eq!(a.open(b"k1", &sealed).unwrap(), b"secret token");
        assert_eq!(a.open(b"k2", &sealed), Err(SealError::WrongKey));
        assert_eq!(b.open(b"k1", &sealed), Err(SealError::WrongKey));
        assert_eq!(a.open(b"k1", &sealed[..10]), Err(SealError::WrongKey));
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let a = Seal::from_key(&[7; KEY_LEN]);
        assert_ne!(a.seal(b"k", b"v").unwrap(), a.seal(b"k", b"v").unwrap());
    }

    #[test]
    fn a_key_file_holds_raw_bytes_hex_or_base64_and_nothing_else() {
        let raw = [0xabu8; KEY_LEN];
        assert_eq!(parse_key(&raw), Some(raw));
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_key(format!("{hex}\n").as_bytes()), Some(raw));
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(parse_key(b64.as_bytes()), Some(raw));
        assert_eq!(parse_key(b"short"), None);
        assert_eq!(parse_key(&[1u8; 31]), None);
        assert_eq!(parse_key(&[1u8; 33]), None);
    }
}
