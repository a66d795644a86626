//! Object storage for one service: a local folder (embedded) or an S3 bucket (scale-out),
//! through the `object_store` crate. Documents, contract PDFs and ledger snapshots live here.
//!
//! Keys are `/`-separated paths without empty, `.` or `..` segments; a put replaces the object
//! atomically on both backends (the local folder writes a temporary file and renames it).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::StoreError;

/// Where a service's objects live.
#[derive(Clone, PartialEq, Eq)]
pub enum ObjectsConfig {
    /// A folder (created if missing).
    Local {
        /// e.g. `<data-dir>/objects/contracts`.
        root: PathBuf,
    },
    /// An S3-compatible bucket.
    S3 {
        /// The bucket, which must exist.
        bucket: String,
        /// A key prefix the service owns inside the bucket (may be empty).
        prefix: String,
        /// `https://…` (or `http://…` for a local test server); `None` is AWS itself.
        endpoint: Option<String>,
        /// e.g. `ap-northeast-2`.
        region: String,
        /// Access key id.
        access_key_id: String,
        /// Secret access key. Never logged (see the `Debug` impl).
        secret_access_key: String,
    },
}

impl std::fmt::Debug for ObjectsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectsConfig::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            ObjectsConfig::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                ..
            } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("prefix", prefix)
                .field("endpoint", endpoint)
                .field("region", region)
                .finish_non_exhaustive(),
        }
    }
}

/// A service's object storage. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Objects {
    inner: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
}

impl Objects {
    /// Opens the storage the configuration names (creating a local folder if missing).
    pub fn open(config: &ObjectsConfig) -> Result<Objects, StoreError> {
        match config {
            ObjectsConfig::Local { root } => {
                std::fs::create_dir_all(root).map_err(|e| {
                    StoreError::Config(format!("cannot create {}: {e}", root.display()))
                })?;
                let inner = LocalFileSystem::new_with_prefix(root)?;
                Ok(Objects {
                    inner: Arc::new(inner),
                    prefix: None,
                })
            }
            ObjectsConfig::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            } => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key);
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                let prefix = if prefix.is_empty() {
                    None
                } else {
                    Some(parse_key(prefix)?)
                };
                Ok(Objects {
                    inner: Arc::new(builder.build()?),
                    prefix,
                })
            }
        }
    }

    /// Stores `bytes` under `key`, replacing what was there.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&self.path(key)?, PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// The object under `key`, or `None`.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self.inner.get(&self.path(key)?).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Keys under `prefix` (a folder-like prefix: whole segments), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = if prefix.is_empty() {
            self.prefix.clone()
        } else {
            Some(self.path(prefix)?)
        };
        let metas: Vec<_> = self.inner.list(full.as_ref()).try_collect().await?;
        let strip = self.prefix.as_ref().map(|p| format!("{p}/"));
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| {
                let key = m.location.to_string();
                match &strip {
                    Some(s) => key.strip_prefix(s.as_str()).unwrap_or(&key).to_owned(),
                    None => key,
                }
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Deletes `key`; deleting a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn path(&self, key: &str) -> Result<Path, StoreError> {
        let key = parse_key(key)?;
        Ok(match &self.prefix {
            Some(prefix) => prefix.parts().chain(key.parts()).collect(),
            None => key,
        })
    }
}

/// Parses a key, refusing empty, `.` and `..` segments and a leading or trailing `/`.
fn parse_key(key: &str) -> Result<Path, StoreError> {
    let bad = key.is_empty()
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(StoreError::Config(format!(
            "object key {key:?} is not a plain relative path"
        )));
    }
    Path::parse(key).map_err(|e| StoreError::Config(format!("object key {key:?}: {e}")))
}
