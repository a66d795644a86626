//! The customers service's shell: storage, sealing, auditing and events around the pure
//! rules of [`crate::model`]. Every change commits with its outbox events in one transaction;
//! every unmasked read commits its audit record (and event) *before* the value is returned.

use crate::identifiers::{Brn, Phone, Rrn};
use crate::model::{
    self, Channel, Field, Kind, KycStatus, NewCustomer, Patch, Profile, Purpose, RuleError,
    Submitted,
};
use crate::vault::{DataKey, Vault, VaultError, WrappedKey};
use kernel::event::TraceParent;
use kernel::http::Caller;
use serde_json::{Map, Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use store::outbox::{self, NewEvent};
use store::sql::{now_us, today_kst};
use store::{Store, StoreError};
use time::Date;

/// The service's name: its event source, stream, schema and database file.
pub const SERVICE: &str = "customers";
/// Customers in one page of a list at most.
pub const PAGE_LIMIT_MAX: u32 = 200;
/// Customers one search returns at most (a phone number may be shared).
pub const SEARCH_RESULTS_MAX: u32 = 50;
/// How often an update re-reads and retries when other changes keep getting in first.
pub const UPDATE_ATTEMPTS_MAX: u32 = 5;
/// Data keys re-wrapped per transaction by [`Customers::rewrap_batch`].
pub const REWRAP_BATCH: u32 = 500;

/// The permission an unmasked read needs.
pub const PERMISSION_UNMASK: &str = "customers:unmask";
/// Reading every customer (a customer's own credential reads only its own record).
pub const PERMISSION_READ: &str = "customers:read";
/// The permission erasure needs.
pub const PERMISSION_ERASE: &str = "customers:erase";
/// The permission reading the access log needs.
pub const PERMISSION_AUDIT: &str = "customers:audit";

/// What a customers operation can fail with; mapped to problem+json once, in the API.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// The input breaks a rule.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// No customer has this id.
    #[error("no customer has this id")]
    NotFound,
    /// The customer was erased.
    #[error("the customer was erased; their personal data no longer exists")]
    Erased,
    /// A customer with this registration number exists.
    #[error("a customer with this registration number already exists; search for it")]
    RrnTaken,
    /// A customer with this business registration number exists.
    #[error("a customer with this business registration number already exists")]
    BusinessNumberTaken,
    /// The KYC status cannot move this way.
    #[error("KYC status cannot go from `{from}` to `{to}`")]
    KycTransition {
        /// The current status.
        from: &'static str,
        /// The requested one.
        to: &'static str,
    },
    /// The caller lacks a permission.
    #[error("this action needs the permission `{0}`")]
    Forbidden(&'static str),
    /// The caller's `If-Match` names a version that is no longer current.
    #[error("the customer is at version {current}, not the one this change was based on")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// Other changes kept getting in first.
    #[error("the customer is being changed by others right now; retry")]
    Contended,
    /// An unmasked read without a stated purpose.
    #[error("an unmasked read needs a `purpose`: why the value is needed (1 to 500 characters)")]
    PurposeRequired,
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Keys or sealed values failed.
    #[error("vault: {0}")]
    Vault(#[from] VaultError),
}

impl From<sqlx::Error> for CustomerError {
    fn from(e: sqlx::Error) -> CustomerError {
        CustomerError::Store(StoreError::from(e))
    }
}

/// A customer as returned: regulated fields masked, except those unmasked for this read.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerView {
    /// The id.
    pub id: String,
    /// `individual` or `business`.
    pub kind: &'static str,
    /// KYC status.
    pub kyc_status: &'static str,
    /// Field values as returned (masked or plain), by wire name; absent fields are `null`.
    pub fields: Map<String, Value>,
    /// Business registration number.
    pub business_registration_number: Option<String>,
    /// The fields returned in the clear this time.
    pub unmasked: Vec<&'static str>,
    /// Increases with every change.
    pub version: i64,
    /// Creation time, microseconds since the epoch.
    pub created_at_us: i64,
    /// Last change, microseconds since the epoch.
    pub updated_at_us: i64,
}

/// A page of customers.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// The customers, by id.
    pub items: Vec<CustomerView>,
    /// The id to pass as `after` for the next page, if there may be one.
    pub next: Option<String>,
}

/// One KYC status change.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct KycEntry {
    /// The status it moved to.
    pub status: String,
    /// Why (an operator's note).
    pub reason: Option<String>,
    /// Who.
    pub actor: String,
    /// When, microseconds since the epoch.
    #[serde(skip)]
    pub at_us: i64,
    /// When (RFC 3339).
    pub at: String,
}

/// A consent's current state or one change of it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ConsentEntry {
    /// `marketing`, `credit_inquiry` or `third_party_sharing`.
    pub purpose: String,
    /// Given (`true`) or withdrawn.
    pub granted: bool,
    /// Where: `app`, `web`, `branch`, `call_center`, `mail`.
    pub channel: String,
    /// Who recorded it (history only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// One unmasked read.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AccessEntry {
    /// Who read.
    pub principal: String,
    /// Which fields.
    pub fields: Vec<String>,
    /// Why.
    pub purpose: String,
    /// The request's trace id.
    pub trace_id: Option<String>,
    /// When (RFC 3339).
    pub at: String,
}

/// How many data keys each master key wraps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct KeyUsage {
    /// The master key's id.
    pub master_key_id: String,
    /// Data keys wrapped under it.
    pub data_keys: i64,
}

/// The customers service over its store and vault.
#[derive(Clone)]
pub struct Customers {
    store: Store,
    vault: Vault,
}

/// The customers service's schema.
pub const MIGRATIONS: store::sql::MigrationSet = store::sql::MigrationSet {
    name: "customers",
    migrations: &[store::sql::Migration {
        version: 1,
        description: "customers, data keys, KYC, consents, access log",
        sql: include_str!("../migrations/0001_customers.sql"),
    }],
};

impl Customers {
    /// The service over `store` (its migrations applied here) and `vault`.
    pub async fn open(store: Store, vault: Vault) -> Result<Customers, CustomerError> {
        store.migrate(&MIGRATIONS).await?;
        Ok(Customers { store, vault })
    }

    /// The store (for the outbox relay).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Onboards a customer: validates, seals every regulated field under a fresh data key,
    /// indexes the registration number and phone, and records `customers.customer.created`.
    pub async fn create(
        &self,
        caller: &Caller,
        submitted: Submitted,
        trace: Option<TraceParent>,
    ) -> Result<CustomerView, CustomerError> {
        let NewCustomer { kind, profile, brn } = model::validate_new(submitted, today_kst())?;
        let id = uuid::Uuid::now_v7().to_string();
        let (key, wrapped) = self.vault.new_data_key(&id)?;
        let sealed = Sealed::seal(&key, &id, &profile);
        let rrn_index = profile.rrn.as_ref().map(|r| self.rrn_index(r));
        let phone_index = profile.phone.as_ref().map(|p| self.phone_index(p));
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO customers (id, kind, state, kyc_status, name_sealed, rrn_sealed, \
             phone_sealed, address_sealed, income_sealed, employer_sealed, credit_sealed, \
             rrn_index, phone_index, business_number, version, created_at_us, updated_at_us) \
             VALUES ($1, $2, 'active', 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13)",
        )
        .bind(&id)
        .bind(kind.name())
        .bind(&sealed.name)
        .bind(&sealed.rrn)
        .bind(&sealed.phone)
        .bind(&sealed.address)
        .bind(&sealed.income)
        .bind(&sealed.employer)
        .bind(&sealed.credit)
        .bind(&rrn_index)
        .bind(&phone_index)
        .bind(brn.as_ref().map(Brn::as_str))
        .bind(now)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            drop(tx);
            return Err(if store::sql::is_unique_violation(&e) {
                self.which_unique(rrn_index.as_deref()).await
            } else {
                e.into()
            });
        }
        sqlx::query(
            "INSERT INTO customer_keys (customer_id, master_key_id, wrapped_key, created_at_us) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(&wrapped.master_key_id)
        .bind(&wrapped.bytes)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_kyc(
            &mut tx,
            &id,
            KycStatus::Pending,
            Some("onboarded"),
            &caller.principal,
            now,
        )
        .await?;
        record_event(
            &mut tx,
            "customers.customer.created",
            &id,
            json!({"customer_id": id, "kind": kind.name(), "kyc_status": "pending"}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(customer_id = %id, kind = kind.name(), "customer created");
        Ok(view(
            &id,
            kind,
            KycStatus::Pending,
            &profile,
            brn.as_ref(),
            &[],
            1,
            now,
            now,
        ))
    }

    /// Which unique key a refused insert collided with: the registration number if a
    /// customer holds it, else the business registration number.
    async fn which_unique(&self, rrn_index: Option<&[u8]>) -> CustomerError {
        if let Some(index) = rrn_index {
            let taken = sqlx::query("SELECT 1 FROM customers WHERE rrn_index = $1")
                .bind(index)
                .fetch_optional(self.store.reader())
                .await;
            if !matches!(taken, Ok(None)) {
                return CustomerError::RrnTaken;
            }
        }
        CustomerError::BusinessNumberTaken
    }

    /// A customer, masked.
    pub async fn get(&self, id: &str) -> Result<CustomerView, CustomerError> {
        let record = self.load(id).await?;
        Ok(record.view(&[]))
    }

    /// A customer with `fields` in the clear. Needs [`PERMISSION_UNMASK`] and a purpose;
    /// the read is recorded in the access log and as a `customers.customer.unmasked` event in
    /// one transaction that commits before any value is returned.
    pub async fn get_unmasked(
        &self,
        caller: &Caller,
        id: &str,
        fields: &[Field],
        purpose: Option<&str>,
        trace: Option<TraceParent>,
    ) -> Result<CustomerView, CustomerError> {
        if !caller.may(PERMISSION_UNMASK) {
            return Err(CustomerError::Forbidden(PERMISSION_UNMASK));
        }
        let purpose = purpose
            .and_then(|p| model::text("purpose", p, model::NOTE_CHARS_MAX).ok())
            .ok_or(CustomerError::PurposeRequired)?;
        let record = self.load(id).await?;
        let names: Vec<&str> = fields.iter().map(|f| f.name()).collect();
        let now = now_us();
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO pii_access (customer_id, principal, fields, purpose, trace_id, at_us) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(&caller.principal)
        .bind(names.join(","))
        .bind(&purpose)
        .bind(trace.map(|t| trace_id(&t)))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        record_event(
            &mut tx,
            "customers.customer.unmasked",
            id,
            json!({"customer_id": id, "fields": names, "purpose": purpose, "principal": caller.principal}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(customer_id = %id, principal = %caller.principal, fields = ?names, "unmasked read");
        Ok(record.view(fields))
    }

    /// Changes regulated fields; records `customers.customer.updated` naming the fields
    /// (never their values). With `expected_version` (HTTP `If-Match`), refuses if the
    /// customer changed since the caller read it.
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        patch: Patch,
        expected_version: Option<i64>,
        trace: Option<TraceParent>,
    ) -> Result<CustomerView, CustomerError> {
        // Optimistic: the write names the version it read. If another change got in between,
        // read again and apply the patch anew — it only sets the fields it names, so neither
        // change is lost.
        for _ in 0..UPDATE_ATTEMPTS_MAX {
            let mut record = self.load(id).await?;
            if let Some(expected) = expected_version
                && expected != record.version
            {
                return Err(CustomerError::VersionMismatch {
                    current: record.version,
                });
            }
            let changed = model::apply_patch(&mut record.profile, patch.clone())?;
            if changed.is_empty() {
                return Ok(record.view(&[]));
            }
            let sealed = Sealed::seal(&record.key, id, &record.profile);
            let phone_index = record.profile.phone.as_ref().map(|p| self.phone_index(p));
            let now = now_us();
            let mut tx = self.store.begin().await?;
            let done = sqlx::query(
                "UPDATE customers SET name_sealed = $2, phone_sealed = $3, address_sealed = $4, \
                 income_sealed = $5, employer_sealed = $6, credit_sealed = $7, phone_index = $8, \
                 version = version + 1, updated_at_us = $9 \
                 WHERE id = $1 AND state = 'active' AND version = $10",
            )
            .bind(id)
            .bind(&sealed.name)
            .bind(&sealed.phone)
            .bind(&sealed.address)
            .bind(&sealed.income)
            .bind(&sealed.employer)
            .bind(&sealed.credit)
            .bind(&phone_index)
            .bind(now)
            .bind(record.version)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                // Erased (the next read says so) or changed since it was read: try again.
                continue;
            }
            let names: Vec<&str> = changed.iter().map(|f| f.name()).collect();
            record_event(
                &mut tx,
                "customers.customer.updated",
                id,
                json!({"customer_id": id, "fields": names, "principal": caller.principal}),
                trace,
                now,
            )
            .await?;
            tx.commit().await?;
            record.version += 1;
            record.updated_at_us = now;
            return Ok(record.view(&[]));
        }
        Err(CustomerError::Contended)
    }

    /// Customers in id order (creation order), after `after`, optionally with one KYC status.
    pub async fn list(
        &self,
        after: Option<&str>,
        limit: u32,
        kyc_status: Option<KycStatus>,
    ) -> Result<Page, CustomerError> {
        let limit = limit.clamp(1, PAGE_LIMIT_MAX);
        let rows = sqlx::query(concat!(
            select_customer!(),
            " WHERE c.state = 'active' AND c.id > $1 AND ($2 = '' OR c.kyc_status = $2) \
             ORDER BY c.id LIMIT $3"
        ))
        .bind(after.unwrap_or(""))
        .bind(kyc_status.map(KycStatus::name).unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.store.reader())
        .await?;
        let items = rows
            .iter()
            .map(|row| Ok(self.open_record(row)?.view(&[])))
            .collect::<Result<Vec<_>, CustomerError>>()?;
        let next = (items.len() == limit as usize).then(|| items[items.len() - 1].id.clone());
        Ok(Page { items, next })
    }

    /// Exact-match search through the blind indexes (registration number, phone) or the
    /// business registration number. Nothing is decrypted to search.
    pub async fn search(&self, by: Search) -> Result<Vec<CustomerView>, CustomerError> {
        let today = today_kst();
        enum Key {
            Rrn(Vec<u8>),
            Phone(Vec<u8>),
            Business(String),
        }
        let invalid = |field: &'static str| {
            move |e: crate::identifiers::IdentifierError| RuleError::Invalid {
                field,
                reason: e.to_string(),
            }
        };
        let key = match by {
            Search::Rrn(text) => {
                Key::Rrn(self.rrn_index(&Rrn::parse(&text, today).map_err(invalid("rrn"))?))
            }
            Search::Phone(text) => {
                Key::Phone(self.phone_index(&Phone::parse(&text).map_err(invalid("phone"))?))
            }
            Search::BusinessNumber(text) => Key::Business(
                Brn::parse(&text)
                    .map_err(invalid("business_registration_number"))?
                    .as_str()
                    .to_owned(),
            ),
        };
        let limit = i64::from(SEARCH_RESULTS_MAX);
        let reader = self.store.reader();
        let rows =
            match key {
                Key::Rrn(index) => {
                    sqlx::query(concat!(
                        select_customer!(),
                        " WHERE c.state = 'active' AND c.rrn_index = $1 ORDER BY c.id LIMIT $2"
                    ))
                    .bind(index)
                    .bind(limit)
                    .fetch_all(reader)
                    .await?
                }
                Key::Phone(index) => {
                    sqlx::query(concat!(
                        select_customer!(),
                        " WHERE c.state = 'active' AND c.phone_index = $1 ORDER BY c.id LIMIT $2"
                    ))
                    .bind(index)
                    .bind(limit)
                    .fetch_all(reader)
                    .await?
                }
                Key::Business(number) => sqlx::query(concat!(
                    select_customer!(),
                    " WHERE c.state = 'active' AND c.business_number = $1 ORDER BY c.id LIMIT $2"
                ))
                .bind(number)
                .bind(limit)
                .fetch_all(reader)
                .await?,
            };
        rows.iter()
            .map(|row| Ok(self.open_record(row)?.view(&[])))
            .collect()
    }

    /// Moves the KYC status (see [`KycStatus::may_become`]); records the history and
    /// `customers.customer.kyc_changed`.
    pub async fn set_kyc(
        &self,
        caller: &Caller,
        id: &str,
        status: KycStatus,
        reason: Option<&str>,
        trace: Option<TraceParent>,
    ) -> Result<CustomerView, CustomerError> {
        let reason = reason
            .map(|r| model::text("reason", r, model::NOTE_CHARS_MAX))
            .transpose()?;
        let mut record = self.load(id).await?;
        if !record.kyc_status.may_become(status) {
            return Err(CustomerError::KycTransition {
                from: record.kyc_status.name(),
                to: status.name(),
            });
        }
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let done = sqlx::query(
            "UPDATE customers SET kyc_status = $3, version = version + 1, updated_at_us = $4 \
             WHERE id = $1 AND state = 'active' AND kyc_status = $2",
        )
        .bind(id)
        .bind(record.kyc_status.name())
        .bind(status.name())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            // Erased, or another change of status won the race: answer from the current state.
            drop(tx);
            let current = self.load(id).await?;
            return Err(CustomerError::KycTransition {
                from: current.kyc_status.name(),
                to: status.name(),
            });
        }
        insert_kyc(
            &mut tx,
            id,
            status,
            reason.as_deref(),
            &caller.principal,
            now,
        )
        .await?;
        record_event(
            &mut tx,
            "customers.customer.kyc_changed",
            id,
            json!({"customer_id": id, "from": record.kyc_status.name(), "to": status.name()}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        record.kyc_status = status;
        record.version += 1;
        record.updated_at_us = now;
        Ok(record.view(&[]))
    }

    /// A customer's KYC history, oldest first.
    pub async fn kyc_history(&self, id: &str) -> Result<Vec<KycEntry>, CustomerError> {
        self.load_state(id).await?;
        let rows = sqlx::query(
            "SELECT status, reason, actor, at_us FROM kyc_history WHERE customer_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let at_us: i64 = r.try_get("at_us")?;
                Ok(KycEntry {
                    status: r.try_get("status")?,
                    reason: r.try_get("reason")?,
                    actor: r.try_get("actor")?,
                    at_us,
                    at: rfc3339(at_us),
                })
            })
            .collect()
    }

    /// Gives or withdraws a consent; records it in the history and as
    /// `customers.customer.consent_changed`.
    pub async fn set_consent(
        &self,
        caller: &Caller,
        id: &str,
        purpose: Purpose,
        granted: bool,
        channel: Channel,
        trace: Option<TraceParent>,
    ) -> Result<ConsentEntry, CustomerError> {
        let now = now_us();
        let mut tx = self.store.begin().await?;
        // Checked inside the transaction so an erasure cannot slip between check and write.
        if is_erased(&mut *tx, id).await? {
            return Err(CustomerError::Erased);
        }
        sqlx::query(
            "INSERT INTO consents (customer_id, purpose, granted, channel, at_us) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (customer_id, purpose) DO UPDATE SET granted = $3, channel = $4, at_us = $5",
        )
        .bind(id)
        .bind(purpose.name())
        .bind(i64::from(granted))
        .bind(channel.name())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO consent_history (customer_id, purpose, granted, channel, actor, at_us) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(purpose.name())
        .bind(i64::from(granted))
        .bind(channel.name())
        .bind(&caller.principal)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        record_event(
            &mut tx,
            "customers.customer.consent_changed",
            id,
            json!({"customer_id": id, "purpose": purpose.name(), "granted": granted, "channel": channel.name()}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ConsentEntry {
            purpose: purpose.name().to_owned(),
            granted,
            channel: channel.name().to_owned(),
            actor: None,
            at: rfc3339(now),
        })
    }

    /// A customer's consents now (one per purpose ever recorded) and their history.
    pub async fn consents(
        &self,
        id: &str,
    ) -> Result<(Vec<ConsentEntry>, Vec<ConsentEntry>), CustomerError> {
        self.load_state(id).await?;
        let current = sqlx::query(
            "SELECT purpose, granted, channel, at_us FROM consents WHERE customer_id = $1 ORDER BY purpose",
        )
        .bind(id)
        .fetch_all(self.store.reader())
        .await?;
        let history = sqlx::query(
            "SELECT purpose, granted, channel, actor, at_us FROM consent_history \
             WHERE customer_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.store.reader())
        .await?;
        let entry = |r: &AnyRow, with_actor: bool| -> Result<ConsentEntry, CustomerError> {
            Ok(ConsentEntry {
                purpose: r.try_get("purpose")?,
                granted: r.try_get::<i64, _>("granted")? != 0,
                channel: r.try_get("channel")?,
                actor: if with_actor {
                    Some(r.try_get("actor")?)
                } else {
                    None
                },
                at: rfc3339(r.try_get("at_us")?),
            })
        };
        Ok((
            current
                .iter()
                .map(|r| entry(r, false))
                .collect::<Result<_, _>>()?,
            history
                .iter()
                .map(|r| entry(r, true))
                .collect::<Result<_, _>>()?,
        ))
    }

    /// The unmasked reads of a customer, oldest first. Needs [`PERMISSION_AUDIT`]. Answers
    /// for erased customers too: the log holds no values and outlives them.
    pub async fn access_log(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<AccessEntry>, CustomerError> {
        if !caller.may(PERMISSION_AUDIT) {
            return Err(CustomerError::Forbidden(PERMISSION_AUDIT));
        }
        match self.load_state(id).await {
            Ok(_) | Err(CustomerError::Erased) => {}
            Err(e) => return Err(e),
        }
        let rows = sqlx::query(
            "SELECT principal, fields, purpose, trace_id, at_us FROM pii_access \
             WHERE customer_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let fields: String = r.try_get("fields")?;
                Ok(AccessEntry {
                    principal: r.try_get("principal")?,
                    fields: fields.split(',').map(str::to_owned).collect(),
                    purpose: r.try_get("purpose")?,
                    trace_id: r.try_get("trace_id")?,
                    at: rfc3339(r.try_get("at_us")?),
                })
            })
            .collect()
    }

    /// Erases a customer by crypto-shredding: the wrapped data key is deleted (so every sealed
    /// value of theirs, wherever a copy lies, can no longer be opened), the sealed values and
    /// blind indexes are cleared, and a tombstone stays (id, kind, times). Records
    /// `customers.customer.erased`. Erasing an erased customer changes nothing. Needs
    /// [`PERMISSION_ERASE`].
    pub async fn erase(
        &self,
        caller: &Caller,
        id: &str,
        trace: Option<TraceParent>,
    ) -> Result<(), CustomerError> {
        if !caller.may(PERMISSION_ERASE) {
            return Err(CustomerError::Forbidden(PERMISSION_ERASE));
        }
        let now = now_us();
        let mut tx = self.store.begin().await?;
        if is_erased(&mut *tx, id).await? {
            return Ok(());
        }
        sqlx::query("DELETE FROM customer_keys WHERE customer_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE customers SET state = 'erased', name_sealed = NULL, rrn_sealed = NULL, \
             phone_sealed = NULL, address_sealed = NULL, income_sealed = NULL, \
             employer_sealed = NULL, credit_sealed = NULL, rrn_index = NULL, phone_index = NULL, \
             business_number = NULL, version = version + 1, updated_at_us = $2, erased_at_us = $2 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        record_event(
            &mut tx,
            "customers.customer.erased",
            id,
            json!({"customer_id": id, "principal": caller.principal}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        self.store.purge_freed().await?;
        tracing::info!(customer_id = %id, principal = %caller.principal, "customer erased");
        Ok(())
    }

    /// Re-wraps up to [`REWRAP_BATCH`] data keys that are not under the current master key,
    /// in one transaction; returns how many. Each row is updated only if it still holds what
    /// was read, so a concurrent erasure or rotation is never overwritten.
    pub async fn rewrap_batch(&self) -> Result<u64, CustomerError> {
        let current = self.vault.current_master_key_id()?;
        let rows = sqlx::query(
            "SELECT customer_id, master_key_id, wrapped_key FROM customer_keys \
             WHERE master_key_id <> $1 ORDER BY customer_id LIMIT $2",
        )
        .bind(&current)
        .bind(i64::from(REWRAP_BATCH))
        .fetch_all(self.store.reader())
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let mut done = 0;
        for row in &rows {
            let owner: String = row.try_get("customer_id")?;
            let wrapped = WrappedKey {
                master_key_id: row.try_get("master_key_id")?,
                bytes: row.try_get("wrapped_key")?,
            };
            let Some(rewrapped) = self.vault.rewrap(&owner, &wrapped)? else {
                continue;
            };
            let updated = sqlx::query(
                "UPDATE customer_keys SET master_key_id = $2, wrapped_key = $3, rewrapped_at_us = $4 \
                 WHERE customer_id = $1 AND master_key_id = $5",
            )
            .bind(&owner)
            .bind(&rewrapped.master_key_id)
            .bind(&rewrapped.bytes)
            .bind(now)
            .bind(&wrapped.master_key_id)
            .execute(&mut *tx)
            .await?;
            done += updated.rows_affected();
        }
        tx.commit().await?;
        Ok(done)
    }

    /// How many data keys each master key wraps.
    pub async fn key_usage(&self) -> Result<Vec<KeyUsage>, CustomerError> {
        let rows = sqlx::query(
            "SELECT master_key_id, COUNT(*) AS n FROM customer_keys GROUP BY master_key_id ORDER BY master_key_id",
        )
        .fetch_all(self.store.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyUsage {
                    master_key_id: r.try_get("master_key_id")?,
                    data_keys: r.try_get("n")?,
                })
            })
            .collect()
    }

    fn rrn_index(&self, rrn: &Rrn) -> Vec<u8> {
        self.vault.blind_index("rrn", &rrn.expose())
    }

    fn phone_index(&self, phone: &Phone) -> Vec<u8> {
        self.vault.blind_index("phone", phone.expose())
    }

    async fn load_state(&self, id: &str) -> Result<(), CustomerError> {
        if is_erased(self.store.reader(), id).await? {
            return Err(CustomerError::Erased);
        }
        Ok(())
    }

    async fn load(&self, id: &str) -> Result<Record, CustomerError> {
        let row = sqlx::query(concat!(select_customer!(), " WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(self.store.reader())
            .await?
            .ok_or(CustomerError::NotFound)?;
        let state: String = row.try_get("state")?;
        if state == "erased" {
            return Err(CustomerError::Erased);
        }
        self.open_record(&row)
    }

    fn open_record(&self, row: &AnyRow) -> Result<Record, CustomerError> {
        let id: String = row.try_get("id")?;
        let (Some(master_key_id), Some(bytes)) = (
            row.try_get::<Option<String>, _>("master_key_id")?,
            row.try_get::<Option<Vec<u8>>, _>("wrapped_key")?,
        ) else {
            // An active customer always has a data key; a missing one is damage, not absence.
            return Err(CustomerError::Vault(VaultError::Format));
        };
        let wrapped = WrappedKey {
            master_key_id,
            bytes,
        };
        let key = self.vault.data_key(&id, &wrapped)?;
        let opened = |field: Field| -> Result<Option<String>, CustomerError> {
            let blob: Option<Vec<u8>> = row.try_get(sealed_column(field))?;
            blob.map(|b| {
                let plain = key.open(&id, field.name(), &b)?;
                String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Format.into())
            })
            .transpose()
        };
        let corrupt = || CustomerError::Vault(VaultError::Format);
        let profile = Profile {
            name: opened(Field::Name)?.unwrap_or_default(),
            rrn: opened(Field::Rrn)?
                .map(|r| Rrn::parse(&r, Date::MAX).map_err(|_| corrupt()))
                .transpose()?,
            phone: opened(Field::Phone)?
                .map(|p| Phone::parse(&p).map_err(|_| corrupt()))
                .transpose()?,
            address: opened(Field::Address)?,
            income: opened(Field::Income)?
                .map(|i| i.parse().map_err(|_| corrupt()))
                .transpose()?,
            employer: opened(Field::Employer)?,
            credit: opened(Field::Credit)?
                .map(|c| serde_json::from_str(&c).map_err(|_| corrupt()))
                .transpose()?,
        };
        let kind: String = row.try_get("kind")?;
        let kyc: String = row.try_get("kyc_status")?;
        let brn: Option<String> = row.try_get("business_number")?;
        Ok(Record {
            id,
            kind: Kind::from_name(&kind).ok_or_else(corrupt)?,
            kyc_status: KycStatus::from_name(&kyc).ok_or_else(corrupt)?,
            profile,
            brn: brn
                .map(|b| Brn::parse(&b).map_err(|_| corrupt()))
                .transpose()?,
            key,
            version: row.try_get("version")?,
            created_at_us: row.try_get("created_at_us")?,
            updated_at_us: row.try_get("updated_at_us")?,
        })
    }
}

/// How to search.
#[derive(Clone, Debug)]
pub enum Search {
    /// By registration number.
    Rrn(String),
    /// By phone number.
    Phone(String),
    /// By business registration number.
    BusinessNumber(String),
}

/// The columns of a customer and its wrapped data key; a macro so queries are literals.
macro_rules! select_customer {
    () => {
        "SELECT c.id, c.kind, c.state, c.kyc_status, c.name_sealed, c.rrn_sealed, \
         c.phone_sealed, c.address_sealed, c.income_sealed, c.employer_sealed, c.credit_sealed, \
         c.business_number, c.version, c.created_at_us, c.updated_at_us, k.master_key_id, \
         k.wrapped_key FROM customers c LEFT JOIN customer_keys k ON k.customer_id = c.id"
    };
}
use select_customer;

fn sealed_column(field: Field) -> &'static str {
    match field {
        Field::Name => "name_sealed",
        Field::Rrn => "rrn_sealed",
        Field::Phone => "phone_sealed",
        Field::Address => "address_sealed",
        Field::Income => "income_sealed",
        Field::Employer => "employer_sealed",
        Field::Credit => "credit_sealed",
    }
}

/// A customer opened for one request: its profile in the clear and its data key.
struct Record {
    id: String,
    kind: Kind,
    kyc_status: KycStatus,
    profile: Profile,
    brn: Option<Brn>,
    key: DataKey,
    version: i64,
    created_at_us: i64,
    updated_at_us: i64,
}

impl Record {
    fn view(&self, unmasked: &[Field]) -> CustomerView {
        view(
            &self.id,
            self.kind,
            self.kyc_status,
            &self.profile,
            self.brn.as_ref(),
            unmasked,
            self.version,
            self.created_at_us,
            self.updated_at_us,
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn view(
    id: &str,
    kind: Kind,
    kyc_status: KycStatus,
    profile: &Profile,
    brn: Option<&Brn>,
    unmasked: &[Field],
    version: i64,
    created_at_us: i64,
    updated_at_us: i64,
) -> CustomerView {
    let mut fields = Map::new();
    for (field, name) in Field::ALL {
        let value = if unmasked.contains(field) {
            profile.plain(*field)
        } else {
            profile.masked(*field)
        };
        fields.insert((*name).to_owned(), value.unwrap_or(Value::Null));
    }
    let mut unmasked: Vec<&'static str> = unmasked.iter().map(|f| f.name()).collect();
    unmasked.sort_unstable();
    unmasked.dedup();
    CustomerView {
        id: id.to_owned(),
        kind: kind.name(),
        kyc_status: kyc_status.name(),
        fields,
        business_registration_number: brn.map(|b| b.as_str().to_owned()),
        unmasked,
        version,
        created_at_us,
        updated_at_us,
    }
}

/// Every regulated field sealed under the customer's data key (`None` where absent).
struct Sealed {
    name: Vec<u8>,
    rrn: Option<Vec<u8>>,
    phone: Option<Vec<u8>>,
    address: Option<Vec<u8>>,
    income: Option<Vec<u8>>,
    employer: Option<Vec<u8>>,
    credit: Option<Vec<u8>>,
}

impl Sealed {
    fn seal(key: &DataKey, owner: &str, p: &Profile) -> Sealed {
        let seal = |field: Field, text: &str| key.seal(owner, field.name(), text.as_bytes());
        Sealed {
            name: seal(Field::Name, &p.name),
            rrn: p
                .rrn
                .as_ref()
                .map(|r| seal(Field::Rrn, &zeroize::Zeroizing::new(r.expose()))),
            phone: p.phone.as_ref().map(|v| seal(Field::Phone, v.expose())),
            address: p.address.as_ref().map(|v| seal(Field::Address, v)),
            income: p.income.map(|v| seal(Field::Income, &v.to_string())),
            employer: p.employer.as_ref().map(|v| seal(Field::Employer, v)),
            credit: p
                .credit
                .as_ref()
                .map(|v| seal(Field::Credit, &serde_json::to_string(v).unwrap_or_default())),
        }
    }
}

async fn insert_kyc(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    status: KycStatus,
    reason: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<(), CustomerError> {
    sqlx::query(
        "INSERT INTO kyc_history (customer_id, status, reason, actor, at_us) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(status.name())
    .bind(reason)
    .bind(actor)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether customer `id` was erased; `NotFound` if there is no such customer.
async fn is_erased<'e, E: sqlx::Executor<'e, Database = Any>>(
    executor: E,
    id: &str,
) -> Result<bool, CustomerError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM customers WHERE id = $1")
        .bind(id)
        .fetch_optional(executor)
        .await?;
    match state.as_deref() {
        None => Err(CustomerError::NotFound),
        Some(state) => Ok(state == "erased"),
    }
}

/// Records an event about customer `id` in the outbox. The payload names fields and ids,
/// never a regulated value.
async fn record_event(
    tx: &mut Transaction<'static, Any>,
    event_type: &str,
    id: &str,
    data: Value,
    trace: Option<TraceParent>,
    now: i64,
) -> Result<(), CustomerError> {
    outbox::record(
        tx,
        SERVICE,
        NewEvent {
            event_type: event_type.to_owned(),
            aggregate: format!("customer/{id}"),
            data,
            traceparent: trace,
        },
        now,
    )
    .await?;
    Ok(())
}

fn trace_id(trace: &TraceParent) -> String {
    kernel::hex(&trace.trace_id)
}

/// Microseconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(at_us: i64) -> String {
    kernel::event::format_time_us(at_us).unwrap_or_default()
}
