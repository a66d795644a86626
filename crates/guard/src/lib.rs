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
    fn push(&mut self, at_us: i64, what: Option<String>, window: Window) -> usize {
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
                self.distinct.insert(what, at_us);
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
    series: HashMap<(&'static str, String), Series>,
    /// Networks each privileged principal has called from.
    networks: HashMap<String, BTreeSet<String>>,
    findings: Vec<Finding>,
    /// The open finding of each single-event detector, by principal and address.
    singles: HashMap<(&'static str, String), usize>,
}

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

    /// Takes the next record (in time order); returns the findings it opened or updated.
    pub fn observe(&mut self, r: &Record) -> Vec<Finding> {
        if self.findings.len() >= FINDINGS_MAX {
            // Bounded: the oldest findings go (an operator reads them from the log, where
            // each was written when it opened), and the windows start over.
            self.findings.clear();
            self.series.clear();
            self.singles.clear();
        }
        let mut touched = Vec::new();
        let failed_auth = r.outcome == 401;
        if failed_auth && let Some(claimed) = &r.claimed {
            let w = self.rules.brute_force;
            self.count(
                "brute_force",
                claimed,
                w,
                false,
                r,
                String::new(),
                Some(claimed),
                None,
                &mut touched,
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
                claimed.clone(),
                None,
                Some(&r.client),
                &mut touched,
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
                r.client.clone(),
                Some(&r.principal),
                None,
                &mut touched,
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
                String::new(),
                Some(&r.principal),
                None,
                &mut touched,
            );
        }
        if r.outcome == 403 || r.outcome == 404 {
            let w = self.rules.enumeration;
            let (key, principal, address) = if authenticated {
                (r.principal.clone(), Some(r.principal.as_str()), None)
            } else {
                (r.client.clone(), None, Some(r.client.as_str()))
            };
            self.count(
                "enumeration",
                &key,
                w,
                true,
                r,
                r.resource.clone(),
                principal,
                address,
                &mut touched,
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
                String::new(),
                None,
                Some(&r.client),
                &mut touched,
            );
        }
        if authenticated && r.outcome == 403 && r.resource.starts_with("/v1/auth/") {
            touched.push(self.single(
                "privilege_escalation",
                Severity::High,
                r,
                format!("refused on {}", r.action),
            ));
        }
        if self.rules.break_glass.contains(&r.principal) {
            touched.push(self.single(
                "break_glass",
                Severity::Critical,
                r,
                format!("bootstrap admin key used: {}", r.action),
            ));
        }
        if r.roles.iter().any(|role| role == "admin") {
            let network = network_of(&r.client);
            let known = self.networks.entry(r.principal.clone()).or_default();
            let first_ever = known.is_empty();
            if known.insert(network.clone()) && !first_ever {
                touched.push(self.single(
                    "new_network_privileged",
                    Severity::Medium,
                    r,
                    format!("an admin key called from network {network} for the first time"),
                ));
            }
        }
        touched
    }

    #[allow(clippy::too_many_arguments)]
    fn count(
        &mut self,
        kind: &'static str,
        key: &str,
        window: Window,
        distinct: bool,
        r: &Record,
        what: String,
        principal: Option<&str>,
        address: Option<&str>,
        touched: &mut Vec<Finding>,
    ) {
        if self.series.len() >= SERIES_MAX && !self.series.contains_key(&(kind, key.to_owned())) {
            self.series.clear();
        }
        let series = self.series.entry((kind, key.to_owned())).or_default();
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
        touched.push(self.findings[index].clone());
    }

    fn single(
        &mut self,
        kind: &'static str,
        severity: Severity,
        r: &Record,
        evidence: String,
    ) -> Finding {
        // The same principal doing the same thing again within the hour updates its finding.
        let key = (kind, format!("{}|{}", r.principal, r.client));
        if let Some(&i) = self.singles.get(&key)
            && self
                .findings
                .get(i)
                .is_some_and(|f| f.kind == kind && r.at_us - f.last_seen_us < COALESCE_US)
        {
            let f = &mut self.findings[i];
            f.count += 1;
            f.last_seen_us = r.at_us;
            return f.clone();
        }
        self.singles.insert(key, self.findings.len());
        let finding = Finding {
            kind,
            severity,
            principal: Some(r.principal.clone()),
            address: Some(r.client.clone()),
            evidence,
            first_seen_us: r.at_us,
            last_seen_us: r.at_us,
            count: 1,
        };
        self.findings.push(finding.clone());
        finding
    }
}

/// The network an address belongs to: its /24 (IPv4) or /48 (IPv6).
fn network_of(address: &str) -> String {
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
