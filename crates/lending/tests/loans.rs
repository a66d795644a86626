//! A loan from application to its last payment, on both storage backends (PostgreSQL must be
//! reachable: these tests fail, they do not skip), with the real ledger engine, customers,
//! products, deposits and contracts in process and a business date the test moves: offer,
//! acceptance, contract, disbursement into a deposit account, end of day over months,
//! repayment (retried under its key), a refused payment that moves nothing, delinquency and
//! collections, payoff — every step reconciled against the ledger's own balances.

use contracts::Contracts;
use contracts::service::NewSignature;
use customers::Customers;
use customers::model::{KycStatus, Submitted};
use customers::vault::{FileKeyring, Vault};
use deposits::Deposits;
use deposits::service::{Movement, NewAccount};
use kernel::http::Caller;
use ledger::client::LedgerClient;
use ledger::engine::{Engine, EngineConfig};
use lending::Lending;
use lending::books;
use lending::collections::{Action, PromiseState};
use lending::credit::{DEFAULT_MODEL, Inputs, Model, Requested};
use lending::loans::{LoanRecord, expected_books};
use lending::schedule::{self, Terms};
use lending::service::LendingError;
use lending::servicing::Book;
use products::Products;
use products::model::{Kind, RepaymentMethod};
use products::service::NewProduct;
use sqlx::Row;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use store::Backend;
use store::sql::today_kst;
use store::testing::{BACKENDS, TestDb};
use time::{Date, Duration};

struct World {
    lending: Lending,
    deposits: Arc<Deposits>,
    contracts: Arc<Contracts>,
    ledger: LedgerClient,
    today: Arc<AtomicI32>,
    customer: String,
    account: String,
    peers: peers::Peers,
    today_fn: lending::service::Today,
    dbs: Vec<TestDb>,
    dir: tempfile::TempDir,
}

fn vault(path: &std::path::Path) -> Vault {
    Vault::from_keyring(FileKeyring::open_or_create(path, "2026-11-27T00:00:00Z").unwrap())
}

fn staff() -> Caller {
    Caller::new(
        "officer-7",
        &[
            "credit:evaluate",
            "credit:read",
            "loans:read",
            "loans:originate",
            "loans:repay",
            "loans:manage",
            "loans:collect",
            "loans:eod",
        ],
    )
}

impl World {
    async fn new(backend: Backend) -> World {
        let dir = tempfile::tempdir().unwrap();
        let (engine, _) = Engine::open(EngineConfig::new(dir.path().join("ledger"))).unwrap();
        let ledger = LedgerClient::Local(Arc::new(engine));
        let mut dbs = Vec::new();
        for _ in 0..5 {
            dbs.push(TestDb::new(backend).await);
        }
        let customers = Arc::new(
            Customers::open(dbs[0].open().await, vault(&dir.path().join("c.toml")))
                .await
                .unwrap(),
        );
        let products = Arc::new(Products::open(dbs[1].open().await).await.unwrap());
        let manager = Caller::new("product-team", &["products:manage"]);
        for (code, kind, terms) in [
            (
                "DEP-DEMAND",
                Kind::DemandDeposit,
                serde_json::json!({
                    "currency": "KRW",
                    "rates": {"base": "0.015", "spread": "0.005"},
                    "amount": {"min": "1", "max": "1000000000000"},
                    "eligibility": {"min_age": 19, "kyc_verified": true}
                }),
            ),
            (
                "LOAN-CREDIT",
                Kind::PersonalCreditLoan,
                serde_json::json!({
                    "currency": "KRW",
                    "rates": {"base": "0.035", "spread": "0.04", "tiers": [{"grade": 1, "spread": "0.015"}]},
                    "fees": [{"code": "prepayment", "rate": "0.012"}],
                    "amount": {"min": "1000000", "max": "50000000"},
                    "term_months": {"min": 6, "max": 60},
                    "repayment_methods": ["equal_payment", "equal_principal"],
                    "eligibility": {"min_age": 19, "kyc_verified": true, "grades": [1, 2, 3, 4, 5, 6, 7]}
                }),
            ),
        ] {
            products
                .create(
                    &manager,
                    NewProduct {
                        code: code.into(),
                        kind,
                        name: "구름".into(),
                        effective_from: today_kst(),
                        terms: serde_json::from_value(terms).unwrap(),
                    },
                    None,
                )
                .await
                .unwrap();
            products.publish(&manager, code, 1, None).await.unwrap();
        }
        let peers = peers::Peers::Local {
            customers: customers.clone(),
            products: products.clone(),
        };
        let today = Arc::new(AtomicI32::new(today_kst().to_julian_day()));
        let clock = today.clone();
        let today_fn: lending::service::Today =
            Arc::new(move || Date::from_julian_day(clock.load(Ordering::SeqCst)).unwrap());
        let deposits = Arc::new(
            Deposits::open_with_today(
                dbs[2].open().await,
                ledger.clone(),
                peers.clone(),
                today_fn.clone(),
            )
            .await
            .unwrap(),
        );
        let contracts = Arc::new(
            Contracts::open(
                dbs[3].open().await,
                store::Objects::open(&store::ObjectsConfig::Local {
                    root: dir.path().join("objects"),
                })
                .unwrap(),
                peers.clone(),
            )
            .await
            .unwrap(),
        );
        let lending = Lending::open(
            dbs[4].open().await,
            vault(&dir.path().join("l.toml")),
            peers.clone(),
            Model::parse(DEFAULT_MODEL).unwrap(),
        )
        .await
        .unwrap()
        .with_loans(
            ledger.clone(),
            lending::links::Links::Local {
                contracts: contracts.clone(),
                deposits: deposits.clone(),
            },
        )
        .with_today(today_fn.clone());
        let officer = Caller::new("officer", &["customers:kyc"]);
        let customer = customers
            .create(
                &officer,
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
        customers
            .set_kyc(&officer, &customer, KycStatus::Verified, None, None)
            .await
            .unwrap();
        let account = deposits
            .open_account(
                NewAccount {
                    customer_id: customer.clone(),
                    product_code: "DEP-DEMAND".into(),
                    term_months: None,
                },
                None,
                None,
            )
            .await
            .unwrap()
            .id;
        World {
            lending,
            deposits,
            contracts,
            ledger,
            today,
            customer,
            account,
            peers,
            today_fn,
            dbs,
            dir,
        }
    }

    /// A second lending service on the same database whose ledger cannot be reached: every
    /// step it starts stays pending.
    async fn cut_off(&self) -> Lending {
        Lending::open(
            self.dbs[4].open().await,
            vault(&self.dir.path().join("l.toml")),
            self.peers.clone(),
            Model::parse(DEFAULT_MODEL).unwrap(),
        )
        .await
        .unwrap()
        .with_loans(
            LedgerClient::Http(
                ledger::client::HttpLedger::new(&kernel::http::Upstream::new(
                    "http://127.0.0.1:1",
                    None,
                ))
                .unwrap(),
            ),
            lending::links::Links::Local {
                contracts: self.contracts.clone(),
                deposits: self.deposits.clone(),
            },
        )
        .with_today(self.today_fn.clone())
    }

    /// An approved, accepted and signed loan of 10,000,000 won.
    async fn signed_loan(&self) -> LoanRecord {
        let staff = staff();
        let application = self
            .lending
            .apply(
                &staff,
                &self.customer,
                "LOAN-CREDIT",
                applicant(),
                requested(self.today()),
                None,
            )
            .await
            .unwrap();
        let loan = self
            .lending
            .accept(&staff, &application.id, 10_000_000, &self.account, None)
            .await
            .unwrap();
        let contract_id = loan.contract_id.clone().unwrap();
        let contract = self.contracts.get(&contract_id).await.unwrap();
        self.contracts
            .sign(
                &contract_id,
                NewSignature {
                    role: "customer".into(),
                    signer: self.customer.clone(),
                    method: "app".into(),
                    document_sha256: contract.document_sha256,
                    client_address: "127.0.0.1".into(),
                    user_agent: "test".into(),
                },
                None,
            )
            .await
            .unwrap();
        loan
    }

    fn today(&self) -> Date {
        Date::from_julian_day(self.today.load(Ordering::SeqCst)).unwrap()
    }

    /// Closes every business day up to and including `through`, one end of day each, the
    /// clock moving to the day after.
    async fn close_through(&self, through: Date) {
        let mut day = self.today();
        while day <= through {
            self.today
                .store((day + Duration::days(1)).to_julian_day(), Ordering::SeqCst);
            self.lending.end_of_day(&staff(), day, None).await.unwrap();
            day += Duration::days(1);
        }
    }

    async fn balance(&self, id: u128) -> i128 {
        let a = self.ledger.account(id).await.unwrap().unwrap();
        a.debits_posted as i128 - a.credits_posted as i128
    }

    async fn deposit_balance_or_zero(&self) -> u128 {
        let id = uuid::Uuid::parse_str(&self.account).unwrap().as_u128();
        match self.ledger.account(id).await.unwrap() {
            Some(a) => a.credits_posted - a.debits_posted,
            None => 0,
        }
    }

    async fn deposit_balance(&self) -> u128 {
        let id = uuid::Uuid::parse_str(&self.account).unwrap().as_u128();
        (-self.balance(id).await) as u128
    }

    /// The loan's receivable accounts on the ledger equal its state, book by book.
    async fn reconcile(&self, loan: &LoanRecord) {
        assert!(!loan.pending);
        for (book, expected) in expected_books(&loan.state) {
            let id = books::account_id(&loan.id, book, 0);
            assert_eq!(
                self.balance(id).await,
                expected as i128,
                "{book:?} of loan {}",
                loan.id
            );
        }
    }

    async fn cleanup(self) {
        for db in self.dbs {
            db.cleanup().await;
        }
    }
}

fn applicant() -> Inputs {
    Inputs {
        annual_income: 60_000_000,
        existing_debt: 20_000_000,
        existing_annual_debt_service: 6_000_000,
        delinquencies_12m: 0,
        employment_months: 48,
        internal_months: 30,
        bureau_score: Some(920),
    }
}

fn requested(start: Date) -> Requested {
    Requested {
        principal: 10_000_000,
        annual_rate: "0.055".parse().unwrap(),
        term_months: 12,
        method: RepaymentMethod::EqualPayment,
        grace_months: 0,
        start_date: start,
    }
}

#[tokio::test]
async fn a_loan_from_application_to_payoff_stays_equal_to_its_ledger_books() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let (lending, staff) = (&w.lending, staff());
        let start = w.today();

        // Approved, with an offer from the product's grid.
        let application = lending
            .apply(
                &staff,
                &w.customer,
                "LOAN-CREDIT",
                applicant(),
                requested(start),
                None,
            )
            .await
            .unwrap();
        assert_eq!(application.status, "approved");
        let offer = lending.offer(&staff, &application.id).await.unwrap();
        assert_eq!(
            (
                offer.limit,
                offer.annual_rate.to_string(),
                offer.term_months,
                offer.prepayment_fee_rate.to_string(),
                offer.expires_on
            ),
            (
                10_000_000,
                "0.050".to_owned(),
                12,
                "0.012".to_owned(),
                start + Duration::days(30)
            )
        );

        // Acceptance: within the offer, into the customer's own account.
        let refused = lending
            .accept(&staff, &application.id, 10_000_001, &w.account, None)
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            LendingError::Invalid("invalid_principal", _)
        ));
        let refused = lending
            .accept(
                &staff,
                &application.id,
                10_000_000,
                "0190f1c2-0000-7000-8000-000000000000",
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            LendingError::Invalid("invalid_account", _)
        ));
        assert!(matches!(
            lending
                .accept(
                    &Caller::new("x", &["loans:read"]),
                    &application.id,
                    10_000_000,
                    &w.account,
                    None
                )
                .await,
            Err(LendingError::Forbidden("loans:originate"))
        ));
        let loan = lending
            .accept(&staff, &application.id, 10_000_000, &w.account, None)
            .await
            .unwrap();
        assert_eq!(loan.status, "contracted");
        let again = lending
            .accept(&staff, &application.id, 10_000_000, &w.account, None)
            .await
            .unwrap();
        assert_eq!(again.id, loan.id);
        let contract_id = loan.contract_id.clone().unwrap();
        let contract = w.contracts.get(&contract_id).await.unwrap();
        assert_eq!(
            (contract.subject.as_deref(), contract.status.as_str()),
            (Some(loan.id.as_str()), "issued")
        );

        // No money before the customer signs.
        assert!(matches!(
            lending.disburse(&staff, &loan.id, None).await,
            Err(LendingError::Conflict("contract_not_signed", _))
        ));
        assert_eq!(w.deposit_balance().await, 0);
        w.contracts
            .sign(
                &contract_id,
                NewSignature {
                    role: "customer".into(),
                    signer: w.customer.clone(),
                    method: "app".into(),
                    document_sha256: contract.document_sha256.clone(),
                    client_address: "127.0.0.1".into(),
                    user_agent: "test".into(),
                },
                None,
            )
            .await
            .unwrap();
        let loan = lending.disburse(&staff, &loan.id, None).await.unwrap();
        assert_eq!(loan.status, "current");
        assert_eq!(w.deposit_balance().await, 10_000_000);
        // Disbursing again moves nothing.
        let loan = lending.disburse(&staff, &loan.id, None).await.unwrap();
        assert_eq!(w.deposit_balance().await, 10_000_000);
        w.reconcile(&loan).await;

        // A month of ends of day: the first instalment is billed the day before it falls due,
        // with exactly the schedule's interest.
        let terms = Terms {
            principal: 10_000_000,
            annual_rate: "0.050".parse().unwrap(),
            term_months: 12,
            method: RepaymentMethod::EqualPayment,
            grace_months: 0,
            start_date: start,
        };
        let plan = schedule::schedule(&terms).unwrap();
        let due1 = plan[0].due_date;
        w.close_through(due1 - Duration::days(1)).await;
        let loan = lending.loan(&staff, &loan.id).await.unwrap();
        let state = loan.state.loan.clone().unwrap();
        assert_eq!(state.due.len(), 1);
        assert_eq!(
            (state.due[0].principal, state.due[0].interest),
            (plan[0].principal, plan[0].interest)
        );
        w.reconcile(&loan).await;

        // Paying nothing is refused; paying the instalment on its due date, with a retry.
        assert!(matches!(
            lending.repay(&staff, &loan.id, "pay-1", 0, None).await,
            Err(LendingError::Invalid("invalid_amount", _))
        ));
        let receipt = lending
            .repay(&staff, &loan.id, "pay-1", plan[0].payment, None)
            .await
            .unwrap();
        let allocation = receipt.allocation.unwrap();
        assert_eq!(
            (
                allocation.interest,
                allocation.principal,
                receipt.value_date
            ),
            (plan[0].interest, plan[0].principal, due1)
        );
        assert_eq!(w.deposit_balance().await, 10_000_000 - plan[0].payment);
        let retried = lending
            .repay(&staff, &loan.id, "pay-1", plan[0].payment, None)
            .await
            .unwrap();
        assert_eq!(retried.allocation, Some(allocation));
        assert_eq!(w.deposit_balance().await, 10_000_000 - plan[0].payment);
        assert!(matches!(
            lending.repay(&staff, &loan.id, "pay-1", 1, None).await,
            Err(LendingError::Conflict("idempotency_key_reused", _))
        ));
        let loan = lending.loan(&staff, &loan.id).await.unwrap();
        assert_eq!(loan.status, "current");
        w.reconcile(&loan).await;

        // The second instalment is missed: delinquent, in the collections queue.
        let due2 = plan[1].due_date;
        w.close_through(due2 + Duration::days(34)).await;
        let loan = lending.loan(&staff, &loan.id).await.unwrap();
        let state = loan.state.loan.clone().unwrap();
        assert_eq!(
            (loan.status.as_str(), state.days_past_due()),
            ("delinquent", 35)
        );
        assert!(state.late_interest > 0);
        w.reconcile(&loan).await;
        // End of day for a date already closed changes nothing.
        let report = lending.end_of_day(&staff, due2, None).await.unwrap();
        assert_eq!((report.loans, report.days), (0, 0));
        let queue = lending.collections_queue(&staff, 10).await.unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!(
            (
                queue[0].loan_id.as_str(),
                queue[0].days_past_due,
                queue[0].past_due,
                queue[0].next_action
            ),
            (loan.id.as_str(), 35, state.due_total(), Some(Action::Call))
        );
        lending
            .contact(
                &staff,
                &loan.id,
                Action::Call,
                "reached; will pay Friday",
                None,
            )
            .await
            .unwrap();
        let promised = lending
            .promise(
                &staff,
                &loan.id,
                state.due_total(),
                w.today() + Duration::days(3),
                None,
            )
            .await
            .unwrap();
        assert_eq!(promised.state.promises.len(), 1);
        assert!(
            lending
                .collections_queue(&staff, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // The account is emptied: a repayment is refused by the ledger and nothing moves.
        let left = w.deposit_balance().await;
        w.deposits
            .movement(
                &w.account,
                Movement::Withdrawal {
                    amount: left,
                    memo: None,
                },
                None,
                None,
            )
            .await
            .unwrap();
        let before = lending.loan(&staff, &loan.id).await.unwrap();
        assert!(matches!(
            lending
                .repay(&staff, &loan.id, "pay-2", state.due_total(), None)
                .await,
            Err(LendingError::LedgerRefused(code)) if code == "exceeds_credits"
        ));
        let after = lending.loan(&staff, &loan.id).await.unwrap();
        assert_eq!(after.state, before.state);
        w.reconcile(&after).await;

        // Money comes in; the promise is kept and the same key now goes through.
        w.deposits
            .movement(
                &w.account,
                Movement::Deposit {
                    amount: 20_000_000,
                    memo: None,
                },
                None,
                None,
            )
            .await
            .unwrap();
        let receipt = lending
            .repay(&staff, &loan.id, "pay-2", state.due_total(), None)
            .await
            .unwrap();
        assert_eq!(receipt.status, "current");
        let loan = lending.loan(&staff, &loan.id).await.unwrap();
        let p = loan.state.promises.last().unwrap();
        assert_eq!(p.promise.state(w.today(), p.paid_since), PromiseState::Kept);
        w.reconcile(&loan).await;

        // Paid off: the quote is what the payoff takes; every receivable is zero.
        w.close_through(w.today() + Duration::days(9)).await;
        let (_, quote) = lending.payoff(&staff, &loan.id).await.unwrap();
        let funds = w.deposit_balance().await;
        let receipt = lending
            .prepay(&staff, &loan.id, "payoff", None, None)
            .await
            .unwrap();
        assert_eq!(receipt.allocation, Some(quote));
        assert!(quote.prepayment_fee > 0);
        assert_eq!(w.deposit_balance().await, funds - quote.total());
        let loan = lending.loan(&staff, &loan.id).await.unwrap();
        assert_eq!(loan.status, "closed");
        let state = loan.state.loan.clone().unwrap();
        assert_eq!(state.totals.principal_repaid, 10_000_000);
        for book in books::LOAN_BOOKS {
            assert_eq!(
                w.balance(books::account_id(&loan.id, book, 0)).await,
                0,
                "{book:?}"
            );
        }
        assert_eq!(
            expected_books(&loan.state)
                .iter()
                .map(|(_, v)| v)
                .sum::<u128>(),
            0
        );
        let _ = Book::Principal;

        // Events carry ids, dates and statuses, never an amount.
        let events: Vec<String> = sqlx::query("SELECT envelope FROM outbox ORDER BY seq")
            .fetch_all(lending.store().reader())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("envelope"))
            .collect();
        for expected in [
            "lending.loan.accepted",
            "lending.loan.disbursed",
            "lending.loan.installment-due",
            "lending.loan.repayment",
            "lending.loan.delinquent",
            "lending.loan.promise-taken",
            "lending.loan.current",
            "lending.loan.prepayment",
            "lending.loan.closed",
        ] {
            assert!(
                events.iter().any(|e| e.contains(expected)),
                "no {expected} event"
            );
        }
        for e in &events {
            // What the service wrote, without what is generated (ids, times): a time's
            // microseconds or an id's hex may hold an amount's digits by chance.
            let mut event: serde_json::Value = serde_json::from_str(e).unwrap();
            for field in ["id", "time", "subject"] {
                event.as_object_mut().unwrap().remove(field);
            }
            if let Some(data) = event["data"].as_object_mut() {
                data.retain(|key, _| !key.ends_with("_id"));
            }
            let written = event.to_string();
            assert!(written.contains("\"type\":\"lending."), "{written}");
            for secret in ["10000000", &plan[0].payment.to_string(), "0.050"] {
                assert!(!written.contains(secret), "{secret} in {e}");
            }
        }
        // At rest: no amount in the loans table.
        let sealed: Vec<Vec<u8>> = sqlx::query("SELECT sealed FROM loans")
            .fetch_all(lending.store().reader())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get("sealed"))
            .collect();
        for blob in &sealed {
            assert!(!blob.windows(8).any(|w| w == b"10000000"));
        }
        w.cleanup().await;
    }
}

#[tokio::test]
async fn a_step_cut_short_is_finished_by_whoever_comes_next_and_never_posts_twice() {
    for backend in BACKENDS {
        let w = World::new(backend).await;
        let staff = staff();
        let loan = w.signed_loan().await;
        let cut_off = w.cut_off().await;

        // The ledger is out of reach at disbursement: nothing moved, and it goes through later.
        assert!(matches!(
            cut_off.disburse(&staff, &loan.id, None).await,
            Err(LendingError::Ledger(_))
        ));
        assert_eq!(w.deposit_balance_or_zero().await, 0);
        let loan = w.lending.disburse(&staff, &loan.id, None).await.unwrap();
        assert_eq!(loan.status, "current");
        assert_eq!(w.deposit_balance().await, 10_000_000);

        // A prepayment cut short, retried under its key: applied once.
        w.close_through(w.today() + Duration::days(4)).await;
        assert!(matches!(
            cut_off
                .prepay(&staff, &loan.id, "early-1", Some(1_000_000), None)
                .await,
            Err(LendingError::Ledger(_))
        ));
        assert_eq!(w.deposit_balance().await, 10_000_000);
        let pending: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT pending FROM loans WHERE id = $1")
                .bind(&loan.id)
                .fetch_one(w.lending.store().reader())
                .await
                .unwrap();
        assert!(pending.is_some(), "the cut-off step stays pending");
        // Whoever comes next finishes it: here the same request, retried under its key.
        let receipt = w
            .lending
            .prepay(&staff, &loan.id, "early-1", Some(1_000_000), None)
            .await
            .unwrap();
        let allocation = receipt.allocation.unwrap();
        assert_eq!(allocation.principal, 1_000_000);
        assert!(allocation.prepayment_fee > 0);
        assert_eq!(w.deposit_balance().await, 10_000_000 - allocation.total());
        let again = w
            .lending
            .prepay(&staff, &loan.id, "early-1", Some(1_000_000), None)
            .await
            .unwrap();
        assert_eq!(again.allocation, Some(allocation));
        assert_eq!(w.deposit_balance().await, 10_000_000 - allocation.total());
        let loan = w.lending.loan(&staff, &loan.id).await.unwrap();
        assert_eq!(loan.state.loan.as_ref().unwrap().principal, 9_000_000);
        w.reconcile(&loan).await;

        // An end of day cut short: its page is marked, then the ledger is out of reach. The
        // next run finishes the marked loan; the day is closed and posted once.
        let day = w.today();
        let before = w.lending.loan(&staff, &loan.id).await.unwrap();
        w.today
            .store((day + Duration::days(1)).to_julian_day(), Ordering::SeqCst);
        assert!(matches!(
            cut_off.end_of_day(&staff, day, None).await,
            Err(LendingError::Ledger(_))
        ));
        let marked: Option<Vec<u8>> = sqlx::query_scalar("SELECT pending FROM loans WHERE id = $1")
            .bind(&loan.id)
            .fetch_one(w.lending.store().reader())
            .await
            .unwrap();
        assert!(marked.is_some(), "the cut-off end of day left its mark");
        let report = w.lending.end_of_day(&staff, day, None).await.unwrap();
        assert_eq!(
            (report.loans, report.days, report.billed, report.failed),
            (1, 1, 0, 0)
        );
        let loan = w.lending.loan(&staff, &loan.id).await.unwrap();
        let state = loan.state.loan.as_ref().unwrap();
        assert_eq!(state.closed_through, day);
        assert!(
            state.interest_accrued > before.state.loan.as_ref().unwrap().interest_accrued,
            "a day's interest accrued"
        );
        w.reconcile(&loan).await;
        let again = w.lending.end_of_day(&staff, day, None).await.unwrap();
        assert_eq!((again.loans, again.days, again.failed), (0, 0, 0));
        let loan = w.lending.loan(&staff, &loan.id).await.unwrap();
        w.reconcile(&loan).await;
        w.cleanup().await;
    }
}
