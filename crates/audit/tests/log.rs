//! The audit log on both backends: appended in batches as one chain (also by two appenders at
//! once), read by filter a page at a time, and every tampering found by `verify`.

use audit::log::{AuditLog, Filter};
use audit::{Kind, Record};
use store::Backend;
use store::testing::TestDb;

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

fn record(n: i64, principal: &str, outcome: u16) -> Record {
    Record {
        at_us: 1_764_000_000_000_000 + n,
        kind: if outcome == 200 && n % 5 == 0 {
            Kind::RegulatedRead
        } else {
            Kind::Request
        },
        principal: principal.to_owned(),
        claimed: None,
        roles: vec!["teller".to_owned()],
        action: "GET /v1/customers/{id}".to_owned(),
        resource: format!("/v1/customers/{n}"),
        outcome,
        client: "203.0.113.7".to_owned(),
        user_agent: Some("bank-app/4.2".to_owned()),
        trace_id: None,
        incident: None,
    }
}

#[tokio::test]
async fn batches_make_one_chain_that_pages_filter_and_verify() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let log = AuditLog::open(db.open().await).await.unwrap();
        let first: Vec<Record> = (1..=150).map(|n| record(n, "key:a", 200)).collect();
        assert_eq!(log.append(&first).await.unwrap(), 150);
        let second: Vec<Record> = (151..=200).map(|n| record(n, "key:b", 403)).collect();
        assert_eq!(log.append(&second).await.unwrap(), 200);
        let verified = log.verify().await.unwrap().unwrap();
        assert_eq!(verified.entries, 200, "{backend:?}");

        let page = |filter: Filter| {
            let log = log.clone();
            async move { log.page(&filter).await.unwrap() }
        };
        let (entries, next) = page(Filter {
            principal: Some("key:b".into()),
            limit: 30,
            ..Filter::default()
        })
        .await;
        assert_eq!((entries.len(), entries[0].seq, next), (30, 151, Some(180)));
        assert_eq!(entries[0].record, second[0]);
        assert_eq!(entries[1].prev_hash, entries[0].hash);
        let (rest, next) = page(Filter {
            principal: Some("key:b".into()),
            after: Some(180),
            limit: 30,
            ..Filter::default()
        })
        .await;
        assert_eq!((rest.len(), next), (20, None));
        let (regulated, _) = page(Filter {
            kind: Some("regulated_read".into()),
            limit: 1000,
            ..Filter::default()
        })
        .await;
        assert_eq!(regulated.len(), 30, "every fifth of the first 150");
        let (window, _) = page(Filter {
            outcome: Some(403),
            from_us: Some(1_764_000_000_000_000 + 190),
            to_us: Some(1_764_000_000_000_000 + 195),
            limit: 1000,
            ..Filter::default()
        })
        .await;
        assert_eq!(
            window.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![190, 191, 192, 193, 194]
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn two_appenders_at_once_still_make_one_unbroken_chain() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let a = AuditLog::open(db.open().await).await.unwrap();
        let b = AuditLog::open(db.open().await).await.unwrap();
        let run = |log: AuditLog, who: &'static str| {
            tokio::spawn(async move {
                for round in 0..20 {
                    let batch: Vec<Record> =
                        (0..10).map(|n| record(round * 10 + n, who, 200)).collect();
                    log.append(&batch).await.unwrap();
                }
            })
        };
        let (x, y) = (run(a.clone(), "key:a"), run(b, "key:b"));
        x.await.unwrap();
        y.await.unwrap();
        assert_eq!(
            a.verify().await.unwrap().unwrap().entries,
            400,
            "{backend:?}"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn verify_finds_an_edit_a_deletion_and_a_reordering_in_the_database() {
    for backend in BACKENDS {
        for tamper in [
            &["UPDATE audit_events SET outcome = 200 WHERE seq = 7"][..],
            &[
                "UPDATE audit_events SET body = replace(body, '\"outcome\":403', '\"outcome\":200') WHERE seq = 7",
            ],
            &["DELETE FROM audit_events WHERE seq = 7"],
            &[
                "UPDATE audit_events SET seq = -1 WHERE seq = 7",
                "UPDATE audit_events SET seq = 7 WHERE seq = 8",
                "UPDATE audit_events SET seq = 8 WHERE seq = -1",
            ],
        ] {
            let db = TestDb::new(backend).await;
            let store = db.open().await;
            let log = AuditLog::open(store.clone()).await.unwrap();
            let records: Vec<Record> = (1..=12).map(|n| record(n, "key:a", 403)).collect();
            log.append(&records).await.unwrap();
            assert!(log.verify().await.unwrap().is_ok());
            let mut tx = store.begin().await.unwrap();
            for statement in tamper {
                sqlx::query(sqlx::AssertSqlSafe(*statement))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
            let broken = log.verify().await.unwrap().unwrap_err();
            assert_eq!(broken.seq, 7, "{backend:?} {tamper:?}: {broken}");
            db.cleanup().await;
        }
    }
}

#[tokio::test]
async fn a_watch_from_the_head_checks_what_is_appended_and_sees_the_end_cut_off() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.open().await;
        let log = AuditLog::open(store.clone()).await.unwrap();
        assert_eq!(log.head().await.unwrap(), None);
        let records: Vec<Record> = (1..=12).map(|n| record(n, "key:a", 403)).collect();
        log.append(&records[..6]).await.unwrap();
        // The watch starts at the head (entry 6): what came before is taken as checked.
        let (seq, hash) = log.head().await.unwrap().unwrap();
        assert_eq!(seq, 6);
        let mut watch = audit::Verifier::after(seq, hash);
        assert_eq!(log.verify_more(&mut watch).await.unwrap(), Ok(()));
        log.append(&records[6..10]).await.unwrap();
        assert_eq!(log.verify_more(&mut watch).await.unwrap(), Ok(()));
        assert_eq!(watch.last_seq(), 10);
        // The end cut off (entries 9 and 10 deleted): the watch knew of 10.
        let mut tx = store.begin().await.unwrap();
        sqlx::query("DELETE FROM audit_events WHERE seq >= 9")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let broken = log.verify_more(&mut watch).await.unwrap().unwrap_err();
        assert_eq!(broken.seq, 9, "{backend:?}: {broken}");
        // A new watch on an edited new entry.
        let (seq, hash) = log.head().await.unwrap().unwrap();
        let mut watch = audit::Verifier::after(seq, hash);
        log.append(&records[10..]).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        sqlx::query("UPDATE audit_events SET outcome = 200 WHERE seq = 10")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let broken = log.verify_more(&mut watch).await.unwrap().unwrap_err();
        assert_eq!(broken.seq, 10, "{backend:?}: {broken}");
        db.cleanup().await;
    }
}
