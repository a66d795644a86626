//! Loans, the shell around [`crate::servicing`]: an approved application's offer, its
//! acceptance (the loan, and its contract through the contracts service), disbursement into the
//! customer's deposit account, repayments, prepayments, restructuring, write-off, end of day
//! and the collections record — each posted to the ledger.
//!
//! **Every step that moves money runs in three commits** (`run_step`):
//! 1. the next state and the step's postings are written beside the loan as its *pending step*
//!    (compare-and-set on the loan's version, so two steps on one loan take turns);
//! 2. the postings go to the ledger as one linked chain whose ids derive from the loan and the
//!    step (an end of day's date, a request's `Idempotency-Key`);
//! 3. the next state replaces the current one, with the step's outcome and its outbox events.
//!
//! Whoever finds a pending step finishes it first: posting again is answered `exists`, so a
//! crash or a lost connection between 1 and 3 never posts twice and never loses a posting. A
//! chain the ledger refuses (the deposit account cannot pay) discards the pending step: nothing
//! moved. So a loan's receivable accounts on the ledger always equal its stored state once no
//! step is pending.

use crate::books;
use crate::collections::{self, Action, Case, Promise, PromiseState};
use crate::decision::Decision;
use crate::links::{DepositFacts, IssueError, LoanContract};
use crate::schedule::{self, Installment, Terms};
use crate::service::{Lending, LendingError, SERVICE};
use crate::servicing::{Allocation, Book, Loan, Posting, Restructuring, Status};
use customers::vault::{DataKey, VaultError, WrappedKey};
use kernel::event::TraceParent;
use kernel::http::Caller;
use ledger::CreateTransferResult as TR;
use products::model::RepaymentMethod;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::Row;
use store::outbox::{self, NewEvent};
use store::sql::{Store, now_us};
use time::{Date, Duration};

/// Reading loans (credit information).
pub const PERMISSION_LOANS_READ: &str = "loans:read";
/// Accepting an offer and disbursing.
pub const PERMISSION_ORIGINATE: &str = "loans:originate";
/// Repaying and prepaying.
pub const PERMISSION_REPAY: &str = "loans:repay";
/// Restructuring and writing off.
pub const PERMISSION_MANAGE: &str = "loans:manage";
/// The collections queue, promises to pay and contacts.
pub const PERMISSION_COLLECT: &str = "loans:collect";
/// Running end of day.
pub const PERMISSION_EOD: &str = "loans:eod";

/// How many days an approval's offer may be accepted.
pub const OFFER_DAYS: i64 = 30;
/// How many business days one step may close to catch a loan up (a step is one linked chain
/// of at most two transfers a day, well under the ledger's 8,190 per batch).
const CATCH_UP_DAYS_MAX: i64 = 1_000;
/// How many times a step is tried when other steps on the same loan keep getting in first.
const STEP_ATTEMPTS: usize = 8;
/// Loans per page of end of day.
const EOD_PAGE: i64 = 1_000;
/// Promises and contacts kept per loan (the oldest drop off).
const COLLECTION_RECORDS_MAX: usize = 50;

/// Loan statuses that end of day works on (a written-off loan accrues nothing: its days are
/// closed when a recovery comes).
const SERVICED: &str = "('current', 'delinquent', 'default')";

/// An approved application's offer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// The application.
    pub application_id: String,
    /// The customer.
    pub customer_id: String,
    /// The loan product and version.
    pub product_code: String,
    /// The version.
    pub product_version: i64,
    /// The most that may be borrowed.
    #[serde(with = "kernel::decimal::u128_string")]
    pub limit: u128,
    /// The least (the product's minimum).
    #[serde(with = "kernel::decimal::u128_string")]
    pub minimum: u128,
    /// The annual rate.
    pub annual_rate: Decimal,
    /// Instalments.
    pub term_months: u32,
    /// How it is repaid.
    pub method: RepaymentMethod,
    /// Interest-only months.
    pub grace_months: u32,
    /// The credit grade it was priced for.
    pub grade: u8,
    /// The prepayment fee rate of the product version.
    pub prepayment_fee_rate: Decimal,
    /// The last day it may be accepted.
    #[serde(with = "crate::credit::date_string")]
    pub expires_on: Date,
}

/// A promise to pay as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromiseRecord {
    /// The promise.
    pub promise: Promise,
    /// Who took it.
    pub taken_by: String,
    /// What was paid since it was given.
    pub paid_since: u128,
}

/// A collector's contact with the borrower.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// What was done.
    pub action: Action,
    /// When (the business date).
    #[serde(with = "crate::credit::date_string")]
    pub on: Date,
    /// Who.
    pub by: String,
    /// A note (at most 500 characters).
    pub note: String,
}

/// What a loan seals: its offer, the principal accepted, the serviced loan once disbursed, and
/// the collections record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoanState {
    /// The offer accepted.
    pub offer: Offer,
    /// The principal accepted.
    pub principal: u128,
    /// The loan, once disbursed.
    pub loan: Option<Loan>,
    /// Promises to pay, oldest first.
    pub promises: Vec<PromiseRecord>,
    /// Contacts, oldest first.
    pub contacts: Vec<Contact>,
}

/// A loan as stored (opened).
#[derive(Clone, Debug, PartialEq)]
pub struct LoanRecord {
    /// The id.
    pub id: String,
    /// The application it came from.
    pub application_id: String,
    /// The customer.
    pub customer_id: String,
    /// The deposit account it is paid into and repaid from.
    pub account_id: String,
    /// Its contract.
    pub contract_id: Option<String>,
    /// `contracted`, `current`, `delinquent`, `default`, `written_off` or `closed`.
    pub status: String,
    /// The state.
    pub state: LoanState,
    /// Whether a step is pending (being posted).
    pub pending: bool,
    /// Bumped by every change.
    pub version: i64,
    /// When it was created (µs).
    pub created_at_us: i64,
}

/// What a money step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The loan.
    pub loan_id: String,
    /// `disbursement`, `repayment`, `prepayment`, `restructuring`, `write_off`.
    pub kind: String,
    /// The business day it counts on.
    #[serde(with = "crate::credit::date_string")]
    pub value_date: Date,
    /// What was paid, by component (repayments and prepayments).
    pub allocation: Option<Allocation>,
    /// Whole won moved from or to the deposit account.
    #[serde(with = "kernel::decimal::u128_string")]
    pub amount: u128,
    /// The loan's status after it.
    pub status: String,
}

/// The step being posted, sealed beside the loan.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    /// The step's name: the transfer ids derive from it.
    step: String,
    /// The Idempotency-Key it was asked under, if any.
    key: Option<String>,
    /// The deposit account's ledger account (the funding side).
    funding: u128,
    /// What to post, as one linked chain.
    postings: Vec<Posting>,
    /// The state once posted.
    next: LoanState,
    /// The status once posted.
    next_status: String,
    /// The outcome to answer (and keep under the key).
    receipt: Option<Receipt>,
    /// Events to record: (type suffix, data).
    events: Vec<(String, Value)>,
}

/// What one end-of-day run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EodReport {
    /// The business date closed.
    pub business_date: String,
    /// Loans brought through it.
    pub loans: u64,
    /// Loan-days closed.
    pub days: u64,
    /// Instalments billed (falling due the next day).
    pub billed: u64,
    /// Loans whose status changed.
    pub status_changes: u64,
    /// Loans the ledger refused a posting for (left as they were; they need attention).
    pub failed: u64,
}

impl EodReport {
    /// Adds a page's counts.
    fn add(&mut self, page: &EodReport) {
        self.loans += page.loans;
        self.days += page.days;
        self.billed += page.billed;
        self.status_changes += page.status_changes;
        self.failed += page.failed;
    }
}

/// A case in the collections queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueItem {
    /// The loan.
    pub loan_id: String,
    /// The customer.
    pub customer_id: String,
    /// Days past due.
    pub days_past_due: u32,
    /// The bucket.
    pub bucket: crate::servicing::Bucket,
    /// Everything due now, whole won.
    #[serde(with = "kernel::decimal::u128_string")]
    pub past_due: u128,
    /// The latest promise's state.
    pub promise: Option<PromiseState>,
    /// What the playbook asks for next.
    pub next_action: Option<Action>,
}

impl Lending {
    fn ledger(&self) -> Result<&ledger::client::LedgerClient, LendingError> {
        self.ledger.as_ref().ok_or(LendingError::NotServicing)
    }

    fn links(&self) -> Result<&crate::links::Links, LendingError> {
        self.links.as_ref().ok_or(LendingError::NotServicing)
    }

    /// The offer of an approved application.
    pub async fn offer(
        &self,
        caller: &Caller,
        application_id: &str,
    ) -> Result<Offer, LendingError> {
        require(caller, PERMISSION_LOANS_READ)?;
        self.offer_of(application_id).await
    }

    async fn offer_of(&self, application_id: &str) -> Result<Offer, LendingError> {
        let application = self.load_application(application_id).await?;
        let Decision::Approve { limit, annual_rate } = application.decision else {
            return Err(LendingError::NoOffer(application.status));
        };
        let product = self
            .peers
            .product_version(&application.product_code, application.product_version)
            .await?
            .ok_or(LendingError::ProductNotAvailable)?;
        let evaluation = self.load_evaluation(&application.evaluation_id).await?;
        let decided = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(application.updated_at_us) * 1_000,
        )
        .map_or((self.today)(), |t| t.to_offset(kernel::dates::KST).date());
        let fee_rate = product
            .terms
            .fees
            .iter()
            .find(|f| f.code == "prepayment")
            .and_then(|f| f.rate)
            .unwrap_or(Decimal::ZERO);
        Ok(Offer {
            application_id: application.id,
            customer_id: application.customer_id,
            product_code: application.product_code,
            product_version: application.product_version,
            limit,
            minimum: product.terms.amount.min.parse().unwrap_or(1),
            annual_rate,
            term_months: application.requested.term_months,
            method: application.requested.method,
            grace_months: application.requested.grace_months,
            grade: evaluation.evaluation.grade,
            prepayment_fee_rate: fee_rate,
            expires_on: decided + Duration::days(OFFER_DAYS),
        })
    }

    /// Accepts an approved application's offer for `principal` (within the offer), to be paid
    /// into and repaid from the customer's demand deposit `account_id`: the loan is recorded
    /// (`contracted`) and its contract issued through the contracts service, for the customer
    /// to sign. Accepting the same offer again answers the loan it made.
    pub async fn accept(
        &self,
        caller: &Caller,
        application_id: &str,
        principal: u128,
        account_id: &str,
        trace: Option<TraceParent>,
    ) -> Result<LoanRecord, LendingError> {
        require(caller, PERMISSION_ORIGINATE)?;
        let links = self.links()?;
        let offer = self.offer_of(application_id).await?;
        if let Some(existing) = self.loan_of_application(application_id).await? {
            if existing.state.principal != principal || existing.account_id != account_id {
                return Err(LendingError::Conflict(
                    "offer_accepted",
                    format!(
                        "the offer was accepted already, as loan {}, on other terms",
                        existing.id
                    ),
                ));
            }
            return self.ensure_contract(existing).await;
        }
        let today = (self.today)();
        if today > offer.expires_on {
            return Err(LendingError::Conflict(
                "offer_expired",
                format!("the offer could be accepted until {}", offer.expires_on),
            ));
        }
        if principal < offer.minimum || principal > offer.limit {
            return Err(LendingError::Invalid(
                "invalid_principal",
                format!(
                    "`principal` is from {} to the offer's limit of {} won",
                    offer.minimum, offer.limit
                ),
            ));
        }
        self.check_account(links, account_id, &offer.customer_id)
            .await?;
        // The terms are checked now, not at disbursement.
        schedule::schedule(&terms_of(&offer, principal, today))
            .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
        let id = uuid::Uuid::now_v7().to_string();
        let state = LoanState {
            offer,
            principal,
            loan: None,
            promises: Vec::new(),
            contacts: Vec::new(),
        };
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let inserted = self
            .insert_loan(&mut tx, &id, &state, account_id, "contracted", None, now)
            .await?;
        if !inserted {
            // Another acceptance got in first: answer what it made.
            drop(tx);
            return Box::pin(self.accept(caller, application_id, principal, account_id, trace))
                .await;
        }
        loan_event(
            &mut tx,
            "accepted",
            &id,
            json!({"application_id": application_id, "customer_id": state.offer.customer_id}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        let record = self.load(&id).await?;
        self.ensure_contract(record).await
    }

    /// Issues the loan's contract if it has none yet (the contracts service finds one issued
    /// before a crash by its subject, the loan's id).
    async fn ensure_contract(&self, record: LoanRecord) -> Result<LoanRecord, LendingError> {
        if record.contract_id.is_some() {
            return Ok(record);
        }
        let offer = &record.state.offer;
        let contract = self
            .links()?
            .loan_contract(&LoanContract {
                customer_id: record.customer_id.clone(),
                product_code: offer.product_code.clone(),
                product_version: offer.product_version,
                loan_id: record.id.clone(),
                principal: record.state.principal,
                term_months: offer.term_months,
                grade: offer.grade,
            })
            .await
            .map_err(|e| match e {
                IssueError::Refused(code, detail) => LendingError::ContractRefused(code, detail),
                IssueError::Peer(p) => LendingError::Peer(p),
            })?;
        sqlx::query(
            "UPDATE loans SET contract_id = $2, updated_at_us = $3 WHERE id = $1 AND contract_id IS NULL",
        )
        .bind(&record.id)
        .bind(&contract.id)
        .bind(now_us())
        .execute(self.store.writer())
        .await?;
        self.load(&record.id).await
    }

    async fn check_account(
        &self,
        links: &crate::links::Links,
        account_id: &str,
        customer_id: &str,
    ) -> Result<DepositFacts, LendingError> {
        let account = links
            .deposit(account_id)
            .await?
            .filter(|a| a.customer_id == customer_id)
            .ok_or_else(|| {
                LendingError::Invalid(
                    "invalid_account",
                    "`account_id` is not one of the customer's deposit accounts".into(),
                )
            })?;
        if account.kind != "demand_deposit" || account.status != "open" {
            return Err(LendingError::Invalid(
                "invalid_account",
                "a loan is paid into and repaid from an open demand deposit account".into(),
            ));
        }
        Ok(account)
    }

    /// A loan (needs `loans:read`, or `loans:read:own` for a customer's own loan — another
    /// customer's is not found); a pending step is finished first.
    pub async fn loan(&self, caller: &Caller, id: &str) -> Result<LoanRecord, LendingError> {
        let scope = caller
            .require_or_own(PERMISSION_LOANS_READ)
            .map_err(|_| LendingError::Forbidden(PERMISSION_LOANS_READ))?;
        let record = self.load(id).await?;
        if !scope.covers(&record.customer_id) {
            return Err(LendingError::LoanNotFound);
        }
        if record.pending {
            self.finish_pending(id).await?;
            return self.load(id).await;
        }
        Ok(record)
    }

    /// What paying the loan off would take on its open day today (nothing is changed): the
    /// days not closed yet are closed on a copy first.
    pub async fn payoff(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(Date, Allocation), LendingError> {
        let record = self.loan(caller, id).await?;
        let mut loan = record.state.loan.ok_or(LendingError::Conflict(
            "loan_not_disbursed",
            "the loan has not been paid out yet".into(),
        ))?;
        let yesterday = (self.today)() - Duration::days(1);
        while loan.closed_through < yesterday {
            let day = loan.open_day();
            loan.end_of_day(day, &self.servicing)
                .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
        }
        let date = loan.open_day();
        let (allocation, _) = loan
            .prepay(date, None, &self.servicing)
            .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
        Ok((date, allocation))
    }

    /// Loans, by id after `after`: one customer's, or in one status (a customer: its own).
    pub async fn loans(
        &self,
        caller: &Caller,
        customer_id: Option<&str>,
        status: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<LoanRecord>, LendingError> {
        let scope = caller
            .require_or_own(PERMISSION_LOANS_READ)
            .map_err(|_| LendingError::Forbidden(PERMISSION_LOANS_READ))?;
        // A customer lists its own loans alone (another's: none).
        let Some(customer_id) = scope.narrow(customer_id) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(concat!(
            select_loan!(),
            " WHERE ($1 = '' OR customer_id = $1) AND ($2 = '' OR status = $2) AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(customer_id.unwrap_or(""))
        .bind(status.unwrap_or(""))
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(self.store.reader())
        .await?;
        rows.iter().map(|r| self.open_loan(r)).collect()
    }

    /// Pays the loan out into the customer's deposit account, once its contract is signed.
    /// Repeating it answers the loan as disbursed.
    pub async fn disburse(
        &self,
        caller: &Caller,
        id: &str,
        trace: Option<TraceParent>,
    ) -> Result<LoanRecord, LendingError> {
        require(caller, PERMISSION_ORIGINATE)?;
        let links = self.links()?;
        let mut record = self.load(id).await?;
        if record.pending {
            self.finish_pending(id).await?;
            record = self.load(id).await?;
        }
        if record.status != "contracted" {
            return Ok(record);
        }
        let record = self.ensure_contract(record).await?;
        let contract_id = record.contract_id.clone().unwrap_or_default();
        let contract = links
            .contract(&contract_id)
            .await?
            .filter(|c| c.customer_id == record.customer_id)
            .ok_or(LendingError::Conflict(
                "contract_not_signed",
                "the loan's contract is not there".into(),
            ))?;
        if contract.status != "signed" {
            return Err(LendingError::Conflict(
                "contract_not_signed",
                format!(
                    "the loan's contract {} is {}: the customer signs it (POST /v1/contracts/{}/signatures) before the money is paid out",
                    contract.id, contract.status, contract.id
                ),
            ));
        }
        let account = self
            .check_account(links, &record.account_id, &record.customer_id)
            .await?;
        self.open_books(&record).await?;
        let today = (self.today)();
        let funding = account.ledger_id();
        let (_, receipt) = self
            .run_step(id, None, trace, move |record| {
                if record.status != "contracted" {
                    return Ok(None);
                }
                let mut next = record.state.clone();
                let terms = terms_of(&next.offer, next.principal, today);
                let (loan, postings) = Loan::disburse(terms, next.offer.prepayment_fee_rate)
                    .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
                next.loan = Some(loan);
                Ok(Some(Pending {
                    step: "disbursement".into(),
                    key: None,
                    funding,
                    postings,
                    next,
                    next_status: "current".into(),
                    receipt: Some(Receipt {
                        loan_id: record.id.clone(),
                        kind: "disbursement".into(),
                        value_date: today,
                        allocation: None,
                        amount: record.state.principal,
                        status: "current".into(),
                    }),
                    events: vec![(
                        "disbursed".into(),
                        json!({"account_id": record.account_id, "contract_id": record.contract_id}),
                    )],
                }))
            })
            .await?;
        let _ = receipt;
        self.load(id).await
    }

    /// The ledger accounts a loan posts to: the bank's (once) and the loan's own four.
    async fn open_books(&self, record: &LoanRecord) -> Result<(), LendingError> {
        let customer = uuid::Uuid::parse_str(&record.customer_id).map_or(0, |u| u.as_u128());
        let mut events = books::bank_accounts();
        events.extend(books::loan_accounts(&record.id, customer));
        let results = self.ledger()?.create_accounts(events).await?;
        use ledger::CreateAccountResult as AR;
        if let Some(bad) = results.iter().find(|r| !matches!(r, AR::Ok | AR::Exists)) {
            tracing::error!(loan = %record.id, result = bad.name(), "lending: the ledger refused a loan's accounts");
            return Err(LendingError::LedgerRefused(bad.name().to_owned()));
        }
        Ok(())
    }

    /// A payment of `amount` of what is due (fees, late interest, interest, principal), from
    /// the loan's deposit account, under `key`; on a written-off loan, a recovery.
    pub async fn repay(
        &self,
        caller: &Caller,
        id: &str,
        key: &str,
        amount: u128,
        trace: Option<TraceParent>,
    ) -> Result<Receipt, LendingError> {
        require(caller, PERMISSION_REPAY)?;
        let request = format!("repayment:{amount}");
        self.money_step(
            id,
            key,
            &request,
            trace,
            move |record, loan, date, policy| {
                let (allocation, postings) = loan
                    .repay(date, amount, policy)
                    .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
                let _ = record;
                Ok(("repayment", Some(allocation), postings, amount))
            },
        )
        .await
    }

    /// Prepays `principal` of the principal not yet billed (with everything due and the
    /// prepayment fee), or pays the loan off when `principal` is `None`, under `key`.
    pub async fn prepay(
        &self,
        caller: &Caller,
        id: &str,
        key: &str,
        principal: Option<u128>,
        trace: Option<TraceParent>,
    ) -> Result<Receipt, LendingError> {
        require(caller, PERMISSION_REPAY)?;
        let request = format!("prepayment:{principal:?}");
        self.money_step(id, key, &request, trace, move |_, loan, date, policy| {
            let (allocation, postings) = loan
                .prepay(date, principal, policy)
                .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
            let paid = allocation.total();
            Ok(("prepayment", Some(allocation), postings, paid))
        })
        .await
    }

    /// Restructures: arrears capitalised, a new schedule from today on `new`, under `key`.
    pub async fn restructure(
        &self,
        caller: &Caller,
        id: &str,
        key: &str,
        new: Restructuring,
        trace: Option<TraceParent>,
    ) -> Result<Receipt, LendingError> {
        require(caller, PERMISSION_MANAGE)?;
        if new.annual_rate > self.servicing.legal_max_rate || new.annual_rate.is_sign_negative() {
            return Err(LendingError::Invalid(
                "invalid_rate",
                format!(
                    "`annual_rate` is from 0 to the legal maximum {}",
                    self.servicing.legal_max_rate
                ),
            ));
        }
        let request = format!("restructuring:{}", to_json_text(&new));
        self.money_step(id, key, &request, trace, move |_, loan, date, policy| {
            let postings = loan
                .restructure(date, &new, policy)
                .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
            Ok(("restructuring", None, postings, 0))
        })
        .await
    }

    /// Writes a defaulted loan off, under `key`.
    pub async fn write_off(
        &self,
        caller: &Caller,
        id: &str,
        key: &str,
        trace: Option<TraceParent>,
    ) -> Result<Receipt, LendingError> {
        require(caller, PERMISSION_MANAGE)?;
        self.money_step(id, key, "write_off", trace, move |_, loan, date, _| {
            let postings = loan
                .write_off(date)
                .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
            Ok(("write_off", None, postings, 0))
        })
        .await
    }

    /// A step on a disbursed loan under an Idempotency-Key: the loan is first brought through
    /// every business day before today that was not closed yet, then `apply` runs on the open
    /// day. The same key with the same request answers the first outcome; with another, 409.
    async fn money_step<F>(
        &self,
        id: &str,
        key: &str,
        request: &str,
        trace: Option<TraceParent>,
        apply: F,
    ) -> Result<Receipt, LendingError>
    where
        F: Fn(
                &LoanRecord,
                &mut Loan,
                Date,
                &crate::servicing::Policy,
            )
                -> Result<(&'static str, Option<Allocation>, Vec<Posting>, u128), LendingError>
            + Send
            + Sync,
    {
        check_key(key)?;
        let request_sha256 = kernel::hex(&Sha256::digest(request.as_bytes()));
        let record = self.load(id).await?;
        if let Some(done) = self.step_outcome(&record, key, &request_sha256).await? {
            return Ok(done);
        }
        if record.state.loan.is_none() {
            return Err(LendingError::Conflict(
                "loan_not_disbursed",
                "the loan has not been paid out yet".into(),
            ));
        }
        // The account's ledger account, from its id: a closed one is refused by the ledger.
        let funding = crate::links::deposit_ledger_id(&record.account_id);
        self.catch_up(id, (self.today)() - Duration::days(1), trace)
            .await?;
        let policy = self.servicing.clone();
        let key_owned = key.to_owned();
        let (record, receipt) = self
            .run_step(id, Some((key, &request_sha256)), trace, move |record| {
                let mut next = record.state.clone();
                let Some(loan) = next.loan.as_mut() else {
                    return Ok(None);
                };
                let date = loan.open_day();
                let before = loan.clone();
                let (kind, allocation, postings, amount) = apply(record, loan, date, &policy)?;
                let status = status_name(loan.status).to_owned();
                let paid = allocation.map_or(0, |a| a.total());
                if paid > 0
                    && let Some(p) = next.promises.last_mut()
                {
                    p.paid_since += paid;
                }
                let mut events = vec![(
                    kind.replace('_', "-"),
                    json!({"idempotency_key": key_owned, "value_date": date.to_string()}),
                )];
                if before.status != next.loan.as_ref().map_or(before.status, |l| l.status) {
                    events.push((
                        status.replace('_', "-"),
                        json!({"value_date": date.to_string()}),
                    ));
                }
                Ok(Some(Pending {
                    step: format!("{kind}/{key_owned}"),
                    key: Some(key_owned.clone()),
                    funding,
                    postings,
                    next,
                    next_status: status.clone(),
                    receipt: Some(Receipt {
                        loan_id: record.id.clone(),
                        kind: kind.to_owned(),
                        value_date: date,
                        allocation,
                        amount,
                        status,
                    }),
                    events,
                }))
            })
            .await?;
        match receipt {
            Some(r) => Ok(r),
            None => self
                .step_outcome(&record, key, &request_sha256)
                .await?
                .ok_or(LendingError::Conflict(
                    "loan_not_disbursed",
                    "the loan has not been paid out yet".into(),
                )),
        }
    }

    /// The outcome stored under `key`, if the step finished; 409 if the key was used for
    /// another request.
    async fn step_outcome(
        &self,
        record: &LoanRecord,
        key: &str,
        request_sha256: &str,
    ) -> Result<Option<Receipt>, LendingError> {
        let row = sqlx::query(
            "SELECT request_sha256, status, outcome FROM loan_steps WHERE loan_id = $1 AND idempotency_key = $2",
        )
        .bind(&record.id)
        .bind(key)
        .fetch_optional(self.store.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let sha: String = row.try_get("request_sha256")?;
        if sha != request_sha256 {
            return Err(LendingError::Conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used for another request on this loan".into(),
            ));
        }
        let status: String = row.try_get("status")?;
        if status != "done" {
            // Pending: finish it, then read the outcome.
            self.finish_pending(&record.id).await?;
            return Box::pin(self.step_outcome(&self.load(&record.id).await?, key, request_sha256))
                .await;
        }
        let outcome: Vec<u8> = row.try_get("outcome")?;
        let key_ = self.loan_key(&record.id).await?;
        let plain = key_.open(&record.id, &format!("step/{key}"), &outcome)?;
        Ok(Some(
            serde_json::from_slice(&plain).map_err(|_| VaultError::Format)?,
        ))
    }

    /// Closes every business day up to `through` that the loan has not closed yet.
    async fn catch_up(
        &self,
        id: &str,
        through: Date,
        trace: Option<TraceParent>,
    ) -> Result<(), LendingError> {
        let policy = self.servicing.clone();
        loop {
            let (record, _) = self
                .run_step(id, None, trace, |record| {
                    Ok(plan_days(record, through, &policy)?.map(|(p, _)| p))
                })
                .await?;
            let behind = record
                .state
                .loan
                .as_ref()
                .is_some_and(|l| l.closed_through < through && is_serviced(&record.status));
            if !behind {
                return Ok(());
            }
        }
    }

    /// Runs one step on loan `id`: finishes a pending step first, asks `plan` for this one
    /// (none: nothing to do), records it as pending, posts it, and commits it. Answers the loan
    /// as it ended and the step's receipt.
    async fn run_step<F>(
        &self,
        id: &str,
        key: Option<(&str, &str)>,
        trace: Option<TraceParent>,
        plan: F,
    ) -> Result<(LoanRecord, Option<Receipt>), LendingError>
    where
        F: Fn(&LoanRecord) -> Result<Option<Pending>, LendingError>,
    {
        for _ in 0..STEP_ATTEMPTS {
            let record = self.load(id).await?;
            if record.pending {
                self.finish_pending(id).await?;
                continue;
            }
            let Some(pending) = plan(&record)? else {
                return Ok((record, None));
            };
            let loan_key = self.loan_key(id).await?;
            let sealed = loan_key.seal(id, "pending", &to_json(&pending));
            let now = now_us();
            let mut tx = self.store.begin().await?;
            let updated = sqlx::query(
                "UPDATE loans SET pending = $3, version = version + 1, updated_at_us = $4 \
                 WHERE id = $1 AND version = $2 AND pending IS NULL",
            )
            .bind(id)
            .bind(record.version)
            .bind(&sealed)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                continue;
            }
            if let Some((key, sha)) = key {
                let inserted = sqlx::query(
                    "INSERT INTO loan_steps (loan_id, idempotency_key, request_sha256, status, created_at_us) \
                     VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (loan_id, idempotency_key) DO NOTHING",
                )
                .bind(id)
                .bind(key)
                .bind(sha)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    // The same key got in first on another request: its outcome answers.
                    return Ok((record, None));
                }
            }
            tx.commit().await?;
            let _ = trace;
            let receipt = self.finish_pending(id).await?;
            return Ok((self.load(id).await?, receipt));
        }
        Err(LendingError::Busy)
    }

    /// Finishes the loan's pending step, if it has one: posts it (again: the ledger answers
    /// `exists` for what it has) and commits it, or discards it if the ledger refuses it.
    async fn finish_pending(&self, id: &str) -> Result<Option<Receipt>, LendingError> {
        let row = sqlx::query("SELECT version, pending FROM loans WHERE id = $1")
            .bind(id)
            .fetch_optional(self.store.reader())
            .await?
            .ok_or(LendingError::LoanNotFound)?;
        let version: i64 = row.try_get("version")?;
        let Some(sealed): Option<Vec<u8>> = row.try_get("pending")? else {
            return Ok(None);
        };
        let loan_key = self.loan_key(id).await?;
        let pending: Pending = match marked_through(&sealed) {
            // An end of day's mark: the step is recomputed from the committed state.
            Some(through) => {
                let record = self.load(id).await?;
                plan_days(&record, through, &self.servicing)?
                    .map_or_else(|| Pending::unchanged(&record), |(p, _)| p)
            }
            None => serde_json::from_slice(&loan_key.open(id, "pending", &sealed)?)
                .map_err(|_| VaultError::Format)?,
        };
        let transfers = chain(id, &pending);
        let refused = if transfers.is_empty() {
            None
        } else {
            let results = self.ledger()?.create_transfers(transfers).await?;
            results
                .iter()
                .find(|r| !matches!(r, TR::Ok | TR::Exists | TR::LinkedEventFailed))
                .map(|r| r.name().to_owned())
                .or_else(|| {
                    results
                        .contains(&TR::LinkedEventFailed)
                        .then(|| "linked_event_failed".to_owned())
                })
        };
        let now = now_us();
        let mut tx = self.store.begin().await?;
        if let Some(code) = refused {
            let discarded = sqlx::query(
                "UPDATE loans SET pending = NULL, version = version + 1, updated_at_us = $3 WHERE id = $1 AND version = $2",
            )
            .bind(id)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some(key) = &pending.key {
                sqlx::query("DELETE FROM loan_steps WHERE loan_id = $1 AND idempotency_key = $2 AND status = 'pending'")
                    .bind(id)
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            if discarded.rows_affected() > 0 {
                tracing::warn!(loan = id, step = %pending.step, result = %code, "lending: the ledger refused a step; nothing moved");
            }
            return Err(LendingError::LedgerRefused(code));
        }
        let next_sealed = loan_key.seal(id, "loan", &state_bytes(&pending.next));
        let closed_through = pending.closed_through();
        let committed = sqlx::query(
            "UPDATE loans SET sealed = $3, status = $4, closed_through = $5, pending = NULL, \
             version = version + 1, updated_at_us = $6 WHERE id = $1 AND version = $2",
        )
        .bind(id)
        .bind(version)
        .bind(&next_sealed)
        .bind(&pending.next_status)
        .bind(closed_through)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if committed.rows_affected() == 0 {
            // Finished by someone else meanwhile.
            return Ok(pending.receipt);
        }
        if let (Some(key), Some(receipt)) = (&pending.key, &pending.receipt) {
            let outcome = loan_key.seal(id, &format!("step/{key}"), &to_json(receipt));
            sqlx::query(
                "UPDATE loan_steps SET status = 'done', outcome = $3 WHERE loan_id = $1 AND idempotency_key = $2",
            )
            .bind(id)
            .bind(key)
            .bind(&outcome)
            .execute(&mut *tx)
            .await?;
        }
        let customer_id: String = sqlx::query_scalar("SELECT customer_id FROM loans WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        for (verb, data) in &pending.events {
            let mut data = data.clone();
            data["loan_id"] = json!(id);
            data["customer_id"] = json!(customer_id);
            loan_event(&mut tx, verb, id, data, None, now).await?;
        }
        tx.commit().await?;
        Ok(pending.receipt)
    }

    /// End of day for business date `date` over every serviced loan: each is brought through
    /// every day up to `date` it has not closed (accrual, late interest, instalments billed the
    /// day before they fall due, days past due and status), with a notice event for each
    /// instalment billed and each status change. Idempotent per date; a crashed run resumes
    /// where it stopped.
    ///
    /// Loans go in pages: one statement marks a page's loans as pending this end of day (the
    /// marker names only the date: the step is recomputed from the loan's committed state by
    /// whoever finishes it, and no other step can change that state while it is marked), the
    /// page is planned and sealed on every core, posted in batches, and committed in a few
    /// multi-row statements. Loans a page skipped (a step of their own pending) or the ledger
    /// refused are then taken one by one.
    pub async fn end_of_day(
        &self,
        caller: &Caller,
        date: Date,
        trace: Option<TraceParent>,
    ) -> Result<EodReport, LendingError> {
        require(caller, PERMISSION_EOD)?;
        if date >= (self.today)() {
            return Err(LendingError::Conflict(
                "business_date_not_over",
                format!("the business date {date} is not over yet"),
            ));
        }
        let Some(lease) = self.store.try_lease("lending-eod").await? else {
            return Err(LendingError::Conflict(
                "eod_in_progress",
                "another end of day is running; try again when it has finished".into(),
            ));
        };
        let report = self.close_all(date, trace).await;
        lease.release().await;
        report
    }

    /// End of day's work, under the lease.
    async fn close_all(
        &self,
        date: Date,
        trace: Option<TraceParent>,
    ) -> Result<EodReport, LendingError> {
        self.ledger()?;
        sqlx::query(
            "INSERT INTO loan_eod_runs (business_date, started_at_us, loans) VALUES ($1, $2, 0) \
             ON CONFLICT (business_date) DO UPDATE SET started_at_us = $2",
        )
        .bind(date.to_string())
        .bind(now_us())
        .execute(self.store.writer())
        .await?;
        let mut report = EodReport {
            business_date: date.to_string(),
            ..EodReport::default()
        };
        let marker = eod_marker(date);
        // Pipelined: page N commits (on the store's writer) while page N+1 is planned, sealed
        // and posted (on the cores and the ledger), and page N's transaction also marks page
        // N+2, so a page costs the writer one transaction, and the writer never waits on the
        // planning.
        let mut after = String::new();
        let mut rows = self.mark_next_page(&marker, date, &after).await?;
        last_id(&rows, &mut after)?;
        let mut prepared: Option<Vec<Planned>> = None;
        while !rows.is_empty() || prepared.is_some() {
            let committing = prepared.take().map(|done| {
                let next = NextPage {
                    marker: marker.clone(),
                    date,
                    after: after.clone(),
                };
                tokio::spawn(commit_page(self.store.clone(), done, next, trace))
            });
            let planned = if rows.is_empty() {
                None
            } else {
                Some(self.prepare_page(&rows, date).await)
            };
            rows = match committing {
                Some(committing) => match committing.await {
                    Ok(page) => {
                        let (page, marked) = page?;
                        report.add(&page);
                        marked
                    }
                    Err(e) => match e.try_into_panic() {
                        Ok(panic) => std::panic::resume_unwind(panic),
                        // Cancelled: the runtime is shutting down; the pages stay marked.
                        Err(_) => return Err(LendingError::Busy),
                    },
                },
                None => self.mark_next_page(&marker, date, &after).await?,
            };
            last_id(&rows, &mut after)?;
            if let Some(planned) = planned {
                prepared = Some(planned?);
            }
        }
        // The loans left behind, one by one.
        let mut after = String::new();
        loop {
            let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM loans WHERE status IN {SERVICED} \
                 AND (closed_through IS NULL OR closed_through < $1) AND id > $2 ORDER BY id LIMIT 500"
            )))
            .bind(date.to_string())
            .bind(&after)
            .fetch_all(self.store.reader())
            .await?;
            let Some(last) = ids.last() else { break };
            after = last.clone();
            for id in &ids {
                let before = self.load(id).await?;
                let closed = match self.finish_pending(id).await {
                    Ok(_) => self.catch_up(id, date, trace).await,
                    Err(e) => Err(e),
                };
                match closed {
                    Ok(()) => {
                        let counts = DayCounts::between(&before, &self.load(id).await?);
                        report.add(&EodReport {
                            loans: 1,
                            days: counts.days,
                            billed: counts.billed,
                            status_changes: counts.status_changes,
                            ..EodReport::default()
                        });
                    }
                    Err(
                        e @ (LendingError::LedgerRefused(_)
                        | LendingError::Invalid(..)
                        | LendingError::Busy),
                    ) => {
                        tracing::error!(loan = %id, error = %e, "lending: end of day cannot close a loan");
                        report.failed += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        sqlx::query(
            "UPDATE loan_eod_runs SET finished_at_us = $2, loans = $3 WHERE business_date = $1",
        )
        .bind(date.to_string())
        .bind(now_us())
        .bind(i64::try_from(report.loans).unwrap_or(i64::MAX))
        .execute(self.store.writer())
        .await?;
        Ok(report)
    }

    /// Marks the next page after `after` outside a page's commit, and reads it back.
    async fn mark_next_page(
        &self,
        marker: &[u8],
        date: Date,
        after: &str,
    ) -> Result<Vec<sqlx::any::AnyRow>, LendingError> {
        mark_page(self.store.writer(), marker, date, after).await?;
        marked_page(&self.store, marker, after).await
    }

    /// One marked page, planned and sealed on every core and posted in batches that never
    /// split a loan's chain: the steps the ledger took, for [`commit_page`]. A loan the ledger
    /// refused (or that could not be planned) stays marked for the one-by-one pass.
    async fn prepare_page(
        &self,
        rows: &[sqlx::any::AnyRow],
        date: Date,
    ) -> Result<Vec<Planned>, LendingError> {
        let policy = self.servicing.clone();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = rows.len().div_ceil(threads).max(1);
        let planned: Vec<Result<Planned, LendingError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = rows
                .chunks(per)
                .map(|part| {
                    let policy = &policy;
                    scope.spawn(move || {
                        part.iter()
                            .map(|row| self.plan_row(row, date, policy))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("planning does not panic"))
                .collect()
        });
        let mut steps = Vec::with_capacity(planned.len());
        for plan in planned {
            match plan {
                Ok(p) => steps.push(p),
                Err(e) => {
                    // Left marked: the one-by-one pass reports it.
                    tracing::warn!(error = %e, "lending: a loan could not be planned in its page");
                }
            }
        }
        // Posted in batches that never split a loan's chain.
        let mut transfers = Vec::new();
        let mut owner = Vec::new();
        for (n, step) in steps.iter().enumerate() {
            let chain = chain(&step.record.id, &step.pending);
            owner.extend(std::iter::repeat_n(n, chain.len()));
            transfers.extend(chain);
        }
        let mut refused = vec![false; steps.len()];
        let mut offset = 0;
        for batch in crate::eod::batches(&transfers, crate::eod::transfer_linked, 8_190) {
            let results = self.ledger()?.create_transfers(batch.to_vec()).await?;
            for (j, r) in results.iter().enumerate() {
                if !matches!(r, TR::Ok | TR::Exists) {
                    refused[owner[offset + j]] = true;
                }
            }
            offset += batch.len();
        }
        Ok(steps
            .into_iter()
            .zip(refused)
            .filter(|(_, refused)| !*refused)
            .map(|(s, _)| s)
            .collect())
    }

    /// A marked row's step: opened, planned through `date`, the next state sealed.
    fn plan_row(
        &self,
        row: &sqlx::any::AnyRow,
        date: Date,
        policy: &crate::servicing::Policy,
    ) -> Result<Planned, LendingError> {
        let record = self.open_loan(row)?;
        let (pending, counts) = plan_days(&record, date, policy)?
            .unwrap_or_else(|| (Pending::unchanged(&record), DayCounts::default()));
        let key = self.key_of_row(row)?;
        let sealed_next = key.seal(&record.id, "loan", &state_bytes(&pending.next));
        Ok(Planned {
            sealed_next,
            record,
            pending,
            counts,
        })
    }

    /// Inserts a new loan row at version 1, its state sealed under a new data key of its own.
    /// False if a loan with this id or for this application exists already.
    #[allow(clippy::too_many_arguments)]
    async fn insert_loan(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &str,
        state: &LoanState,
        account_id: &str,
        status: &str,
        closed_through: Option<String>,
        now: i64,
    ) -> Result<bool, LendingError> {
        let (key, wrapped) = self.vault.new_data_key(id)?;
        let sealed = key.seal(id, "loan", &state_bytes(state));
        let inserted = sqlx::query(
            "INSERT INTO loans (id, application_id, customer_id, product_code, product_version, account_id, \
             status, closed_through, version, master_key_id, wrapped_key, sealed, created_at_us, updated_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $12, $12) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&state.offer.application_id)
        .bind(&state.offer.customer_id)
        .bind(&state.offer.product_code)
        .bind(state.offer.product_version)
        .bind(account_id)
        .bind(status)
        .bind(closed_through)
        .bind(&wrapped.master_key_id)
        .bind(&wrapped.bytes)
        .bind(&sealed)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Takes over loans disbursed elsewhere, as they stand — a book migrated from another core,
    /// a benchmark's portfolio: `(id, customer_id, account_id, loan)` under `product_code`
    /// version `product_version`. The caller has opened each loan's ledger accounts
    /// ([`books::loan_accounts`]) and posted balances equal to its receivables. No route serves
    /// this; an import is an operation run once, with the ledger checked after.
    pub async fn import_loans(
        &self,
        product_code: &str,
        product_version: i64,
        loans: Vec<(String, String, String, Loan)>,
    ) -> Result<u64, LendingError> {
        let now = now_us();
        let mut imported = 0;
        for chunk in loans.chunks(1_000) {
            let mut tx = self.store.begin().await?;
            for (id, customer_id, account_id, loan) in chunk {
                let offer = Offer {
                    application_id: format!("import/{id}"),
                    customer_id: customer_id.clone(),
                    product_code: product_code.to_owned(),
                    product_version,
                    limit: loan.terms.principal,
                    minimum: loan.terms.principal,
                    annual_rate: loan.terms.annual_rate,
                    term_months: loan.terms.term_months,
                    method: loan.terms.method,
                    grace_months: loan.terms.grace_months,
                    grade: 0,
                    prepayment_fee_rate: loan.prepayment_fee_rate,
                    expires_on: loan.disbursed_on,
                };
                let state = LoanState {
                    principal: loan.terms.principal,
                    offer,
                    loan: Some(loan.clone()),
                    promises: Vec::new(),
                    contacts: Vec::new(),
                };
                let closed_through = Some(loan.closed_through.to_string());
                let status = status_name(loan.status);
                let inserted = self
                    .insert_loan(&mut tx, id, &state, account_id, status, closed_through, now)
                    .await?;
                imported += u64::from(inserted);
            }
            tx.commit().await?;
        }
        Ok(imported)
    }

    /// The collections queue: every loan with something past due, most urgent first, with
    /// what the playbook asks for next (a loan with a pending promise waits).
    pub async fn collections_queue(
        &self,
        caller: &Caller,
        limit: u32,
    ) -> Result<Vec<QueueItem>, LendingError> {
        require(caller, PERMISSION_COLLECT)?;
        let mut cases = Vec::new();
        let mut records = std::collections::HashMap::new();
        let mut after = String::new();
        loop {
            let rows = sqlx::query(concat!(
                select_loan!(),
                " WHERE status IN ('delinquent', 'default') AND id > $1 ORDER BY id LIMIT 500"
            ))
            .bind(&after)
            .fetch_all(self.store.reader())
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            for row in &rows {
                let record = self.open_loan(row)?;
                let Some(loan) = &record.state.loan else {
                    continue;
                };
                cases.push(Case {
                    loan_id: record.id.clone(),
                    days_past_due: loan.days_past_due(),
                    past_due: loan.due_total(),
                    promise: promise_state(&record.state, loan.closed_through),
                });
                records.insert(record.id.clone(), record);
            }
        }
        Ok(collections::queue(cases)
            .into_iter()
            .take(limit.clamp(1, 500) as usize)
            .map(|case| {
                let record = &records[&case.loan_id];
                let last = record.state.contacts.last().map(|c| c.action);
                QueueItem {
                    next_action: case.next_action(last),
                    customer_id: record.customer_id.clone(),
                    bucket: crate::servicing::Bucket::of(case.days_past_due),
                    days_past_due: case.days_past_due,
                    past_due: case.past_due,
                    promise: case.promise,
                    loan_id: case.loan_id,
                }
            })
            .collect())
    }

    /// Records a promise to pay `amount` (at most what is past due) by `due_by`.
    pub async fn promise(
        &self,
        caller: &Caller,
        id: &str,
        amount: u128,
        due_by: Date,
        trace: Option<TraceParent>,
    ) -> Result<LoanRecord, LendingError> {
        require(caller, PERMISSION_COLLECT)?;
        let today = (self.today)();
        let by = caller.principal.clone();
        self.record_change(id, trace, "promise-taken", move |state| {
            let loan = state.loan.as_ref().ok_or(LendingError::Conflict(
                "loan_not_disbursed",
                "the loan has not been paid out yet".into(),
            ))?;
            let promise = Promise::new(today, due_by, amount, loan.due_total())
                .map_err(|e| LendingError::Invalid(e.code, e.detail))?;
            state.promises.push(PromiseRecord {
                promise,
                taken_by: by.clone(),
                paid_since: 0,
            });
            trim(&mut state.promises);
            Ok(json!({"due_by": due_by.to_string()}))
        })
        .await
    }

    /// Records a collector's contact.
    pub async fn contact(
        &self,
        caller: &Caller,
        id: &str,
        action: Action,
        note: &str,
        trace: Option<TraceParent>,
    ) -> Result<LoanRecord, LendingError> {
        require(caller, PERMISSION_COLLECT)?;
        if note.chars().count() > 500 || note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(LendingError::Invalid(
                "invalid_note",
                "`note` is at most 500 characters".into(),
            ));
        }
        let today = (self.today)();
        let contact = Contact {
            action,
            on: today,
            by: caller.principal.clone(),
            note: note.to_owned(),
        };
        self.record_change(id, trace, "contacted", move |state| {
            if state.loan.is_none() {
                return Err(LendingError::Conflict(
                    "loan_not_disbursed",
                    "the loan has not been paid out yet".into(),
                ));
            }
            state.contacts.push(contact.clone());
            trim(&mut state.contacts);
            Ok(json!({"action": contact.action}))
        })
        .await
    }

    /// A change to the sealed state that moves no money (the collections record).
    async fn record_change<F>(
        &self,
        id: &str,
        trace: Option<TraceParent>,
        verb: &str,
        change: F,
    ) -> Result<LoanRecord, LendingError>
    where
        F: Fn(&mut LoanState) -> Result<Value, LendingError>,
    {
        for _ in 0..STEP_ATTEMPTS {
            let record = self.load(id).await?;
            if record.pending {
                self.finish_pending(id).await?;
                continue;
            }
            let mut state = record.state.clone();
            let mut data = change(&mut state)?;
            data["loan_id"] = json!(id);
            data["customer_id"] = json!(record.customer_id);
            let sealed = self
                .loan_key(id)
                .await?
                .seal(id, "loan", &state_bytes(&state));
            let now = now_us();
            let mut tx = self.store.begin().await?;
            let updated = sqlx::query(
                "UPDATE loans SET sealed = $3, version = version + 1, updated_at_us = $4 \
                 WHERE id = $1 AND version = $2 AND pending IS NULL",
            )
            .bind(id)
            .bind(record.version)
            .bind(&sealed)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 {
                continue;
            }
            loan_event(&mut tx, verb, id, data, trace, now).await?;
            tx.commit().await?;
            return self.load(id).await;
        }
        Err(LendingError::Busy)
    }

    async fn loan_of_application(
        &self,
        application_id: &str,
    ) -> Result<Option<LoanRecord>, LendingError> {
        let row = sqlx::query(concat!(select_loan!(), " WHERE application_id = $1"))
            .bind(application_id)
            .fetch_optional(self.store.reader())
            .await?;
        row.map(|r| self.open_loan(&r)).transpose()
    }

    /// A loan as stored (permission checked by the caller).
    pub(crate) async fn load(&self, id: &str) -> Result<LoanRecord, LendingError> {
        let row = sqlx::query(concat!(select_loan!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.reader())
            .await?
            .ok_or(LendingError::LoanNotFound)?;
        self.open_loan(&row)
    }

    async fn loan_key(&self, id: &str) -> Result<DataKey, LendingError> {
        let row = sqlx::query("SELECT id, master_key_id, wrapped_key FROM loans WHERE id = $1")
            .bind(id)
            .fetch_optional(self.store.reader())
            .await?
            .ok_or(LendingError::LoanNotFound)?;
        self.key_of_row(&row)
    }

    fn key_of_row(&self, row: &sqlx::any::AnyRow) -> Result<DataKey, LendingError> {
        let id: String = row.try_get("id")?;
        let wrapped = WrappedKey {
            master_key_id: row.try_get("master_key_id")?,
            bytes: row.try_get("wrapped_key")?,
        };
        Ok(self.vault.data_key(&id, &wrapped)?)
    }

    fn open_loan(&self, row: &sqlx::any::AnyRow) -> Result<LoanRecord, LendingError> {
        let id: String = row.try_get("id")?;
        let key = self.key_of_row(row)?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        let state = state_from(&key.open(&id, "loan", &sealed)?)?;
        let pending: Option<Vec<u8>> = row.try_get("pending")?;
        Ok(LoanRecord {
            application_id: row.try_get("application_id")?,
            customer_id: row.try_get("customer_id")?,
            account_id: row.try_get("account_id")?,
            contract_id: row.try_get("contract_id")?,
            status: row.try_get("status")?,
            version: row.try_get("version")?,
            created_at_us: row.try_get("created_at_us")?,
            pending: pending.is_some(),
            state,
            id,
        })
    }
}

macro_rules! loan_columns {
    () => {
        "id, application_id, customer_id, account_id, contract_id, status, version, \
         master_key_id, wrapped_key, sealed, pending, created_at_us"
    };
}
use loan_columns;

macro_rules! select_loan {
    () => {
        concat!("SELECT ", loan_columns!(), " FROM loans")
    };
}
use select_loan;

/// A page's loan, planned: its step and its next state sealed.
struct Planned {
    record: LoanRecord,
    pending: Pending,
    counts: DayCounts,
    sealed_next: Vec<u8>,
}

impl Pending {
    /// The last business day closed once the step is committed.
    fn closed_through(&self) -> Option<String> {
        self.next
            .loan
            .as_ref()
            .map(|l| l.closed_through.to_string())
    }

    /// A step that changes nothing (clears a mark).
    fn unchanged(record: &LoanRecord) -> Pending {
        Pending {
            step: "unchanged".into(),
            key: None,
            funding: 0,
            postings: Vec::new(),
            next: record.state.clone(),
            next_status: record.status.clone(),
            receipt: None,
            events: Vec::new(),
        }
    }
}

/// An end of day's mark in the `pending` column: `eod:<date>` (a sealed step never starts
/// with `e`: sealed values start with their format byte).
fn eod_marker(date: Date) -> Vec<u8> {
    format!("eod:{date}").into_bytes()
}

/// The date an end of day's mark names.
fn marked_through(pending: &[u8]) -> Option<Date> {
    let text = std::str::from_utf8(pending.strip_prefix(b"eod:")?).ok()?;
    products::service::parse_date(text)
}

/// Rows per multi-row commit statement (5 parameters each): sqlx binds SQLite parameters by
/// name, a search over all of them, so a statement with thousands is slower per row.
const COMMIT_ROWS: usize = 100;

/// What closing a loan's days did.
#[derive(Clone, Copy, Debug, Default)]
struct DayCounts {
    days: u64,
    billed: u64,
    status_changes: u64,
}

impl DayCounts {
    /// What closing days took a loan through, from `before` to `after` (the one-by-one pass
    /// of end of day, which does not plan the days itself).
    fn between(before: &LoanRecord, after: &LoanRecord) -> DayCounts {
        let (Some(b), Some(a)) = (&before.state.loan, &after.state.loan) else {
            return DayCounts::default();
        };
        DayCounts {
            days: u64::try_from((a.closed_through - b.closed_through).whole_days()).unwrap_or(0),
            billed: u64::from(a.billed.saturating_sub(b.billed)),
            status_changes: u64::from(before.status != after.status),
        }
    }
}

/// The step closing every day of the loan up to `through` (at most [`CATCH_UP_DAYS_MAX`] in
/// one step); none if it is closed through it already or not serviced. Closing days moves no
/// money in or out, so the step has no funding side.
fn plan_days(
    record: &LoanRecord,
    through: Date,
    policy: &crate::servicing::Policy,
) -> Result<Option<(Pending, DayCounts)>, LendingError> {
    if !is_serviced(&record.status) {
        return Ok(None);
    }
    let mut next = record.state.clone();
    let Some(loan) = next.loan.as_mut() else {
        return Ok(None);
    };
    if loan.closed_through >= through {
        return Ok(None);
    }
    let first = loan.open_day();
    let last = through.min(first + Duration::days(CATCH_UP_DAYS_MAX - 1));
    let mut postings = Vec::new();
    let mut events = Vec::new();
    let mut counts = DayCounts::default();
    let mut day = first;
    while day <= last {
        let status = loan.status;
        let billed = loan.billed;
        postings.extend(
            loan.end_of_day(day, policy)
                .map_err(|e| LendingError::Invalid(e.code, e.detail))?,
        );
        counts.days += 1;
        for number in billed + 1..=loan.billed {
            if let Some(due) = loan.due.iter().find(|d| d.number == number) {
                counts.billed += 1;
                events.push((
                    "installment-due".to_owned(),
                    json!({"number": number, "due_date": due.due_date.to_string()}),
                ));
            }
        }
        if loan.status != status {
            counts.status_changes += 1;
            events.push((
                status_name(loan.status).replace('_', "-"),
                json!({"business_date": day.to_string(), "days_past_due": loan.days_past_due()}),
            ));
        }
        day += Duration::days(1);
    }
    let next_status = status_name(loan.status).to_owned();
    Ok(Some((
        Pending {
            step: format!("eod/{first}/{last}"),
            key: None,
            funding: 0,
            postings,
            next,
            next_status,
            receipt: None,
            events,
        },
        counts,
    )))
}

/// The pending step's transfers: one linked chain.
fn chain(loan_id: &str, pending: &Pending) -> Vec<ledger::TransferEvent> {
    books::transfers(loan_id, &pending.step, &pending.postings, pending.funding)
}

/// Whether a loan's days are still closed: every disbursed loan not repaid — a written-off one
/// too (nothing accrues, but its open day moves, so a recovery counts on today).
fn is_serviced(status: &str) -> bool {
    matches!(status, "current" | "delinquent" | "default" | "written_off")
}

/// The API name of a status.
pub fn status_name(status: Status) -> &'static str {
    match status {
        Status::Current => "current",
        Status::Delinquent => "delinquent",
        Status::Default => "default",
        Status::WrittenOff => "written_off",
        Status::Closed => "closed",
    }
}

/// The latest promise's state after the end of `closed_through`.
fn promise_state(state: &LoanState, closed_through: Date) -> Option<PromiseState> {
    state
        .promises
        .last()
        .map(|p| p.promise.state(closed_through, p.paid_since))
}

/// The terms of a loan from `offer` for `principal`, starting `start`.
fn terms_of(offer: &Offer, principal: u128, start: Date) -> Terms {
    Terms {
        principal,
        annual_rate: offer.annual_rate,
        term_months: offer.term_months,
        method: offer.method,
        grace_months: offer.grace_months,
        start_date: start,
    }
}

/// The instalments still to come, as the loan stands.
pub fn upcoming(state: &LoanState) -> Vec<Installment> {
    state
        .loan
        .as_ref()
        .and_then(|l| l.upcoming().ok())
        .unwrap_or_default()
}

fn trim<T>(v: &mut Vec<T>) {
    if v.len() > COLLECTION_RECORDS_MAX {
        let excess = v.len() - COLLECTION_RECORDS_MAX;
        v.drain(..excess);
    }
}

fn require(caller: &Caller, permission: &'static str) -> Result<(), LendingError> {
    if caller.may(permission) {
        Ok(())
    } else {
        Err(LendingError::Forbidden(permission))
    }
}

/// An Idempotency-Key: 1 to 100 visible ASCII characters.
fn check_key(key: &str) -> Result<(), LendingError> {
    if key.is_empty() || key.len() > 100 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LendingError::Invalid(
            "invalid_idempotency_key",
            "`Idempotency-Key` is 1 to 100 visible ASCII characters".into(),
        ));
    }
    Ok(())
}

/// The first byte of a loan's state as sealed when it is deflated JSON (written before
/// [`STATE_LZ4`]; still read). A state sealed as plain JSON starts with `{`, and is read as such.
const STATE_DEFLATED: u8 = 1;
/// The first byte of a loan's state as sealed now: its JSON's length (4 bytes, little-endian)
/// and the JSON as an LZ4 block compressed against [`STATE_DICTIONARY`].
const STATE_LZ4: u8 = 2;
/// What an LZ4-sealed state is compressed against: a state's JSON keys and common values, in
/// the order they are written (most of a state's JSON is its keys). Part of the stored
/// format: states sealed under [`STATE_LZ4`] read only with these exact bytes, so a better
/// dictionary takes a new format byte.
const STATE_DICTIONARY: &[u8] = br#"{"offer":{"application_id":"","customer_id":"","product_code":"","product_version":1,"limit":"","minimum":"","annual_rate":"0.0","term_months":12,"method":"equal_payment","grace_months":0,"grade":1,"prepayment_fee_rate":"0.0","expires_on":"2026-"},"principal":10000000,"loan":{"terms":{"principal":10000000,"annual_rate":"0.0","term_months":36,"method":"equal_principal","grace_months":0,"start_date":"2026-"},"billed":0,"rest_from":1,"rest_balance":10000000,"disbursed_on":"2026-","closed_through":"2026-","principal":10000000,"interest_accrued":0,"accrual_carry":0,"late_carry":0,"due":[{"number":1,"due_date":"2026-","principal":0,"interest":0}],"late_interest":0,"fees":0,"status":"delinquent","prepayment_fee_rate":"0.0","restructurings":0,"totals":{"disbursed":10000000,"capitalised":0,"principal_repaid":0,"interest_paid":0,"late_interest_paid":0,"fees_paid":0,"principal_written_off":0,"written_off":0,"recovered":0}},"status":"current","method":"bullet","promises":[{"given_on":"2026-","due_by":"2026-","amount":0}],"contacts":[{"action":"call","on":"2026-","by":"","note":""}]}"#;
/// The most a loan's state may inflate to (a state is a few KiB; more is a corrupt value).
const STATE_MAX_BYTES: usize = 1 << 20;

/// A loan's state as sealed: its JSON, compressed as an LZ4 block against
/// [`STATE_DICTIONARY`] (about a quarter of the JSON; deflate without a dictionary gave
/// half). Every end of day rewrites every loan's row, so its size is most of what end of day
/// writes; LZ4 rather than deflate because deflate's set-up (some 300 KiB of tables cleared
/// for each state of about 1 KiB) was a fifth of end of day's CPU. Compressing before
/// sealing shows the compressed length to whoever reads the table (a length side channel
/// needs text the observer chooses beside a secret: the only free text in a state is
/// collectors' contact notes, written by staff who may read the whole loan anyway).
fn state_bytes<T: Serialize>(state: &T) -> Vec<u8> {
    let json = to_json(state);
    let len = u32::try_from(json.len()).expect("a loan's state is far below 4 GiB");
    let mut out = vec![0; 5 + lz4_flex::block::get_maximum_output_size(json.len())];
    out[0] = STATE_LZ4;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    let written = lz4_flex::block::compress_into_with_dict(&json, &mut out[5..], STATE_DICTIONARY)
        .expect("the buffer has LZ4's maximum output size");
    out.truncate(5 + written);
    out
}

/// A loan's state from what [`state_bytes`] sealed (or deflated or plain JSON, as sealed
/// before).
fn state_from(plain: &[u8]) -> Result<LoanState, VaultError> {
    let inflated;
    let json = match plain.split_first() {
        Some((&STATE_LZ4, rest)) => {
            let (len, block) = rest.split_first_chunk::<4>().ok_or(VaultError::Format)?;
            let len = u32::from_le_bytes(*len) as usize;
            if len > STATE_MAX_BYTES {
                return Err(VaultError::Format);
            }
            inflated = lz4_flex::block::decompress_with_dict(block, len, STATE_DICTIONARY)
                .map_err(|_| VaultError::Format)?;
            if inflated.len() != len {
                return Err(VaultError::Format);
            }
            &inflated[..]
        }
        Some((&STATE_DEFLATED, deflated)) => {
            inflated =
                miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, STATE_MAX_BYTES)
                    .map_err(|_| VaultError::Format)?;
            &inflated[..]
        }
        _ => plain,
    };
    serde_json::from_slice(json).map_err(|_| VaultError::Format)
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("loan state serializes")
}

fn to_json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("loan state serializes")
}

/// A prepared page's steps committed in multi-row statements with their notices, in one
/// transaction; what it brought through (a row a finisher committed first is left to it).
async fn commit_page(
    store: Store,
    done: Vec<Planned>,
    next: NextPage,
    trace: Option<TraceParent>,
) -> Result<(EodReport, Vec<sqlx::any::AnyRow>), LendingError> {
    // Almost always every row is still at the version this run marked, and the statements'
    // counts say so without returning the ids (a thousand rows a page handed over one by one
    // on the writer's thread). When a count falls short — a finisher committed one of the
    // loans first — the transaction is dropped and the page committed again, the statements
    // now saying which rows they took.
    let committed = match commit_steps(&store, &done, &next, trace, false).await? {
        Some(page) => page,
        None => commit_steps(&store, &done, &next, trace, true)
            .await?
            .ok_or(LendingError::Busy)?,
    };
    let marked = marked_page(&store, &next.marker, &next.after).await?;
    Ok((committed, marked))
}

/// Commits `done`'s rows still at the version this run marked, their notices, and the mark of
/// `next`, in one transaction. Without `returning`, only when every row is (else `None`,
/// nothing written); with it, whichever rows are, the statements returning their ids.
async fn commit_steps(
    store: &Store,
    done: &[Planned],
    next: &NextPage,
    trace: Option<TraceParent>,
    returning: bool,
) -> Result<Option<EodReport>, LendingError> {
    let mut report = EodReport::default();
    let now = now_us();
    let mut tx = store.begin().await?;
    let mut committed = std::collections::HashSet::new();
    let mut updated = 0u64;
    for chunk in done.chunks(COMMIT_ROWS) {
        // Only the rows still at the version this run marked are updated: a row a finisher
        // committed first is its, with its notices.
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 5 + 1;
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH v (id, version, status, closed_through, sealed) AS (VALUES {}) \
             UPDATE loans SET sealed = v.sealed, status = v.status, closed_through = v.closed_through, \
             pending = NULL, version = loans.version + 1, updated_at_us = $1 \
             FROM v WHERE loans.id = v.id AND loans.version = v.version{}",
            values.join(", "),
            if returning { " RETURNING loans.id" } else { "" }
        )))
        .bind(now);
        for step in chunk {
            query = query
                .bind(&step.record.id)
                .bind(step.record.version)
                .bind(&step.pending.next_status)
                .bind(step.pending.closed_through())
                .bind(&step.sealed_next);
        }
        if returning {
            for id in query.fetch_all(&mut *tx).await? {
                committed.insert(id.try_get::<String, _>(0)?);
            }
        } else {
            updated += query.execute(&mut *tx).await?.rows_affected();
        }
    }
    // A page's ids are distinct and each names one row, so a full count means every row.
    if !returning && updated != done.len() as u64 {
        return Ok(None);
    }
    let mut notices = Vec::new();
    for step in done {
        if returning && !committed.contains(&step.record.id) {
            continue;
        }
        report.loans += 1;
        report.days += step.counts.days;
        report.billed += step.counts.billed;
        report.status_changes += step.counts.status_changes;
        for (verb, data) in &step.pending.events {
            let mut data = data.clone();
            data["loan_id"] = json!(step.record.id);
            data["customer_id"] = json!(step.record.customer_id);
            notices.push(loan_notice(verb, &step.record.id, data, trace));
        }
    }
    outbox::record_many(&mut tx, SERVICE, notices, now).await?;
    mark_page(&mut *tx, &next.marker, next.date, &next.after).await?;
    tx.commit().await?;
    Ok(Some(report))
}

/// The page [`commit_page`] marks in its transaction: the next after `after`.
struct NextPage {
    marker: Vec<u8>,
    date: Date,
    after: String,
}

/// Marks the next page of loans (by id, after `after`) still to close `date` and not pending.
/// [`marked_page`] reads them once the mark is committed.
async fn mark_page<'e, E>(
    executor: E,
    marker: &[u8],
    date: Date,
    after: &str,
) -> Result<(), LendingError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE loans SET pending = $1, version = version + 1, updated_at_us = $2 \
         WHERE id IN (SELECT id FROM loans WHERE status IN {SERVICED} \
         AND (closed_through IS NULL OR closed_through < $3) AND pending IS NULL AND id > $4 \
         ORDER BY id LIMIT $5)"
    )))
    .bind(marker)
    .bind(now_us())
    .bind(date.to_string())
    .bind(after)
    .bind(EOD_PAGE)
    .execute(executor)
    .await?;
    Ok(())
}

/// The loans after `after` marked `marker` (this end of day's), in id order, a page at most —
/// the page [`mark_page`] marked, and any a cut-off run of the same date left marked (their
/// step is recomputed from the committed state like any other). Read on a reader connection
/// rather than returned by the marking statement: SQLite hands each returned row over from
/// its worker thread one by one, and the writer's thread sets end of day's pace.
async fn marked_page(
    store: &Store,
    marker: &[u8],
    after: &str,
) -> Result<Vec<sqlx::any::AnyRow>, LendingError> {
    Ok(sqlx::query(concat!(
        select_loan!(),
        " WHERE id > $1 AND pending = $2 ORDER BY id LIMIT $3"
    ))
    .bind(after)
    .bind(marker)
    .bind(EOD_PAGE)
    .fetch_all(store.reader())
    .await?)
}

/// Moves `after` to the highest id among `rows`.
fn last_id(rows: &[sqlx::any::AnyRow], after: &mut String) -> Result<(), LendingError> {
    for row in rows {
        let id: String = row.try_get("id")?;
        if id > *after {
            *after = id;
        }
    }
    Ok(())
}

async fn loan_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    verb: &str,
    id: &str,
    data: Value,
    trace: Option<TraceParent>,
    now: i64,
) -> Result<(), LendingError> {
    outbox::record(tx, SERVICE, loan_notice(verb, id, data, trace), now).await?;
    Ok(())
}

/// The event `lending.loan.<verb>` of loan `id`: ids, dates and statuses — never an amount or
/// a rate.
fn loan_notice(verb: &str, id: &str, data: Value, trace: Option<TraceParent>) -> NewEvent {
    NewEvent {
        event_type: format!("lending.loan.{verb}"),
        aggregate: format!("loan/{id}"),
        data,
        traceparent: trace,
    }
}

/// What a loan's receivable accounts must hold once no step is pending (for reconciliation).
pub fn expected_books(state: &LoanState) -> Vec<(Book, u128)> {
    state
        .loan
        .as_ref()
        .map(|l| l.receivables().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> LoanState {
        LoanState {
            offer: Offer {
                application_id: "a-1".into(),
                customer_id: "c-1".into(),
                product_code: "PERSONAL".into(),
                product_version: 3,
                limit: 30_000_000,
                minimum: 1_000_000,
                annual_rate: Decimal::new(735, 4),
                term_months: 36,
                method: RepaymentMethod::EqualPayment,
                grace_months: 2,
                grade: 4,
                prepayment_fee_rate: Decimal::new(12, 3),
                expires_on: time::macros::date!(2026 - 07 - 01),
            },
            principal: 23_450_000,
            loan: Some(
                crate::servicing::Loan::disburse(
                    Terms {
                        principal: 23_450_000,
                        annual_rate: Decimal::new(735, 4),
                        term_months: 36,
                        method: RepaymentMethod::EqualPayment,
                        grace_months: 2,
                        start_date: time::macros::date!(2026 - 06 - 15),
                    },
                    Decimal::new(12, 3),
                )
                .unwrap()
                .0,
            ),
            promises: Vec::new(),
            contacts: vec![Contact {
                action: Action::Call,
                on: time::macros::date!(2026 - 06 - 02),
                by: "collector-7".into(),
                note: "고객 통화: 다음 주 납부 약속".into(),
            }],
        }
    }

    #[test]
    fn a_sealed_state_is_lz4_compressed_json_and_reads_back_exactly() {
        let state = state();
        let json = to_json(&state);
        let bytes = state_bytes(&state);
        assert_eq!(bytes[0], STATE_LZ4);
        assert_eq!(
            bytes[1..5],
            u32::try_from(json.len()).unwrap().to_le_bytes()
        );
        assert_eq!(
            lz4_flex::block::decompress_with_dict(&bytes[5..], json.len(), STATE_DICTIONARY)
                .unwrap(),
            json
        );
        assert!(
            bytes.len() * 10 < json.len() * 4,
            "{} bytes from {}",
            bytes.len(),
            json.len()
        );
        assert_eq!(state_from(&bytes).unwrap(), state);
    }

    #[test]
    fn the_state_dictionary_is_pinned() {
        // States sealed under `STATE_LZ4` read only with these exact bytes: a changed
        // dictionary needs a new format byte, not an edit.
        assert_eq!(
            kernel::hex(&Sha256::digest(STATE_DICTIONARY)),
            "3c789c41b152217056ba282b8d8ee939460449d42893a99e23bd866d8c752b19"
        );
    }

    #[test]
    fn a_state_sealed_as_deflated_or_plain_json_still_reads() {
        let state = state();
        let json = to_json(&state);
        let mut deflated = vec![STATE_DEFLATED];
        deflated.extend(miniz_oxide::deflate::compress_to_vec(&json, 1));
        assert_eq!(state_from(&deflated).unwrap(), state);
        assert_eq!(state_from(&json).unwrap(), state);
    }

    #[test]
    fn a_corrupt_state_is_a_format_error_not_a_panic() {
        let mut bytes = state_bytes(&state());
        bytes.truncate(bytes.len() / 2);
        assert!(matches!(state_from(&bytes), Err(VaultError::Format)));
        // A length beyond the limit is refused before anything is allocated.
        let mut huge = state_bytes(&state());
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(state_from(&huge), Err(VaultError::Format)));
        // A length that does not match what the block holds.
        let mut short = state_bytes(&state());
        short[1..5].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(state_from(&short), Err(VaultError::Format)));
        for cut in [
            &[STATE_LZ4][..],
            &[STATE_LZ4, 1, 0],
            &[STATE_DEFLATED, 0xff, 0x00],
        ] {
            assert!(
                matches!(state_from(cut), Err(VaultError::Format)),
                "{cut:?}"
            );
        }
        assert!(matches!(state_from(b"not json"), Err(VaultError::Format)));
    }

    /// Loans `ids` stored at version 1 and marked `marker` for end of day.
    async fn marked_loans(store: &Store, ids: &[&str], marker: &[u8]) -> Vec<Planned> {
        let mut planned = Vec::new();
        for id in ids {
            sqlx::query(
                "INSERT INTO loans (id, application_id, customer_id, product_code, \
                 product_version, account_id, status, version, master_key_id, wrapped_key, \
                 sealed, pending, created_at_us, updated_at_us) \
                 VALUES ($1, $2, 'c-1', 'PERSONAL', 3, 'acct-1', 'current', 1, 'k', $3, $4, $5, 0, 0)",
            )
            .bind(*id)
            .bind(format!("app-{id}"))
            .bind(b"wrapped".to_vec())
            .bind(b"before".to_vec())
            .bind(marker.to_vec())
            .execute(store.writer())
            .await
            .unwrap();
            let record = LoanRecord {
                id: (*id).to_owned(),
                application_id: format!("app-{id}"),
                customer_id: "c-1".into(),
                account_id: "acct-1".into(),
                contract_id: None,
                status: "current".into(),
                state: state(),
                pending: true,
                version: 1,
                created_at_us: 0,
            };
            planned.push(Planned {
                pending: Pending::unchanged(&record),
                record,
                counts: DayCounts {
                    days: 1,
                    billed: 0,
                    status_changes: 0,
                },
                sealed_next: b"after".to_vec(),
            });
        }
        planned
    }

    /// Each loan's (version, sealed, whether still pending).
    async fn rows(store: &Store, ids: &[&str]) -> Vec<(i64, Vec<u8>, bool)> {
        let mut out = Vec::new();
        for id in ids {
            let row = sqlx::query("SELECT version, sealed, pending FROM loans WHERE id = $1")
                .bind(*id)
                .fetch_one(store.reader())
                .await
                .unwrap();
            let pending: Option<Vec<u8>> = row.try_get(2).unwrap();
            out.push((
                row.try_get(0).unwrap(),
                row.try_get(1).unwrap(),
                pending.is_some(),
            ));
        }
        out
    }

    #[tokio::test]
    async fn a_page_commits_only_the_loans_still_at_the_version_it_marked() {
        for backend in store::testing::BACKENDS {
            let db = store::testing::TestDb::new(backend).await;
            let store = db.open().await;
            store.migrate(&crate::service::MIGRATIONS).await.unwrap();
            let date = time::macros::date!(2026 - 07 - 01);
            let marker = eod_marker(date);
            let next = |after: &str| NextPage {
                marker: marker.clone(),
                date,
                after: after.to_owned(),
            };

            // Every loan still as marked: all of the page commits.
            let page = marked_loans(&store, &["l-1", "l-2"], &marker).await;
            let (report, marked) = commit_page(store.clone(), page, next("l-2"), None)
                .await
                .unwrap();
            assert_eq!((report.loans, report.days), (2, 2));
            assert!(marked.is_empty());
            assert_eq!(
                rows(&store, &["l-1", "l-2"]).await,
                vec![(2, b"after".to_vec(), false), (2, b"after".to_vec(), false)]
            );

            // One loan of the next page was finished by someone else first: the page commits
            // the others, once, and leaves that one as it found it.
            let page = marked_loans(&store, &["l-3", "l-4", "l-5"], &marker).await;
            sqlx::query(
                "UPDATE loans SET version = 2, sealed = $1, pending = NULL WHERE id = 'l-4'",
            )
            .bind(b"theirs".to_vec())
            .execute(store.writer())
            .await
            .unwrap();
            let (report, _) = commit_page(store.clone(), page, next("l-5"), None)
                .await
                .unwrap();
            assert_eq!((report.loans, report.days), (2, 2));
            assert_eq!(
                rows(&store, &["l-3", "l-4", "l-5"]).await,
                vec![
                    (2, b"after".to_vec(), false),
                    (2, b"theirs".to_vec(), false),
                    (2, b"after".to_vec(), false)
                ]
            );
            db.cleanup().await;
        }
    }
}
