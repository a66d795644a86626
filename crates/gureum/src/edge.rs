//! The edge in the split shape: the one door, routing every `/v1/…` request to the service
//! that owns it, so clients see exactly what `gureum up` serves at one address.
//!
//! A service may run as several nodes of which one serves (the ledger's leader; the others are
//! standbys answering `503 standby`). The edge remembers which node served last and, when that
//! one refuses the connection or answers `standby`, tries the others in order — both mean the
//! request was not processed, so nothing is applied twice. A request that reached a node and
//! got no answer in time is not retried (`504 upstream_timeout`); ledger writes are idempotent
//! by id, so the client can safely retry it.
//!
//! `/v1/ledger/…` goes to the ledger's nodes, `/v1/customers…`, `/v1/products…`,
//! `/v1/deposits…`, `/v1/contracts…`, `/v1/loans…` and `/v1/credit…` (lending) to those
//! services' replicas (any of them serves). The
//! client's address (the peer's, or what trusted proxies say) goes in `X-Forwarded-For`. `/v1/openapi.json` is answered here: one document for every
//! service behind the edge.
//!
//! Every request passes the gate first (`edge::Gate`, as in `gureum up`): authentication,
//! the route table, the firewall, limits, security headers. The caller headers
//! (`gureum-principal`, `gureum-permissions`) the services read are the gate's — a client's
//! own are dropped — and the credential itself is not passed on. `/v1/auth/…` is answered
//! here. The edge keeps its API keys in `[edge] data_dir` (SQLite, with the bootstrap
//! `admin.key`) or in `[database]` (schema `edge`); every replica reloads them every
//! [`KEYS_REFRESH`]. Gureum's services calling each other through the edge send
//! `GUREUM_SERVICE_KEY` (role `service`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kernel::Problem;

use crate::Error;
use crate::serve::EdgeConfig;

/// The largest request body the edge forwards (the ledger's own limit is 40 MiB).
pub const BODY_BYTES_MAX: usize = 41 << 20;
/// How often an edge reloads the API keys (created or revoked at another replica).
pub const KEYS_REFRESH: Duration = Duration::from_secs(5);
/// How long connecting to a service node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a service node may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Request headers passed on to the services.
const FORWARDED: [HeaderName; 8] = [
    header::CONTENT_TYPE,
    header::ACCEPT,
    header::IF_MATCH,
    HeaderName::from_static("idempotency-key"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static(kernel::http::PRINCIPAL_HEADER),
    HeaderName::from_static(kernel::http::PERMISSIONS_HEADER),
    HeaderName::from_static(kernel::http::CUSTOMER_HEADER),
];

/// Response headers passed back to the client.
const RETURNED: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::ETAG,
    header::LOCATION,
    header::RETRY_AFTER,
];

struct Upstream {
    /// The service's name, for messages.
    service: &'static str,
    nodes: Vec<String>,
    /// The node that answered last.
    preferred: AtomicUsize,
}

impl Upstream {
    fn new(service: &'static str, nodes: &[String]) -> Arc<Upstream> {
        Arc::new(Upstream {
            service,
            nodes: nodes
                .iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            preferred: AtomicUsize::new(0),
        })
    }
}

#[derive(Clone)]
struct Edge {
    http: reqwest::Client,
    ledger: Arc<Upstream>,
    customers: Option<Arc<Upstream>>,
    products: Option<Arc<Upstream>>,
    deposits: Option<Arc<Upstream>>,
    contracts: Option<Arc<Upstream>>,
    lending: Option<Arc<Upstream>>,
    openapi: Arc<utoipa::openapi::OpenApi>,
    /// Signs the caller headers for the services (`kernel::caller_key`), when set.
    caller_key: Option<kernel::caller_key::CallerKey>,
}

/// Serves the edge at `listen`, behind the gate `door` opens, until SIGINT or SIGTERM.
pub async fn serve(
    listen: SocketAddr,
    config: EdgeConfig,
    door: crate::server::Door,
) -> Result<(), Error> {
    if config.ledger.is_empty() {
        return Err("[edge] ledger must name at least one node".into());
    }
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(ANSWER_TIMEOUT)
        .build()?;
    let customers = (!config.customers.is_empty())
        .then(|| Upstream::new(customers::SERVICE, &config.customers));
    let products =
        (!config.products.is_empty()).then(|| Upstream::new(products::SERVICE, &config.products));
    let deposits =
        (!config.deposits.is_empty()).then(|| Upstream::new(deposits::SERVICE, &config.deposits));
    let contracts = (!config.contracts.is_empty())
        .then(|| Upstream::new(contracts::SERVICE, &config.contracts));
    let lending =
        (!config.lending.is_empty()).then(|| Upstream::new(lending::SERVICE, &config.lending));
    let caller_key = kernel::caller_key::CallerKey::from_env()?;
    if caller_key.is_none() {
        tracing::warn!(
            "{} is not set: the services trust caller headers without a signature, so only \
             the edge may be able to reach them",
            kernel::caller_key::CALLER_KEY_ENV
        );
    }
    let edge = Edge {
        caller_key,
        http,
        ledger: Upstream::new("ledger", &config.ledger),
        openapi: Arc::new(crate::server::openapi_document(crate::server::Served {
            ledger: true,
            customers: customers.is_some(),
            products: products.is_some(),
            deposits: deposits.is_some(),
            contracts: contracts.is_some(),
            lending: lending.is_some(),
            edge: true,
        })),
        customers,
        products,
        deposits,
        contracts,
        lending,
    };
    let app = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(ready))
        .fallback(route)
        .with_state(edge);
    let entrance = door.open().await?;
    let app = entrance.gate.protect(app.merge(entrance.routes()));
    let keys = entrance.gate.keys().clone();
    let refreshing = tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEYS_REFRESH);
        loop {
            tick.tick().await;
            if let Err(e) = keys.refresh().await {
                tracing::warn!(error = %e, "edge: cannot reload the API keys; keeping the last ones");
            }
        }
    });
    let tls = entrance.tls.clone();
    crate::server::serve_door(app, listen, tls).await?;
    refreshing.abort();
    entrance.close().await;
    Ok(())
}

/// Ready when every service behind the edge has a node that is ready.
async fn ready(State(edge): State<Edge>) -> Response {
    for upstream in std::iter::once(&edge.ledger)
        .chain(&edge.customers)
        .chain(&edge.products)
        .chain(&edge.deposits)
        .chain(&edge.contracts)
        .chain(&edge.lending)
    {
        let mut serving = false;
        for node in &upstream.nodes {
            let answer = edge.http.get(format!("{node}/readyz")).send().await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                serving = true;
                break;
            }
        }
        if !serving {
            return Problem::unavailable(format!("no {} node is serving", upstream.service))
                .into_response();
        }
    }
    axum::Json(serde_json::json!({"status": "ready"})).into_response()
}

async fn route(State(edge): State<Edge>, request: Request) -> Response {
    let path = request.uri().path();
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let services = [
        ("/v1/customers", &edge.customers),
        ("/v1/products", &edge.products),
        ("/v1/deposits", &edge.deposits),
        ("/v1/contracts", &edge.contracts),
        ("/v1/loans", &edge.lending),
        ("/v1/credit", &edge.lending),
    ];
    let owner = services
        .iter()
        .find_map(|(prefix, upstream)| upstream.as_ref().filter(|_| under(prefix)));
    let upstream = match owner {
        _ if path.starts_with("/v1/ledger/") => edge.ledger.clone(),
        Some(upstream) => upstream.clone(),
        _ if path == "/v1/openapi.json" => {
            return axum::Json(edge.openapi.as_ref().clone()).into_response();
        }
        _ => {
            return Problem::not_found("route_not_found", format!("no route serves {path}"))
                .into_response();
        }
    };
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_BYTES_MAX).await {
        Ok(body) => body,
        Err(_) => {
            return Problem::new(413, "body_too_large", "Request body too large")
                .with_detail(format!("the edge accepts at most {BODY_BYTES_MAX} bytes"))
                .into_response();
        }
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    // The services learn where a request came from: the address the gate settled on (it
    // dropped the client's own `X-Forwarded-For`).
    let client = edge::gate::client_of(&parts.extensions);
    // What the edge vouches for, signed for each node's target below.
    let signed = edge.caller_key.as_ref().map(|key| {
        let mut signed = HeaderMap::new();
        for name in [
            kernel::http::PRINCIPAL_HEADER,
            kernel::http::PERMISSIONS_HEADER,
            kernel::http::CUSTOMER_HEADER,
        ] {
            if let Some(value) = parts.headers.get(name) {
                signed.insert(name, value.clone());
            }
        }
        if let Ok(value) = HeaderValue::from_str(&client) {
            signed.insert("x-forwarded-for", value);
        }
        (key, signed)
    });
    let count = upstream.nodes.len();
    let first = upstream.preferred.load(Ordering::Relaxed);
    for i in 0..count {
        let index = (first + i) % count;
        let target = format!("{}{path_and_query}", upstream.nodes[index]);
        // Parsed here, as the client would, so the query signed is the query sent.
        let Ok(target) = reqwest::Url::parse(&target) else {
            return Problem::new(400, "bad_target", "The request target cannot be passed on")
                .into_response();
        };
        let signature = signed.as_ref().map(|(key, signed)| {
            key.sign(
                &kernel::caller_key::Target {
                    method: parts.method.as_str(),
                    path: target.path(),
                    query: target.query(),
                },
                kernel::caller_key::unix_now(),
                signed,
            )
        });
        let mut outgoing = edge.http.request(parts.method.clone(), target);
        for name in &FORWARDED {
            if let Some(value) = parts.headers.get(name) {
                outgoing = outgoing.header(name, value);
            }
        }
        if let Some(signature) = signature {
            outgoing = outgoing.header(kernel::caller_key::CALLER_SIGNATURE_HEADER, signature);
        }
        outgoing = outgoing.header("x-forwarded-for", client.as_str());
        match outgoing.body(body.clone()).send().await {
            Ok(answer) => {
                let status = answer.status();
                let returned: Vec<(HeaderName, HeaderValue)> = RETURNED
                    .iter()
                    .filter_map(|n| answer.headers().get(n).map(|v| (n.clone(), v.clone())))
                    .collect();
                let bytes = match answer.bytes().await {
                    Ok(bytes) => bytes,
                    Err(_) => return upstream_timeout(),
                };
                if status == StatusCode::SERVICE_UNAVAILABLE && is_standby(&bytes) {
                    continue;
                }
                upstream.preferred.store(index, Ordering::Relaxed);
                return respond(status, returned, bytes);
            }
            Err(e) if e.is_connect() => continue,
            Err(_) => return upstream_timeout(),
        }
    }
    Problem::unavailable(format!(
        "no {} node is serving; try again shortly",
        upstream.service
    ))
    .into_response()
}

fn is_standby(body: &Bytes) -> bool {
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| v["code"] == "standby")
}

fn respond(status: StatusCode, headers: Vec<(HeaderName, HeaderValue)>, bytes: Bytes) -> Response {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().extend(headers);
    response
}

fn upstream_timeout() -> Response {
    Problem::new(
        504,
        "upstream_timeout",
        "The service did not answer in time",
    )
    .with_detail(
        "the request may or may not have been applied; retrying a ledger write with the same \
         ids is safe",
    )
    .into_response()
}
