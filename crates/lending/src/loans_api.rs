//! The loan routes: offers and their acceptance, loans, disbursement, repayments and
//! prepayments (with `Idempotency-Key`), restructuring and write-off, end of day, and
//! collections. Amounts are whole won as decimal strings.

use crate::api::{BODY_BYTES_MAX, problem};
use crate::collections::Action;
use crate::loans::{self, LoanRecord, Offer, QueueItem, Receipt};
use crate::service::Lending;
use crate::servicing::{Allocation, Restructuring};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::Problem;
use kernel::http::{Caller, json_body, path_problem, query_problem, trace_parent};
use products::model::RepaymentMethod;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::Date;
use utoipa::ToSchema;

/// The loan routes.
pub fn routes(lending: Arc<Lending>) -> Router {
    Router::new()
        .route("/v1/loans/applications/{id}/offer", get(offer))
        .route("/v1/loans/applications/{id}/accept", post(accept))
        .route("/v1/loans", get(list))
        .route("/v1/loans/eod", post(end_of_day))
        .route("/v1/loans/collections", get(queue))
        .route("/v1/loans/{id}", get(loan))
        .route("/v1/loans/{id}/schedule", get(schedule))
        .route("/v1/loans/{id}/payoff", get(payoff))
        .route("/v1/loans/{id}/disburse", post(disburse))
        .route("/v1/loans/{id}/repayments", post(repay))
        .route("/v1/loans/{id}/prepayments", post(prepay))
        .route("/v1/loans/{id}/restructure", post(restructure))
        .route("/v1/loans/{id}/write-off", post(write_off))
        .route("/v1/loans/{id}/promises", post(promise))
        .route("/v1/loans/{id}/contacts", post(contact))
        .with_state(lending)
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    id.map(|Path(id)| id)
        .map_err(|e| path_problem(e, "invalid_path"))
}

fn amount(text: &str, field: &str) -> Result<u128, Problem> {
    kernel::decimal::parse_u128(text).ok_or_else(|| {
        Problem::new(422, "invalid_amount", "The request breaks a rule")
            .with_detail(format!("`{field}` is whole won as a decimal string"))
    })
}

fn date(text: &str, field: &str) -> Result<Date, Problem> {
    products::service::parse_date(text).ok_or_else(|| {
        Problem::new(400, "invalid_date", "The date is not valid")
            .with_detail(format!("`{field}` is YYYY-MM-DD"))
    })
}

/// The `Idempotency-Key` header, which every money step needs.
fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let missing = || {
        Problem::new(
            400,
            "idempotency_key_required",
            "An Idempotency-Key is required",
        )
        .with_detail(
            "send `Idempotency-Key` (1 to 100 visible ASCII characters): a retry with the same key never moves money twice",
        )
    };
    let value = headers.get("idempotency-key").ok_or_else(missing)?;
    value.to_str().map(str::to_owned).map_err(|_| missing())
}

/// An offer (amounts as decimal strings).
#[derive(Serialize, ToSchema)]
pub struct OfferResponse {
    application_id: String,
    customer_id: String,
    product_code: String,
    product_version: i64,
    /// The most that may be borrowed.
    limit: String,
    /// The least.
    minimum: String,
    #[schema(value_type = String)]
    annual_rate: Decimal,
    term_months: u32,
    method: RepaymentMethod,
    grace_months: u32,
    #[schema(value_type = String)]
    prepayment_fee_rate: Decimal,
    /// The last day it may be accepted.
    expires_on: String,
}

impl From<Offer> for OfferResponse {
    fn from(o: Offer) -> Self {
        OfferResponse {
            application_id: o.application_id,
            customer_id: o.customer_id,
            product_code: o.product_code,
            product_version: o.product_version,
            limit: o.limit.to_string(),
            minimum: o.minimum.to_string(),
            annual_rate: o.annual_rate,
            term_months: o.term_months,
            method: o.method,
            grace_months: o.grace_months,
            prepayment_fee_rate: o.prepayment_fee_rate,
            expires_on: o.expires_on.to_string(),
        }
    }
}

/// What is due now, by component.
#[derive(Serialize, ToSchema)]
pub struct DueResponse {
    fees: String,
    late_interest: String,
    interest: String,
    principal: String,
    total: String,
}

/// Where a disbursed loan stands.
#[derive(Serialize, ToSchema)]
pub struct BalancesResponse {
    /// Principal outstanding, billed or not.
    principal: String,
    /// Interest accrued, not yet billed.
    interest_accrued: String,
    /// Billed and unpaid, with late interest and fees.
    due: DueResponse,
    days_past_due: u32,
    /// `current`, `1-29`, `30-59`, `60-89`, `90+`.
    bucket: String,
    disbursed_on: String,
    /// The last business day closed.
    closed_through: String,
    maturity: String,
    #[schema(value_type = String)]
    annual_rate: Decimal,
    term_months: u32,
    restructurings: u32,
    /// Disbursed, repaid, paid, written off, recovered.
    #[schema(value_type = Object)]
    totals: serde_json::Value,
}

/// A loan.
#[derive(Serialize, ToSchema)]
pub struct LoanResponse {
    id: String,
    application_id: String,
    customer_id: String,
    /// The deposit account it is paid into and repaid from.
    account_id: String,
    contract_id: Option<String>,
    /// `contracted`, `current`, `delinquent`, `default`, `written_off`, `closed`.
    status: String,
    /// The principal accepted.
    principal: String,
    offer: OfferResponse,
    /// Once disbursed.
    balances: Option<BalancesResponse>,
    /// Promises to pay, oldest first.
    #[schema(value_type = Vec<Object>)]
    promises: Vec<serde_json::Value>,
    /// Collectors' contacts, oldest first.
    #[schema(value_type = Vec<Object>)]
    contacts: Vec<serde_json::Value>,
    /// RFC 3339.
    created_at: String,
}

impl From<LoanRecord> for LoanResponse {
    fn from(r: LoanRecord) -> Self {
        let balances = r.state.loan.as_ref().map(|l| {
            let due_interest: u128 = l.due.iter().map(|d| d.interest).sum();
            let due_principal: u128 = l.due.iter().map(|d| d.principal).sum();
            BalancesResponse {
                principal: l.principal.to_string(),
                interest_accrued: l.interest_accrued.to_string(),
                due: DueResponse {
                    fees: l.fees.to_string(),
                    late_interest: l.late_interest.to_string(),
                    interest: due_interest.to_string(),
                    principal: due_principal.to_string(),
                    total: l.due_total().to_string(),
                },
                days_past_due: l.days_past_due(),
                bucket: serde_json::to_value(l.bucket())
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                disbursed_on: l.disbursed_on.to_string(),
                closed_through: l.closed_through.to_string(),
                maturity: l.maturity().to_string(),
                annual_rate: l.terms.annual_rate,
                term_months: l.terms.term_months,
                restructurings: l.restructurings,
                totals: totals_json(&l.totals),
            }
        });
        let to_values = |v: serde_json::Value| match v {
            serde_json::Value::Array(items) => items,
            _ => Vec::new(),
        };
        LoanResponse {
            promises: to_values(
                serde_json::to_value(
                    r.state
                        .promises
                        .iter()
                        .map(|p| {
                            serde_json::json!({
                                "given_on": p.promise.given_on.to_string(),
                                "due_by": p.promise.due_by.to_string(),
                                "amount": p.promise.amount.to_string(),
                                "paid_since": p.paid_since.to_string(),
                                "taken_by": p.taken_by,
                            })
                        })
                        .collect::<Vec<_>>(),
                )
                .unwrap_or_default(),
            ),
            contacts: to_values(serde_json::to_value(&r.state.contacts).unwrap_or_default()),
            created_at: kernel::event::format_time_us(r.created_at_us).unwrap_or_default(),
            principal: r.state.principal.to_string(),
            offer: r.state.offer.into(),
            balances,
            id: r.id,
            application_id: r.application_id,
            customer_id: r.customer_id,
            account_id: r.account_id,
            contract_id: r.contract_id,
            status: r.status,
        }
    }
}

fn totals_json(t: &crate::servicing::Totals) -> serde_json::Value {
    serde_json::json!({
        "disbursed": t.disbursed.to_string(),
        "capitalised": t.capitalised.to_string(),
        "principal_repaid": t.principal_repaid.to_string(),
        "interest_paid": t.interest_paid.to_string(),
        "late_interest_paid": t.late_interest_paid.to_string(),
        "fees_paid": t.fees_paid.to_string(),
        "written_off": t.written_off.to_string(),
        "recovered": t.recovered.to_string(),
    })
}

fn allocation_json(a: &Allocation) -> serde_json::Value {
    serde_json::json!({
        "fees": a.fees.to_string(),
        "late_interest": a.late_interest.to_string(),
        "interest": a.interest.to_string(),
        "principal": a.principal.to_string(),
        "prepayment_fee": a.prepayment_fee.to_string(),
        "recovery": a.recovery.to_string(),
    })
}

/// What a money step did.
#[derive(Serialize, ToSchema)]
pub struct ReceiptResponse {
    loan_id: String,
    /// `repayment`, `prepayment`, `restructuring`, `write_off`.
    kind: String,
    /// The business day it counts on.
    value_date: String,
    /// Whole won taken from the deposit account.
    amount: String,
    /// By component: `fees`, `late_interest`, `interest`, `principal`, `prepayment_fee`,
    /// `recovery`.
    #[schema(value_type = Option<Object>)]
    allocation: Option<serde_json::Value>,
    /// The loan's status after it.
    status: String,
}

impl From<Receipt> for ReceiptResponse {
    fn from(r: Receipt) -> Self {
        ReceiptResponse {
            allocation: r.allocation.as_ref().map(allocation_json),
            loan_id: r.loan_id,
            kind: r.kind,
            value_date: r.value_date.to_string(),
            amount: r.amount.to_string(),
            status: r.status,
        }
    }
}

/// An approved application's offer. Needs `loans:read`.
#[utoipa::path(get, path = "/v1/loans/applications/{id}/offer", tag = "loans", params(("id" = String, Path)),
    responses((status = 200, body = OfferResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn offer(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<OfferResponse>, Problem> {
    let id = path_id(id)?;
    Ok(Json(
        lending.offer(&caller, &id).await.map_err(problem)?.into(),
    ))
}

/// Accepting an offer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// Whole won, within the offer.
    principal: String,
    /// The customer's open demand deposit account: the money is paid in there, and repaid
    /// from there.
    account_id: String,
}

/// Accept an offer: the loan is recorded (`contracted`) and its contract issued for the
/// customer to sign. Accepting again answers the same loan. Needs `loans:originate`.
#[utoipa::path(post, path = "/v1/loans/applications/{id}/accept", tag = "loans", request_body = AcceptRequest,
    params(("id" = String, Path)),
    responses((status = 201, body = LoanResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn accept(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let id = path_id(id)?;
    let req: AcceptRequest = json_body(body, BODY_BYTES_MAX)?;
    let principal = amount(&req.principal, "principal")?;
    let record = lending
        .accept(
            &caller,
            &id,
            principal,
            &req.account_id,
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(LoanResponse::from(record))).into_response())
}

/// The listing query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    customer_id: Option<String>,
    status: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// A page of loans.
#[derive(Serialize, ToSchema)]
pub struct LoanPage {
    items: Vec<LoanResponse>,
    /// Pass as `after` for the next page; null on the last.
    next: Option<String>,
}

/// Loans by customer or status, by id. Needs `loans:read`.
#[utoipa::path(get, path = "/v1/loans", tag = "loans",
    params(("customer_id" = Option<String>, Query), ("status" = Option<String>, Query),
           ("after" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses((status = 200, body = LoanPage), (status = 403, body = Problem)))]
async fn list(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<LoanPage>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let items = lending
        .loans(
            &caller,
            q.customer_id.as_deref(),
            q.status.as_deref(),
            q.after.as_deref(),
            limit,
        )
        .await
        .map_err(problem)?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|l| l.id.clone()))
        .flatten();
    Ok(Json(LoanPage {
        items: items.into_iter().map(Into::into).collect(),
        next,
    }))
}

/// A loan with its balances. Needs `loans:read`.
#[utoipa::path(get, path = "/v1/loans/{id}", tag = "loans", params(("id" = String, Path)),
    responses((status = 200, body = LoanResponse), (status = 404, body = Problem)))]
async fn loan(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<LoanResponse>, Problem> {
    let id = path_id(id)?;
    Ok(Json(
        lending.loan(&caller, &id).await.map_err(problem)?.into(),
    ))
}

/// A billed instalment not yet paid in full.
#[derive(Serialize, ToSchema)]
pub struct DueItem {
    number: u32,
    due_date: String,
    principal: String,
    interest: String,
}

/// The schedule as it stands.
#[derive(Serialize, ToSchema)]
pub struct ScheduleResponse {
    /// Billed and unpaid, oldest first.
    due: Vec<DueItem>,
    /// Not billed yet.
    upcoming: Vec<crate::api::InstallmentResponse>,
}

/// A loan's schedule: what is billed and unpaid, and what is to come (re-amortised after a
/// partial prepayment, new after a restructuring). Needs `loans:read`.
#[utoipa::path(get, path = "/v1/loans/{id}/schedule", tag = "loans", params(("id" = String, Path)),
    responses((status = 200, body = ScheduleResponse), (status = 404, body = Problem)))]
async fn schedule(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ScheduleResponse>, Problem> {
    let id = path_id(id)?;
    let record = lending.loan(&caller, &id).await.map_err(problem)?;
    let due = record
        .state
        .loan
        .as_ref()
        .map(|l| {
            l.due
                .iter()
                .map(|d| DueItem {
                    number: d.number,
                    due_date: d.due_date.to_string(),
                    principal: d.principal.to_string(),
                    interest: d.interest.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(ScheduleResponse {
        due,
        upcoming: loans::upcoming(&record.state)
            .iter()
            .map(Into::into)
            .collect(),
    }))
}

/// What paying off would take.
#[derive(Serialize, ToSchema)]
pub struct PayoffResponse {
    /// The business day it would count on.
    value_date: String,
    /// Everything: what is due, the principal not billed, the interest accrued and the fee.
    amount: String,
    #[schema(value_type = Object)]
    allocation: serde_json::Value,
}

/// What paying the loan off today would take (nothing is changed). Needs `loans:read`.
#[utoipa::path(get, path = "/v1/loans/{id}/payoff", tag = "loans", params(("id" = String, Path)),
    responses((status = 200, body = PayoffResponse), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn payoff(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<PayoffResponse>, Problem> {
    let id = path_id(id)?;
    let (date, allocation) = lending.payoff(&caller, &id).await.map_err(problem)?;
    Ok(Json(PayoffResponse {
        value_date: date.to_string(),
        amount: allocation.total().to_string(),
        allocation: allocation_json(&allocation),
    }))
}

/// Pay the loan out into its deposit account, once the customer signed the contract.
/// Repeating it answers the disbursed loan. Needs `loans:originate`.
#[utoipa::path(post, path = "/v1/loans/{id}/disburse", tag = "loans", params(("id" = String, Path)),
    responses((status = 200, body = LoanResponse), (status = 409, body = Problem)))]
async fn disburse(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<LoanResponse>, Problem> {
    let id = path_id(id)?;
    Ok(Json(
        lending
            .disburse(&caller, &id, trace_parent(&headers))
            .await
            .map_err(problem)?
            .into(),
    ))
}

/// A repayment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepayRequest {
    /// Whole won, at most what is due (more is a prepayment).
    amount: String,
}

/// Repay what is due from the loan's deposit account, in the order fees, late interest,
/// interest, principal; on a written-off loan, a recovery. Needs `loans:repay` and an
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loans/{id}/repayments", tag = "loans", request_body = RepayRequest,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn repay(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiptResponse>, Problem> {
    let id = path_id(id)?;
    let key = idempotency_key(&headers)?;
    let req: RepayRequest = json_body(body, BODY_BYTES_MAX)?;
    let amount = amount(&req.amount, "amount")?;
    Ok(Json(
        lending
            .repay(&caller, &id, &key, amount, trace_parent(&headers))
            .await
            .map_err(problem)?
            .into(),
    ))
}

/// A prepayment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrepayRequest {
    /// Principal to prepay (of what is not billed yet); absent: pay the loan off.
    principal: Option<String>,
}

/// Prepay principal (what is due is paid first, with the prepayment fee); the instalments
/// left are re-amortised. Without `principal`, pays the loan off. Needs `loans:repay` and an
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loans/{id}/prepayments", tag = "loans", request_body = PrepayRequest,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn prepay(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiptResponse>, Problem> {
    let id = path_id(id)?;
    let key = idempotency_key(&headers)?;
    let req: PrepayRequest = json_body(body, BODY_BYTES_MAX)?;
    let principal = req
        .principal
        .as_deref()
        .map(|p| amount(p, "principal"))
        .transpose()?;
    Ok(Json(
        lending
            .prepay(&caller, &id, &key, principal, trace_parent(&headers))
            .await
            .map_err(problem)?
            .into(),
    ))
}

/// New terms.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestructureRequest {
    #[schema(value_type = String)]
    annual_rate: Decimal,
    term_months: u32,
    method: RepaymentMethod,
    #[serde(default)]
    grace_months: u32,
}

/// Restructure: every arrear becomes principal and a new schedule starts today. Needs
/// `loans:manage` and an `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loans/{id}/restructure", tag = "loans", request_body = RestructureRequest,
    params(("id" = String, Path), ("Idempotency-Key" = String, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn restructure(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReceiptResponse>, Problem> {
    let id = path_id(id)?;
    let key = idempotency_key(&headers)?;
    let req: RestructureRequest = json_body(body, BODY_BYTES_MAX)?;
    let new = Restructuring {
        annual_rate: req.annual_rate,
        term_months: req.term_months,
        method: req.method,
        grace_months: req.grace_months,
    };
    Ok(Json(
        lending
            .restructure(&caller, &id, &key, new, trace_parent(&headers))
            .await
            .map_err(problem)?
            .into(),
    ))
}

/// Write a defaulted loan off; later payments are recoveries. Needs `loans:manage` and an
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/loans/{id}/write-off", tag = "loans",
    params(("id" = String, Path), ("Idempotency-Key" = String, Header)),
    responses((status = 200, body = ReceiptResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn write_off(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<ReceiptResponse>, Problem> {
    let id = path_id(id)?;
    let key = idempotency_key(&headers)?;
    Ok(Json(
        lending
            .write_off(&caller, &id, &key, trace_parent(&headers))
            .await
            .map_err(problem)?
            .into(),
    ))
}

/// A business date to close.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EodRequest {
    /// YYYY-MM-DD, before today.
    date: String,
}

/// End of day for loans: accrual, late interest, instalments billed, days past due, status
/// and notices, for every serviced loan. Idempotent per date; resumable. Needs `loans:eod`.
#[utoipa::path(post, path = "/v1/loans/eod", tag = "loans", request_body = EodRequest,
    responses((status = 200, body = Object), (status = 409, body = Problem)))]
async fn end_of_day(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<loans::EodReport>, Problem> {
    let req: EodRequest = json_body(body, BODY_BYTES_MAX)?;
    let date = date(&req.date, "date")?;
    Ok(Json(
        lending
            .end_of_day(&caller, date, trace_parent(&headers))
            .await
            .map_err(problem)?,
    ))
}

/// The queue's query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    limit: Option<u32>,
}

/// The collections queue, most urgent first. Needs `loans:collect`.
#[utoipa::path(get, path = "/v1/loans/collections", tag = "loans",
    params(("limit" = Option<u32>, Query, description = "1 to 500, default 100")),
    responses((status = 200, body = Vec<Object>), (status = 403, body = Problem)))]
async fn queue(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Json<Vec<QueueItem>>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    Ok(Json(
        lending
            .collections_queue(&caller, q.limit.unwrap_or(100))
            .await
            .map_err(problem)?,
    ))
}

/// A promise to pay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromiseRequest {
    /// Whole won, at most what is past due.
    amount: String,
    /// YYYY-MM-DD, within 30 days.
    due_by: String,
}

/// Record a promise to pay. Needs `loans:collect`.
#[utoipa::path(post, path = "/v1/loans/{id}/promises", tag = "loans", request_body = PromiseRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = LoanResponse), (status = 422, body = Problem)))]
async fn promise(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LoanResponse>, Problem> {
    let id = path_id(id)?;
    let req: PromiseRequest = json_body(body, BODY_BYTES_MAX)?;
    let amount = amount(&req.amount, "amount")?;
    let due_by = date(&req.due_by, "due_by")?;
    Ok(Json(
        lending
            .promise(&caller, &id, amount, due_by, trace_parent(&headers))
            .await
            .map_err(problem)?
            .into(),
    ))
}

/// A contact.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    /// `sms`, `call`, `letter`, `visit`, `legal_review`.
    #[schema(value_type = String)]
    action: Action,
    /// At most 500 characters (stored sealed).
    #[serde(default)]
    note: String,
}

/// Record a collector's contact. Needs `loans:collect`.
#[utoipa::path(post, path = "/v1/loans/{id}/contacts", tag = "loans", request_body = ContactRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = LoanResponse), (status = 422, body = Problem)))]
async fn contact(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<LoanResponse>, Problem> {
    let id = path_id(id)?;
    let req: ContactRequest = json_body(body, BODY_BYTES_MAX)?;
    Ok(Json(
        lending
            .contact(&caller, &id, req.action, &req.note, trace_parent(&headers))
            .await
            .map_err(problem)?
            .into(),
    ))
}
