//! The contracts service's shell: a contract's document rendered from what the customers
//! service and the catalogue say, written to object storage, its SHA-256 and the contract
//! recorded in SQL with an outbox event; signatures recorded against that hash; every read of
//! the document checked against it.

use crate::document::{self, Contract};
use bytes::Bytes;
use kernel::event::TraceParent;
use peers::{CustomerLookup, PeerError, Peers, ProductFacts};
use products::model::{Kind, rate_for};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::sync::Arc;
use store::outbox::{self, NewEvent};
use store::sql::now_us;
use store::{Objects, Store, StoreError};
use time::Date;

/// The service's name.
pub const SERVICE: &str = "contracts";
/// A page of contracts holds at most this many.
pub const PAGE_MAX: u32 = 200;

/// The contracts schema.
pub const MIGRATIONS: store::sql::MigrationSet = store::sql::MigrationSet {
    name: "contracts",
    migrations: &[store::sql::Migration {
        version: 1,
        description: "contracts and signatures",
        sql: include_str!("../migrations/0001_contracts.sql"),
    }],
};

/// What a contracts operation can fail with; mapped to problem+json once, in the API.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// The input breaks a rule: `(code, detail)`.
    #[error("{1}")]
    Invalid(&'static str, String),
    /// No contract has this id.
    #[error("no contract has this id")]
    NotFound,
    /// No such customer.
    #[error("no customer has this id")]
    CustomerNotFound,
    /// The customer was erased.
    #[error("the customer was erased")]
    CustomerErased,
    /// No such product version (or none in force today).
    #[error("no such product version is sold")]
    ProductNotAvailable,
    /// The hash the signer saw is not the document's.
    #[error("the document's SHA-256 is {expected}; the signature names another document")]
    HashMismatch {
        /// The stored document's hash.
        expected: String,
    },
    /// A cancelled contract cannot be signed; a signed one cannot be cancelled.
    #[error("the contract is {0}")]
    WrongStatus(String),
    /// The stored document no longer matches its hash.
    #[error("the stored document does not match its SHA-256; it was altered or damaged")]
    DocumentTampered,
    /// The stored document is gone.
    #[error("the stored document is missing")]
    DocumentMissing,
    /// A service contracts depends on is unavailable.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ContractError {
    fn from(e: sqlx::Error) -> ContractError {
        ContractError::Store(StoreError::from(e))
    }
}

/// What is agreed beyond the product's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Particulars {
    /// Whole won, a decimal string (a deposit's amount, a loan's principal).
    pub amount: Option<String>,
    /// The term in months.
    pub term_months: Option<u32>,
    /// A loan's credit grade (1 best … 10).
    pub grade: Option<u8>,
}

/// A contract to issue.
#[derive(Clone, Debug)]
pub struct NewContract {
    /// The customer.
    pub customer_id: String,
    /// The product code.
    pub product_code: String,
    /// The version; none: the one in force today.
    pub product_version: Option<i64>,
    /// What it is about, e.g. a deposit account's or a loan's id.
    pub subject: Option<String>,
    /// The particulars.
    pub particulars: Particulars,
}

/// A signature to record.
#[derive(Clone, Debug)]
pub struct NewSignature {
    /// `customer` or `bank`.
    pub role: String,
    /// Who: the customer's id, or the bank officer's.
    pub signer: String,
    /// How: `app`, `web`, `branch`.
    pub method: String,
    /// The SHA-256 (hex) of the document the signer was shown.
    pub document_sha256: String,
    /// Where from: the client's address.
    pub client_address: String,
    /// The client's user agent.
    pub user_agent: String,
}

/// A recorded signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Signature {
    /// `customer` or `bank`.
    pub role: String,
    /// Who.
    pub signer: String,
    /// How.
    pub method: String,
    /// When (RFC 3339).
    pub signed_at: String,
    /// From where.
    pub client_address: String,
    /// With what.
    pub user_agent: String,
    /// The hash signed.
    pub document_sha256: String,
}

/// A contract as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The id.
    pub id: String,
    /// The customer.
    pub customer_id: String,
    /// The product code.
    pub product_code: String,
    /// The exact version it was issued under.
    pub product_version: i64,
    /// What it is about.
    pub subject: Option<String>,
    /// The particulars, with the rate they give.
    pub particulars: serde_json::Value,
    /// `issued`, `signed` or `cancelled`.
    pub status: String,
    /// The document's SHA-256 (hex).
    pub document_sha256: String,
    /// Its size.
    pub document_bytes: i64,
    /// The business date it was issued.
    pub issued_on: String,
    /// When (µs).
    pub issued_at_us: i64,
    /// When the customer signed (µs).
    pub signed_at_us: Option<i64>,
    /// The signatures, in order.
    pub signatures: Vec<Signature>,
}

/// Which contracts to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// One customer's.
    pub customer_id: Option<String>,
    /// One product's.
    pub product_code: Option<String>,
    /// In one status.
    pub status: Option<String>,
    /// Issued on or after.
    pub from: Option<Date>,
    /// Issued on or before.
    pub to: Option<Date>,
    /// After this id (the previous page's last).
    pub after: Option<String>,
    /// At most this many (1..=200).
    pub limit: u32,
}

/// A source of today's business date (Seoul).
pub type Today = Arc<dyn Fn() -> Date + Send + Sync>;

/// The contracts service.
#[derive(Clone)]
pub struct Contracts {
    store: Store,
    objects: Objects,
    peers: Peers,
    today: Today,
}

impl Contracts {
    /// The service over its database and object storage (migrations applied here).
    pub async fn open(
        store: Store,
        objects: Objects,
        peers: Peers,
    ) -> Result<Contracts, ContractError> {
        store.migrate(&MIGRATIONS).await?;
        Ok(Contracts {
            store,
            objects,
            peers,
            today: Arc::new(store::sql::today_kst),
        })
    }

    /// The store (for the outbox relay).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The object storage holding the documents.
    pub fn objects(&self) -> &Objects {
        &self.objects
    }

    /// Issues a contract: renders its document from the customer, the product version and the
    /// particulars, stores it, and records the contract with the document's SHA-256.
    pub async fn issue(
        &self,
        new: NewContract,
        trace: Option<TraceParent>,
    ) -> Result<Record, ContractError> {
        if let Some(subject) = &new.subject
            && (subject.is_empty()
                || subject.chars().count() > 100
                || subject.chars().any(char::is_control))
        {
            return Err(ContractError::Invalid(
                "invalid_subject",
                "`subject` is 1 to 100 characters without control characters".into(),
            ));
        }
        let customer = match self.peers.customer(&new.customer_id).await? {
            CustomerLookup::Found(c) => c,
            CustomerLookup::NotFound => return Err(ContractError::CustomerNotFound),
            CustomerLookup::Erased => return Err(ContractError::CustomerErased),
        };
        let today = (self.today)();
        let product = match new.product_version {
            Some(v) => self.peers.product_version(&new.product_code, v).await?,
            None => {
                self.peers
                    .product_in_force(&new.product_code, today)
                    .await?
            }
        }
        .filter(|p| p.status != "draft")
        .ok_or(ContractError::ProductNotAvailable)?;
        let (amount, rate) = check_particulars(&product, &new.particulars)?;

        let id = uuid::Uuid::now_v7().to_string();
        let now = now_us();
        let issued_at = kernel::event::format_time_us(now).unwrap_or_default();
        let terms_json = serde_json::to_string(&product.terms).expect("terms serialize");
        let terms_sha256 = kernel::hex(&Sha256::digest(terms_json.as_bytes()));
        let particulars = json!({
            "amount": amount.map(|a| a.to_string()),
            "term_months": new.particulars.term_months,
            "grade": new.particulars.grade,
            "annual_rate": rate.normalize().to_string(),
            "terms_sha256": terms_sha256,
        });
        let contract = contract_text(
            &id,
            &issued_at,
            &customer,
            &product,
            new.subject.as_deref(),
            amount,
            new.particulars.term_months,
            rate,
            &terms_sha256,
        );
        let pdf = document::render(&contract);
        let sha256 = kernel::hex(&Sha256::digest(&pdf));
        let key = format!(
            "contracts/{:04}/{:02}/{id}.pdf",
            today.year(),
            today.month() as u8
        );
        let size = pdf.len() as i64;
        // The document first: a contract row never names an object that is not there.
        self.objects.put(&key, Bytes::from(pdf)).await?;
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO contracts (id, customer_id, product_code, product_version, subject, particulars, \
             status, document_key, document_sha256, document_bytes, issued_on, issued_at_us, updated_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6, 'issued', $7, $8, $9, $10, $11, $11)",
        )
        .bind(&id)
        .bind(&new.customer_id)
        .bind(&product.code)
        .bind(product.version)
        .bind(&new.subject)
        .bind(particulars.to_string())
        .bind(&key)
        .bind(&sha256)
        .bind(size)
        .bind(today.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        record(
            &mut tx,
            "contracts.contract.issued",
            &id,
            json!({
                "contract_id": id,
                "customer_id": new.customer_id,
                "product_code": product.code,
                "product_version": product.version,
                "subject": new.subject,
                "document_sha256": sha256,
            }),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        self.get(&id).await
    }

    /// A contract with its signatures.
    pub async fn get(&self, id: &str) -> Result<Record, ContractError> {
        let row = sqlx::query(concat!(select_contract!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.store.reader())
            .await?
            .ok_or(ContractError::NotFound)?;
        let mut record = read_contract(&row)?;
        let rows = sqlx::query(
            "SELECT role, signer, method, signed_at_us, client_address, user_agent, document_sha256 \
             FROM signatures WHERE contract_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(self.store.reader())
        .await?;
        record.signatures = rows
            .iter()
            .map(|r| {
                Ok(Signature {
                    role: r.try_get("role")?,
                    signer: r.try_get("signer")?,
                    method: r.try_get("method")?,
                    signed_at: kernel::event::format_time_us(r.try_get("signed_at_us")?)
                        .unwrap_or_default(),
                    client_address: r.try_get("client_address")?,
                    user_agent: r.try_get("user_agent")?,
                    document_sha256: r.try_get("document_sha256")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(record)
    }

    /// Contracts matching `filter`, by id (issue order).
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Record>, ContractError> {
        let rows = sqlx::query(concat!(
            select_contract!(),
            " WHERE ($1 = '' OR customer_id = $1) AND ($2 = '' OR product_code = $2) \
             AND ($3 = '' OR status = $3) AND issued_on >= $4 AND issued_on <= $5 AND id > $6 \
             ORDER BY id LIMIT $7"
        ))
        .bind(filter.customer_id.as_deref().unwrap_or(""))
        .bind(filter.product_code.as_deref().unwrap_or(""))
        .bind(filter.status.as_deref().unwrap_or(""))
        .bind(filter.from.map(|d| d.to_string()).unwrap_or_default())
        .bind(
            filter
                .to
                .map(|d| d.to_string())
                .unwrap_or_else(|| "9999-12-31".into()),
        )
        .bind(filter.after.as_deref().unwrap_or(""))
        .bind(i64::from(filter.limit.clamp(1, PAGE_MAX)))
        .fetch_all(self.store.reader())
        .await?;
        rows.iter().map(read_contract).collect()
    }

    /// The document, after checking it against its SHA-256: an altered or damaged file is
    /// refused, never served.
    pub async fn document(&self, id: &str) -> Result<(Record, Bytes), ContractError> {
        let record = self.get(id).await?;
        let bytes = self.verified_document(id, &record).await?;
        Ok((record, bytes))
    }

    async fn verified_document(&self, id: &str, record: &Record) -> Result<Bytes, ContractError> {
        let key: String = sqlx::query_scalar("SELECT document_key FROM contracts WHERE id = $1")
            .bind(id)
            .fetch_one(self.store.reader())
            .await?;
        let bytes = self
            .objects
            .get(&key)
            .await?
            .ok_or(ContractError::DocumentMissing)?;
        if kernel::hex(&Sha256::digest(&bytes)) != record.document_sha256 {
            tracing::error!(
                contract = id,
                "contracts: a stored document does not match its SHA-256"
            );
            return Err(ContractError::DocumentTampered);
        }
        Ok(bytes)
    }

    /// Records a signature. The signer names the hash of the document they were shown; it must
    /// be the stored document's, and the stored document must still match it. The customer's
    /// signature makes the contract `signed`. Repeating a signature records nothing new.
    pub async fn sign(
        &self,
        id: &str,
        signature: NewSignature,
        trace: Option<TraceParent>,
    ) -> Result<Record, ContractError> {
        check_signature(&signature)?;
        let current = self.get(id).await?;
        if current.status == "cancelled" {
            return Err(ContractError::WrongStatus(current.status));
        }
        if signature.document_sha256 != current.document_sha256 {
            return Err(ContractError::HashMismatch {
                expected: current.document_sha256,
            });
        }
        if current
            .signatures
            .iter()
            .any(|s| s.role == signature.role && s.signer == signature.signer)
        {
            return Ok(current);
        }
        self.verified_document(id, &current).await?;
        let now = now_us();
        let mut tx = self.store.begin().await?;
        // Touching the row first makes two signatures of one contract take turns.
        let status = lock_contract(&mut tx, id, now).await?;
        if status.as_deref() == Some("cancelled") {
            return Err(ContractError::WrongStatus("cancelled".into()));
        }
        let seq: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM signatures WHERE contract_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signatures (contract_id, seq, role, signer, method, signed_at_us, client_address, \
             user_agent, document_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(seq)
        .bind(&signature.role)
        .bind(&signature.signer)
        .bind(&signature.method)
        .bind(now)
        .bind(&signature.client_address)
        .bind(&signature.user_agent)
        .bind(&signature.document_sha256)
        .execute(&mut *tx)
        .await?;
        let signed = signature.role == "customer" && status.as_deref() == Some("issued");
        if signed {
            sqlx::query("UPDATE contracts SET status = 'signed', signed_at_us = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        record(
            &mut tx,
            if signed {
                "contracts.contract.signed"
            } else {
                "contracts.contract.countersigned"
            },
            id,
            json!({
                "contract_id": id,
                "role": signature.role,
                "signer": signature.signer,
                "document_sha256": signature.document_sha256,
            }),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        self.get(id).await
    }

    /// Cancels a contract nobody has signed as customer yet.
    pub async fn cancel(
        &self,
        id: &str,
        trace: Option<TraceParent>,
    ) -> Result<Record, ContractError> {
        let now = now_us();
        let mut tx = self.store.begin().await?;
        let status = lock_contract(&mut tx, id, now).await?;
        match status.as_deref() {
            None => return Err(ContractError::NotFound),
            Some("issued") => {}
            Some("cancelled") => {
                tx.rollback().await?;
                return self.get(id).await;
            }
            Some(other) => return Err(ContractError::WrongStatus(other.to_owned())),
        }
        sqlx::query(
            "UPDATE contracts SET status = 'cancelled', cancelled_at_us = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        record(
            &mut tx,
            "contracts.contract.cancelled",
            id,
            json!({"contract_id": id}),
            trace,
            now,
        )
        .await?;
        tx.commit().await?;
        self.get(id).await
    }
}

/// Touches the contract's row, so changes to one contract take turns (a row lock on PostgreSQL,
/// the single writer on SQLite); returns its status, `None` if there is no such contract.
async fn lock_contract(
    tx: &mut Transaction<'static, Any>,
    id: &str,
    now: i64,
) -> Result<Option<String>, ContractError> {
    Ok(
        sqlx::query_scalar(
            "UPDATE contracts SET updated_at_us = $2 WHERE id = $1 RETURNING status",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?,
    )
}

/// The particulars against the product's terms: the amount within bounds, the term within
/// range (and required when the product has terms), a grade for a loan. Returns the amount
/// and the rate they give.
fn check_particulars(
    product: &ProductFacts,
    p: &Particulars,
) -> Result<(Option<u128>, Decimal), ContractError> {
    let invalid = |code, detail: String| ContractError::Invalid(code, detail);
    let amount = match &p.amount {
        None => None,
        Some(text) => {
            let bad = || {
                invalid(
                    "invalid_amount",
                    "`amount` is whole won as a decimal string".into(),
                )
            };
            let amount = kernel::decimal::parse_u128(text)
                .filter(|_| text.len() <= 19)
                .ok_or_else(bad)?;
            let min: u128 = product.terms.amount.min.parse().unwrap_or(0);
            let max: u128 = product.terms.amount.max.parse().unwrap_or(u128::MAX);
            if amount < min || amount > max {
                return Err(invalid(
                    "amount_out_of_range",
                    format!("the product takes amounts from {min} to {max} won"),
                ));
            }
            Some(amount)
        }
    };
    match (&product.terms.term_months, p.term_months) {
        (None, Some(_)) => {
            return Err(invalid(
                "invalid_term",
                "the product has no term; leave `term_months` out".into(),
            ));
        }
        (Some(range), t) if !t.is_some_and(|t| (range.min..=range.max).contains(&t)) => {
            return Err(invalid(
                "invalid_term",
                format!(
                    "`term_months` is required, from {} to {}",
                    range.min, range.max
                ),
            ));
        }
        _ => {}
    }
    if product.kind.is_loan() {
        let grades = &product.terms.eligibility.grades;
        if !p
            .grade
            .is_some_and(|g| grades.is_empty() || grades.contains(&g))
        {
            return Err(invalid(
                "invalid_grade",
                "a loan contract needs a `grade` the product accepts".into(),
            ));
        }
    }
    Ok((amount, rate_for(&product.terms, p.term_months, p.grade)))
}

#[allow(clippy::too_many_arguments)]
fn contract_text(
    id: &str,
    issued_at: &str,
    customer: &peers::CustomerSummary,
    product: &ProductFacts,
    subject: Option<&str>,
    amount: Option<u128>,
    term_months: Option<u32>,
    rate: Decimal,
    terms_sha256: &str,
) -> Contract {
    let loan = product.kind.is_loan();
    let title = if loan {
        "여신거래 약정서 (Loan agreement)"
    } else {
        "예금거래 약정서 (Deposit agreement)"
    };
    let who = match &customer.rrn_masked {
        Some(rrn) => format!("{} ({rrn})", customer.name),
        None => customer.name.clone(),
    };
    let mut facts = vec![
        ("고객 Customer".to_owned(), who),
        ("고객번호 Customer id".to_owned(), customer.id.clone()),
        (
            "상품 Product".to_owned(),
            format!(
                "{} ({}) version {}, in force from {}",
                product.name, product.code, product.version, product.effective_from
            ),
        ),
        ("종류 Kind".to_owned(), kind_label(product.kind).to_owned()),
        (
            "연 이율 Annual rate".to_owned(),
            format!("{}%", (rate * Decimal::from(100)).normalize()),
        ),
    ];
    if let Some(amount) = amount {
        facts.push(("금액 Amount".to_owned(), format!("{amount} KRW")));
    }
    if let Some(months) = term_months {
        facts.push(("기간 Term".to_owned(), format!("{months} months")));
    }
    if let Some(subject) = subject {
        facts.push(("계좌 Account".to_owned(), subject.to_owned()));
    }
    for fee in &product.terms.fees {
        let how = match (&fee.amount, &fee.rate) {
            (Some(a), _) => format!("{a} KRW"),
            (None, Some(r)) => format!("{}%", (*r * Decimal::from(100)).normalize()),
            (None, None) => "-".to_owned(),
        };
        facts.push((format!("수수료 Fee {}", fee.code), how));
    }
    facts.push(("약관 SHA-256 Terms".to_owned(), terms_sha256.to_owned()));
    let mut clauses = vec![
        "이 약정은 위 상품의 해당 버전 약관에 따르며, 약관의 SHA-256 값으로 그 내용을 특정합니다. This agreement follows the terms of the product version above, identified by their SHA-256.".to_owned(),
        "이자는 원 단위 미만을 절사하여 계산합니다. Interest is computed in whole won, truncated.".to_owned(),
    ];
    if loan {
        clauses.push("연체 시 약정 이율에 연 3%p를 더한 연체이자를 법정 최고이율 한도 내에서 부담합니다. Late payments bear the contract rate plus 3 percentage points, within the legal maximum.".to_owned());
    } else {
        clauses.push("예금은 예금자보호법에 따라 보호됩니다. Deposits are protected under the Depositor Protection Act.".to_owned());
    }
    clauses.push("이 문서의 SHA-256 값에 대한 전자서명으로 계약이 성립합니다. The contract is concluded by electronic signatures over this document's SHA-256.".to_owned());
    Contract {
        id: id.to_owned(),
        title: title.to_owned(),
        issued_at: issued_at.to_owned(),
        facts,
        clauses,
    }
}

fn kind_label(kind: Kind) -> &'static str {
    match kind {
        Kind::DemandDeposit => "입출금 예금 (demand deposit)",
        Kind::TermDeposit => "정기예금 (term deposit)",
        Kind::InstallmentSavings => "적금 (installment savings)",
        Kind::PersonalCreditLoan => "신용대출 (personal credit loan)",
    }
}

fn check_signature(s: &NewSignature) -> Result<(), ContractError> {
    let invalid = |code, detail: &str| Err(ContractError::Invalid(code, detail.to_owned()));
    if !matches!(s.role.as_str(), "customer" | "bank") {
        return invalid("invalid_role", "`role` is `customer` or `bank`");
    }
    if !matches!(s.method.as_str(), "app" | "web" | "branch") {
        return invalid("invalid_method", "`method` is `app`, `web` or `branch`");
    }
    if s.signer.is_empty()
        || s.signer.chars().count() > 100
        || s.signer.chars().any(char::is_control)
    {
        return invalid(
            "invalid_signer",
            "`signer` is 1 to 100 characters without control characters",
        );
    }
    if s.document_sha256.len() != 64
        || !s
            .document_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return invalid(
            "invalid_document_sha256",
            "`document_sha256` is 64 lowercase hexadecimal digits",
        );
    }
    Ok(())
}

macro_rules! select_contract {
    () => {
        "SELECT id, customer_id, product_code, product_version, subject, particulars, status, \
         document_sha256, document_bytes, issued_on, issued_at_us, signed_at_us FROM contracts"
    };
}
use select_contract;

fn read_contract(row: &AnyRow) -> Result<Record, ContractError> {
    let particulars: String = row.try_get("particulars")?;
    Ok(Record {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        product_code: row.try_get("product_code")?,
        product_version: row.try_get("product_version")?,
        subject: row.try_get("subject")?,
        particulars: serde_json::from_str(&particulars)
            .map_err(|_| StoreError::Corrupt("stored particulars".into()))?,
        status: row.try_get("status")?,
        document_sha256: row.try_get("document_sha256")?,
        document_bytes: row.try_get("document_bytes")?,
        issued_on: row.try_get("issued_on")?,
        issued_at_us: row.try_get("issued_at_us")?,
        signed_at_us: row.try_get("signed_at_us")?,
        signatures: Vec::new(),
    })
}

async fn record(
    tx: &mut Transaction<'static, Any>,
    event_type: &str,
    id: &str,
    data: serde_json::Value,
    trace: Option<TraceParent>,
    now: i64,
) -> Result<(), ContractError> {
    outbox::record(
        tx,
        SERVICE,
        NewEvent {
            event_type: event_type.to_owned(),
            aggregate: format!("contract/{id}"),
            data,
            traceparent: trace,
        },
        now,
    )
    .await?;
    Ok(())
}
