//! The products service's shell: storage and events around the rules of [`crate::model`].
//! Every change commits with its outbox event; a product's row is touched first in each
//! writing transaction, so two changes to one product take turns (a row lock on PostgreSQL,
//! the single writer on SQLite).

use crate::model::{self, Kind, LifecycleError, Status, Terms, TermsError, VersionState};
use kernel::event::TraceParent;
use kernel::http::Caller;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use store::outbox::{self, NewEvent};
use store::sql::{now_us, today_kst};
use store::{Store, StoreError};
use time::Date;

/// The service's name.
pub const SERVICE: &str = "products";
/// The permission every change to the catalogue needs.
pub const PERMISSION_MANAGE: &str = "products:manage";

/// The products service's schema.
pub const MIGRATIONS: store::sql::MigrationSet = store::sql::MigrationSet {
    name: "products",
    migrations: &[store::sql::Migration {
        version: 1,
        description: "products and their versions",
        sql: include_str!("../migrations/0001_products.sql"),
    }],
};

/// What a products operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    /// The terms break a rule.
    #[error(transparent)]
    Terms(#[from] TermsError),
    /// A lifecycle step that is not allowed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// The code or name is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// No such product.
    #[error("no product has this code")]
    NotFound,
    /// No such version.
    #[error("the product has no such version")]
    VersionNotFound,
    /// A product with this code exists.
    #[error("a product with this code exists")]
    Exists,
    /// No version is in force on the date.
    #[error("no version of the product is in force on that date")]
    NotInForce,
    /// The caller lacks the permission.
    #[error("changing the catalogue needs the permission `{PERMISSION_MANAGE}`")]
    Forbidden,
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ProductError {
    fn from(e: sqlx::Error) -> ProductError {
        ProductError::Store(e.into())
    }
}

/// A product version as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// The product's code.
    pub code: String,
    /// What it is.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// 1, 2, 3, …
    pub version: i64,
    /// Draft, published or retired.
    pub status: Status,
    /// The first day it is (or would be) in force.
    pub effective_from: Date,
    /// The terms.
    pub terms: Terms,
    /// When it was published (µs since the epoch).
    pub published_at_us: Option<i64>,
}

/// A product to create, with the terms of its first (draft) version.
#[derive(Clone, Debug)]
pub struct NewProduct {
    /// `[A-Z0-9-]{2,40}`, e.g. `LOAN-CREDIT-01`.
    pub code: String,
    /// What it is.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// The first day the version would be in force.
    pub effective_from: Date,
    /// The terms.
    pub terms: Terms,
}

/// The catalogue over its store.
#[derive(Clone, Debug)]
pub struct Products {
    store: Store,
}

impl Products {
    /// The service over `store` (migrations applied here).
    pub async fn open(store: Store) -> Result<Products, ProductError> {
        store.migrate(&MIGRATIONS).await?;
        Ok(Products { store })
    }

    /// The store (for the outbox relay).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates a product with its first version as a draft.
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewProduct,
        trace: Option<TraceParent>,
    ) -> Result<Version, ProductError> {
        let NewProduct {
            code,
            kind,
            name,
            effective_from,
            terms,
        } = new;
        let code = code.as_str();
        require(caller)?;
        check_code(code)?;
        let name = kernel_text(&name)?;
        model::validate(kind, &terms)?;
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO products (code, kind, name, created_at_us, updated_at_us) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(code)
        .bind(kind_name(kind))
        .bind(&name)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if store::sql::is_unique_violation(&e) => return Err(ProductError::Exists),
            other => other?,
        };
        insert_version(&mut tx, code, 1, effective_from, &terms, now).await?;
        record(
            &mut tx,
            "products.product.created",
            code,
            json!({"code": code, "kind": kind_name(kind), "version": 1}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        self.version(code, 1).await
    }

    /// Adds a new draft version (a product has at most one draft).
    pub async fn add_version(
        &self,
        caller: &Caller,
        code: &str,
        effective_from: Date,
        terms: Terms,
        trace: Option<TraceParent>,
    ) -> Result<Version, ProductError> {
        let Change {
            mut tx,
            kind,
            versions,
            now,
        } = self.begin_change(caller, code).await?;
        model::validate(kind, &terms)?;
        if let Some(draft) = versions.iter().find(|v| v.status == Status::Draft) {
            return Err(LifecycleError::DraftExists(draft.version).into());
        }
        let version = versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        insert_version(&mut tx, code, version, effective_from, &terms, now).await?;
        record(
            &mut tx,
            "products.version.drafted",
            code,
            json!({"code": code, "version": version}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        self.version(code, version).await
    }

    /// Replaces a draft's terms and effective date.
    pub async fn edit_draft(
        &self,
        caller: &Caller,
        code: &str,
        version: i64,
        effective_from: Date,
        terms: Terms,
    ) -> Result<Version, ProductError> {
        let Change {
            mut tx,
            kind,
            versions,
            ..
        } = self.begin_change(caller, code).await?;
        model::validate(kind, &terms)?;
        let current = find(&versions, version)?;
        if current.status != Status::Draft {
            return Err(LifecycleError::NotDraft(version, current.status.name()).into());
        }
        sqlx::query(
            "UPDATE product_versions SET terms = $3, effective_from = $4 WHERE code = $1 AND version = $2",
        )
        .bind(code)
        .bind(version)
        .bind(terms_json(&terms))
        .bind(effective_from.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.version(code, version).await
    }

    /// Publishes a draft: from its effective date it is the version in force, immutable.
    pub async fn publish(
        &self,
        caller: &Caller,
        code: &str,
        version: i64,
        trace: Option<TraceParent>,
    ) -> Result<Version, ProductError> {
        self.move_to(caller, code, version, Status::Published, trace)
            .await
    }

    /// Retires a published version: no longer sold; contracts under it keep pointing at it.
    pub async fn retire(
        &self,
        caller: &Caller,
        code: &str,
        version: i64,
        trace: Option<TraceParent>,
    ) -> Result<Version, ProductError> {
        self.move_to(caller, code, version, Status::Retired, trace)
            .await
    }

    /// One lifecycle step — to `published` or `retired` — checked by the rules, with its event.
    pub async fn move_to(
        &self,
        caller: &Caller,
        code: &str,
        version: i64,
        to: Status,
        trace: Option<TraceParent>,
    ) -> Result<Version, ProductError> {
        let Change {
            mut tx,
            versions,
            now,
            ..
        } = self.begin_change(caller, code).await?;
        let current = find(&versions, version)?;
        let (update, event) = match to {
            Status::Published => {
                model::check_publish(&versions, version, today_kst())?;
                (
                    "UPDATE product_versions SET status = 'published', published_at_us = $3 \
                     WHERE code = $1 AND version = $2",
                    "products.version.published",
                )
            }
            Status::Retired if current.status == Status::Published => (
                "UPDATE product_versions SET status = 'retired', retired_at_us = $3 \
                 WHERE code = $1 AND version = $2",
                "products.version.retired",
            ),
            Status::Retired | Status::Draft => {
                return Err(LifecycleError::NotPublished(version, current.status.name()).into());
            }
        };
        sqlx::query(update)
            .bind(code)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let data = json!({"code": code, "version": version, "effective_from": current.effective_from.to_string()});
        record(&mut tx, event, code, data, trace, now).await?;
        tx.commit().await?;
        self.version(code, version).await
    }

    /// Starts a change to product `code`: checks the permission, takes the product's row (so
    /// changes to one product take turns) and reads its versions.
    async fn begin_change(&self, caller: &Caller, code: &str) -> Result<Change, ProductError> {
        require(caller)?;
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let kind = lock_product(&mut tx, code, now).await?;
        let versions = versions_in(&mut tx, code).await?;
        Ok(Change {
            tx,
            kind,
            versions,
            now,
        })
    }

    /// One version, exactly as it was published (or drafted).
    pub async fn version(&self, code: &str, version: i64) -> Result<Version, ProductError> {
        let row = sqlx::query(concat!(
            select_version!(),
            " WHERE v.code = $1 AND v.version = $2"
        ))
        .bind(code)
        .bind(version)
        .fetch_optional(self.store.reader())
        .await?;
        match row {
            Some(row) => read_version(&row),
            None => {
                self.versions(code).await?;
                Err(ProductError::VersionNotFound)
            }
        }
    }

    /// Every version of a product, oldest first.
    pub async fn versions(&self, code: &str) -> Result<Vec<Version>, ProductError> {
        let rows = sqlx::query(concat!(
            select_version!(),
            " WHERE v.code = $1 ORDER BY v.version"
        ))
        .bind(code)
        .fetch_all(self.store.reader())
        .await?;
        if rows.is_empty() {
            return Err(ProductError::NotFound);
        }
        rows.iter().map(read_version).collect()
    }

    /// The version in force on `date` (see [`model::in_force`]).
    pub async fn in_force(&self, code: &str, date: Date) -> Result<Version, ProductError> {
        let versions = self.versions(code).await?;
        let states: Vec<VersionState> = versions.iter().map(state).collect();
        let version = model::in_force(&states, date).ok_or(ProductError::NotInForce)?;
        versions
            .into_iter()
            .find(|v| v.version == version)
            .ok_or(ProductError::NotInForce)
    }

    /// Every product with the version in force on `date` (if any), by code.
    pub async fn catalogue(
        &self,
        date: Date,
    ) -> Result<Vec<(String, Kind, String, Option<Version>)>, ProductError> {
        let rows = sqlx::query("SELECT code, kind, name FROM products ORDER BY code")
            .fetch_all(self.store.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let code: String = row.try_get("code")?;
            let kind = parse_kind(&row.try_get::<String, _>("kind")?)?;
            let name: String = row.try_get("name")?;
            let current = match self.in_force(&code, date).await {
                Ok(v) => Some(v),
                Err(ProductError::NotInForce) => None,
                Err(e) => return Err(e),
            };
            out.push((code, kind, name, current));
        }
        Ok(out)
    }
}

/// A change in progress: its transaction (holding the product's row), the product's kind and
/// versions as of now, and the time of the change.
struct Change {
    tx: Transaction<'static, Any>,
    kind: Kind,
    versions: Vec<VersionState>,
    now: i64,
}

macro_rules! select_version {
    () => {
        "SELECT v.code, p.kind, p.name, v.version, v.status, v.effective_from, v.terms, \
         v.published_at_us FROM product_versions v JOIN products p ON p.code = v.code"
    };
}
use select_version;

fn require(caller: &Caller) -> Result<(), ProductError> {
    if caller.may(PERMISSION_MANAGE) {
        Ok(())
    } else {
        Err(ProductError::Forbidden)
    }
}

/// A product code: `[A-Z0-9-]{2,40}`, e.g. `LOAN-CREDIT-01`.
fn check_code(code: &str) -> Result<(), ProductError> {
    let ok = (2..=40).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ProductError::Invalid(
            "a product code is 2 to 40 of A-Z, 0-9 and -".into(),
        ))
    }
}

fn kernel_text(name: &str) -> Result<String, ProductError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ProductError::Invalid(
            "a product name is 1 to 100 characters without control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// The wire name of a kind.
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::DemandDeposit => "demand_deposit",
        Kind::TermDeposit => "term_deposit",
        Kind::InstallmentSavings => "installment_savings",
        Kind::PersonalCreditLoan => "personal_credit_loan",
    }
}

fn parse_kind(name: &str) -> Result<Kind, ProductError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| ProductError::Invalid(format!("stored kind `{name}` is unknown")))
}

/// Terms as stored: canonical JSON (the serializer's field order), never edited once published.
fn terms_json(terms: &Terms) -> String {
    serde_json::to_string(terms).expect("terms serialize")
}

fn state(v: &Version) -> VersionState {
    VersionState {
        version: v.version,
        status: v.status,
        effective_from: v.effective_from,
    }
}

fn read_version(row: &AnyRow) -> Result<Version, ProductError> {
    let corrupt = |what: &str| ProductError::Invalid(format!("stored {what} is not valid"));
    let status: String = row.try_get("status")?;
    let from: String = row.try_get("effective_from")?;
    let terms: String = row.try_get("terms")?;
    Ok(Version {
        code: row.try_get("code")?,
        kind: parse_kind(&row.try_get::<String, _>("kind")?)?,
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        status: Status::from_name(&status).ok_or_else(|| corrupt("status"))?,
        effective_from: parse_date(&from).ok_or_else(|| corrupt("date"))?,
        terms: serde_json::from_str(&terms).map_err(|_| corrupt("terms"))?,
        published_at_us: row.try_get("published_at_us")?,
    })
}

/// `YYYY-MM-DD`.
pub fn parse_date(text: &str) -> Option<Date> {
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

async fn lock_product(
    tx: &mut Transaction<'static, Any>,
    code: &str,
    now: i64,
) -> Result<Kind, ProductError> {
    let kind: Option<String> =
        sqlx::query_scalar("UPDATE products SET updated_at_us = $2 WHERE code = $1 RETURNING kind")
            .bind(code)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
    parse_kind(&kind.ok_or(ProductError::NotFound)?)
}

fn find(versions: &[VersionState], version: i64) -> Result<&VersionState, ProductError> {
    versions
        .iter()
        .find(|v| v.version == version)
        .ok_or(ProductError::VersionNotFound)
}

async fn versions_in(
    tx: &mut Transaction<'static, Any>,
    code: &str,
) -> Result<Vec<VersionState>, ProductError> {
    let rows = sqlx::query("SELECT version, status, effective_from FROM product_versions WHERE code = $1 ORDER BY version")
        .bind(code)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            let from: String = r.try_get("effective_from")?;
            Ok(VersionState {
                version: r.try_get("version")?,
                status: Status::from_name(&status)
                    .ok_or_else(|| ProductError::Invalid("stored status".into()))?,
                effective_from: parse_date(&from)
                    .ok_or_else(|| ProductError::Invalid("stored date".into()))?,
            })
        })
        .collect()
}

async fn insert_version(
    tx: &mut Transaction<'static, Any>,
    code: &str,
    version: i64,
    effective_from: Date,
    terms: &Terms,
    now: i64,
) -> Result<(), ProductError> {
    sqlx::query(
        "INSERT INTO product_versions (code, version, status, effective_from, terms, created_at_us) \
         VALUES ($1, $2, 'draft', $3, $4, $5)",
    )
    .bind(code)
    .bind(version)
    .bind(effective_from.to_string())
    .bind(terms_json(terms))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn record(
    tx: &mut Transaction<'static, Any>,
    event_type: &str,
    code: &str,
    data: serde_json::Value,
    trace: Option<TraceParent>,
    now: i64,
) -> Result<(), ProductError> {
    outbox::record(
        tx,
        SERVICE,
        NewEvent {
            event_type: event_type.to_owned(),
            aggregate: format!("product/{code}"),
            data,
            traceparent: trace,
        },
        now,
    )
    .await?;
    Ok(())
}
