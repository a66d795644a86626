//! Credit evaluations on both storage backends (PostgreSQL must be reachable: these tests fail,
//! they do not skip): evaluated by the scorecard, stored only sealed, read back, replayed
//! identically under their model version, with events that carry no credit information.

use customers::Customers;
use customers::model::Submitted;
use customers::vault::{FileKeyring, Vault};
use kernel::http::Caller;
use lending::Lending;
use lending::credit::{DEFAULT_MODEL, Inputs, Model, Requested};
use lending::service::LendingError;
use peers::Peers;
use products::Products;
use products::model::RepaymentMethod;
use sqlx::Row;
use std::sync::Arc;
use store::SqlConfig;
use store::testing::{BACKENDS, TestDb};

fn vault(path: &std::path::Path) -> Vault {
    Vault::from_keyring(FileKeyring::open_or_create(path, "2026-11-27T00:00:00Z").unwrap())
}

fn applicant() -> Inputs {
    Inputs {
        annual_income: 60_000_000,
        existing_debt: 20_000_000,
        existing_annual_debt_service: 12_000_000,
        delinquencies_12m: 0,
        employment_months: 48,
        internal_months: 30,
        bureau_score: Some(920),
    }
}

fn loan() -> Requested {
    Requested {
        principal: 10_000_000,
        annual_rate: "0.055".parse().unwrap(),
        term_months: 12,
        method: RepaymentMethod::EqualPayment,
        grace_months: 0,
        start_date: time::macros::date!(2026 - 01 - 15),
    }
}

#[tokio::test]
async fn evaluations_are_sealed_at_rest_and_replay_identically() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let dbs = [
            TestDb::new(backend).await,
            TestDb::new(backend).await,
            TestDb::new(backend).await,
        ];
        let customers = Arc::new(
            Customers::open(
                dbs[0].open().await,
                vault(&dir.path().join("customers.toml")),
            )
            .await
            .unwrap(),
        );
        let products = Arc::new(Products::open(dbs[1].open().await).await.unwrap());
        let customer = customers
            .create(
                &Caller::new("teller", &[]),
                Submitted {
                    name: "김하늘".into(),
                    rrn: Some("900101-1234568".into()),
                    ..Submitted::default()
                },
                None,
            )
            .await
            .unwrap()
            .id;
        let peers = Peers::Local {
            customers,
            products,
        };
        let lending = Lending::open(
            dbs[2].open().await,
            vault(&dir.path().join("lending.toml")),
            peers.clone(),
            Model::parse(DEFAULT_MODEL).unwrap(),
        )
        .await
        .unwrap();
        let officer = Caller::new("officer", &["credit:evaluate", "credit:read"]);

        assert!(matches!(
            lending
                .evaluate(&Caller::new("x", &[]), &customer, applicant(), loan(), None)
                .await,
            Err(LendingError::Forbidden("credit:evaluate"))
        ));
        assert!(matches!(
            lending
                .evaluate(
                    &officer,
                    "0190f1c2-0000-7000-8000-000000000000",
                    applicant(),
                    loan(),
                    None
                )
                .await,
            Err(LendingError::CustomerNotFound)
        ));
        let stored = lending
            .evaluate(&officer, &customer, applicant(), loan(), None)
            .await
            .unwrap();
        assert_eq!(
            (
                stored.evaluation.score,
                stored.evaluation.grade,
                stored.evaluation.model_version.as_str()
            ),
            (950, 1, "2026-11-v1")
        );
        let read = lending.get(&officer, &stored.id).await.unwrap();
        assert_eq!(read, stored);
        assert!(matches!(
            lending
                .get(&Caller::new("x", &["credit:evaluate"]), &stored.id)
                .await,
            Err(LendingError::Forbidden("credit:read"))
        ));
        let (again, replayed) = lending.replay(&officer, &stored.id).await.unwrap();
        assert_eq!(again.evaluation, replayed);

        // At rest: ids and the model version in the clear, everything else sealed.
        let store = lending.store();
        let rows = sqlx::query("SELECT customer_id, model_version, sealed FROM evaluations")
            .fetch_all(store.reader())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let sealed: Vec<u8> = rows[0].get("sealed");
        for plain in ["annual_income", "60000000", "score", "950", "R06"] {
            assert!(
                !sealed.windows(plain.len()).any(|w| w == plain.as_bytes()),
                "{plain} in the sealed column"
            );
        }
        if let SqlConfig::Sqlite { path } = &dbs[2].config {
            let mut bytes = std::fs::read(path).unwrap();
            bytes.extend(std::fs::read(path.with_extension("sqlite-wal")).unwrap_or_default());
            // The applicant's figures (the model's own bins are in the clear, and are not theirs).
            for plain in [&b"60000000"[..], b"12000000", b"\"score\""] {
                assert!(!bytes.windows(plain.len()).any(|w| w == plain));
            }
        }
        let events: Vec<String> = sqlx::query("SELECT envelope FROM outbox")
            .fetch_all(store.reader())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("envelope"))
            .collect();
        assert_eq!(events.len(), 1);
        assert!(events[0].contains("lending.evaluation.completed"));
        for secret in ["score", "grade", "60000000", "\"pd\""] {
            assert!(!events[0].contains(secret), "{secret} in the event");
        }

        // A model version is immutable: other content under the same version is refused.
        let mut changed = Model::parse(DEFAULT_MODEL).unwrap();
        changed.base_points += 1;
        assert!(matches!(
            Lending::open(
                dbs[2].open().await,
                vault(&dir.path().join("lending.toml")),
                peers,
                changed
            )
            .await,
            Err(LendingError::ModelVersionReused(_))
        ));
        for db in dbs {
            db.cleanup().await;
        }
    }
}
