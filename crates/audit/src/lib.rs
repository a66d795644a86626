//! Gureum's audit trail: who did what to which resource, from where, with what outcome — every
//! request through the edge, and every read of regulated data — appended to a hash-chained
//! log.
//!
//! Each entry is a [`Record`] serialized once into its canonical JSON `body`; its hash is
//! SHA-256(previous hash ‖ body), the first entry's previous hash being 32 zero bytes, and
//! entries are numbered 1, 2, 3, … without gaps. So [`verify`] finds any edit (the hash no
//! longer matches the body, or a filter column no longer matches the body), any deletion (a
//! gap in the numbers, a previous hash that does not match) and any reordering. What a chain
//! alone cannot show is the loss of its newest entries; [`Verified::head`] is the hash to
//! keep elsewhere (a ticket, a second system) to make that visible too.
//!
//! - [`log`]: the entries in SQL (SQLite embedded, a PostgreSQL schema split): append in
//!   batches, pages by filter, a full scan for verification and export.
//! - [`writer`]: the [`writer::Auditor`] requests hand their records to; one task appends them
//!   in batches, so a request never waits on the database unless the writer falls behind.
//!
//! Records never hold regulated values: the resource is the path (ids), never the query
//! string or the body.

pub mod log;
pub mod writer;

use sha2::{Digest, Sha256};

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A request through the edge.
    Request,
    /// A request that read regulated data in the clear (an unmasked customer, an export).
    RegulatedRead,
}

impl Kind {
    /// The name stored and filtered on.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Request => "request",
            Kind::RegulatedRead => "regulated_read",
        }
    }
}

/// One thing that happened. Field order is the canonical JSON's.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// When (microseconds since the Unix epoch).
    pub at_us: i64,
    /// What kind of entry.
    pub kind: Kind,
    /// `key:<id>`, or `anonymous`.
    pub principal: String,
    /// For a credential that did not authenticate: the key it claimed to be (`key:<id>`, the
    /// id part only — never the secret).
    pub claimed: Option<String>,
    /// The principal's roles.
    pub roles: Vec<String>,
    /// The method and route pattern, e.g. `GET /v1/customers/{id}` (the path itself when no
    /// route serves it).
    pub action: String,
    /// The path, e.g. `/v1/customers/01ab…` (never the query string).
    pub resource: String,
    /// The HTTP status answered.
    pub outcome: u16,
    /// The client's address.
    pub client: String,
    /// The client's `User-Agent` (at most 200 characters).
    pub user_agent: Option<String>,
    /// The W3C trace id, when the request carried one.
    pub trace_id: Option<String>,
    /// The firewall's incident id, when it blocked or flagged the request.
    pub incident: Option<String>,
}

/// A record in the chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// 1, 2, 3, … without gaps.
    #[serde(with = "decimal")]
    pub seq: i64,
    /// The previous entry's hash (hex).
    pub prev_hash: String,
    /// SHA-256(previous hash ‖ body) (hex).
    pub hash: String,
    /// What happened.
    #[serde(flatten)]
    pub record: Record,
}

mod decimal {
    pub fn serialize<S: serde::Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The canonical body of a record.
pub fn body(record: &Record) -> String {
    serde_json::to_string(record).expect("a record always serializes")
}

/// SHA-256(prev ‖ body).
pub fn link(prev: &[u8; 32], body: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(body.as_bytes());
    hasher.finalize().into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An entry as stored: the columns verification reads.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The number.
    pub seq: i64,
    /// When.
    pub at_us: i64,
    /// The principal column.
    pub principal: String,
    /// The action column.
    pub action: String,
    /// The outcome column.
    pub outcome: i64,
    /// The kind column.
    pub kind: String,
    /// The hashed body.
    pub body: String,
    /// The previous hash.
    pub prev_hash: Vec<u8>,
    /// The hash.
    pub hash: Vec<u8>,
}

/// What a verification found intact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: u64,
    /// The last entry's hash (hex): keep it elsewhere to detect a cut-off tail later.
    pub head: String,
}

/// The first place the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entry {seq}: {problem}")]
pub struct Broken {
    /// Where (the entry's number, or the number expected there).
    pub seq: i64,
    /// What is wrong.
    pub problem: String,
}

/// Checks a chain read in `seq` order.
pub struct Verifier {
    expected_seq: i64,
    prev: [u8; 32],
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev: GENESIS,
        }
    }
}

impl Verifier {
    /// A verifier that takes the chain up to entry `seq` (whose hash is `hash`) as checked
    /// and goes on from there: for watching what is appended from now on.
    pub fn after(seq: i64, hash: [u8; 32]) -> Verifier {
        Verifier {
            expected_seq: seq + 1,
            prev: hash,
        }
    }

    /// The number of the last entry checked (0 before any).
    pub fn last_seq(&self) -> i64 {
        self.expected_seq - 1
    }

    /// Checks the next entry.
    pub fn check(&mut self, entry: &Stored) -> Result<(), Broken> {
        let broken = |problem: String| Broken {
            seq: entry.seq,
            problem,
        };
        if entry.seq != self.expected_seq {
            return Err(Broken {
                seq: self.expected_seq,
                problem: format!(
                    "missing: the next entry is {} (entries were deleted or reordered)",
                    entry.seq
                ),
            });
        }
        if entry.prev_hash != self.prev {
            return Err(broken(
                "its previous hash is not the hash of the entry before it (an entry before it \
                 was deleted, replaced or moved)"
                    .to_owned(),
            ));
        }
        let hash = link(&self.prev, &entry.body);
        if entry.hash != hash {
            return Err(broken(
                "its hash does not match its contents (it was edited)".to_owned(),
            ));
        }
        let record: Record = serde_json::from_str(&entry.body)
            .map_err(|_| broken("its body is not a record".to_owned()))?;
        let agrees = record.at_us == entry.at_us
            && record.principal == entry.principal
            && record.action == entry.action
            && i64::from(record.outcome) == entry.outcome
            && record.kind.name() == entry.kind;
        if !agrees {
            return Err(broken(
                "its columns do not match its hashed body (they were edited)".to_owned(),
            ));
        }
        self.expected_seq += 1;
        self.prev = hash;
        Ok(())
    }

    /// What was verified so far.
    pub fn verified(&self) -> Verified {
        Verified {
            entries: u64::try_from(self.expected_seq - 1).unwrap_or(0),
            head: hex(&self.prev),
        }
    }
}

/// Verifies a whole chain given in `seq` order.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a Stored>) -> Result<Verified, Broken> {
    let mut verifier = Verifier::default();
    for entry in entries {
        verifier.check(entry)?;
    }
    Ok(verifier.verified())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: i64) -> Record {
        Record {
            at_us: 1_764_000_000_000_000 + n,
            kind: if n % 3 == 0 {
                Kind::RegulatedRead
            } else {
                Kind::Request
            },
            principal: format!("key:{n:016x}"),
            claimed: None,
            roles: vec!["teller".into()],
            action: "GET /v1/customers/{id}".into(),
            resource: format!("/v1/customers/{n}"),
            outcome: 200,
            client: "203.0.113.7".into(),
            user_agent: Some("bank-app/4.2".into()),
            trace_id: None,
            incident: None,
        }
    }

    fn chain(n: i64) -> Vec<Stored> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let r = record(seq);
                let body = body(&r);
                let hash = link(&prev, &body);
                let stored = Stored {
                    seq,
                    at_us: r.at_us,
                    principal: r.principal.clone(),
                    action: r.action.clone(),
                    outcome: i64::from(r.outcome),
                    kind: r.kind.name().to_owned(),
                    body,
                    prev_hash: prev.to_vec(),
                    hash: hash.to_vec(),
                };
                prev = hash;
                stored
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_names_its_head() {
        let entries = chain(5);
        let verified = verify(&entries).unwrap();
        assert_eq!(verified.entries, 5);
        assert_eq!(verified.head, hex(&entries[4].hash));
        assert_eq!(verify(&[]).unwrap().head, hex(&GENESIS));
    }

    #[test]
    fn every_edit_deletion_and_reordering_is_found_where_it_is() {
        // An edited body.
        let mut entries = chain(5);
        entries[2].body = entries[2]
            .body
            .replace("\"outcome\":200", "\"outcome\":403");
        assert_eq!(verify(&entries).unwrap_err().seq, 3);
        // An edited filter column.
        let mut entries = chain(5);
        entries[1].principal = "key:someone-else".into();
        let broken = verify(&entries).unwrap_err();
        assert_eq!(broken.seq, 2);
        assert!(broken.problem.contains("columns"), "{broken}");
        // A deleted entry.
        let mut entries = chain(5);
        entries.remove(3);
        assert_eq!(verify(&entries).unwrap_err().seq, 4);
        // A deleted entry with the numbers rewritten to hide the gap.
        let mut entries = chain(5);
        entries.remove(1);
        for (i, e) in entries.iter_mut().enumerate() {
            e.seq = i as i64 + 1;
        }
        assert_eq!(verify(&entries).unwrap_err().seq, 2);
        // Two entries swapped.
        let mut entries = chain(5);
        entries.swap(1, 2);
        assert_eq!(verify(&entries).unwrap_err().seq, 2);
        // A whole entry recomputed from a forged body still breaks the next link.
        let mut entries = chain(5);
        let mut forged = record(2);
        forged.outcome = 500;
        entries[1].body = body(&forged);
        entries[1].outcome = 500;
        let prev: [u8; 32] = entries[0].hash.clone().try_into().unwrap();
        entries[1].hash = link(&prev, &entries[1].body).to_vec();
        assert_eq!(verify(&entries).unwrap_err().seq, 3);
    }
}
