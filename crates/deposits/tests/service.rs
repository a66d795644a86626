//! Deposit accounts on both storage backends (PostgreSQL must be reachable: these tests fail,
//! they do not skip), against a real ledger engine and real customers and products services in
//! process: every flow is reconciled against the ledger's own balances.

use customers::Customers;
use customers::model::{KycStatus, Submitted};
use customers::vault::{FileKeyring, Vault};
use deposits::service::{DepositError, Deposits, Movement, NewAccount};
use deposits::{Peers, model};
use kernel::http::Caller;
use ledger::AccountFlags;
use ledger::client::LedgerClient;
use ledger::engine::{Engine, EngineConfig};
use products::Products;
use products::model::{Kind, Terms};
use products::service::NewProduct;
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use store::Backend;
use store::sql::today_kst;
use store::testing::{BACKENDS, TestDb};
use time::{Date, Duration};

struct World {
    deposits: Deposits,
    customers: Arc<Customers>,
    ledger: LedgerClient,
    today: Arc<AtomicI32>,
    dbs: Vec<TestDb>,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new(backend: Backend) -> World {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::open(EngineConfig::new(dir.path().join("ledger"))).unwrap();
        let ledger = LedgerClient::Local(Arc::new(engine));
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
        let today = Arc::new(AtomicI32::new(today_kst().to_julian_day()));
        let clock = today.clone();
        let deposits = Deposits::open_with_today(
            dbs[2].open().await,
            ledger.clone(),
            Peers::Local {
                customers: customers.clone(),
                products: products.clone(),
            },
            Arc::new(move || Date::from_julian_day(clock.load(Ordering::SeqCst)).unwrap()),
        )
        .await
        .unwrap();
        let manager = Caller::new("product-team", &["products:manage"]);
        for (code, kind, terms) in [
            ("DEP-DEMAND", Kind::DemandDeposit, demand_terms()),
            ("DEP-TERM", Kind::TermDeposit, term_terms()),
        ] {
            products
                .create(
                    &manager,
                    NewProduct {
                        code: code.into(),
                        kind,
                        name: "구름 통장".into(),
                        effective_from: today_kst(),
                        terms,
                    },
                    None,
                )
                .await
                .unwrap();
            products.publish(&manager, code, 1, None).await.unwrap();
        }
        World {
            deposits,
            customers,
            ledger,
            today,
            dbs,
            _dir: dir,
        }
    }

    fn set_today(&self, date: Date) {
        self.today.store(date.to_julian_day(), Ordering::SeqCst);
    }

    async fn customer(&self, rrn: &str, verified: bool) -> String {
        let officer = Caller::new("officer", &["customers:kyc"]);
        let c = self
            .customers
            .create(
                &officer,
                Submitted {
                    name: "김하늘".into(),
                    rrn: Some(rrn.into()),
                    ..Submitted::default()
                },
                None,
            )
            .await
            .unwrap();
        if verified {
            self.customers
                .set_kyc(&officer, &c.id, KycStatus::Verified, None, None)
                .await
                .unwrap();
        }
        c.id
    }

    async fn open(&self, customer: &str, product: &str, term: Option<u32>) -> String {
        self.deposits
            .open_account(
                NewAccount {
                    customer_id: customer.into(),
                    product_code: product.into(),
                    term_months: term,
                },
                None,
                None,
            )
            .await
            .unwrap()
            .id
    }

    async fn cleanup(self) {
        for db in self.dbs {
            db.cleanup().await;
        }
    }
}

fn demand_terms() -> Terms {
    serde_json::from_value(serde_json::json!({
        "currency": "KRW",
        "rates": {"base": "0.015", "spread": "0.005"},
        "amount": {"min": "1", "max": "1000000000000"},
        "eligibility": {"min_age": 19, "kyc_verified": true}
    }))
    .unwrap()
}

fn term_terms() -> Terms {
    serde_json::from_value(serde_json::json!({
        "currency": "KRW",
        "rates": {"base": "0.03", "spread": "0.002"},
        "amount": {"min": "1000000", "max": "1000000000"},
        "term_months": {"min": 6, "max": 36},
        "eligibility": {"min_age": 19, "kyc_verified": false}
    }))
    .unwrap()
}

fn deposit(amount: u128) -> Movement {
    Movement::Deposit {
        amount,
        memo: Some("월급".into()),
    }
}

fn withdrawal(amount: u128) -> Movement {
    Movement::Withdrawal { amount, memo: None }
}

const A_RRN: &str = "900101-1234568";
const B_RRN: &str = "850505-2345674";
const MINOR_RRN: &str = "100101-3234568";

#[tokio::test]
async fn money_moves_through_the_ledger_exactly_once_and_reconciles() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let d = &w.deposits;
        let alice = w.customer(A_RRN, true).await;
        let bob = w.customer(B_RRN, true).await;
        let a = w.open(&alice, "DEP-DEMAND", None).await;
        let b = w.open(&bob, "DEP-DEMAND", None).await;

        // An Idempotency-Key makes a repeat answer the first outcome without moving money.
        let first = d
            .movement(&a, deposit(1_000_000), Some("pay-1"), None)
            .await
            .unwrap();
        let again = d
            .movement(&a, deposit(1_000_000), Some("pay-1"), None)
            .await
            .unwrap();
        assert_eq!(first, again);
        assert!(matches!(
            d.movement(&a, deposit(5), Some("pay-1"), None).await,
            Err(DepositError::IdempotencyKeyReused)
        ));
        assert_eq!(d.get(&a).await.unwrap().balance, 1_000_000);

        // The ledger refuses an overdraft; the refusal is the recorded answer for its key.
        assert!(matches!(
            d.movement(&a, withdrawal(2_000_000), Some("w-1"), None)
                .await,
            Err(DepositError::InsufficientFunds)
        ));
        d.movement(&a, deposit(5_000_000), None, None)
            .await
            .unwrap();
        assert!(matches!(
            d.movement(&a, withdrawal(2_000_000), Some("w-1"), None)
                .await,
            Err(DepositError::InsufficientFunds)
        ));
        d.movement(&a, withdrawal(5_000_000), None, None)
            .await
            .unwrap();

        let sent = Movement::Transfer {
            to: b.clone(),
            amount: 300_000,
            memo: Some("점심값".into()),
        };
        d.movement(&a, sent, None, None).await.unwrap();

        // A hold reserves money: the balance stays, what can be spent shrinks.
        let hold = d
            .movement(
                &a,
                Movement::Hold {
                    amount: 100_000,
                    timeout_seconds: 0,
                    memo: None,
                },
                None,
                None,
            )
            .await
            .unwrap();
        let view = d.get(&a).await.unwrap();
        assert_eq!(
            (view.balance, view.available, view.on_hold),
            (700_000, 600_000, 100_000)
        );
        assert!(matches!(
            d.movement(&a, withdrawal(650_000), None, None).await,
            Err(DepositError::InsufficientFunds)
        ));
        let captured = d
            .movement(
                &a,
                Movement::Capture {
                    hold_id: hold.transaction_id,
                    amount: Some(40_000),
                },
                None,
                None,
            )
            .await
            .unwrap();
        assert_eq!(captured.amount, 40_000);
        let view = d.get(&a).await.unwrap();
        assert_eq!(
            (view.balance, view.available, view.on_hold),
            (660_000, 660_000, 0)
        );
        assert!(matches!(
            d.movement(
                &a,
                Movement::Release {
                    hold_id: hold.transaction_id
                },
                None,
                None
            )
            .await,
            Err(DepositError::HoldNotActive("captured"))
        ));
        // A hold on another account is not this account's to release.
        let other_hold = d
            .movement(
                &b,
                Movement::Hold {
                    amount: 1,
                    timeout_seconds: 60,
                    memo: None,
                },
                None,
                None,
            )
            .await
            .unwrap();
        assert!(matches!(
            d.movement(
                &a,
                Movement::Release {
                    hold_id: other_hold.transaction_id
                },
                None,
                None
            )
            .await,
            Err(DepositError::HoldNotFound)
        ));
        d.movement(
            &b,
            Movement::Release {
                hold_id: other_hold.transaction_id,
            },
            None,
            None,
        )
        .await
        .unwrap();

        // Reconciled: each view is the ledger's balance, and the bank's cash account holds
        // exactly what the customers hold.
        let a_view = d.get(&a).await.unwrap();
        let b_view = d.get(&b).await.unwrap();
        assert_eq!((a_view.balance, b_view.balance), (660_000, 300_000));
        for (id, expected) in [(&a, 660_000u128), (&b, 300_000)] {
            let acct = w.ledger.account(ledger_id(id)).await.unwrap().unwrap();
            assert_eq!(acct.credits_posted - acct.debits_posted, expected);
            assert!(
                acct.flags
                    .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            );
        }
        let cash = w
            .ledger
            .account(model::bank::CASH_ID)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cash.debits_posted - cash.credits_posted, 960_000);

        // The statement walks the posted balance line by line to the ledger's balance.
        let today = today_kst();
        let s = d.statement(&a, today, today).await.unwrap();
        let kinds: Vec<(&str, u128, u128)> = s
            .lines
            .iter()
            .map(|l| (l.kind, l.amount, l.balance))
            .collect();
        assert_eq!(
            kinds,
            [
                ("deposit", 1_000_000, 1_000_000),
                ("deposit", 5_000_000, 6_000_000),
                ("withdrawal", 5_000_000, 1_000_000),
                ("transfer_out", 300_000, 700_000),
                ("hold_capture", 40_000, 660_000),
            ]
        );
        assert_eq!((s.opening, s.closing), (0, 660_000));
        assert_eq!((s.total_in, s.total_out), (6_000_000, 5_340_000));
        assert_eq!(s.lines[0].memo.as_deref(), Some("월급"));
        let s = d.statement(&b, today, today).await.unwrap();
        assert_eq!(s.lines.len(), 1);
        assert_eq!(
            (s.lines[0].kind, s.lines[0].memo.as_deref()),
            ("transfer_in", Some("점심값"))
        );
        let earlier = today - Duration::days(3);
        let before = d.statement(&a, earlier, earlier).await.unwrap();
        assert_eq!(
            (before.opening, before.closing, before.lines.len()),
            (0, 0, 0)
        );

        // Closing needs an empty account; a refused close leaves it open and usable.
        assert!(matches!(
            d.close(&a, None, None).await,
            Err(DepositError::BalanceNotZero {
                balance: 660_000,
                on_hold: 0
            })
        ));
        d.movement(&a, deposit(1), None, None).await.unwrap();
        let closed = d.close(&a, Some(&b), None).await.unwrap();
        assert_eq!(
            (closed.account.status.as_str(), closed.balance),
            ("closed", 0)
        );
        assert_eq!(d.get(&b).await.unwrap().balance, 960_001);
        let ledger_a = w.ledger.account(ledger_id(&a)).await.unwrap().unwrap();
        assert!(ledger_a.flags.contains(AccountFlags::CLOSED));
        assert!(matches!(
            d.movement(&a, deposit(1), None, None).await,
            Err(DepositError::AccountClosed)
        ));
        assert!(matches!(
            d.movement(
                &b,
                Movement::Transfer {
                    to: a.clone(),
                    amount: 1,
                    memo: None
                },
                None,
                None
            )
            .await,
            Err(DepositError::AccountClosed)
        ));
        // Closing again answers the closed account.
        assert_eq!(
            d.close(&a, None, None).await.unwrap().account.status,
            "closed"
        );

        // Events: opened, completed movements, closed — with ids and amounts, nothing personal.
        let events: Vec<String> = sqlx::query("SELECT event_type FROM outbox ORDER BY seq")
            .fetch_all(d.store().reader())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("event_type"))
            .collect();
        assert_eq!(
            events
                .iter()
                .filter(|e| *e == "deposits.account.opened")
                .count(),
            2
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| *e == "deposits.account.closed")
                .count(),
            1
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| *e == "deposits.transaction.completed")
                .count(),
            9,
            "{events:?}"
        );
        w.cleanup().await;
    }
}

#[tokio::test]
async fn opening_checks_the_customer_and_the_product() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let d = &w.deposits;
        let open = |customer: &str, product: &str, term: Option<u32>| NewAccount {
            customer_id: customer.into(),
            product_code: product.into(),
            term_months: term,
        };
        let pending = w.customer(A_RRN, false).await;
        let minor = w.customer(MINOR_RRN, true).await;
        let refused = |r: Result<_, DepositError>| match r {
            Err(DepositError::Rule(e)) => e.code,
            other => panic!(
                "expected a rule error, got {:?}",
                other.map(|a: deposits::service::Account| a.id)
            ),
        };
        assert_eq!(
            refused(
                d.open_account(open(&pending, "DEP-DEMAND", None), None, None)
                    .await
            ),
            "not_eligible"
        );
        assert_eq!(
            refused(
                d.open_account(open(&minor, "DEP-DEMAND", None), None, None)
                    .await
            ),
            "not_eligible"
        );
        assert_eq!(
            refused(
                d.open_account(open(&pending, "DEP-TERM", None), None, None)
                    .await
            ),
            "invalid_term"
        );
        assert_eq!(
            refused(
                d.open_account(open(&pending, "DEP-TERM", Some(48)), None, None)
                    .await
            ),
            "invalid_term"
        );
        assert!(matches!(
            d.open_account(
                open("0190f1c2-0000-7000-8000-000000000000", "DEP-DEMAND", None),
                None,
                None
            )
            .await,
            Err(DepositError::CustomerNotFound)
        ));
        assert!(matches!(
            d.open_account(open(&pending, "NO-SUCH", None), None, None)
                .await,
            Err(DepositError::ProductNotAvailable)
        ));

        // A term deposit: rate fixed at opening, money leaves only by closing before maturity.
        let term = d
            .open_account(open(&pending, "DEP-TERM", Some(12)), Some("open-1"), None)
            .await
            .unwrap();
        let again = d
            .open_account(open(&pending, "DEP-TERM", Some(12)), Some("open-1"), None)
            .await
            .unwrap();
        assert_eq!(term.id, again.id, "the same key opens one account");
        assert_eq!(term.rate, Decimal::new(32, 3));
        assert_eq!(term.maturity_on, model::maturity(today_kst(), 12));
        d.movement(&term.id, deposit(10_000_000), None, None)
            .await
            .unwrap();
        assert!(matches!(
            d.movement(&term.id, withdrawal(1), None, None).await,
            Err(DepositError::BeforeMaturity(_))
        ));

        // An erased customer opens nothing.
        let officer = Caller::new("officer", &["customers:erase"]);
        w.customers.erase(&officer, &minor, None).await.unwrap();
        assert!(matches!(
            d.open_account(open(&minor, "DEP-DEMAND", None), None, None)
                .await,
            Err(DepositError::CustomerErased)
        ));
        w.cleanup().await;
    }
}

/// Interest by an independent formula: floor(Σ balance × rate / 365) in exact decimals.
fn interest(days_and_balances: &[(i64, u128)], rate: &str) -> u128 {
    let rate: Decimal = rate.parse().unwrap();
    let total: Decimal = days_and_balances
        .iter()
        .map(|(days, balance)| Decimal::from(*days) * Decimal::from(*balance as u64) * rate)
        .sum();
    (total / Decimal::from(365)).floor().to_u128().unwrap()
}

#[tokio::test]
async fn end_of_day_accrues_daily_pays_at_month_end_and_runs_once_per_date() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let d = &w.deposits;
        let eod = Caller::new("operator", &["deposits:eod"]);
        let alice = w.customer(A_RRN, true).await;
        let a = w.open(&alice, "DEP-DEMAND", None).await;
        d.movement(&a, deposit(12_345_678), None, None)
            .await
            .unwrap();
        let opened = today_kst();
        let month_end = (0..31)
            .map(|n| opened + Duration::days(n))
            .find(|day| model::is_posting_day(*day))
            .unwrap();
        w.set_today(opened + Duration::days(60));

        assert!(matches!(
            d.end_of_day(&Caller::new("x", &[]), month_end, None).await,
            Err(DepositError::Forbidden(_))
        ));
        assert!(matches!(
            d.end_of_day(&eod, opened + Duration::days(60), None).await,
            Err(DepositError::BusinessDateNotOver(_))
        ));

        let days_to_month_end = (month_end - opened).whole_days() + 1;
        let paid = interest(&[(days_to_month_end, 12_345_678)], "0.02");
        assert!(paid > 0);
        let report = d.end_of_day(&eod, month_end, None).await.unwrap();
        assert_eq!(report.accounts, 1);
        assert_eq!(report.days as i64, days_to_month_end);
        assert_eq!((report.accrued, report.posted), (paid, paid));
        let view = d.get(&a).await.unwrap();
        assert_eq!(
            (view.balance, view.accrued_interest),
            (12_345_678 + paid, 0)
        );
        assert_eq!(view.account.accrued_through, Some(month_end));

        // The same date again changes nothing.
        let again = d.end_of_day(&eod, month_end, None).await.unwrap();
        assert_eq!((again.days, again.accrued, again.posted), (0, 0, 0));
        assert_eq!(d.get(&a).await.unwrap().balance, 12_345_678 + paid);

        // Five more days accrue on the new balance, not paid until the month ends.
        let later = month_end + Duration::days(5);
        let accrued = interest(&[(5, 12_345_678 + paid)], "0.02");
        let report = d.end_of_day(&eod, later, None).await.unwrap();
        assert_eq!(
            (report.days, report.accrued, report.posted),
            (5, accrued, 0)
        );
        let view = d.get(&a).await.unwrap();
        assert_eq!(
            (view.balance, view.accrued_interest),
            (12_345_678 + paid, accrued)
        );

        // The ledger agrees: expense = everything accrued; the interest line is on the statement.
        let expense = w
            .ledger
            .account(model::bank::INTEREST_EXPENSE_ID)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(expense.debits_posted, paid + accrued);
        // Lines are dated when the ledger applied them (this run: the real today), not by the
        // business date they are for.
        let s = d.statement(&a, today_kst(), today_kst()).await.unwrap();
        assert_eq!(
            s.lines
                .iter()
                .map(|l| (l.kind, l.amount))
                .collect::<Vec<_>>(),
            [("deposit", 12_345_678), ("interest", paid)]
        );

        // Closing pays what accrued since, then sweeps everything out.
        let bob = w.customer(B_RRN, true).await;
        let b = w.open(&bob, "DEP-DEMAND", None).await;
        let closed = d.close(&a, Some(&b), None).await.unwrap();
        assert_eq!((closed.balance, closed.accrued_interest), (0, 0));
        assert_eq!(
            d.get(&b).await.unwrap().balance,
            12_345_678 + paid + accrued
        );
        // A closed account accrues nothing more (and bob's opened after that date).
        let report = d
            .end_of_day(&eod, later + Duration::days(1), None)
            .await
            .unwrap();
        assert_eq!((report.accounts, report.days), (0, 0));
        let closed = d.get(&a).await.unwrap();
        assert_eq!(
            (closed.account.accrued_through, closed.accrued_interest),
            (Some(later), 0)
        );
        w.cleanup().await;
    }
}

fn ledger_id(id: &str) -> u128 {
    uuid_u128(id)
}

fn uuid_u128(id: &str) -> u128 {
    u128::from_str_radix(&id.replace('-', ""), 16).unwrap()
}
