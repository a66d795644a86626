//! `guard`: threat detection over the audit stream. Pure: [`Guard::observe`] takes one audit
//! [`Record`] at a time (in time order) and returns the findings it opened or updated — no
//! clock, no I/O — so every detector is tested on synthetic streams and the same code can run
//! live behind the edge or over an exported trail.
//!
//! Each detector has a window, a threshold and a severity ([`Rules`]):
//!
//! | detector | counts, per | finding when |
//! |---|---|---|
//! | `brute_force` | failed authentications claiming one key | ≥ threshold in the window |
//! | `credential_stuffing` | distinct keys claimed by failed authentications, per address | ≥ threshold |
//! | `key_many_addresses` | distinct addresses one principal called from | ≥ threshold |
//! | `new_network_privileged` | a request by an admin-role principal from a /24 (IPv4) or /48 (IPv6) it never used | the first time (after it has a history) |
//! | `bulk_regulated_reads` | reads of regulated data by one principal | ≥ threshold |
//! | `enumeration` | distinct resources answered 403/404, per principal or address | ≥ threshold |
//! | `privilege_escalation` | a principal refused (403) on the key routes (`/v1/auth/…`) | each time |
//! | `break_glass` | any request by a bootstrap admin key named in [`Rules::break_glass`] | each time |
//! | `waf_burst` | requests the firewall flagged, per address | ≥ threshold |
//!
//! A finding is opened when a detector's count reaches its threshold for a key, and updated
//! (count, last seen) while the window keeps it above; after the window empties it may open
//! again. (Audit-chain gaps are found by `audit::verify`, not from the stream.)

use std::collections::{BTreeSet, HashMap, VecDeque};

use audit::{Kind, Record};

/// How bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Worth a look today.
    Medium,
    /// Worth a look now.
    High,
    /// Act now.
    Critical,
}

impl Severity {
    /// The name lists and logs show (`low`, `medium`, `high`, `critical`; as serialized).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A detector's window and threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// How far back events count (microseconds).
    pub span_us: i64,
    /// How many make a finding.
    pub threshold: usize,
    /// How bad a finding is.
    pub severity: Severity,
}

const fn window(seconds: i64, threshold: usize, severity: Severity) -> Window {
    Window {
        span_us: seconds * 1_000_000,
        threshold,
        severity,
    }
}

/// Every detector's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Failed authentications claiming one key.
    pub brute_force: Window,
    /// Distinct keys claimed by failed authentications from one address.
    pub credential_stuffing: Window,
    /// Distinct addresses one principal called from.
    pub key_many_addresses: Window,
    /// Regulated reads by one principal.
    pub bulk_regulated_reads: Window,
    /// Distinct resources answered 403/404 to one principal or address.
    pub enumeration: Window,
    /// Firewall-flagged requests from one address.
    pub waf_burst: Window,
    /// Principals whose every use is reported (bootstrap admin keys: `key:<id>`).
    pub break_glass: BTreeSet<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            brute_force: window(300, 10, Severity::High),
            credential_stuffing: window(300, 5, Severity::High),
            key_many_addresses: window(3600, 5, Severity::Medium),
            bulk_regulated_reads: window(3600, 50, Severity::High),
            enumeration: window(300, 30, Severity::Medium),
            waf_burst: window(60, 5, Severity::High),
            break_glass: BTreeSet::from([format!("key:{}", "environment")]),
        }
    }
}

/// Something worth an operator's look.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Which detector (`brute_force`, …).
    pub kind: &'static str,
    /// How bad.
    pub severity: Severity,
    /// The principal concerned, if one is.
    pub principal: Option<String>,
    /// The address concerned, if one is.
    pub address: Option<String>,
    /// What was seen (counts, never values).
    pub evidence: String,
    /// The first event counted (microseconds since the Unix epoch).
    pub first_seen_us: i64,
    /// The last.
    pub last_seen_us: i64,
    /// Events that counted towards it: the threshold's worth, plus each one after while the
    /// window stayed at it.
    pub count: usize,
}

/// What one key's window holds, bounded: at most `threshold` entries, which is all a
/// detector needs to know whether the threshold is reached (counts saturate there).
#[derive(Default)]
struct Series {
    /// Times of the last events (counting detectors).
    times: VecDeque<i64>,
    /// The distinct things counted and when each was last seen (distinct detectors).
    distinct: HashMap<String, i64>,
    /// The finding open for this key, if any (its index in `Guard::findings`).
    open: Option<usize>,
    /// The first event of the current run above nothing.
    first_us: i64,
}

impl Series {
    /// Adds an event; returns the count in the window (at most `window.threshold`).
    fn push(&mut self, at_us: i64, what: Option<&str>, window: Window) -> usize {
        let horizon = at_us - window.span_us;
        let count = match what {
            None => {
                while self.times.front().is_some_and(|t| *t <= horizon) {
                    self.times.pop_front();
                }
                self.times.push_back(at_us);
                while self.times.len() > window.threshold.max(1) {
                    self.times.pop_front();
                }
                self.times.len()
            }
            Some(what) => {
                self.distinct.retain(|_, t| *t > horizon);
                match self.distinct.get_mut(what) {
                    Some(seen) => *seen = at_us,
                    None => {
                        self.distinct.insert(what.to_owned(), at_us);
                    }
                }
                if self.distinct.len() > window.threshold.max(1)
                    && let Some(oldest) = self
                        .distinct
                        .iter()
                        .min_by_key(|(_, t)| **t)
                        .map(|(w, _)| w.clone())
                {
                    self.distinct.remove(&oldest);
                }
                self.distinct.len()
            }
        };
        if count == 1 {
            self.first_us = at_us;
            self.open = None;
        }
        count
    }
}

/// Findings kept at most.
pub const FINDINGS_MAX: usize = 10_000;

/// Keys (principals, addresses, claimed key ids) tracked at most; past it the state starts
/// over, so a flood of new keys cannot grow memory without end.
const SERIES_MAX: usize = 100_000;

/// The detectors' state.
#[derive(Default)]
pub struct Guard {
    rules: Rules,
    series: HashMap<&'static str, HashMap<String, Series>>,
    /// Networks each privileged principal has called from.
    networks: HashMap<String, BTreeSet<u128>>,
    findings: Vec<Finding>,
    /// The open finding of each single-event detector, by principal and address.
    singles: HashMap<&'static str, HashMap<String, usize>>,
    /// Keys granted and not used yet, by the new key's principal.
    grants: HashMap<String, Grant>,
    /// Findings opened or updated since [`Guard::drain_changed`] last ran (indexes), and a
    /// flag per finding so each is listed once.
    changed: Vec<usize>,
    flagged: Vec<bool>,
}

/// A credential one principal made (a role grant), until its first use.
struct Grant {
    by: String,
    client: String,
    at_us: i64,
    admin: bool,
}

/// Grants remembered at most (the oldest are forgotten when full).
const GRANTS_MAX: usize = 10_000;
/// A grant's first use counts as the granter's own within this long.
const SELF_GRANT_US: i64 = 24 * 3_600_000_000;

/// Single events of one kind by one principal from one address within this long make one
/// finding.
const COALESCE_US: i64 = 3_600_000_000;

impl Guard {
    /// A guard with `rules`.
    pub fn new(rules: Rules) -> Guard {
        Guard {
            rules,
            ..Guard::default()
        }
    }

    /// Every finding so far, oldest first.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Adds a finding made outside the detectors (the audit chain's watcher); its index.
    pub fn report(&mut self, finding: Finding) -> usize {
        self.findings.push(finding);
        let index = self.findings.len() - 1;
        self.mark_changed(index);
        index
    }

    /// Copies of the findings opened or updated since the last call (to keep them elsewhere),
    /// and forgets that they changed.
    pub fn drain_changed(&mut self) -> Vec<Finding> {
        let changed: Vec<Finding> = self
            .changed
            .iter()
            .filter_map(|&i| self.findings.get(i).cloned())
            .collect();
        for &i in &self.changed {
            if let Some(flag) = self.flagged.get_mut(i) {
                *flag = false;
            }
        }
        self.changed.clear();
        changed
    }

    fn mark_changed(&mut self, index: usize) {
        if self.flagged.len() <= index {
            self.flagged.resize(index + 1, false);
        }
        if !self.flagged[index] {
            self.flagged[index] = true;
            self.changed.push(index);
        }
    }

    /// Takes the next record (in time order); returns the findings it opened or updated.
    pub fn observe(&mut self, r: &Record) -> Vec<Finding> {
        self.watch(r)
            .into_iter()
            .map(|i| self.findings[i].clone())
            .collect()
    }

    /// Notes that `by`, calling from `client`, made the credential `granted` (its principal,
    /// `key:<id>`) with `roles`. When that credential is first used from the same address
    /// within a day, the grant was to themselves: a `self_granted_role` finding (high when
    /// the roles include `admin`) — a principal minting itself a second credential is how a
    /// stolen session becomes persistent access, and it hides who did what behind a new id.
    pub fn granted(&mut self, at_us: i64, by: &str, client: &str, granted: &str, roles: &[String]) {
        if self.grants.len() >= GRANTS_MAX {
            let oldest = self.grants.values().map(|g| g.at_us).min().unwrap_or(at_us);
            self.grants.retain(|_, g| g.at_us > oldest);
        }
        self.grants.insert(
            granted.to_owned(),
            Grant {
                by: by.to_owned(),
                client: client.to_owned(),
                at_us,
                admin: roles.iter().any(|r| r == "admin"),
            },
        );
    }

    /// [`Guard::observe`] without copies (the live path): the indexes in
    /// [`Guard::findings`] of the findings the record opened or updated — usually none, and
    /// then nothing is allocated.
    pub fn watch(&mut self, r: &Record) -> Vec<usize> {
        let mut touched = Vec::new();
        self.take(r, &mut touched);
        for &i in &touched {
            self.mark_changed(i);
        }
        touched
    }

    fn take(&mut self, r: &Record, touched: &mut Vec<usize>) {
        if self.findings.len() >= FINDINGS_MAX {
            // Bounded: the oldest findings go (an operator reads them from the log, where
            // each was written when it opened), and the windows start over.
            self.findings.clear();
            self.series.clear();
            self.singles.clear();
            self.changed.clear();
            self.flagged.clear();
        }
        let failed_auth = r.outcome == 401;
        if failed_auth && let Some(claimed) = &r.claimed {
            let w = self.rules.brute_force;
            self.count(
                "brute_force",
                claimed,
                w,
                false,
                r,
                "",
                Some(claimed),
                None,
                touched,
            );
        }
        if failed_auth && let Some(claimed) = &r.claimed {
            let w = self.rules.credential_stuffing;
            self.count(
                "credential_stuffing",
                &r.client,
                w,
                true,
                r,
                claimed,
                None,
                Some(&r.client),
                touched,
            );
        }
        let authenticated = r.principal != "anonymous";
        if authenticated {
            let w = self.rules.key_many_addresses;
            self.count(
                "key_many_addresses",
                &r.principal,
                w,
                true,
                r,
                &r.client,
                Some(&r.principal),
                None,
                touched,
            );
        }
        if r.kind == Kind::RegulatedRead {
            let w = self.rules.bulk_regulated_reads;
            self.count(
                "bulk_regulated_reads",
                &r.principal,
                w,
                false,
                r,
                "",
                Some(&r.principal),
                None,
                touched,
            );
        }
        if r.outcome == 403 || r.outcome == 404 {
            let w = self.rules.enumeration;
            let (key, principal, address) = if authenticated {
                (r.principal.as_str(), Some(r.principal.as_str()), None)
            } else {
                (r.client.as_str(), None, Some(r.client.as_str()))
            };
            self.count(
                "enumeration",
                key,
                w,
                true,
                r,
                &r.resource,
                principal,
                address,
                touched,
            );
        }
        if r.incident.is_some() {
            let w = self.rules.waf_burst;
            self.count(
                "waf_burst",
                &r.client,
                w,
                false,
                r,
                "",
                None,
                Some(&r.client),
                touched,
            );
        }
        if authenticated && r.outcome == 403 && r.resource.starts_with("/v1/auth/") {
            self.single("privilege_escalation", Severity::High, r, touched, || {
                format!("refused on {}", r.action)
            });
        }
        if self.rules.break_glass.contains(&r.principal) {
            self.single("break_glass", Severity::Critical, r, touched, || {
                format!("bootstrap admin key used: {}", r.action)
            });
        }
        if authenticated
            && !self.grants.is_empty()
            && let Some(grant) = self.grants.remove(&r.principal)
            && grant.client == r.client
            && r.at_us - grant.at_us < SELF_GRANT_US
            && grant.by != r.principal
        {
            let severity = if grant.admin {
                Severity::High
            } else {
                Severity::Medium
            };
            self.single("self_granted_role", severity, r, touched, || {
                format!(
                    "a key {} made first used from its maker's own address",
                    grant.by
                )
            });
        }
        if r.roles.iter().any(|role| role == "admin") {
            let network = network_of(&r.client);
            let known = match self.networks.get_mut(&r.principal) {
                Some(known) => known,
                None => self.networks.entry(r.principal.clone()).or_default(),
            };
            let first_ever = known.is_empty();
            if known.insert(network) && !first_ever {
                self.single(
                    "new_network_privileged",
                    Severity::Medium,
                    r,
                    touched,
                    || {
                        format!(
                            "an admin key called from network {} for the first time",
                            network_name(&r.client)
                        )
                    },
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn count(
        &mut self,
        kind: &'static str,
        key: &str,
        window: Window,
        distinct: bool,
        r: &Record,
        what: &str,
        principal: Option<&str>,
        address: Option<&str>,
        touched: &mut Vec<usize>,
    ) {
        let of_kind = self.series.entry(kind).or_default();
        if !of_kind.contains_key(key) && of_kind.len() >= SERIES_MAX {
            of_kind.clear();
        }
        let series = match of_kind.get_mut(key) {
            Some(series) => series,
            None => of_kind.entry(key.to_owned()).or_default(),
        };
        let count = series.push(r.at_us, distinct.then_some(what), window);
        if count < window.threshold {
            return;
        }
        let first = series.first_us;
        let evidence = format!(
            "at least {count} {} within {} s",
            if distinct { "distinct" } else { "events" },
            window.span_us / 1_000_000
        );
        let index = match series.open {
            Some(i) => {
                let f = &mut self.findings[i];
                f.count += 1;
                f.last_seen_us = r.at_us;
                i
            }
            None => {
                self.findings.push(Finding {
                    kind,
                    severity: window.severity,
                    principal: principal.map(str::to_owned),
                    address: address.map(str::to_owned),
                    evidence,
                    first_seen_us: first,
                    last_seen_us: r.at_us,
                    count,
                });
                let i = self.findings.len() - 1;
                series.open = Some(i);
                i
            }
        };
        touched.push(index);
    }

    fn single(
        &mut self,
        kind: &'static str,
        severity: Severity,
        r: &Record,
        touched: &mut Vec<usize>,
        evidence: impl FnOnce() -> String,
    ) {
        // The same principal doing the same thing from the same address again within the
        // hour updates its finding.
        let of_kind = self.singles.entry(kind).or_default();
        if let Some(&i) = of_kind.get(&r.principal)
            && let Some(f) = self.findings.get_mut(i)
            && f.kind == kind
            && f.address.as_deref() == Some(r.client.as_str())
            && r.at_us - f.last_seen_us < COALESCE_US
        {
            f.count += 1;
            f.last_seen_us = r.at_us;
            touched.push(i);
            return;
        }
        of_kind.insert(r.principal.clone(), self.findings.len());
        let finding = Finding {
            kind,
            severity,
            principal: Some(r.principal.clone()),
            address: Some(r.client.clone()),
            evidence: evidence(),
            first_seen_us: r.at_us,
            last_seen_us: r.at_us,
            count: 1,
        };
        touched.push(self.findings.len());
        self.findings.push(finding);
    }
}

/// The network an address belongs to, as a number: its /24 (IPv4) or /48 (IPv6).
fn network_of(address: &str) -> u128 {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => u128::from(u32::from(v4) & 0xffff_ff00),
        Ok(std::net::IpAddr::V6(v6)) => (u128::from(v6) >> 80 << 80) | 1,
        // Not an address: its own network (hashed by its text).
        Err(_) => {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            address.hash(&mut h);
            u128::from(h.finish()) << 64 | 2
        }
    }
}

/// The network an address belongs to, as text: `a.b.c.0/24` or `x:y:z::/48`.
fn network_name(address: &str) -> String {
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => address.to_owned(),
    }
}
