//! The gate every request passes, in both shapes: a layer over `gureum up`'s router, and over
//! the edge's proxy in the split shape.
//!
//! In order: the caller headers a client wrote are dropped (only the gate sets them); the
//! route's entry in [`crate::access::ROUTES`] says what it needs; a credential is checked
//! (`401 unauthenticated`, the same answer for every reason); the permission is checked
//! (`403 permission_denied`); the body is read under a size limit (`413`) and the firewall
//! inspects the request (`403 waf-blocked` with an incident id); then the request goes on with
//! `gureum-principal` and `gureum-permissions` set, under a time limit (`504`), and every
//! answer gets the security headers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kernel::Problem;
use kernel::http::{CUSTOMER_HEADER, PERMISSIONS_HEADER, PRINCIPAL_HEADER};

use crate::access::{self, Access};
use crate::keys::{Keys, Principal};
use crate::oidc::Oidc;

/// The largest request body the gate lets through (the ledger's own limit is 40 MiB).
pub const BODY_BYTES_MAX: usize = 41 << 20;
/// How long a request may take, end of day excepted.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Routes that may run for minutes (end of day over every account or loan).
const LONG_RUNNING: [&str; 2] = ["/v1/deposits/eod", "/v1/loans/eod"];
/// An `Authorization` header longer than this is not a credential.
const AUTHORIZATION_BYTES_MAX: usize = 4096;

/// How the gate behaves.
#[derive(Clone, Debug)]
pub struct GateConfig {
    /// The firewall's configuration.
    pub waf: waf::Config,
    /// The largest body let through.
    pub body_bytes_max: usize,
    /// How long a request may take.
    pub request_timeout: Duration,
    /// Whether clients reach this over TLS (then `Strict-Transport-Security` is sent).
    pub tls: bool,
    /// Rate limits.
    pub limits: crate::limits::LimitsConfig,
    /// Whether findings block their address or principal for a while.
    pub response: crate::blocks::ResponseConfig,
    /// The proxies in front whose `X-Forwarded-For` names the client (see `proxies`).
    pub trusted_proxies: crate::proxies::TrustedProxies,
    /// What the threat detectors read.
    pub detectors: Detectors,
}

/// What the threat detectors read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Detectors {
    /// Each request as it passes this gate: at once, and only this gate's (one edge).
    #[default]
    EachRequest,
    /// The audit trail every edge appends to, as [`Gate::watch_chain`] reads it: every
    /// replica's requests, a moment after they are committed — so an attack spread over
    /// replicas behind a load balancer counts whole at each (the split shape on a shared
    /// database).
    SharedTrail,
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            waf: waf::Config::default(),
            body_bytes_max: BODY_BYTES_MAX,
            request_timeout: REQUEST_TIMEOUT,
            tls: false,
            limits: crate::limits::LimitsConfig::default(),
            response: crate::blocks::ResponseConfig::default(),
            trusted_proxies: crate::proxies::TrustedProxies::default(),
            detectors: Detectors::EachRequest,
        }
    }
}

/// The gate: the keys, the firewall, the limits and the audit trail.
pub struct Gate {
    keys: Arc<Keys>,
    waf: waf::Engine,
    config: GateConfig,
    audit: Option<audit::writer::Auditor>,
    limits: crate::limits::Limits,
    guard: std::sync::Mutex<guard::Guard>,
    tokens: Option<Arc<Oidc>>,
    blocks: crate::blocks::Blocks,
}

impl Gate {
    /// A gate over `keys`, recording every request to `audit` (if given); fails if the
    /// firewall's configuration is unusable.
    pub fn new(
        keys: Arc<Keys>,
        config: GateConfig,
        audit: Option<audit::writer::Auditor>,
    ) -> Result<Gate, waf::ConfigError> {
        // Every use of a bootstrap admin key is reported.
        let mut rules = guard::Rules::default();
        rules.break_glass.extend(
            keys.list()
                .into_iter()
                .filter(|k| k.bootstrap)
                .map(|k| format!("key:{}", k.id)),
        );
        Ok(Gate {
            guard: std::sync::Mutex::new(guard::Guard::new(rules)),
            keys,
            waf: waf::Engine::new(config.waf.clone())?,
            limits: crate::limits::Limits::new(config.limits),
            config,
            audit,
            tokens: None,
            blocks: crate::blocks::Blocks::default(),
        })
    }

    /// Accepts OpenID Connect bearer tokens `tokens` verifies, beside API keys.
    pub fn with_tokens(mut self, tokens: Arc<Oidc>) -> Gate {
        self.tokens = Some(tokens);
        self
    }

    /// The findings of the threat detectors so far, oldest first.
    pub fn findings(&self) -> Vec<guard::Finding> {
        self.guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .findings()
            .to_vec()
    }

    /// The findings opened or updated since the last call (to keep them in the database).
    pub fn drain_changed_findings(&self) -> Vec<guard::Finding> {
        self.guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain_changed()
    }

    /// Keeps the rate limits in Redis, shared with the other edges.
    pub fn with_shared_limits(mut self, shared: crate::limits::Shared) -> Gate {
        self.limits.share(shared);
        self
    }

    /// Records a finding made outside the detectors (logged like theirs).
    pub fn report(&self, finding: guard::Finding) {
        tracing::error!(
            kind = finding.kind,
            severity = ?finding.severity,
            evidence = %finding.evidence,
            "guard: finding"
        );
        self.guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .report(finding);
    }

    /// Watches the audit trail `log` as it grows: every `every`, the entries appended since
    /// are checked against the chain (from its head when the watch began), and that none went
    /// missing from its end. The first break becomes an `audit_chain_broken` finding
    /// (critical) and the checking stops: `gureum audit verify` says the rest. With
    /// [`Detectors::SharedTrail`], each entry that checks out goes to the detectors too — and
    /// after a break the entries still go to them, unchecked: whoever broke the chain must not
    /// have turned the detectors off as well.
    pub async fn watch_chain(self: Arc<Self>, log: audit::log::AuditLog, every: Duration) {
        let mut verifier = loop {
            match log.head().await {
                Ok(Some((seq, hash))) => break audit::Verifier::after(seq, hash),
                Ok(None) => break audit::Verifier::default(),
                Err(e) => {
                    tracing::warn!(error = %e, "audit: cannot read the trail's head; trying again");
                    tokio::time::sleep(every).await;
                }
            }
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let from_trail = self.config.detectors == Detectors::SharedTrail;
            let checked = log
                .verify_more_each(&mut verifier, |stored| {
                    if from_trail {
                        self.watch_stored(stored);
                    }
                })
                .await;
            match checked {
                Ok(Ok(())) => {}
                Ok(Err(broken)) => {
                    let now = store::sql::now_us();
                    self.report(guard::Finding {
                        kind: "audit_chain_broken",
                        severity: guard::Severity::Critical,
                        principal: None,
                        address: None,
                        evidence: broken.to_string(),
                        first_seen_us: now,
                        last_seen_us: now,
                        count: 1,
                    });
                    if from_trail {
                        self.detect_unchecked(&log, verifier.last_seq(), tick).await;
                    }
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "audit: cannot read the trail to watch it"),
            }
        }
    }

    /// Hands the trail's entries after `after` to the detectors at every `tick`, without
    /// checking the chain (it is broken). If the trail was cut short, goes on from its new end.
    async fn detect_unchecked(
        &self,
        log: &audit::log::AuditLog,
        after: i64,
        mut tick: tokio::time::Interval,
    ) {
        let mut cursor = match log.head().await {
            Ok(Some((head, _))) => after.min(head),
            Ok(None) => 0,
            Err(_) => after,
        };
        loop {
            tick.tick().await;
            let read = log
                .scan_after(cursor, |stored| -> Result<(), audit::log::AuditError> {
                    cursor = stored.seq;
                    self.watch_stored(stored);
                    Ok(())
                })
                .await;
            if let Err(e) = read {
                tracing::warn!(error = %e, "guard: cannot read the trail; trying again");
            }
        }
    }

    /// Hands an entry read from the trail to the detectors. Its hash checked out, so its body
    /// is what the gate wrote; one that does not parse (a newer version's fields) is skipped.
    fn watch_stored(&self, stored: &audit::Stored) {
        match serde_json::from_str::<audit::Record>(&stored.body) {
            Ok(record) => watch(self, &record),
            Err(e) => tracing::warn!(
                seq = stored.seq,
                error = %e,
                "guard: an audit entry does not read as a record; the detectors skip it"
            ),
        }
    }

    /// Tells the detectors that `by`, calling from `client`, made the credential `granted`
    /// (`key:<id>`) with `roles` (see `guard::Guard::granted`).
    pub fn granted(&self, by: &Principal, client: &str, granted: &str, roles: &[String]) {
        self.guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .granted(store::sql::now_us(), &by.id, client, granted, roles);
    }

    /// The blocks in force (the automatic response to findings).
    pub fn blocks(&self) -> &crate::blocks::Blocks {
        &self.blocks
    }

    /// The keys the gate checks credentials against.
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    /// Puts the gate in front of every route (and the fallback) of `router`.
    pub fn protect(self: &Arc<Self>, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), pass))
    }
}

/// What the gate learnt about a request, for its audit record.
#[derive(Default)]
struct Seen {
    principal: Option<Arc<Principal>>,
    claimed: Option<String>,
    incident: Option<String>,
}

/// The middleware: see the module's documentation.
pub async fn pass(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let at_us = store::sql::now_us();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let unmasking = request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|p| p.starts_with("unmask=") && p.len() > 7)
    });
    let user_agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(USER_AGENT_CHARS_MAX).collect::<String>());
    let trace_id = kernel::http::trace_parent(request.headers()).map(|t| audit::hex(&t.trace_id));
    let client = gate.client_of(&request);
    request
        .extensions_mut()
        .insert(ClientAddress(client.clone()));
    // HEAD is served by the GET route, so it needs what GET needs.
    let method_name = if method == axum::http::Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let route = access::route(method_name, &path);
    let mut seen = Seen::default();
    let mut response = admit(&gate, route, &client, request, next, &mut seen).await;
    security_headers(response.headers_mut(), gate.config.tls);
    {
        let outcome = response.status().as_u16();
        let regulated = response.status().is_success()
            && method == axum::http::Method::GET
            && route.is_some_and(|r| {
                (r.path == "/v1/customers/{id}" && unmasking)
                    || r.path == "/v1/customers/{id}/export"
            });
        let principal = seen.principal.as_ref();
        let record = audit::Record {
            at_us,
            kind: if regulated {
                audit::Kind::RegulatedRead
            } else {
                audit::Kind::Request
            },
            principal: principal
                .map_or_else(|| kernel::http::ANONYMOUS.to_owned(), |p| p.id.clone()),
            claimed: seen.claimed,
            roles: principal.map_or_else(Vec::new, |p| {
                p.roles.iter().map(|r| r.name().to_owned()).collect()
            }),
            action: format!("{method} {}", route.map_or(path.as_str(), |r| r.path)),
            resource: path,
            outcome,
            client,
            user_agent,
            trace_id,
            incident: seen.incident,
        };
        if gate.config.detectors == Detectors::EachRequest {
            watch(&gate, &record);
        }
        if let Some(auditor) = &gate.audit {
            auditor.record(record).await;
        }
    }
    response
}

/// The client's address the gate settled on (see [`Gate::client_of`]), in a request's
/// extensions for the handlers behind it.
#[derive(Clone, Debug)]
pub struct ClientAddress(pub String);

/// The client's address as the gate recorded it ([`ClientAddress`]), else the connection's
/// peer; `unknown` without either.
pub fn client_of(extensions: &axum::http::Extensions) -> String {
    if let Some(ClientAddress(address)) = extensions.get::<ClientAddress>() {
        return address.clone();
    }
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

impl Gate {
    /// Where `request` came from: the connection's peer, or — when the peer is a trusted
    /// proxy — the first address in `X-Forwarded-For`, from the right, that is not one.
    fn client_of(&self, request: &Request) -> String {
        let Some(peer) = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
        else {
            return "unknown".to_owned();
        };
        let forwarded: Vec<&str> = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        self.config
            .trusted_proxies
            .client(peer, forwarded.into_iter())
            .to_string()
    }
}

/// Hands the record to the threat detectors; logs each finding they open (kind, severity,
/// who, where, counts — never a value) and, when the response is on, blocks what a finding of
/// a blocking kind names.
fn watch(gate: &Gate, record: &audit::Record) {
    let mut guard = gate.guard.lock().unwrap_or_else(|e| e.into_inner());
    let before = guard.findings().len();
    let touched = guard.watch(record);
    for index in touched {
        let finding = &guard.findings()[index];
        if index >= before {
            tracing::warn!(
                kind = finding.kind,
                severity = ?finding.severity,
                principal = finding.principal.as_deref().unwrap_or(""),
                address = finding.address.as_deref().unwrap_or(""),
                evidence = %finding.evidence,
                "guard: finding"
            );
        }
        respond(gate, finding, record.at_us);
    }
}

/// Blocks the address a finding names, else its principal — when the response is on and the
/// kind blocks; never the services' key or a bootstrap admin key.
fn respond(gate: &Gate, finding: &guard::Finding, now_us: i64) {
    let response = &gate.config.response;
    if !response.enabled || !response.kinds.iter().any(|k| k == finding.kind) {
        return;
    }
    let subject = match (&finding.address, &finding.principal) {
        // A trusted proxy is many clients: blocking it would shut them all out.
        (Some(address), _)
            if address
                .parse()
                .is_ok_and(|ip| gate.config.trusted_proxies.trusts(ip)) =>
        {
            return;
        }
        (Some(address), _) => crate::blocks::address(address),
        (None, Some(principal)) => {
            let exempt = principal == &format!("key:{}", crate::keys::SERVICE_KEY_ID)
                || gate.keys.is_bootstrap(principal);
            if exempt {
                return;
            }
            crate::blocks::principal(principal)
        }
        (None, None) => return,
    };
    let until_us = finding
        .last_seen_us
        .saturating_add(i64::try_from(response.block_for.as_micros()).unwrap_or(i64::MAX));
    if gate.blocks.block(&subject, finding.kind, now_us, until_us) {
        tracing::warn!(
            %subject,
            kind = finding.kind,
            seconds = response.block_for.as_secs(),
            "guard: blocked"
        );
    }
}

/// A `User-Agent` is recorded up to this many characters.
const USER_AGENT_CHARS_MAX: usize = 200;

async fn admit(
    gate: &Gate,
    route: Option<&'static access::Route>,
    client: &str,
    mut request: Request,
    next: Next,
    seen: &mut Seen,
) -> Response {
    let headers = request.headers_mut();
    headers.remove(PRINCIPAL_HEADER);
    headers.remove(PERMISSIONS_HEADER);
    headers.remove(CUSTOMER_HEADER);
    // Where a request came from is what the gate settled on (the peer, or what trusted
    // proxies say), never what the client wrote: the services read it from here.
    headers.remove("x-forwarded-for");
    if let Ok(value) = axum::http::HeaderValue::from_str(client)
        && client != "unknown"
    {
        headers.insert("x-forwarded-for", value);
    }
    let path = request.uri().path();
    let access = match route {
        Some(route) => route.access,
        // Deny by default: an unknown /v1 route is only told 404/405 after authentication.
        None if path.starts_with("/v1/") => Access::Authenticated,
        None => Access::Public,
    };
    let long_running = LONG_RUNNING.contains(&path);
    let now_us = store::sql::now_us();
    if access != Access::Public
        && let Some(seconds) = gate.blocks.check_address(client, now_us)
    {
        return blocked_for_a_while(seconds);
    }
    // An address that failed to authenticate too often waits before it may try again, whatever
    // it sends: with a credential that checks out (told with the address's and the principal's
    // budgets below, one round trip for all when the budgets are in Redis), a wrong one or
    // none. Every request spends from its address's budget.
    let principal = match access {
        Access::Public => {
            if let Err(refusal) = gate
                .limits
                .anonymous(client, crate::limits::Failure::None, now_us)
                .await
            {
                return refused(refusal);
            }
            None
        }
        Access::Authenticated | Access::Permission(_) | Access::Own { .. } => {
            match authenticate(gate, request.headers()).await {
                Ok(principal) => Some(principal),
                Err(claimed) => {
                    seen.claimed = claimed;
                    // Only a credential that failed counts (guessing), not a missing one.
                    let failure = if request.headers().contains_key(header::AUTHORIZATION) {
                        crate::limits::Failure::Spent
                    } else {
                        crate::limits::Failure::Looked
                    };
                    if let Err(refusal) = gate.limits.anonymous(client, failure, now_us).await {
                        return refused(refusal);
                    }
                    return unauthenticated();
                }
            }
        }
    };
    seen.principal = principal.clone();
    if let Some(principal) = &principal
        && let Some(seconds) = gate.blocks.check_principal(&principal.id, now_us)
    {
        return blocked_for_a_while(seconds);
    }
    if let Some(principal) = &principal
        && let Err(refusal) = gate.limits.admit(client, &principal.id, now_us).await
    {
        return refused(refusal);
    }
    if let Some(principal) = &principal {
        let grant = access.grant(&principal.permissions, principal.customer.is_some());
        if grant == crate::access::Grant::None {
            let needed = match access {
                Access::Permission(p) | Access::Own { all: p, .. } => p,
                Access::Public | Access::Authenticated => "",
            };
            return Problem::new(403, "permission_denied", "Permission denied")
                .with_detail(format!("this action needs the permission `{needed}`"))
                .into_response();
        }
    }
    let (mut parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, gate.config.body_bytes_max).await {
        Ok(body) => body,
        Err(_) => {
            return Problem::new(413, "body_too_large", "The request body is too large")
                .with_detail(format!(
                    "a request body holds at most {} bytes",
                    gate.config.body_bytes_max
                ))
                .into_response();
        }
    };
    let verdict = inspect(&gate.waf, &parts, &body);
    if verdict.attack {
        let incident = uuid::Uuid::now_v7().to_string();
        seen.incident = Some(incident.clone());
        let rules: Vec<&str> = verdict.matches.iter().map(|m| m.rule).collect();
        let locations: Vec<&str> = verdict
            .matches
            .iter()
            .map(|m| m.location.as_str())
            .collect();
        // The verdict names rules and places, never values: safe to log.
        tracing::warn!(
            %incident,
            principal = principal.as_ref().map_or("anonymous", |p| p.id.as_str()),
            method = %parts.method,
            path = %parts.uri.path(),
            score = verdict.score,
            rules = ?rules,
            locations = ?locations,
            blocked = verdict.blocked,
            "firewall: attack detected"
        );
        if verdict.blocked {
            return blocked(&incident);
        }
    }
    if let Some(principal) = &principal {
        if let Ok(value) = HeaderValue::from_str(&principal.id) {
            parts.headers.insert(PRINCIPAL_HEADER, value);
        }
        if let Ok(value) = HeaderValue::from_str(&principal.permissions_header()) {
            parts.headers.insert(PERMISSIONS_HEADER, value);
        }
        // A customer's credential: the services answer with that customer's records only.
        if let Some(customer) = &principal.customer
            && let Ok(value) = HeaderValue::from_str(customer)
        {
            parts.headers.insert(CUSTOMER_HEADER, value);
        }
        parts.extensions.insert(Arc::clone(principal));
    }
    let request = Request::from_parts(parts, Body::from(body));
    if long_running {
        return next.run(request).await;
    }
    match tokio::time::timeout(gate.config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Problem::new(504, "request_timeout", "The request took too long")
            .with_detail(
                "the request may or may not have been applied; retrying a write with the same \
                 ids or idempotency key is safe",
            )
            .into_response(),
    }
}

/// The principal of the request's `Authorization: Bearer …` credential (an API key, or a
/// token when tokens are accepted); else whom it claimed to be (`key:<id>`, `oidc:<sub>`), if
/// it named anyone.
async fn authenticate(gate: &Gate, headers: &HeaderMap) -> Result<Arc<Principal>, Option<String>> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= AUTHORIZATION_BYTES_MAX)
        .ok_or(None)?;
    let (scheme, credential) = value.split_once(' ').ok_or(None)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(None);
    }
    let credential = credential.trim();
    if let Some(tokens) = &gate.tokens
        && Oidc::looks_like_token(credential)
    {
        if let Some(principal) = tokens.authenticate(credential).await {
            return Ok(principal);
        }
        // An environment key may hold dots too.
        return gate
            .keys
            .authenticate(credential, store::sql::now_us())
            .ok_or_else(|| Oidc::claimed(credential));
    }
    gate.keys
        .authenticate(credential, store::sql::now_us())
        .ok_or_else(|| crate::keys::parse_id(credential).map(|id| format!("key:{id}")))
}

fn inspect(engine: &waf::Engine, parts: &axum::http::request::Parts, body: &[u8]) -> waf::Verdict {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let lossy: Vec<(&str, std::borrow::Cow<'_, str>)> = parts
        .headers
        .iter()
        // The credential was checked strictly above; random key material must not trip a rule.
        .filter(|(name, _)| *name != header::AUTHORIZATION)
        .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes())))
        .collect();
    let headers: Vec<(&str, &str)> = lossy.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    engine.inspect(&waf::Request {
        method: parts.method.as_str(),
        target,
        headers: &headers,
        body,
    })
}

/// 429 `rate_limited` with `Retry-After`.
/// 429 for what a budget refused (see [`crate::limits`]).
fn refused(refusal: crate::limits::Refusal) -> Response {
    use crate::limits::Refusal;
    match refusal {
        Refusal::Failures(seconds) => {
            rate_limited(seconds, "too many failed authentications from this address")
        }
        Refusal::Address(seconds) => rate_limited(
            seconds,
            "this address sent more requests than its rate allows",
        ),
        Refusal::Principal(seconds) => {
            rate_limited(seconds, "this key sent more requests than its rate allows")
        }
    }
}

fn rate_limited(seconds: u64, why: &str) -> Response {
    let seconds = seconds.min(RETRY_AFTER_MAX_SECONDS);
    retry_after(
        Problem::new(429, "rate_limited", "Too many requests")
            .with_detail(format!("{why}; retry after {seconds} s")),
        seconds,
    )
}

/// 403 `temporarily_blocked` with `Retry-After`: a finding blocked the caller's address or key.
fn blocked_for_a_while(seconds: u64) -> Response {
    let seconds = seconds.min(RETRY_AFTER_MAX_SECONDS);
    retry_after(
        Problem::new(403, "temporarily_blocked", "Temporarily blocked").with_detail(format!(
            "requests from this address or key are blocked for {seconds} s after a security \
             finding; if this is wrong, ask the operator to lift the block"
        )),
        seconds,
    )
}

/// `problem` with `Retry-After: seconds`.
fn retry_after(problem: Problem, seconds: u64) -> Response {
    let mut response = problem.into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The longest `Retry-After` the gate announces.
const RETRY_AFTER_MAX_SECONDS: u64 = 3600;

/// 401, the same for a missing, malformed, unknown, wrong, expired or revoked credential.
fn unauthenticated() -> Response {
    let mut response = Problem::new(401, "unauthenticated", "Authentication required")
        .with_detail("send a valid API key or token as `Authorization: Bearer <credential>`")
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gureum\""),
    );
    response
}

/// The code (and last segment of the type) of a request the firewall blocked.
pub const WAF_BLOCKED: &str = "waf-blocked";

/// 403 `waf-blocked` with the incident id the operator finds in the log.
fn blocked(incident: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("{}{WAF_BLOCKED}", kernel::problem::PROBLEM_TYPE_BASE),
        "title": "Request blocked",
        "status": 403,
        "detail": format!(
            "the web application firewall blocked this request; if it was legitimate, give \
             the operator incident {incident}"
        ),
        "code": WAF_BLOCKED,
        "incident": incident,
    });
    let mut response = (StatusCode::FORBIDDEN, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kernel::problem::PROBLEM_CONTENT_TYPE),
    );
    response
}

/// The headers every answer carries: an API's answers are never framed, sniffed, cached or
/// sent on as a referrer.
fn security_headers(headers: &mut HeaderMap, tls: bool) {
    let set = |headers: &mut HeaderMap, name: HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    );
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    if tls {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
}
