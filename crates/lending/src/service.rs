//! The lending service's shell. Today: credit evaluations — computed by the pure scorecard,
//! stored sealed (they are personal credit information) with the exact model version, each
//! with an outbox event that carries no credit information, and replayable.

use crate::credit::{Evaluation, EvaluationError, Inputs, Model, Requested};
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

/// The lending schema.
pub const MIGRATIONS: store::sql::MigrationSet = store::sql::MigrationSet {
    name: "lending",
    migrations: &[store::sql::Migration {
        version: 1,
        description: "credit models and sealed evaluations",
        sql: include_str!("../migrations/0001_credit.sql"),
    }],
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

/// The lending service.
pub struct Lending {
    store: Store,
    vault: Vault,
    peers: Peers,
    model: Model,
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
        let sha256: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
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
        })
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
}
