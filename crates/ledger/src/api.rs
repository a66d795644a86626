//! The ledger's HTTP API: JSON (and a binary encoding for batches), problem+json errors, and
//! its OpenAPI document.
//!
//! Ids, amounts, 64-bit user data and timestamps travel as decimal strings; `flags` is an array
//! of flag names. A request that does not parse is refused whole with a 4xx problem and nothing
//! is applied; events that parse but break a rule get their result code in a 200 response.

use crate::codec;
use crate::engine::{Engine, EngineError};
use crate::state::{AccountEvent, PAGE_LIMIT_MAX, PageQuery, TransferEvent, TransferView};
use crate::types::*;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::Problem;
use kernel::decimal::{self, opt_u128_string, u64_string, u128_string};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// Largest request body the ledger routes accept: a full batch with maximal metadata.
pub const BODY_BYTES_MAX: usize = 40 << 20;

/// The media type of the binary batch encoding (see [`crate::codec`]).
pub const BINARY_CONTENT_TYPE: &str = "application/octet-stream";

/// The ledger's routes, under `/v1/ledger`, plus `/v1/openapi.json`.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/v1/ledger/accounts", post(create_accounts))
        .route("/v1/ledger/transfers", post(create_transfers))
        .route("/v1/ledger/accounts/{id}", get(get_account))
        .route("/v1/ledger/transfers/{id}", get(get_transfer))
        .route(
            "/v1/ledger/accounts/{id}/transfers",
            get(get_account_transfers),
        )
        .route(
            "/v1/ledger/accounts/{id}/balances",
            get(get_account_balances),
        )
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(engine)
}

// ---- wire types ----

fn flags_from_names<'de, D: Deserializer<'de>, F>(
    d: D,
    parse: impl Fn(&str) -> Option<F>,
    all: &[(F, &str)],
    bits: impl Fn(F) -> u16,
) -> Result<u16, D::Error> {
    let names: Vec<std::borrow::Cow<'de, str>> = Vec::deserialize(d)?;
    let mut value = 0u16;
    for name in names {
        match parse(&name) {
            Some(f) => value |= bits(f),
            None => {
                let expected: Vec<&str> = all.iter().map(|(_, n)| *n).collect();
                return Err(de::Error::custom(format!(
                    "unknown flag `{name}`, expected one of: {}",
                    expected.join(", ")
                )));
            }
        }
    }
    Ok(value)
}

fn account_flags<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    flags_from_names(d, AccountFlags::from_name, AccountFlags::ALL, |f| f.0)
}

fn transfer_flags<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    flags_from_names(d, TransferFlags::from_name, TransferFlags::ALL, |f| f.0)
}

fn canonical_metadata(
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
) -> Option<Box<str>> {
    // serde_json's map keeps keys sorted, so the text is canonical: equal objects, equal text.
    metadata.map(|m| serde_json::Value::Object(m).to_string().into_boxed_str())
}

/// An account to create.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AccountRequest {
    /// Decimal string; not 0, not 2^128-1.
    #[serde(with = "u128_string")]
    #[schema(value_type = String, example = "1001")]
    pub id: u128,
    /// The ledger (currency) number; not 0.
    pub ledger: u32,
    /// The account's kind; not 0.
    pub code: u16,
    /// Flag names: `linked`, `debits_must_not_exceed_credits`, `credits_must_not_exceed_debits`, `history`, `closed`.
    #[serde(deserialize_with = "account_flags")]
    #[schema(value_type = Vec<String>)]
    pub flags: u16,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub user_data_128: u128,
    /// Decimal string.
    #[serde(with = "u64_string")]
    #[schema(value_type = String)]
    pub user_data_64: u64,
    /// Number.
    pub user_data_32: u32,
    /// A JSON object of at most 4096 bytes.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Must be absent or "0": the ledger assigns it.
    #[serde(with = "u64_string")]
    #[schema(value_type = Option<String>)]
    pub timestamp: u64,
    /// Must be absent or "0".
    #[serde(with = "u128_string")]
    #[schema(value_type = Option<String>)]
    pub debits_pending: u128,
    /// Must be absent or "0".
    #[serde(with = "u128_string")]
    #[schema(value_type = Option<String>)]
    pub debits_posted: u128,
    /// Must be absent or "0".
    #[serde(with = "u128_string")]
    #[schema(value_type = Option<String>)]
    pub credits_pending: u128,
    /// Must be absent or "0".
    #[serde(with = "u128_string")]
    #[schema(value_type = Option<String>)]
    pub credits_posted: u128,
}

impl From<AccountRequest> for AccountEvent {
    fn from(r: AccountRequest) -> Self {
        AccountEvent {
            account: Account {
                id: r.id,
                debits_pending: r.debits_pending,
                debits_posted: r.debits_posted,
                credits_pending: r.credits_pending,
                credits_posted: r.credits_posted,
                user_data_128: r.user_data_128,
                user_data_64: r.user_data_64,
                user_data_32: r.user_data_32,
                ledger: r.ledger,
                code: r.code,
                flags: AccountFlags(r.flags),
                timestamp: r.timestamp,
            },
            metadata: canonical_metadata(r.metadata),
        }
    }
}

/// A transfer to create (or a post/void of a pending one).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TransferRequest {
    /// Decimal string; not 0, not 2^128-1.
    #[serde(with = "u128_string")]
    #[schema(value_type = String, example = "5001")]
    pub id: u128,
    /// Decimal string. May be omitted for a post or void.
    #[serde(with = "u128_string")]
    #[schema(value_type = String, example = "1001")]
    pub debit_account_id: u128,
    /// Decimal string. May be omitted for a post or void.
    #[serde(with = "u128_string")]
    #[schema(value_type = String, example = "1002")]
    pub credit_account_id: u128,
    /// Decimal string of minor units. For a post, omitted means the full pending amount; for a void, omit it.
    #[serde(with = "u128_string")]
    #[schema(value_type = String, example = "2500")]
    pub amount: u128,
    /// Decimal string: the pending transfer a post or void settles.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub pending_id: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub user_data_128: u128,
    /// Decimal string.
    #[serde(with = "u64_string")]
    #[schema(value_type = String)]
    pub user_data_64: u64,
    /// Number.
    pub user_data_32: u32,
    /// Seconds until a pending transfer is voided by the ledger; absent or 0 never expires.
    pub timeout: u32,
    /// The ledger number; may be omitted for a post or void.
    pub ledger: u32,
    /// The transfer's kind; may be omitted for a post or void.
    pub code: u16,
    /// Flag names: `linked`, `pending`, `post_pending_transfer`, `void_pending_transfer`, `balancing_debit`, `balancing_credit`, `closing_debit`, `closing_credit`.
    #[serde(deserialize_with = "transfer_flags")]
    #[schema(value_type = Vec<String>)]
    pub flags: u16,
    /// A JSON object of at most 4096 bytes.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Must be absent or "0": the ledger assigns it.
    #[serde(with = "u64_string")]
    #[schema(value_type = Option<String>)]
    pub timestamp: u64,
}

impl From<TransferRequest> for TransferEvent {
    fn from(r: TransferRequest) -> Self {
        TransferEvent {
            transfer: Transfer {
                id: r.id,
                debit_account_id: r.debit_account_id,
                credit_account_id: r.credit_account_id,
                amount: r.amount,
                pending_id: r.pending_id,
                user_data_128: r.user_data_128,
                user_data_64: r.user_data_64,
                user_data_32: r.user_data_32,
                timeout: r.timeout,
                ledger: r.ledger,
                code: r.code,
                flags: TransferFlags(r.flags),
                timestamp: r.timestamp,
            },
            metadata: canonical_metadata(r.metadata),
        }
    }
}

/// The outcome of one event of a batch.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct EventResult {
    /// Position of the event in the request.
    pub index: usize,
    /// `ok` or a stable snake_case result code (see docs/API.md).
    pub result: String,
}

/// An account with its balances.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountResponse {
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub id: u128,
    /// The ledger number.
    pub ledger: u32,
    /// The account's kind.
    pub code: u16,
    /// Flag names.
    pub flags: Vec<String>,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub user_data_128: u128,
    /// Decimal string.
    #[serde(with = "u64_string")]
    #[schema(value_type = String)]
    pub user_data_64: u64,
    /// Number.
    pub user_data_32: u32,
    /// The metadata object, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<RawValue>>,
    /// Decimal string: nanoseconds since the Unix epoch, assigned by the ledger.
    #[serde(with = "u64_string")]
    #[schema(value_type = String)]
    pub timestamp: u64,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub debits_pending: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub debits_posted: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub credits_pending: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub credits_posted: u128,
}

fn raw(metadata: Option<&str>) -> Option<Box<RawValue>> {
    metadata.and_then(|m| RawValue::from_string(m.to_owned()).ok())
}

impl AccountResponse {
    fn new(a: &Account, metadata: Option<&str>) -> Self {
        AccountResponse {
            id: a.id,
            ledger: a.ledger,
            code: a.code,
            flags: a.flags.names().into_iter().map(String::from).collect(),
            user_data_128: a.user_data_128,
            user_data_64: a.user_data_64,
            user_data_32: a.user_data_32,
            metadata: raw(metadata),
            timestamp: a.timestamp,
            debits_pending: a.debits_pending,
            debits_posted: a.debits_posted,
            credits_pending: a.credits_pending,
            credits_posted: a.credits_posted,
        }
    }
}

/// A committed transfer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferResponse {
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub id: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub debit_account_id: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub credit_account_id: u128,
    /// Decimal string: the amount moved (posted, reserved or released).
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub amount: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub pending_id: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub user_data_128: u128,
    /// Decimal string.
    #[serde(with = "u64_string")]
    #[schema(value_type = String)]
    pub user_data_64: u64,
    /// Number.
    pub user_data_32: u32,
    /// Seconds.
    pub timeout: u32,
    /// The ledger number.
    pub ledger: u32,
    /// The transfer's kind.
    pub code: u16,
    /// Flag names.
    pub flags: Vec<String>,
    /// The metadata object, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<RawValue>>,
    /// Decimal string: nanoseconds since the Unix epoch, assigned by the ledger.
    #[serde(with = "u64_string")]
    #[schema(value_type = String)]
    pub timestamp: u64,
    /// For a pending transfer: `pending`, `posted`, `voided` or `expired`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pending_status: Option<String>,
}

impl From<TransferView> for TransferResponse {
    fn from(v: TransferView) -> Self {
        let t = v.transfer;
        TransferResponse {
            id: t.id,
            debit_account_id: t.debit_account_id,
            credit_account_id: t.credit_account_id,
            amount: t.amount,
            pending_id: t.pending_id,
            user_data_128: t.user_data_128,
            user_data_64: t.user_data_64,
            user_data_32: t.user_data_32,
            timeout: t.timeout,
            ledger: t.ledger,
            code: t.code,
            flags: t.flags.names().into_iter().map(String::from).collect(),
            metadata: raw(v.metadata.as_deref()),
            timestamp: t.timestamp,
            pending_status: v.pending_status.map(|s| s.name().to_owned()),
        }
    }
}

/// A page of an account's transfers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferPage {
    /// The transfers, oldest first unless `reverse=true`.
    pub transfers: Vec<TransferResponse>,
    /// Pass as `after` to get the next page; null when there is none.
    #[serde(with = "opt_u128_string")]
    #[schema(value_type = Option<String>)]
    pub next: Option<u128>,
}

/// An account's balances after one change.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BalanceResponse {
    /// Decimal string: when the change happened.
    #[serde(with = "u64_string")]
    #[schema(value_type = String)]
    pub timestamp: u64,
    /// Decimal string: the transfer that made the change (for an expiry, the expired pending transfer).
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub transfer_id: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub debits_pending: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub debits_posted: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub credits_pending: u128,
    /// Decimal string.
    #[serde(with = "u128_string")]
    #[schema(value_type = String)]
    pub credits_posted: u128,
}

/// A page of an account's balance history.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BalancePage {
    /// The balances, oldest first unless `reverse=true`.
    pub balances: Vec<BalanceResponse>,
    /// Pass as `after` to get the next page; null when there is none.
    #[serde(with = "opt_u128_string")]
    #[schema(value_type = Option<String>)]
    pub next: Option<u128>,
}

// ---- handlers ----

fn engine_problem(e: EngineError) -> Problem {
    Problem::unavailable(e.to_string())
}

/// How a batch travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`.
    Json,
    /// `application/octet-stream`: the [`crate::codec`] batch encoding.
    Binary,
}

fn encoding(content_type: &str) -> Result<Encoding, Problem> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Encoding::Json),
        BINARY_CONTENT_TYPE => Ok(Encoding::Binary),
        _ => Err(Problem::new(415, "unsupported_media_type", "Unsupported media type").with_detail(format!(
            "send Content-Type: application/json (or {BINARY_CONTENT_TYPE} for the binary batch encoding), not `{content_type}`"
        ))),
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Parses a request body into events, JSON through the wire type `W` or the binary encoding.
fn parse_events<W, E>(
    content_type: &str,
    body: &[u8],
    decode: fn(&[u8], usize) -> Result<Vec<E>, codec::DecodeError>,
    metadata: fn(&mut E) -> &mut Option<Box<str>>,
) -> Result<(Encoding, Vec<E>), Problem>
where
    W: for<'de> Deserialize<'de> + Into<E>,
{
    let encoding = encoding(content_type)?;
    let events = match encoding {
        Encoding::Json => parse_json_batch::<W>(body)?
            .into_iter()
            .map(Into::into)
            .collect(),
        Encoding::Binary => {
            let mut events = parse_binary_batch(body, decode)?;
            for (i, e) in events.iter_mut().enumerate() {
                canonical_binary_metadata(metadata(e), i)?;
            }
            events
        }
    };
    Ok((encoding, events))
}

/// Parses a create-accounts request body; refuses it whole with a problem if it does not parse.
pub fn parse_accounts(
    content_type: &str,
    body: &[u8],
) -> Result<(Encoding, Vec<AccountEvent>), Problem> {
    parse_events::<AccountRequest, _>(content_type, body, codec::decode_account_batch, |e| {
        &mut e.metadata
    })
}

/// Parses a create-transfers request body; refuses it whole with a problem if it does not parse.
pub fn parse_transfers(
    content_type: &str,
    body: &[u8],
) -> Result<(Encoding, Vec<TransferEvent>), Problem> {
    parse_events::<TransferRequest, _>(content_type, body, codec::decode_transfer_batch, |e| {
        &mut e.metadata
    })
}

/// Parses a JSON batch: an array of 1..=8190 items.
fn parse_json_batch<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<Vec<T>, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::new(400, "empty_body", "The request body is empty")
            .with_detail("send a JSON array of 1 to 8190 events"));
    }
    let items: Vec<T> = serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            400,
            "malformed_json",
            "The request body is not a valid batch",
        )
        .with_detail(e.to_string())
    })?;
    check_batch_len(items.len())?;
    Ok(items)
}

fn check_batch_len(len: usize) -> Result<(), Problem> {
    if len == 0 {
        return Err(Problem::new(400, "batch_empty", "The batch is empty")
            .with_detail("send between 1 and 8190 events"));
    }
    if len > BATCH_EVENTS_MAX {
        return Err(
            Problem::new(413, "batch_too_large", "The batch is too large").with_detail(format!(
                "a batch holds at most {BATCH_EVENTS_MAX} events, not {len}"
            )),
        );
    }
    Ok(())
}

fn parse_binary_batch<T>(
    body: &[u8],
    decode: fn(&[u8], usize) -> Result<Vec<T>, codec::DecodeError>,
) -> Result<Vec<T>, Problem> {
    if body.is_empty() {
        return Err(Problem::new(400, "empty_body", "The request body is empty")
            .with_detail("send a binary batch of 1 to 8190 events"));
    }
    let events = decode(body, BATCH_EVENTS_MAX).map_err(|e| match e {
        codec::DecodeError::TooManyEvents { count, .. } => {
            Problem::new(413, "batch_too_large", "The batch is too large").with_detail(format!(
                "a batch holds at most {BATCH_EVENTS_MAX} events, not {count}"
            ))
        }
        e => Problem::new(
            400,
            "malformed_binary",
            "The request body is not a valid binary batch",
        )
        .with_detail(e.to_string()),
    })?;
    check_batch_len(events.len())?;
    Ok(events)
}

/// Metadata in the binary encoding must be a canonical JSON object, as the JSON API makes it.
fn canonical_binary_metadata(metadata: &mut Option<Box<str>>, index: usize) -> Result<(), Problem> {
    if let Some(text) = metadata.take() {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| {
                Problem::new(
                    400,
                    "malformed_binary",
                    "The request body is not a valid binary batch",
                )
                .with_detail(format!(
                    "metadata of event {index} is not a JSON object: {e}"
                ))
            })?;
        *metadata = canonical_metadata(Some(map));
    }
    Ok(())
}

fn results_response<R: Copy>(
    encoding: Encoding,
    results: &[R],
    name: fn(R) -> &'static str,
    code: fn(R) -> u16,
) -> Response {
    match encoding {
        Encoding::Json => {
            #[derive(Serialize)]
            struct Item {
                index: usize,
                result: &'static str,
            }
            let items: Vec<Item> = results
                .iter()
                .enumerate()
                .map(|(index, r)| Item {
                    index,
                    result: name(*r),
                })
                .collect();
            Json(items).into_response()
        }
        Encoding::Binary => {
            let mut bytes = Vec::with_capacity(results.len() * 2);
            for r in results {
                bytes.extend_from_slice(&code(*r).to_le_bytes());
            }
            let mut response = bytes.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(BINARY_CONTENT_TYPE),
            );
            response
        }
    }
}

/// Create accounts.
#[utoipa::path(
    post,
    path = "/v1/ledger/accounts",
    tag = "ledger",
    request_body(content = Vec<AccountRequest>, description = "1 to 8190 accounts. Also accepted as application/octet-stream in the binary batch encoding."),
    responses(
        (status = 200, description = "One result per account, in order", body = Vec<EventResult>),
        (status = 400, description = "The body does not parse; nothing was applied", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "More than 8190 accounts", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong Content-Type", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_accounts(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(body_problem)?;
    let (encoding, events) = parse_accounts(content_type(&headers), &body)?;
    let results = engine
        .create_accounts(events)
        .await
        .map_err(engine_problem)?;
    Ok(results_response(
        encoding,
        &results,
        CreateAccountResult::name,
        CreateAccountResult::code,
    ))
}

/// Create transfers.
#[utoipa::path(
    post,
    path = "/v1/ledger/transfers",
    tag = "ledger",
    request_body(content = Vec<TransferRequest>, description = "1 to 8190 transfers. Also accepted as application/octet-stream in the binary batch encoding, answered with one little-endian u16 result code per transfer."),
    responses(
        (status = 200, description = "One result per transfer, in order", body = Vec<EventResult>),
        (status = 400, description = "The body does not parse; nothing was applied", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "More than 8190 transfers", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Wrong Content-Type", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_transfers(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(body_problem)?;
    let (encoding, events) = parse_transfers(content_type(&headers), &body)?;
    let results = engine
        .create_transfers(events)
        .await
        .map_err(engine_problem)?;
    Ok(results_response(
        encoding,
        &results,
        CreateTransferResult::name,
        CreateTransferResult::code,
    ))
}

/// A body that could not be read: too large, or the connection failed mid-way.
fn body_problem(rejection: BytesRejection) -> Problem {
    kernel::http::body_problem(rejection, BODY_BYTES_MAX)
}

/// The `{id}` path segment as a decimal `u128`.
fn path_id(id: Result<Path<String>, PathRejection>) -> Result<u128, Problem> {
    let Path(text) = id.map_err(|e| {
        Problem::new(400, "invalid_id", "The id is not valid").with_detail(e.body_text())
    })?;
    parse_id(&text)
}

fn parse_id(text: &str) -> Result<u128, Problem> {
    decimal::parse_u128(text).ok_or_else(|| {
        Problem::new(400, "invalid_id", "The id is not valid").with_detail(format!(
            "`{text}` is not a decimal string of at most 39 digits that fits 128 bits"
        ))
    })
}

/// Look up an account.
#[utoipa::path(
    get,
    path = "/v1/ledger/accounts/{id}",
    tag = "ledger",
    params(("id" = String, Path, description = "Decimal account id")),
    responses(
        (status = 200, description = "The account", body = AccountResponse),
        (status = 400, description = "The id does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_account(
    State(engine): State<Arc<Engine>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AccountResponse>, Problem> {
    let id = path_id(id)?;
    engine
        .query(move |l| l.account(id).map(|(a, m)| AccountResponse::new(a, m)))
        .await
        .map_err(engine_problem)?
        .map(Json)
        .ok_or_else(|| account_not_found(id))
}

fn account_not_found(id: u128) -> Problem {
    Problem::not_found("account_not_found", format!("no account has id {id}"))
}

/// Look up a transfer.
#[utoipa::path(
    get,
    path = "/v1/ledger/transfers/{id}",
    tag = "ledger",
    params(("id" = String, Path, description = "Decimal transfer id")),
    responses(
        (status = 200, description = "The transfer", body = TransferResponse),
        (status = 400, description = "The id does not parse", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such transfer", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_transfer(
    State(engine): State<Arc<Engine>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<TransferResponse>, Problem> {
    let id = path_id(id)?;
    engine
        .query(move |l| l.transfer(id))
        .await
        .map_err(engine_problem)?
        .map(|v| Json(v.into()))
        .ok_or_else(|| Problem::not_found("transfer_not_found", format!("no transfer has id {id}")))
}

/// Reads `limit`, `after`, `reverse` and (when `with_range`) `timestamp_min`/`timestamp_max`.
fn page_query(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    with_range: bool,
) -> Result<PageQuery, Problem> {
    let invalid = |detail: String| {
        Problem::new(400, "invalid_query", "The query string is not valid").with_detail(detail)
    };
    let Query(params) = query.map_err(|e| invalid(e.body_text()))?;
    let mut q = PageQuery::default();
    for (key, value) in &params {
        let number = || {
            decimal::parse_u64(value)
                .ok_or_else(|| invalid(format!("`{key}` must be a decimal number, not `{value}`")))
        };
        match key.as_str() {
            "limit" => {
                let limit = number()?;
                if limit == 0 || limit > PAGE_LIMIT_MAX as u64 {
                    return Err(invalid(format!(
                        "`limit` must be between 1 and {PAGE_LIMIT_MAX}"
                    )));
                }
                q.limit = limit as usize;
            }
            "after" => q.after = Some(number()?),
            "reverse" => {
                q.reverse = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(invalid(format!(
                            "`reverse` must be true or false, not `{value}`"
                        )));
                    }
                }
            }
            "timestamp_min" if with_range => q.timestamp_min = number()?,
            "timestamp_max" if with_range => q.timestamp_max = number()?,
            _ => return Err(invalid(format!("unknown query parameter `{key}`"))),
        }
    }
    if q.timestamp_min > q.timestamp_max {
        return Err(invalid("`timestamp_min` is after `timestamp_max`".into()));
    }
    Ok(q)
}

/// List the committed transfers touching an account.
#[utoipa::path(
    get,
    path = "/v1/ledger/accounts/{id}/transfers",
    tag = "ledger",
    params(
        ("id" = String, Path, description = "Decimal account id"),
        ("limit" = Option<u32>, Query, description = "1 to 8190, default 100"),
        ("after" = Option<String>, Query, description = "The `next` cursor of the previous page"),
        ("reverse" = Option<bool>, Query, description = "Newest first"),
    ),
    responses(
        (status = 200, description = "A page of transfers", body = TransferPage),
        (status = 400, description = "Bad id or query", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_account_transfers(
    State(engine): State<Arc<Engine>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<TransferPage>, Problem> {
    let id = path_id(id)?;
    let q = page_query(query, false)?;
    let page = engine
        .query(move |l| l.account_transfers(id, q))
        .await
        .map_err(engine_problem)?
        .ok_or_else(|| account_not_found(id))?;
    Ok(Json(TransferPage {
        transfers: page.items.into_iter().map(Into::into).collect(),
        next: page.next.map(u128::from),
    }))
}

/// List an account's balance after each change (accounts flagged `history`).
#[utoipa::path(
    get,
    path = "/v1/ledger/accounts/{id}/balances",
    tag = "ledger",
    params(
        ("id" = String, Path, description = "Decimal account id"),
        ("limit" = Option<u32>, Query, description = "1 to 8190, default 100"),
        ("after" = Option<String>, Query, description = "The `next` cursor of the previous page"),
        ("reverse" = Option<bool>, Query, description = "Newest first"),
        ("timestamp_min" = Option<String>, Query, description = "Inclusive lower bound (ns since the epoch)"),
        ("timestamp_max" = Option<String>, Query, description = "Inclusive upper bound (ns since the epoch)"),
    ),
    responses(
        (status = 200, description = "A page of balances", body = BalancePage),
        (status = 400, description = "Bad id or query", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such account", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The account does not keep history", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_account_balances(
    State(engine): State<Arc<Engine>>,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<BalancePage>, Problem> {
    let id = path_id(id)?;
    let q = page_query(query, true)?;
    let (flags, page) = engine
        .query(move |l| Some((l.account(id)?.0.flags, l.account_balances(id, q)?)))
        .await
        .map_err(engine_problem)?
        .ok_or_else(|| account_not_found(id))?;
    if !flags.contains(AccountFlags::HISTORY) {
        return Err(Problem::new(
            409,
            "history_not_enabled",
            "The account does not keep balance history",
        )
        .with_detail(format!(
            "account {id} was created without the `history` flag"
        )));
    }
    Ok(Json(BalancePage {
        balances: page
            .items
            .into_iter()
            .map(|e| BalanceResponse {
                timestamp: e.timestamp,
                transfer_id: e.transfer_id,
                debits_pending: e.balances.debits_pending,
                debits_posted: e.balances.debits_posted,
                credits_pending: e.balances.credits_pending,
                credits_posted: e.balances.credits_posted,
            })
            .collect(),
        next: page.next.map(u128::from),
    }))
}

/// The ledger's OpenAPI document, with the health and document routes every shape serves
/// next to it (the binary serves it at `/v1/openapi.json`, merged with the other services').
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.paths.paths.extend(extra_paths());
    doc
}

/// Paths served outside this router (health checks), documented here so the document is whole.
fn extra_paths() -> Vec<(String, utoipa::openapi::PathItem)> {
    use utoipa::openapi::{HttpMethod, PathItem, ResponseBuilder, path::OperationBuilder};
    [
        ("/healthz", "Liveness", true),
        (
            "/readyz",
            "Readiness: 200 once recovery is done and the service serves",
            true,
        ),
        ("/v1/openapi.json", "This OpenAPI 3.1 document", false),
    ]
    .into_iter()
    .map(|(path, summary, may_be_unavailable)| {
        let mut op = OperationBuilder::new()
            .tag("meta")
            .summary(Some(summary))
            .response("200", ResponseBuilder::new().description("OK"));
        if may_be_unavailable {
            op = op.response("503", ResponseBuilder::new().description("Not ready"));
        }
        (path.to_owned(), PathItem::new(HttpMethod::Get, op.build()))
    })
    .collect()
}

/// The ledger's OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gureum",
        description = "Gureum core banking: the ledger API. Ids, amounts and timestamps are decimal strings; errors are RFC 9457 problem+json."
    ),
    paths(
        create_accounts,
        create_transfers,
        get_account,
        get_transfer,
        get_account_transfers,
        get_account_balances
    ),
    components(schemas(
        AccountRequest,
        TransferRequest,
        EventResult,
        AccountResponse,
        TransferResponse,
        TransferPage,
        BalanceResponse,
        BalancePage,
        Problem
    ))
)]
pub struct ApiDoc;
