//! The deposits HTTP API under `/v1/deposits`, its problem mapping and OpenAPI document.
//!
//! Movements take an optional `Idempotency-Key` header: the same key with the same request
//! answers the first outcome and never moves money twice; with another request it is refused.

use crate::model::{self, Line};
use crate::service::{
    AccountView, DepositError, Deposits, EodReport, Movement, NewAccount, PERMISSION_EOD, Receipt,
    Statement,
};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::Problem;
use kernel::http::{Caller, json_body, path_problem, query_problem, trace_parent};
use products::service::{kind_name, parse_date};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::Date;
use utoipa::{OpenApi, ToSchema};

/// A request body holds at most this many bytes.
pub const BODY_BYTES_MAX: usize = 16 << 10;

/// The deposits routes.
pub fn router(deposits: Arc<Deposits>) -> Router {
    Router::new()
        .route("/v1/deposits", post(open).get(list))
        .route("/v1/deposits/eod", post(end_of_day))
        .route("/v1/deposits/{id}", get(account))
        .route("/v1/deposits/{id}/deposit", post(deposit))
        .route("/v1/deposits/{id}/withdraw", post(withdraw))
        .route("/v1/deposits/{id}/transfer", post(transfer))
        .route("/v1/deposits/{id}/holds", post(hold))
        .route("/v1/deposits/{id}/holds/{hold_id}/capture", post(capture))
        .route("/v1/deposits/{id}/holds/{hold_id}/release", post(release))
        .route("/v1/deposits/{id}/close", post(close))
        .route("/v1/deposits/{id}/statement", get(statement))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(deposits)
}

/// An account to open.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    /// The customer's id.
    customer_id: String,
    /// The product code; the version in force today applies.
    product_code: String,
    /// Term deposits and installment savings: the term in months.
    term_months: Option<u32>,
}

/// An account with its balances (whole won as decimal strings).
#[derive(Serialize, ToSchema)]
pub struct AccountResponse {
    id: String,
    customer_id: String,
    product_code: String,
    product_version: i64,
    /// `demand_deposit`, `term_deposit` or `installment_savings`.
    kind: String,
    currency: String,
    /// The annual rate fixed at opening, e.g. `"0.0325"`.
    rate: String,
    term_months: Option<u32>,
    maturity_on: Option<String>,
    /// `open` or `closed`.
    status: String,
    opened_on: String,
    closed_on: Option<String>,
    /// The last business date interest was accrued for.
    accrued_through: Option<String>,
    /// The posted balance.
    balance: String,
    /// Posted less holds: what can be spent.
    available: String,
    /// Held by holds.
    on_hold: String,
    /// Interest accrued, not yet paid (paid in on the month's last day and at closing).
    accrued_interest: String,
}

impl From<AccountView> for AccountResponse {
    fn from(v: AccountView) -> Self {
        let a = v.account;
        AccountResponse {
            id: a.id,
            customer_id: a.customer_id,
            product_code: a.product_code,
            product_version: a.product_version,
            kind: kind_name(a.kind).to_owned(),
            currency: a.currency,
            rate: a.rate.to_string(),
            term_months: a.term_months,
            maturity_on: a.maturity_on.map(|d| d.to_string()),
            status: a.status,
            opened_on: a.opened_on.to_string(),
            closed_on: a.closed_on.map(|d| d.to_string()),
            accrued_through: a.accrued_through.map(|d| d.to_string()),
            balance: v.balance.to_string(),
            available: v.available.to_string(),
            on_hold: v.on_hold.to_string(),
            accrued_interest: v.accrued_interest.to_string(),
        }
    }
}

/// A page of a customer's accounts (without balances: ask each account).
#[derive(Serialize, ToSchema)]
pub struct AccountPage {
    items: Vec<AccountSummary>,
    /// Pass as `after` for the next page; null on the last.
    next: Option<String>,
}

/// An account in a list.
#[derive(Serialize, ToSchema)]
pub struct AccountSummary {
    id: String,
    product_code: String,
    kind: String,
    status: String,
    opened_on: String,
}

/// Money in or out.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Whole won, a decimal string.
    amount: String,
    /// Up to 140 characters, shown on the statement.
    memo: Option<String>,
}

/// A transfer to another deposit account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferRequest {
    /// The account credited.
    to: String,
    /// Whole won, a decimal string.
    amount: String,
    /// Up to 140 characters, shown on both statements.
    memo: Option<String>,
}

/// A hold.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    /// Whole won, a decimal string.
    amount: String,
    /// Seconds until it lapses by itself (at most 30 days); absent: until released.
    timeout_seconds: Option<u32>,
    /// Shown when captured.
    memo: Option<String>,
}

/// A capture of a hold.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Whole won; absent captures the whole hold. The rest is released.
    amount: Option<String>,
}

/// Closing.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// Another open deposit account to move the balance to.
    sweep_to: Option<String>,
}

/// What a movement did.
#[derive(Serialize, ToSchema)]
pub struct ReceiptResponse {
    /// The ledger transfer id (for a hold: the hold's id).
    transaction_id: String,
    kind: String,
    account_id: String,
    /// Whole won moved (held, for a hold; released, for a release).
    amount: String,
    /// RFC 3339.
    at: String,
}

impl From<Receipt> for ReceiptResponse {
    fn from(r: Receipt) -> Self {
        ReceiptResponse {
            transaction_id: r.transaction_id.to_string(),
            kind: r.kind,
            account_id: r.account_id,
            amount: r.amount.to_string(),
            at: rfc3339_ns(r.timestamp),
        }
    }
}

/// A statement.
#[derive(Serialize, ToSchema)]
pub struct StatementResponse {
    account_id: String,
    from: String,
    to: String,
    /// The posted balance at the end of the day before `from`.
    opening_balance: String,
    /// The posted balance after the last line.
    closing_balance: String,
    total_in: String,
    total_out: String,
    lines: Vec<LineResponse>,
}

/// A statement line.
#[derive(Serialize, ToSchema)]
pub struct LineResponse {
    transaction_id: String,
    /// RFC 3339.
    at: String,
    /// `deposit`, `withdrawal`, `transfer_in`, `transfer_out`, `hold_capture`, `interest`, …
    kind: String,
    /// `in` or `out`.
    direction: String,
    amount: String,
    /// The posted balance after this line.
    balance: String,
    memo: Option<String>,
}

impl From<Statement> for StatementResponse {
    fn from(s: Statement) -> Self {
        StatementResponse {
            account_id: s.account_id,
            from: s.from.to_string(),
            to: s.to.to_string(),
            opening_balance: s.opening.to_string(),
            closing_balance: s.closing.to_string(),
            total_in: s.total_in.to_string(),
            total_out: s.total_out.to_string(),
            lines: s.lines.into_iter().map(line).collect(),
        }
    }
}

fn line(l: Line) -> LineResponse {
    LineResponse {
        transaction_id: l.transfer_id.to_string(),
        at: rfc3339_ns(l.timestamp),
        kind: l.kind.to_owned(),
        direction: if l.credit { "in" } else { "out" }.to_owned(),
        amount: l.amount.to_string(),
        balance: l.balance.to_string(),
        memo: l.memo,
    }
}

/// An end-of-day run.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EodRequest {
    /// The business date (YYYY-MM-DD, Seoul) to bring every account up to; it must be over.
    date: String,
}

/// The listing query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    customer_id: String,
    after: Option<String>,
    limit: Option<u32>,
}

/// The statement query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    from: String,
    to: String,
}

/// Open an account for a customer under a deposit product.
#[utoipa::path(post, path = "/v1/deposits", tag = "deposits", request_body = OpenRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeat-safe key")),
    responses((status = 201, body = AccountResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn open(
    State(deposits): State<Arc<Deposits>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let req: OpenRequest = json_body(body, BODY_BYTES_MAX)?;
    let key = idempotency_key(&headers)?;
    let account = deposits
        .open_account(
            NewAccount {
                customer_id: req.customer_id,
                product_code: req.product_code,
                term_months: req.term_months,
            },
            key.as_deref(),
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    let view = deposits.get(&account.id).await.map_err(problem)?;
    Ok((StatusCode::CREATED, Json(AccountResponse::from(view))).into_response())
}

/// A customer's accounts.
#[utoipa::path(get, path = "/v1/deposits", tag = "deposits",
    params(("customer_id" = String, Query), ("after" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1 to 500, default 100")),
    responses((status = 200, body = AccountPage)))]
async fn list(
    State(deposits): State<Arc<Deposits>>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<AccountPage>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 500);
    // A customer's own credential lists its own accounts alone (another's: none).
    let accounts = match caller.scope(PERMISSION_READ).narrow(Some(&q.customer_id)) {
        Some(Some(customer_id)) => deposits
            .list(customer_id, q.after.as_deref(), limit)
            .await
            .map_err(problem)?,
        _ => Vec::new(),
    };
    let next = (accounts.len() == limit as usize)
        .then(|| accounts.last().map(|a| a.id.clone()))
        .flatten();
    Ok(Json(AccountPage {
        items: accounts
            .into_iter()
            .map(|a| AccountSummary {
                id: a.id,
                product_code: a.product_code,
                kind: kind_name(a.kind).to_owned(),
                status: a.status,
                opened_on: a.opened_on.to_string(),
            })
            .collect(),
        next,
    }))
}

/// An account with its balances.
#[utoipa::path(get, path = "/v1/deposits/{id}", tag = "deposits", params(("id" = String, Path)),
    responses((status = 200, body = AccountResponse), (status = 404, body = Problem)))]
async fn account(
    State(deposits): State<Arc<Deposits>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AccountResponse>, Problem> {
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    own_only(&deposits, &caller, &id).await?;
    Ok(Json(deposits.get(&id).await.map_err(problem)?.into()))
}

/// Reading every account (a customer's own credential reads only its own).
const PERMISSION_READ: &str = "deposits:read";

/// A customer's own credential reads its own accounts alone: another's is not found.
async fn own_only(deposits: &Deposits, caller: &Caller, id: &str) -> Result<(), Problem> {
    let scope = caller.scope(PERMISSION_READ);
    if scope == kernel::http::Scope::All {
        return Ok(());
    }
    let account = deposits.load(id).await.map_err(problem)?;
    if scope.covers(&account.customer_id) {
        Ok(())
    } else {
        Err(problem(crate::service::DepositError::NotFound))
    }
}

async fn movement(
    deposits: &Deposits,
    id: &str,
    headers: &HeaderMap,
    movement: Movement,
) -> Result<Json<ReceiptResponse>, Problem> {
    let key = idempotency_key(headers)?;
    let receipt = deposits
        .movement(id, movement, key.as_deref(), trace_parent(headers))
        .await
        .map_err(problem)?;
    Ok(Json(receipt.into()))
}

/// A movement whose request body `R` says everything: parses the path and the body, builds the
/// movement with `make`, applies it.
async fn body_movement<R: serde::de::DeserializeOwned>(
    deposits: &Deposits,
    id: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    make: impl FnOnce(R) -> Result<Movement, Problem>,
) -> Result<Json<ReceiptResponse>, Problem> {
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    let m = make(json_body(body, BODY_BYTES_MAX)?)?;
    movement(deposits, &id, headers, m).await
}

fn amount(text: &str) -> Result<u128, Problem> {
    model::parse_amount(text).map_err(|e| problem(e.into()))
}

/// Money in from outside (cash, an incoming wire).
#[utoipa::path(post, path = "/v1/deposits/{id}/deposit", tag = "deposits", request_body = AmountRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn deposit(
    State(deposits): State<Arc<Deposits>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiptResponse>, Problem> {
    body_movement(&deposits, id, &headers, body, |req: AmountRequest| {
        Ok(Movement::Deposit {
            amount: amount(&req.amount)?,
            memo: req.memo,
        })
    })
    .await
}

/// Money out.
#[utoipa::path(post, path = "/v1/deposits/{id}/withdraw", tag = "deposits", request_body = AmountRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn withdraw(
    State(deposits): State<Arc<Deposits>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiptResponse>, Problem> {
    body_movement(&deposits, id, &headers, body, |req: AmountRequest| {
        Ok(Movement::Withdrawal {
            amount: amount(&req.amount)?,
            memo: req.memo,
        })
    })
    .await
}

/// To another customer's (or the same customer's) deposit account.
#[utoipa::path(post, path = "/v1/deposits/{id}/transfer", tag = "deposits", request_body = TransferRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn transfer(
    State(deposits): State<Arc<Deposits>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiptResponse>, Problem> {
    body_movement(&deposits, id, &headers, body, |req: TransferRequest| {
        Ok(Movement::Transfer {
            to: req.to,
            amount: amount(&req.amount)?,
            memo: req.memo,
        })
    })
    .await
}

/// Hold money (a pending transfer): it counts against the available balance until captured,
/// released or lapsed.
#[utoipa::path(post, path = "/v1/deposits/{id}/holds", tag = "deposits", request_body = HoldRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn hold(
    State(deposits): State<Arc<Deposits>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiptResponse>, Problem> {
    body_movement(&deposits, id, &headers, body, |req: HoldRequest| {
        Ok(Movement::Hold {
            amount: amount(&req.amount)?,
            timeout_seconds: req.timeout_seconds.unwrap_or(0),
            memo: req.memo,
        })
    })
    .await
}

fn hold_id(text: &str) -> Result<u128, Problem> {
    kernel::decimal::parse_u128(text)
        .ok_or_else(|| Problem::not_found("hold_not_found", "no hold with this id on this account"))
}

/// Take (part of) a hold; the rest is released.
#[utoipa::path(post, path = "/v1/deposits/{id}/holds/{hold_id}/capture", tag = "deposits", request_body = CaptureRequest,
    params(("id" = String, Path), ("hold_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn capture(
    State(deposits): State<Arc<Deposits>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiptResponse>, Problem> {
    let Path((id, hold)) = ids.map_err(|e| path_problem(e, "invalid_path"))?;
    let req: CaptureRequest = optional_body(body)?;
    let m = Movement::Capture {
        hold_id: hold_id(&hold)?,
        amount: req.amount.as_deref().map(amount).transpose()?,
    };
    movement(&deposits, &id, &headers, m).await
}

/// Release a hold.
#[utoipa::path(post, path = "/v1/deposits/{id}/holds/{hold_id}/release", tag = "deposits",
    params(("id" = String, Path), ("hold_id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn release(
    State(deposits): State<Arc<Deposits>>,
    ids: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<ReceiptResponse>, Problem> {
    let Path((id, hold)) = ids.map_err(|e| path_problem(e, "invalid_path"))?;
    let m = Movement::Release {
        hold_id: hold_id(&hold)?,
    };
    movement(&deposits, &id, &headers, m).await
}

/// Close the account: accrued interest is paid in, the balance moved to `sweep_to` if given;
/// refused unless the balance is then zero with no holds. Repeating a close answers the
/// closed account.
#[utoipa::path(post, path = "/v1/deposits/{id}/close", tag = "deposits", request_body = CloseRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = AccountResponse), (status = 409, body = Problem)))]
async fn close(
    State(deposits): State<Arc<Deposits>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AccountResponse>, Problem> {
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    let req: CloseRequest = optional_body(body)?;
    let view = deposits
        .close(&id, req.sweep_to.as_deref(), trace_parent(&headers))
        .await
        .map_err(problem)?;
    Ok(Json(view.into()))
}

/// The statement for business dates `from` to `to` (at most 366 days).
#[utoipa::path(get, path = "/v1/deposits/{id}/statement", tag = "deposits",
    params(("id" = String, Path), ("from" = String, Query), ("to" = String, Query)),
    responses((status = 200, body = StatementResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn statement(
    State(deposits): State<Arc<Deposits>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<PeriodQuery>, QueryRejection>,
) -> Result<Json<StatementResponse>, Problem> {
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    own_only(&deposits, &caller, &id).await?;
    let Query(q) = query.map_err(query_problem)?;
    let s = deposits
        .statement(&id, date(&q.from)?, date(&q.to)?)
        .await
        .map_err(problem)?;
    Ok(Json(s.into()))
}

/// End of day: accrue interest for every open account up to `date`, paying it in on month
/// ends. Needs `deposits:eod`. Idempotent per date; a repeated run does nothing new.
#[utoipa::path(post, path = "/v1/deposits/eod", tag = "deposits", request_body = EodRequest,
    responses((status = 200, body = EodReport), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn end_of_day(
    State(deposits): State<Arc<Deposits>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EodReport>, Problem> {
    let req: EodRequest = json_body(body, BODY_BYTES_MAX)?;
    let report = deposits
        .end_of_day(&caller, date(&req.date)?, trace_parent(&headers))
        .await
        .map_err(problem)?;
    Ok(Json(report))
}

fn optional_body<T: Default + serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, Problem> {
    match &body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        _ => json_body(body, BODY_BYTES_MAX),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || {
        Problem::new(
            400,
            "invalid_idempotency_key",
            "The Idempotency-Key is not valid",
        )
        .with_detail("`Idempotency-Key` is 1 to 100 visible ASCII characters")
    };
    let key = value.to_str().map_err(|_| invalid())?;
    model::check_idempotency_key(key).map_err(|_| invalid())?;
    Ok(Some(key.to_owned()))
}

fn date(text: &str) -> Result<Date, Problem> {
    parse_date(text).ok_or_else(|| {
        Problem::new(400, "invalid_date", "The date is not valid")
            .with_detail("dates are YYYY-MM-DD")
    })
}

fn rfc3339_ns(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Maps an error to its problem, once.
pub fn problem(error: DepositError) -> Problem {
    let detail = error.to_string();
    match &error {
        DepositError::Rule(r) => {
            Problem::new(422, r.code, "The request breaks a rule").with_detail(detail)
        }
        DepositError::NotFound => Problem::not_found("deposit_account_not_found", detail),
        DepositError::CustomerNotFound => {
            Problem::new(422, "customer_not_found", "No such customer").with_detail(detail)
        }
        DepositError::CustomerErased => {
            Problem::new(409, "customer_erased", "The customer was erased").with_detail(detail)
        }
        DepositError::ProductNotAvailable => {
            Problem::new(422, "product_not_available", "The product is not sold")
                .with_detail(detail)
        }
        DepositError::NotADeposit => {
            Problem::new(422, "not_a_deposit_product", "Not a deposit product").with_detail(detail)
        }
        DepositError::AccountClosed => {
            Problem::new(409, "account_closed", "The account is closed").with_detail(detail)
        }
        DepositError::InsufficientFunds => {
            Problem::new(409, "insufficient_funds", "Insufficient funds").with_detail(detail)
        }
        DepositError::HoldNotFound => Problem::not_found("hold_not_found", detail),
        DepositError::HoldNotActive(state) => Problem::new(
            409,
            match *state {
                "captured" => "hold_captured",
                "released" => "hold_released",
                _ => "hold_expired",
            },
            "The hold is no longer active",
        )
        .with_detail(detail),
        DepositError::CaptureExceedsHold => {
            Problem::new(422, "capture_exceeds_hold", "The capture exceeds the hold")
                .with_detail(detail)
        }
        DepositError::BalanceNotZero { .. } => {
            Problem::new(409, "balance_not_zero", "The account is not empty").with_detail(detail)
        }
        DepositError::BeforeMaturity(_) => {
            Problem::new(409, "before_maturity", "The account has not matured").with_detail(detail)
        }
        DepositError::IdempotencyKeyReused => Problem::new(
            422,
            "idempotency_key_reused",
            "The Idempotency-Key was used for another request",
        )
        .with_detail(detail),
        DepositError::Forbidden(_) => Problem::new(403, "permission_denied", "Permission denied")
            .with_detail(format!(
                "this action needs the permission `{PERMISSION_EOD}`"
            )),
        DepositError::BusinessDateNotOver(_) => Problem::new(
            422,
            "business_date_not_over",
            "The business date is not over",
        )
        .with_detail(detail),
        DepositError::EodInProgress => {
            Problem::new(409, "eod_in_progress", "End of day is running").with_detail(detail)
        }
        DepositError::Peer(e) => {
            tracing::warn!(error = %e, "deposits: a peer service is unavailable");
            Problem::unavailable(format!("{} is unavailable; retry later", e.service))
        }
        DepositError::Ledger(e) => {
            tracing::warn!(error = %e, "deposits: the ledger is unavailable");
            Problem::unavailable("the ledger is unavailable; retry later")
        }
        DepositError::LedgerRefused(code) => {
            tracing::error!(
                result = code,
                "deposits: the ledger refused a step the rules allowed"
            );
            Problem::new(500, "ledger_refused", "The ledger refused the operation").with_detail(
                format!("the ledger answered `{code}`; nothing was recorded as done"),
            )
        }
        DepositError::Store(e) => {
            tracing::error!(error = %e, "deposits: storage failed");
            Problem::unavailable("deposit storage is unavailable; retry later")
        }
    }
}

/// The deposits OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        open, list, account, deposit, withdraw, transfer, hold, capture, release, close, statement,
        end_of_day
    ),
    components(schemas(
        OpenRequest,
        AccountResponse,
        AccountPage,
        AccountSummary,
        AmountRequest,
        TransferRequest,
        HoldRequest,
        CaptureRequest,
        CloseRequest,
        ReceiptResponse,
        StatementResponse,
        LineResponse,
        EodRequest,
        EodReport,
        Problem
    ))
)]
pub struct ApiDoc;
