//! Contract tests: every store operation behaves the same on SQLite and PostgreSQL, and object
//! storage the same on a local folder and S3. Each test runs on both backends; PostgreSQL
//! must be reachable (the test fails, it does not skip).

use std::collections::BTreeMap;

use bytes::Bytes;
use kernel::event::TraceParent;
use serde_json::json;
use sqlx::Row;
use store::outbox::{self, NewEvent};
use store::sql::{PLATFORM_MIGRATIONS, is_unique_violation, now_us};
use store::testing::{BACKENDS, S3Server, TestDb};
use store::{Backend, Migration, MigrationSet, Objects, ObjectsConfig, StoreError};

const ACCOUNTS_V1: MigrationSet = MigrationSet {
    name: "accounts",
    migrations: &[Migration {
        version: 1,
        description: "accounts",
        sql: "CREATE TABLE accounts (id {{id}}, owner TEXT NOT NULL UNIQUE, \
              balance BIGINT NOT NULL, photo {{bytes}}, closed_at_us BIGINT)",
    }],
};

const ACCOUNTS_V2: MigrationSet = MigrationSet {
    name: "accounts",
    migrations: &[
        ACCOUNTS_V1.migrations[0],
        Migration {
            version: 2,
            description: "nickname",
            sql: "ALTER TABLE accounts ADD COLUMN nickname TEXT",
        },
    ],
};

fn event(aggregate: &str, n: i64) -> NewEvent {
    NewEvent {
        event_type: "accounts.account.changed".into(),
        aggregate: aggregate.into(),
        data: json!({ "n": n }),
        traceparent: Some(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        ),
    }
}

#[tokio::test]
async fn migrations_apply_once_extend_and_refuse_an_edited_migration() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.open().await;
        store.migrate(&ACCOUNTS_V1).await.unwrap();
        store.migrate(&ACCOUNTS_V1).await.unwrap();
        store.migrate(&ACCOUNTS_V2).await.unwrap();
        sqlx::query("INSERT INTO accounts (owner, balance, nickname) VALUES ($1, 5, $2)")
            .bind("kept")
            .bind("nick")
            .execute(store.reader())
            .await
            .unwrap();
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _migrations_accounts ORDER BY version")
                .fetch_all(store.reader())
                .await
                .unwrap();
        assert_eq!(applied, vec![1, 2], "{backend:?}");
        let platform: Vec<i64> = sqlx::query_scalar("SELECT version FROM _migrations_platform")
            .fetch_all(store.reader())
            .await
            .unwrap();
        assert_eq!(
            platform,
            vec![PLATFORM_MIGRATIONS.migrations.len() as i64],
            "{backend:?}"
        );

        // A binary older than the database (it lacks migration 2) refuses to run on it.
        let err = store.migrate(&ACCOUNTS_V1).await.unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Migrate(sqlx::migrate::MigrateError::VersionMissing(2))
            ),
            "{backend:?}: {err}"
        );
        const EDITED: MigrationSet = MigrationSet {
            name: "accounts",
            migrations: &[
                Migration {
                    version: 1,
                    description: "accounts",
                    sql: "CREATE TABLE accounts (id {{id}})",
                },
                ACCOUNTS_V2.migrations[1],
            ],
        };
        let err = store.migrate(&EDITED).await.unwrap_err();
        assert!(
            matches!(
                &err,
                StoreError::Migrate(sqlx::migrate::MigrateError::VersionMismatch(1))
            ),
            "{backend:?}: {err}"
        );
        store.close().await;
        // Reopening applies nothing new and keeps the data.
        let again = db.open().await;
        again.migrate(&ACCOUNTS_V2).await.unwrap();
        let nickname: String = sqlx::query_scalar("SELECT nickname FROM accounts WHERE owner = $1")
            .bind("kept")
            .fetch_one(again.reader())
            .await
            .unwrap();
        assert_eq!(nickname, "nick", "{backend:?}");
        again.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn values_round_trip_exactly_and_unique_violations_are_recognised() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.open().await;
        store.migrate(&ACCOUNTS_V1).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        let photo = vec![0u8, 255, 1, 254, 0];
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (owner, balance, photo, closed_at_us) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind("김하늘 🌧")
        .bind(i64::MAX)
        .bind(photo.clone())
        .bind(None::<i64>)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO accounts (owner, balance) VALUES ($1, $2)")
            .bind("second")
            .bind(i64::MIN)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let row =
            sqlx::query("SELECT owner, balance, photo, closed_at_us FROM accounts WHERE id = $1")
                .bind(id)
                .fetch_one(store.reader())
                .await
                .unwrap();
        assert_eq!(row.get::<String, _>("owner"), "김하늘 🌧", "{backend:?}");
        assert_eq!(row.get::<i64, _>("balance"), i64::MAX);
        assert_eq!(row.get::<Vec<u8>, _>("photo"), photo);
        assert_eq!(row.get::<Option<i64>, _>("closed_at_us"), None);
        let min: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE owner = $1")
            .bind("second")
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert_eq!(min, i64::MIN);

        // A unique violation rolls back the transaction's work and is recognisable.
        let mut tx = store.begin().await.unwrap();
        sqlx::query("UPDATE accounts SET balance = 0 WHERE owner = $1")
            .bind("second")
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO accounts (owner, balance) VALUES ($1, 0)")
            .bind("second")
            .execute(&mut *tx)
            .await
            .unwrap_err();
        assert!(is_unique_violation(&err), "{backend:?}: {err}");
        drop(tx);
        let kept: i64 = sqlx::query_scalar("SELECT balance FROM accounts WHERE owner = $1")
            .bind("second")
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert_eq!(
            kept,
            i64::MIN,
            "{backend:?}: the rolled-back update must not show"
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn sqlite_store_is_one_wal_file_with_durable_commits() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.open().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous = FULL");
    assert!(db.dir().unwrap().join("service.sqlite").is_file());
    store.close().await;
}

#[tokio::test]
async fn outbox_events_exist_only_if_their_transaction_commits() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.open().await;

        let mut tx = store.begin().await.unwrap();
        outbox::record(&mut tx, "accounts", event("account/1", 0), 1_000)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            outbox::unpublished(&store, 100).await.unwrap(),
            vec![],
            "{backend:?}"
        );

        let mut recorded = Vec::new();
        for n in 1..=3 {
            let mut tx = store.begin().await.unwrap();
            recorded.push(
                outbox::record(&mut tx, "accounts", event("account/1", n), 2_000 + n)
                    .await
                    .unwrap(),
            );
            recorded.push(
                outbox::record(&mut tx, "accounts", event("account/2", n), 2_000 + n)
                    .await
                    .unwrap(),
            );
            tx.commit().await.unwrap();
        }
        let pending = outbox::unpublished(&store, 100).await.unwrap();
        assert_eq!(
            pending.iter().map(|p| &p.event).collect::<Vec<_>>(),
            recorded.iter().collect::<Vec<_>>()
        );
        assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(
            pending.iter().map(|p| p.aggregate_seq).collect::<Vec<_>>(),
            vec![1, 1, 2, 2, 3, 3]
        );
        let first = &pending[0].event;
        assert_eq!(first.source, "/gureum/accounts");
        assert_eq!(first.subject.as_deref(), Some("account/1"));
        assert_eq!(first.time, "1970-01-01T00:00:00.002001Z");
        assert_eq!(first.data, json!({ "n": 1 }));
        assert_eq!(
            first.trace_parent(),
            Some(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse::<TraceParent>()
                    .unwrap()
            )
        );

        // The rolled-back event's number is not reused or skipped: numbering restarted at 1.
        outbox::mark_published(&store, &[pending[0].seq, pending[1].seq], now_us())
            .await
            .unwrap();
        let rest = outbox::unpublished(&store, 100).await.unwrap();
        assert_eq!(rest, pending[2..].to_vec(), "{backend:?}");
        assert_eq!(
            outbox::unpublished(&store, 2).await.unwrap(),
            pending[2..4].to_vec()
        );

        // Pruning removes published rows only; numbering continues after it.
        assert_eq!(outbox::prune_published(&store, i64::MAX).await.unwrap(), 2);
        let mut tx = store.begin().await.unwrap();
        outbox::record(&mut tx, "accounts", event("account/1", 4), 3_000)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let after = outbox::unpublished(&store, 100).await.unwrap();
        assert_eq!(after.len(), 5);
        assert_eq!(after.last().unwrap().aggregate_seq, 4, "{backend:?}");
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn many_events_recorded_at_once_are_numbered_as_if_recorded_one_by_one() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.open().await;
        let mut tx = store.begin().await.unwrap();
        outbox::record(&mut tx, "accounts", event("account/2", 0), 1_000)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // 250 events (more than one statement's rows): account/1 and account/2 interleaved,
        // then one each for 248 other accounts.
        let mut events = vec![
            event("account/1", 1),
            event("account/2", 1),
            event("account/1", 2),
        ];
        events.extend((3..250).map(|n| event(&format!("account/{n}"), n)));
        let mut tx = store.begin().await.unwrap();
        let recorded = outbox::record_many(&mut tx, "accounts", events.clone(), 2_000)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(outbox::unpublished(&store, 1_000).await.unwrap().len(), 1);

        let mut tx = store.begin().await.unwrap();
        let recorded_again = outbox::record_many(&mut tx, "accounts", events, 2_000)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(recorded.len(), 250);
        let pending = outbox::unpublished(&store, 1_000).await.unwrap();
        assert_eq!(pending.len(), 251, "{backend:?}");
        assert_eq!(
            pending[1..].iter().map(|p| &p.event).collect::<Vec<_>>(),
            recorded_again.iter().collect::<Vec<_>>(),
            "{backend:?}: in the order given"
        );
        let numbers: Vec<(Option<&str>, i64)> = pending
            .iter()
            .take(5)
            .map(|p| (p.event.subject.as_deref(), p.aggregate_seq))
            .collect();
        assert_eq!(
            numbers,
            vec![
                (Some("account/2"), 1),
                (Some("account/1"), 1),
                (Some("account/2"), 2),
                (Some("account/1"), 2),
                (Some("account/3"), 1),
            ],
            "{backend:?}"
        );
        assert!(pending[4..].iter().all(|p| p.aggregate_seq == 1));
        assert_eq!(pending[2].event.data, json!({ "n": 1 }));
        assert_eq!(pending[2].event.time, "1970-01-01T00:00:00.002Z");

        // Numbering goes on from there, one by one as in bulk.
        let mut tx = store.begin().await.unwrap();
        outbox::record(&mut tx, "accounts", event("account/1", 3), 3_000)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let last = outbox::unpublished(&store, 1_000).await.unwrap();
        assert_eq!(last.last().unwrap().aggregate_seq, 3, "{backend:?}");
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn concurrent_writers_of_one_aggregate_get_dense_numbers_in_commit_order() {
    const WRITERS: i64 = 8;
    const EVENTS_EACH: i64 = 10;
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.open().await;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..EVENTS_EACH {
                    let mut tx = store.begin().await.unwrap();
                    outbox::record(
                        &mut tx,
                        "accounts",
                        event("account/hot", w * 100 + n),
                        now_us(),
                    )
                    .await
                    .unwrap();
                    outbox::record(
                        &mut tx,
                        "accounts",
                        event(&format!("account/{w}"), n),
                        now_us(),
                    )
                    .await
                    .unwrap();
                    tx.commit().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all = outbox::unpublished(&store, 10_000).await.unwrap();
        assert_eq!(all.len() as i64, WRITERS * EVENTS_EACH * 2, "{backend:?}");
        let mut per_aggregate: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for p in &all {
            per_aggregate
                .entry(p.event.subject.clone().unwrap())
                .or_default()
                .push(p.aggregate_seq);
        }
        // In `seq` order, every aggregate's numbers are exactly 1, 2, 3, …: no gap, no
        // duplicate, never out of order.
        for (aggregate, seqs) in per_aggregate {
            let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
            assert_eq!(seqs, expected, "{backend:?} {aggregate}");
        }
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_consumer_processes_an_event_id_once() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.open().await;
        let mut tx = store.begin().await.unwrap();
        assert!(
            outbox::mark_processed(&mut tx, "lending", "e1", 1)
                .await
                .unwrap()
        );
        assert!(
            outbox::mark_processed(&mut tx, "campaigns", "e1", 1)
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(
            !outbox::mark_processed(&mut tx, "lending", "e1", 2)
                .await
                .unwrap(),
            "{backend:?}"
        );
        assert!(
            outbox::mark_processed(&mut tx, "lending", "e2", 2)
                .await
                .unwrap()
        );
        tx.rollback().await.unwrap();
        let mut tx = store.begin().await.unwrap();
        assert!(
            outbox::mark_processed(&mut tx, "lending", "e2", 3)
                .await
                .unwrap(),
            "rolled back before"
        );
        tx.commit().await.unwrap();
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_is_dropped() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let one = db.open().await;
        // A second store on the same database stands for a second process (PostgreSQL).
        let other = if backend == Backend::Postgres {
            db.open().await
        } else {
            one.clone()
        };
        let lease = one.try_lease("relay").await.unwrap().expect("free lease");
        assert!(
            other.try_lease("relay").await.unwrap().is_none(),
            "{backend:?}"
        );
        assert!(
            one.try_lease("relay").await.unwrap().is_none(),
            "{backend:?}"
        );
        let unrelated = other.try_lease("compactor").await.unwrap();
        assert!(unrelated.is_some(), "{backend:?}");
        drop(lease);
        let mut taken = None;
        for _ in 0..50 {
            taken = other.try_lease("relay").await.unwrap();
            if taken.is_some() {
                break;
            }
            // A PostgreSQL lease ends when its session closes, which happens in the background.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            taken.is_some(),
            "{backend:?}: the lease must be free after drop"
        );
        drop((taken, unrelated));
        one.close().await;
        other.close().await;
        db.cleanup().await;
    }
}

async fn objects_contract(objects: &Objects, label: &str) {
    assert_eq!(
        objects.get("contracts/1.pdf").await.unwrap(),
        None,
        "{label}"
    );
    objects
        .put("contracts/1.pdf", Bytes::from_static(b"%PDF-1 one"))
        .await
        .unwrap();
    objects
        .put("contracts/2.pdf", Bytes::from_static(b"%PDF-1 two"))
        .await
        .unwrap();
    objects
        .put("snapshots/ledger/0001.gs", Bytes::from(vec![7u8; 300_000]))
        .await
        .unwrap();
    assert_eq!(
        objects.get("contracts/1.pdf").await.unwrap().unwrap(),
        Bytes::from_static(b"%PDF-1 one")
    );
    objects
        .put("contracts/1.pdf", Bytes::from_static(b"%PDF-1 replaced"))
        .await
        .unwrap();
    assert_eq!(
        objects.get("contracts/1.pdf").await.unwrap().unwrap(),
        Bytes::from_static(b"%PDF-1 replaced")
    );
    assert_eq!(
        objects
            .get("snapshots/ledger/0001.gs")
            .await
            .unwrap()
            .unwrap()
            .len(),
        300_000
    );
    assert_eq!(
        objects.list("contracts").await.unwrap(),
        vec!["contracts/1.pdf", "contracts/2.pdf"],
        "{label}"
    );
    assert_eq!(
        objects.list("").await.unwrap(),
        vec![
            "contracts/1.pdf",
            "contracts/2.pdf",
            "snapshots/ledger/0001.gs"
        ],
        "{label}"
    );
    objects.delete("contracts/1.pdf").await.unwrap();
    objects.delete("contracts/1.pdf").await.unwrap();
    assert_eq!(objects.get("contracts/1.pdf").await.unwrap(), None);
    for bad in ["", "/abs", "a//b", "../etc/passwd", "a/./b", "trailing/"] {
        assert!(
            matches!(
                objects.put(bad, Bytes::new()).await,
                Err(StoreError::Config(_))
            ),
            "{label}: {bad:?}"
        );
    }
}

#[tokio::test]
async fn object_storage_behaves_the_same_on_a_folder_and_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let local = Objects::open(&ObjectsConfig::Local {
        root: dir.path().join("objects"),
    })
    .unwrap();
    objects_contract(&local, "local").await;
    assert!(dir.path().join("objects/contracts/2.pdf").is_file());

    let s3 = S3Server::start("gureum").await;
    objects_contract(&s3.objects("gureum", "contracts-service"), "s3").await;
    // Two services under different prefixes of one bucket do not see each other's objects.
    let other = s3.objects("gureum", "documents-service");
    assert_eq!(other.list("").await.unwrap(), Vec::<String>::new());
    other
        .put("contracts/2.pdf", Bytes::from_static(b"other"))
        .await
        .unwrap();
    assert_eq!(
        s3.objects("gureum", "contracts-service")
            .get("contracts/2.pdf")
            .await
            .unwrap()
            .unwrap(),
        Bytes::from_static(b"%PDF-1 two")
    );
    // The secret never shows in a debug print of the configuration.
    let printed = format!("{:?}", s3.config("gureum", ""));
    assert!(
        !printed.contains(store::testing::S3_ACCESS_KEY.1),
        "{printed}"
    );
}

#[tokio::test]
async fn each_service_gets_a_role_that_reaches_only_its_own_schema() {
    let admin = store::testing::postgres_url();
    // Fail loudly if PostgreSQL is down, as every contract test does.
    drop(TestDb::new(Backend::Postgres).await);
    let (a, b) = (
        store::testing::unique_name("t_pa"),
        store::testing::unique_name("t_pb"),
    );
    let password = "test-password-0123456789";
    let config_a = store::sql::provision_postgres(&admin, &a, password)
        .await
        .unwrap();
    let config_b = store::sql::provision_postgres(&admin, &b, password)
        .await
        .unwrap();
    // Provisioning again (a redeploy) is harmless.
    assert_eq!(
        store::sql::provision_postgres(&admin, &a, password)
            .await
            .unwrap(),
        config_a
    );
    let store_a = store::Store::open(&config_a).await.unwrap();
    store_a.migrate(&ACCOUNTS_V1).await.unwrap();
    sqlx::query("INSERT INTO accounts (owner, balance) VALUES ($1, 1)")
        .bind("x")
        .execute(store_a.reader())
        .await
        .unwrap();
    let store_b = store::Store::open(&config_b).await.unwrap();
    let trespass = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT owner FROM {a}.accounts"
    )))
    .execute(store_b.reader())
    .await;
    match &trespass {
        Err(sqlx::Error::Database(e)) => assert_eq!(e.code().as_deref(), Some("42501"), "{e}"),
        other => panic!(
            "service b read service a's table: {:?}",
            other.as_ref().map(|r| r.rows_affected())
        ),
    }
    let bad = store::sql::provision_postgres(&admin, &a, "short'; DROP")
        .await
        .unwrap_err();
    assert!(matches!(bad, StoreError::Config(_)));
    store_a.close().await;
    store_b.close().await;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .unwrap();
    for service in [&a, &b] {
        let drop = format!("DROP SCHEMA {service} CASCADE; DROP ROLE gureum_{service}");
        sqlx::Executor::execute(&mut conn, sqlx::raw_sql(sqlx::AssertSqlSafe(drop)))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_openers_of_one_sqlite_file_migrate_it_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..10 {
        let config = store::SqlConfig::Sqlite {
            path: dir.path().join(format!("shared-{round}.sqlite")),
        };
        let openers = (0..4).map(|_| {
            let config = config.clone();
            tokio::spawn(async move {
                let store = store::Store::open(&config).await?;
                store.migrate(&ACCOUNTS_V2).await?;
                store.close().await;
                Ok::<(), StoreError>(())
            })
        });
        for opened in futures::future::join_all(openers).await {
            opened.unwrap().unwrap();
        }
    }
}

#[tokio::test]
async fn relaxed_stores_sync_later_and_the_others_at_every_commit() {
    use store::{Durability, SqlConfig, Store};
    let dir = tempfile::tempdir().unwrap();
    let config = SqlConfig::Sqlite {
        path: dir.path().join("s.sqlite"),
    };
    for (durability, expected) in [(Durability::Commit, 2i64), (Durability::Relaxed, 1)] {
        let store = Store::open_with(&config, durability).await.unwrap();
        // 2 = FULL (synced at every commit), 1 = NORMAL (synced at checkpoints).
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(store.writer())
            .await
            .unwrap();
        assert_eq!(level, expected, "{durability:?}");
        store.close().await;
    }
    let db = store::testing::TestDb::new(store::Backend::Postgres).await;
    for (durability, expected) in [(Durability::Commit, "on"), (Durability::Relaxed, "off")] {
        let store = Store::open_with(&db.config, durability).await.unwrap();
        let level: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(store.writer())
            .await
            .unwrap();
        assert_eq!(level, expected, "{durability:?}");
        store.close().await;
    }
    db.cleanup().await;
}
