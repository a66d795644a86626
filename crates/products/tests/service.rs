//! The catalogue on both storage backends (PostgreSQL must be reachable): creating products,
//! drafting, publishing and retiring versions, the version in force on a day, immutability of
//! published terms, permissions, and the events each step records.

use kernel::http::Caller;
use products::model::{Kind, Status, Terms};
use products::service::{NewProduct, ProductError, Products};
use sqlx::Row;
use store::sql::today_kst;
use store::testing::{BACKENDS, TestDb};
use time::Duration;

fn new(code: &str, kind: Kind, name: &str, effective_from: time::Date, terms: Terms) -> NewProduct {
    NewProduct {
        code: code.into(),
        kind,
        name: name.into(),
        effective_from,
        terms,
    }
}

fn manager() -> Caller {
    Caller::new("product-team", &["products:manage"])
}

fn deposit_terms(spread: &str) -> Terms {
    serde_json::from_value(serde_json::json!({
        "currency": "KRW",
        "rates": {"base": "0.025", "spread": spread, "tiers": [{"min_term_months": 24, "spread": "0.012"}]},
        "fees": [{"code": "early_termination", "rate": "0.5"}],
        "amount": {"min": "1000000", "max": "1000000000"},
        "term_months": {"min": 6, "max": 36},
        "eligibility": {"min_age": 17, "kyc_verified": true}
    }))
    .unwrap()
}

#[tokio::test]
async fn a_product_moves_from_draft_to_published_to_a_new_version_and_keeps_every_version() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let products = Products::open(db.open().await).await.unwrap();
        let today = today_kst();
        let v1 = products
            .create(
                &manager(),
                new(
                    "DEP-TERM-12",
                    Kind::TermDeposit,
                    "구름 정기예금",
                    today,
                    deposit_terms("0.008"),
                ),
                None,
            )
            .await
            .unwrap();
        assert_eq!((v1.version, v1.status), (1, Status::Draft));
        assert!(matches!(
            products.in_force("DEP-TERM-12", today).await,
            Err(ProductError::NotInForce)
        ));

        // Drafts change; published versions never do.
        products
            .edit_draft(&manager(), "DEP-TERM-12", 1, today, deposit_terms("0.009"))
            .await
            .unwrap();
        let published = products
            .publish(&manager(), "DEP-TERM-12", 1, None)
            .await
            .unwrap();
        assert_eq!(published.status, Status::Published);
        assert_eq!(published.terms, deposit_terms("0.009"));
        assert!(matches!(
            products
                .edit_draft(&manager(), "DEP-TERM-12", 1, today, deposit_terms("0.02"))
                .await,
            Err(ProductError::Lifecycle(_))
        ));
        assert_eq!(
            products
                .in_force("DEP-TERM-12", today)
                .await
                .unwrap()
                .version,
            1
        );

        // Version 2 takes effect next month; one draft at a time; never backdated.
        let next_month = today + Duration::days(31);
        products
            .add_version(
                &manager(),
                "DEP-TERM-12",
                next_month,
                deposit_terms("0.011"),
                None,
            )
            .await
            .unwrap();
        assert!(matches!(
            products
                .add_version(
                    &manager(),
                    "DEP-TERM-12",
                    next_month,
                    deposit_terms("0.011"),
                    None
                )
                .await,
            Err(ProductError::Lifecycle(_))
        ));
        products
            .publish(&manager(), "DEP-TERM-12", 2, None)
            .await
            .unwrap();
        assert_eq!(
            products
                .in_force("DEP-TERM-12", today)
                .await
                .unwrap()
                .version,
            1
        );
        let later = products.in_force("DEP-TERM-12", next_month).await.unwrap();
        assert_eq!(
            (later.version, later.terms.rates.spread.to_string()),
            (2, "0.011".to_owned())
        );
        products
            .add_version(
                &manager(),
                "DEP-TERM-12",
                today - Duration::days(1),
                deposit_terms("0.02"),
                None,
            )
            .await
            .unwrap();
        assert!(matches!(
            products.publish(&manager(), "DEP-TERM-12", 3, None).await,
            Err(ProductError::Lifecycle(_))
        ));

        // Retiring the version in force withdraws the product; old versions stay readable.
        products
            .retire(&manager(), "DEP-TERM-12", 2, None)
            .await
            .unwrap();
        assert!(matches!(
            products.in_force("DEP-TERM-12", next_month).await,
            Err(ProductError::NotInForce)
        ));
        assert_eq!(
            products.version("DEP-TERM-12", 1).await.unwrap().terms,
            deposit_terms("0.009")
        );
        let all = products.versions("DEP-TERM-12").await.unwrap();
        let statuses: Vec<Status> = all.iter().map(|v| v.status).collect();
        assert_eq!(
            statuses,
            vec![Status::Published, Status::Retired, Status::Draft]
        );

        let events: Vec<String> = sqlx::query("SELECT event_type FROM outbox ORDER BY seq")
            .fetch_all(products.store().reader())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("event_type"))
            .collect();
        assert_eq!(
            events,
            vec![
                "products.product.created",
                "products.version.published",
                "products.version.drafted",
                "products.version.published",
                "products.version.drafted",
                "products.version.retired",
            ]
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_catalogue_refuses_bad_terms_duplicates_and_callers_without_the_permission() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let products = Products::open(db.open().await).await.unwrap();
        let today = today_kst();
        let teller = Caller::new("teller-1", &["customers:read"]);
        assert!(matches!(
            products
                .create(
                    &teller,
                    new(
                        "DEP-1",
                        Kind::TermDeposit,
                        "x",
                        today,
                        deposit_terms("0.01")
                    ),
                    None
                )
                .await,
            Err(ProductError::Forbidden)
        ));
        let mut demand = deposit_terms("0.01");
        assert!(matches!(
            products.create(&manager(), new("DEP-DEMAND", Kind::DemandDeposit, "입출금", today, demand.clone()), None).await,
            Err(ProductError::Terms(e)) if e.field == "term_months"
        ));
        demand.term_months = None;
        demand.rates.tiers.clear();
        products
            .create(
                &manager(),
                new(
                    "DEP-DEMAND",
                    Kind::DemandDeposit,
                    "입출금",
                    today,
                    demand.clone(),
                ),
                None,
            )
            .await
            .unwrap();
        assert!(matches!(
            products
                .create(
                    &manager(),
                    new("DEP-DEMAND", Kind::DemandDeposit, "입출금", today, demand),
                    None
                )
                .await,
            Err(ProductError::Exists)
        ));
        assert!(matches!(
            products
                .create(
                    &manager(),
                    new(
                        "dep lower",
                        Kind::TermDeposit,
                        "x",
                        today,
                        deposit_terms("0.01")
                    ),
                    None
                )
                .await,
            Err(ProductError::Invalid(_))
        ));
        assert!(matches!(
            products.versions("NOPE").await,
            Err(ProductError::NotFound)
        ));
        assert!(matches!(
            products.version("DEP-DEMAND", 9).await,
            Err(ProductError::VersionNotFound)
        ));
        db.cleanup().await;
    }
}
