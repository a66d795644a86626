//! Contracts on both storage backends (SQLite with a local folder; PostgreSQL with an S3
//! server — PostgreSQL must be reachable: these tests fail, they do not skip): a document
//! generated from the exact product version, stored with its SHA-256, signed against that
//! hash, looked up, and refused once altered.

use contracts::Contracts;
use contracts::service::{ContractError, Filter, NewContract, NewSignature, Particulars};
use customers::Customers;
use customers::model::Submitted;
use customers::vault::{FileKeyring, Vault};
use kernel::http::Caller;
use peers::Peers;
use products::Products;
use products::model::Kind;
use products::service::NewProduct;
use sha2::Digest;
use sqlx::Row;
use std::sync::Arc;
use store::Backend;
use store::sql::today_kst;
use store::testing::{BACKENDS, S3Server, TestDb};

struct World {
    contracts: Contracts,
    customer: String,
    dbs: Vec<TestDb>,
    objects_dir: tempfile::TempDir,
    _s3: Option<S3Server>,
}

async fn world(backend: Backend) -> World {
    let dir = tempfile::tempdir().unwrap();
    let dbs = vec![
        TestDb::new(backend).await,
        TestDb::new(backend).await,
        TestDb::new(backend).await,
    ];
    let vault = Vault::from_keyring(
        FileKeyring::open_or_create(&dir.path().join("vault.toml"), "2026-11-27T00:00:00Z")
            .unwrap(),
    );
    let customers = Arc::new(Customers::open(dbs[0].open().await, vault).await.unwrap());
    let products = Arc::new(Products::open(dbs[1].open().await).await.unwrap());
    let manager = Caller::new("product-team", &["products:manage"]);
    let terms = serde_json::from_value(serde_json::json!({
        "currency": "KRW",
        "rates": {"base": "0.03", "spread": "0.002", "tiers": [{"min_term_months": 24, "spread": "0.005"}]},
        "fees": [{"code": "early_termination", "rate": "0.5"}],
        "amount": {"min": "1000000", "max": "1000000000"},
        "term_months": {"min": 6, "max": 36},
        "eligibility": {"min_age": 19, "kyc_verified": false}
    }))
    .unwrap();
    products
        .create(
            &manager,
            NewProduct {
                code: "DEP-TERM".into(),
                kind: Kind::TermDeposit,
                name: "구름 정기예금".into(),
                effective_from: today_kst(),
                terms,
            },
            None,
        )
        .await
        .unwrap();
    products
        .publish(&manager, "DEP-TERM", 1, None)
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
    let (objects, s3) = match backend {
        Backend::Sqlite => (
            store::Objects::open(&store::ObjectsConfig::Local {
                root: dir.path().join("objects"),
            })
            .unwrap(),
            None,
        ),
        Backend::Postgres => {
            let s3 = S3Server::start("contracts").await;
            (s3.objects("contracts", "t"), Some(s3))
        }
    };
    let contracts = Contracts::open(
        dbs[2].open().await,
        objects,
        Peers::Local {
            customers,
            products,
        },
    )
    .await
    .unwrap();
    World {
        contracts,
        customer,
        dbs,
        objects_dir: dir,
        _s3: s3,
    }
}

fn term(months: u32, amount: &str) -> Particulars {
    Particulars {
        amount: Some(amount.into()),
        term_months: Some(months),
        grade: None,
    }
}

fn signature(role: &str, hash: &str) -> NewSignature {
    NewSignature {
        role: role.into(),
        signer: "signer-1".into(),
        method: "app".into(),
        document_sha256: hash.into(),
        client_address: "203.0.113.7".into(),
        user_agent: "GureumApp/1.0".into(),
    }
}

#[tokio::test]
async fn a_contract_is_issued_signed_against_its_hash_and_refused_once_altered() {
    for backend in BACKENDS {
        let w = world(backend).await;
        let c = &w.contracts;
        let issued = c
            .issue(
                NewContract {
                    customer_id: w.customer.clone(),
                    product_code: "DEP-TERM".into(),
                    product_version: None,
                    subject: Some("deposit-account-1".into()),
                    particulars: term(24, "5000000"),
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            (issued.status.as_str(), issued.product_version),
            ("issued", 1)
        );
        assert_eq!(
            issued.particulars["annual_rate"], "0.035",
            "the 24-month tier"
        );
        let (_, pdf) = c.document(&issued.id).await.unwrap();
        assert_eq!(
            kernel::hex(&sha2::Sha256::digest(&pdf)),
            issued.document_sha256
        );
        assert_eq!(pdf.len() as i64, issued.document_bytes);
        assert!(pdf.starts_with(b"%PDF-"));
        // The document names the customer as masked, never the full registration number.
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains(&contracts::document::encoded(
            "고객 Customer: 김하늘 (900101-1******)"
        )));
        let digits = contracts::document::encoded("1234568");
        assert!(!text.contains(&digits[1..digits.len() - 1]) && !text.contains("1234568"));

        // A signature must name the stored document's hash.
        let wrong = "0".repeat(64);
        assert!(matches!(
            c.sign(&issued.id, signature("customer", &wrong), None)
                .await,
            Err(ContractError::HashMismatch { .. })
        ));
        let signed = c
            .sign(
                &issued.id,
                signature("customer", &issued.document_sha256),
                None,
            )
            .await
            .unwrap();
        assert_eq!(signed.status, "signed");
        assert_eq!(signed.signatures.len(), 1);
        let s = &signed.signatures[0];
        assert_eq!(
            (
                s.role.as_str(),
                s.client_address.as_str(),
                s.user_agent.as_str(),
                s.document_sha256.as_str()
            ),
            (
                "customer",
                "203.0.113.7",
                "GureumApp/1.0",
                issued.document_sha256.as_str()
            )
        );
        let again = c
            .sign(
                &issued.id,
                signature("customer", &issued.document_sha256),
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            again.signatures.len(),
            1,
            "a repeated signature records nothing new"
        );
        let countersigned = c
            .sign(&issued.id, signature("bank", &issued.document_sha256), None)
            .await
            .unwrap();
        assert_eq!(countersigned.signatures.len(), 2);
        assert!(matches!(
            c.cancel(&issued.id, None).await,
            Err(ContractError::WrongStatus(_))
        ));

        // Lookups by customer, product, status and date.
        let second = c
            .issue(
                NewContract {
                    customer_id: w.customer.clone(),
                    product_code: "DEP-TERM".into(),
                    product_version: Some(1),
                    subject: None,
                    particulars: term(12, "1000000"),
                },
                None,
            )
            .await
            .unwrap();
        c.cancel(&second.id, None).await.unwrap();
        let ids = |records: Vec<contracts::service::Record>| {
            records.into_iter().map(|r| r.id).collect::<Vec<_>>()
        };
        let by = |f: Filter| async move { ids(c.list(&Filter { limit: 50, ..f }).await.unwrap()) };
        assert_eq!(
            by(Filter {
                customer_id: Some(w.customer.clone()),
                ..Filter::default()
            })
            .await,
            [issued.id.clone(), second.id.clone()]
        );
        assert_eq!(
            by(Filter {
                status: Some("signed".into()),
                ..Filter::default()
            })
            .await,
            vec![issued.id.clone()]
        );
        assert_eq!(
            by(Filter {
                status: Some("cancelled".into()),
                ..Filter::default()
            })
            .await,
            vec![second.id.clone()]
        );
        assert_eq!(
            by(Filter {
                product_code: Some("OTHER".into()),
                ..Filter::default()
            })
            .await,
            Vec::<String>::new()
        );
        let today = today_kst();
        assert_eq!(
            by(Filter {
                from: Some(today),
                to: Some(today),
                ..Filter::default()
            })
            .await
            .len(),
            2
        );
        assert!(
            by(Filter {
                to: Some(today.previous_day().unwrap()),
                ..Filter::default()
            })
            .await
            .is_empty()
        );

        // Rules against the product's terms.
        let refused = |p: Particulars| NewContract {
            customer_id: w.customer.clone(),
            product_code: "DEP-TERM".into(),
            product_version: None,
            subject: None,
            particulars: p,
        };
        for (p, code) in [
            (term(48, "5000000"), "invalid_term"),
            (term(12, "999"), "amount_out_of_range"),
            (term(12, "1.5"), "invalid_amount"),
        ] {
            match c.issue(refused(p), None).await {
                Err(ContractError::Invalid(got, _)) => assert_eq!(got, code),
                other => panic!("expected {code}, got {:?}", other.map(|r| r.id)),
            }
        }

        // Alter the stored file: the download is refused, and so is a new signature.
        let key: String = sqlx::query("SELECT document_key FROM contracts WHERE id = $1")
            .bind(&issued.id)
            .fetch_one(c.store().reader())
            .await
            .unwrap()
            .get(0);
        let mut altered = pdf.to_vec();
        let at = altered.len() / 2;
        altered[at] ^= 0x01;
        c.objects().put(&key, altered.into()).await.unwrap();
        assert!(matches!(
            c.document(&issued.id).await,
            Err(ContractError::DocumentTampered)
        ));
        let third = c
            .sign(
                &issued.id,
                NewSignature {
                    signer: "officer-2".into(),
                    ..signature("bank", &issued.document_sha256)
                },
                None,
            )
            .await;
        assert!(matches!(third, Err(ContractError::DocumentTampered)));
        c.objects().delete(&key).await.unwrap();
        assert!(matches!(
            c.document(&issued.id).await,
            Err(ContractError::DocumentMissing)
        ));

        // Events carry ids and hashes, nothing personal.
        let events: Vec<String> = sqlx::query("SELECT envelope FROM outbox ORDER BY seq")
            .fetch_all(c.store().reader())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("envelope"))
            .collect();
        let types: Vec<&str> = events
            .iter()
            .map(|e| {
                if e.contains("contracts.contract.issued") {
                    "issued"
                } else if e.contains("contracts.contract.signed") {
                    "signed"
                } else if e.contains("countersigned") {
                    "countersigned"
                } else {
                    "cancelled"
                }
            })
            .collect();
        assert_eq!(
            types,
            ["issued", "signed", "countersigned", "issued", "cancelled"]
        );
        assert!(
            events.iter().all(|e| !e.contains("김하늘")
                && !e.contains("900101")
                && !e.contains("203.0.113.7"))
        );
        let _ = &w.objects_dir;
        for db in w.dbs {
            db.cleanup().await;
        }
    }
}
