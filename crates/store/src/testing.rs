//! Test fixtures for contract tests that run against both backends: a fresh SQLite folder or a
//! fresh PostgreSQL schema per test, and an in-process S3 server (`s3s-fs`) on 127.0.0.1.
//!
//! PostgreSQL is found at `GUREUM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached the test fails with
//! a message saying how to start it: contract tests never skip.

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};
use tempfile::TempDir;

use crate::sql::{Backend, SqlConfig, Store};
use crate::{Objects, ObjectsConfig};

/// The environment variable naming the test PostgreSQL.
pub const POSTGRES_URL_ENV: &str = "GUREUM_TEST_POSTGRES_URL";

/// Both SQL backends, for tests that loop over them.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// The test PostgreSQL's URL.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_ENV)
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A name no other test (in this or a concurrent process) uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty database for one test: a temporary SQLite folder or a new PostgreSQL schema.
pub struct TestDb {
    /// What [`Store::open`] takes.
    pub config: SqlConfig,
    dir: Option<TempDir>,
}

impl TestDb {
    /// A fresh database on `backend`. Panics, saying what to start, if PostgreSQL is down.
    pub async fn new(backend: Backend) -> TestDb {
        sqlx::any::install_default_drivers();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let path = dir.path().join("service.sqlite");
                TestDb {
                    config: SqlConfig::Sqlite { path },
                    dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let url = postgres_url();
                if let Err(e) = AnyConnection::connect(&url).await {
                    panic!(
                        "PostgreSQL is required for this test and is not reachable at {url}: {e}. \
                         Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) \
                         or set {POSTGRES_URL_ENV}."
                    );
                }
                let schema = unique_name("t");
                TestDb {
                    config: SqlConfig::Postgres { url, schema },
                    dir: None,
                }
            }
        }
    }

    /// Opens a store on it (platform migrations applied).
    pub async fn open(&self) -> Store {
        sqlx::any::install_default_drivers();
        Store::open(&self.config).await.expect("open test store")
    }

    /// The temporary folder (SQLite only).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(TempDir::path)
    }

    /// Drops the PostgreSQL schema (the SQLite folder goes with the value).
    pub async fn cleanup(self) {
        if let SqlConfig::Postgres { url, schema } = &self.config {
            let mut conn = AnyConnection::connect(url)
                .await
                .expect("connect for cleanup");
            conn.execute(sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            ))))
            .await
            .expect("drop test schema");
        }
    }
}

/// An S3 server (`s3s-fs` over a temporary folder) on 127.0.0.1, serving until dropped.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

/// The access key and secret the test S3 server accepts.
pub const S3_ACCESS_KEY: (&str, &str) = ("gureum-test", "gureum-test-secret");

impl S3Server {
    /// Starts a server with the bucket `bucket` created.
    pub async fn start(bucket: &str) -> S3Server {
        use s3s::auth::SimpleAuth;
        use s3s::service::S3ServiceBuilder;

        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::create_dir(dir.path().join(bucket)).expect("create bucket folder");
        let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(S3_ACCESS_KEY.0, S3_ACCESS_KEY.1));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(socket);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        S3Server {
            endpoint,
            task,
            _dir: dir,
        }
    }

    /// A configuration for `bucket` under `prefix` on this server.
    pub fn config(&self, bucket: &str, prefix: &str) -> ObjectsConfig {
        ObjectsConfig::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".to_owned(),
            access_key_id: S3_ACCESS_KEY.0.to_owned(),
            secret_access_key: S3_ACCESS_KEY.1.to_owned(),
        }
    }

    /// Opens object storage for `bucket` under `prefix` on this server.
    pub fn objects(&self, bucket: &str, prefix: &str) -> Objects {
        Objects::open(&self.config(bucket, prefix)).expect("open S3 objects")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
