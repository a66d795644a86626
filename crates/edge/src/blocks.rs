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
//! the block is extended. An admin lifts one with `DELETE /v1/guard/blocks/{subject}`.
//!
//! Every request is checked against the blocks in the edge process's memory. They are also
//! kept in the edge's database ([`Blocks::sync`], with the findings every
//! [`crate::findings::FLUSH_EVERY`]): each replica writes the blocks it began or extended and
//! takes in every replica's, so a block one edge put in force holds at all of them within a
//! few seconds, and outlives a restart. Lifting one deletes its row at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use sqlx::Row;
use store::Store;

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
    /// Subjects this process blocked or extended since they were last written.
    unsaved: Mutex<HashSet<String>>,
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
            if until_us > block.until_us {
                block.until_us = until_us;
                self.note_unsaved(subject);
            }
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
        self.note_unsaved(subject);
        true
    }

    fn note_unsaved(&self, subject: &str) {
        self.unsaved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subject.to_owned());
    }

    /// Writes the blocks this process began or extended since the last call to `store`, sweeps
    /// the rows that ran out, and takes in every replica's blocks in force at `now_us` (a block
    /// begun here while this ran is kept). On failure the unwritten blocks are tried again
    /// next time.
    pub async fn sync(&self, store: &Store, now_us: i64) -> Result<(), sqlx::Error> {
        let subjects: Vec<String> =
            std::mem::take(&mut *self.unsaved.lock().unwrap_or_else(|e| e.into_inner()))
                .into_iter()
                .collect();
        let changed: Vec<Block> = {
            let blocks = self.by_subject.read().unwrap_or_else(|e| e.into_inner());
            subjects
                .iter()
                .filter_map(|s| blocks.get(s).cloned())
                .collect()
        };
        let stored = match save(store, &changed, now_us).await {
            Ok(()) => load(store, now_us).await,
            Err(e) => Err(e),
        };
        let stored = match stored {
            Ok(stored) => stored,
            Err(e) => {
                self.unsaved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(subjects);
                return Err(e);
            }
        };
        // In `block`'s order: the blocks, then the unsaved subjects.
        let mut blocks = self.by_subject.write().unwrap_or_else(|e| e.into_inner());
        let unsaved = self.unsaved.lock().unwrap_or_else(|e| e.into_inner());
        let mut next: HashMap<String, Block> =
            stored.into_iter().map(|b| (b.subject.clone(), b)).collect();
        // Begun or extended here since the write above: written next time, kept meanwhile.
        for subject in unsaved.iter() {
            if let Some(mine) = blocks.remove(subject) {
                match next.get_mut(subject) {
                    Some(theirs) if theirs.until_us >= mine.until_us => {}
                    Some(theirs) => theirs.until_us = mine.until_us,
                    None => {
                        next.insert(subject.clone(), mine);
                    }
                }
            }
        }
        *blocks = next;
        Ok(())
    }

    /// Lifts `subject`'s block here; whether one was in force. See [`Blocks::lift_everywhere`].
    pub fn lift(&self, subject: &str, now_us: i64) -> bool {
        self.unsaved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subject);
        self.by_subject
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(subject)
            .is_some_and(|b| b.until_us > now_us)
    }

    /// Lifts `subject`'s block here and deletes it from `store`, so every replica drops it at
    /// its next [`Blocks::sync`]; whether one was in force (here or in the store).
    pub async fn lift_everywhere(
        &self,
        store: &Store,
        subject: &str,
        now_us: i64,
    ) -> Result<bool, sqlx::Error> {
        let here = self.lift(subject, now_us);
        let stored = sqlx::query("DELETE FROM guard_blocks WHERE subject = $1 AND until_us > $2")
            .bind(subject)
            .bind(now_us)
            .execute(store.writer())
            .await?
            .rows_affected();
        Ok(here || stored > 0)
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

/// Writes `changed` (a block extends a stored one still in force, or replaces one that ran
/// out) and sweeps the rows that ran out by `now_us`, in one transaction.
async fn save(store: &Store, changed: &[Block], now_us: i64) -> Result<(), sqlx::Error> {
    let mut tx = store.writer().begin().await?;
    for b in changed {
        sqlx::query(
            "INSERT INTO guard_blocks (subject, kind, since_us, until_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (subject) DO UPDATE SET \
             kind = CASE WHEN guard_blocks.until_us > $5 THEN guard_blocks.kind ELSE excluded.kind END, \
             since_us = CASE WHEN guard_blocks.until_us > $5 THEN guard_blocks.since_us \
             ELSE excluded.since_us END, \
             until_us = CASE WHEN guard_blocks.until_us > excluded.until_us \
             THEN guard_blocks.until_us ELSE excluded.until_us END",
        )
        .bind(&b.subject)
        .bind(&b.kind)
        .bind(b.since_us)
        .bind(b.until_us)
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DELETE FROM guard_blocks WHERE until_us <= $1")
        .bind(now_us)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// The stored blocks in force at `now_us`, at most [`BLOCKS_MAX`].
async fn load(store: &Store, now_us: i64) -> Result<Vec<Block>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT subject, kind, since_us, until_us FROM guard_blocks WHERE until_us > $1 \
         ORDER BY until_us DESC LIMIT $2",
    )
    .bind(now_us)
    .bind(BLOCKS_MAX as i64)
    .fetch_all(store.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Block {
                subject: r.try_get(0)?,
                kind: r.try_get(1)?,
                since_us: r.try_get(2)?,
                until_us: r.try_get(3)?,
            })
        })
        .collect()
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

    #[tokio::test]
    async fn a_block_one_edge_puts_in_force_holds_at_every_edge_until_it_is_lifted() {
        for backend in store::testing::BACKENDS {
            let db = store::testing::TestDb::new(backend).await;
            let store = db.open().await;
            store.migrate(&crate::keys::MIGRATIONS).await.unwrap();
            let (a, b) = (Blocks::default(), Blocks::default());
            let s = address("203.0.113.9");
            let now = 1_000_000_000_000;
            let minute = 60_000_000;

            // Edge A blocks; after both share, edge B refuses the address too.
            assert!(a.block(&s, "waf_burst", now, now + minute));
            assert_eq!(b.check(&s, now), None);
            a.sync(&store, now).await.unwrap();
            b.sync(&store, now).await.unwrap();
            assert_eq!(b.check(&s, now), Some(60));
            assert_eq!(b.list(now)[0].kind, "waf_burst");

            // B's detector extends it; A takes the later end, never an earlier one.
            assert!(!b.block(&s, "waf_burst", now + 1, now + 2 * minute));
            b.sync(&store, now + 1).await.unwrap();
            a.sync(&store, now + 1).await.unwrap();
            assert_eq!(a.check(&s, now), Some(120));
            assert!(!a.block(&s, "waf_burst", now + 2, now + minute));
            a.sync(&store, now + 2).await.unwrap();
            assert_eq!(a.check(&s, now), Some(120));

            // A principal B blocks reaches A once B has shared it, not before.
            let p = principal("key:k-7");
            assert!(b.block(&p, "bulk_regulated_reads", now + 3, now + minute));
            a.sync(&store, now + 3).await.unwrap();
            assert_eq!(a.check(&p, now + 3), None);
            assert_eq!(b.check(&p, now + 3), Some(60));
            b.sync(&store, now + 3).await.unwrap();
            assert_eq!(b.check(&p, now + 3), Some(60));
            a.sync(&store, now + 4).await.unwrap();
            assert_eq!(a.check_principal("key:k-7", now + 4), Some(60));

            // Lifted at A: gone from the database at once, and from B at its next sync.
            assert!(a.lift_everywhere(&store, &s, now + 5).await.unwrap());
            assert_eq!(a.check(&s, now + 5), None);
            assert_eq!(b.check(&s, now + 5), Some(120));
            b.sync(&store, now + 5).await.unwrap();
            assert_eq!(b.check(&s, now + 5), None);
            assert!(!b.lift_everywhere(&store, &s, now + 6).await.unwrap());

            // A new edge (a restart) starts with the blocks in force; the ones that ran out
            // are swept.
            let c = Blocks::default();
            c.sync(&store, now + 7).await.unwrap();
            assert_eq!(c.list(now + 7).len(), 1);
            c.sync(&store, now + 2 * minute).await.unwrap();
            assert!(c.list(now + 2 * minute).is_empty());
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM guard_blocks")
                .fetch_one(store.reader())
                .await
                .unwrap();
            assert_eq!(left, 0);
            db.cleanup().await;
        }
    }
}
