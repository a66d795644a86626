//! The lending HTTP API. Today: `POST /v1/loans/quote`, a schedule computed without creating
//! anything.

use crate::schedule::{self, Installment, Terms};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::routing::post;
use kernel::Problem;
use kernel::http::json_body;
use products::model::RepaymentMethod;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

/// A request body holds at most this many bytes.
pub const BODY_BYTES_MAX: usize = 4 << 10;

/// The lending routes.
pub fn router() -> Router {
    Router::new()
        .route("/v1/loans/quote", post(quote))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
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
    paths(quote),
    components(schemas(
        QuoteRequest,
        QuoteResponse,
        InstallmentResponse,
        RepaymentMethod,
        Problem
    ))
)]
pub struct ApiDoc;
