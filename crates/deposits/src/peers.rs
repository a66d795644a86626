//! The services deposits asks, in process (`gureum up`) or over HTTP (the split shape, through
//! the edge): the customers service (does the customer exist, may they hold the product) and
//! the catalogue (the version in force and its terms). Deposits never reads their tables.

use crate::model::{CustomerFacts, birth_date_from_masked};
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

/// A customer as deposits sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomerLookup {
    /// The customer, with what the rules need.
    Found(CustomerFacts),
    /// No customer has the id.
    NotFound,
    /// The customer was erased.
    Erased,
}

/// The version of a product in force.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductFacts {
    /// Its kind.
    pub kind: Kind,
    /// The version in force.
    pub version: i64,
    /// That version's terms.
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

impl Peers {
    /// Peers reached over HTTP at `base`.
    pub fn http(base: &str) -> Result<Peers, PeerError> {
        let http = reqwest::Client::builder()
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
                Ok(view) => Ok(CustomerLookup::Found(CustomerFacts {
                    kind: view.kind.to_owned(),
                    kyc_status: view.kyc_status.to_owned(),
                    birth_date: view
                        .fields
                        .get("rrn")
                        .and_then(|v| v.as_str())
                        .and_then(birth_date_from_masked),
                })),
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
                    kind: String,
                    kyc_status: String,
                    rrn: Option<String>,
                }
                let w: Wire = response.json().await.map_err(|e| down(e.to_string()))?;
                Ok(CustomerLookup::Found(CustomerFacts {
                    kind: w.kind,
                    kyc_status: w.kyc_status,
                    birth_date: w.rrn.as_deref().and_then(birth_date_from_masked),
                }))
            }
        }
    }

    /// The version of product `code` in force on `date` (over HTTP: the catalogue's today,
    /// which is the date deposits asks for); `None` if there is no such product or none of its
    /// versions is in force.
    pub async fn product(&self, code: &str, date: Date) -> Result<Option<ProductFacts>, PeerError> {
        let down = |reason: String| PeerError {
            service: "products",
            reason,
        };
        match self {
            Peers::Local { products, .. } => match products.in_force(code, date).await {
                Ok(v) => Ok(Some(ProductFacts {
                    kind: v.kind,
                    version: v.version,
                    terms: v.terms,
                })),
                Err(ProductError::NotFound | ProductError::NotInForce) => Ok(None),
                Err(e) => Err(down(e.to_string())),
            },
            Peers::Http { base, http } => {
                if !is_path_segment(code) {
                    return Ok(None);
                }
                let response = http
                    .get(format!("{base}/v1/products/{code}"))
                    .send()
                    .await
                    .map_err(|e| down(e.to_string()))?;
                match response.status().as_u16() {
                    404 => return Ok(None),
                    200 => {}
                    other => return Err(down(format!("HTTP {other}"))),
                }
                #[derive(Deserialize)]
                struct VersionWire {
                    version: i64,
                    terms: Terms,
                }
                #[derive(Deserialize)]
                struct Wire {
                    kind: Kind,
                    in_force: Option<i64>,
                    versions: Vec<VersionWire>,
                }
                let w: Wire = response.json().await.map_err(|e| down(e.to_string()))?;
                let Some(current) = w.in_force else {
                    return Ok(None);
                };
                Ok(w.versions
                    .into_iter()
                    .find(|v| v.version == current)
                    .map(|v| ProductFacts {
                        kind: w.kind,
                        version: v.version,
                        terms: v.terms,
                    }))
            }
        }
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
