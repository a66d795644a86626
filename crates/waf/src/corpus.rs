//! Replaying test corpora through the engine: the yardstick for its detection and
//! false-positive rates.
//!
//! Two formats are read (see `../shared/corpora/waf/README.md`):
//! - `*.jsonl`: OWASP CRS regression requests, one HTTP request per line, each with its
//!   family, the paranoia level of the rule it tests and whether that rule should fire;
//! - `*.txt`: libinjection's lists, one URL-encoded input per line (`#` comments). Each input
//!   is sent as the value of a query argument (`GET /search?q=<input>`). A file whose name
//!   holds `benign` is honest input; otherwise every line is an attack of the family in its
//!   name (`sqli`, `xss`).
//!
//! A positive counts when the engine calls the request an attack (score at the threshold),
//! whichever rule fired. CRS positives of rules above the engine's paranoia level are not
//! counted (a paranoia-1 engine is not expected to catch them).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::{Engine, Request, Verdict};

/// One request of a corpus.
#[derive(Clone, Debug)]
pub struct Case {
    /// Its id in the corpus (`crs-942100-1`, `libinjection-sqli-attack:17`).
    pub id: String,
    /// The family label the corpus gives (`sqli`, `protocol-attack`, `benign`).
    pub family: String,
    /// The paranoia level of the rule it tests, if the corpus says.
    pub paranoia: Option<u8>,
    /// Whether it is an attack the engine should flag.
    pub expect_attack: bool,
    /// The request.
    pub method: String,
    /// The raw request target.
    pub target: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Case {
    /// Runs it through `engine`: whether it was called an attack.
    pub fn flagged(&self, engine: &Engine) -> bool {
        self.verdict(engine).attack
    }

    /// Runs it through `engine`.
    pub fn verdict(&self, engine: &Engine) -> Verdict {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        engine.inspect(&Request {
            method: &self.method,
            target: &self.target,
            headers: &headers,
            body: &self.body,
        })
    }
}

/// Why a corpus cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a CRS record.
    #[error("{path}:{line}: not a CRS regression record: {reason}")]
    Record {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: String,
    },
}

#[derive(serde::Deserialize)]
struct CrsRecord {
    id: String,
    rule_family: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    body_encoding: Option<String>,
    expect_attack: bool,
    #[serde(default)]
    paranoia_level: Option<u8>,
}

/// Reads a corpus file (format by extension, see the module notes).
pub fn load(path: &Path) -> Result<Vec<Case>, CorpusError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CorpusError::Io {
        path: shown.clone(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "jsonl") {
        return text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, line)| {
                crs_case(line).map_err(|reason| CorpusError::Record {
                    path: shown.clone(),
                    line: i + 1,
                    reason,
                })
            })
            .collect();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let benign = stem.contains("benign");
    let family = if benign {
        "benign"
    } else if stem.contains("xss") {
        "xss"
    } else if stem.contains("sqli") {
        "sqli"
    } else {
        "attack"
    };
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i, l.trim_end()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(i, line)| Case {
            id: format!("{stem}:{}", i + 1),
            family: family.to_owned(),
            paranoia: None,
            expect_attack: !benign,
            method: "GET".to_owned(),
            target: format!("/search?q={line}"),
            headers: vec![
                ("Host".to_owned(), "localhost".to_owned()),
                ("User-Agent".to_owned(), "gureum-waf-eval".to_owned()),
            ],
            body: Vec::new(),
        })
        .collect())
}

fn crs_case(line: &str) -> Result<Case, String> {
    let r: CrsRecord = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let body = match (r.body, r.body_encoding.as_deref()) {
        (None, _) => Vec::new(),
        // Raw bytes carried as the code points 0–255.
        (Some(b), Some("latin-1")) => b.chars().map(|c| c as u32 as u8).collect(),
        (Some(b), _) => b.into_bytes(),
    };
    Ok(Case {
        id: r.id,
        family: r.rule_family,
        paranoia: r.paranoia_level,
        expect_attack: r.expect_attack,
        method: r.method.unwrap_or_else(|| "GET".to_owned()),
        target: r.uri.unwrap_or_else(|| "/".to_owned()),
        headers: r.headers.into_iter().collect(),
        body,
    })
}

/// Rates for one family label of a corpus.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FamilyRates {
    /// The corpus's family label.
    pub family: String,
    /// Attacks counted (at or below the engine's paranoia level).
    pub attacks: usize,
    /// Of those, called attacks.
    pub detected: usize,
    /// `detected / attacks`, in percent (0 when there are none).
    pub detection_percent: f64,
    /// Requests that should not be flagged (benign, or CRS `expect_attack=false`).
    pub clean: usize,
    /// Of those, called attacks.
    pub flagged: usize,
    /// `flagged / clean`, in percent.
    pub false_positive_percent: f64,
    /// CRS positives of rules above the engine's paranoia level (not counted).
    pub above_level: usize,
    /// Ids of the attacks missed (at most [`MISSED_LISTED`]).
    pub missed: Vec<String>,
    /// Ids of the clean requests flagged (at most [`MISSED_LISTED`]).
    pub false_positives: Vec<String>,
}

impl FamilyRates {
    /// The column heads of [`FamilyRates`]'s one-line form.
    pub const HEADER: &str =
        "family               attacks  detected   detect %   clean  flagged     FP % above level";
}

impl std::fmt::Display for FamilyRates {
    /// One table row: the counts and percentages, lined up under [`FamilyRates::HEADER`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:<18} {:>9} {:>9} {:>9.2}% {:>7} {:>8} {:>7.2}% {:>11}",
            self.family,
            self.attacks,
            self.detected,
            self.detection_percent,
            self.clean,
            self.flagged,
            self.false_positive_percent,
            self.above_level
        )
    }
}

/// How many missed or wrongly flagged ids a report lists per family.
pub const MISSED_LISTED: usize = 50;

/// The rates of a corpus, per family and in all.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evaluation {
    /// The engine's paranoia level.
    pub paranoia: u8,
    /// Per family label, sorted.
    pub families: Vec<FamilyRates>,
    /// Every family together (its `missed` and `false_positives` lists are empty).
    pub total: FamilyRates,
}

/// Replays `cases` through `engine`.
pub fn evaluate(engine: &Engine, cases: &[Case]) -> Evaluation {
    let paranoia = engine.config().paranoia;
    let mut families: BTreeMap<&str, FamilyRates> = BTreeMap::new();
    for case in cases {
        let rates = families
            .entry(case.family.as_str())
            .or_insert_with(|| FamilyRates {
                family: case.family.clone(),
                ..FamilyRates::default()
            });
        if case.expect_attack && case.paranoia.is_some_and(|p| p > paranoia) {
            rates.above_level += 1;
            continue;
        }
        let flagged = case.flagged(engine);
        if case.expect_attack {
            rates.attacks += 1;
            if flagged {
                rates.detected += 1;
            } else if rates.missed.len() < MISSED_LISTED {
                rates.missed.push(case.id.clone());
            }
        } else {
            rates.clean += 1;
            if flagged {
                rates.flagged += 1;
                if rates.false_positives.len() < MISSED_LISTED {
                    rates.false_positives.push(case.id.clone());
                }
            }
        }
    }
    let mut total = FamilyRates {
        family: "total".to_owned(),
        ..FamilyRates::default()
    };
    let mut families: Vec<FamilyRates> = families.into_values().collect();
    for rates in &mut families {
        total.attacks += rates.attacks;
        total.detected += rates.detected;
        total.clean += rates.clean;
        total.flagged += rates.flagged;
        total.above_level += rates.above_level;
        percentages(rates);
    }
    percentages(&mut total);
    Evaluation {
        paranoia,
        families,
        total,
    }
}

fn percentages(r: &mut FamilyRates) {
    let percent = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            // Rounded to a hundredth of a percent: a report, not a computation.
            (part as f64 * 10_000.0 / whole as f64).round() / 100.0
        }
    };
    r.detection_percent = percent(r.detected, r.attacks);
    r.false_positive_percent = percent(r.flagged, r.clean);
}
