//! Secrets at rest and tokens in transit.
//!
//! - [`SecretBox`] seals what casebridge must be able to read back (the
//!   Creatio client secret, webhook tokens) with ChaCha20-Poly1305 under a
//!   key from the configuration or a generated key file (0600). Each sealed
//!   value is bound to its purpose and org (AEAD associated data), so a
//!   sealed value copied into another row does not open.
//! - API keys and webhook tokens are random 256-bit strings; only their
//!   SHA-256 is looked up, so a database dump does not authenticate anyone.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const SEALED_PREFIX: &str = "v1.";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secret key must be 32 bytes in base64 (44 characters); generate one with `openssl rand -base64 32`")]
    BadKey,
    #[error("could not read the secret key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error(
        "a stored secret could not be opened: the secret key changed or the database was edited"
    )]
    Unseal,
}

/// Encrypts and decrypts stored secrets.
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// From a base64 key (`CASEBRIDGE_SECRET_KEY`).
    pub fn from_base64(key: &SecretString) -> Result<SecretBox, SecretError> {
        let bytes = STANDARD
            .decode(key.expose_secret().trim())
            .map_err(|_| SecretError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SecretError::BadKey);
        }
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// From a key file, created with a fresh key (mode 0600) when missing.
    pub fn from_file(path: &Path) -> Result<SecretBox, SecretError> {
        let fail = |reason: String| SecretError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => SecretBox::from_base64(&SecretString::from(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                match options.open(path) {
                    Ok(mut file) => {
                        writeln!(file, "{}", STANDARD.encode(key))
                            .map_err(|e| fail(e.to_string()))?;
                        tracing::info!(path = %path.display(), "Generated a new secret key file; back it up with the database, stored secrets cannot be read without it.");
                        Ok(SecretBox {
                            cipher: ChaCha20Poly1305::new(&key),
                        })
                    }
                    // Another instance created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        SecretBox::from_file(path)
                    }
                    Err(e) => Err(fail(e.to_string())),
                }
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// Seals `plaintext` for `context` (e.g. `"client_secret:<org>"`).
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(out))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<SecretString, SecretError> {
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|b| b.len() > 12)
            .ok_or(SecretError::Unseal)?;
        let (nonce, ciphertext) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Unseal)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SecretError::Unseal)
    }
}

/// A new random token: `prefix` + 256 random bits in base64url.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A new Standard Webhooks signing secret: `whsec_` + 256 random bits in
/// standard base64, as the `standardwebhooks` crate reads it.
pub fn webhook_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// The SHA-256 of a token, hex: what is stored and looked up.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last four characters of a secret, to tell secrets apart when they
/// are shown masked; nothing for a secret shorter than 12 characters, where
/// four would give too much away.
pub fn last_four(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 12 {
        chars[chars.len() - 4..].iter().collect()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_box() -> SecretBox {
        SecretBox::from_base64(&SecretString::from(STANDARD.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn sealed_values_open_only_in_their_context() {
        let b = a_box();
        let sealed = b.seal("hunter2", "client_secret:org_1");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            b.open(&sealed, "client_secret:org_1")
                .unwrap()
                .expose_secret(),
            "hunter2"
        );
        assert!(b.open(&sealed, "client_secret:org_2").is_err());
        assert!(b.open("v1.garbage", "x").is_err());
        assert_ne!(
            sealed,
            b.seal("hunter2", "client_secret:org_1"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn keys_must_be_32_bytes() {
        assert!(SecretBox::from_base64(&SecretString::from("c2hvcnQ=")).is_err());
        assert!(SecretBox::from_base64(&SecretString::from("not base64!")).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("casebridge.key");
        let sealed = SecretBox::from_file(&path).unwrap().seal("x", "c");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SecretBox::from_file(&path).unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap().expose_secret(), "x");
    }

    #[test]
    fn tokens_are_random_and_hashes_stable() {
        let a = random_token("cbk_");
        assert!(a.starts_with("cbk_") && a.len() == 4 + 43);
        assert_ne!(a, random_token("cbk_"));
        assert_eq!(token_hash("abc"), token_hash("abc"));
        assert_eq!(token_hash("abc").len(), 64);
    }
}
