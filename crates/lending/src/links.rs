//! The services lending asks beside the customers service and the catalogue (`peers`): the
//! contracts service (a loan's contract, issued and later checked as signed) and deposits (the
//! account a loan is paid into and repaid from) — in this process (`gureum up`) or over HTTP
//! through the edge. Lending never reads their tables.

use contracts::Contracts;
use contracts::service::{ContractError, NewContract, Particulars};
use deposits::Deposits;
use deposits::service::DepositError;
use peers::PeerError;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// How long one call may take.
const CALL_TIMEOUT_MS: u64 = 10_000;

/// A deposit account as lending needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepositFacts {
    /// The id.
    pub id: String,
    /// Whose.
    pub customer_id: String,
    /// `demand_deposit`, …
    pub kind: String,
    /// `open` or `closed`.
    pub status: String,
}

impl DepositFacts {
    /// The ledger account holding its money.
    pub fn ledger_id(&self) -> u128 {
        deposit_ledger_id(&self.id)
    }
}

/// The ledger account holding a deposit account's money: a deposit account's id is a UUID
/// whose 128-bit value is its ledger account's id (0, which no account has, for another id).
pub fn deposit_ledger_id(deposit_id: &str) -> u128 {
    uuid::Uuid::parse_str(deposit_id).map_or(0, |u| u.as_u128())
}

/// A contract as lending needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContractFacts {
    /// The id.
    pub id: String,
    /// Whose.
    pub customer_id: String,
    /// What it is about (the loan's id).
    pub subject: Option<String>,
    /// `issued`, `signed` or `cancelled`.
    pub status: String,
    /// The document's SHA-256 (hex): what the customer signs.
    pub document_sha256: String,
}

/// A contract to issue for a loan.
#[derive(Clone, Debug)]
pub struct LoanContract {
    /// The customer.
    pub customer_id: String,
    /// The loan product and the version the offer was made under.
    pub product_code: String,
    /// The version.
    pub product_version: i64,
    /// The loan's id.
    pub loan_id: String,
    /// Whole won.
    pub principal: u128,
    /// Instalments.
    pub term_months: u32,
    /// The credit grade the rate was priced for.
    pub grade: u8,
}

/// Why issuing a contract failed.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The contracts service refused it: `(code, detail)`.
    #[error("{1}")]
    Refused(String, String),
    /// It could not be reached.
    #[error(transparent)]
    Peer(#[from] PeerError),
}

/// Where contracts and deposits are.
#[derive(Clone)]
pub enum Links {
    /// In this process.
    Local {
        /// The contracts service.
        contracts: Arc<Contracts>,
        /// Deposits.
        deposits: Arc<Deposits>,
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
struct ContractWire {
    id: String,
    customer_id: String,
    subject: Option<String>,
    status: String,
    document_sha256: String,
}

impl From<ContractWire> for ContractFacts {
    fn from(w: ContractWire) -> Self {
        ContractFacts {
            id: w.id,
            customer_id: w.customer_id,
            subject: w.subject,
            status: w.status,
            document_sha256: w.document_sha256,
        }
    }
}

impl From<contracts::service::Record> for ContractFacts {
    fn from(r: contracts::service::Record) -> Self {
        ContractFacts {
            id: r.id,
            customer_id: r.customer_id,
            subject: r.subject,
            status: r.status,
            document_sha256: r.document_sha256,
        }
    }
}

fn down(service: &'static str) -> impl Fn(String) -> PeerError {
    move |reason| PeerError { service, reason }
}

impl Links {
    /// Links reached over HTTP through `upstream` (the edge).
    pub fn http(upstream: &kernel::http::Upstream) -> Result<Links, PeerError> {
        let base = upstream.url.as_str();
        let http = reqwest::Client::builder()
            .default_headers(upstream.headers())
            .timeout(Duration::from_millis(CALL_TIMEOUT_MS))
            .build()
            .map_err(|e| down("http")(e.to_string()))?;
        Ok(Links::Http {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The deposit account, if there is one with this id.
    pub async fn deposit(&self, id: &str) -> Result<Option<DepositFacts>, PeerError> {
        let down = down("deposits");
        match self {
            Links::Local { deposits, .. } => match deposits.load(id).await {
                Ok(a) if a.status == "opening" => Ok(None),
                Ok(a) => Ok(Some(DepositFacts {
                    customer_id: a.customer_id.clone(),
                    kind: serde_json::to_value(a.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    status: a.status.clone(),
                    id: a.id,
                })),
                Err(DepositError::NotFound) => Ok(None),
                Err(e) => Err(down(e.to_string())),
            },
            Links::Http { base, http } => {
                if !is_path_segment(id) {
                    return Ok(None);
                }
                #[derive(Deserialize)]
                struct Wire {
                    id: String,
                    customer_id: String,
                    kind: String,
                    status: String,
                }
                let response = http
                    .get(format!("{base}/v1/deposits/{id}"))
                    .send()
                    .await
                    .map_err(|e| down(e.to_string()))?;
                match response.status().as_u16() {
                    404 => Ok(None),
                    200 => {
                        let w: Wire = response.json().await.map_err(|e| down(e.to_string()))?;
                        Ok(Some(DepositFacts {
                            id: w.id,
                            customer_id: w.customer_id,
                            kind: w.kind,
                            status: w.status,
                        }))
                    }
                    other => Err(down(format!("HTTP {other}"))),
                }
            }
        }
    }

    /// The contract, if there is one with this id.
    pub async fn contract(&self, id: &str) -> Result<Option<ContractFacts>, PeerError> {
        let down = down("contracts");
        match self {
            Links::Local { contracts, .. } => match contracts.get(id).await {
                Ok(r) => Ok(Some(r.into())),
                Err(ContractError::NotFound) => Ok(None),
                Err(e) => Err(down(e.to_string())),
            },
            Links::Http { base, http } => {
                if !is_path_segment(id) {
                    return Ok(None);
                }
                let response = http
                    .get(format!("{base}/v1/contracts/{id}"))
                    .send()
                    .await
                    .map_err(|e| down(e.to_string()))?;
                match response.status().as_u16() {
                    404 => Ok(None),
                    200 => Ok(Some(
                        response
                            .json::<ContractWire>()
                            .await
                            .map_err(|e| down(e.to_string()))?
                            .into(),
                    )),
                    other => Err(down(format!("HTTP {other}"))),
                }
            }
        }
    }

    /// The loan's contract: the one already issued for it (its subject is the loan's id), or a
    /// new one — so issuing again after a crash finds the first instead of issuing a second.
    pub async fn loan_contract(&self, c: &LoanContract) -> Result<ContractFacts, IssueError> {
        if let Some(found) = self.find_loan_contract(c).await? {
            return Ok(found);
        }
        let particulars = Particulars {
            amount: Some(c.principal.to_string()),
            term_months: Some(c.term_months),
            grade: Some(c.grade),
        };
        match self {
            Links::Local { contracts, .. } => {
                let new = NewContract {
                    customer_id: c.customer_id.clone(),
                    product_code: c.product_code.clone(),
                    product_version: Some(c.product_version),
                    subject: Some(c.loan_id.clone()),
                    particulars,
                };
                match contracts.issue(new, None).await {
                    Ok(r) => Ok(r.into()),
                    Err(e) => {
                        let problem = contracts::api::problem(e);
                        if problem.status >= 500 {
                            Err(down("contracts")(problem.title.clone()).into())
                        } else {
                            Err(IssueError::Refused(
                                problem.code.clone(),
                                problem.detail.clone().unwrap_or_default(),
                            ))
                        }
                    }
                }
            }
            Links::Http { base, http } => {
                let down = down("contracts");
                let response = http
                    .post(format!("{base}/v1/contracts"))
                    .json(&serde_json::json!({
                        "customer_id": c.customer_id,
                        "product_code": c.product_code,
                        "product_version": c.product_version,
                        "subject": c.loan_id,
                        "particulars": particulars,
                    }))
                    .send()
                    .await
                    .map_err(|e| down(e.to_string()))?;
                let status = response.status().as_u16();
                if status == 201 {
                    return Ok(response
                        .json::<ContractWire>()
                        .await
                        .map_err(|e| down(e.to_string()))?
                        .into());
                }
                if (400..500).contains(&status) {
                    let body: serde_json::Value = response.json().await.unwrap_or_default();
                    return Err(IssueError::Refused(
                        body["code"]
                            .as_str()
                            .unwrap_or("contract_refused")
                            .to_owned(),
                        body["detail"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
                Err(down(format!("HTTP {status}")).into())
            }
        }
    }

    async fn find_loan_contract(
        &self,
        c: &LoanContract,
    ) -> Result<Option<ContractFacts>, PeerError> {
        let down = down("contracts");
        let mine = |f: &ContractFacts| {
            f.subject.as_deref() == Some(c.loan_id.as_str()) && f.status != "cancelled"
        };
        match self {
            Links::Local { contracts, .. } => {
                let mut after = None;
                loop {
                    let page = contracts
                        .list(&contracts::service::Filter {
                            customer_id: Some(c.customer_id.clone()),
                            product_code: Some(c.product_code.clone()),
                            after: after.clone(),
                            limit: 200,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| down(e.to_string()))?;
                    let last = page.last().map(|r| r.id.clone());
                    if let Some(found) = page.into_iter().map(ContractFacts::from).find(mine) {
                        return Ok(Some(found));
                    }
                    match last {
                        Some(id) => after = Some(id),
                        None => return Ok(None),
                    }
                }
            }
            Links::Http { base, http } => {
                #[derive(Deserialize)]
                struct Page {
                    items: Vec<ContractWire>,
                    next: Option<String>,
                }
                if !is_path_segment(&c.customer_id) || !is_path_segment(&c.product_code) {
                    return Ok(None);
                }
                let mut after: Option<String> = None;
                loop {
                    let mut url = format!(
                        "{base}/v1/contracts?customer_id={}&product_code={}&limit=200",
                        c.customer_id, c.product_code
                    );
                    if let Some(a) = after.as_deref().filter(|a| is_path_segment(a)) {
                        url.push_str("&after=");
                        url.push_str(a);
                    }
                    let response = http
                        .get(url)
                        .send()
                        .await
                        .map_err(|e| down(e.to_string()))?;
                    if response.status().as_u16() != 200 {
                        return Err(down(format!("HTTP {}", response.status().as_u16())));
                    }
                    let page: Page = response.json().await.map_err(|e| down(e.to_string()))?;
                    if let Some(found) = page.items.into_iter().map(ContractFacts::from).find(mine)
                    {
                        return Ok(Some(found));
                    }
                    match page.next {
                        Some(next) => after = Some(next),
                        None => return Ok(None),
                    }
                }
            }
        }
    }
}

/// Whether `id` can stand in a URL path as one segment.
fn is_path_segment(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
