//! The customers HTTP API under `/v1/customers`, its wire types and its OpenAPI document.
//! Errors are problem+json with stable codes, mapped here and only here; no response, error
//! or log line carries a regulated value unless it is an audited, permitted unmasked read.

use crate::model::{self, Channel, Field, KycStatus, Purpose, Submitted};
use crate::service::{
    AccessEntry, ConsentEntry, CustomerError, CustomerView, Customers, KycEntry, Search,
};
use crate::vault::VaultError;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use kernel::Problem;
use kernel::http::{Caller, json_body, query_problem, trace_parent};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// A request body holds at most this many bytes.
pub const BODY_BYTES_MAX: usize = 64 << 10;
/// A page holds this many customers unless `limit` says otherwise.
pub const PAGE_LIMIT_DEFAULT: u32 = 50;

/// The customers routes.
pub fn router(customers: Arc<Customers>) -> Router {
    Router::new()
        .route("/v1/customers", post(create).get(list))
        .route("/v1/customers/search", post(search))
        .route(
            "/v1/customers/{id}",
            get(get_customer).patch(update).delete(erase),
        )
        .route("/v1/customers/{id}/kyc", post(set_kyc).get(kyc))
        .route("/v1/customers/{id}/consents", get(consents))
        .route("/v1/customers/{id}/consents/{purpose}", put(set_consent))
        .route("/v1/customers/{id}/access-log", get(access_log))
        .route("/v1/customers/{id}/export", get(export))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(customers)
}

// ---- wire types ----

/// A new customer.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    /// `individual` (default) or `business`.
    kind: Option<String>,
    /// Name (1–100 characters).
    name: String,
    /// Resident or foreigner's registration number, `YYMMDD-NNNNNNN`. Required for an individual.
    rrn: Option<String>,
    /// Phone number (Korean; `+82` accepted).
    phone: Option<String>,
    /// Postal address.
    address: Option<String>,
    /// Annual income, whole won, as a decimal string.
    income: Option<String>,
    /// Employer.
    employer: Option<String>,
    /// Personal credit information: a JSON object of at most 4 KiB.
    #[schema(value_type = Option<Object>)]
    credit: Option<Map<String, Value>>,
    /// Business registration number `NNN-NN-NNNNN`. Required for a business.
    business_registration_number: Option<String>,
}

/// A change: a present field is set, `null` clears it, an absent one stays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomer {
    /// New name.
    name: Option<String>,
    /// New phone, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    phone: Option<Option<String>>,
    /// New address, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    address: Option<Option<String>>,
    /// New income (whole won, decimal string), or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    income: Option<Option<String>>,
    /// New employer, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    employer: Option<Option<String>>,
    /// New credit information, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    credit: Option<Option<Map<String, Value>>>,
}

/// A field that is present (even as `null`) becomes `Some(..)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A customer. Regulated fields are masked (`900101-1******`, `010-****-5678`, `***`) unless
/// listed in `unmasked`.
#[derive(Serialize, ToSchema)]
pub struct CustomerResponse {
    /// The id (a UUID).
    id: String,
    /// `individual` or `business`.
    kind: String,
    /// `pending`, `verified`, `rejected` or `expired`.
    kyc_status: String,
    /// Name.
    name: Option<String>,
    /// Registration number, masked unless unmasked.
    rrn: Option<String>,
    /// Phone, masked unless unmasked.
    phone: Option<String>,
    /// Address, masked unless unmasked.
    address: Option<String>,
    /// Income, `***` unless unmasked.
    income: Option<String>,
    /// Employer, `***` unless unmasked.
    employer: Option<String>,
    /// Credit information, `***` unless unmasked.
    #[schema(value_type = Option<Object>)]
    credit: Option<Value>,
    /// Business registration number.
    business_registration_number: Option<String>,
    /// The fields in the clear in this response.
    unmasked: Vec<String>,
    /// Increases with every change.
    version: i64,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    updated_at: String,
}

impl From<CustomerView> for CustomerResponse {
    fn from(v: CustomerView) -> CustomerResponse {
        let text = |name: &str| {
            v.fields
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        CustomerResponse {
            name: text("name"),
            rrn: text("rrn"),
            phone: text("phone"),
            address: text("address"),
            income: text("income"),
            employer: text("employer"),
            credit: v.fields.get("credit").filter(|c| !c.is_null()).cloned(),
            id: v.id,
            kind: v.kind.to_owned(),
            kyc_status: v.kyc_status.to_owned(),
            business_registration_number: v.business_registration_number,
            unmasked: v.unmasked.iter().map(|f| (*f).to_owned()).collect(),
            version: v.version,
            created_at: crate::service::rfc3339(v.created_at_us),
            updated_at: crate::service::rfc3339(v.updated_at_us),
        }
    }
}

/// A page of customers.
#[derive(Serialize, ToSchema)]
pub struct CustomerPage {
    /// Customers in creation order.
    items: Vec<CustomerResponse>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Search by exactly one of the three.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Registration number.
    rrn: Option<String>,
    /// Phone number.
    phone: Option<String>,
    /// Business registration number.
    business_registration_number: Option<String>,
}

/// Search results.
#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    /// The matching customers (masked).
    items: Vec<CustomerResponse>,
}

/// A KYC status change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KycRequest {
    /// `pending`, `verified`, `rejected` or `expired`.
    status: String,
    /// Why (an operator's note).
    reason: Option<String>,
}

/// The KYC status and its history.
#[derive(Serialize, ToSchema)]
pub struct KycResponse {
    /// The current status.
    status: String,
    /// Every change, oldest first.
    history: Vec<KycEntry>,
}

/// A consent given or withdrawn.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// Given (`true`) or withdrawn.
    granted: bool,
    /// `app`, `web`, `branch`, `call_center` or `mail`.
    channel: String,
}

/// A customer's consents.
#[derive(Serialize, ToSchema)]
pub struct ConsentsResponse {
    /// The state of each purpose ever recorded.
    current: Vec<ConsentEntry>,
    /// Every change, oldest first.
    history: Vec<ConsentEntry>,
}

/// Everything the bank holds about a customer (the right of access and portability).
#[derive(Serialize, ToSchema)]
pub struct Export {
    /// The customer, every field in the clear.
    customer: CustomerResponse,
    /// KYC history.
    kyc: Vec<KycEntry>,
    /// Consents now and their history.
    consents: ConsentsResponse,
}

/// The unmasked reads of a customer.
#[derive(Serialize, ToSchema)]
pub struct AccessLog {
    /// Oldest first.
    items: Vec<AccessEntry>,
}

#[derive(Deserialize)]
struct GetQuery {
    unmask: Option<String>,
    purpose: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
    kyc_status: Option<String>,
}

// ---- handlers ----

/// Onboard a customer.
#[utoipa::path(post, path = "/v1/customers", tag = "customers", request_body = CreateCustomer,
    responses((status = 201, body = CustomerResponse), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let req: CreateCustomer = json_body(body, BODY_BYTES_MAX)?;
    let submitted = Submitted {
        kind: req.kind,
        name: req.name,
        rrn: req.rrn,
        phone: req.phone,
        address: req.address,
        income: req.income,
        employer: req.employer,
        credit: req.credit,
        business_registration_number: req.business_registration_number,
    };
    let view = customers
        .create(&caller, submitted, trace_parent(&headers))
        .await
        .map_err(problem)?;
    Ok((StatusCode::CREATED, Json(CustomerResponse::from(view))).into_response())
}

/// List customers (masked), in creation order.
#[utoipa::path(get, path = "/v1/customers", tag = "customers",
    params(("after" = Option<String>, Query, description = "the `next` of the previous page"),
           ("limit" = Option<u32>, Query, description = "1–200, default 50"),
           ("kyc_status" = Option<String>, Query, description = "only customers with this KYC status")),
    responses((status = 200, body = CustomerPage)))]
async fn list(
    State(customers): State<Arc<Customers>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<CustomerPage>, Problem> {
    let Query(q) = query.map_err(query_problem)?;
    let kyc_status = q
        .kyc_status
        .as_deref()
        .map(|s| {
            KycStatus::from_name(s).ok_or_else(|| {
                Problem::new(400, "invalid_kyc_status", "Unknown KYC status")
                    .with_detail("expected pending, verified, rejected or expired")
            })
        })
        .transpose()?;
    if let Some(after) = &q.after {
        parse_id(after)?;
    }
    let page = customers
        .list(
            q.after.as_deref(),
            q.limit.unwrap_or(PAGE_LIMIT_DEFAULT),
            kyc_status,
        )
        .await
        .map_err(problem)?;
    Ok(Json(CustomerPage {
        items: page.items.into_iter().map(CustomerResponse::from).collect(),
        next: page.next,
    }))
}

/// Get a customer: masked, or with `unmask=rrn,phone,…` (or `all`) and a `purpose`, the
/// listed fields in the clear — which needs the `customers:unmask` permission and is audited.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path),
           ("unmask" = Option<String>, Query, description = "comma-separated fields, or `all`"),
           ("purpose" = Option<String>, Query, description = "why the plain values are needed; required with `unmask`")),
    responses((status = 200, body = CustomerResponse), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 410, body = Problem)))]
async fn get_customer(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let id = path_id(id)?;
    let Query(q) = query.map_err(query_problem)?;
    own_only(&caller, &id)?;
    let view = match q.unmask.as_deref() {
        None => customers.get(&id).await,
        Some(list) => {
            let fields = unmask_fields(list)?;
            customers
                .get_unmasked(
                    &caller,
                    &id,
                    &fields,
                    q.purpose.as_deref(),
                    trace_parent(&headers),
                )
                .await
        }
    }
    .map_err(problem)?;
    Ok(with_etag(view))
}

/// A customer's own credential reads its own record alone: any other is not found (as if it
/// did not exist — never confirmed to another customer).
fn own_only(caller: &Caller, id: &str) -> Result<(), Problem> {
    if caller.scope(crate::service::PERMISSION_READ).covers(id) {
        Ok(())
    } else {
        Err(problem(CustomerError::NotFound))
    }
}

fn unmask_fields(list: &str) -> Result<Vec<Field>, Problem> {
    if list.trim() == "all" {
        return Ok(Field::ALL.iter().map(|(f, _)| *f).collect());
    }
    let fields: Vec<Field> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            Field::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Field::ALL.iter().map(|(_, n)| *n).collect();
                Problem::new(400, "invalid_unmask", "Unknown field to unmask").with_detail(format!(
                    "`{name}` is not a regulated field; expected `all` or some of: {}",
                    known.join(", ")
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    if fields.is_empty() {
        return Err(
            Problem::new(400, "invalid_unmask", "Unknown field to unmask")
                .with_detail("`unmask` lists no field"),
        );
    }
    Ok(fields)
}

/// Change a customer's fields (the registration number never changes). With `If-Match:
/// "<version>"` (the ETag of a read) the change is refused with 412 if the customer changed
/// since; without it, concurrent changes to different fields both apply.
#[utoipa::path(patch, path = "/v1/customers/{id}", tag = "customers", request_body = UpdateCustomer,
    params(("id" = String, Path)),
    responses((status = 200, body = CustomerResponse), (status = 404, body = Problem),
              (status = 410, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn update(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let id = path_id(id)?;
    let req: UpdateCustomer = json_body(body, BODY_BYTES_MAX)?;
    let patch = model::Patch {
        name: req.name,
        phone: req.phone,
        address: req.address,
        income: req.income,
        employer: req.employer,
        credit: req.credit,
    };
    let expected = if_match(&headers)?;
    let view = customers
        .update(&caller, &id, patch, expected, trace_parent(&headers))
        .await
        .map_err(problem)?;
    Ok(with_etag(view))
}

/// Erase a customer (crypto-shredding); needs `customers:erase`. Idempotent: 204 again.
#[utoipa::path(delete, path = "/v1/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 204, description = "Erased"), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn erase(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, Problem> {
    let id = path_id(id)?;
    customers
        .erase(&caller, &id, trace_parent(&headers))
        .await
        .map_err(problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Find customers by registration number, phone or business registration number (exact
/// match through blind indexes). A POST, so the number never appears in a URL or access log.
#[utoipa::path(post, path = "/v1/customers/search", tag = "customers", request_body = SearchRequest,
    responses((status = 200, body = SearchResults), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn search(
    State(customers): State<Arc<Customers>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SearchResults>, Problem> {
    let req: SearchRequest = json_body(body, BODY_BYTES_MAX)?;
    let by = match (req.rrn, req.phone, req.business_registration_number) {
        (Some(rrn), None, None) => Search::Rrn(rrn),
        (None, Some(phone), None) => Search::Phone(phone),
        (None, None, Some(brn)) => Search::BusinessNumber(brn),
        _ => {
            return Err(
                Problem::new(400, "invalid_search", "Search by exactly one key").with_detail(
                    "give exactly one of `rrn`, `phone`, `business_registration_number`",
                ),
            );
        }
    };
    let items = customers.search(by).await.map_err(problem)?;
    Ok(Json(SearchResults {
        items: items.into_iter().map(CustomerResponse::from).collect(),
    }))
}

/// Move a customer's KYC status.
#[utoipa::path(post, path = "/v1/customers/{id}/kyc", tag = "customers", request_body = KycRequest,
    params(("id" = String, Path)),
    responses((status = 200, body = CustomerResponse), (status = 409, body = Problem)))]
async fn set_kyc(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CustomerResponse>, Problem> {
    let id = path_id(id)?;
    let req: KycRequest = json_body(body, BODY_BYTES_MAX)?;
    let status = KycStatus::from_name(&req.status).ok_or_else(|| {
        Problem::new(422, "invalid_kyc_status", "Unknown KYC status")
            .with_detail("expected pending, verified, rejected or expired")
    })?;
    let view = customers
        .set_kyc(
            &caller,
            &id,
            status,
            req.reason.as_deref(),
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    Ok(Json(view.into()))
}

/// A customer's KYC status and history.
#[utoipa::path(get, path = "/v1/customers/{id}/kyc", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = KycResponse), (status = 404, body = Problem)))]
async fn kyc(
    State(customers): State<Arc<Customers>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<KycResponse>, Problem> {
    let id = path_id(id)?;
    let history = customers.kyc_history(&id).await.map_err(problem)?;
    Ok(Json(KycResponse {
        status: history.last().map(|e| e.status.clone()).unwrap_or_default(),
        history,
    }))
}

/// Give or withdraw a consent for a purpose.
#[utoipa::path(put, path = "/v1/customers/{id}/consents/{purpose}", tag = "customers",
    request_body = ConsentRequest,
    params(("id" = String, Path), ("purpose" = String, Path, description = "marketing, credit_inquiry or third_party_sharing")),
    responses((status = 200, body = ConsentEntry), (status = 404, body = Problem)))]
async fn set_consent(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ConsentEntry>, Problem> {
    let Path((id, purpose)) = path.map_err(|e| {
        Problem::new(400, "invalid_path", "The path is not valid").with_detail(e.body_text())
    })?;
    let id = parse_id(&id)?;
    let purpose = Purpose::from_name(&purpose).ok_or_else(|| {
        Problem::not_found(
            "unknown_consent_purpose",
            "purposes are marketing, credit_inquiry and third_party_sharing",
        )
    })?;
    let req: ConsentRequest = json_body(body, BODY_BYTES_MAX)?;
    let channel = Channel::from_name(&req.channel).ok_or_else(|| {
        Problem::new(422, "invalid_channel", "Unknown channel")
            .with_detail("expected app, web, branch, call_center or mail")
    })?;
    let entry = customers
        .set_consent(
            &caller,
            &id,
            purpose,
            req.granted,
            channel,
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    Ok(Json(entry))
}

/// A customer's consents and their history.
#[utoipa::path(get, path = "/v1/customers/{id}/consents", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = ConsentsResponse), (status = 404, body = Problem)))]
async fn consents(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ConsentsResponse>, Problem> {
    let id = path_id(id)?;
    own_only(&caller, &id)?;
    let (current, history) = customers.consents(&id).await.map_err(problem)?;
    Ok(Json(ConsentsResponse { current, history }))
}

/// Everything held about a customer, in the clear — for a data-subject access or portability
/// request. An unmasked read of every field: needs `customers:unmask` and a `purpose`, and is
/// audited like one. After erasure: 410.
#[utoipa::path(get, path = "/v1/customers/{id}/export", tag = "customers",
    params(("id" = String, Path), ("purpose" = String, Query, description = "why, e.g. the request's reference")),
    responses((status = 200, body = Export), (status = 403, body = Problem), (status = 410, body = Problem)))]
async fn export(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<Export>, Problem> {
    let id = path_id(id)?;
    let Query(q) = query.map_err(query_problem)?;
    let every: Vec<Field> = Field::ALL.iter().map(|(f, _)| *f).collect();
    let customer = customers
        .get_unmasked(
            &caller,
            &id,
            &every,
            q.purpose.as_deref(),
            trace_parent(&headers),
        )
        .await
        .map_err(problem)?;
    let kyc = customers.kyc_history(&id).await.map_err(problem)?;
    let (current, history) = customers.consents(&id).await.map_err(problem)?;
    Ok(Json(Export {
        customer: customer.into(),
        kyc,
        consents: ConsentsResponse { current, history },
    }))
}

/// Who read a customer's regulated data unmasked, and why; needs `customers:audit`.
#[utoipa::path(get, path = "/v1/customers/{id}/access-log", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = AccessLog), (status = 403, body = Problem)))]
async fn access_log(
    State(customers): State<Arc<Customers>>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AccessLog>, Problem> {
    let id = path_id(id)?;
    let items = customers.access_log(&caller, &id).await.map_err(problem)?;
    Ok(Json(AccessLog { items }))
}

// ---- errors and small parsers ----

/// The one mapping from a customers error to problem+json.
fn problem(error: CustomerError) -> Problem {
    match &error {
        CustomerError::Rule(rule) => Problem::new(422, &rule.code(), "The customer breaks a rule")
            .with_detail(rule.to_string()),
        CustomerError::NotFound => Problem::not_found("customer_not_found", error.to_string()),
        CustomerError::Erased => Problem::new(410, "customer_erased", "The customer was erased")
            .with_detail(error.to_string()),
        CustomerError::RrnTaken => Problem::new(409, "customer_exists", "The customer exists")
            .with_detail(error.to_string()),
        CustomerError::BusinessNumberTaken => {
            Problem::new(409, "business_exists", "The business exists")
                .with_detail(error.to_string())
        }
        CustomerError::KycTransition { .. } => Problem::new(
            409,
            "invalid_kyc_transition",
            "KYC status cannot move this way",
        )
        .with_detail(error.to_string()),
        CustomerError::Forbidden(_) => Problem::new(403, "permission_denied", "Permission denied")
            .with_detail(error.to_string()),
        CustomerError::VersionMismatch { .. } => {
            Problem::new(412, "version_mismatch", "The customer changed")
                .with_detail(format!("{error}; read it again and reapply the change"))
        }
        CustomerError::Contended => Problem::new(409, "concurrent_update", "Changed concurrently")
            .with_detail(error.to_string()),
        CustomerError::PurposeRequired => {
            Problem::new(400, "purpose_required", "A purpose is required")
                .with_detail(error.to_string())
        }
        CustomerError::Store(e) => {
            tracing::error!(error = %e, "customers: storage failed");
            Problem::unavailable("customer storage is unavailable; retry later")
        }
        CustomerError::Vault(VaultError::UnknownMasterKey(_) | VaultError::Keyring { .. }) => {
            tracing::error!(error = %error, "customers: vault keys unavailable");
            Problem::new(503, "vault_unavailable", "The key vault is unavailable").with_detail(
                "a master key needed here is not available; operators: check the keyring",
            )
        }
        CustomerError::Vault(_) => {
            tracing::error!(error = %error, "customers: a sealed value failed to open");
            Problem::new(
                500,
                "sealed_value_corrupt",
                "Stored data failed its integrity check",
            )
            .with_detail("a sealed value did not authenticate; it was altered or moved")
        }
    }
}

/// `If-Match: "<version>"` (or the bare number): the version a change is based on.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, Problem> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            Problem::new(400, "invalid_if_match", "If-Match is not valid")
                .with_detail("If-Match takes the customer's ETag, e.g. \"3\"")
        })
}

/// A customer with its version as the ETag, for a later `If-Match`.
fn with_etag(view: CustomerView) -> Response {
    let etag = format!("\"{}\"", view.version);
    let mut response = Json(CustomerResponse::from(view)).into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&etag) {
        response
            .headers_mut()
            .insert(axum::http::header::ETAG, value);
    }
    response
}

fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, Problem> {
    let Path(id) = id.map_err(|e| {
        Problem::new(400, "invalid_id", "The id is not valid").with_detail(e.body_text())
    })?;
    parse_id(&id)
}

/// A customer id: a UUID, in its hyphenated lowercase form.
fn parse_id(text: &str) -> Result<String, Problem> {
    uuid::Uuid::try_parse(text)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            Problem::new(400, "invalid_id", "The id is not valid")
                .with_detail("a customer id is a UUID")
        })
}

/// The customers OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gureum",
        description = "Gureum core banking: customers and the regulated-data vault."
    ),
    paths(
        create,
        list,
        get_customer,
        update,
        erase,
        search,
        set_kyc,
        kyc,
        set_consent,
        consents,
        access_log,
        export
    ),
    components(schemas(
        CreateCustomer,
        UpdateCustomer,
        CustomerResponse,
        CustomerPage,
        SearchRequest,
        SearchResults,
        KycRequest,
        KycResponse,
        KycEntry,
        ConsentRequest,
        ConsentsResponse,
        ConsentEntry,
        AccessLog,
        AccessEntry,
        Export,
        Problem
    ))
)]
pub struct ApiDoc;
