//! The lending service's shell: credit evaluations — computed by the pure scorecard, stored
//! sealed (they are personal credit information) with the exact model version, each with an
//! outbox event that carries no credit information, and replayable — and applications with
//! their decisions. Loans are in [`crate::loans`].

use crate::credit::{Evaluation, EvaluationError, Inputs, Model, Requested};
use crate::decision::{Decision, Policy, decide};
use customers::vault::{Vault, VaultError, WrappedKey};
use kernel::event::TraceParent;
use kernel::http::Caller;
use peers::{CustomerLookup, PeerError, Peers};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::Row;
use store::outbox::{self, NewEvent};
use store::sql::now_us;
use store::{Store, StoreError};

/// The service's name.
pub const SERVICE: &str = "lending";
/// The permission evaluating needs.
pub const PERMISSION_EVALUATE: &str = "credit:evaluate";
/// The permission reading an evaluation (credit information) needs.
pub const PERMISSION_READ: &str = "credit:read";
/// The permission a loan officer's decision on a referred application needs.
pub const PERMISSION_DECIDE: &str = "credit:decide";

/// The lending schema.
pub const MIGRATIONS: store::sql::MigrationSet = store::sql::MigrationSet {
    name: "lending",
    migrations: &[
        store::sql::Migration {
            version: 1,
            description: "credit models and sealed evaluations",
            sql: include_str!("../migrations/0001_credit.sql"),
        },
        store::sql::Migration {
            version: 2,
            description: "loan applications",
            sql: include_str!("../migrations/0002_applications.sql"),
        },
        store::sql::Migration {
            version: 3,
            description: "loans, their steps and end-of-day runs",
            sql: include_str!("../migrations/0003_loans.sql"),
        },
    ],
};

/// What a lending operation can fail with; mapped to problem+json once, in the API.
#[derive(Debug, thiserror::Error)]
pub enum LendingError {
    /// The evaluation could not be made (bad terms, no income, a bad model).
    #[error(transparent)]
    Evaluation(#[from] EvaluationError),
    /// No such evaluation.
    #[error("no evaluation has this id")]
    NotFound,
    /// No such application.
    #[error("no application has this id")]
    ApplicationNotFound,
    /// No loan product with this code is sold today.
    #[error("no loan product with this code is sold today")]
    ProductNotAvailable,
    /// The application is not waiting for a loan officer.
    #[error("the application is {0}, not referred")]
    NotReferred(String),
    /// The input breaks a rule: `(code, detail)`.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// No such customer.
    #[error("no customer has this id")]
    CustomerNotFound,
    /// The customer was erased.
    #[error("the customer was erased")]
    CustomerErased,
    /// A model version was registered before with other content.
    #[error(
        "credit model version `{0}` exists with other content; give the new model a new version"
    )]
    ModelVersionReused(String),
    /// The caller lacks a permission.
    #[error("this action needs the permission `{0}`")]
    Forbidden(&'static str),
    /// A peer is unavailable.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// No such loan.
    #[error("no loan has this id")]
    LoanNotFound,
    /// The application has no offer (it was not approved).
    #[error("the application is {0}; only an approved application has an offer")]
    NoOffer(String),
    /// The request conflicts with the loan's state: `(code, detail)`.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// The contracts service refused the loan's contract: `(code, detail)`.
    #[error("the contract was refused: {1}")]
    ContractRefused(String, String),
    /// The ledger refused a step's postings (nothing moved): its result code.
    #[error("the ledger refused the postings: {0}")]
    LedgerRefused(String),
    /// The ledger could not be reached; a step may be pending and is finished by the next
    /// request on the loan.
    #[error(transparent)]
    Ledger(#[from] ledger::client::ClientError),
    /// This service runs without the ledger, contracts and deposits (quotes, evaluations and
    /// applications only).
    #[error("loans are not served here")]
    NotServicing,
    /// Other steps on the loan kept getting in first.
    #[error("the loan is busy; retry")]
    Busy,
    /// Keys or sealed values failed.
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LendingError {
    fn from(e: sqlx::Error) -> LendingError {
        LendingError::Store(StoreError::from(e))
    }
}

/// An evaluation as stored (opened).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvaluation {
    /// The id.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// What the applicant brought.
    pub inputs: Inputs,
    /// The loan asked for.
    pub requested: Requested,
    /// The result, with its explanation and model version.
    pub evaluation: Evaluation,
    /// When (µs).
    pub created_at_us: i64,
}

/// What sealing stores: everything needed to replay.
#[derive(Serialize, Deserialize)]
struct Sealed {
    inputs: Inputs,
    requested: Requested,
    evaluation: Evaluation,
}

/// A loan application as stored (opened).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Application {
    /// The id.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// The loan product and the version applied under.
    pub product_code: String,
    /// The version.
    pub product_version: i64,
    /// The evaluation it was decided on.
    pub evaluation_id: String,
    /// `approved`, `referred` or `declined`.
    pub status: String,
    /// The loan asked for.
    pub requested: Requested,
    /// The decision (the scorecard's, or a loan officer's).
    pub decision: Decision,
    /// The loan officer who decided a referred application.
    pub decided_by: Option<String>,
    /// The loan officer's reason.
    pub officer_reason: Option<String>,
    /// When it was submitted (µs).
    pub created_at_us: i64,
    /// When it was last decided (µs).
    pub updated_at_us: i64,
}

/// What an application seals.
#[derive(Serialize, Deserialize)]
struct SealedApplication {
    requested: Requested,
    decision: Decision,
    officer_reason: Option<String>,
}

/// A source of today's business date (Seoul).
pub type Today = std::sync::Arc<dyn Fn() -> time::Date + Send + Sync>;

/// The lending service.
pub struct Lending {
    pub(crate) store: Store,
    pub(crate) vault: Vault,
    pub(crate) peers: Peers,
    model: Model,
    policy: Policy,
    /// The ledger loans post to (none: loans are not served).
    pub(crate) ledger: Option<ledger::client::LedgerClient>,
    /// Contracts and deposits.
    pub(crate) links: Option<crate::links::Links>,
    /// Today's business date.
    pub(crate) today: Today,
    /// The servicing rules.
    pub(crate) servicing: crate::servicing::Policy,
}

impl Lending {
    /// The service over `store`, with `model` as the current credit model (registered here;
    /// migrations applied).
    pub async fn open(
        store: Store,
        vault: Vault,
        peers: Peers,
        model: Model,
    ) -> Result<Lending, LendingError> {
        store.migrate(&MIGRATIONS).await?;
        let text = serde_json::to_string(&model).expect("models serialize");
        let sha256 = kernel::hex(&Sha256::digest(text.as_bytes()));
        let mut tx = store.begin().await?;
        sqlx::query(
            "INSERT INTO credit_models (version, model, sha256, created_at_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(&model.version)
        .bind(&text)
        .bind(&sha256)
        .bind(now_us())
        .execute(&mut *tx)
        .await?;
        let stored: String =
            sqlx::query_scalar("SELECT sha256 FROM credit_models WHERE version = $1")
                .bind(&model.version)
                .fetch_one(&mut *tx)
                .await?;
        if stored != sha256 {
            return Err(LendingError::ModelVersionReused(model.version));
        }
        tx.commit().await?;
        Ok(Lending {
            store,
            vault,
            peers,
            model,
            policy: Policy::default(),
            ledger: None,
            links: None,
            today: std::sync::Arc::new(store::sql::today_kst),
            servicing: crate::servicing::Policy::default(),
        })
    }

    /// Serves loans too: offers, acceptance, disbursement and servicing, posting to `ledger`,
    /// with contracts and deposits through `links`.
    pub fn with_loans(
        mut self,
        ledger: ledger::client::LedgerClient,
        links: crate::links::Links,
    ) -> Lending {
        self.ledger = Some(ledger);
        self.links = Some(links);
        self
    }

    /// Posts to `ledger` without contracts and deposits: end of day, and the steps on loans
    /// already disbursed that pay nothing in or out (a benchmark's or an import's book).
    pub fn with_ledger(mut self, ledger: ledger::client::LedgerClient) -> Lending {
        self.ledger = Some(ledger);
        self
    }

    /// Takes today's business date from `today` (tests walk through months with it).
    pub fn with_today(mut self, today: Today) -> Lending {
        self.today = today;
        self
    }

    /// The store (for the outbox relay).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Evaluates an applicant and stores the evaluation, sealed.
    pub async fn evaluate(
        &self,
        caller: &Caller,
        customer_id: &str,
        inputs: Inputs,
        requested: Requested,
        trace: Option<TraceParent>,
    ) -> Result<StoredEvaluation, LendingError> {
        if !caller.may(PERMISSION_EVALUATE) {
            return Err(LendingError::Forbidden(PERMISSION_EVALUATE));
        }
        match self.peers.customer(customer_id).await? {
            CustomerLookup::Found(_) => {}
            CustomerLookup::NotFound => return Err(LendingError::CustomerNotFound),
            CustomerLookup::Erased => return Err(LendingError::CustomerErased),
        }
        let evaluation = self.model.evaluate(&inputs, &requested)?;
        let id = uuid::Uuid::now_v7().to_string();
        let (key, wrapped) = self.vault.new_data_key(&id)?;
        let sealed = Sealed {
            inputs,
            requested,
            evaluation,
        };
        let plaintext = serde_json::to_vec(&sealed).expect("evaluations serialize");
        let ciphertext = key.seal(&id, "evaluation", &plaintext);
        let now = now_us();
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO evaluations (id, customer_id, model_version, master_key_id, wrapped_key, sealed, created_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(customer_id)
        .bind(&sealed.evaluation.model_version)
        .bind(&wrapped.master_key_id)
        .bind(&wrapped.bytes)
        .bind(&ciphertext)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        outbox::record(
            &mut tx,
            SERVICE,
            NewEvent {
                event_type: "lending.evaluation.completed".into(),
                aggregate: format!("evaluation/{id}"),
                // Ids and the model only: a score or a grade is credit information.
                data: json!({
                    "evaluation_id": id,
                    "customer_id": customer_id,
                    "model_version": sealed.evaluation.model_version,
                }),
                traceparent: trace,
            },
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(StoredEvaluation {
            id,
            customer_id: customer_id.to_owned(),
            inputs: sealed.inputs,
            requested: sealed.requested,
            evaluation: sealed.evaluation,
            created_at_us: now,
        })
    }

    /// An evaluation, opened.
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<StoredEvaluation, LendingError> {
        if !caller.may(PERMISSION_READ) {
            return Err(LendingError::Forbidden(PERMISSION_READ));
        }
        self.load_evaluation(id).await
    }

    /// An evaluation, opened, for a step whose permission was already checked.
    pub(crate) async fn load_evaluation(&self, id: &str) -> Result<StoredEvaluation, LendingError> {
        let row = sqlx::query(
            "SELECT customer_id, master_key_id, wrapped_key, sealed, created_at_us FROM evaluations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.store.reader())
        .await?
        .ok_or(LendingError::NotFound)?;
        let wrapped = WrappedKey {
            master_key_id: row.try_get("master_key_id")?,
            bytes: row.try_get("wrapped_key")?,
        };
        let key = self.vault.data_key(id, &wrapped)?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        let plaintext = key.open(id, "evaluation", &sealed)?;
        let opened: Sealed = serde_json::from_slice(&plaintext).map_err(|_| VaultError::Format)?;
        Ok(StoredEvaluation {
            id: id.to_owned(),
            customer_id: row.try_get("customer_id")?,
            inputs: opened.inputs,
            requested: opened.requested,
            evaluation: opened.evaluation,
            created_at_us: row.try_get("created_at_us")?,
        })
    }

    /// Evaluates a stored evaluation's inputs again under the model version it used; the
    /// result must be identical.
    pub async fn replay(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(StoredEvaluation, Evaluation), LendingError> {
        let stored = self.get(caller, id).await?;
        let text: String = sqlx::query_scalar("SELECT model FROM credit_models WHERE version = $1")
            .bind(&stored.evaluation.model_version)
            .fetch_one(self.store.reader())
            .await?;
        let model = Model::parse(&text)?;
        let again = model.evaluate(&stored.inputs, &stored.requested)?;
        Ok((stored, again))
    }

    /// Applies for a loan: the product version in force today, the applicant evaluated (and the
    /// evaluation stored), the decision made — approved, declined, or referred to a loan
    /// officer — and the application stored sealed with it.
    pub async fn apply(
        &self,
        caller: &Caller,
        customer_id: &str,
        product_code: &str,
        inputs: Inputs,
        requested: Requested,
        trace: Option<TraceParent>,
    ) -> Result<Application, LendingError> {
        if !caller.may(PERMISSION_EVALUATE) {
            return Err(LendingError::Forbidden(PERMISSION_EVALUATE));
        }
        let product = self
            .peers
            .product_in_force(product_code, store::sql::today_kst())
            .await?
            .filter(|p| p.kind.is_loan())
            .ok_or(LendingError::ProductNotAvailable)?;
        let evaluated = self
            .evaluate(caller, customer_id, inputs, requested, trace)
            .await?;
        let decision = decide(
            &product.terms,
            &evaluated.inputs,
            &evaluated.requested,
            &evaluated.evaluation,
            self.model.dsr_cap,
            &self.policy,
        );
        let id = uuid::Uuid::now_v7().to_string();
        let now = now_us();
        let application = Application {
            id: id.clone(),
            customer_id: customer_id.to_owned(),
            product_code: product.code.clone(),
            product_version: product.version,
            evaluation_id: evaluated.id.clone(),
            status: status_of(&decision).to_owned(),
            requested: evaluated.requested,
            decision,
            decided_by: None,
            officer_reason: None,
            created_at_us: now,
            updated_at_us: now,
        };
        let (key, wrapped) = self.vault.new_data_key(&id)?;
        let sealed = key.seal(&id, "application", &seal_application(&application));
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO applications (id, customer_id, product_code, product_version, evaluation_id, status, \
             master_key_id, wrapped_key, sealed, created_at_us, updated_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&id)
        .bind(customer_id)
        .bind(&application.product_code)
        .bind(application.product_version)
        .bind(&application.evaluation_id)
        .bind(&application.status)
        .bind(&wrapped.master_key_id)
        .bind(&wrapped.bytes)
        .bind(&sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        application_event(&mut tx, &application, trace, now).await?;
        tx.commit().await?;
        Ok(application)
    }

    /// An application, opened.
    pub async fn application(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Application, LendingError> {
        if !caller.may(PERMISSION_READ) {
            return Err(LendingError::Forbidden(PERMISSION_READ));
        }
        self.load_application(id).await
    }

    /// An application, opened, for a step whose permission was already checked.
    pub(crate) async fn load_application(&self, id: &str) -> Result<Application, LendingError> {
        let row = sqlx::query(concat!(select_application!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.reader())
            .await?
            .ok_or(LendingError::ApplicationNotFound)?;
        self.open_application(&row)
    }

    /// Applications in a status (`referred`: the loan officers' queue), oldest first.
    pub async fn applications(
        &self,
        caller: &Caller,
        status: &str,
        limit: u32,
    ) -> Result<Vec<Application>, LendingError> {
        if !caller.may(PERMISSION_READ) {
            return Err(LendingError::Forbidden(PERMISSION_READ));
        }
        let rows = sqlx::query(concat!(
            select_application!(),
            " WHERE status = $1 ORDER BY created_at_us, id LIMIT $2"
        ))
        .bind(status)
        .bind(i64::from(limit.clamp(1, 200)))
        .fetch_all(self.store.reader())
        .await?;
        rows.iter().map(|r| self.open_application(r)).collect()
    }

    /// A loan officer decides a referred application: approve (up to the requested amount, at
    /// the product's rate for the grade the evaluation gave) or decline, with a reason.
    pub async fn decide_referred(
        &self,
        caller: &Caller,
        id: &str,
        approve: bool,
        reason: &str,
        trace: Option<TraceParent>,
    ) -> Result<Application, LendingError> {
        if !caller.may(PERMISSION_DECIDE) {
            return Err(LendingError::Forbidden(PERMISSION_DECIDE));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(LendingError::Invalid(
                "invalid_reason",
                "a decision needs a `reason` of 1 to 500 characters".into(),
            ));
        }
        let mut application = self.load_application(id).await?;
        if application.status != "referred" {
            return Err(LendingError::NotReferred(application.status));
        }
        let product = self
            .peers
            .product_version(&application.product_code, application.product_version)
            .await?
            .ok_or(LendingError::ProductNotAvailable)?;
        let evaluation = self.load_evaluation(&application.evaluation_id).await?;
        application.decision = if approve {
            let max: u128 = product.terms.amount.max.parse().unwrap_or(u128::MAX);
            Decision::Approve {
                limit: application.requested.principal.min(max),
                annual_rate: products::model::rate_for(
                    &product.terms,
                    Some(application.requested.term_months),
                    Some(evaluation.evaluation.grade),
                ),
            }
        } else {
            Decision::Decline {
                reasons: vec!["O01".into()],
            }
        };
        application.status = status_of(&application.decision).to_owned();
        application.decided_by = Some(caller.principal.clone());
        application.officer_reason = Some(reason.to_owned());
        let now = now_us();
        application.updated_at_us = now;
        let (key, wrapped) = self.vault.new_data_key(id)?;
        let sealed = key.seal(id, "application", &seal_application(&application));
        let mut tx = self.store.begin().await?;
        let updated = sqlx::query(
            "UPDATE applications SET status = $2, master_key_id = $3, wrapped_key = $4, sealed = $5, \
             decided_by = $6, updated_at_us = $7 WHERE id = $1 AND status = 'referred'",
        )
        .bind(id)
        .bind(&application.status)
        .bind(&wrapped.master_key_id)
        .bind(&wrapped.bytes)
        .bind(&sealed)
        .bind(&caller.principal)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(LendingError::NotReferred("decided already".into()));
        }
        application_event(&mut tx, &application, trace, now).await?;
        tx.commit().await?;
        tracing::info!(application = id, officer = %caller.principal, "lending: a referred application was decided");
        Ok(application)
    }

    fn open_application(&self, row: &sqlx::any::AnyRow) -> Result<Application, LendingError> {
        let id: String = row.try_get("id")?;
        let wrapped = WrappedKey {
            master_key_id: row.try_get("master_key_id")?,
            bytes: row.try_get("wrapped_key")?,
        };
        let key = self.vault.data_key(&id, &wrapped)?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        let opened: SealedApplication =
            serde_json::from_slice(&key.open(&id, "application", &sealed)?)
                .map_err(|_| VaultError::Format)?;
        Ok(Application {
            customer_id: row.try_get("customer_id")?,
            product_code: row.try_get("product_code")?,
            product_version: row.try_get("product_version")?,
            evaluation_id: row.try_get("evaluation_id")?,
            status: row.try_get("status")?,
            decided_by: row.try_get("decided_by")?,
            created_at_us: row.try_get("created_at_us")?,
            updated_at_us: row.try_get("updated_at_us")?,
            requested: opened.requested,
            decision: opened.decision,
            officer_reason: opened.officer_reason,
            id,
        })
    }
}

macro_rules! select_application {
    () => {
        "SELECT id, customer_id, product_code, product_version, evaluation_id, status, master_key_id, \
         wrapped_key, sealed, decided_by, created_at_us, updated_at_us FROM applications"
    };
}
use select_application;

fn status_of(decision: &Decision) -> &'static str {
    match decision {
        Decision::Approve { .. } => "approved",
        Decision::Refer { .. } => "referred",
        Decision::Decline { .. } => "declined",
    }
}

fn seal_application(a: &Application) -> Vec<u8> {
    serde_json::to_vec(&SealedApplication {
        requested: a.requested.clone(),
        decision: a.decision.clone(),
        officer_reason: a.officer_reason.clone(),
    })
    .expect("applications serialize")
}

/// `lending.application.<status>`: ids and the status, never the terms or the reasons.
async fn application_event(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    a: &Application,
    trace: Option<TraceParent>,
    now: i64,
) -> Result<(), LendingError> {
    outbox::record(
        tx,
        SERVICE,
        NewEvent {
            event_type: format!("lending.application.{}", a.status),
            aggregate: format!("application/{}", a.id),
            data: json!({
                "application_id": a.id,
                "customer_id": a.customer_id,
                "product_code": a.product_code,
                "product_version": a.product_version,
                "decided_by": a.decided_by,
            }),
            traceparent: trace,
        },
        now,
    )
    .await?;
    Ok(())
}

/// The tables whose rows carry a data key of their own (the row id is the key's owner).
const KEYED_TABLES: [&str; 2] = ["evaluations", "applications"];

/// Re-wraps up to [`customers::service::REWRAP_BATCH`] data keys per table that are not under
/// the vault's current master key, in one transaction; returns how many. A row is updated
/// only if it still holds the key that was read. For `gureum keys rotate --service lending`.
pub async fn rewrap_batch(store: &Store, vault: &Vault) -> Result<u64, LendingError> {
    let current = vault.current_master_key_id()?;
    // Read first, outside the transaction: on SQLite a transaction that reads and then
    // writes fails at once ("database is locked") when the running service wrote in
    // between, where one that only writes waits its turn. The updates below are conditional,
    // so nothing read here is trusted blindly.
    let mut batches = Vec::with_capacity(KEYED_TABLES.len());
    for table in KEYED_TABLES {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, master_key_id, wrapped_key FROM {table} WHERE master_key_id <> $1 ORDER BY id LIMIT $2"
        )))
        .bind(&current)
        .bind(i64::from(customers::service::REWRAP_BATCH))
        .fetch_all(store.reader())
        .await?;
        batches.push((table, rows));
    }
    if batches.iter().all(|(_, rows)| rows.is_empty()) {
        return Ok(0);
    }
    let mut done = 0;
    let mut tx = store.begin().await?;
    for (table, rows) in &batches {
        for row in rows {
            let owner: String = row.try_get("id")?;
            let wrapped = WrappedKey {
                master_key_id: row.try_get("master_key_id")?,
                bytes: row.try_get("wrapped_key")?,
            };
            let Some(rewrapped) = vault.rewrap(&owner, &wrapped)? else {
                continue;
            };
            let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE {table} SET master_key_id = $2, wrapped_key = $3 WHERE id = $1 AND master_key_id = $4"
            )))
            .bind(&owner)
            .bind(&rewrapped.master_key_id)
            .bind(&rewrapped.bytes)
            .bind(&wrapped.master_key_id)
            .execute(&mut *tx)
            .await?;
            done += updated.rows_affected();
        }
    }
    tx.commit().await?;
    Ok(done)
}

/// How many data keys each master key wraps, over every keyed table.
pub async fn key_usage(store: &Store) -> Result<Vec<customers::service::KeyUsage>, LendingError> {
    let mut usage: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for table in KEYED_TABLES {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT master_key_id, COUNT(*) AS n FROM {table} GROUP BY master_key_id"
        )))
        .fetch_all(store.reader())
        .await?;
        for r in &rows {
            *usage.entry(r.try_get("master_key_id")?).or_default() += r.try_get::<i64, _>("n")?;
        }
    }
    Ok(usage
        .into_iter()
        .map(|(master_key_id, data_keys)| customers::service::KeyUsage {
            master_key_id,
            data_keys,
        })
        .collect())
}
