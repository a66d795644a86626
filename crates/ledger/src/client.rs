//! The ledger as another service uses it: the engine in this process (`gureum up`), or the
//! ledger's HTTP API (the split shape, through the edge, which routes to the leading node).
//!
//! Both answer with the core's own types and result codes. Transfers and accounts are
//! idempotent by id, so a call that failed in transit may be repeated with the same ids: the
//! ledger answers `exists` for what it already applied. The HTTP client repeats a call itself
//! (a bounded number of times) when the ledger could not be reached or was switching leaders.

use crate::api::{AccountResponse, BalancePage, EventResult, TransferPage, TransferResponse};
use crate::engine::Engine;
use crate::{
    Account, AccountEvent, AccountFlags, Balances, CreateAccountResult, CreateTransferResult, Page,
    PageQuery, PendingStatus, Transfer, TransferEvent, TransferFlags, TransferView,
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// How many times the HTTP client tries one call.
const ATTEMPTS_MAX: u32 = 5;
/// The pause before the second try; it doubles after each.
const BACKOFF_MS: u64 = 100;
/// How long one HTTP call may take.
const CALL_TIMEOUT_MS: u64 = 10_000;

/// Why a ledger call failed. Either way nothing is known to have been applied: repeat the call
/// with the same ids to find out.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The ledger could not be reached, or it is not serving.
    #[error("the ledger is unavailable: {0}")]
    Unavailable(String),
    /// The ledger answered something this client does not understand.
    #[error("the ledger answered unexpectedly: {0}")]
    Protocol(String),
}

/// A ledger: in this process or over HTTP.
#[derive(Clone)]
pub enum LedgerClient {
    /// The engine of this process.
    Local(Arc<Engine>),
    /// The ledger API at a base URL, e.g. `http://edge:8080`.
    Http(HttpLedger),
}

/// The ledger's HTTP API.
#[derive(Clone)]
pub struct HttpLedger {
    base: String,
    http: reqwest::Client,
}

impl HttpLedger {
    /// A client for the ledger API through `upstream` (the edge, or a ledger node).
    pub fn new(upstream: &kernel::http::Upstream) -> Result<HttpLedger, ClientError> {
        let base = upstream.url.as_str();
        let http = reqwest::Client::builder()
            .default_headers(upstream.headers())
            .timeout(Duration::from_millis(CALL_TIMEOUT_MS))
            .build()
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        Ok(HttpLedger {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }
}

impl LedgerClient {
    /// Creates accounts; one result per event, in order.
    pub async fn create_accounts(
        &self,
        events: Vec<AccountEvent>,
    ) -> Result<Vec<CreateAccountResult>, ClientError> {
        match self {
            LedgerClient::Local(engine) => engine.create_accounts(events).await.map_err(local),
            LedgerClient::Http(h) => {
                let body: Vec<Value> = events.iter().map(account_json).collect();
                let results: Vec<EventResult> = h.post("/v1/ledger/accounts", &body).await?;
                decode_results(&results, events.len(), CreateAccountResult::ALL, |r| {
                    r.name()
                })
            }
        }
    }

    /// Creates transfers; one result per event, in order.
    pub async fn create_transfers(
        &self,
        events: Vec<TransferEvent>,
    ) -> Result<Vec<CreateTransferResult>, ClientError> {
        match self {
            LedgerClient::Local(engine) => engine.create_transfers(events).await.map_err(local),
            LedgerClient::Http(h) => {
                let body: Vec<Value> = events.iter().map(transfer_json).collect();
                let results: Vec<EventResult> = h.post("/v1/ledger/transfers", &body).await?;
                decode_results(&results, events.len(), CreateTransferResult::ALL, |r| {
                    r.name()
                })
            }
        }
    }

    /// The account, if it exists.
    pub async fn account(&self, id: u128) -> Result<Option<Account>, ClientError> {
        match self {
            LedgerClient::Local(engine) => engine
                .query(move |l| l.account(id).map(|(a, _)| *a))
                .await
                .map_err(local),
            LedgerClient::Http(h) => {
                let found: Option<AccountResponse> =
                    h.get(&format!("/v1/ledger/accounts/{id}")).await?;
                found.map(account_from).transpose()
            }
        }
    }

    /// The transfer, if it exists, with where it stands if it is pending.
    pub async fn transfer(&self, id: u128) -> Result<Option<TransferView>, ClientError> {
        match self {
            LedgerClient::Local(engine) => {
                engine.query(move |l| l.transfer(id)).await.map_err(local)
            }
            LedgerClient::Http(h) => {
                let found: Option<TransferResponse> =
                    h.get(&format!("/v1/ledger/transfers/{id}")).await?;
                found.map(transfer_from).transpose()
            }
        }
    }

    /// The balances of an account flagged `history` just after the last change at or before
    /// `timestamp` (all zero if nothing changed it by then); `None` if there is no account.
    pub async fn balances_at(
        &self,
        id: u128,
        timestamp: u64,
    ) -> Result<Option<Balances>, ClientError> {
        let query = PageQuery {
            limit: 1,
            reverse: true,
            timestamp_max: timestamp,
            ..PageQuery::default()
        };
        let page = match self {
            LedgerClient::Local(engine) => engine
                .query(move |l| {
                    l.account_balances(id, query)
                        .map(|p| p.items.first().map(|e| e.balances))
                })
                .await
                .map_err(local)?,
            LedgerClient::Http(h) => {
                let found: Option<BalancePage> = h
                    .get(&format!(
                        "/v1/ledger/accounts/{id}/balances?limit=1&reverse=true&timestamp_max={timestamp}"
                    ))
                    .await?;
                found.map(|p| {
                    p.balances.first().map(|b| Balances {
                        debits_pending: b.debits_pending,
                        debits_posted: b.debits_posted,
                        credits_pending: b.credits_pending,
                        credits_posted: b.credits_posted,
                    })
                })
            }
        };
        Ok(page.map(Option::unwrap_or_default))
    }

    /// A page of the account's transfers; `None` if there is no account.
    pub async fn account_transfers(
        &self,
        id: u128,
        query: PageQuery,
    ) -> Result<Option<Page<TransferView>>, ClientError> {
        match self {
            LedgerClient::Local(engine) => engine
                .query(move |l| l.account_transfers(id, query))
                .await
                .map_err(local),
            LedgerClient::Http(h) => {
                let mut path = format!(
                    "/v1/ledger/accounts/{id}/transfers?limit={}&reverse={}&timestamp_min={}&timestamp_max={}",
                    query.limit, query.reverse, query.timestamp_min, query.timestamp_max
                );
                if let Some(after) = query.after {
                    path.push_str(&format!("&after={after}"));
                }
                let Some(page): Option<TransferPage> = h.get(&path).await? else {
                    return Ok(None);
                };
                let items = page
                    .transfers
                    .into_iter()
                    .map(transfer_from)
                    .collect::<Result<_, _>>()?;
                let next = page
                    .next
                    .map(|n| u64::try_from(n).map_err(|_| ClientError::Protocol("cursor".into())))
                    .transpose()?;
                Ok(Some(Page { items, next }))
            }
        }
    }
}

fn local(e: crate::engine::EngineError) -> ClientError {
    ClientError::Unavailable(e.to_string())
}

impl HttpLedger {
    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &[Value],
    ) -> Result<T, ClientError> {
        let url = format!("{}{path}", self.base);
        self.call(|| self.http.post(&url).json(body))
            .await?
            .ok_or_else(|| ClientError::Protocol(format!("{path}: 404")))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, ClientError> {
        let url = format!("{}{path}", self.base);
        self.call(|| self.http.get(&url)).await
    }

    /// Sends a request, repeating it while the ledger is unreachable or answers 503 (a standby,
    /// a leader change); `None` for a 404.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Option<T>, ClientError> {
        let mut last = String::new();
        for attempt in 0..ATTEMPTS_MAX {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(BACKOFF_MS << (attempt - 1))).await;
            }
            let response = match request().send().await {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                || status == reqwest::StatusCode::BAD_GATEWAY
            {
                last = format!("HTTP {status}");
                continue;
            }
            if !status.is_success() {
                let body = response.text().await.unwrap_or_default();
                return Err(ClientError::Protocol(format!("HTTP {status}: {body}")));
            }
            return response
                .json()
                .await
                .map(Some)
                .map_err(|e| ClientError::Protocol(e.to_string()));
        }
        Err(ClientError::Unavailable(last))
    }
}

fn decode_results<R: Copy>(
    results: &[EventResult],
    expected: usize,
    all: &[R],
    name: fn(R) -> &'static str,
) -> Result<Vec<R>, ClientError> {
    if results.len() != expected || results.iter().enumerate().any(|(i, r)| r.index != i) {
        return Err(ClientError::Protocol(
            "results do not match the events sent".into(),
        ));
    }
    results
        .iter()
        .map(|r| {
            all.iter()
                .copied()
                .find(|c| name(*c) == r.result)
                .ok_or_else(|| ClientError::Protocol(format!("unknown result `{}`", r.result)))
        })
        .collect()
}

fn metadata_value(metadata: &Option<Box<str>>) -> Value {
    metadata
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or(Value::Null)
}

fn account_json(e: &AccountEvent) -> Value {
    let a = &e.account;
    let mut v = json!({
        "id": a.id.to_string(),
        "ledger": a.ledger,
        "code": a.code,
        "flags": a.flags.names(),
        "user_data_128": a.user_data_128.to_string(),
        "user_data_64": a.user_data_64.to_string(),
        "user_data_32": a.user_data_32,
    });
    if e.metadata.is_some() {
        v["metadata"] = metadata_value(&e.metadata);
    }
    v
}

fn transfer_json(e: &TransferEvent) -> Value {
    let t = &e.transfer;
    let mut v = json!({
        "id": t.id.to_string(),
        "debit_account_id": t.debit_account_id.to_string(),
        "credit_account_id": t.credit_account_id.to_string(),
        "amount": t.amount.to_string(),
        "pending_id": t.pending_id.to_string(),
        "user_data_128": t.user_data_128.to_string(),
        "user_data_64": t.user_data_64.to_string(),
        "user_data_32": t.user_data_32,
        "timeout": t.timeout,
        "ledger": t.ledger,
        "code": t.code,
        "flags": t.flags.names(),
    });
    if e.metadata.is_some() {
        v["metadata"] = metadata_value(&e.metadata);
    }
    v
}

fn flags<F: Copy>(
    names: &[String],
    from_name: fn(&str) -> Option<F>,
    bits: fn(F) -> u16,
) -> Result<u16, ClientError> {
    names.iter().try_fold(0u16, |acc, n| {
        from_name(n)
            .map(|f| acc | bits(f))
            .ok_or_else(|| ClientError::Protocol(format!("unknown flag `{n}`")))
    })
}

fn account_from(a: AccountResponse) -> Result<Account, ClientError> {
    Ok(Account {
        id: a.id,
        debits_pending: a.debits_pending,
        debits_posted: a.debits_posted,
        credits_pending: a.credits_pending,
        credits_posted: a.credits_posted,
        user_data_128: a.user_data_128,
        user_data_64: a.user_data_64,
        user_data_32: a.user_data_32,
        ledger: a.ledger,
        code: a.code,
        flags: AccountFlags(flags(&a.flags, AccountFlags::from_name, |f| f.0)?),
        timestamp: a.timestamp,
    })
}

fn transfer_from(t: TransferResponse) -> Result<TransferView, ClientError> {
    let pending_status = match t.pending_status.as_deref() {
        None => None,
        Some(name) => Some(
            [
                PendingStatus::Pending,
                PendingStatus::Posted,
                PendingStatus::Voided,
                PendingStatus::Expired,
            ]
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| ClientError::Protocol(format!("unknown status `{name}`")))?,
        ),
    };
    Ok(TransferView {
        transfer: Transfer {
            id: t.id,
            debit_account_id: t.debit_account_id,
            credit_account_id: t.credit_account_id,
            amount: t.amount,
            pending_id: t.pending_id,
            user_data_128: t.user_data_128,
            user_data_64: t.user_data_64,
            user_data_32: t.user_data_32,
            timeout: t.timeout,
            ledger: t.ledger,
            code: t.code,
            flags: TransferFlags(flags(&t.flags, TransferFlags::from_name, |f| f.0)?),
            timestamp: t.timestamp,
        },
        metadata: t.metadata.map(|m| m.get().to_owned().into_boxed_str()),
        pending_status,
    })
}
