//! The services other Gureum services ask, in process (`gureum up`) or over HTTP (the split
//! shape, through the edge): the customers service (who the customer is, masked) and the
//! catalogue (a product version and its terms). A service never reads another's tables; it
//! asks here.
//!
//! Only masked customer data travels: the name, the kind, the KYC status and the registration
//! number as masked (`900101-1******`, whose visible digits are the birth date).

use customers::Customers;
use customers::service::CustomerError;
use products::Products;
use products::model::{Kind, Terms};
use products::service::ProductError;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use time::Date;

/// How long one call to another service may take.
const CALL_TIMEOUT_MS: u64 = 10_000;

/// A customer, masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerSummary {
    /// The id.
    pub id: String,
    /// `individual` or `business`.
    pub kind: String,
    /// The name.
    pub name: String,
    /// The KYC status.
    pub kyc_status: String,
    /// The registration number, masked.
    pub rrn_masked: Option<String>,
}

/// What the customers service answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomerLookup {
    /// The customer.
    Found(CustomerSummary),
    /// No customer has the id.
    NotFound,
    /// The customer was erased.
    Erased,
}

/// A product version.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductFacts {
    /// The product's code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// The version.
    pub version: i64,
    /// `draft`, `published` or `retired`.
    pub status: String,
    /// The first day it is in force.
    pub effective_from: String,
    /// Its terms.
    pub terms: Terms,
}

/// A peer could not answer.
#[derive(Debug, thiserror::Error)]
#[error("{service} is unavailable: {reason}")]
pub struct PeerError {
    /// Which service.
    pub service: &'static str,
    /// Why (never a regulated value).
    pub reason: String,
}

/// Where the customers service and the catalogue are.
#[derive(Clone)]
pub enum Peers {
    /// In this process.
    Local {
        /// The customers service.
        customers: Arc<Customers>,
        /// The catalogue.
        products: Arc<Products>,
    },
    /// Over HTTP at a base URL (the edge).
    Http {
        /// Scheme, host and port.
        base: String,
        /// The client.
        http: reqwest::Client,
    },
}

#[derive(Deserialize)]
struct VersionWire {
    code: String,
    name: String,
    kind: Kind,
    version: i64,
    status: String,
    effective_from: String,
    terms: Terms,
}

impl From<VersionWire> for ProductFacts {
    fn from(v: VersionWire) -> Self {
        ProductFacts {
            code: v.code,
            name: v.name,
            kind: v.kind,
            version: v.version,
            status: v.status,
            effective_from: v.effective_from,
            terms: v.terms,
        }
    }
}

impl From<products::service::Version> for ProductFacts {
    fn from(v: products::service::Version) -> Self {
        ProductFacts {
            code: v.code,
            name: v.name,
            kind: v.kind,
            version: v.version,
            status: v.status.name().to_owned(),
            effective_from: v.effective_from.to_string(),
            terms: v.terms,
        }
    }
}

impl Peers {
    /// Peers reached over HTTP through `upstream` (the edge).
    pub fn http(upstream: &kernel::http::Upstream) -> Result<Peers, PeerError> {
        let base = upstream.url.as_str();
        let http = reqwest::Client::builder()
            .default_headers(upstream.headers())
            .timeout(Duration::from_millis(CALL_TIMEOUT_MS))
            .build()
            .map_err(|e| PeerError {
                service: "http",
                reason: e.to_string(),
            })?;
        Ok(Peers::Http {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The customer, masked (no regulated value travels).
    pub async fn customer(&self, id: &str) -> Result<CustomerLookup, PeerError> {
        let down = |reason: String| PeerError {
            service: "customers",
            reason,
        };
        match self {
            Peers::Local { customers, .. } => match customers.get(id).await {
                Ok(view) => {
                    let text = |name: &str| {
                        view.fields
                            .get(name)
                            .and_then(|v| v.as_str())
                            .map(str::to_owned)
                    };
                    Ok(CustomerLookup::Found(CustomerSummary {
                        name: text("name").unwrap_or_default(),
                        rrn_masked: text("rrn"),
                        id: view.id,
                        kind: view.kind.to_owned(),
                        kyc_status: view.kyc_status.to_owned(),
                    }))
                }
                Err(CustomerError::NotFound) => Ok(CustomerLookup::NotFound),
                Err(CustomerError::Erased) => Ok(CustomerLookup::Erased),
                Err(e) => Err(down(e.to_string())),
            },
            Peers::Http { base, http } => {
                if !is_path_segment(id) {
                    return Ok(CustomerLookup::NotFound);
                }
                let response = http
                    .get(format!("{base}/v1/customers/{id}"))
                    .send()
                    .await
                    .map_err(|e| down(e.to_string()))?;
                match response.status().as_u16() {
                    404 => return Ok(CustomerLookup::NotFound),
                    410 => return Ok(CustomerLookup::Erased),
                    200 => {}
                    other => return Err(down(format!("HTTP {other}"))),
                }
                #[derive(Deserialize)]
                struct Wire {
                    id: String,
                    kind: String,
                    name: Option<String>,
                    kyc_status: String,
                    rrn: Option<String>,
                }
                let w: Wire = response.json().await.map_err(|e| down(e.to_string()))?;
                Ok(CustomerLookup::Found(CustomerSummary {
                    id: w.id,
                    kind: w.kind,
                    name: w.name.unwrap_or_default(),
                    kyc_status: w.kyc_status,
                    rrn_masked: w.rrn,
                }))
            }
        }
    }

    /// The version of product `code` in force on `date` (over HTTP: the catalogue's today,
    /// which is the date callers ask for); `None` if there is no such product or none of its
    /// versions is in force.
    pub async fn product_in_force(
        &self,
        code: &str,
        date: Date,
    ) -> Result<Option<ProductFacts>, PeerError> {
        let down = |reason: String| PeerError {
            service: "products",
            reason,
        };
        match self {
            Peers::Local { products, .. } => match products.in_force(code, date).await {
                Ok(v) => Ok(Some(v.into())),
                Err(ProductError::NotFound | ProductError::NotInForce) => Ok(None),
                Err(e) => Err(down(e.to_string())),
            },
            Peers::Http { base, http } => {
                if !is_path_segment(code) {
                    return Ok(None);
                }
                #[derive(Deserialize)]
                struct Wire {
                    in_force: Option<i64>,
                    versions: Vec<VersionWire>,
                }
                let Some(w): Option<Wire> =
                    get_json(http, &format!("{base}/v1/products/{code}"), "products").await?
                else {
                    return Ok(None);
                };
                let Some(current) = w.in_force else {
                    return Ok(None);
                };
                Ok(w.versions
                    .into_iter()
                    .find(|v| v.version == current)
                    .map(Into::into))
            }
        }
    }

    /// Version `version` of product `code`, whatever its status; `None` if there is none.
    pub async fn product_version(
        &self,
        code: &str,
        version: i64,
    ) -> Result<Option<ProductFacts>, PeerError> {
        match self {
            Peers::Local { products, .. } => match products.version(code, version).await {
                Ok(v) => Ok(Some(v.into())),
                Err(ProductError::NotFound | ProductError::VersionNotFound) => Ok(None),
                Err(e) => Err(PeerError {
                    service: "products",
                    reason: e.to_string(),
                }),
            },
            Peers::Http { base, http } => {
                if !is_path_segment(code) {
                    return Ok(None);
                }
                let url = format!("{base}/v1/products/{code}/versions/{version}");
                let found: Option<VersionWire> = get_json(http, &url, "products").await?;
                Ok(found.map(Into::into))
            }
        }
    }
}

/// GET a JSON document; `None` for a 404.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    service: &'static str,
) -> Result<Option<T>, PeerError> {
    let down = |reason: String| PeerError { service, reason };
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| down(e.to_string()))?;
    match response.status().as_u16() {
        404 => Ok(None),
        200 => response
            .json()
            .await
            .map(Some)
            .map_err(|e| down(e.to_string())),
        other => Err(down(format!("HTTP {other}"))),
    }
}

/// Ids and codes go into URL paths only when they cannot change the path.
fn is_path_segment(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
