//! Gureum's web application firewall: a pure inspection engine.
//!
//! [`Engine::inspect`] takes what a request carries ([`Request`]: method, raw request target,
//! headers, body), decodes it into the values an attack could hide in ([`Target`]s: the path,
//! each query and form argument and its name, cookies, the headers that carry user text, each
//! JSON string and key, multipart parts, XML attribute and text values) and runs the rules of
//! [`rules`] over each. Every rule that matches adds its severity to an anomaly score; at or
//! above the threshold the request is an attack ([`Verdict::attack`]), blocked unless the
//! engine only detects ([`Mode::DetectOnly`]).
//!
//! Rules belong to families (SQL injection, XSS, command injection, path traversal and local
//! files, SSRF, protocol attacks, …) and to a paranoia level: level 1 holds the rules that
//! almost never fire on honest traffic; 2–4 add rules that catch more and cost false
//! positives. Per-route exclusions switch rules or families off for the fields that
//! legitimately hold such text. SQL injection and XSS use libinjection's tokenizers (the
//! `libinjectionrs` port) beside our own patterns; the decoding, the rules, the scoring and
//! what is inspected are ours.
//!
//! The engine never copies what it inspected into its verdict: a match names the rule and
//! where (`arg:q`, `json:/memo`), never the value, so a verdict can be logged and audited
//! without leaking what a customer typed.

mod decode;
mod rules;
mod targets;

pub mod corpus;

pub use rules::{RULES, Rule};
pub use targets::{Target, TargetKind};

/// An attack family: what the matched rule looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// SQL injection.
    Sqli,
    /// Cross-site scripting.
    Xss,
    /// Remote command execution (Unix and Windows shells, PowerShell).
    Rce,
    /// Path traversal and local file access.
    Lfi,
    /// Remote file inclusion.
    Rfi,
    /// Server-side request forgery: URLs aimed at internal or metadata addresses.
    Ssrf,
    /// PHP injection.
    Php,
    /// Java attacks (deserialization, expression languages, Log4Shell).
    Java,
    /// Other code injection (Node.js, server-side templates).
    Generic,
    /// Session fixation.
    SessionFixation,
    /// Protocol attacks: request smuggling, header and response splitting, bad encodings.
    Protocol,
}

impl Family {
    /// Every family, in report order.
    pub const ALL: [Family; 11] = [
        Family::Sqli,
        Family::Xss,
        Family::Rce,
        Family::Lfi,
        Family::Rfi,
        Family::Ssrf,
        Family::Php,
        Family::Java,
        Family::Generic,
        Family::SessionFixation,
        Family::Protocol,
    ];

    /// The family's name: `sqli`, `xss`, `rce`, `lfi`, `rfi`, `ssrf`, `php`, `java`,
    /// `generic`, `session_fixation`, `protocol`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Sqli => "sqli",
            Family::Xss => "xss",
            Family::Rce => "rce",
            Family::Lfi => "lfi",
            Family::Rfi => "rfi",
            Family::Ssrf => "ssrf",
            Family::Php => "php",
            Family::Java => "java",
            Family::Generic => "generic",
            Family::SessionFixation => "session_fixation",
            Family::Protocol => "protocol",
        }
    }

    /// The family named `name` ([`Family::name`]; `-` and `_` alike).
    pub fn from_name(name: &str) -> Option<Family> {
        let name = name.replace('-', "_");
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// How much a rule's match adds to the anomaly score (CRS's scale).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// 5: enough on its own to reach the default threshold.
    Critical,
    /// 4.
    Error,
    /// 3.
    Warning,
    /// 2.
    Notice,
}

impl Severity {
    /// The score it adds.
    pub fn score(self) -> u32 {
        match self {
            Severity::Critical => 5,
            Severity::Error => 4,
            Severity::Warning => 3,
            Severity::Notice => 2,
        }
    }
}

/// What the engine does with an attack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Refuse it.
    #[default]
    Block,
    /// Let it through; the verdict is still reported (and audited).
    DetectOnly,
}

/// Rules switched off for some fields of some routes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exclusion {
    /// Requests whose path starts with this (`/v1/customers`).
    pub path_prefix: String,
    /// The fields it covers, by location (`json:/memo`, `arg:q`, `cookie:theme`); a location
    /// ending in `*` covers every location it starts (`json:/notes/*`). Empty: every field.
    #[serde(default)]
    pub locations: Vec<String>,
    /// Rule ids (`942100`) or family names (`sqli`) switched off there. Empty: every rule.
    #[serde(default)]
    pub rules: Vec<String>,
}

impl Exclusion {
    fn covers(&self, path: &str, location: &str, rule: &Rule) -> bool {
        path.starts_with(&self.path_prefix)
            && (self.locations.is_empty()
                || self.locations.iter().any(|l| match l.strip_suffix('*') {
                    Some(prefix) => location.starts_with(prefix),
                    None => location == l,
                }))
            && (self.rules.is_empty()
                || self
                    .rules
                    .iter()
                    .any(|r| r == rule.id || Family::from_name(r) == Some(rule.family)))
    }
}

/// How the engine inspects.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Config {
    /// 1 to 4: which rules run (a rule runs at its level and above).
    pub paranoia: u8,
    /// Block or only detect.
    pub mode: Mode,
    /// The anomaly score at which a request is an attack.
    pub threshold: u32,
    /// At most this many bytes of decoded values are inspected per request; the rest is not
    /// (the verdict says so), which bounds the time one request can cost.
    pub inspect_bytes_max: usize,
    /// Per-route exclusions.
    pub exclusions: Vec<Exclusion>,
}

/// The default score threshold: one critical match.
pub const THRESHOLD_DEFAULT: u32 = 5;
/// The default inspection cap.
pub const INSPECT_BYTES_MAX_DEFAULT: usize = 256 * 1024;

impl Default for Config {
    fn default() -> Config {
        Config {
            paranoia: 1,
            mode: Mode::Block,
            threshold: THRESHOLD_DEFAULT,
            inspect_bytes_max: INSPECT_BYTES_MAX_DEFAULT,
            exclusions: Vec::new(),
        }
    }
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Paranoia outside 1–4.
    #[error("paranoia must be 1 to 4, not {0}")]
    Paranoia(u8),
    /// A threshold of 0 would call every request an attack.
    #[error("the anomaly threshold must be at least 1")]
    Threshold,
    /// An exclusion names a rule or family that does not exist.
    #[error("exclusion names unknown rule or family `{0}`")]
    UnknownRule(String),
}

/// A request as the edge received it. The target is the raw request-target (`/path?query`),
/// not normalised: the engine decodes it itself.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET`, `POST`, …
    pub method: &'a str,
    /// The raw request-target.
    pub target: &'a str,
    /// Header names and values, in the order received (duplicates kept).
    pub headers: &'a [(&'a str, &'a str)],
    /// The body as received (possibly empty).
    pub body: &'a [u8],
}

impl Request<'_> {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// One rule that matched.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Match {
    /// The rule's id.
    pub rule: &'static str,
    /// Its family.
    pub family: Family,
    /// Its severity.
    pub severity: Severity,
    /// Where it matched first (`path`, `arg:q`, `arg-name`, `cookie:sid`, `header:user-agent`,
    /// `json:/memo`, `body`, `request` for the request's framing). Never the value.
    pub location: String,
}

/// What the engine concluded about a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// The sum of the matched rules' severities (each rule counted once).
    pub score: u32,
    /// Score at or above the threshold.
    pub attack: bool,
    /// An attack, and the engine blocks.
    pub blocked: bool,
    /// The rules that matched, in rule order.
    pub matches: Vec<Match>,
    /// Decoded bytes inspected.
    pub inspected_bytes: usize,
    /// Whether the inspection cap left part of the request uninspected.
    pub truncated: bool,
}

/// Looks a memo entry up by a borrowed value (no allocation on a hit).
trait MemoKey {
    fn key(&self) -> (TargetKind, &str);
}

impl MemoKey for (TargetKind, Box<str>) {
    fn key(&self) -> (TargetKind, &str) {
        (self.0, &self.1)
    }
}

impl MemoKey for (TargetKind, &str) {
    fn key(&self) -> (TargetKind, &str) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn MemoKey + 'a> for (TargetKind, Box<str>) {
    fn borrow(&self) -> &(dyn MemoKey + 'a) {
        self
    }
}

impl std::hash::Hash for dyn MemoKey + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for dyn MemoKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn MemoKey + '_ {}

/// The inspection engine: rules compiled for one configuration. Cheap to share (`Arc`).
pub struct Engine {
    config: Config,
    rules: rules::Compiled,
    /// What short values matched, by kind of place: an API's requests repeat the same keys,
    /// header values and codes request after request, and the rules are pure, so a value
    /// inspected once need not be inspected again.
    memo: std::sync::RwLock<Memo>,
    /// The values seen once, by hash: a value enters the memo on its second sighting, so the
    /// ids, memos and trace ids seen only once cost no allocation and no write lock (and do not
    /// push the repeated ones out).
    seen_once: Box<[std::sync::atomic::AtomicU64]>,
    hasher: ahash::RandomState,
}

/// A value's kind of place and text → the indices of the rules it matched.
type Remembered = ahash::HashMap<(TargetKind, Box<str>), Box<[u16]>>;

/// Two generations of remembered values, bounded: when the current one is full it becomes the
/// previous one (the one before is dropped), and a value found only in the previous one moves
/// back into the current. Values seen once (ids, memos) age out; the keys and headers every
/// request repeats never do — clearing everything at once made the request after each clear
/// inspect them all again.
#[derive(Default)]
struct Memo {
    current: Remembered,
    previous: Remembered,
}

impl Memo {
    fn get(&self, key: &dyn MemoKey) -> (Option<&[u16]>, bool) {
        match self.current.get(key) {
            Some(found) => (Some(found), true),
            None => (self.previous.get(key).map(|f| &**f), false),
        }
    }

    fn insert(&mut self, kind: TargetKind, value: &str, matched: Box<[u16]>) {
        if self.current.len() >= MEMO_ENTRIES_MAX {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert((kind, value.into()), matched);
    }
}

/// Values up to this many bytes are remembered.
const MEMO_VALUE_BYTES_MAX: usize = 128;
/// At most this many values are remembered per generation.
const MEMO_ENTRIES_MAX: usize = 4096;
/// Slots of [`Engine::seen_once`] (a power of two); a later value of the same slot forgets
/// the earlier one.
const SEEN_ONCE_SLOTS: usize = 16 * 1024;

impl Engine {
    /// Compiles the rules that run at `config.paranoia`.
    pub fn new(config: Config) -> Result<Engine, ConfigError> {
        if !(1..=4).contains(&config.paranoia) {
            return Err(ConfigError::Paranoia(config.paranoia));
        }
        if config.threshold == 0 {
            return Err(ConfigError::Threshold);
        }
        for name in config.exclusions.iter().flat_map(|e| &e.rules) {
            if Family::from_name(name).is_none() && !RULES.iter().any(|r| r.id == name) {
                return Err(ConfigError::UnknownRule(name.clone()));
            }
        }
        let rules = rules::Compiled::new(config.paranoia);
        Ok(Engine {
            config,
            rules,
            memo: std::sync::RwLock::default(),
            seen_once: (0..SEEN_ONCE_SLOTS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            hasher: ahash::RandomState::new(),
        })
    }

    /// The configuration it runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether `key` was seen (and not forgotten) since it last missed the memo; notes it
    /// as seen otherwise.
    fn seen_before(&self, key: &(TargetKind, &str)) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        // Never 0, which an empty slot holds.
        let tag = self.hasher.hash_one(key) | 1;
        let slot = &self.seen_once[(tag >> 1) as usize % SEEN_ONCE_SLOTS];
        slot.swap(tag, Relaxed) == tag
    }

    /// Inspects one request.
    pub fn inspect(&self, request: &Request<'_>) -> Verdict {
        let extracted = targets::extract(request, self.config.inspect_bytes_max);
        let path: &str = &extracted.path;
        let mut hits: Vec<(usize, String)> = Vec::new();
        let mut seen = vec![false; RULES.len()];
        let mut record = |index: usize, location: &dyn Fn() -> String| {
            if seen[index] {
                return;
            }
            let location = location();
            let excluded = self
                .config
                .exclusions
                .iter()
                .any(|e| e.covers(path, &location, &RULES[index]));
            if !excluded {
                seen[index] = true;
                hits.push((index, location));
            }
        };
        for id in &extracted.framing {
            if let Some(index) =
                rules::index_of(id).filter(|&i| RULES[i].paranoia <= self.config.paranoia)
            {
                record(index, &|| "request".to_owned());
            }
        }
        // The same text in the same kind of place matches the same rules: inspect it once.
        // Short values the memo answers (keys repeat in every object of a JSON array); long
        // ones seen already in this request are skipped here.
        let mut long_seen: Option<ahash::HashSet<(TargetKind, &str)>> = None;
        // Short values: answered by the memo under one read lock; what it does not know is
        // inspected after, and what is to be remembered is written under one write lock.
        let mut unknown: Vec<(usize, &Target<'_>)> = Vec::new();
        let mut remember: Vec<(TargetKind, &str, Box<[u16]>)> = Vec::new();
        // The rules each target matched, recorded in the targets' order after (so a match's
        // location is the first place it matched, whether remembered or inspected).
        let mut answers: Vec<(usize, Box<[u16]>)> = Vec::new();
        {
            let memo = self.memo.read().unwrap_or_else(|e| e.into_inner());
            for (at, target) in extracted.targets.iter().enumerate() {
                let value: &str = &target.value;
                if rules::inert(value) {
                    continue;
                }
                if value.len() > MEMO_VALUE_BYTES_MAX {
                    if long_seen
                        .get_or_insert_default()
                        .insert((target.kind, value))
                    {
                        unknown.push((at, target));
                    }
                    continue;
                }
                match memo.get(&(target.kind, value) as &dyn MemoKey) {
                    (None, _) => unknown.push((at, target)),
                    (Some(matched), current) => {
                        if !matched.is_empty() {
                            answers.push((at, matched.into()));
                        }
                        // Found in the previous generation: it repeats, so it moves on.
                        if !current {
                            remember.push((target.kind, value, matched.into()));
                        }
                    }
                }
            }
        }
        for (at, target) in unknown {
            let value: &str = &target.value;
            let mut found = Vec::new();
            self.rules
                .check(target, &mut |index| found.push(index as u16));
            let found: Box<[u16]> = found.into();
            if value.len() <= MEMO_VALUE_BYTES_MAX && self.seen_before(&(target.kind, value)) {
                remember.push((target.kind, value, found.clone()));
            }
            if !found.is_empty() {
                answers.push((at, found));
            }
        }
        answers.sort_by_key(|(at, _)| *at);
        for (at, matched) in &answers {
            for &index in matched.iter() {
                record(usize::from(index), &|| {
                    extracted.location(&extracted.targets[*at])
                });
            }
        }
        if !remember.is_empty() {
            let mut memo = self.memo.write().unwrap_or_else(|e| e.into_inner());
            for (kind, value, matched) in remember {
                memo.insert(kind, value, matched);
            }
        }
        hits.sort_by_key(|(i, _)| *i);
        let matches: Vec<Match> = hits
            .into_iter()
            .map(|(i, location)| Match {
                rule: RULES[i].id,
                family: RULES[i].family,
                severity: RULES[i].severity,
                location,
            })
            .collect();
        let score = matches.iter().map(|m| m.severity.score()).sum();
        let attack = score >= self.config.threshold;
        Verdict {
            score,
            attack,
            blocked: attack && self.config.mode == Mode::Block,
            matches,
            inspected_bytes: extracted.inspected_bytes,
            truncated: extracted.truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect_json(engine: &Engine, body: &str) -> Verdict {
        engine.inspect(&Request {
            method: "POST",
            target: "/v1/x",
            headers: &[("content-type", "application/json")],
            body: body.as_bytes(),
        })
    }

    fn remembered(engine: &Engine, value: &str) -> bool {
        let memo = engine.memo.read().unwrap();
        memo.get(&(TargetKind::Arg, value) as &dyn MemoKey)
            .0
            .is_some()
    }

    /// A value enters the memo on its second sighting; what it remembers gives the same
    /// verdict as inspecting afresh, attacks included.
    #[test]
    fn the_memo_keeps_what_repeats_and_answers_as_inspection_would() {
        let engine = Engine::new(Config::default()).unwrap();
        for value in ["plain memo", "1' OR '1'='1"] {
            let body = format!(r#"{{"memo": "{value}"}}"#);
            let first = inspect_json(&engine, &body);
            assert!(!remembered(&engine, value), "{value} remembered at once");
            let second = inspect_json(&engine, &body);
            assert!(
                remembered(&engine, value),
                "{value} not remembered when repeated"
            );
            let third = inspect_json(&engine, &body);
            assert_eq!(first, second);
            assert_eq!(first, third);
        }
        assert!(!inspect_json(&engine, r#"{"memo": "plain memo"}"#).attack);
        let attack = inspect_json(&engine, r#"{"memo": "1' OR '1'='1"}"#);
        assert!(attack.blocked);
        assert_eq!(attack.matches[0].location, "json:/memo");
        // Values seen once never fill the memo.
        for n in 0..10_000 {
            inspect_json(&engine, &format!(r#"{{"memo": "transfer #{n}"}}"#));
        }
        let memo = engine.memo.read().unwrap();
        assert!(
            memo.current.len() + memo.previous.len() <= 4,
            "{} remembered",
            memo.current.len() + memo.previous.len()
        );
    }

    /// The body is walked as it parses: escaped strings and keys are decoded, pointers escape
    /// `~` and `/`, an invalid document is inspected whole, nothing of it taken twice.
    #[test]
    fn json_bodies_are_walked_with_their_pointers() {
        let engine = Engine::new(Config::default()).unwrap();
        let v = inspect_json(
            &engine,
            r#"{"a/b": {"c~d": ["ok", "\u003cscript\u003ealert(1)\u003c/script\u003e"]}}"#,
        );
        assert!(v.blocked);
        assert_eq!(v.matches[0].location, "json:/a~1b/c~0d/1");
        let v = inspect_json(&engine, r#"{"x\"y": 1, "n": "1' OR '1'='1"}"#);
        assert_eq!(v.matches[0].location, "json:/n");
        // Not JSON: the whole body is one value, and what parsed before the error is not
        // inspected (nor counted) twice.
        let body = r#"{"n": "O'Brien", "m": "<script>alert(1)</script>"#;
        let v = inspect_json(&engine, body);
        assert!(v.blocked);
        assert_eq!(v.matches[0].location, "body");
        assert_eq!(v.inspected_bytes, body.len() + "/v1/x".len());
    }

    /// A match's location is the first place it matched, whether that value was remembered
    /// or inspected afresh.
    #[test]
    fn a_match_is_located_where_it_matched_first() {
        let engine = Engine::new(Config::default()).unwrap();
        let known = r#"{"b": "1' OR '1'='1"}"#;
        inspect_json(&engine, known);
        inspect_json(&engine, known);
        assert!(remembered(&engine, "1' OR '1'='1"));
        let v = inspect_json(&engine, r#"{"a": "1' OR '2'='2", "b": "1' OR '1'='1"}"#);
        let sqli = v.matches.iter().find(|m| m.rule == "942100").unwrap();
        assert_eq!(sqli.location, "json:/a");
    }
}
