//! The deposits service's shell: accounts in SQL, money in the ledger, customers and products
//! asked through [`Peers`].
//!
//! Every movement fixes its ledger transfer id in SQL (under the request's `Idempotency-Key`)
//! *before* the ledger is asked, so a retry — by the client, or after a crash — submits the same
//! transfer and the ledger answers `exists`: money never moves twice. The outcome is recorded
//! with its outbox event once the ledger has answered; a replay answers the recorded outcome.
//! Balance limits and closed accounts are enforced by the ledger itself, atomically.

use crate::model::{
    self, Accrual, CustomerFacts, DEPOSIT_FLAGS, LEDGER_KRW, Line, RuleError, account_code, bank,
    transfer_code,
};
use kernel::event::TraceParent;
use ledger::client::{ClientError, LedgerClient};
use ledger::{
    Account as LedgerAccount, AccountEvent, AccountFlags, CreateAccountResult as AR,
    CreateTransferResult as TR, PageQuery, PendingStatus, Transfer, TransferEvent, TransferFlags,
};
use peers::{CustomerLookup, PeerError, Peers};
use products::model::{Kind, rate_for};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use store::outbox::{self, NewEvent};
use store::sql::now_us;
use store::{Store, StoreError};
use time::Date;

/// The service's name.
pub const SERVICE: &str = "deposits";
/// The permission running end of day needs.
pub const PERMISSION_EOD: &str = "deposits:eod";
/// Statements cover at most this many days.
pub const STATEMENT_DAYS_MAX: i64 = 366;
/// Statements hold at most this many lines; ask for a shorter period beyond it.
pub const STATEMENT_LINES_MAX: usize = 10_000;

/// The deposits schema.
pub const MIGRATIONS: store::sql::MigrationSet = store::sql::MigrationSet {
    name: "deposits",
    migrations: &[store::sql::Migration {
        version: 1,
        description: "deposit accounts, operations, accruals, end-of-day runs",
        sql: include_str!("../migrations/0001_deposits.sql"),
    }],
};

/// What a deposits operation can fail with; mapped to problem+json once, in the API.
#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    /// The input breaks a rule.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// No deposit account has this id.
    #[error("no deposit account has this id")]
    NotFound,
    /// The customer does not exist.
    #[error("no customer has this id")]
    CustomerNotFound,
    /// The customer was erased.
    #[error("the customer was erased")]
    CustomerErased,
    /// No version of the product is sold today.
    #[error("no product with this code is sold today")]
    ProductNotAvailable,
    /// The product is not a deposit.
    #[error("the product is not a deposit product")]
    NotADeposit,
    /// The account is closed.
    #[error("the account is closed")]
    AccountClosed,
    /// Not enough available balance.
    #[error("the available balance is not enough")]
    InsufficientFunds,
    /// No hold with this id on this account.
    #[error("no hold with this id on this account")]
    HoldNotFound,
    /// The hold was already settled.
    #[error("the hold is already {0}")]
    HoldNotActive(&'static str),
    /// A capture larger than the hold.
    #[error("the capture exceeds the hold")]
    CaptureExceedsHold,
    /// Closing needs a zero balance and no holds.
    #[error(
        "the account holds {balance} won with {on_hold} on hold; move it out (or close with `sweep_to`) and release the holds first"
    )]
    BalanceNotZero {
        /// The posted balance.
        balance: u128,
        /// Held.
        on_hold: u128,
    },
    /// Money leaves a term account only at maturity (or by closing it).
    #[error("the account matures on {0}; until then money leaves it only by closing it")]
    BeforeMaturity(Date),
    /// The key was used with a different request.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    /// The caller lacks a permission.
    #[error("this action needs the permission `{0}`")]
    Forbidden(&'static str),
    /// End of day for a date that is not over.
    #[error("business date {0} is not over yet (it must be before today in Seoul)")]
    BusinessDateNotOver(Date),
    /// Another end of day is running.
    #[error("another end-of-day run is in progress; retry when it has finished")]
    EodInProgress,
    /// A service deposits depends on is unavailable.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// The ledger is unavailable.
    #[error(transparent)]
    Ledger(#[from] ClientError),
    /// The ledger refused a step the rules should have made valid: a bug or damage.
    #[error("the ledger refused a step: {0}")]
    LedgerRefused(&'static str),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DepositError {
    fn from(e: sqlx::Error) -> DepositError {
        DepositError::Store(StoreError::from(e))
    }
}

/// A deposit account as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    /// The id (a UUID); the ledger account's id is its 128-bit value.
    pub id: String,
    /// The customer who holds it.
    pub customer_id: String,
    /// The product code.
    pub product_code: String,
    /// The product version it was opened under.
    pub product_version: i64,
    /// The product kind.
    pub kind: Kind,
    /// ISO 4217.
    pub currency: String,
    /// The annual rate fixed at opening.
    pub rate: Decimal,
    /// The term (term deposits, installment savings).
    pub term_months: Option<u32>,
    /// When the term ends.
    pub maturity_on: Option<Date>,
    /// `open` or `closed` (`opening` while the ledger accounts are being created).
    pub status: String,
    /// The business date it was opened.
    pub opened_on: Date,
    /// When it was opened (µs).
    pub opened_at_us: i64,
    /// The business date it was closed.
    pub closed_on: Option<Date>,
    /// The last business date interest was accrued for.
    pub accrued_through: Option<Date>,
    pub(crate) accrual: Accrual,
    pub(crate) interest_ledger_id: u128,
    closing: Option<String>,
}

impl Account {
    /// The ledger account holding the customer's money.
    pub fn ledger_id(&self) -> u128 {
        uuid::Uuid::parse_str(&self.id).map_or(0, |u| u.as_u128())
    }

    /// The ledger account holding interest accrued and not yet paid.
    pub fn interest_ledger_id(&self) -> u128 {
        self.interest_ledger_id
    }
}

/// An account with its balances from the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountView {
    /// The account.
    pub account: Account,
    /// The posted balance.
    pub balance: u128,
    /// What can be spent (posted less holds).
    pub available: u128,
    /// Held by pending holds.
    pub on_hold: u128,
    /// Interest accrued and not yet paid, in whole won.
    pub accrued_interest: u128,
}

/// A request to open an account.
#[derive(Clone, Debug)]
pub struct NewAccount {
    /// The customer.
    pub customer_id: String,
    /// The product code; the version in force today is used.
    pub product_code: String,
    /// The term in months (term deposits and installment savings only).
    pub term_months: Option<u32>,
}

/// A money movement on an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Movement {
    /// Money in from outside.
    Deposit {
        /// Whole won.
        #[serde(with = "kernel::decimal::u128_string")]
        amount: u128,
        /// Shown on the statement.
        memo: Option<String>,
    },
    /// Money out to outside.
    Withdrawal {
        /// Whole won.
        #[serde(with = "kernel::decimal::u128_string")]
        amount: u128,
        /// Shown on the statement.
        memo: Option<String>,
    },
    /// To another deposit account.
    Transfer {
        /// The account credited.
        to: String,
        /// Whole won.
        #[serde(with = "kernel::decimal::u128_string")]
        amount: u128,
        /// Shown on both statements.
        memo: Option<String>,
    },
    /// Reserve money (e.g. a card authorisation).
    Hold {
        /// Whole won.
        #[serde(with = "kernel::decimal::u128_string")]
        amount: u128,
        /// Seconds until the hold lapses by itself; 0 never.
        timeout_seconds: u32,
        /// Shown when captured.
        memo: Option<String>,
    },
    /// Take (part of) a hold; the rest is released.
    Capture {
        /// The hold.
        #[serde(with = "kernel::decimal::u128_string")]
        hold_id: u128,
        /// Whole won; none takes all of it.
        #[serde(with = "kernel::decimal::opt_u128_string")]
        amount: Option<u128>,
    },
    /// Release a hold.
    Release {
        /// The hold.
        #[serde(with = "kernel::decimal::u128_string")]
        hold_id: u128,
    },
}

impl Movement {
    fn name(&self) -> &'static str {
        match self {
            Movement::Deposit { .. } => "deposit",
            Movement::Withdrawal { .. } => "withdrawal",
            Movement::Transfer { .. } => "transfer",
            Movement::Hold { .. } => "hold",
            Movement::Capture { .. } => "capture",
            Movement::Release { .. } => "release",
        }
    }

    fn validate(&self) -> Result<(), RuleError> {
        let amount_ok = |a: u128| model::check_amount(a).map(|_| ());
        let memo_ok = |m: &Option<String>| m.as_deref().map_or(Ok(()), model::check_memo);
        match self {
            Movement::Deposit { amount, memo }
            | Movement::Withdrawal { amount, memo }
            | Movement::Transfer { amount, memo, .. } => {
                amount_ok(*amount)?;
                memo_ok(memo)
            }
            Movement::Hold {
                amount,
                timeout_seconds,
                memo,
            } => {
                amount_ok(*amount)?;
                if *timeout_seconds > model::HOLD_SECONDS_MAX {
                    return Err(RuleError {
                        code: "invalid_timeout",
                        detail: format!("`timeout_seconds` is at most {}", model::HOLD_SECONDS_MAX),
                    });
                }
                memo_ok(memo)
            }
            Movement::Capture { amount, .. } => amount.map_or(Ok(()), amount_ok),
            Movement::Release { .. } => Ok(()),
        }
    }
}

/// The answer to a movement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The ledger transfer (for a hold: the hold's id).
    #[serde(with = "kernel::decimal::u128_string")]
    pub transaction_id: u128,
    /// `deposit`, `withdrawal`, `transfer`, `hold`, `capture`, `release`.
    pub kind: String,
    /// The account.
    pub account_id: String,
    /// The amount moved (held, for a hold; released, for a release).
    #[serde(with = "kernel::decimal::u128_string")]
    pub amount: u128,
    /// The ledger's timestamp (ns).
    pub timestamp: u64,
}

/// A statement for a period.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    /// The account.
    pub account_id: String,
    /// First business date.
    pub from: Date,
    /// Last business date.
    pub to: Date,
    /// The posted balance at the end of the day before `from`.
    pub opening: u128,
    /// The posted balance at the end of `to` (or now, if `to` is today).
    pub closing: u128,
    /// Money in.
    pub total_in: u128,
    /// Money out.
    pub total_out: u128,
    /// The lines.
    pub lines: Vec<Line>,
}

/// What an end-of-day run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EodReport {
    /// The business date.
    pub business_date: String,
    /// Accounts brought up to the date.
    pub accounts: u64,
    /// Account-days accrued (an account behind catches up day by day).
    pub days: u64,
    /// Whole won moved to accrued interest.
    #[serde(with = "kernel::decimal::u128_string")]
    #[schema(value_type = String)]
    pub accrued: u128,
    /// Whole won of interest paid into accounts.
    #[serde(with = "kernel::decimal::u128_string")]
    #[schema(value_type = String)]
    pub posted: u128,
    /// Accounts left for the next run (closed in the ledger while the run went on).
    pub skipped: u64,
}

/// A source of today's business date (Seoul); tests move it.
pub type Today = Arc<dyn Fn() -> Date + Send + Sync>;

/// The deposits service.
#[derive(Clone)]
pub struct Deposits {
    pub(crate) store: Store,
    pub(crate) ledger: LedgerClient,
    peers: Peers,
    pub(crate) today: Today,
    bank_ready: Arc<tokio::sync::OnceCell<()>>,
}

impl Deposits {
    /// The service over `store` (migrations applied here), the ledger and its peers.
    pub async fn open(
        store: Store,
        ledger: LedgerClient,
        peers: Peers,
    ) -> Result<Deposits, DepositError> {
        Self::open_with_today(store, ledger, peers, Arc::new(store::sql::today_kst)).await
    }

    /// As [`Deposits::open`], with a business-date source.
    pub async fn open_with_today(
        store: Store,
        ledger: LedgerClient,
        peers: Peers,
        today: Today,
    ) -> Result<Deposits, DepositError> {
        store.migrate(&MIGRATIONS).await?;
        Ok(Deposits {
            store,
            ledger,
            peers,
            today,
            bank_ready: Arc::new(tokio::sync::OnceCell::new()),
        })
    }

    /// The store (for the outbox relay).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The ledger it posts to.
    pub fn ledger(&self) -> &LedgerClient {
        &self.ledger
    }

    /// Creates the bank's own ledger accounts once (idempotent by id).
    pub(crate) async fn bank_accounts(&self) -> Result<(), DepositError> {
        self.bank_ready
            .get_or_try_init(|| async {
                let account = |id, code| AccountEvent {
                    account: LedgerAccount {
                        id,
                        ledger: LEDGER_KRW,
                        code,
                        ..LedgerAccount::default()
                    },
                    metadata: None,
                };
                let results = self
                    .ledger
                    .create_accounts(vec![
                        account(bank::CASH_ID, account_code::CASH),
                        account(bank::INTEREST_EXPENSE_ID, account_code::INTEREST_EXPENSE),
                    ])
                    .await?;
                match results.iter().find(|r| !matches!(r, AR::Ok | AR::Exists)) {
                    Some(r) => Err(DepositError::LedgerRefused(r.name())),
                    None => Ok(()),
                }
            })
            .await
            .map(|_| ())
    }

    /// Opens an account for a customer under the product version in force today. With an
    /// `Idempotency-Key`, a repeated request answers the account the first one opened.
    pub async fn open_account(
        &self,
        new: NewAccount,
        key: Option<&str>,
        trace: Option<TraceParent>,
    ) -> Result<Account, DepositError> {
        if let Some(key) = key {
            model::check_idempotency_key(key)?;
            if let Some(existing) = self.by_open_key(&new.customer_id, key).await? {
                if existing.product_code != new.product_code
                    || existing.term_months != new.term_months
                {
                    return Err(DepositError::IdempotencyKeyReused);
                }
                return self.finish_opening(existing, trace).await;
            }
        }
        let today = (self.today)();
        let facts = match self.peers.customer(&new.customer_id).await? {
            CustomerLookup::Found(c) => CustomerFacts {
                birth_date: c
                    .rrn_masked
                    .as_deref()
                    .and_then(model::birth_date_from_masked),
                kind: c.kind,
                kyc_status: c.kyc_status,
            },
            CustomerLookup::NotFound => return Err(DepositError::CustomerNotFound),
            CustomerLookup::Erased => return Err(DepositError::CustomerErased),
        };
        let product = self
            .peers
            .product_in_force(&new.product_code, today)
            .await?
            .ok_or(DepositError::ProductNotAvailable)?;
        if model::account_code_of(product.kind).is_none() {
            return Err(DepositError::NotADeposit);
        }
        let maturity_on = check_term(product.kind, &product.terms, new.term_months, today)?;
        model::check_eligibility(&product.terms.eligibility, &facts, today)?;
        let rate = rate_for(&product.terms, new.term_months, None);
        if model::rate_micro(rate).is_none() {
            return Err(DepositError::LedgerRefused(
                "rate with more than six places",
            ));
        }
        let now = now_us();
        let id = uuid::Uuid::now_v7().to_string();
        let interest_id = uuid::Uuid::now_v7().as_u128();
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, customer_id, product_code, product_version, kind, currency, rate, \
             term_months, maturity_on, interest_ledger_id, status, opened_on, opened_at_us, \
             month_numerator, month_accrued, open_key, updated_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'opening', $11, $12, '0', 0, $13, $12)",
        )
        .bind(&id)
        .bind(&new.customer_id)
        .bind(&new.product_code)
        .bind(product.version)
        .bind(products::service::kind_name(product.kind))
        .bind(&product.terms.currency)
        .bind(rate.normalize().to_string())
        .bind(new.term_months.map(i64::from))
        .bind(maturity_on.map(|d| d.to_string()))
        .bind(interest_id.to_string())
        .bind(today.to_string())
        .bind(now)
        .bind(key)
        .execute(self.store.writer())
        .await;
        match inserted {
            Err(e) if store::sql::is_unique_violation(&e) => {
                // The same key, concurrently: answer what the other request opened.
                let key = key.unwrap_or_default();
                let existing = self
                    .by_open_key(&new.customer_id, key)
                    .await?
                    .ok_or(DepositError::NotFound)?;
                return self.finish_opening(existing, trace).await;
            }
            other => other?,
        };
        self.finish_opening(self.load(&id).await?, trace).await
    }

    /// Creates the ledger accounts of an account being opened and marks it open.
    async fn finish_opening(
        &self,
        account: Account,
        trace: Option<TraceParent>,
    ) -> Result<Account, DepositError> {
        if account.status != "opening" {
            return Ok(account);
        }
        self.bank_accounts().await?;
        let customer_u128 = uuid::Uuid::parse_str(&account.customer_id).map_or(0, |u| u.as_u128());
        let code = model::account_code_of(account.kind).ok_or(DepositError::NotADeposit)?;
        let events = vec![
            AccountEvent {
                account: LedgerAccount {
                    id: account.ledger_id(),
                    ledger: LEDGER_KRW,
                    code,
                    flags: DEPOSIT_FLAGS | AccountFlags::LINKED,
                    user_data_128: customer_u128,
                    ..LedgerAccount::default()
                },
                metadata: None,
            },
            AccountEvent {
                account: LedgerAccount {
                    id: account.interest_ledger_id,
                    ledger: LEDGER_KRW,
                    code: account_code::INTEREST_ACCRUED,
                    flags: AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
                    user_data_128: account.ledger_id(),
                    ..LedgerAccount::default()
                },
                metadata: None,
            },
        ];
        let results = self.ledger.create_accounts(events).await?;
        if let Some(r) = results.iter().find(|r| !matches!(r, AR::Ok | AR::Exists)) {
            return Err(DepositError::LedgerRefused(r.name()));
        }
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let updated = sqlx::query(
            "UPDATE accounts SET status = 'open', updated_at_us = $2 WHERE id = $1 AND status = 'opening'",
        )
        .bind(&account.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            record(
                &mut tx,
                "deposits.account.opened",
                &account.id,
                json!({
                    "account_id": account.id,
                    "customer_id": account.customer_id,
                    "product_code": account.product_code,
                    "product_version": account.product_version,
                    "kind": products::service::kind_name(account.kind),
                    "currency": account.currency,
                    "rate": account.rate.to_string(),
                    "opened_on": account.opened_on.to_string(),
                }),
                trace,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.load(&account.id).await
    }

    async fn by_open_key(
        &self,
        customer_id: &str,
        key: &str,
    ) -> Result<Option<Account>, DepositError> {
        let row = sqlx::query(concat!(
            select_account!(),
            " WHERE customer_id = $1 AND open_key = $2"
        ))
        .bind(customer_id)
        .bind(key)
        .fetch_optional(self.store.reader())
        .await?;
        row.as_ref().map(read_account).transpose()
    }

    /// An account as stored (also while opening).
    pub async fn load(&self, id: &str) -> Result<Account, DepositError> {
        let row = sqlx::query(concat!(select_account!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.reader())
            .await?
            .ok_or(DepositError::NotFound)?;
        read_account(&row)
    }

    /// An account with its balances.
    pub async fn get(&self, id: &str) -> Result<AccountView, DepositError> {
        let account = self.load(id).await?;
        if account.status == "opening" {
            return Err(DepositError::NotFound);
        }
        let money = self.ledger.account(account.ledger_id()).await?;
        let interest = self.ledger.account(account.interest_ledger_id).await?;
        let b = money.map(|a| a.balances()).unwrap_or_default();
        let i = interest.map(|a| a.balances()).unwrap_or_default();
        Ok(AccountView {
            balance: model::posted(&b),
            available: model::available(&b),
            on_hold: b.debits_pending,
            accrued_interest: model::posted(&i),
            account,
        })
    }

    /// A customer's accounts, by id, after `after`.
    pub async fn list(
        &self,
        customer_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Account>, DepositError> {
        let rows = sqlx::query(concat!(
            select_account!(),
            " WHERE customer_id = $1 AND id > $2 AND status <> 'opening' ORDER BY id LIMIT $3"
        ))
        .bind(customer_id)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(self.store.reader())
        .await?;
        rows.iter().map(read_account).collect()
    }

    /// Moves money on an account. With the same `Idempotency-Key` a repeated request answers
    /// the first one's outcome (a refusal too) and never moves money twice.
    pub async fn movement(
        &self,
        account_id: &str,
        movement: Movement,
        key: Option<&str>,
        trace: Option<TraceParent>,
    ) -> Result<Receipt, DepositError> {
        movement.validate()?;
        let generated;
        let key = match key {
            Some(k) => {
                model::check_idempotency_key(k)?;
                k
            }
            None => {
                generated = uuid::Uuid::now_v7().to_string();
                &generated
            }
        };
        let account = self.load(account_id).await?;
        if account.status == "opening" {
            return Err(DepositError::NotFound);
        }
        let request = serde_json::to_string(&movement).expect("movements serialize");
        // Fix the transfer id first: a retry finds it and resubmits the same transfer.
        let (transfer_id, outcome) = self
            .operation(account_id, key, &request, movement.name())
            .await?;
        if let Some(outcome) = outcome {
            return replay(&outcome);
        }
        let result = self.apply(&account, &movement, transfer_id).await;
        let outcome = match &result {
            Ok(receipt) => json!({"receipt": receipt}),
            Err(e) => match refusal_code(e) {
                Some(code) => json!({"refused": code}),
                // Unavailable and the like: nothing to record; a retry asks the ledger again.
                None => return result,
            },
        };
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let recorded = sqlx::query(
            "UPDATE operations SET outcome = $3 WHERE account_id = $1 AND idem_key = $2 AND outcome IS NULL",
        )
        .bind(account_id)
        .bind(key)
        .bind(outcome.to_string())
        .execute(&mut *tx)
        .await?;
        if recorded.rows_affected() == 1
            && let Ok(receipt) = &result
        {
            let mut data = json!({
                "account_id": account_id,
                "transaction_id": receipt.transaction_id.to_string(),
                "kind": receipt.kind,
                "amount": receipt.amount.to_string(),
                "currency": account.currency,
            });
            if let Movement::Transfer { to, .. } = &movement {
                data["to_account_id"] = json!(to);
            }
            record(
                &mut tx,
                "deposits.transaction.completed",
                account_id,
                data,
                trace,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        result
    }

    /// The transfer id fixed for `(account, key)`, and the recorded outcome if there is one.
    async fn operation(
        &self,
        account_id: &str,
        key: &str,
        request: &str,
        kind: &str,
    ) -> Result<(u128, Option<String>), DepositError> {
        let fresh = uuid::Uuid::now_v7().as_u128();
        let inserted = sqlx::query(
            "INSERT INTO operations (account_id, idem_key, request, kind, transfer_id, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, idem_key) DO NOTHING",
        )
        .bind(account_id)
        .bind(key)
        .bind(request)
        .bind(kind)
        .bind(fresh.to_string())
        .bind(now_us())
        .execute(self.store.writer())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok((fresh, None));
        }
        let row = sqlx::query(
            "SELECT request, transfer_id, outcome FROM operations WHERE account_id = $1 AND idem_key = $2",
        )
        .bind(account_id)
        .bind(key)
        .fetch_one(self.store.reader())
        .await?;
        let stored: String = row.try_get("request")?;
        if stored != request {
            return Err(DepositError::IdempotencyKeyReused);
        }
        let id: String = row.try_get("transfer_id")?;
        let id = id.parse().map_err(|_| corrupt("transfer id"))?;
        Ok((id, row.try_get("outcome")?))
    }

    /// Submits the movement's transfer and reads back what the ledger stored.
    async fn apply(
        &self,
        account: &Account,
        movement: &Movement,
        transfer_id: u128,
    ) -> Result<Receipt, DepositError> {
        if account.status == "closed" {
            return Err(DepositError::AccountClosed);
        }
        let own = account.ledger_id();
        let memo = |m: &Option<String>| {
            m.as_ref()
                .map(|m| json!({ "memo": m }).to_string().into_boxed_str())
        };
        let plain = |debit, credit, amount, code| Transfer {
            id: transfer_id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount,
            ledger: LEDGER_KRW,
            code,
            ..Transfer::default()
        };
        let leaving = matches!(
            movement,
            Movement::Withdrawal { .. } | Movement::Transfer { .. } | Movement::Hold { .. }
        );
        if leaving
            && let Some(maturity) = account.maturity_on
            && (self.today)() < maturity
        {
            return Err(DepositError::BeforeMaturity(maturity));
        }
        let event = match movement {
            Movement::Deposit { amount, memo: m } => TransferEvent {
                transfer: plain(bank::CASH_ID, own, *amount, transfer_code::DEPOSIT),
                metadata: memo(m),
            },
            Movement::Withdrawal { amount, memo: m } => TransferEvent {
                transfer: plain(own, bank::CASH_ID, *amount, transfer_code::WITHDRAWAL),
                metadata: memo(m),
            },
            Movement::Transfer {
                to,
                amount,
                memo: m,
            } => {
                let target = match self.load(to).await {
                    Ok(t) if t.status == "open" => t,
                    Ok(t) if t.status == "closed" => return Err(DepositError::AccountClosed),
                    Ok(_) | Err(DepositError::NotFound) => return Err(unknown_target()),
                    Err(e) => return Err(e),
                };
                if target.id == account.id || target.currency != account.currency {
                    return Err(invalid_target());
                }
                TransferEvent {
                    transfer: plain(own, target.ledger_id(), *amount, transfer_code::TRANSFER),
                    metadata: memo(m),
                }
            }
            Movement::Hold {
                amount,
                timeout_seconds,
                memo: m,
            } => TransferEvent {
                transfer: Transfer {
                    flags: TransferFlags::PENDING,
                    timeout: *timeout_seconds,
                    ..plain(own, bank::CASH_ID, *amount, transfer_code::HOLD)
                },
                metadata: memo(m),
            },
            Movement::Capture { hold_id, .. } | Movement::Release { hold_id } => {
                let (capture, amount) = match movement {
                    Movement::Capture { amount, .. } => (true, *amount),
                    _ => (false, None),
                };
                let hold = self.ledger.transfer(*hold_id).await?;
                let is_ours = hold.as_ref().is_some_and(|h| {
                    h.transfer.debit_account_id == own
                        && h.transfer.code == transfer_code::HOLD
                        && h.transfer.flags.contains(TransferFlags::PENDING)
                });
                if !is_ours {
                    return Err(DepositError::HoldNotFound);
                }
                TransferEvent {
                    transfer: Transfer {
                        id: transfer_id,
                        pending_id: *hold_id,
                        amount: if capture { amount.unwrap_or(0) } else { 0 },
                        flags: if capture {
                            TransferFlags::POST_PENDING_TRANSFER
                        } else {
                            TransferFlags::VOID_PENDING_TRANSFER
                        },
                        ..Transfer::default()
                    },
                    metadata: None,
                }
            }
        };
        self.bank_accounts().await?;
        let result = self.ledger.create_transfers(vec![event]).await?[0];
        match result {
            TR::Ok | TR::Exists => {}
            TR::ExceedsCredits => return Err(DepositError::InsufficientFunds),
            TR::DebitAccountAlreadyClosed | TR::CreditAccountAlreadyClosed => {
                return Err(DepositError::AccountClosed);
            }
            TR::PendingTransferAlreadyPosted => {
                return Err(DepositError::HoldNotActive("captured"));
            }
            TR::PendingTransferAlreadyVoided => {
                return Err(DepositError::HoldNotActive("released"));
            }
            TR::PendingTransferExpired => return Err(DepositError::HoldNotActive("expired")),
            TR::ExceedsPendingTransferAmount => return Err(DepositError::CaptureExceedsHold),
            other => return Err(DepositError::LedgerRefused(other.name())),
        }
        let stored =
            self.ledger
                .transfer(transfer_id)
                .await?
                .ok_or(DepositError::LedgerRefused(
                    "transfer not found after commit",
                ))?;
        Ok(Receipt {
            transaction_id: transfer_id,
            kind: movement.name().to_owned(),
            account_id: account.id.clone(),
            amount: stored.transfer.amount,
            timestamp: stored.transfer.timestamp,
        })
    }

    /// Closes an account: pays accrued interest into it, sweeps the balance to `sweep_to` if
    /// given, and closes both ledger accounts — one linked chain, all or nothing. Refused (and
    /// undone) unless the balance is then zero with no holds.
    pub async fn close(
        &self,
        account_id: &str,
        sweep_to: Option<&str>,
        trace: Option<TraceParent>,
    ) -> Result<AccountView, DepositError> {
        let account = self.load(account_id).await?;
        match account.status.as_str() {
            "opening" => return Err(DepositError::NotFound),
            "closed" => return self.get(account_id).await,
            _ => {}
        }
        let target = match sweep_to {
            None => None,
            Some(to) => {
                match self.load(to).await {
                    Ok(t)
                        if t.status == "open"
                            && t.id != account.id
                            && t.currency == account.currency =>
                    {
                        Some(t)
                    }
                    _ => {
                        return Err(DepositError::Rule(RuleError {
                        code: "invalid_target_account",
                        detail: "`sweep_to` must name another open deposit account in the same currency".into(),
                    }));
                    }
                }
            }
        };
        self.bank_accounts().await?;
        // An attempt's ids are fixed before the ledger is asked; a retry after a crash reuses
        // them, unless that attempt was refused (its closing transfer voided).
        let attempt = match account
            .closing
            .as_deref()
            .and_then(|c| c.parse::<u128>().ok())
        {
            Some(id) => match self.ledger.transfer(id).await? {
                Some(v) if v.pending_status != Some(PendingStatus::Pending) => None,
                _ => Some(id),
            },
            None => None,
        };
        let attempt = match attempt {
            Some(id) => id,
            None => {
                let id = uuid::Uuid::now_v7().as_u128();
                sqlx::query("UPDATE accounts SET closing = $2 WHERE id = $1")
                    .bind(account_id)
                    .bind(id.to_string())
                    .execute(self.store.writer())
                    .await?;
                id
            }
        };
        let own = account.ledger_id();
        let interest = account.interest_ledger_id;
        let step =
            |n: u32| kernel::derived_id("deposits", &format!("closing-{n}"), account_id, attempt);
        let everything = model::AMOUNT_MAX * 1_000;
        let mut chain = vec![Transfer {
            id: step(1),
            debit_account_id: interest,
            credit_account_id: own,
            amount: everything,
            ledger: LEDGER_KRW,
            code: transfer_code::INTEREST_POSTING,
            flags: TransferFlags::BALANCING_DEBIT,
            ..Transfer::default()
        }];
        if let Some(t) = &target {
            chain.push(Transfer {
                id: step(2),
                debit_account_id: own,
                credit_account_id: t.ledger_id(),
                amount: everything,
                ledger: LEDGER_KRW,
                code: transfer_code::CLOSING_SWEEP,
                flags: TransferFlags::BALANCING_DEBIT,
                ..Transfer::default()
            });
        }
        for (n, debit) in [(3, own), (4, interest)] {
            chain.push(Transfer {
                id: if n == 3 { attempt } else { step(n) },
                debit_account_id: debit,
                credit_account_id: bank::CASH_ID,
                amount: 0,
                ledger: LEDGER_KRW,
                code: transfer_code::CLOSING,
                flags: TransferFlags::PENDING | TransferFlags::CLOSING_DEBIT,
                ..Transfer::default()
            });
        }
        let last = chain.len() - 1;
        let events: Vec<TransferEvent> = chain
            .iter()
            .enumerate()
            .map(|(i, t)| TransferEvent {
                transfer: Transfer {
                    flags: if i < last {
                        t.flags | TransferFlags::LINKED
                    } else {
                        t.flags
                    },
                    ..*t
                },
                metadata: None,
            })
            .collect();
        let results = self.ledger.create_transfers(events).await?;
        if let Some(r) = results
            .iter()
            .find(|r| !matches!(r, TR::Ok | TR::Exists | TR::LinkedEventFailed))
        {
            return Err(match r {
                TR::DebitAccountAlreadyClosed | TR::CreditAccountAlreadyClosed => {
                    DepositError::AccountClosed
                }
                other => DepositError::LedgerRefused(other.name()),
            });
        }
        // Closed now: nothing new can land. Refuse (and reopen) unless it is empty.
        let b = self
            .ledger
            .account(own)
            .await?
            .map(|a| a.balances())
            .unwrap_or_default();
        if model::posted(&b) != 0 || b.debits_pending != 0 || b.credits_pending != 0 {
            let voids: Vec<TransferEvent> = [(5, attempt), (6, step(4))]
                .into_iter()
                .enumerate()
                .map(|(i, (n, pending))| TransferEvent {
                    transfer: Transfer {
                        id: step(n),
                        pending_id: pending,
                        flags: if i == 0 {
                            TransferFlags::VOID_PENDING_TRANSFER | TransferFlags::LINKED
                        } else {
                            TransferFlags::VOID_PENDING_TRANSFER
                        },
                        ..Transfer::default()
                    },
                    metadata: None,
                })
                .collect();
            let undone = self.ledger.create_transfers(voids).await?;
            if let Some(r) = undone.iter().find(|r| !matches!(r, TR::Ok | TR::Exists)) {
                return Err(DepositError::LedgerRefused(r.name()));
            }
            return Err(DepositError::BalanceNotZero {
                balance: model::posted(&b),
                on_hold: b.debits_pending,
            });
        }
        let today = (self.today)();
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let updated = sqlx::query(
            "UPDATE accounts SET status = 'closed', closed_on = $2, closed_at_us = $3, updated_at_us = $3 \
             WHERE id = $1 AND status = 'open'",
        )
        .bind(account_id)
        .bind(today.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            let swept = match &target {
                Some(_) => self
                    .ledger
                    .transfer(step(2))
                    .await?
                    .map_or(0, |v| v.transfer.amount),
                None => 0,
            };
            let paid = self
                .ledger
                .transfer(step(1))
                .await?
                .map_or(0, |v| v.transfer.amount);
            record(
                &mut tx,
                "deposits.account.closed",
                account_id,
                json!({
                    "account_id": account_id,
                    "closed_on": today.to_string(),
                    "interest_paid": paid.to_string(),
                    "swept": swept.to_string(),
                    "swept_to": target.as_ref().map(|t| t.id.clone()),
                }),
                trace,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        self.get(account_id).await
    }

    /// The statement for business dates `from` to `to`: the posted balance before, every
    /// change of it in between with the balance after, and the balance at the end.
    pub async fn statement(
        &self,
        account_id: &str,
        from: Date,
        to: Date,
    ) -> Result<Statement, DepositError> {
        if to < from || (to - from).whole_days() >= STATEMENT_DAYS_MAX {
            return Err(DepositError::Rule(RuleError {
                code: "invalid_period",
                detail: format!(
                    "`from` must not be after `to`, and a statement covers at most {STATEMENT_DAYS_MAX} days"
                ),
            }));
        }
        let account = self.load(account_id).await?;
        if account.status == "opening" {
            return Err(DepositError::NotFound);
        }
        let id = account.ledger_id();
        let start = model::end_of_day_ns(model::previous(from));
        let end = model::end_of_day_ns(to);
        let opening = self
            .ledger
            .balances_at(id, start)
            .await?
            .map(|b| model::posted(&b))
            .unwrap_or(0);
        let mut transfers = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .ledger
                .account_transfers(
                    id,
                    PageQuery {
                        after,
                        limit: ledger::state::PAGE_LIMIT_MAX,
                        reverse: false,
                        timestamp_min: start + 1,
                        timestamp_max: end,
                    },
                )
                .await?
                .ok_or(DepositError::LedgerRefused("account not found"))?;
            transfers.extend(page.items);
            if transfers.len() > STATEMENT_LINES_MAX {
                return Err(DepositError::Rule(RuleError {
                    code: "statement_too_long",
                    detail: format!(
                        "the period holds more than {STATEMENT_LINES_MAX} transactions; ask for a shorter one"
                    ),
                }));
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let lines = model::statement_lines(id, opening, &transfers);
        let closing = lines.last().map_or(opening, |l| l.balance);
        let total_in = lines.iter().filter(|l| l.credit).map(|l| l.amount).sum();
        let total_out = lines.iter().filter(|l| !l.credit).map(|l| l.amount).sum();
        Ok(Statement {
            account_id: account.id,
            from,
            to,
            opening,
            closing,
            total_in,
            total_out,
            lines,
        })
    }
}

/// The term rules: none for a demand deposit; required and within the product's range for
/// the others. Returns the maturity date.
fn check_term(
    kind: Kind,
    terms: &products::model::Terms,
    term_months: Option<u32>,
    today: Date,
) -> Result<Option<Date>, DepositError> {
    let invalid = |detail: String| {
        DepositError::Rule(RuleError {
            code: "invalid_term",
            detail,
        })
    };
    match (kind, term_months, &terms.term_months) {
        (Kind::DemandDeposit, None, _) => Ok(None),
        (Kind::DemandDeposit, Some(_), _) => {
            Err(invalid("a demand deposit has no `term_months`".into()))
        }
        (_, Some(months), Some(range)) if (range.min..=range.max).contains(&months) => {
            Ok(model::maturity(today, months))
        }
        (_, _, Some(range)) => Err(invalid(format!(
            "`term_months` is required, from {} to {}",
            range.min, range.max
        ))),
        (_, _, None) => Err(invalid("the product defines no terms".into())),
    }
}

/// The stable code of a refusal worth recording (a replay answers it again).
fn refusal_code(e: &DepositError) -> Option<&'static str> {
    Some(match e {
        DepositError::InsufficientFunds => "insufficient_funds",
        DepositError::AccountClosed => "account_closed",
        DepositError::HoldNotFound => "hold_not_found",
        DepositError::HoldNotActive("captured") => "hold_captured",
        DepositError::HoldNotActive("released") => "hold_released",
        DepositError::HoldNotActive(_) => "hold_expired",
        DepositError::CaptureExceedsHold => "capture_exceeds_hold",
        DepositError::BeforeMaturity(_) => return None,
        DepositError::Rule(r) if r.code == "unknown_target_account" => "unknown_target_account",
        DepositError::Rule(r) if r.code == "invalid_target_account" => "invalid_target_account",
        _ => return None,
    })
}

/// A transfer to an account that is not an open deposit account.
fn unknown_target() -> DepositError {
    DepositError::Rule(RuleError {
        code: "unknown_target_account",
        detail: "`to` names no open deposit account".into(),
    })
}

/// A transfer to the same account, or to another currency.
fn invalid_target() -> DepositError {
    DepositError::Rule(RuleError {
        code: "invalid_target_account",
        detail: "`to` must be another account in the same currency".into(),
    })
}

fn replay(outcome: &str) -> Result<Receipt, DepositError> {
    #[derive(Deserialize)]
    struct Stored {
        receipt: Option<Receipt>,
        refused: Option<String>,
    }
    let stored: Stored = serde_json::from_str(outcome).map_err(|_| corrupt("outcome"))?;
    if let Some(r) = stored.receipt {
        return Ok(r);
    }
    Err(match stored.refused.as_deref() {
        Some("insufficient_funds") => DepositError::InsufficientFunds,
        Some("account_closed") => DepositError::AccountClosed,
        Some("hold_not_found") => DepositError::HoldNotFound,
        Some("hold_captured") => DepositError::HoldNotActive("captured"),
        Some("hold_released") => DepositError::HoldNotActive("released"),
        Some("hold_expired") => DepositError::HoldNotActive("expired"),
        Some("capture_exceeds_hold") => DepositError::CaptureExceedsHold,
        Some("unknown_target_account") => unknown_target(),
        Some("invalid_target_account") => invalid_target(),
        _ => corrupt("outcome"),
    })
}

pub(crate) fn corrupt(what: &str) -> DepositError {
    DepositError::Store(StoreError::Corrupt(format!("stored {what} is not valid")))
}

macro_rules! select_account {
    () => {
        "SELECT id, customer_id, product_code, product_version, kind, currency, rate, term_months, \
         maturity_on, interest_ledger_id, status, opened_on, opened_at_us, closed_on, closing, \
         accrued_through, month_numerator, month_accrued FROM accounts"
    };
}
pub(crate) use select_account;

pub(crate) fn read_account(row: &AnyRow) -> Result<Account, DepositError> {
    let date = |text: Option<String>| -> Result<Option<Date>, DepositError> {
        text.map(|t| products::service::parse_date(&t).ok_or_else(|| corrupt("date")))
            .transpose()
    };
    let kind: String = row.try_get("kind")?;
    let kind: Kind =
        serde_json::from_value(serde_json::Value::String(kind)).map_err(|_| corrupt("kind"))?;
    let rate: String = row.try_get("rate")?;
    let interest: String = row.try_get("interest_ledger_id")?;
    let numerator: String = row.try_get("month_numerator")?;
    let accrued: i64 = row.try_get("month_accrued")?;
    Ok(Account {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        product_code: row.try_get("product_code")?,
        product_version: row.try_get("product_version")?,
        kind,
        currency: row.try_get("currency")?,
        rate: Decimal::from_str(&rate).map_err(|_| corrupt("rate"))?,
        term_months: row
            .try_get::<Option<i64>, _>("term_months")?
            .and_then(|m| u32::try_from(m).ok()),
        maturity_on: date(row.try_get("maturity_on")?)?,
        status: row.try_get("status")?,
        opened_on: date(Some(row.try_get("opened_on")?))?.ok_or_else(|| corrupt("date"))?,
        opened_at_us: row.try_get("opened_at_us")?,
        closed_on: date(row.try_get("closed_on")?)?,
        accrued_through: date(row.try_get("accrued_through")?)?,
        accrual: Accrual {
            numerator: numerator.parse().map_err(|_| corrupt("accrual"))?,
            accrued: u128::try_from(accrued).map_err(|_| corrupt("accrual"))?,
        },
        interest_ledger_id: interest.parse().map_err(|_| corrupt("ledger id"))?,
        closing: row.try_get("closing")?,
    })
}

pub(crate) async fn record(
    tx: &mut Transaction<'static, Any>,
    event_type: &str,
    account_id: &str,
    data: serde_json::Value,
    trace: Option<TraceParent>,
    now: i64,
) -> Result<(), DepositError> {
    outbox::record(
        tx,
        SERVICE,
        NewEvent {
            event_type: event_type.to_owned(),
            aggregate: format!("account/{account_id}"),
            data,
            traceparent: trace,
        },
        now,
    )
    .await?;
    Ok(())
}
