//! The master key, and sealing of private keys at rest with AES-256-GCM.
//!
//! Private signing keys never touch the database in clear: each is sealed under a
//! 256-bit master key derived (HKDF-SHA256) from `MONEYKIT_AUTH_SECRET`, with the key's id
//! as associated data so a sealed blob cannot be moved to another key's row. Without the
//! environment variable, a random master key is generated into a 0600 file beside the
//! database, which keeps a fresh install working but puts the key next to what it
//! protects — fine for a laptop, not for production; the server says so on start.

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::random_bytes;

/// Version byte in front of every sealed blob, so the format can change later.
const SEALED_V1: u8 = 1;
const HKDF_SALT: &[u8] = b"moneykit-auth master key v1";
const MIN_SECRET_LEN: usize = 32;

/// Where the master key came from; named in errors so the operator knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    /// The `MONEYKIT_AUTH_SECRET` environment variable (or a value passed in directly).
    Secret,
    /// A generated key file.
    File(PathBuf),
}

impl std::fmt::Display for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeySource::Secret => f.write_str("MONEYKIT_AUTH_SECRET"),
            MasterKeySource::File(p) => write!(f, "the key file {}", p.display()),
        }
    }
}

/// The key that seals private signing keys. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    source: MasterKeySource,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(from {})", self.source)
    }
}

/// Why a master key could not be obtained or used.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// The configured secret is too short to be a key.
    #[error(
        "MONEYKIT_AUTH_SECRET must be at least {MIN_SECRET_LEN} characters (for example: openssl rand -base64 32)"
    )]
    SecretTooShort,
    /// A shared database (PostgreSQL) needs the secret every replica shares; a key file
    /// on one machine would lock the others out.
    #[error(
        "MONEYKIT_AUTH_SECRET is required with a PostgreSQL database: every replica and admin command must use the same secret (for example: openssl rand -base64 32)"
    )]
    SecretRequired,
    /// The database has sealed keys, no secret is set, and the key file is missing.
    #[error(
        "MONEYKIT_AUTH_SECRET is not set and the key file {0} is missing, but this database already has signing keys: set MONEYKIT_AUTH_SECRET to the secret the server uses"
    )]
    MissingKeyFile(PathBuf),
    /// The key file exists but is not a key.
    #[error("the key file {0} is not a moneykit-auth master key")]
    BadKeyFile(PathBuf),
    /// Reading or writing the key file failed.
    #[error("cannot use the key file {path}: {source}")]
    KeyFileIo {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A sealed key does not open under this master key.
    #[error(
        "signing key {kid} cannot be decrypted with {origin}: it was sealed under a different master key"
    )]
    WrongMasterKey {
        /// The key that failed to open.
        kid: String,
        /// Where the master key in use came from.
        origin: MasterKeySource,
    },
}

impl MasterKey {
    /// A key for another purpose, named by `label`, derived from this one (HMAC-SHA256):
    /// every replica sharing the master key derives the same one, and it reveals nothing
    /// of the master key.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.key);
        let tag = aws_lc_rs::hmac::sign(&key, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Derives the master key from a secret string (the value of `MONEYKIT_AUTH_SECRET`).
    pub fn from_secret(secret: &str) -> Result<Self, SealingError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SealingError::SecretTooShort);
        }
        let mut key = [0u8; 32];
        Salt::new(HKDF_SHA256, HKDF_SALT)
            .extract(secret.as_bytes())
            .expand(&[b"seal signing keys"], HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut key))
            .expect("HKDF-SHA256 can always produce 32 bytes");
        Ok(Self {
            key,
            source: MasterKeySource::Secret,
        })
    }

    /// Loads the key file at `path`. When it does not exist and `create_if_missing`, creates
    /// it (mode 0600) with a random key; otherwise that is [`SealingError::MissingKeyFile`].
    /// Returns the key and whether the file was just created.
    pub fn from_key_file(
        path: &Path,
        create_if_missing: bool,
    ) -> Result<(Self, bool), SealingError> {
        let io = |source| SealingError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let created = match std::fs::read_to_string(path) {
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create_if_missing => {
                write_new_key_file(path, &STANDARD.encode(random_bytes::<32>())).map_err(io)?;
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SealingError::MissingKeyFile(path.to_owned()));
            }
            Err(e) => return Err(io(e)),
        };
        let text = std::fs::read_to_string(path).map_err(io)?;
        let raw = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| SealingError::BadKeyFile(path.to_owned()))?;
        Ok((
            Self {
                key: raw,
                source: MasterKeySource::File(path.to_owned()),
            },
            created,
        ))
    }

    /// Where this key came from.
    pub fn source(&self) -> &MasterKeySource {
        &self.source
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.key).expect("32-byte AES key"))
    }

    /// Seals `plaintext` (a PKCS#8 private key) bound to `kid`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Vec<u8> {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut in_out = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad(kid)),
                &mut in_out,
            )
            .expect("AES-GCM sealing of a small buffer cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(SEALED_V1);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&in_out);
        out
    }

    /// Opens a blob made by [`MasterKey::seal`] for the same `kid`.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, SealingError> {
        let wrong = || SealingError::WrongMasterKey {
            kid: kid.to_owned(),
            origin: self.source.clone(),
        };
        let (version, rest) = sealed.split_first().ok_or_else(wrong)?;
        if *version != SEALED_V1 || rest.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(aad(kid)), &mut in_out)
            .map_err(|_| wrong())?;
        Ok(plain.to_vec())
    }
}

fn aad(kid: &str) -> Vec<u8> {
    [b"moneykit-auth signing key ".as_slice(), kid.as_bytes()].concat()
}

fn write_new_key_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_secret("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_master_key_and_kid() {
        let sealed = key().seal("key_1", b"private");
        assert_ne!(&sealed[13..20], b"private");
        assert_eq!(key().open("key_1", &sealed).unwrap(), b"private");
        assert!(key().open("key_2", &sealed).is_err());
        let other = MasterKey::from_secret("another secret that is long enough!!").unwrap();
        let err = other.open("key_1", &sealed).unwrap_err().to_string();
        assert!(err.contains("key_1") && err.contains("MONEYKIT_AUTH_SECRET"));
        assert!(key().open("key_1", &sealed[..10]).is_err());
        assert!(key().open("key_1", &[]).is_err());
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            MasterKey::from_secret("short"),
            Err(SealingError::SecretTooShort)
        ));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.key");
        assert!(matches!(
            MasterKey::from_key_file(&path, false),
            Err(SealingError::MissingKeyFile(_))
        ));
        let (a, created) = MasterKey::from_key_file(&path, true).unwrap();
        assert!(created);
        let (b, created_again) = MasterKey::from_key_file(&path, false).unwrap();
        assert!(!created_again);
        assert_eq!(b.open("k", &a.seal("k", b"x")).unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            MasterKey::from_key_file(&path, false),
            Err(SealingError::BadKeyFile(_))
        ));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        assert_eq!(
            format!("{:?}", key()),
            "MasterKey(from MONEYKIT_AUTH_SECRET)"
        );
    }
}
