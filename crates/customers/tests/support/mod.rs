//! Shared fixtures: a customers service on a fresh database of either backend, with its own
//! keyring in a temporary folder.
#![allow(dead_code)]

use customers::Customers;
use customers::model::Submitted;
use customers::vault::{FileKeyring, Vault};
use store::Backend;
use store::testing::TestDb;

pub const RRN: &str = "900101-1234568";
pub const RRN_DIGITS: &str = "9001011234568";
pub const PHONE: &str = "010-9876-5432";
pub const PHONE_DIGITS: &str = "01098765432";
pub const ADDRESS: &str = "서울특별시 강남구 테헤란로 427 구름빌딩 12층";
pub const EMPLOYER: &str = "구름은행연구소";
pub const INCOME: &str = "73500000";

/// A service on a fresh database, its keyring file, and the database to clean up.
pub struct Fixture {
    pub customers: Customers,
    pub db: TestDb,
    pub keyring: std::path::PathBuf,
    /// Where PostgreSQL's write-ahead log stood when the fixture was made.
    pub wal_start: Option<String>,
    _keys: tempfile::TempDir,
}

impl Fixture {
    pub async fn new(backend: Backend) -> Fixture {
        let db = TestDb::new(backend).await;
        let keys = tempfile::tempdir().unwrap();
        let keyring = keys.path().join("vault.toml");
        let vault = vault(&keyring);
        let wal_start = match &db.config {
            store::SqlConfig::Postgres { url, .. } => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                Some(
                    sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
                        .fetch_one(&mut conn)
                        .await
                        .unwrap(),
                )
            }
            store::SqlConfig::Sqlite { .. } => None,
        };
        let customers = Customers::open(db.open().await, vault).await.unwrap();
        Fixture {
            customers,
            db,
            keyring,
            wal_start,
            _keys: keys,
        }
    }

    /// Another service instance on the same database and keyring (another replica).
    pub async fn replica(&self) -> Customers {
        Customers::open(self.db.open().await, vault(&self.keyring))
            .await
            .unwrap()
    }
}

pub fn vault(keyring: &std::path::Path) -> Vault {
    Vault::from_keyring(FileKeyring::open_or_create(keyring, "2026-11-27T00:00:00Z").unwrap())
}

/// The fully loaded individual every test starts from.
pub fn person() -> Submitted {
    Submitted {
        name: "김하늘".into(),
        rrn: Some(RRN.into()),
        phone: Some(PHONE.into()),
        address: Some(ADDRESS.into()),
        income: Some(INCOME.into()),
        employer: Some(EMPLOYER.into()),
        credit: Some(
            serde_json::from_value(
                serde_json::json!({"bureau": "NICE", "score": 912, "delinquencies": 0}),
            )
            .unwrap(),
        ),
        ..Submitted::default()
    }
}

/// The plain values that must never show up where they should not.
pub const SECRETS: [&str; 6] = [
    RRN_DIGITS,
    "1234568",
    PHONE_DIGITS,
    "9876-5432",
    "테헤란로 427",
    EMPLOYER,
];
