//! `/v1/auth/…`: who am I, and API keys (create — the secret shown once —, list, revoke).
//! Served by the edge itself, behind the gate, which has already checked `auth:keys`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use kernel::Problem;
use kernel::http::{json_body, path_problem};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

use crate::keys::{ApiKey, KeyError, Principal};

/// `GET /v1/audit/events` over `log`.
pub fn audit_router(log: audit::log::AuditLog) -> Router {
    Router::new()
        .route("/v1/audit/events", get(audit_events))
        .with_state(log)
}

/// Which audit entries to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this principal's (`key:<id>`, `anonymous`).
    pub principal: Option<String>,
    /// Only this action (`GET /v1/customers/{id}`).
    pub action: Option<String>,
    /// Only this outcome (HTTP status).
    pub outcome: Option<u16>,
    /// Only this kind: `request` or `regulated_read`.
    pub kind: Option<String>,
    /// At or after this time (RFC 3339).
    pub from: Option<String>,
    /// Before this time (RFC 3339).
    pub to: Option<String>,
    /// After this entry (the previous page's `next`).
    pub after: Option<String>,
    /// At most this many (1–1000, default 100).
    pub limit: Option<i64>,
}

/// A page of audit entries, oldest first.
#[derive(Serialize, ToSchema)]
pub struct AuditPage {
    /// Each with its number, its hash and the previous entry's.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<audit::Entry>,
    /// The cursor of the next page (`after`), or null on the last one.
    pub next: Option<String>,
}

#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn audit_events(
    State(log): State<audit::log::AuditLog>,
    query: Result<axum::extract::Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AuditPage>, Problem> {
    let axum::extract::Query(q) = query.map_err(kernel::http::query_problem)?;
    let invalid = |detail: &str| {
        Problem::new(400, "invalid_query", "The query string is not valid")
            .with_detail(detail.to_owned())
    };
    let time = |text: &Option<String>, name: &str| -> Result<Option<i64>, Problem> {
        text.as_deref()
            .map(|t| {
                parse_time(t).map_err(|_| invalid(&format!("`{name}` must be an RFC 3339 time")))
            })
            .transpose()
    };
    if q.kind
        .as_deref()
        .is_some_and(|k| k != "request" && k != "regulated_read")
    {
        return Err(invalid("`kind` is `request` or `regulated_read`"));
    }
    let after = match &q.after {
        None => None,
        Some(a) => Some(
            a.parse::<i64>()
                .ok()
                .filter(|a| *a >= 0)
                .ok_or_else(|| invalid("`after` is an entry number"))?,
        ),
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=audit::log::PAGE_MAX).contains(&limit) {
        return Err(invalid("`limit` is 1 to 1000"));
    }
    let filter = audit::log::Filter {
        principal: q.principal,
        action: q.action,
        outcome: q.outcome,
        kind: q.kind,
        from_us: time(&q.from, "from")?,
        to_us: time(&q.to, "to")?,
        after,
        limit,
    };
    let (events, next) = log.page(&filter).await.map_err(|e| {
        tracing::error!(error = %e, "audit: reading failed");
        Problem::unavailable("the audit trail could not be read; try again shortly")
    })?;
    Ok(axum::Json(AuditPage {
        events,
        next: next.map(|n| n.to_string()),
    }))
}

/// `GET /v1/guard/findings` over the gate's detectors; `GET /v1/guard/blocks` and
/// `DELETE /v1/guard/blocks/{subject}` over its automatic response.
pub fn guard_router(gate: Arc<crate::Gate>, kept: Arc<crate::findings::Findings>) -> Router {
    Router::new()
        .route("/v1/guard/findings", get(findings))
        .with_state((gate.clone(), kept))
        .merge(
            Router::new()
                .route("/v1/guard/blocks", get(blocks))
                .route("/v1/guard/blocks/{subject}", delete(lift))
                .with_state(gate),
        )
}

/// The blocks in force.
#[derive(Serialize, ToSchema)]
pub struct Blocks {
    /// Oldest first.
    pub blocks: Vec<crate::blocks::Block>,
}

#[utoipa::path(get, path = "/v1/guard/blocks", tag = "guard",
    responses((status = 200, body = Blocks), (status = 403, body = Problem)))]
async fn blocks(State(gate): State<Arc<crate::Gate>>) -> axum::Json<Blocks> {
    let now = store::sql::now_us();
    // Every replica's, as of now; else what this one holds.
    if let Err(e) = gate.blocks().sync(gate.keys().store(), now).await {
        tracing::warn!(error = %e, "guard: cannot read the shared blocks; listing this edge's");
    }
    axum::Json(Blocks {
        blocks: gate.blocks().list(now),
    })
}

#[utoipa::path(delete, path = "/v1/guard/blocks/{subject}", tag = "guard",
    params(("subject" = String, Path, description = "`address:<ip>` or `principal:<id>`")),
    responses((status = 204), (status = 404, body = Problem), (status = 403, body = Problem),
        (status = 503, body = Problem)))]
async fn lift(
    State(gate): State<Arc<crate::Gate>>,
    principal: Option<Extension<Arc<Principal>>>,
    subject: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let Extension(by) = principal.ok_or_else(no_principal)?;
    let Path(subject) = subject.map_err(|e| path_problem(e, "invalid_path"))?;
    let lifted = gate
        .blocks()
        .lift_everywhere(gate.keys().store(), &subject, store::sql::now_us())
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "guard: cannot lift a block in the database");
            Problem::unavailable("the block could not be lifted; retry")
        })?;
    if !lifted {
        return Err(Problem::not_found(
            "block_not_found",
            format!("no block is in force for {subject}"),
        ));
    }
    tracing::warn!(%subject, by = %by.id, "guard: block lifted");
    Ok(StatusCode::NO_CONTENT)
}

/// The threat detectors' findings.
#[derive(Serialize, ToSchema)]
pub struct Findings {
    /// In the order they began: kind, severity, principal, address, evidence, first and last
    /// seen (microseconds since the Unix epoch), count — every edge replica's.
    pub findings: Vec<crate::findings::StoredFinding>,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

/// Which findings to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    /// After this cursor (the previous page's `next`).
    pub after: Option<String>,
    /// At most this many (1–1000, default 1000).
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/guard/findings", tag = "guard", params(FindingsQuery),
    responses((status = 200, body = Findings), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn findings(
    State((gate, kept)): State<(Arc<crate::Gate>, Arc<crate::findings::Findings>)>,
    query: Result<axum::extract::Query<FindingsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<Findings>, Problem> {
    let axum::extract::Query(q) = query.map_err(kernel::http::query_problem)?;
    let after = match q.after.as_deref() {
        None => None,
        Some(text) => Some(crate::findings::cursor(text).ok_or_else(|| {
            Problem::new(400, "invalid_query", "The query is not valid")
                .with_detail("`after` must be a previous page's `next`")
        })?),
    };
    let unavailable = |e: sqlx::Error| {
        tracing::error!(error = %e, "guard: reading the findings");
        Problem::new(
            503,
            "findings_unavailable",
            "The findings cannot be read now",
        )
    };
    // What this edge found up to now, then every edge's.
    kept.flush(&gate).await.map_err(unavailable)?;
    let (findings, next) = kept
        .list(after, q.limit.unwrap_or(crate::findings::LIST_MAX))
        .await
        .map_err(unavailable)?;
    Ok(axum::Json(Findings { findings, next }))
}

/// A request body holds at most this many bytes.
const BODY_BYTES_MAX: usize = 4 << 10;

/// The auth routes over the gate's keys (each key made is told to its detectors).
pub fn router(gate: Arc<crate::Gate>) -> Router {
    Router::new()
        .route("/v1/auth/whoami", get(whoami))
        .route("/v1/auth/api-keys", get(list).post(create))
        .route("/v1/auth/api-keys/{id}", delete(revoke))
        .with_state(gate)
}

/// Who the credential belongs to.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// `key:<id>`.
    pub principal: String,
    /// The key's name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// What the roles grant.
    pub permissions: Vec<String>,
    /// For a customer's credential, the customer whose records alone it reads.
    pub customer: Option<String>,
}

#[utoipa::path(get, path = "/v1/auth/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem)))]
async fn whoami(
    principal: Option<Extension<Arc<Principal>>>,
) -> Result<axum::Json<WhoAmI>, Problem> {
    let Extension(p) = principal.ok_or_else(no_principal)?;
    Ok(axum::Json(WhoAmI {
        principal: p.id.clone(),
        name: p.name.clone(),
        roles: p.roles.iter().map(|r| r.name().to_owned()).collect(),
        permissions: p.permissions.iter().map(|p| (*p).to_owned()).collect(),
        customer: p.customer.clone(),
    }))
}

/// A key to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What it is for (1–100 characters).
    pub name: String,
    /// Roles: `customer`, `teller`, `loan_officer`, `risk_analyst`, `auditor`, `admin`. A
    /// caller grants only roles whose permissions it holds itself.
    pub roles: Vec<String>,
    /// When it stops working (RFC 3339); never, if absent.
    pub expires_at: Option<String>,
    /// For a key with the role `customer` (and it alone): the customer it belongs to. Its
    /// reads are limited to that customer's records.
    pub customer: Option<String>,
}

/// A key just created: `key` is shown this once and never again.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The whole key, for `Authorization: Bearer <key>`.
    pub key: String,
    /// The key as lists show it.
    #[serde(flatten)]
    pub record: ApiKey,
}

/// The keys.
#[derive(Serialize, ToSchema)]
pub struct ApiKeys {
    /// Oldest first; revoked ones included.
    pub keys: Vec<ApiKey>,
}

#[utoipa::path(post, path = "/v1/auth/api-keys", tag = "auth", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn create(
    State(gate): State<Arc<crate::Gate>>,
    principal: Option<Extension<Arc<Principal>>>,
    client: Option<Extension<crate::gate::ClientAddress>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let keys = gate.keys();
    let Extension(by) = principal.ok_or_else(no_principal)?;
    let req: CreateApiKey = json_body(body, BODY_BYTES_MAX)?;
    let expires_at_us = match &req.expires_at {
        None => None,
        Some(text) => Some(parse_time(text)?),
    };
    let made = keys
        .create(
            &by,
            &req.name,
            &req.roles,
            expires_at_us,
            req.customer.as_deref(),
        )
        .await
        .map_err(problem)?;
    tracing::info!(
        key = %made.record.id,
        roles = ?made.record.roles,
        by = %by.id,
        "api key created"
    );
    gate.granted(
        &by,
        client
            .as_ref()
            .map_or("unknown", |Extension(c)| c.0.as_str()),
        &format!("key:{}", made.record.id),
        &made.record.roles,
    );
    let created = CreatedApiKey {
        key: made.key,
        record: made.record,
    };
    Ok((StatusCode::CREATED, axum::Json(created)).into_response())
}

#[utoipa::path(get, path = "/v1/auth/api-keys", tag = "auth",
    responses((status = 200, body = ApiKeys), (status = 403, body = Problem)))]
async fn list(State(gate): State<Arc<crate::Gate>>) -> axum::Json<ApiKeys> {
    axum::Json(ApiKeys {
        keys: gate.keys().list(),
    })
}

#[utoipa::path(delete, path = "/v1/auth/api-keys/{id}", tag = "auth", params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)))]
async fn revoke(
    State(gate): State<Arc<crate::Gate>>,
    principal: Option<Extension<Arc<Principal>>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<axum::Json<ApiKey>, Problem> {
    let Extension(by) = principal.ok_or_else(no_principal)?;
    let Path(id) = id.map_err(|e| path_problem(e, "invalid_path"))?;
    let revoked = gate.keys().revoke(&id, &by).await.map_err(problem)?;
    tracing::info!(key = %revoked.id, by = %by.id, "api key revoked");
    Ok(axum::Json(revoked))
}

fn parse_time(text: &str) -> Result<i64, Problem> {
    let invalid = || {
        Problem::new(400, "invalid_body", "The request body is not valid")
            .with_detail("`expires_at` must be an RFC 3339 time, e.g. 2027-01-01T00:00:00+09:00")
    };
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| invalid())?;
    i64::try_from(at.unix_timestamp_nanos() / 1000).map_err(|_| invalid())
}

/// The gate always sets the principal on these routes; without one the router was mounted
/// without the gate, which must fail closed.
fn no_principal() -> Problem {
    Problem::new(401, "unauthenticated", "Authentication required")
        .with_detail("send a valid API key or token as `Authorization: Bearer <credential>`")
}

fn problem(e: KeyError) -> Problem {
    match e {
        KeyError::Invalid(detail) => {
            Problem::new(400, "invalid_api_key_request", "The key cannot be created")
                .with_detail(detail)
        }
        KeyError::NotGrantable(role) => Problem::new(
            403,
            "role_not_grantable",
            "Role not grantable",
        )
        .with_detail(format!(
            "role `{role}` grants permissions you do not hold; nobody grants more than they have"
        )),
        KeyError::NotFound(id) => {
            Problem::not_found("api_key_not_found", format!("no API key has id {id}"))
        }
        other => {
            tracing::error!(error = %other, "api keys: storage failed");
            Problem::unavailable("the key store failed; try again shortly")
        }
    }
}

/// The auth routes' OpenAPI description.
#[derive(OpenApi)]
#[openapi(
    paths(whoami, create, list, revoke, audit_events, findings, blocks, lift),
    components(schemas(
        WhoAmI,
        CreateApiKey,
        CreatedApiKey,
        ApiKeys,
        ApiKey,
        AuditPage,
        Findings,
        Blocks,
        crate::blocks::Block,
        crate::findings::StoredFinding,
        Problem
    ))
)]
pub struct ApiDoc;
