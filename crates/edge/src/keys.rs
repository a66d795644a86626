//! API keys: random, shown once, stored hashed, scoped to roles, expirable, revocable.
//!
//! A key reads `gureum_<id>_<secret>`: 16 hex digits of id (not secret: it names the key in
//! lists, logs and the audit trail) and 43 characters of URL-safe base64 from 256 random bits.
//! Only SHA-256 of the whole key is stored; with 256 bits of secret a fast hash is as strong
//! as a slow one, and it keeps authentication at a microsecond. The comparison is constant
//! time.
//!
//! Every edge keeps all keys in memory and reloads them from the database every few seconds
//! ([`Keys::refresh`]), so authentication never waits on the database, an unknown id costs
//! nothing, and a key created or revoked at one edge holds at the others within that time
//! (at once at the edge that did it).
//!
//! The bootstrap admin key: on first start `gureum up` writes a new admin key to
//! `<data-dir>/admin.key` (mode 0600), or — when `GUREUM_ADMIN_KEY` is set — takes that
//! value (at least 32 characters) as the admin key instead, kept in memory only. Either is a
//! break-glass key ([`Principal::bootstrap`]): meant for creating the first real keys, and
//! watched when used after that.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use sha2::{Digest, Sha256};
use store::Store;
use store::sql::{Migration, MigrationSet, now_us};
use subtle::ConstantTimeEq;

use crate::access::{Role, permissions_of};

/// The first characters of every key (so secret scanners can recognise one).
pub const KEY_PREFIX: &str = "gureum_";
const ID_HEX: usize = 16;
const SECRET_CHARS: usize = 43;
/// The shortest `GUREUM_ADMIN_KEY` accepted.
pub const ENV_KEY_CHARS_MIN: usize = 32;
/// The id of the key `GUREUM_ADMIN_KEY` gives.
pub const ENV_KEY_ID: &str = "environment";
/// The id of the key `GUREUM_SERVICE_KEY` gives.
pub const SERVICE_KEY_ID: &str = "service";
/// A customer id on a key or token holds at most this many bytes.
pub(crate) const CUSTOMER_ID_BYTES_MAX: usize = 64;
/// A key's name holds at most this many characters.
const NAME_CHARS_MAX: usize = 100;

/// The edge's tables.
pub const MIGRATIONS: MigrationSet = MigrationSet {
    name: "edge",
    migrations: &[
        Migration {
            version: 1,
            description: "api keys",
            sql: include_str!("../migrations/0001_api_keys.sql"),
        },
        Migration {
            version: 2,
            description: "customer keys",
            sql: include_str!("../migrations/0002_customer_keys.sql"),
        },
        Migration {
            version: 3,
            description: "guard findings",
            sql: include_str!("../migrations/0003_guard_findings.sql"),
        },
        Migration {
            version: 4,
            description: "guard blocks",
            sql: include_str!("../migrations/0004_guard_blocks.sql"),
        },
    ],
};

/// What went wrong with keys. Messages never hold a key's secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The database failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A request to create a key is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The caller asked for a role granting what they do not hold themselves.
    #[error("role `{0}` grants permissions the caller does not hold")]
    NotGrantable(&'static str),
    /// No key has the id.
    #[error("no API key has id {0}")]
    NotFound(String),
    /// The bootstrap key file could not be written.
    #[error("writing {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `GUREUM_ADMIN_KEY` is unusable.
    #[error(
        "GUREUM_ADMIN_KEY must be at least {ENV_KEY_CHARS_MIN} visible ASCII characters (e.g. `openssl rand -base64 32`)"
    )]
    WeakEnvironmentKey(&'static str),
    /// A stored row does not parse.
    #[error("damaged api_keys row {0}")]
    Corrupt(String),
}

/// An API key as lists show it (never its secret or hash).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// The key's id (the part after `gureum_` and before the secret).
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// The principal that created it.
    pub created_by: String,
    /// Microseconds since the Unix epoch.
    #[schema(value_type = String)]
    #[serde(with = "micros")]
    pub created_at_us: i64,
    /// When it stops working, if ever (microseconds since the Unix epoch).
    #[schema(value_type = Option<String>)]
    #[serde(with = "micros_opt")]
    pub expires_at_us: Option<i64>,
    /// When it was revoked, if it was.
    #[schema(value_type = Option<String>)]
    #[serde(with = "micros_opt")]
    pub revoked_at_us: Option<i64>,
    /// Whether it is a bootstrap (break-glass) admin key.
    pub bootstrap: bool,
    /// For a customer's key, the customer it belongs to.
    pub customer_id: Option<String>,
}

mod micros {
    pub fn serialize<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

mod micros_opt {
    pub fn serialize<S: serde::Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }
}

/// Who is calling, as a credential established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// `key:<id>` for an API key.
    pub id: String,
    /// The key's or token's name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// What the roles grant.
    pub permissions: BTreeSet<&'static str>,
    /// A bootstrap (break-glass) admin key.
    pub bootstrap: bool,
    /// For a customer's credential, the customer it belongs to (its reads are limited to
    /// that customer's records).
    pub customer: Option<String>,
}

impl Principal {
    /// The principal of a key given in the environment (`key:<id>`, one role).
    fn fixed(id: &str, name: &str, role: Role, bootstrap: bool) -> Arc<Principal> {
        Arc::new(Principal {
            id: format!("key:{id}"),
            name: name.to_owned(),
            roles: vec![role],
            permissions: permissions_of(&[role]),
            bootstrap,
            customer: None,
        })
    }

    /// Whether the principal holds `permission`.
    pub fn may(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// The permissions as the services read them (comma-separated).
    pub fn permissions_header(&self) -> String {
        self.permissions
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A key just created: the only time its secret is known.
#[derive(Debug)]
pub struct NewKey {
    /// The whole key, to hand to the client once.
    pub key: String,
    /// What lists show.
    pub record: ApiKey,
}

struct Entry {
    record: ApiKey,
    hash: [u8; 32],
    /// Who the key authenticates, built once when the key is loaded.
    principal: Arc<Principal>,
}

impl Entry {
    fn new(record: ApiKey, roles: Vec<Role>, hash: [u8; 32]) -> Entry {
        let principal = Arc::new(Principal {
            id: format!("key:{}", record.id),
            name: record.name.clone(),
            permissions: permissions_of(&roles),
            roles,
            bootstrap: record.bootstrap,
            customer: record.customer_id.clone(),
        });
        Entry {
            record,
            hash,
            principal,
        }
    }
}

/// The keys, in the database and in memory.
pub struct Keys {
    store: Store,
    cache: RwLock<HashMap<String, Arc<Entry>>>,
    /// `GUREUM_ADMIN_KEY`'s hash and principal, when it was given.
    environment: RwLock<Option<([u8; 32], Arc<Principal>)>>,
    /// `GUREUM_SERVICE_KEY`'s hash and principal, when it was given.
    service: RwLock<Option<([u8; 32], Arc<Principal>)>>,
}

impl Keys {
    /// Opens the keys in `store` (applying the edge's migrations) and loads them.
    pub async fn open(store: Store) -> Result<Keys, KeyError> {
        store.migrate(&MIGRATIONS).await?;
        let keys = Keys {
            store,
            cache: RwLock::new(HashMap::new()),
            environment: RwLock::new(None),
            service: RwLock::new(None),
        };
        keys.refresh().await?;
        Ok(keys)
    }

    /// Reloads every key from the database (keys created or revoked at other edges).
    pub async fn refresh(&self) -> Result<(), KeyError> {
        type Row = (
            String,
            String,
            String,
            Vec<u8>,
            String,
            i64,
            Option<i64>,
            Option<i64>,
            i64,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, name, roles, hash, created_by, created_at_us, expires_at_us, \
             revoked_at_us, bootstrap, customer_id FROM api_keys",
        )
        .fetch_all(self.store.reader())
        .await?;
        let mut loaded = HashMap::with_capacity(rows.len());
        for (
            id,
            name,
            roles,
            hash,
            created_by,
            created_at_us,
            expires_at_us,
            revoked_at_us,
            bootstrap,
            customer_id,
        ) in rows
        {
            let hash: [u8; 32] = hash.try_into().map_err(|_| KeyError::Corrupt(id.clone()))?;
            let parsed: Option<Vec<Role>> = roles.split(',').map(Role::from_name).collect();
            let roles = parsed.ok_or_else(|| KeyError::Corrupt(id.clone()))?;
            let record = ApiKey {
                id: id.clone(),
                name,
                roles: roles.iter().map(|r| r.name().to_owned()).collect(),
                created_by,
                created_at_us,
                expires_at_us,
                revoked_at_us,
                bootstrap: bootstrap != 0,
                customer_id,
            };
            loaded.insert(id, Arc::new(Entry::new(record, roles, hash)));
        }
        *self.cache.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(())
    }

    /// The principal `key` authenticates at `now_us`, or `None` — for every reason alike
    /// (malformed, unknown, wrong secret, expired, revoked), so a caller learns nothing.
    pub fn authenticate(&self, key: &str, now_us: i64) -> Option<Arc<Principal>> {
        let hash = digest(key);
        let Some(id) = parse_id(key) else {
            let matches = |slot: &RwLock<Option<([u8; 32], Arc<Principal>)>>| {
                let slot = slot.read().unwrap_or_else(|e| e.into_inner());
                slot.as_ref()
                    .filter(|(expected, _)| bool::from(expected.ct_eq(&hash)))
                    .map(|(_, principal)| principal.clone())
            };
            return matches(&self.environment).or_else(|| matches(&self.service));
        };
        let entry = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()?;
        let valid = bool::from(entry.hash.ct_eq(&hash))
            & entry.record.revoked_at_us.is_none()
            & entry.record.expires_at_us.is_none_or(|at| now_us < at);
        valid.then(|| entry.principal.clone())
    }

    /// Creates a key for `roles`, made by `by`. `by` may only hand out what it holds: a role
    /// granting any permission `by` lacks is refused ([`KeyError::NotGrantable`]).
    pub async fn create(
        &self,
        by: &Principal,
        name: &str,
        roles: &[String],
        expires_at_us: Option<i64>,
        customer: Option<&str>,
    ) -> Result<NewKey, KeyError> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > NAME_CHARS_MAX
            || name.chars().any(char::is_control)
        {
            return Err(KeyError::Invalid(format!(
                "`name` must be 1 to {NAME_CHARS_MAX} characters without control characters"
            )));
        }
        let mut parsed: Vec<Role> = Vec::new();
        for role in roles {
            let role = Role::from_name(role).ok_or_else(|| {
                KeyError::Invalid("`roles` names an unknown role (see docs/SECURITY.md)".to_owned())
            })?;
            if role == Role::Service {
                return Err(KeyError::Invalid(
                    "`service` belongs to the service key (GUREUM_SERVICE_KEY) alone".to_owned(),
                ));
            }
            if !parsed.contains(&role) {
                parsed.push(role);
            }
        }
        if parsed.is_empty() {
            return Err(KeyError::Invalid(
                "`roles` must name at least one role".to_owned(),
            ));
        }
        parsed.sort();
        // A customer's key is theirs alone: the one role, and the customer it belongs to.
        let customer = match (parsed.contains(&Role::Customer), customer) {
            (false, None) => None,
            (false, Some(_)) => {
                return Err(KeyError::Invalid(
                    "`customer` belongs only on a key with the role `customer`".to_owned(),
                ));
            }
            (true, _) if parsed.len() > 1 => {
                return Err(KeyError::Invalid(
                    "a `customer` key holds that role alone".to_owned(),
                ));
            }
            (true, None) => {
                return Err(KeyError::Invalid(
                    "a `customer` key names its customer (`customer`)".to_owned(),
                ));
            }
            (true, Some(id)) => {
                let id = id.trim();
                if !visible_ascii(id, CUSTOMER_ID_BYTES_MAX) {
                    return Err(KeyError::Invalid(format!(
                        "`customer` must be a customer id (1 to {CUSTOMER_ID_BYTES_MAX} visible ASCII characters)"
                    )));
                }
                Some(id)
            }
        };
        for role in &parsed {
            // Holding a permission over everyone's records covers its `:own` form.
            let holds =
                |p: &str| by.may(p) || p.strip_suffix(":own").is_some_and(|all| by.may(all));
            if role.permissions().iter().any(|p| !holds(p)) {
                return Err(KeyError::NotGrantable(role.name()));
            }
        }
        let now = now_us();
        if expires_at_us.is_some_and(|at| at <= now) {
            return Err(KeyError::Invalid(
                "`expires_at` must be in the future".to_owned(),
            ));
        }
        self.insert(name, &parsed, &by.id, now, expires_at_us, customer)
            .await
    }

    async fn insert(
        &self,
        name: &str,
        roles: &[Role],
        created_by: &str,
        created_at_us: i64,
        expires_at_us: Option<i64>,
        customer: Option<&str>,
    ) -> Result<NewKey, KeyError> {
        let (id, key) = generate();
        let hash = digest(&key);
        let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, roles, hash, created_by, created_at_us, \
             expires_at_us, revoked_at_us, revoked_by, bootstrap, customer_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8, $9)",
        )
        .bind(&id)
        .bind(name)
        .bind(names.join(","))
        .bind(hash.to_vec())
        .bind(created_by)
        .bind(created_at_us)
        .bind(expires_at_us)
        // Bootstrap keys are written by `bootstrap` alone.
        .bind(0i64)
        .bind(customer)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let record = ApiKey {
            id: id.clone(),
            name: name.to_owned(),
            roles: names.iter().map(|r| (*r).to_owned()).collect(),
            created_by: created_by.to_owned(),
            created_at_us,
            expires_at_us,
            revoked_at_us: None,
            bootstrap: false,
            customer_id: customer.map(str::to_owned),
        };
        let entry = Entry::new(record.clone(), roles.to_vec(), hash);
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(entry));
        Ok(NewKey { key, record })
    }

    /// The edge's database (also where findings are kept).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether `principal` is a bootstrap (break-glass) admin key.
    pub fn is_bootstrap(&self, principal: &str) -> bool {
        if principal == format!("key:{ENV_KEY_ID}") {
            return true;
        }
        principal.strip_prefix("key:").is_some_and(|id| {
            self.cache
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .is_some_and(|e| e.record.bootstrap)
        })
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Vec<ApiKey> {
        let mut keys: Vec<ApiKey> = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|e| e.record.clone())
            .collect();
        keys.sort_by(|a, b| (a.created_at_us, &a.id).cmp(&(b.created_at_us, &b.id)));
        keys
    }

    /// Revokes key `id` (at once at this edge). Revoking a revoked key changes nothing.
    pub async fn revoke(&self, id: &str, by: &Principal) -> Result<ApiKey, KeyError> {
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at_us = $1, revoked_by = $2 \
             WHERE id = $3 AND revoked_at_us IS NULL",
        )
        .bind(now)
        .bind(&by.id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if done.rows_affected() == 0 {
            let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM api_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(self.store.reader())
                .await?;
            if exists.is_none() {
                return Err(KeyError::NotFound(id.to_owned()));
            }
        }
        self.refresh().await?;
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|e| e.record.clone())
            .ok_or_else(|| KeyError::NotFound(id.to_owned()))
    }

    /// Accepts `key` (`GUREUM_SERVICE_KEY`, at least 32 visible characters) as the key Gureum's
    /// services send when they call each other through the edge: role `service`, held in
    /// memory only.
    pub fn accept_service_key(&self, key: &str) -> Result<(), KeyError> {
        let key = key.trim();
        if key.len() < ENV_KEY_CHARS_MIN || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::WeakEnvironmentKey("GUREUM_SERVICE_KEY"));
        }
        if parse_id(key).is_some() {
            return Err(KeyError::Invalid(
                "GUREUM_SERVICE_KEY must not look like a stored key (gureum_…)".to_owned(),
            ));
        }
        let principal = Principal::fixed(
            SERVICE_KEY_ID,
            "Gureum services (GUREUM_SERVICE_KEY)",
            Role::Service,
            false,
        );
        *self.service.write().unwrap_or_else(|e| e.into_inner()) = Some((digest(key), principal));
        Ok(())
    }

    /// Makes sure an admin can get in: with `environment` (`GUREUM_ADMIN_KEY`), that value
    /// is an admin key for this process's life; otherwise, unless a bootstrap key was made
    /// before, a new one is written to `key_file` (mode 0600) and stored. Without a file to
    /// write (an edge on PostgreSQL with no data folder) and without `environment`, some
    /// stored admin key must exist already.
    pub async fn bootstrap(
        &self,
        key_file: Option<&Path>,
        environment: Option<&str>,
    ) -> Result<Bootstrapped, KeyError> {
        if let Some(key) = environment {
            let key = key.trim();
            if key.len() < ENV_KEY_CHARS_MIN || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(KeyError::WeakEnvironmentKey("GUREUM_ADMIN_KEY"));
            }
            if parse_id(key).is_some() {
                // A `gureum_…` value names a stored key; as the environment key it must not
                // be shadowed by (or shadow) one.
                return Err(KeyError::Invalid(
                    "GUREUM_ADMIN_KEY must not look like a stored key (gureum_…); use any other random value".to_owned(),
                ));
            }
            let principal = Principal::fixed(
                ENV_KEY_ID,
                "bootstrap admin (GUREUM_ADMIN_KEY)",
                Role::Admin,
                true,
            );
            *self.environment.write().unwrap_or_else(|e| e.into_inner()) =
                Some((digest(key), principal));
            return Ok(Bootstrapped::Environment);
        }
        let keys = self.list();
        let usable = |k: &&ApiKey| k.revoked_at_us.is_none();
        if keys.iter().filter(usable).any(|k| k.bootstrap) {
            return Ok(Bootstrapped::Existing);
        }
        let Some(key_file) = key_file else {
            let admin = keys
                .iter()
                .filter(usable)
                .any(|k| k.roles.iter().any(|r| r == "admin"));
            return if admin {
                Ok(Bootstrapped::Existing)
            } else {
                Err(KeyError::Invalid(
                    "no admin key exists and there is no data folder to write one to: set \
                     GUREUM_ADMIN_KEY"
                        .to_owned(),
                ))
            };
        };
        // The file first, then the row: a crash between leaves a file with an unknown key,
        // replaced on the next start — never a stored admin key nobody can read.
        let (id, key) = generate();
        write_key_file(key_file, &key)?;
        let hash = digest(&key);
        let now = now_us();
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, name, roles, hash, created_by, created_at_us, \
             expires_at_us, revoked_at_us, revoked_by, bootstrap) \
             VALUES ($1, 'bootstrap admin', 'admin', $2, 'gureum', $3, NULL, NULL, NULL, 1)",
        )
        .bind(&id)
        .bind(hash.to_vec())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.refresh().await?;
        Ok(Bootstrapped::Written(key_file.to_owned()))
    }
}

/// What [`Keys::bootstrap`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrapped {
    /// `GUREUM_ADMIN_KEY` is the admin key.
    Environment,
    /// A new admin key is in this file.
    Written(PathBuf),
    /// A bootstrap key was made on an earlier start.
    Existing,
}

/// The id of a well-formed `gureum_<id>_<secret>` key.
/// Whether `text` is 1 to `max_bytes` visible ASCII characters (what an id must be to go in
/// a header, a log line or a database key as it is).
pub(crate) fn visible_ascii(text: &str, max_bytes: usize) -> bool {
    !text.is_empty() && text.len() <= max_bytes && text.bytes().all(|b| b.is_ascii_graphic())
}

pub fn parse_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = (rest.get(..ID_HEX)?, rest.get(ID_HEX..)?);
    let secret = secret.strip_prefix('_')?;
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret.len() == SECRET_CHARS
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some(id)
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new key: its id and the whole key.
fn generate() -> (String, String) {
    let mut bytes = [0u8; 8 + 32];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    let id: String = bytes[..8].iter().map(|b| format!("{b:02x}")).collect();
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[8..]);
    let key = format!("{KEY_PREFIX}{id}_{secret}");
    (id, key)
}

/// Writes `key` to `path` with mode 0600, atomically (a temporary file renamed over it).
fn write_key_file(path: &Path, key: &str) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source| KeyError::KeyFile {
        path: path.to_owned(),
        source,
    };
    let temporary = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(failed)?;
    file.write_all(format!("{key}\n").as_bytes())
        .map_err(failed)?;
    file.sync_all().map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(failed)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn keys(dir: &Path) -> Keys {
        let store = Store::open(&store::SqlConfig::Sqlite {
            path: dir.join("edge.sqlite"),
        })
        .await
        .unwrap();
        Keys::open(store).await.unwrap()
    }

    fn admin() -> Principal {
        Principal {
            id: "key:admin".into(),
            name: "admin".into(),
            roles: vec![Role::Admin],
            permissions: permissions_of(&[Role::Admin]),
            bootstrap: false,
            customer: None,
        }
    }

    #[test]
    fn generated_keys_parse_and_others_do_not() {
        let (id, key) = generate();
        assert_eq!(parse_id(&key), Some(id.as_str()));
        assert_eq!(key.len(), KEY_PREFIX.len() + ID_HEX + 1 + SECRET_CHARS);
        for bad in [
            "",
            "gureum_",
            "gureum_0123456789abcdef",
            "gureum_0123456789ABCDEF_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
        let (_, other) = generate();
        assert_ne!(key, other);
    }

    #[tokio::test]
    async fn a_key_authenticates_until_it_is_revoked_or_expires_and_is_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(dir.path()).await;
        let made = keys
            .create(&admin(), "teller app", &["teller".into()], None, None)
            .await
            .unwrap();
        let now = now_us();
        let principal = keys.authenticate(&made.key, now).unwrap();
        assert_eq!(principal.id, format!("key:{}", made.record.id));
        assert_eq!(principal.roles, vec![Role::Teller]);
        assert!(principal.may("deposits:write") && !principal.may("auth:keys"));
        // One character off, a prefix, another key's id with this secret: all refused.
        let mut wrong = made.key.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(keys.authenticate(&wrong, now), None);
        assert_eq!(
            keys.authenticate(&made.key[..made.key.len() - 1], now),
            None
        );
        // Nothing in the database holds the secret.
        let raw = std::fs::read(dir.path().join("edge.sqlite")).unwrap();
        // (The secret is everything after the id: URL-safe base64 may hold `_` itself.)
        let secret = made.key.splitn(3, '_').nth(2).unwrap().as_bytes();
        assert_eq!(secret.len(), SECRET_CHARS);
        assert!(!raw.windows(secret.len()).any(|w| w == secret));
        // A second handle on the same database sees the key; revoked, neither accepts it.
        let other = self::keys(dir.path()).await;
        assert!(other.authenticate(&made.key, now).is_some());
        let revoked = keys.revoke(&made.record.id, &admin()).await.unwrap();
        assert!(revoked.revoked_at_us.is_some());
        assert_eq!(keys.authenticate(&made.key, now), None);
        other.refresh().await.unwrap();
        assert_eq!(other.authenticate(&made.key, now), None);
        assert!(matches!(
            keys.revoke("0000000000000000", &admin()).await,
            Err(KeyError::NotFound(_))
        ));
        // Expiry.
        let expiring = keys
            .create(
                &admin(),
                "short",
                &["auditor".into()],
                Some(now + 1_000_000),
                None,
            )
            .await
            .unwrap();
        assert!(keys.authenticate(&expiring.key, now).is_some());
        assert_eq!(keys.authenticate(&expiring.key, now + 1_000_000), None);
    }

    #[tokio::test]
    async fn nobody_grants_more_than_they_hold_and_bad_requests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(dir.path()).await;
        let teller = keys
            .create(&admin(), "t", &["teller".into()], None, None)
            .await
            .unwrap();
        let teller = keys.authenticate(&teller.key, now_us()).unwrap();
        assert!(matches!(
            keys.create(&teller, "x", &["admin".into()], None, None)
                .await,
            Err(KeyError::NotGrantable("admin"))
        ));
        assert!(matches!(
            keys.create(&teller, "x", &["loan_officer".into()], None, None)
                .await,
            Err(KeyError::NotGrantable("loan_officer"))
        ));
        // Everything a customer holds, a teller holds too.
        let made = keys
            .create(&teller, "x", &["customer".into()], None, Some("c-1"))
            .await
            .unwrap();
        assert_eq!(made.record.customer_id.as_deref(), Some("c-1"));
        let customer = keys.authenticate(&made.key, now_us()).unwrap();
        assert_eq!(customer.customer.as_deref(), Some("c-1"));
        assert_eq!(customer.roles, vec![Role::Customer]);
        // After a reload too.
        keys.refresh().await.unwrap();
        let customer = keys.authenticate(&made.key, now_us()).unwrap();
        assert_eq!(customer.customer.as_deref(), Some("c-1"));
        // A customer key names its customer, holds that role alone; no other key names one.
        for (roles, customer) in [
            (vec!["customer"], None),
            (vec!["customer"], Some("")),
            (vec!["customer"], Some("c 1")),
            (vec!["customer", "teller"], Some("c-1")),
            (vec!["teller"], Some("c-1")),
        ] {
            let roles: Vec<String> = roles.into_iter().map(String::from).collect();
            assert!(
                matches!(
                    keys.create(&admin(), "x", &roles, None, customer).await,
                    Err(KeyError::Invalid(_))
                ),
                "{roles:?} {customer:?}"
            );
        }
        for (name, roles) in [
            ("", vec!["teller"]),
            ("x", vec![]),
            ("x", vec!["root"]),
            ("a\nb", vec!["teller"]),
            ("x", vec!["service"]),
        ] {
            let roles: Vec<String> = roles.into_iter().map(String::from).collect();
            assert!(matches!(
                keys.create(&admin(), name, &roles, None, None).await,
                Err(KeyError::Invalid(_))
            ));
        }
        assert!(matches!(
            keys.create(&admin(), "x", &["teller".into()], Some(now_us() - 1), None)
                .await,
            Err(KeyError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn bootstrap_writes_one_admin_key_once_or_takes_the_environment_s() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.key");
        let keys = keys(dir.path()).await;
        assert_eq!(
            keys.bootstrap(Some(&file), None).await.unwrap(),
            Bootstrapped::Written(file.clone())
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = std::fs::read_to_string(&file).unwrap();
        let admin = keys.authenticate(key.trim(), now_us()).unwrap();
        assert!(admin.bootstrap && admin.may("auth:keys"));
        assert_eq!(
            keys.bootstrap(Some(&file), None).await.unwrap(),
            Bootstrapped::Existing
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), key);

        let other = tempfile::tempdir().unwrap();
        let keys = self::keys(other.path()).await;
        let file = other.path().join("admin.key");
        assert!(matches!(
            keys.bootstrap(Some(&file), Some("short")).await,
            Err(KeyError::WeakEnvironmentKey(_))
        ));
        let env = "k2Jq8vX0nY4tR7wB1cZ5mA9sD3fG6hL2pQ";
        assert_eq!(
            keys.bootstrap(Some(&file), Some(env)).await.unwrap(),
            Bootstrapped::Environment
        );
        assert!(!file.exists());
        let admin = keys.authenticate(env, now_us()).unwrap();
        assert_eq!(admin.id, "key:environment");
        assert!(admin.bootstrap && admin.may("auth:keys"));
        assert_eq!(
            keys.authenticate("k2Jq8vX0nY4tR7wB1cZ5mA9sD3fG6hL2pX", now_us()),
            None
        );

        // Without a file and without the environment, only an existing admin key will do.
        let third = tempfile::tempdir().unwrap();
        let bare = self::keys(third.path()).await;
        assert!(matches!(
            bare.bootstrap(None, None).await,
            Err(KeyError::Invalid(_))
        ));
        bare.create(&self::admin(), "ops", &["admin".into()], None, None)
            .await
            .unwrap();
        assert_eq!(
            bare.bootstrap(None, None).await.unwrap(),
            Bootstrapped::Existing
        );

        // The service key: role `service`, nothing more.
        let service = "s9Xw2Lq7Tn4Vb8Kc1Hd5Jf3Mg6Pr0Zy2Ue";
        assert_eq!(keys.authenticate(service, now_us()), None);
        keys.accept_service_key(service).unwrap();
        let caller = keys.authenticate(service, now_us()).unwrap();
        assert_eq!(
            (caller.id.as_str(), caller.roles.clone(), caller.bootstrap),
            ("key:service", vec![Role::Service], false)
        );
        assert!(caller.may("ledger:write") && !caller.may("auth:keys"));
        assert!(!caller.may("customers:unmask"));
        assert!(matches!(
            keys.accept_service_key("short"),
            Err(KeyError::WeakEnvironmentKey(_))
        ));
    }
}
