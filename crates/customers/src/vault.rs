//! The regulated-data vault: envelope encryption and blind indexes.
//!
//! Every customer has a **data key** (256 random bits). Each regulated field is sealed with
//! it — AES-256-GCM, a random 96-bit nonce, and the customer id and field name as associated
//! data, so a ciphertext moved to another row or column fails to open. The data key is stored
//! only **wrapped** by a master key (AES-256-GCM again, the customer id and the master key's
//! id as associated data), next to the id of the master key that wrapped it. Master keys live
//! outside the database, behind [`MasterKeys`]: a keyring file today ([`FileKeyring`]), a KMS
//! later. Destroying a customer's wrapped data key makes every ciphertext of theirs noise
//! (crypto-shredding). Rotating the master key re-wraps data keys; no field is re-encrypted.
//!
//! Exact-match search uses a **blind index**: HMAC-SHA256 of the normalized value under an
//! index key that is not a master key (so rotation does not move the index), with the kind
//! of value as a domain separator.
//!
//! Blob layouts (version byte first, so the format can change):
//! - sealed field: `[1][nonce: 12][ciphertext + tag: n + 16]`
//! - wrapped key:  `[1][nonce: 12][ciphertext + tag: 32 + 16]`

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use zeroize::Zeroizing;

/// Bytes in every key: AES-256 and the HMAC-SHA256 index key.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const FORMAT_V1: u8 = 1;
/// How often a running service looks at its keyring file for a new current master key.
pub const KEYRING_RECHECK: Duration = Duration::from_secs(1);

/// What can go wrong in the vault. Never carries key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A ciphertext or wrapped key failed authentication: wrong key, wrong row, or tampered.
    #[error("a sealed value did not authenticate (wrong key, moved, or tampered with)")]
    Authentication,
    /// A blob is not in a known layout.
    #[error("a sealed value has an unknown format")]
    Format,
    /// The master key a data key is wrapped under is not in the keyring.
    #[error("master key `{0}` is not in the keyring")]
    UnknownMasterKey(String),
    /// The keyring could not be read or written, or is not valid.
    #[error("keyring {path}: {reason}")]
    Keyring {
        /// The keyring file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// 256 bits of key material, wiped from memory when dropped.
#[derive(Clone)]
pub struct Secret(Zeroizing<[u8; KEY_BYTES]>);

impl Secret {
    /// Fresh random key material from the operating system.
    pub fn generate() -> Secret {
        let key = aes_gcm::Key::<Aes256Gcm>::generate();
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        bytes.copy_from_slice(&key);
        Secret(bytes)
    }

    fn from_slice(bytes: &[u8]) -> Option<Secret> {
        let array: [u8; KEY_BYTES] = bytes.try_into().ok()?;
        Some(Secret(Zeroizing::new(array)))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.as_ref()).expect("an AES-256 key is 32 bytes")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn seal(key: &Secret, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = Nonce::generate();
    let sealed = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of a bounded message cannot fail");
    let mut blob = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
    blob.push(FORMAT_V1);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    blob
}

fn open(key: &Secret, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if blob.len() < 1 + NONCE_BYTES + TAG_BYTES || blob[0] != FORMAT_V1 {
        return Err(VaultError::Format);
    }
    let nonce = Nonce::try_from(&blob[1..1 + NONCE_BYTES]).map_err(|_| VaultError::Format)?;
    key.cipher()
        .decrypt(
            &nonce,
            Payload {
                msg: &blob[1 + NONCE_BYTES..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::Authentication)
}

/// 43 characters of URL-safe base64 from 256 random bits: a password for a service account.
pub fn random_password() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Secret::generate().0.as_ref())
}

/// A customer's data key, in the clear: only ever in memory, for one operation.
pub struct DataKey(Secret);

impl DataKey {
    /// Seals `plaintext` as `field` of customer `owner`.
    pub fn seal(&self, owner: &str, field: &str, plaintext: &[u8]) -> Vec<u8> {
        seal(&self.0, &field_aad(owner, field), plaintext)
    }

    /// Opens what [`DataKey::seal`] sealed for the same owner and field.
    pub fn open(
        &self,
        owner: &str,
        field: &str,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        open(&self.0, &field_aad(owner, field), blob)
    }
}

fn field_aad(owner: &str, field: &str) -> Vec<u8> {
    format!("gureum/field/v1/{owner}/{field}").into_bytes()
}

fn wrap_aad(owner: &str, master_key_id: &str) -> Vec<u8> {
    format!("gureum/data-key/v1/{owner}/{master_key_id}").into_bytes()
}

/// A data key as stored: wrapped, with the id of the master key that wrapped it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    /// The master key's id.
    pub master_key_id: String,
    /// `[1][nonce][ciphertext + tag]`.
    pub bytes: Vec<u8>,
}

/// Where master keys live. A keyring file implements it today; a cloud KMS can tomorrow
/// (wrap and unwrap are the two calls a KMS offers).
pub trait MasterKeys: Send + Sync {
    /// The id of the master key new data keys are wrapped under.
    fn current_id(&self) -> Result<String, VaultError>;
    /// Wraps `key` under the current master key; `context` is bound as associated data.
    fn wrap(
        &self,
        key: &Secret,
        context: &dyn Fn(&str) -> Vec<u8>,
    ) -> Result<WrappedKey, VaultError>;
    /// Unwraps a key wrapped by [`MasterKeys::wrap`] with the same context.
    fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<Secret, VaultError>;
}

/// The vault a service uses: master keys for data keys, and the blind-index key.
#[derive(Clone)]
pub struct Vault {
    master: Arc<dyn MasterKeys>,
    index_key: Secret,
}

impl Vault {
    /// A vault over these master keys and this index key.
    pub fn new(master: Arc<dyn MasterKeys>, index_key: Secret) -> Vault {
        Vault { master, index_key }
    }

    /// A vault over a keyring file (see [`FileKeyring`]).
    pub fn from_keyring(keyring: FileKeyring) -> Vault {
        let index_key = keyring.index_key();
        Vault::new(Arc::new(keyring), index_key)
    }

    /// A fresh data key for `owner`, and its wrapped form to store.
    pub fn new_data_key(&self, owner: &str) -> Result<(DataKey, WrappedKey), VaultError> {
        let key = Secret::generate();
        let wrapped = self.master.wrap(&key, &|id| wrap_aad(owner, id))?;
        Ok((DataKey(key), wrapped))
    }

    /// Unwraps `owner`'s stored data key.
    pub fn data_key(&self, owner: &str, wrapped: &WrappedKey) -> Result<DataKey, VaultError> {
        let context = wrap_aad(owner, &wrapped.master_key_id);
        self.master.unwrap(wrapped, &context).map(DataKey)
    }

    /// Re-wraps `owner`'s data key under the current master key, or `None` if it already is.
    pub fn rewrap(
        &self,
        owner: &str,
        wrapped: &WrappedKey,
    ) -> Result<Option<WrappedKey>, VaultError> {
        if wrapped.master_key_id == self.master.current_id()? {
            return Ok(None);
        }
        let DataKey(key) = self.data_key(owner, wrapped)?;
        self.master.wrap(&key, &|id| wrap_aad(owner, id)).map(Some)
    }

    /// The id of the master key new data keys are wrapped under.
    pub fn current_master_key_id(&self) -> Result<String, VaultError> {
        self.master.current_id()
    }

    /// The blind index of a normalized `value` of kind `kind` (e.g. `rrn`, `phone`).
    pub fn blind_index(&self, kind: &str, value: &str) -> Vec<u8> {
        let mut mac =
            <Hmac<sha2_hmac::Sha256> as hmac::KeyInit>::new_from_slice(self.index_key.0.as_ref())
                .expect("HMAC takes a key of any length");
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// A keyring: the master keys (the newest is current; older ones stay until nothing is
/// wrapped under them) and the blind-index key. Stored as TOML with base64 keys.
#[derive(Clone, Debug)]
pub struct Keyring {
    /// The id of the master key new data keys are wrapped under.
    pub current: String,
    /// The blind-index key. Never changes: indexes would no longer match.
    pub index_key: Secret,
    /// Every master key that may still wrap a data key.
    pub master_keys: Vec<MasterKey>,
}

/// One master key in a [`Keyring`].
#[derive(Clone, Debug)]
pub struct MasterKey {
    /// `mk-<created>-<random>`.
    pub id: String,
    /// The key.
    pub key: Secret,
    /// When it was made (RFC 3339).
    pub created_at: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    current: String,
    index_key: String,
    master_keys: Vec<MasterKeyFile>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MasterKeyFile {
    id: String,
    key: String,
    created_at: String,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Keyring {
    /// A new keyring with one master key and an index key. `now` is `YYYYMMDDTHHMMSSZ`-like
    /// text used in the key id.
    pub fn generate(now_rfc3339: &str) -> Keyring {
        let first = MasterKey::generate(now_rfc3339);
        Keyring {
            current: first.id.clone(),
            index_key: Secret::generate(),
            master_keys: vec![first],
        }
    }

    /// Adds a new master key and makes it current; returns its id.
    pub fn add_master_key(&mut self, now_rfc3339: &str) -> String {
        let key = MasterKey::generate(now_rfc3339);
        let id = key.id.clone();
        self.master_keys.push(key);
        self.current = id.clone();
        id
    }

    /// Removes master key `id` (never the current one).
    pub fn remove_master_key(&mut self, id: &str) -> Result<(), String> {
        if id == self.current {
            return Err(format!("`{id}` is the current master key"));
        }
        let before = self.master_keys.len();
        self.master_keys.retain(|k| k.id != id);
        if self.master_keys.len() == before {
            return Err(format!("no master key `{id}` in the keyring"));
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Option<&Secret> {
        self.master_keys.iter().find(|k| k.id == id).map(|k| &k.key)
    }

    /// Parses the TOML form, checking every key is 32 bytes and `current` is present.
    pub fn from_toml(text: &str) -> Result<Keyring, String> {
        let file: KeyringFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let decode = |what: &str, text: &str| {
            B64.decode(text.trim())
                .ok()
                .and_then(|b| Secret::from_slice(&b))
                .ok_or_else(|| format!("{what} is not 32 bytes of base64"))
        };
        let keyring = Keyring {
            index_key: decode("index_key", &file.index_key)?,
            master_keys: file
                .master_keys
                .iter()
                .map(|k| {
                    Ok(MasterKey {
                        key: decode(&format!("master key `{}`", k.id), &k.key)?,
                        id: k.id.clone(),
                        created_at: k.created_at.clone(),
                    })
                })
                .collect::<Result<_, String>>()?,
            current: file.current,
        };
        if keyring.get(&keyring.current).is_none() {
            return Err(format!(
                "the current master key `{}` is not listed",
                keyring.current
            ));
        }
        Ok(keyring)
    }

    /// The TOML form.
    pub fn to_toml(&self) -> String {
        let file = KeyringFile {
            current: self.current.clone(),
            index_key: B64.encode(self.index_key.0.as_ref()),
            master_keys: self
                .master_keys
                .iter()
                .map(|k| MasterKeyFile {
                    id: k.id.clone(),
                    key: B64.encode(k.key.0.as_ref()),
                    created_at: k.created_at.clone(),
                })
                .collect(),
        };
        let body = toml::to_string(&file).expect("a keyring serializes");
        format!(
            "# Gureum vault keyring: master keys and the blind-index key. Secret.\n\
             # Keep it out of backups of the data it protects; see docs/ARCHITECTURE.md.\n{body}"
        )
    }
}

impl MasterKey {
    fn generate(now_rfc3339: &str) -> MasterKey {
        let compact: String = now_rfc3339
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(15)
            .collect();
        let suffix = Secret::generate();
        MasterKey {
            id: format!(
                "mk-{compact}-{:02x}{:02x}{:02x}",
                suffix.0[0], suffix.0[1], suffix.0[2]
            ),
            key: Secret::generate(),
            created_at: now_rfc3339.to_owned(),
        }
    }
}

/// A keyring kept in a file (mode 0600). A running service notices a new current master key
/// within [`KEYRING_RECHECK`], and re-reads the file at once when it meets a data key wrapped
/// under a master key it does not know — so `gureum keys rotate` needs no restart.
pub struct FileKeyring {
    path: PathBuf,
    state: RwLock<Loaded>,
}

struct Loaded {
    keyring: Keyring,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl FileKeyring {
    /// Opens an existing keyring file.
    pub fn open(path: &Path) -> Result<FileKeyring, VaultError> {
        let (keyring, modified) = read_keyring(path)?;
        Ok(FileKeyring {
            path: path.to_owned(),
            state: RwLock::new(Loaded {
                keyring,
                modified,
                checked: Instant::now(),
            }),
        })
    }

    /// Opens the keyring file, creating it with fresh keys if it does not exist (the
    /// one-process shape's first start).
    pub fn open_or_create(path: &Path, now_rfc3339: &str) -> Result<FileKeyring, VaultError> {
        if !path.exists() {
            write_keyring(path, &Keyring::generate(now_rfc3339))?;
        }
        FileKeyring::open(path)
    }

    /// The blind-index key.
    pub fn index_key(&self) -> Secret {
        self.read().keyring.index_key.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads the file if it changed (or `force`). A file whose index key differs is
    /// refused: blind indexes made under the old one would stop matching.
    fn refresh(&self, force: bool) -> Result<(), VaultError> {
        {
            let loaded = self.read();
            if !force && loaded.checked.elapsed() < KEYRING_RECHECK {
                return Ok(());
            }
        }
        let mut loaded = self.state.write().unwrap_or_else(|e| e.into_inner());
        loaded.checked = Instant::now();
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if !force && modified == loaded.modified {
            return Ok(());
        }
        let (keyring, modified) = read_keyring(&self.path)?;
        if keyring.index_key.0 != loaded.keyring.index_key.0 {
            return Err(keyring_error(
                &self.path,
                "its index_key changed; the index key never changes",
            ));
        }
        loaded.keyring = keyring;
        loaded.modified = modified;
        Ok(())
    }
}

impl MasterKeys for FileKeyring {
    fn current_id(&self) -> Result<String, VaultError> {
        if let Err(e) = self.refresh(false) {
            tracing::warn!(error = %e, "keyring: keeping the keys loaded before");
        }
        Ok(self.read().keyring.current.clone())
    }

    fn wrap(
        &self,
        key: &Secret,
        context: &dyn Fn(&str) -> Vec<u8>,
    ) -> Result<WrappedKey, VaultError> {
        let id = self.current_id()?;
        let loaded = self.read();
        let master = loaded
            .keyring
            .get(&id)
            .ok_or_else(|| VaultError::UnknownMasterKey(id.clone()))?;
        let bytes = seal(master, &context(&id), key.0.as_ref());
        Ok(WrappedKey {
            master_key_id: id,
            bytes,
        })
    }

    fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<Secret, VaultError> {
        if self.read().keyring.get(&wrapped.master_key_id).is_none() {
            self.refresh(true)?;
        }
        let loaded = self.read();
        let master = loaded
            .keyring
            .get(&wrapped.master_key_id)
            .ok_or_else(|| VaultError::UnknownMasterKey(wrapped.master_key_id.clone()))?;
        let plain = open(master, context, &wrapped.bytes)?;
        Secret::from_slice(&plain).ok_or(VaultError::Format)
    }
}

fn keyring_error(path: &Path, reason: impl Into<String>) -> VaultError {
    VaultError::Keyring {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads a keyring file and its modification time.
pub fn read_keyring(path: &Path) -> Result<(Keyring, Option<SystemTime>), VaultError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| keyring_error(path, e.to_string()))?,
    );
    let keyring = Keyring::from_toml(&text).map_err(|e| keyring_error(path, e))?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((keyring, modified))
}

/// Writes a keyring file atomically (a temporary file, fsync, rename), readable by its owner
/// only, in a folder only its owner can enter.
pub fn write_keyring(path: &Path, keyring: &Keyring) -> Result<(), VaultError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let err = |e: std::io::Error| keyring_error(path, e.to_string());
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let text = Zeroizing::new(keyring.to_toml());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(dir: &Path) -> (Vault, PathBuf) {
        let path = dir.join("keys").join("vault.toml");
        let keyring = FileKeyring::open_or_create(&path, "2026-11-27T15:00:00Z").unwrap();
        (Vault::from_keyring(keyring), path)
    }

    #[test]
    fn a_sealed_field_opens_only_for_its_owner_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = vault(dir.path());
        let (key, wrapped) = vault.new_data_key("c1").unwrap();
        let blob = key.seal("c1", "rrn", b"900101-1234568");
        assert_eq!(blob.len(), 1 + 12 + 14 + 16);
        assert!(!blob.windows(6).any(|w| w == b"900101"));
        let key = vault.data_key("c1", &wrapped).unwrap();
        assert_eq!(
            key.open("c1", "rrn", &blob).unwrap().as_slice(),
            b"900101-1234568"
        );
        assert!(matches!(
            key.open("c2", "rrn", &blob),
            Err(VaultError::Authentication)
        ));
        assert!(matches!(
            key.open("c1", "phone", &blob),
            Err(VaultError::Authentication)
        ));
        let mut tampered = blob.clone();
        tampered[20] ^= 1;
        assert!(matches!(
            key.open("c1", "rrn", &tampered),
            Err(VaultError::Authentication)
        ));
        // Another customer's wrapped key does not unwrap as this customer's.
        assert!(matches!(
            vault.data_key("c2", &wrapped),
            Err(VaultError::Authentication)
        ));
    }

    #[test]
    fn blind_indexes_are_deterministic_keyed_and_separated_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = vault(dir.path());
        let other = tempfile::tempdir().unwrap();
        let (b, _) = vault(other.path());
        assert_eq!(
            a.blind_index("rrn", "9001011234568"),
            a.blind_index("rrn", "9001011234568")
        );
        assert_eq!(a.blind_index("rrn", "x").len(), 32);
        assert_ne!(
            a.blind_index("rrn", "01012345678"),
            a.blind_index("phone", "01012345678")
        );
        assert_ne!(
            a.blind_index("rrn", "9001011234568"),
            b.blind_index("rrn", "9001011234568")
        );
    }

    #[test]
    fn rotation_rewraps_under_the_new_master_key_which_a_running_vault_picks_up() {
        let dir = tempfile::tempdir().unwrap();
        let (running, path) = vault(dir.path());
        let (key, wrapped) = running.new_data_key("c1").unwrap();
        let blob = key.seal("c1", "phone", b"01012345678");
        let old_id = wrapped.master_key_id.clone();

        // `gureum keys rotate`, in another process: a new current key, then re-wrapping.
        let (mut keyring, _) = read_keyring(&path).unwrap();
        let new_id = keyring.add_master_key("2026-11-28T00:00:00Z");
        write_keyring(&path, &keyring).unwrap();
        let rotator = Vault::from_keyring(FileKeyring::open(&path).unwrap());
        let rewrapped = rotator.rewrap("c1", &wrapped).unwrap().unwrap();
        assert_eq!(rewrapped.master_key_id, new_id);
        assert_ne!(rewrapped.bytes, wrapped.bytes);
        assert_eq!(rotator.rewrap("c1", &rewrapped).unwrap(), None);

        // The running vault opens the re-wrapped key at once (unknown id → re-read)…
        let key = running.data_key("c1", &rewrapped).unwrap();
        assert_eq!(
            key.open("c1", "phone", &blob).unwrap().as_slice(),
            b"01012345678"
        );
        // …and wraps new keys under the new master key from then on.
        assert_eq!(running.current_master_key_id().unwrap(), new_id);

        // Once nothing is wrapped under the old key it can leave the keyring.
        keyring.remove_master_key(&old_id).unwrap();
        assert!(keyring.remove_master_key(&new_id).is_err());
        write_keyring(&path, &keyring).unwrap();
        let retired = Vault::from_keyring(FileKeyring::open(&path).unwrap());
        assert!(
            matches!(retired.data_key("c1", &wrapped), Err(VaultError::UnknownMasterKey(id)) if id == old_id)
        );
    }

    #[test]
    fn the_keyring_file_is_private_and_round_trips() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (_, path) = vault(dir.path());
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let (keyring, _) = read_keyring(&path).unwrap();
        let again = Keyring::from_toml(&keyring.to_toml()).unwrap();
        assert_eq!(again.current, keyring.current);
        assert_eq!(again.master_keys[0].key.0, keyring.master_keys[0].key.0);
        assert!(format!("{keyring:?}").contains("Secret(..)"));
        assert!(
            Keyring::from_toml("current = \"x\"\nindex_key = \"AA==\"\nmaster_keys = []").is_err()
        );
    }
}
