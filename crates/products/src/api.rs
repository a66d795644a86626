//! The products HTTP API under `/v1/products`, its problem mapping and OpenAPI document.

use crate::model::{self, Kind, Status, Terms};
use crate::service::{NewProduct, PERMISSION_MANAGE, ProductError, Products, Version, parse_date};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kernel::Problem;
use kernel::http::{Caller, json_body, path_problem, query_problem, trace_parent};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use store::sql::today_kst;
use time::Date;
use utoipa::{OpenApi, ToSchema};

/// A request body holds at most this many bytes.
pub const BODY_BYTES_MAX: usize = 64 << 10;

/// The products routes.
pub fn router(products: Arc<Products>) -> Router {
    Router::new()
        .route("/v1/products", post(create).get(catalogue))
        .route("/v1/products/{code}", get(product))
        .route("/v1/products/{code}/rate", get(rate))
        .route("/v1/products/{code}/versions", post(add_version))
        .route(
            "/v1/products/{code}/versions/{version}",
            get(version).put(edit_draft),
        )
        .route(
            "/v1/products/{code}/versions/{version}/publish",
            post(publish),
        )
        .route(
            "/v1/products/{code}/versions/{version}/retire",
            post(retire),
        )
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(products)
}

/// A new product and its first (draft) version.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// `[A-Z0-9-]{2,40}`.
    code: String,
    /// What it is.
    kind: Kind,
    /// Its name.
    name: String,
    /// `YYYY-MM-DD`: the first day the version would be in force.
    effective_from: String,
    /// The terms.
    terms: Terms,
}

/// A draft's terms and effective date.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftRequest {
    /// `YYYY-MM-DD`.
    effective_from: String,
    /// The terms.
    terms: Terms,
}

/// A product version.
#[derive(Serialize, ToSchema)]
pub struct VersionResponse {
    code: String,
    kind: Kind,
    name: String,
    version: i64,
    /// `draft`, `published` or `retired`.
    status: String,
    effective_from: String,
    terms: Terms,
    /// RFC 3339, once published.
    published_at: Option<String>,
}

impl From<Version> for VersionResponse {
    fn from(v: Version) -> VersionResponse {
        VersionResponse {
            code: v.code,
            kind: v.kind,
            name: v.name,
            version: v.version,
            status: v.status.name().to_owned(),
            effective_from: v.effective_from.to_string(),
            terms: v.terms,
            published_at: v
                .published_at_us
                .and_then(|us| kernel::event::format_time_us(us).ok()),
        }
    }
}

/// A product: every version, and the one in force today.
#[derive(Serialize, ToSchema)]
pub struct ProductResponse {
    code: String,
    kind: Kind,
    name: String,
    /// The version sold today, if any.
    in_force: Option<i64>,
    versions: Vec<VersionResponse>,
}

/// The catalogue on a date.
#[derive(Serialize, ToSchema)]
pub struct Catalogue {
    items: Vec<CatalogueItem>,
}

/// One product in the catalogue.
#[derive(Serialize, ToSchema)]
pub struct CatalogueItem {
    code: String,
    kind: Kind,
    name: String,
    /// The version in force on the date, if any.
    in_force: Option<VersionResponse>,
}

/// A rate quote.
#[derive(Serialize, ToSchema)]
pub struct RateResponse {
    /// The version whose terms priced it.
    version: i64,
    /// The annual rate as a decimal fraction, exact.
    annual_rate: String,
}

#[derive(Deserialize)]
struct DateQuery {
    date: Option<String>,
}

#[derive(Deserialize)]
struct RateQuery {
    date: Option<String>,
    term_months: Option<u32>,
    grade: Option<u8>,
}

/// Create a product with a draft first version; needs `products:manage`.
#[utoipa::path(post, path = "/v1/products", tag = "products", request_body = CreateProduct,
    responses((status = 201, body = VersionResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(products): State<Arc<Products>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let req: CreateProduct = json_body(body, BODY_BYTES_MAX)?;
    let from = date(&req.effective_from)?;
    let created = products
        .create(
            &caller,
            NewProduct {
                code: req.code,
                kind: req.kind,
                name: req.name,
                effective_from: from,
                terms: req.terms,
            },
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(VersionResponse::from(created))).into_response())
}

/// The catalogue: every product and the version in force on `date` (default today, KST).
#[utoipa::path(get, path = "/v1/products", tag = "products",
    params(("date" = Option<String>, Query, description = "YYYY-MM-DD")), responses((status = 200, body = Catalogue)))]
async fn catalogue(
    State(products): State<Arc<Products>>,
    query: Result<Query<DateQuery>, QueryRejection>,
) -> Result<Json<Catalogue>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let on = q
        .date
        .as_deref()
        .map(date)
        .transpose()?
        .unwrap_or_else(today_kst);
    let items = products.catalogue(on).await.map_err(problem)?;
    Ok(Json(Catalogue {
        items: items
            .into_iter()
            .map(|(code, kind, name, v)| CatalogueItem {
                code,
                kind,
                name,
                in_force: v.map(Into::into),
            })
            .collect(),
    }))
}

/// A product with every version.
#[utoipa::path(get, path = "/v1/products/{code}", tag = "products", params(("code" = String, Path)),
    responses((status = 200, body = ProductResponse), (status = 404, body = Problem)))]
async fn product(
    State(products): State<Arc<Products>>,
    code: Result<Path<String>, PathRejection>,
) -> Result<Json<ProductResponse>, Problem> {
    let Path(code) = code.map_err(|e| path_problem(e, "invalid_path"))?;
    let versions = products.versions(&code).await.map_err(problem)?;
    let in_force = match products.in_force(&code, today_kst()).await {
        Ok(v) => Some(v.version),
        Err(ProductError::NotInForce) => None,
        Err(e) => return Err(problem(e)),
    };
    let first = &versions[0];
    Ok(Json(ProductResponse {
        code: first.code.clone(),
        kind: first.kind,
        name: first.name.clone(),
        in_force,
        versions: versions.into_iter().map(Into::into).collect(),
    }))
}

/// The annual rate the version in force on `date` gives a term and (for loans) a grade.
#[utoipa::path(get, path = "/v1/products/{code}/rate", tag = "products",
    params(("code" = String, Path), ("date" = Option<String>, Query), ("term_months" = Option<u32>, Query), ("grade" = Option<u8>, Query)),
    responses((status = 200, body = RateResponse), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn rate(
    State(products): State<Arc<Products>>,
    code: Result<Path<String>, PathRejection>,
    query: Result<Query<RateQuery>, QueryRejection>,
) -> Result<Json<RateResponse>, Problem> {
    let Path(code) = code.map_err(|e| path_problem(e, "invalid_path"))?;
    let Query(q) = query.map_err(query_problem)?;
    let on = q
        .date
        .as_deref()
        .map(date)
        .transpose()?
        .unwrap_or_else(today_kst);
    let v = products.in_force(&code, on).await.map_err(problem)?;
    if let Some(range) = &v.terms.term_months {
        match q.term_months {
            Some(m) if m >= range.min && m <= range.max => {}
            _ => {
                return Err(
                    Problem::new(422, "term_not_offered", "The term is not offered").with_detail(
                        format!(
                            "this product is offered for {} to {} months",
                            range.min, range.max
                        ),
                    ),
                );
            }
        }
    }
    if v.kind.is_loan()
        && !q
            .grade
            .is_some_and(|g| v.terms.eligibility.grades.contains(&g))
    {
        return Err(Problem::new(
            422,
            "grade_not_eligible",
            "The credit grade is not eligible",
        )
        .with_detail("a loan is priced for one of the grades its eligibility lists"));
    }
    let annual_rate = model::rate_for(&v.terms, q.term_months, q.grade);
    Ok(Json(RateResponse {
        version: v.version,
        annual_rate: annual_rate.normalize().to_string(),
    }))
}

/// Add a draft version; needs `products:manage`.
#[utoipa::path(post, path = "/v1/products/{code}/versions", tag = "products", request_body = DraftRequest,
    params(("code" = String, Path)), responses((status = 201, body = VersionResponse), (status = 409, body = Problem)))]
async fn add_version(
    State(products): State<Arc<Products>>,
    caller: Caller,
    headers: HeaderMap,
    code: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let Path(code) = code.map_err(|e| path_problem(e, "invalid_path"))?;
    let req: DraftRequest = json_body(body, BODY_BYTES_MAX)?;
    let v = products
        .add_version(
            &caller,
            &code,
            date(&req.effective_from)?,
            req.terms,
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(VersionResponse::from(v))).into_response())
}

/// One version, exactly as published.
#[utoipa::path(get, path = "/v1/products/{code}/versions/{version}", tag = "products",
    params(("code" = String, Path), ("version" = i64, Path)), responses((status = 200, body = VersionResponse), (status = 404, body = Problem)))]
async fn version(
    State(products): State<Arc<Products>>,
    path: Result<Path<(String, i64)>, PathRejection>,
) -> Result<Json<VersionResponse>, Problem> {
    let Path((code, n)) = path.map_err(|e| path_problem(e, "invalid_path"))?;
    Ok(Json(
        products.version(&code, n).await.map_err(problem)?.into(),
    ))
}

/// Replace a draft's terms; needs `products:manage`.
#[utoipa::path(put, path = "/v1/products/{code}/versions/{version}", tag = "products", request_body = DraftRequest,
    params(("code" = String, Path), ("version" = i64, Path)), responses((status = 200, body = VersionResponse), (status = 409, body = Problem)))]
async fn edit_draft(
    State(products): State<Arc<Products>>,
    caller: Caller,
    path: Result<Path<(String, i64)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<VersionResponse>, Problem> {
    let Path((code, n)) = path.map_err(|e| path_problem(e, "invalid_path"))?;
    let req: DraftRequest = json_body(body, BODY_BYTES_MAX)?;
    let v = products
        .edit_draft(&caller, &code, n, date(&req.effective_from)?, req.terms)
        .await
        .map_err(problem)?;
    Ok(Json(v.into()))
}

/// Publish a draft; needs `products:manage`.
#[utoipa::path(post, path = "/v1/products/{code}/versions/{version}/publish", tag = "products",
    params(("code" = String, Path), ("version" = i64, Path)), responses((status = 200, body = VersionResponse), (status = 409, body = Problem)))]
async fn publish(
    State(products): State<Arc<Products>>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, i64)>, PathRejection>,
) -> Result<Json<VersionResponse>, Problem> {
    move_version(&products, &caller, &headers, path, Status::Published).await
}

/// Retire a published version; needs `products:manage`.
#[utoipa::path(post, path = "/v1/products/{code}/versions/{version}/retire", tag = "products",
    params(("code" = String, Path), ("version" = i64, Path)), responses((status = 200, body = VersionResponse), (status = 409, body = Problem)))]
async fn retire(
    State(products): State<Arc<Products>>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, i64)>, PathRejection>,
) -> Result<Json<VersionResponse>, Problem> {
    move_version(&products, &caller, &headers, path, Status::Retired).await
}

/// Publishes or retires the version the path names.
async fn move_version(
    products: &Products,
    caller: &Caller,
    headers: &HeaderMap,
    path: Result<Path<(String, i64)>, PathRejection>,
    to: Status,
) -> Result<Json<VersionResponse>, Problem> {
    let Path((code, n)) = path.map_err(|e| path_problem(e, "invalid_path"))?;
    let moved = products
        .move_to(caller, &code, n, to, trace_parent(headers))
        .await
        .map_err(problem)?;
    Ok(Json(moved.into()))
}

/// The one mapping from a products error to problem+json.
fn problem(error: ProductError) -> Problem {
    match &error {
        ProductError::Terms(e) => {
            Problem::new(422, "invalid_terms", "The terms break a rule").with_detail(e.to_string())
        }
        ProductError::Invalid(_) => {
            Problem::new(422, "invalid_product", "The product is not valid")
                .with_detail(error.to_string())
        }
        ProductError::Lifecycle(_) => Problem::new(
            409,
            "invalid_lifecycle_step",
            "Not allowed in this version's state",
        )
        .with_detail(error.to_string()),
        ProductError::NotFound => Problem::not_found("product_not_found", error.to_string()),
        ProductError::VersionNotFound => Problem::not_found("version_not_found", error.to_string()),
        ProductError::NotInForce => Problem::not_found("no_version_in_force", error.to_string()),
        ProductError::Exists => {
            Problem::new(409, "product_exists", "The product exists").with_detail(error.to_string())
        }
        ProductError::Forbidden => Problem::new(403, "permission_denied", "Permission denied")
            .with_detail(format!(
                "this action needs the permission `{PERMISSION_MANAGE}`"
            )),
        ProductError::Store(e) => {
            tracing::error!(error = %e, "products: storage failed");
            Problem::unavailable("product storage is unavailable; retry later")
        }
    }
}

fn date(text: &str) -> Result<Date, Problem> {
    parse_date(text).ok_or_else(|| {
        Problem::new(400, "invalid_date", "The date is not valid")
            .with_detail("dates are YYYY-MM-DD")
    })
}

/// The products OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        create,
        catalogue,
        product,
        rate,
        add_version,
        version,
        edit_draft,
        publish,
        retire
    ),
    components(schemas(
        CreateProduct,
        DraftRequest,
        VersionResponse,
        ProductResponse,
        Catalogue,
        CatalogueItem,
        RateResponse,
        Terms,
        model::Rates,
        model::Tier,
        model::Fee,
        model::Eligibility,
        Kind,
        model::RepaymentMethod,
        Problem
    ))
)]
pub struct ApiDoc;
