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
use store::testing::{BACKENDS, TestDb};
use store::{Backend, SqlConfig};

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

/// A lending service on fresh databases, with the customers service and a published loan
/// product beside it, and one customer.
struct World {
    lending: Lending,
    peers: Peers,
    customer: String,
    dbs: [TestDb; 3],
    dir: tempfile::TempDir,
}

async fn world(backend: Backend) -> World {
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
    let manager = Caller::new("product-team", &["products:manage"]);
    products
        .create(
            &manager,
            products::service::NewProduct {
                code: "LOAN-CREDIT".into(),
                kind: products::model::Kind::PersonalCreditLoan,
                name: "구름 신용대출".into(),
                effective_from: store::sql::today_kst(),
                terms: serde_json::from_value(serde_json::json!({
                    "currency": "KRW",
                    "rates": {"base": "0.035", "spread": "0.04", "tiers": [{"grade": 1, "spread": "0.015"}]},
                    "amount": {"min": "1000000", "max": "50000000"},
                    "term_months": {"min": 6, "max": 60},
                    "repayment_methods": ["equal_payment", "equal_principal"],
                    "eligibility": {"min_age": 19, "kyc_verified": true, "grades": [1, 2, 3, 4, 5, 6, 7]}
                }))
                .unwrap(),
            },
            None,
        )
        .await
        .unwrap();
    products
        .publish(&manager, "LOAN-CREDIT", 1, None)
        .await
        .unwrap();
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
    World {
        lending,
        peers,
        customer,
        dbs,
        dir,
    }
}

#[tokio::test]
async fn evaluations_are_sealed_at_rest_and_replay_identically() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let (lending, customer, dir, dbs) = (&w.lending, &w.customer, &w.dir, &w.dbs);
        let officer = Caller::new("officer", &["credit:evaluate", "credit:read"]);

        assert!(matches!(
            lending
                .evaluate(&Caller::new("x", &[]), customer, applicant(), loan(), None)
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
            .evaluate(&officer, customer, applicant(), loan(), None)
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
                w.peers.clone(),
                changed
            )
            .await,
            Err(LendingError::ModelVersionReused(_))
        ));
        let World { dbs, .. } = w;
        for db in dbs {
            db.cleanup().await;
        }
    }
}

#[tokio::test]
async fn applications_are_decided_and_referrals_wait_for_a_loan_officer() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let (lending, customer) = (&w.lending, &w.customer);
        let officer = Caller::new(
            "officer-7",
            &["credit:evaluate", "credit:read", "credit:decide"],
        );
        let light = Inputs {
            existing_annual_debt_service: 6_000_000,
            ..applicant()
        };

        // Approved at the grade-1 rate.
        let approved = lending
            .apply(
                &officer,
                customer,
                "LOAN-CREDIT",
                light.clone(),
                loan(),
                None,
            )
            .await
            .unwrap();
        assert_eq!(approved.status, "approved");
        assert_eq!(
            approved.decision,
            lending::decision::Decision::Approve {
                limit: 10_000_000,
                annual_rate: "0.050".parse().unwrap()
            }
        );
        // Near the DSR cap: referred, in the queue, then approved by a loan officer.
        let referred = lending
            .apply(&officer, customer, "LOAN-CREDIT", applicant(), loan(), None)
            .await
            .unwrap();
        assert_eq!(referred.status, "referred");
        let queue = lending
            .applications(&officer, "referred", 50)
            .await
            .unwrap();
        assert_eq!(
            queue.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            [referred.id.as_str()]
        );
        assert!(matches!(
            lending
                .decide_referred(
                    &Caller::new("teller", &["credit:read"]),
                    &referred.id,
                    true,
                    "ok",
                    None
                )
                .await,
            Err(LendingError::Forbidden("credit:decide"))
        ));
        let decided = lending
            .decide_referred(
                &officer,
                &referred.id,
                true,
                "stable salary, verified",
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            (decided.status.as_str(), decided.decided_by.as_deref()),
            ("approved", Some("officer-7"))
        );
        assert_eq!(
            lending.application(&officer, &referred.id).await.unwrap(),
            decided
        );
        assert!(matches!(
            lending
                .decide_referred(&officer, &referred.id, false, "again", None)
                .await,
            Err(LendingError::NotReferred(_))
        ));
        // Outside the product: declined with every reason.
        let mut too_much = loan();
        too_much.principal = 90_000_000;
        let declined = lending
            .apply(&officer, customer, "LOAN-CREDIT", light, too_much, None)
            .await
            .unwrap();
        assert_eq!(declined.status, "declined");
        assert!(matches!(
            declined.decision,
            lending::decision::Decision::Decline { ref reasons } if reasons.contains(&"D04".to_owned())
        ));
        // Sealed at rest: the officer's reason and the terms are not in the table.
        let sealed: Vec<Vec<u8>> = sqlx::query("SELECT sealed FROM applications")
            .fetch_all(lending.store().reader())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("sealed"))
            .collect();
        assert_eq!(sealed.len(), 3);
        for blob in &sealed {
            for plain in [&b"stable salary"[..], b"10000000", b"approve"] {
                assert!(!blob.windows(plain.len()).any(|w| w == plain));
            }
        }
        let World { dbs, .. } = w;
        for db in dbs {
            db.cleanup().await;
        }
    }
}
