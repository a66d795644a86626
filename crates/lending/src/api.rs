//! The lending HTTP API. Today: `POST /v1/loans/quote` (a schedule computed without creating
//! anything) and credit evaluations under `/v1/credit/evaluations`.

use crate::credit::{Evaluation, EvaluationError, Inputs, Requested};
use crate::schedule::{self, Installment, Terms};
use crate::service::{Lending, LendingError, StoredEvaluation};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
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
use utoipa::{OpenApi, ToSchema};

/// A request body holds at most this many bytes.
pub const BODY_BYTES_MAX: usize = 4 << 10;

/// The lending routes: quotes, and — with the service — credit evaluations.
pub fn router(lending: Option<Arc<Lending>>) -> Router {
    let quotes = Router::new().route("/v1/loans/quote", post(quote));
    let routes = match lending {
        Some(lending) => quotes.merge(
            Router::new()
                .route("/v1/credit/evaluations", post(evaluate))
                .route("/v1/credit/evaluations/{id}", get(evaluation))
                .route("/v1/credit/evaluations/{id}/replay", post(replay))
                .route("/v1/loans/applications", post(apply).get(applications))
                .route("/v1/loans/applications/{id}", get(application))
                .route(
                    "/v1/loans/applications/{id}/decision",
                    post(decide_referred),
                )
                .with_state(lending.clone())
                .merge(crate::loans_api::routes(lending)),
        ),
        None => quotes,
    };
    routes.layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
}

/// An evaluation to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluateRequest {
    customer_id: String,
    /// `annual_income`, `existing_debt`, `existing_annual_debt_service` (whole won, decimal
    /// strings), `delinquencies_12m`, `employment_months`, `internal_months`, `bureau_score`?.
    #[schema(value_type = Object)]
    inputs: Inputs,
    /// The loan asked for: `principal`, `annual_rate`, `term_months`, `method`,
    /// `grace_months`, `start_date`.
    #[schema(value_type = Object)]
    requested: Requested,
}

/// A stored evaluation.
#[derive(Serialize, ToSchema)]
pub struct EvaluationResponse {
    id: String,
    customer_id: String,
    /// RFC 3339.
    created_at: String,
    #[schema(value_type = Object)]
    inputs: Inputs,
    #[schema(value_type = Object)]
    requested: Requested,
    /// `model_version`, `score` (1–1000), `grade` (1–10), `pd`, `contributions`, `reasons`,
    /// `dsr`, `dsr_within_cap`.
    #[schema(value_type = Object)]
    evaluation: Evaluation,
}

impl From<StoredEvaluation> for EvaluationResponse {
    fn from(s: StoredEvaluation) -> Self {
        EvaluationResponse {
            created_at: kernel::event::format_time_us(s.created_at_us).unwrap_or_default(),
            id: s.id,
            customer_id: s.customer_id,
            inputs: s.inputs,
            requested: s.requested,
            evaluation: s.evaluation,
        }
    }
}

/// A replay's outcome.
#[derive(Serialize, ToSchema)]
pub struct ReplayResponse {
    /// Whether evaluating the stored inputs again under the stored model version gives the
    /// stored result exactly.
    identical: bool,
    #[schema(value_type = Object)]
    stored: Evaluation,
    #[schema(value_type = Object)]
    replayed: Evaluation,
}

/// Evaluate an applicant (stored sealed; needs `credit:evaluate`).
#[utoipa::path(post, path = "/v1/credit/evaluations", tag = "lending", request_body = EvaluateRequest,
    responses((status = 201, body = EvaluationResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn evaluate(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let req: EvaluateRequest = json_body(body, BODY_BYTES_MAX)?;
    let stored = lending
        .evaluate(
            &caller,
            &req.customer_id,
            req.inputs,
            req.requested,
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(EvaluationResponse::from(stored))).into_response())
}

/// A stored evaluation (needs `credit:read`).
#[utoipa::path(get, path = "/v1/credit/evaluations/{id}", tag = "lending", params(("id" = String, Path)),
    responses((status = 200, body = EvaluationResponse), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn evaluation(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<EvaluationResponse>, Problem> {
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    Ok(Json(
        lending.get(&caller, &id).await.map_err(problem)?.into(),
    ))
}

/// Evaluate a stored evaluation's inputs again under its model version (needs `credit:read`).
#[utoipa::path(post, path = "/v1/credit/evaluations/{id}/replay", tag = "lending", params(("id" = String, Path)),
    responses((status = 200, body = ReplayResponse), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn replay(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ReplayResponse>, Problem> {
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    let (stored, replayed) = lending.replay(&caller, &id).await.map_err(problem)?;
    Ok(Json(ReplayResponse {
        identical: stored.evaluation == replayed,
        stored: stored.evaluation,
        replayed,
    }))
}

/// A loan application.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    customer_id: String,
    /// A loan product; the version in force today applies.
    product_code: String,
    #[schema(value_type = Object)]
    inputs: Inputs,
    #[schema(value_type = Object)]
    requested: Requested,
}

/// A loan officer's decision on a referred application.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `approve` or `decline`.
    outcome: String,
    /// Why (1 to 500 characters; stored sealed).
    reason: String,
}

/// The status query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    status: String,
    limit: Option<u32>,
}

/// An application: `status` (`approved`, `referred`, `declined`) and the `decision`
/// (`outcome`: `approve` with `limit` and `annual_rate`, `refer` or `decline` with `reasons`).
#[derive(Serialize, ToSchema)]
#[schema(value_type = Object)]
pub struct ApplicationResponse(crate::service::Application);

/// Apply for a loan: evaluated, decided (approve, refer, decline), stored sealed. Needs
/// `credit:evaluate`.
#[utoipa::path(post, path = "/v1/loans/applications", tag = "lending", request_body = ApplyRequest,
    responses((status = 201, body = ApplicationResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn apply(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let req: ApplyRequest = json_body(body, BODY_BYTES_MAX)?;
    let application = lending
        .apply(
            &caller,
            &req.customer_id,
            &req.product_code,
            req.inputs,
            req.requested,
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(ApplicationResponse(application))).into_response())
}

/// Applications in a status, oldest first (`referred`: the loan officers' queue). Needs
/// `credit:read`.
#[utoipa::path(get, path = "/v1/loans/applications", tag = "lending",
    params(("status" = String, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, body = Vec<ApplicationResponse>), (status = 403, body = Problem)))]
async fn applications(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    query: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<Vec<ApplicationResponse>>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let items = lending
        .applications(&caller, &q.status, q.limit.unwrap_or(50))
        .await
        .map_err(problem)?;
    Ok(Json(items.into_iter().map(ApplicationResponse).collect()))
}

/// An application. Needs `credit:read`.
#[utoipa::path(get, path = "/v1/loans/applications/{id}", tag = "lending", params(("id" = String, Path)),
    responses((status = 200, body = ApplicationResponse), (status = 404, body = Problem)))]
async fn application(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ApplicationResponse>, Problem> {
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    Ok(Json(ApplicationResponse(
        lending.application(&caller, &id).await.map_err(problem)?,
    )))
}

/// A loan officer decides a referred application. Needs `credit:decide`.
#[utoipa::path(post, path = "/v1/loans/applications/{id}/decision", tag = "lending",
    request_body = DecisionRequest, params(("id" = String, Path)),
    responses((status = 200, body = ApplicationResponse), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn decide_referred(
    State(lending): State<Arc<Lending>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ApplicationResponse>, Problem> {
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    let req: DecisionRequest = json_body(body, BODY_BYTES_MAX)?;
    let approve = match req.outcome.as_str() {
        "approve" => true,
        "decline" => false,
        _ => {
            return Err(
                Problem::new(422, "invalid_outcome", "The request breaks a rule")
                    .with_detail("`outcome` is `approve` or `decline`"),
            );
        }
    };
    let application = lending
        .decide_referred(&caller, &id, approve, &req.reason, trace_parent(&headers))
        .await
        .map_err(problem)?;
    Ok(Json(ApplicationResponse(application)))
}

/// Maps an error to its problem, once.
pub fn problem(error: LendingError) -> Problem {
    let detail = error.to_string();
    match &error {
        LendingError::Evaluation(EvaluationError::Terms(t)) => {
            Problem::new(422, t.code, "The loan terms break a rule").with_detail(detail)
        }
        LendingError::Evaluation(EvaluationError::NoIncome) => {
            Problem::new(422, "invalid_annual_income", "No income").with_detail(detail)
        }
        LendingError::Evaluation(e) => {
            tracing::error!(error = %e, "lending: the credit model cannot be applied");
            Problem::new(
                500,
                "invalid_credit_model",
                "The credit model cannot be applied",
            )
            .with_detail(detail)
        }
        LendingError::NotFound => Problem::not_found("evaluation_not_found", detail),
        LendingError::ApplicationNotFound => Problem::not_found("application_not_found", detail),
        LendingError::ProductNotAvailable => {
            Problem::new(422, "product_not_available", "No such loan product is sold")
                .with_detail(detail)
        }
        LendingError::NotReferred(_) => Problem::new(
            409,
            "application_not_referred",
            "The application is not referred",
        )
        .with_detail(detail),
        LendingError::Invalid(code, _) => {
            Problem::new(422, code, "The request breaks a rule").with_detail(detail)
        }
        LendingError::CustomerNotFound => {
            Problem::new(422, "customer_not_found", "No such customer").with_detail(detail)
        }
        LendingError::CustomerErased => {
            Problem::new(409, "customer_erased", "The customer was erased").with_detail(detail)
        }
        LendingError::ModelVersionReused(_) => Problem::new(
            500,
            "invalid_credit_model",
            "The credit model cannot be registered",
        )
        .with_detail(detail),
        LendingError::Forbidden(_) => {
            Problem::new(403, "permission_denied", "Permission denied").with_detail(detail)
        }
        LendingError::Peer(e) => {
            tracing::warn!(error = %e, "lending: a peer service is unavailable");
            Problem::unavailable(format!("{} is unavailable; retry later", e.service))
        }
        LendingError::LoanNotFound => Problem::not_found("loan_not_found", detail),
        LendingError::NoOffer(_) => {
            Problem::new(409, "no_offer", "The application has no offer").with_detail(detail)
        }
        LendingError::Conflict(code, _) => {
            Problem::new(409, code, "The request conflicts with the loan's state")
                .with_detail(detail)
        }
        LendingError::ContractRefused(code, _) => {
            Problem::new(422, code, "The contract was refused").with_detail(detail)
        }
        LendingError::LedgerRefused(code) if code == "exceeds_credits" => Problem::new(
            422,
            "insufficient_funds",
            "The deposit account cannot pay this",
        )
        .with_detail("the loan's deposit account does not hold enough; nothing moved"),
        LendingError::LedgerRefused(_) => {
            Problem::new(409, "ledger_refused", "The ledger refused the postings")
                .with_detail(detail)
        }
        LendingError::Ledger(e) => {
            tracing::warn!(error = %e, "lending: the ledger is unavailable");
            Problem::unavailable("the ledger is unavailable; retry with the same Idempotency-Key")
        }
        LendingError::NotServicing => {
            Problem::new(404, "loans_not_served", "Loans are not served here").with_detail(detail)
        }
        LendingError::Busy => Problem::unavailable("the loan is busy; retry"),
        LendingError::Vault(e) => {
            tracing::error!(error = %e, "lending: the vault failed");
            Problem::unavailable("the vault is unavailable; retry later")
        }
        LendingError::Store(e) => {
            tracing::error!(error = %e, "lending: storage failed");
            Problem::unavailable("lending storage is unavailable; retry later")
        }
    }
}

/// What to quote.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// Whole won, a decimal string.
    #[schema(example = "10000000")]
    principal: String,
    /// Annual rate, a decimal string (at most six places, at most the legal maximum 0.20).
    #[schema(value_type = String, example = "0.055")]
    annual_rate: Decimal,
    /// Instalments (1 to 480).
    term_months: u32,
    /// `equal_payment` (원리금균등), `equal_principal` (원금균등) or `bullet` (만기일시).
    method: RepaymentMethod,
    /// Leading interest-only months (거치기간); default 0.
    #[serde(default)]
    grace_months: u32,
    /// YYYY-MM-DD: the loan's start (disbursement); default today (Seoul).
    start_date: Option<String>,
}

/// One instalment (amounts in whole won, as decimal strings).
#[derive(Serialize, ToSchema)]
pub struct InstallmentResponse {
    number: u32,
    due_date: String,
    principal: String,
    interest: String,
    payment: String,
    /// The balance after it.
    balance: String,
}

impl From<&Installment> for InstallmentResponse {
    fn from(i: &Installment) -> Self {
        InstallmentResponse {
            number: i.number,
            due_date: i.due_date.to_string(),
            principal: i.principal.to_string(),
            interest: i.interest.to_string(),
            payment: i.payment.to_string(),
            balance: i.balance.to_string(),
        }
    }
}

/// A quoted schedule.
#[derive(Serialize, ToSchema)]
pub struct QuoteResponse {
    installments: Vec<InstallmentResponse>,
    /// Σ interest.
    total_interest: String,
    /// Σ payments.
    total_payment: String,
}

/// Quote a repayment schedule without creating anything.
#[utoipa::path(post, path = "/v1/loans/quote", tag = "lending", request_body = QuoteRequest,
    responses((status = 200, body = QuoteResponse), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn quote(body: Result<Bytes, BytesRejection>) -> Result<Json<QuoteResponse>, Problem> {
    let req: QuoteRequest = json_body(body, BODY_BYTES_MAX)?;
    let invalid = |code: &str, detail: String| {
        Problem::new(422, code, "The loan terms break a rule").with_detail(detail)
    };
    let principal = kernel::decimal::parse_u128(&req.principal).ok_or_else(|| {
        invalid(
            "invalid_principal",
            "`principal` is whole won as a decimal string".into(),
        )
    })?;
    let start_date = match &req.start_date {
        Some(text) => products::service::parse_date(text).ok_or_else(|| {
            Problem::new(400, "invalid_date", "The date is not valid")
                .with_detail("`start_date` is YYYY-MM-DD")
        })?,
        None => store::sql::today_kst(),
    };
    let installments = schedule::schedule(&Terms {
        principal,
        annual_rate: req.annual_rate,
        term_months: req.term_months,
        method: req.method,
        grace_months: req.grace_months,
        start_date,
    })
    .map_err(|e| invalid(e.code, e.detail))?;
    let total_interest: u128 = installments.iter().map(|i| i.interest).sum();
    let total_payment: u128 = installments.iter().map(|i| i.payment).sum();
    Ok(Json(QuoteResponse {
        installments: installments.iter().map(Into::into).collect(),
        total_interest: total_interest.to_string(),
        total_payment: total_payment.to_string(),
    }))
}

/// The lending OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        quote,
        evaluate,
        evaluation,
        replay,
        apply,
        applications,
        application,
        decide_referred,
        crate::loans_api::offer,
        crate::loans_api::accept,
        crate::loans_api::list,
        crate::loans_api::loan,
        crate::loans_api::schedule,
        crate::loans_api::payoff,
        crate::loans_api::disburse,
        crate::loans_api::repay,
        crate::loans_api::prepay,
        crate::loans_api::restructure,
        crate::loans_api::write_off,
        crate::loans_api::end_of_day,
        crate::loans_api::queue,
        crate::loans_api::promise,
        crate::loans_api::contact
    ),
    components(schemas(
        QuoteRequest,
        QuoteResponse,
        InstallmentResponse,
        RepaymentMethod,
        EvaluateRequest,
        EvaluationResponse,
        ReplayResponse,
        ApplyRequest,
        DecisionRequest,
        ApplicationResponse,
        crate::loans_api::OfferResponse,
        crate::loans_api::AcceptRequest,
        crate::loans_api::LoanResponse,
        crate::loans_api::LoanPage,
        crate::loans_api::BalancesResponse,
        crate::loans_api::DueResponse,
        crate::loans_api::ScheduleResponse,
        crate::loans_api::DueItem,
        crate::loans_api::PayoffResponse,
        crate::loans_api::ReceiptResponse,
        crate::loans_api::RepayRequest,
        crate::loans_api::PrepayRequest,
        crate::loans_api::RestructureRequest,
        crate::loans_api::EodRequest,
        crate::loans_api::PromiseRequest,
        crate::loans_api::ContactRequest,
        Problem
    ))
)]
pub struct ApiDoc;
