//! The contracts HTTP API under `/v1/contracts`, its problem mapping and OpenAPI document.

use crate::service::{
    ContractError, Contracts, Filter, NewContract, NewSignature, PAGE_MAX, Particulars, Record,
    Signature,
};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::Problem;
use kernel::http::{client_address, json_body, path_problem, query_problem, trace_parent};
use products::service::parse_date;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// A request body holds at most this many bytes.
pub const BODY_BYTES_MAX: usize = 16 << 10;

/// The contracts routes.
pub fn router(contracts: Arc<Contracts>) -> Router {
    Router::new()
        .route("/v1/contracts", post(issue).get(list))
        .route("/v1/contracts/{id}", get(contract))
        .route("/v1/contracts/{id}/document", get(document))
        .route("/v1/contracts/{id}/signatures", post(sign))
        .route("/v1/contracts/{id}/cancel", post(cancel))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(contracts)
}

/// A contract to issue.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    customer_id: String,
    product_code: String,
    /// The version; absent: the one in force today.
    product_version: Option<i64>,
    /// What it is about (a deposit account's or a loan's id).
    subject: Option<String>,
    #[serde(default)]
    particulars: Particulars,
}

/// A signature.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// `customer` or `bank`.
    role: String,
    /// Who signs: the customer's id or the bank officer's.
    signer: String,
    /// `app`, `web` or `branch`.
    method: String,
    /// The SHA-256 (64 lowercase hex digits) of the document the signer was shown.
    document_sha256: String,
}

/// A contract.
#[derive(Serialize, ToSchema)]
pub struct ContractResponse {
    id: String,
    customer_id: String,
    product_code: String,
    product_version: i64,
    subject: Option<String>,
    /// Amount, term, grade, the annual rate they give, and the SHA-256 of the version's terms.
    #[schema(value_type = Object)]
    particulars: serde_json::Value,
    /// `issued`, `signed` or `cancelled`.
    status: String,
    /// The document's SHA-256 (hex): what a signer signs.
    document_sha256: String,
    document_bytes: i64,
    issued_on: String,
    /// RFC 3339.
    issued_at: String,
    /// RFC 3339, once the customer signed.
    signed_at: Option<String>,
    signatures: Vec<Signature>,
}

impl From<Record> for ContractResponse {
    fn from(r: Record) -> Self {
        let time = |us: i64| kernel::event::format_time_us(us).unwrap_or_default();
        ContractResponse {
            id: r.id,
            customer_id: r.customer_id,
            product_code: r.product_code,
            product_version: r.product_version,
            subject: r.subject,
            particulars: r.particulars,
            status: r.status,
            document_sha256: r.document_sha256,
            document_bytes: r.document_bytes,
            issued_on: r.issued_on,
            issued_at: time(r.issued_at_us),
            signed_at: r.signed_at_us.map(time),
            signatures: r.signatures,
        }
    }
}

/// A page of contracts.
#[derive(Serialize, ToSchema)]
pub struct ContractPage {
    items: Vec<ContractResponse>,
    /// Pass as `after` for the next page; null on the last.
    next: Option<String>,
}

/// The listing query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    customer_id: Option<String>,
    product_code: Option<String>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    id.map(|Path(id)| id)
        .map_err(|e| path_problem(e, "invalid_path"))
}

/// Issue a contract: its document is generated and stored with its SHA-256.
#[utoipa::path(post, path = "/v1/contracts", tag = "contracts", request_body = IssueRequest,
    responses((status = 201, body = ContractResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn issue(
    State(contracts): State<Arc<Contracts>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let req: IssueRequest = json_body(body, BODY_BYTES_MAX)?;
    let record = contracts
        .issue(
            NewContract {
                customer_id: req.customer_id,
                product_code: req.product_code,
                product_version: req.product_version,
                subject: req.subject,
                particulars: req.particulars,
            },
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(ContractResponse::from(record))).into_response())
}

/// Contracts by customer, product, status and issue date (`from`, `to`: YYYY-MM-DD).
#[utoipa::path(get, path = "/v1/contracts", tag = "contracts",
    params(("customer_id" = Option<String>, Query), ("product_code" = Option<String>, Query),
           ("status" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query),
           ("after" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses((status = 200, body = ContractPage), (status = 400, body = Problem)))]
async fn list(
    State(contracts): State<Arc<Contracts>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ContractPage>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let date = |text: Option<String>| {
        text.map(|t| {
            parse_date(&t).ok_or_else(|| {
                Problem::new(400, "invalid_date", "The date is not valid")
                    .with_detail("dates are YYYY-MM-DD")
            })
        })
        .transpose()
    };
    if let Some(status) = &q.status
        && !matches!(status.as_str(), "issued" | "signed" | "cancelled")
    {
        return Err(
            Problem::new(400, "invalid_query", "The query string is not valid")
                .with_detail("`status` is `issued`, `signed` or `cancelled`"),
        );
    }
    let limit = q.limit.unwrap_or(50).clamp(1, PAGE_MAX);
    let filter = Filter {
        customer_id: q.customer_id,
        product_code: q.product_code,
        status: q.status,
        from: date(q.from)?,
        to: date(q.to)?,
        after: q.after,
        limit,
    };
    let records = contracts.list(&filter).await.map_err(problem)?;
    let next = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.id.clone()))
        .flatten();
    Ok(Json(ContractPage {
        items: records.into_iter().map(Into::into).collect(),
        next,
    }))
}

/// A contract with its signatures.
#[utoipa::path(get, path = "/v1/contracts/{id}", tag = "contracts", params(("id" = String, Path)),
    responses((status = 200, body = ContractResponse), (status = 404, body = Problem)))]
async fn contract(
    State(contracts): State<Arc<Contracts>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ContractResponse>, Problem> {
    let id = path_id(id)?;
    Ok(Json(contracts.get(&id).await.map_err(problem)?.into()))
}

/// The document (`application/pdf`), served only if it still matches its SHA-256, which the
/// `Repr-Digest` header carries (RFC 9530).
#[utoipa::path(get, path = "/v1/contracts/{id}/document", tag = "contracts", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/pdf", description = "the document"), (status = 404, body = Problem), (status = 500, body = Problem)))]
async fn document(
    State(contracts): State<Arc<Contracts>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let id = path_id(id)?;
    let (record, bytes) = contracts.document(&id).await.map_err(problem)?;
    let digest = digest_header(&record.document_sha256);
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(v) = HeaderValue::from_str(&digest) {
        headers.insert("repr-digest", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", record.document_sha256)) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&format!("inline; filename=\"contract-{}.pdf\"", record.id))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `sha-256=:<base64>:` from a hex digest.
fn digest_header(hex: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Sign: the signer names the SHA-256 of the document they were shown. Recorded with the time,
/// the client's address and user agent; the customer's signature makes the contract `signed`.
#[utoipa::path(post, path = "/v1/contracts/{id}/signatures", tag = "contracts", request_body = SignRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = ContractResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn sign(
    State(contracts): State<Arc<Contracts>>,
    id: Result<Path<String>, PathRejection>,
    parts: axum::http::request::Parts,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ContractResponse>, Problem> {
    let id = path_id(id)?;
    let req: SignRequest = json_body(body, BODY_BYTES_MAX)?;
    let user_agent: String = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let record = contracts
        .sign(
            &id,
            NewSignature {
                role: req.role,
                signer: req.signer,
                method: req.method,
                document_sha256: req.document_sha256,
                client_address: client_address(&parts),
                user_agent,
            },
            trace_parent(&parts.headers),
        )
        .await
        .map_err(problem)?;
    Ok(Json(record.into()))
}

/// Cancel a contract the customer has not signed.
#[utoipa::path(post, path = "/v1/contracts/{id}/cancel", tag = "contracts", params(("id" = String, Path)),
    responses((status = 200, body = ContractResponse), (status = 409, body = Problem)))]
async fn cancel(
    State(contracts): State<Arc<Contracts>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<ContractResponse>, Problem> {
    let id = path_id(id)?;
    let record = contracts
        .cancel(&id, trace_parent(&headers))
        .await
        .map_err(problem)?;
    Ok(Json(record.into()))
}

/// Maps an error to its problem, once.
pub fn problem(error: ContractError) -> Problem {
    let detail = error.to_string();
    match &error {
        ContractError::Invalid(code, _) => {
            Problem::new(422, code, "The request breaks a rule").with_detail(detail)
        }
        ContractError::NotFound => Problem::not_found("contract_not_found", detail),
        ContractError::CustomerNotFound => {
            Problem::new(422, "customer_not_found", "No such customer").with_detail(detail)
        }
        ContractError::CustomerErased => {
            Problem::new(409, "customer_erased", "The customer was erased").with_detail(detail)
        }
        ContractError::ProductNotAvailable => Problem::new(
            422,
            "product_not_available",
            "No such product version is sold",
        )
        .with_detail(detail),
        ContractError::HashMismatch { .. } => {
            Problem::new(409, "hash_mismatch", "The signature names another document")
                .with_detail(detail)
        }
        ContractError::WrongStatus(status) => Problem::new(
            409,
            if status == "cancelled" {
                "contract_cancelled"
            } else {
                "contract_signed"
            },
            "Not allowed in the contract's state",
        )
        .with_detail(detail),
        ContractError::DocumentTampered => {
            Problem::new(500, "document_tampered", "The stored document was altered")
                .with_detail(detail)
        }
        ContractError::DocumentMissing => {
            Problem::new(500, "document_missing", "The stored document is missing")
                .with_detail(detail)
        }
        ContractError::Peer(e) => {
            tracing::warn!(error = %e, "contracts: a peer service is unavailable");
            Problem::unavailable(format!("{} is unavailable; retry later", e.service))
        }
        ContractError::Store(e) => {
            tracing::error!(error = %e, "contracts: storage failed");
            Problem::unavailable("contract storage is unavailable; retry later")
        }
    }
}

/// The contracts OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(issue, list, contract, document, sign, cancel),
    components(schemas(
        IssueRequest,
        SignRequest,
        ContractResponse,
        ContractPage,
        Particulars,
        Signature,
        Problem
    ))
)]
pub struct ApiDoc;
