//! The automatic response to findings: an address or a principal blocked at the edge for a
//! while.
//!
//! Off by default: one address may be many people (a company's NAT, a load balancer in front
//! of the edge), and an automatic block is a denial of service an attacker can aim. When on,
//! a finding of a configured kind blocks its address if it names one (credential stuffing,
//! firewall bursts, enumeration by anonymous callers) and else its principal (one key from
//! many addresses, bulk regulated reads, enumeration by a key) — never the services' key, and
//! never a bootstrap admin key (locking the operator out is what an attacker would want; that
//! key's use is reported as break-glass anyway). While the detector keeps seeing the attack,
//! the block is extended. Blocks live in the edge process's memory; an admin lifts one with
//! `DELETE /v1/guard/blocks/{subject}`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

/// Blocks held at most (expired ones are dropped first when full).
pub const BLOCKS_MAX: usize = 100_000;

/// The finding kinds that block when the response is on, by default.
pub const DEFAULT_KINDS: [&str; 5] = [
    "credential_stuffing",
    "waf_burst",
    "enumeration",
    "key_many_addresses",
    "bulk_regulated_reads",
];

/// Whether and how findings block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseConfig {
    /// Whether findings block at all.
    pub enabled: bool,
    /// How long a block lasts after the finding's last event.
    pub block_for: Duration,
    /// The finding kinds that block.
    pub kinds: Vec<String>,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        ResponseConfig {
            enabled: false,
            block_for: Duration::from_secs(15 * 60),
            kinds: DEFAULT_KINDS.iter().map(|k| (*k).to_owned()).collect(),
        }
    }
}

/// One block.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Block {
    /// `address:<ip>` or `principal:<id>`.
    pub subject: String,
    /// The finding kind that caused it.
    pub kind: String,
    /// When it began (microseconds since the Unix epoch).
    #[schema(value_type = String)]
    #[serde(serialize_with = "as_text")]
    pub since_us: i64,
    /// When it ends unless extended.
    #[schema(value_type = String)]
    #[serde(serialize_with = "as_text")]
    pub until_us: i64,
}

fn as_text<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// The subject text of an address.
pub fn address(ip: &str) -> String {
    format!("address:{ip}")
}

/// The subject text of a principal.
pub fn principal(id: &str) -> String {
    format!("principal:{id}")
}

/// The blocks in force.
#[derive(Default)]
pub struct Blocks {
    by_subject: RwLock<HashMap<String, Block>>,
}

impl Blocks {
    /// Seconds left on `subject`'s block at `now_us`, if it is blocked.
    pub fn check(&self, subject: &str, now_us: i64) -> Option<u64> {
        self.check_with(|| subject.to_owned(), now_us)
    }

    /// [`Blocks::check`] for `address(ip)`, without building the subject while nothing is
    /// blocked (every request asks).
    pub fn check_address(&self, ip: &str, now_us: i64) -> Option<u64> {
        self.check_with(|| address(ip), now_us)
    }

    /// [`Blocks::check`] for `principal(id)`, likewise.
    pub fn check_principal(&self, id: &str, now_us: i64) -> Option<u64> {
        self.check_with(|| principal(id), now_us)
    }

    fn check_with(&self, subject: impl FnOnce() -> String, now_us: i64) -> Option<u64> {
        let blocks = self.by_subject.read().unwrap_or_else(|e| e.into_inner());
        if blocks.is_empty() {
            return None;
        }
        let block = blocks.get(&subject())?;
        (block.until_us > now_us).then(|| ((block.until_us - now_us) as u64).div_ceil(1_000_000))
    }

    /// Blocks `subject` until `until_us` (or extends its block to then); whether a new
    /// block began.
    pub fn block(&self, subject: &str, kind: &str, now_us: i64, until_us: i64) -> bool {
        let mut blocks = self.by_subject.write().unwrap_or_else(|e| e.into_inner());
        if let Some(block) = blocks.get_mut(subject)
            && block.until_us > now_us
        {
            block.until_us = block.until_us.max(until_us);
            return false;
        }
        if blocks.len() >= BLOCKS_MAX {
            blocks.retain(|_, b| b.until_us > now_us);
            if blocks.len() >= BLOCKS_MAX {
                // Full of live blocks: the attack is wider than blocking can answer.
                return false;
            }
        }
        blocks.insert(
            subject.to_owned(),
            Block {
                subject: subject.to_owned(),
                kind: kind.to_owned(),
                since_us: now_us,
                until_us,
            },
        );
        true
    }

    /// Lifts `subject`'s block; whether one was in force.
    pub fn lift(&self, subject: &str, now_us: i64) -> bool {
        self.by_subject
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subject)
            .is_some_and(|b| b.until_us > now_us)
    }

    /// The blocks in force at `now_us`, oldest first.
    pub fn list(&self, now_us: i64) -> Vec<Block> {
        let mut list: Vec<Block> = self
            .by_subject
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|b| b.until_us > now_us)
            .cloned()
            .collect();
        list.sort_by(|a, b| (a.since_us, &a.subject).cmp(&(b.since_us, &b.subject)));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_holds_until_its_time_is_extended_by_later_findings_and_lifts() {
        let blocks = Blocks::default();
        let s = address("203.0.113.9");
        assert!(blocks.block(&s, "waf_burst", 0, 60_000_000));
        assert_eq!(blocks.check(&s, 0), Some(60));
        assert_eq!(blocks.check_address("203.0.113.9", 0), Some(60));
        assert_eq!(blocks.check_principal("203.0.113.9", 0), None);
        assert_eq!(blocks.check(&s, 59_500_000), Some(1));
        assert_eq!(blocks.check(&s, 60_000_000), None);
        assert_eq!(blocks.check(&address("203.0.113.10"), 0), None);
        // Extended while in force (not a new block), never shortened.
        assert!(!blocks.block(&s, "waf_burst", 30_000_000, 90_000_000));
        assert!(!blocks.block(&s, "waf_burst", 31_000_000, 40_000_000));
        assert_eq!(blocks.check(&s, 80_000_000), Some(10));
        assert_eq!(blocks.list(0).len(), 1);
        assert_eq!(blocks.list(0)[0].since_us, 0);
        assert!(blocks.lift(&s, 1));
        assert!(!blocks.lift(&s, 1));
        assert_eq!(blocks.check(&s, 1), None);
        // After it ran out, a finding starts a new block.
        assert!(blocks.block(&s, "enumeration", 100_000_000, 200_000_000));
        assert_eq!(blocks.list(100_000_000)[0].kind, "enumeration");
        assert!(blocks.list(200_000_000).is_empty());
    }
}
