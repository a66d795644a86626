//! The ledger's pure core: a deterministic state machine over batches of events.
//!
//! No I/O, no clock: the caller passes the batch's wall-clock reading (`now`, nanoseconds) and
//! the core assigns timestamps from it, so replaying the same batches with the same `now` values
//! rebuilds exactly the same state. Linked chains are applied as they go and undone from an undo
//! log if any event in the chain fails.

use crate::types::*;
use ahash::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

type Map<K, V> = HashMap<K, V, RandomState>;

/// Shards of [`ShardedMap`]: a power of two.
const SHARDS: usize = 64;

/// Where each shard's share of the hash space ends. Shard `i` takes a share proportional to
/// `2^(i / SHARDS)`: were the shares equal, every shard would fill up, and resize, in the same
/// batch; with shares spread evenly over one doubling, the resizes are spread evenly too.
static SHARD_BOUNDS: std::sync::LazyLock<[u64; SHARDS]> = std::sync::LazyLock::new(|| {
    let weights: Vec<f64> = (0..SHARDS)
        .map(|i| (i as f64 / SHARDS as f64).exp2())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut bounds = [u64::MAX; SHARDS];
    let mut sum = 0.0;
    for (bound, weight) in bounds.iter_mut().zip(&weights).take(SHARDS - 1) {
        sum += weight;
        *bound = (sum / total * u64::MAX as f64) as u64;
    }
    bounds
});

/// The hash space is cut into `2^SLICE_BITS` slices, each owned by one shard, so finding an
/// id's shard is one table look-up.
const SLICE_BITS: u32 = 12;

/// The shard that owns each slice of the hash space, following [`SHARD_BOUNDS`].
static SHARD_OF_SLICE: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    (0..1u64 << SLICE_BITS)
        .map(|slice| {
            let start = slice << (64 - SLICE_BITS);
            SHARD_BOUNDS
                .partition_point(|&bound| bound <= start)
                .min(SHARDS - 1) as u8
        })
        .collect()
});

/// A map from ids split into shards, so that growing it rehashes one shard at a time: with
/// millions of transfers a single table's resize would stall the engine for a long moment.
pub(crate) struct ShardedMap<V> {
    shards: Box<[Map<u128, V>]>,
}

impl<V> ShardedMap<V> {
    fn new() -> Self {
        ShardedMap {
            shards: (0..SHARDS).map(|_| Map::default()).collect(),
        }
    }

    fn shard(id: u128) -> usize {
        let folded = (id as u64) ^ ((id >> 64) as u64);
        let hash = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        usize::from(SHARD_OF_SLICE[(hash >> (64 - SLICE_BITS)) as usize])
    }

    pub(crate) fn get(&self, id: &u128) -> Option<&V> {
        self.shards[Self::shard(*id)].get(id)
    }

    fn insert(&mut self, id: u128, value: V) -> Option<V> {
        self.shards[Self::shard(id)].insert(id, value)
    }

    fn remove(&mut self, id: &u128) -> Option<V> {
        self.shards[Self::shard(*id)].remove(id)
    }

    fn reserve(&mut self, total: usize) {
        for shard in self.shards.iter_mut() {
            shard.reserve(total / SHARDS + 1);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u128, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

impl<V> Extend<(u128, V)> for ShardedMap<V> {
    fn extend<I: IntoIterator<Item = (u128, V)>>(&mut self, items: I) {
        for (k, v) in items {
            self.insert(k, v);
        }
    }
}

/// Transfer ids to positions in the [`TransferLog`].
///
/// Ids that arrive in increasing order — the common case, as clients are advised to use
/// time-based ids — are appended to a sorted run: checking that a new id is not there is one
/// comparison with the run's last id, and inserting it is an append, with no hashing and no
/// random memory access however large the history grows. Any other id goes to a sharded hash
/// map. Linked-chain rollbacks remove ids newest first, so a removed id in the run is its last.
///
/// The run is kept in segments of [`RUN_SEGMENT`] ids, each allocated once at full size: one
/// vector of millions of ids would double now and then, copying all of them in the middle of
/// a batch (measured: a 10 ms pause at a million transfers, 20 ms at two).
pub(crate) struct IdIndex {
    run: Vec<RunSegment>,
    others: ShardedMap<u64>,
}

/// Ids per segment of the [`IdIndex`]'s run.
const RUN_SEGMENT: usize = 1 << 16;

/// A slice of the sorted run: increasing ids and their positions.
struct RunSegment {
    ids: Vec<u128>,
    positions: Vec<u64>,
}

impl IdIndex {
    fn new() -> Self {
        IdIndex {
            run: Vec::new(),
            others: ShardedMap::new(),
        }
    }

    /// The largest id in the run.
    fn run_last(&self) -> Option<u128> {
        self.run.last().and_then(|s| s.ids.last()).copied()
    }

    pub(crate) fn get(&self, id: &u128) -> Option<&u64> {
        if self.run_last().is_some_and(|last| *id <= last) {
            // The first segment whose last id is not below `id` is the only one that can hold it.
            let s = self
                .run
                .partition_point(|segment| segment.ids.last().is_some_and(|last| last < id));
            if let Some(segment) = self.run.get(s)
                && let Ok(i) = segment.ids.binary_search(id)
            {
                return Some(&segment.positions[i]);
            }
        }
        self.others.get(id)
    }

    /// Records a new id; the caller has checked it is not there.
    fn insert(&mut self, id: u128, position: u64) {
        if self.run_last().is_none_or(|last| id > last) {
            self.push_run(id, position);
        } else {
            self.others.insert(id, position);
        }
    }

    /// Appends an id larger than every id in the run.
    fn push_run(&mut self, id: u128, position: u64) {
        if self.run.last().is_none_or(|s| s.ids.len() == RUN_SEGMENT) {
            self.run.push(RunSegment {
                ids: Vec::with_capacity(RUN_SEGMENT),
                positions: Vec::with_capacity(RUN_SEGMENT),
            });
        }
        let segment = self.run.last_mut().expect("a segment with room");
        segment.ids.push(id);
        segment.positions.push(position);
    }

    /// Forgets the id inserted last.
    fn remove_last(&mut self, id: &u128) {
        if self.run_last() == Some(*id) {
            let segment = self.run.last_mut().expect("the run holds the id");
            segment.ids.pop();
            segment.positions.pop();
            if segment.ids.is_empty() {
                self.run.pop();
            }
        } else {
            self.others.remove(id);
        }
    }
}

impl std::ops::Index<&u128> for IdIndex {
    type Output = u64;
    fn index(&self, id: &u128) -> &u64 {
        self.get(id).expect("id present")
    }
}

/// Transfers per sealed chunk of the [`TransferLog`].
pub(crate) const CHUNK: usize = 1 << 16;

/// A sealed chunk of exactly [`CHUNK`] transfers, shared and never changed again.
pub(crate) type Chunk = Arc<Vec<Transfer>>;

/// Committed transfers in timestamp order.
///
/// Full chunks are sealed (immutable, shared) at batch boundaries, so a snapshot can take the
/// whole history by cloning a few `Arc`s while the engine goes on appending to the tail. A linked
/// chain's rollback only ever pops transfers of the current batch, which are in the tail.
#[derive(Default)]
pub(crate) struct TransferLog {
    sealed: Vec<Chunk>,
    tail: Vec<Transfer>,
}

impl TransferLog {
    /// An empty log with room for `n` transfers' chunk handles.
    pub(crate) fn with_capacity(n: usize) -> Self {
        TransferLog {
            sealed: Vec::with_capacity(n / CHUNK + 1),
            tail: Vec::new(),
        }
    }

    /// Appends transfers in order, sealing full chunks.
    pub(crate) fn extend(&mut self, transfers: Vec<Transfer>) {
        if self.tail.is_empty() && transfers.len() == CHUNK {
            self.sealed.push(Arc::new(transfers));
        } else {
            self.tail.extend(transfers);
            self.seal();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sealed.len() * CHUNK + self.tail.len()
    }

    fn push(&mut self, t: Transfer) {
        self.tail.push(t);
    }

    fn pop(&mut self) -> Option<Transfer> {
        self.tail.pop()
    }

    /// Seals every full chunk of the tail; called between batches only.
    ///
    /// The tail's own buffer becomes the chunk (no copy of the chunk's 8 MiB), and only what
    /// the last batch added past the chunk's end moves to a fresh tail.
    fn seal(&mut self) {
        while self.tail.len() >= CHUNK {
            let mut next = Vec::with_capacity(CHUNK + BATCH_EVENTS_MAX);
            next.extend(self.tail.drain(CHUNK..));
            let mut chunk = std::mem::replace(&mut self.tail, next);
            // A large buffer shrinks in place (the allocator remaps it), without copying.
            chunk.shrink_to_fit();
            self.sealed.push(Arc::new(chunk));
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Transfer> {
        self.sealed
            .iter()
            .flat_map(|c| c.iter())
            .chain(self.tail.iter())
    }
}

impl std::ops::Index<usize> for TransferLog {
    type Output = Transfer;
    fn index(&self, position: usize) -> &Transfer {
        let sealed = self.sealed.len() * CHUNK;
        if position < sealed {
            &self.sealed[position / CHUNK][position % CHUNK]
        } else {
            &self.tail[position - sealed]
        }
    }
}

/// A consistent copy of the ledger's state for a snapshot, cheap to take: the transfer history
/// is shared, not copied.
pub struct SnapshotImage {
    pub(crate) last_timestamp: u64,
    pub(crate) accounts: Vec<(Account, Option<Box<str>>, Vec<BalanceEntry>)>,
    pub(crate) sealed: Vec<Chunk>,
    pub(crate) tail: Vec<Transfer>,
    pub(crate) metadata: Vec<(u128, Box<str>)>,
    pub(crate) pending: Vec<(u128, PendingStatus)>,
}

impl SnapshotImage {
    /// Every transfer, in timestamp order.
    pub(crate) fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.sealed
            .iter()
            .flat_map(|c| c.iter())
            .chain(self.tail.iter())
    }

    pub(crate) fn transfer_count(&self) -> usize {
        self.sealed.len() * CHUNK + self.tail.len()
    }

    /// Orders the maps' entries by id, so equal states encode to equal bytes.
    pub(crate) fn normalize(&mut self) {
        self.metadata.sort_unstable_by_key(|(id, _)| *id);
        self.pending.sort_unstable_by_key(|(id, _)| *id);
    }
}

/// One account create request: the account (balances and timestamp must be zero) and its
/// canonical metadata JSON text, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountEvent {
    /// The account to create.
    pub account: Account,
    /// Canonical JSON text of a metadata object.
    pub metadata: Option<Box<str>>,
}

/// One transfer create request (timestamp must be zero) and its canonical metadata JSON text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferEvent {
    /// The transfer to create.
    pub transfer: Transfer,
    /// Canonical JSON text of a metadata object.
    pub metadata: Option<Box<str>>,
}

/// What the ledger knows about one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccountEntry {
    pub account: Account,
    pub metadata: Option<Box<str>>,
    /// Positions in `Ledger::transfers` of every committed transfer touching this account.
    pub transfers: Vec<u64>,
    /// Balance after every change, for accounts flagged `history`.
    pub history: Vec<BalanceEntry>,
}

/// A page of results and the cursor for the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the requested order.
    pub items: Vec<T>,
    /// The timestamp to pass as `after` for the next page; `None` when there is no more.
    pub next: Option<u64>,
}

/// A page request over a timestamp-ordered list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageQuery {
    /// Exclusive cursor (a timestamp) in the direction of travel.
    pub after: Option<u64>,
    /// Maximum number of items, 1..=[`PAGE_LIMIT_MAX`].
    pub limit: usize,
    /// Newest first instead of oldest first.
    pub reverse: bool,
    /// Inclusive lower bound on timestamps.
    pub timestamp_min: u64,
    /// Inclusive upper bound on timestamps.
    pub timestamp_max: u64,
}

/// Largest page a query returns.
pub const PAGE_LIMIT_MAX: usize = 8190;

impl Default for PageQuery {
    fn default() -> Self {
        PageQuery {
            after: None,
            limit: 100,
            reverse: false,
            timestamp_min: 0,
            timestamp_max: u64::MAX,
        }
    }
}

/// A committed transfer as queries return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferView {
    /// The transfer.
    pub transfer: Transfer,
    /// Its metadata, if any.
    pub metadata: Option<Box<str>>,
    /// For a pending transfer: where it stands now.
    pub pending_status: Option<PendingStatus>,
}

/// How to undo one applied event, for linked chains that fail part-way.
enum Undo {
    Account {
        id: u128,
    },
    Transfer {
        debit_index: u32,
        credit_index: u32,
        debit_before: Balances,
        credit_before: Balances,
        /// The pending transfer this event settled and its status before.
        settled: Option<(u128, PendingStatus)>,
    },
}

/// The ledger state machine.
pub struct Ledger {
    pub(crate) accounts: Vec<AccountEntry>,
    account_index: Map<u128, u32>,
    /// Every committed transfer, in timestamp order.
    pub(crate) transfers: TransferLog,
    transfer_index: IdIndex,
    pub(crate) transfer_metadata: ShardedMap<Box<str>>,
    pub(crate) pending_status: ShardedMap<PendingStatus>,
    /// Pending transfers with a timeout, by (deadline, id).
    expiries: BTreeSet<(u64, u128)>,
    pub(crate) last_timestamp: u64,
    undo: Vec<Undo>,
    /// Whether the event being applied is in a linked chain (and so must record its undo).
    in_chain: bool,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger {
            accounts: Vec::new(),
            account_index: Map::default(),
            transfers: TransferLog::default(),
            transfer_index: IdIndex::new(),
            transfer_metadata: ShardedMap::new(),
            pending_status: ShardedMap::new(),
            expiries: BTreeSet::new(),
            last_timestamp: 0,
            undo: Vec::new(),
            in_chain: false,
        }
    }

    /// The timestamp of the last thing the ledger committed (0 for an empty ledger).
    pub fn last_timestamp(&self) -> u64 {
        self.last_timestamp
    }

    /// The earliest deadline of a pending transfer with a timeout.
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiries.first().map(|(deadline, _)| *deadline)
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Number of committed transfers.
    pub fn transfer_count(&self) -> usize {
        self.transfers.len()
    }

    /// The first timestamp a batch read at `now` may use.
    fn timestamp_base(&self, now: u64) -> u64 {
        now.max(self.last_timestamp + 1)
    }

    /// Creates accounts, returning one result per event, in order.
    pub fn create_accounts(
        &mut self,
        now: u64,
        events: &[AccountEvent],
    ) -> Vec<CreateAccountResult> {
        use CreateAccountResult as R;
        let base = self.timestamp_base(now);
        let outcomes = [
            R::Ok,
            R::Exists,
            R::LinkedEventFailed,
            R::LinkedEventChainOpen,
        ];
        self.run_batch(
            base,
            events,
            |e| e.account.flags.contains(AccountFlags::LINKED),
            outcomes,
            |ledger, ts, e| ledger.create_account(ts, e),
        )
    }

    /// Applies a batch event by event, keeping linked chains all-or-nothing.
    ///
    /// `outcomes` is `[ok, exists, linked_event_failed, linked_event_chain_open]` of the result
    /// type. An identical resubmission (`exists`) does not fail its chain, so retrying a chain
    /// that committed answers `exists` for each event. Each applied event gets the next
    /// timestamp from `timestamp`.
    fn run_batch<E, R: Copy + PartialEq>(
        &mut self,
        mut timestamp: u64,
        events: &[E],
        linked: impl Fn(&E) -> bool,
        [ok, exists, failed, open]: [R; 4],
        mut apply: impl FnMut(&mut Ledger, u64, &E) -> R,
    ) -> Vec<R> {
        let mut results: Vec<R> = Vec::with_capacity(events.len());
        let mut chain_start: Option<usize> = None;
        let mut chain_failed = false;
        self.undo.clear();
        for (i, event) in events.iter().enumerate() {
            let is_linked = linked(event);
            if chain_start.is_none() && is_linked {
                chain_start = Some(i);
                chain_failed = false;
            }
            let result = if chain_failed {
                failed
            } else {
                self.in_chain = chain_start.is_some();
                let r = apply(self, timestamp, event);
                timestamp += 1;
                r
            };
            results.push(result);
            let Some(start) = chain_start else {
                self.undo.clear();
                continue;
            };
            let open_at_end = is_linked && i + 1 == events.len();
            if !chain_failed && ((result != ok && result != exists) || open_at_end) {
                chain_failed = true;
                self.rollback();
                for r in &mut results[start..i] {
                    *r = failed;
                }
            }
            if open_at_end {
                results[i] = open;
            }
            if !is_linked || open_at_end {
                chain_start = None;
                chain_failed = false;
                self.undo.clear();
            }
        }
        self.undo.clear();
        self.transfers.seal();
        self.last_timestamp = self.last_timestamp.max(timestamp.saturating_sub(1));
        debug_assert_eq!(results.len(), events.len());
        results
    }

    fn create_account(&mut self, timestamp: u64, event: &AccountEvent) -> CreateAccountResult {
        use CreateAccountResult as R;
        let a = &event.account;
        if a.id == 0 {
            return R::IdMustNotBeZero;
        }
        if a.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        if let Some(&index) = self.account_index.get(&a.id) {
            let entry = &self.accounts[index as usize];
            let e = &entry.account;
            return if e.flags != a.flags {
                R::ExistsWithDifferentFlags
            } else if e.user_data_128 != a.user_data_128 {
                R::ExistsWithDifferentUserData128
            } else if e.user_data_64 != a.user_data_64 {
                R::ExistsWithDifferentUserData64
            } else if e.user_data_32 != a.user_data_32 {
                R::ExistsWithDifferentUserData32
            } else if e.ledger != a.ledger {
                R::ExistsWithDifferentLedger
            } else if e.code != a.code {
                R::ExistsWithDifferentCode
            } else if entry.metadata != event.metadata {
                R::ExistsWithDifferentMetadata
            } else {
                R::Exists
            };
        }
        if a.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        if a.flags.contains(
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS
                | AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        ) {
            return R::FlagsAreMutuallyExclusive;
        }
        if a.debits_pending != 0 {
            return R::DebitsPendingMustBeZero;
        }
        if a.debits_posted != 0 {
            return R::DebitsPostedMustBeZero;
        }
        if a.credits_pending != 0 {
            return R::CreditsPendingMustBeZero;
        }
        if a.credits_posted != 0 {
            return R::CreditsPostedMustBeZero;
        }
        if a.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if a.code == 0 {
            return R::CodeMustNotBeZero;
        }
        if event
            .metadata
            .as_ref()
            .is_some_and(|m| m.len() > METADATA_BYTES_MAX)
        {
            return R::MetadataTooLarge;
        }
        let index = u32::try_from(self.accounts.len()).expect("fewer than 2^32 accounts");
        self.accounts.push(AccountEntry {
            account: Account { timestamp, ..*a },
            metadata: event.metadata.clone(),
            transfers: Vec::with_capacity(staggered_capacity(0, index)),
            history: Vec::new(),
        });
        self.account_index.insert(a.id, index);
        if self.in_chain {
            self.undo.push(Undo::Account { id: a.id });
        }
        R::Ok
    }

    /// Voids every pending transfer whose deadline is at or before `now`, then creates the
    /// transfers, returning one result per event, in order.
    pub fn create_transfers(
        &mut self,
        now: u64,
        events: &[TransferEvent],
    ) -> Vec<CreateTransferResult> {
        use CreateTransferResult as R;
        let base = self.timestamp_base(now);
        let base = self.expire_from(base, base);
        let outcomes = [
            R::Ok,
            R::Exists,
            R::LinkedEventFailed,
            R::LinkedEventChainOpen,
        ];
        self.run_batch(
            base,
            events,
            |e| e.transfer.flags.contains(TransferFlags::LINKED),
            outcomes,
            |ledger, ts, e| ledger.create_transfer(ts, e),
        )
    }

    /// Voids every pending transfer due at or before `now` (the ledger's timeout pulse).
    pub fn expire_pending(&mut self, now: u64) {
        let base = self.timestamp_base(now);
        let next = self.expire_from(base, base);
        self.last_timestamp = self.last_timestamp.max(next.saturating_sub(1));
    }

    /// Expires transfers due at or before `now`, giving each expiry its own timestamp starting
    /// at `timestamp`; returns the next free timestamp.
    fn expire_from(&mut self, now: u64, mut timestamp: u64) -> u64 {
        while let Some(&(deadline, id)) = self.expiries.first() {
            if deadline > now {
                break;
            }
            self.expiries.pop_first();
            let position = self.transfer_index[&id];
            let p = self.transfers[position as usize];
            debug_assert_eq!(self.pending_status.get(&id), Some(&PendingStatus::Pending));
            self.pending_status.insert(id, PendingStatus::Expired);
            let (di, ci) = (
                self.account_index[&p.debit_account_id],
                self.account_index[&p.credit_account_id],
            );
            let [debit, credit] = self
                .accounts
                .get_disjoint_mut([di as usize, ci as usize])
                .expect("a transfer's accounts differ");
            debit.account.debits_pending -= p.amount;
            credit.account.credits_pending -= p.amount;
            if p.flags.contains(TransferFlags::CLOSING_DEBIT) {
                debit.account.flags.0 &= !AccountFlags::CLOSED.0;
            }
            if p.flags.contains(TransferFlags::CLOSING_CREDIT) {
                credit.account.flags.0 &= !AccountFlags::CLOSED.0;
            }
            for entry in [debit, credit] {
                if entry.account.flags.contains(AccountFlags::HISTORY) {
                    entry.history.push(BalanceEntry {
                        timestamp,
                        transfer_id: id,
                        balances: entry.account.balances(),
                    });
                }
            }
            timestamp += 1;
        }
        self.last_timestamp = self.last_timestamp.max(timestamp.saturating_sub(1));
        timestamp
    }

    fn create_transfer(&mut self, timestamp: u64, event: &TransferEvent) -> CreateTransferResult {
        use CreateTransferResult as R;
        let t = &event.transfer;
        if t.id == 0 {
            return R::IdMustNotBeZero;
        }
        if t.id == u128::MAX {
            return R::IdMustNotBeIntMax;
        }
        if let Some(&position) = self.transfer_index.get(&t.id) {
            return self.transfer_exists(&self.transfers[position as usize], event);
        }
        if t.timestamp != 0 {
            return R::TimestampMustBeZero;
        }
        let f = t.flags;
        let settle = f.contains(TransferFlags::POST_PENDING_TRANSFER)
            || f.contains(TransferFlags::VOID_PENDING_TRANSFER);
        let kinds = [
            TransferFlags::PENDING,
            TransferFlags::POST_PENDING_TRANSFER,
            TransferFlags::VOID_PENDING_TRANSFER,
        ]
        .iter()
        .filter(|k| f.contains(**k))
        .count();
        let balancing = f.contains(TransferFlags::BALANCING_DEBIT)
            || f.contains(TransferFlags::BALANCING_CREDIT);
        if kinds > 1 || (settle && balancing) {
            return R::FlagsAreMutuallyExclusive;
        }
        if closes(f) && !f.contains(TransferFlags::PENDING) {
            return R::ClosingTransferMustBePending;
        }
        if event
            .metadata
            .as_ref()
            .is_some_and(|m| m.len() > METADATA_BYTES_MAX)
        {
            return R::MetadataTooLarge;
        }
        if settle {
            self.settle_pending(timestamp, event)
        } else {
            self.transfer_new(timestamp, event)
        }
    }

    fn transfer_exists(&self, e: &Transfer, event: &TransferEvent) -> CreateTransferResult {
        use CreateTransferResult as R;
        let t = &event.transfer;
        let settle = t.flags.contains(TransferFlags::POST_PENDING_TRANSFER)
            || t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER);
        // A post or void may leave fields to be taken from the pending transfer: an omitted
        // (zero) field matches what was filled in.
        let same = |asked: u128, stored: u128| asked == stored || (settle && asked == 0);
        let amount_same = if settle && t.amount == 0 {
            let full = self
                .transfer_index
                .get(&e.pending_id)
                .map(|&p| self.transfers[p as usize].amount);
            full == Some(e.amount)
        } else if t.flags.contains(TransferFlags::BALANCING_DEBIT)
            || t.flags.contains(TransferFlags::BALANCING_CREDIT)
        {
            t.amount >= e.amount
        } else {
            t.amount == e.amount
        };
        let metadata = self.transfer_metadata.get(&e.id);
        if t.flags != e.flags {
            R::ExistsWithDifferentFlags
        } else if !same(t.debit_account_id, e.debit_account_id) {
            R::ExistsWithDifferentDebitAccountId
        } else if !same(t.credit_account_id, e.credit_account_id) {
            R::ExistsWithDifferentCreditAccountId
        } else if !amount_same {
            R::ExistsWithDifferentAmount
        } else if t.pending_id != e.pending_id {
            R::ExistsWithDifferentPendingId
        } else if t.user_data_128 != e.user_data_128 {
            R::ExistsWithDifferentUserData128
        } else if t.user_data_64 != e.user_data_64 {
            R::ExistsWithDifferentUserData64
        } else if t.user_data_32 != e.user_data_32 {
            R::ExistsWithDifferentUserData32
        } else if t.timeout != e.timeout {
            R::ExistsWithDifferentTimeout
        } else if !same(u128::from(t.code), u128::from(e.code)) {
            R::ExistsWithDifferentCode
        } else if !same(u128::from(t.ledger), u128::from(e.ledger)) {
            R::ExistsWithDifferentLedger
        } else if metadata != event.metadata.as_ref() {
            R::ExistsWithDifferentMetadata
        } else {
            R::Exists
        }
    }

    /// A plain, pending or balancing transfer.
    fn transfer_new(&mut self, timestamp: u64, event: &TransferEvent) -> CreateTransferResult {
        use CreateTransferResult as R;
        let t = &event.transfer;
        let pending = t.flags.contains(TransferFlags::PENDING);
        if t.pending_id != 0 {
            return R::PendingIdMustBeZero;
        }
        if t.timeout != 0 && !pending {
            return R::TimeoutReservedForPendingTransfer;
        }
        if t.debit_account_id == 0 {
            return R::DebitAccountIdMustNotBeZero;
        }
        if t.debit_account_id == u128::MAX {
            return R::DebitAccountIdMustNotBeIntMax;
        }
        if t.credit_account_id == 0 {
            return R::CreditAccountIdMustNotBeZero;
        }
        if t.credit_account_id == u128::MAX {
            return R::CreditAccountIdMustNotBeIntMax;
        }
        if t.debit_account_id == t.credit_account_id {
            return R::AccountsMustBeDifferent;
        }
        if t.ledger == 0 {
            return R::LedgerMustNotBeZero;
        }
        if t.code == 0 {
            return R::CodeMustNotBeZero;
        }
        // A closing transfer may move nothing: it is how an empty account is closed.
        if t.amount == 0 && !closes(t.flags) {
            return R::AmountMustNotBeZero;
        }
        let Some(&di) = self.account_index.get(&t.debit_account_id) else {
            return R::DebitAccountNotFound;
        };
        let Some(&ci) = self.account_index.get(&t.credit_account_id) else {
            return R::CreditAccountNotFound;
        };
        let dr = self.accounts[di as usize].account;
        let cr = self.accounts[ci as usize].account;
        if dr.ledger != cr.ledger {
            return R::AccountsMustHaveTheSameLedger;
        }
        if t.ledger != dr.ledger {
            return R::TransferMustHaveTheSameLedgerAsAccounts;
        }
        if dr.flags.contains(AccountFlags::CLOSED) {
            return R::DebitAccountAlreadyClosed;
        }
        if cr.flags.contains(AccountFlags::CLOSED) {
            return R::CreditAccountAlreadyClosed;
        }
        let mut amount = t.amount;
        if t.flags.contains(TransferFlags::BALANCING_DEBIT) {
            let used = dr.debits_pending.saturating_add(dr.debits_posted);
            amount = amount.min(dr.credits_posted.saturating_sub(used));
        }
        if t.flags.contains(TransferFlags::BALANCING_CREDIT) {
            let used = cr.credits_pending.saturating_add(cr.credits_posted);
            amount = amount.min(cr.debits_posted.saturating_sub(used));
        }
        if pending {
            if dr.debits_pending.checked_add(amount).is_none() {
                return R::OverflowsDebitsPending;
            }
            if cr.credits_pending.checked_add(amount).is_none() {
                return R::OverflowsCreditsPending;
            }
        } else {
            if dr.debits_posted.checked_add(amount).is_none() {
                return R::OverflowsDebitsPosted;
            }
            if cr.credits_posted.checked_add(amount).is_none() {
                return R::OverflowsCreditsPosted;
            }
        }
        let Some(dr_debits) = dr
            .debits_pending
            .checked_add(dr.debits_posted)
            .and_then(|d| d.checked_add(amount))
        else {
            return R::OverflowsDebits;
        };
        let Some(cr_credits) = cr
            .credits_pending
            .checked_add(cr.credits_posted)
            .and_then(|c| c.checked_add(amount))
        else {
            return R::OverflowsCredits;
        };
        let deadline = if pending && t.timeout != 0 {
            match timestamp.checked_add(u64::from(t.timeout) * NANOS_PER_SECOND) {
                Some(d) => Some(d),
                None => return R::OverflowsTimeout,
            }
        } else {
            None
        };
        if dr
            .flags
            .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
            && dr_debits > dr.credits_posted
        {
            return R::ExceedsCredits;
        }
        if cr
            .flags
            .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
            && cr_credits > cr.debits_posted
        {
            return R::ExceedsDebits;
        }

        let stored = Transfer {
            amount,
            timestamp,
            ..*t
        };
        let [debit, credit] = self
            .accounts
            .get_disjoint_mut([di as usize, ci as usize])
            .expect("accounts differ");
        let (debit_before, credit_before) = (debit.account.balances(), credit.account.balances());
        if pending {
            debit.account.debits_pending += amount;
            credit.account.credits_pending += amount;
        } else {
            debit.account.debits_posted += amount;
            credit.account.credits_posted += amount;
        }
        if pending {
            self.pending_status.insert(t.id, PendingStatus::Pending);
            if let Some(deadline) = deadline {
                self.expiries.insert((deadline, t.id));
            }
        }
        // Both accounts were open (checked above), so undoing this only has to reopen them.
        self.set_closed(t, di, ci, true);
        self.commit_transfer(
            stored,
            event.metadata.clone(),
            di,
            ci,
            debit_before,
            credit_before,
            None,
        );
        R::Ok
    }

    /// A post or void of a pending transfer.
    fn settle_pending(&mut self, timestamp: u64, event: &TransferEvent) -> CreateTransferResult {
        use CreateTransferResult as R;
        let t = &event.transfer;
        let post = t.flags.contains(TransferFlags::POST_PENDING_TRANSFER);
        if t.pending_id == 0 {
            return R::PendingIdMustNotBeZero;
        }
        if t.pending_id == u128::MAX {
            return R::PendingIdMustNotBeIntMax;
        }
        if t.pending_id == t.id {
            return R::PendingIdMustBeDifferent;
        }
        if t.timeout != 0 {
            return R::TimeoutReservedForPendingTransfer;
        }
        let Some(&position) = self.transfer_index.get(&t.pending_id) else {
            return R::PendingTransferNotFound;
        };
        let p = self.transfers[position as usize];
        if !p.flags.contains(TransferFlags::PENDING) {
            return R::PendingTransferNotPending;
        }
        if t.debit_account_id != 0 && t.debit_account_id != p.debit_account_id {
            return R::PendingTransferHasDifferentDebitAccountId;
        }
        if t.credit_account_id != 0 && t.credit_account_id != p.credit_account_id {
            return R::PendingTransferHasDifferentCreditAccountId;
        }
        if t.ledger != 0 && t.ledger != p.ledger {
            return R::PendingTransferHasDifferentLedger;
        }
        if t.code != 0 && t.code != p.code {
            return R::PendingTransferHasDifferentCode;
        }
        let amount = if post {
            if t.amount > p.amount {
                return R::ExceedsPendingTransferAmount;
            }
            if t.amount == 0 { p.amount } else { t.amount }
        } else {
            if t.amount != 0 {
                return R::VoidAmountMustBeZero;
            }
            p.amount
        };
        let status = self.pending_status.get(&p.id).copied();
        match status {
            Some(PendingStatus::Pending) => {}
            Some(PendingStatus::Posted) => return R::PendingTransferAlreadyPosted,
            Some(PendingStatus::Voided) => return R::PendingTransferAlreadyVoided,
            Some(PendingStatus::Expired) | None => return R::PendingTransferExpired,
        }
        let deadline =
            (p.timeout != 0).then(|| p.timestamp + u64::from(p.timeout) * NANOS_PER_SECOND);
        if deadline.is_some_and(|d| d <= timestamp) {
            return R::PendingTransferExpired;
        }
        let di = self.account_index[&p.debit_account_id];
        let ci = self.account_index[&p.credit_account_id];
        let [debit, credit] = self
            .accounts
            .get_disjoint_mut([di as usize, ci as usize])
            .expect("accounts differ");
        if post {
            if debit.account.debits_posted.checked_add(amount).is_none() {
                return R::OverflowsDebitsPosted;
            }
            if credit.account.credits_posted.checked_add(amount).is_none() {
                return R::OverflowsCreditsPosted;
            }
        }
        let (debit_before, credit_before) = (debit.account.balances(), credit.account.balances());
        debit.account.debits_pending -= p.amount;
        credit.account.credits_pending -= p.amount;
        if post {
            debit.account.debits_posted += amount;
            credit.account.credits_posted += amount;
        }
        self.pending_status.insert(
            p.id,
            if post {
                PendingStatus::Posted
            } else {
                PendingStatus::Voided
            },
        );
        if !post {
            self.set_closed(&p, di, ci, false);
        }
        if let Some(d) = deadline {
            self.expiries.remove(&(d, p.id));
        }
        let stored = Transfer {
            debit_account_id: p.debit_account_id,
            credit_account_id: p.credit_account_id,
            ledger: p.ledger,
            code: p.code,
            amount,
            timestamp,
            ..*t
        };
        self.commit_transfer(
            stored,
            event.metadata.clone(),
            di,
            ci,
            debit_before,
            credit_before,
            Some((p.id, PendingStatus::Pending)),
        );
        R::Ok
    }

    /// Records a validated transfer whose balance changes are already applied.
    #[allow(clippy::too_many_arguments)]
    fn commit_transfer(
        &mut self,
        stored: Transfer,
        metadata: Option<Box<str>>,
        debit_index: u32,
        credit_index: u32,
        debit_before: Balances,
        credit_before: Balances,
        settled: Option<(u128, PendingStatus)>,
    ) {
        let position = self.transfers.len() as u64;
        self.transfers.push(stored);
        self.transfer_index.insert(stored.id, position);
        if let Some(m) = metadata {
            self.transfer_metadata.insert(stored.id, m);
        }
        for index in [debit_index, credit_index] {
            let entry = &mut self.accounts[index as usize];
            entry.transfers.push(position);
            if entry.account.flags.contains(AccountFlags::HISTORY) {
                entry.history.push(BalanceEntry {
                    timestamp: stored.timestamp,
                    transfer_id: stored.id,
                    balances: entry.account.balances(),
                });
            }
        }
        if !self.in_chain {
            return;
        }
        self.undo.push(Undo::Transfer {
            debit_index,
            credit_index,
            debit_before,
            credit_before,
            settled,
        });
    }

    /// Closes (or reopens) the accounts a closing transfer `t` names, at `debit`/`credit`.
    fn set_closed(&mut self, t: &Transfer, debit: u32, credit: u32, closed: bool) {
        for (flag, index) in [
            (TransferFlags::CLOSING_DEBIT, debit),
            (TransferFlags::CLOSING_CREDIT, credit),
        ] {
            if t.flags.contains(flag) {
                let flags = &mut self.accounts[index as usize].account.flags;
                if closed {
                    flags.0 |= AccountFlags::CLOSED.0;
                } else {
                    flags.0 &= !AccountFlags::CLOSED.0;
                }
            }
        }
    }

    /// Undoes every event recorded in the undo log, newest first.
    fn rollback(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Account { id } => {
                    let index = self
                        .account_index
                        .remove(&id)
                        .expect("undo of a created account");
                    debug_assert_eq!(index as usize, self.accounts.len() - 1);
                    self.accounts.pop();
                }
                Undo::Transfer {
                    debit_index,
                    credit_index,
                    debit_before,
                    credit_before,
                    settled,
                } => {
                    let t = self.transfers.pop().expect("undo of a created transfer");
                    self.transfer_index.remove_last(&t.id);
                    self.transfer_metadata.remove(&t.id);
                    for (index, before) in
                        [(debit_index, debit_before), (credit_index, credit_before)]
                    {
                        let entry = &mut self.accounts[index as usize];
                        entry.transfers.pop();
                        if entry.account.flags.contains(AccountFlags::HISTORY) {
                            entry.history.pop();
                        }
                        entry.account.set_balances(before);
                    }
                    if t.flags.contains(TransferFlags::PENDING) {
                        self.set_closed(&t, debit_index, credit_index, false);
                        self.pending_status.remove(&t.id);
                        if t.timeout != 0 {
                            self.expiries.remove(&(
                                t.timestamp + u64::from(t.timeout) * NANOS_PER_SECOND,
                                t.id,
                            ));
                        }
                    }
                    if let Some((pending_id, before)) = settled {
                        self.pending_status.insert(pending_id, before);
                        let p = self.transfers[self.transfer_index[&pending_id] as usize];
                        if t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER) {
                            self.set_closed(&p, debit_index, credit_index, true);
                        }
                        if p.timeout != 0 {
                            self.expiries.insert((
                                p.timestamp + u64::from(p.timeout) * NANOS_PER_SECOND,
                                p.id,
                            ));
                        }
                    }
                }
            }
        }
    }

    // ---- queries ----

    /// The account with this id, with its metadata.
    pub fn account(&self, id: u128) -> Option<(&Account, Option<&str>)> {
        let index = *self.account_index.get(&id)?;
        let entry = &self.accounts[index as usize];
        Some((&entry.account, entry.metadata.as_deref()))
    }

    /// The committed transfer with this id.
    pub fn transfer(&self, id: u128) -> Option<TransferView> {
        let position = *self.transfer_index.get(&id)?;
        Some(self.view(position))
    }

    fn view(&self, position: u64) -> TransferView {
        let transfer = self.transfers[position as usize];
        TransferView {
            transfer,
            metadata: self.transfer_metadata.get(&transfer.id).cloned(),
            pending_status: self.pending_status.get(&transfer.id).copied(),
        }
    }

    /// Up to `limit` committed transfers with a timestamp after `timestamp`, oldest first: how
    /// the ledger's events are read (the transfer log is in timestamp order).
    pub fn transfers_after(&self, timestamp: u64, limit: usize) -> Vec<TransferView> {
        let (mut low, mut high) = (0, self.transfers.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.transfers[mid].timestamp <= timestamp {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let end = self.transfers.len().min(low.saturating_add(limit));
        (low..end).map(|p| self.view(p as u64)).collect()
    }

    /// The committed transfers touching an account, a page at a time. `None` if the account is
    /// unknown.
    pub fn account_transfers(&self, id: u128, query: PageQuery) -> Option<Page<TransferView>> {
        let entry = &self.accounts[*self.account_index.get(&id)? as usize];
        let transfers = &self.transfers;
        Some(page(
            &entry.transfers,
            query,
            |&p| transfers[p as usize].timestamp,
            |&p| self.view(p),
        ))
    }

    /// The balance history of an account flagged `history`. `None` if the account is unknown;
    /// an empty page if it does not keep history.
    pub fn account_balances(&self, id: u128, query: PageQuery) -> Option<Page<BalanceEntry>> {
        let entry = &self.accounts[*self.account_index.get(&id)? as usize];
        Some(page(&entry.history, query, |e| e.timestamp, |e| *e))
    }

    /// Every account, in creation order.
    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter().map(|e| &e.account)
    }

    /// Every committed transfer, in timestamp order.
    pub fn transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.iter()
    }

    /// The sealed (immutable) chunks of the transfer history, in order.
    pub(crate) fn sealed_chunks(&self) -> &[Chunk] {
        &self.transfers.sealed
    }

    /// A consistent copy of the state for a snapshot; cheap, as the history is shared.
    pub fn image(&self) -> SnapshotImage {
        SnapshotImage {
            last_timestamp: self.last_timestamp,
            accounts: self
                .accounts
                .iter()
                .map(|e| (e.account, e.metadata.clone(), e.history.clone()))
                .collect(),
            sealed: self.transfers.sealed.clone(),
            tail: self.transfers.tail.clone(),
            metadata: self
                .transfer_metadata
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            pending: self.pending_status.iter().map(|(k, v)| (*k, *v)).collect(),
        }
    }

    /// Checks the invariants that must hold between batches; returns what is wrong.
    ///
    /// Per ledger, posted debits equal posted credits and pending debits equal pending credits;
    /// balances equal what the committed transfers imply; every limit holds.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut sums: std::collections::BTreeMap<u32, [u128; 4]> = Default::default();
        let mut implied: Map<u128, Balances> = Map::default();
        for t in self.transfers.iter() {
            let status = self.pending_status.get(&t.id).copied();
            let (pending, posted) = if t.flags.contains(TransferFlags::PENDING) {
                (
                    if status == Some(PendingStatus::Pending) {
                        t.amount
                    } else {
                        0
                    },
                    0,
                )
            } else if t.flags.contains(TransferFlags::VOID_PENDING_TRANSFER) {
                (0, 0)
            } else {
                (0, t.amount)
            };
            let d = implied.entry(t.debit_account_id).or_default();
            d.debits_pending += pending;
            d.debits_posted += posted;
            let c = implied.entry(t.credit_account_id).or_default();
            c.credits_pending += pending;
            c.credits_posted += posted;
        }
        for entry in &self.accounts {
            let a = &entry.account;
            let s = sums.entry(a.ledger).or_default();
            s[0] += a.debits_posted;
            s[1] += a.credits_posted;
            s[2] += a.debits_pending;
            s[3] += a.credits_pending;
            let expect = implied.get(&a.id).copied().unwrap_or_default();
            if a.balances() != expect {
                return Err(format!(
                    "account {} balances {:?} but transfers imply {:?}",
                    a.id,
                    a.balances(),
                    expect
                ));
            }
            if a.flags
                .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
                && a.debits_pending + a.debits_posted > a.credits_posted
            {
                return Err(format!("account {} debits exceed credits", a.id));
            }
            if a.flags
                .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
                && a.credits_pending + a.credits_posted > a.debits_posted
            {
                return Err(format!("account {} credits exceed debits", a.id));
            }
        }
        for (ledger, [dp, cp, dpe, cpe]) in sums {
            if dp != cp || dpe != cpe {
                return Err(format!(
                    "ledger {ledger} unbalanced: posted {dp}/{cp}, pending {dpe}/{cpe}"
                ));
            }
        }
        Ok(())
    }

    // ---- snapshot support ----

    /// Rebuilds a ledger from its persisted parts (see [`crate::snapshot`]).
    ///
    /// The id index is built by two threads, each filling the shards of half the hash space, while this one
    /// rebuilds every account's list of transfers.
    pub(crate) fn from_parts(
        accounts: Vec<(Account, Option<Box<str>>, Vec<BalanceEntry>)>,
        transfers: TransferLog,
        transfer_metadata: Vec<(u128, Box<str>)>,
        pending_status: Vec<(u128, PendingStatus)>,
        last_timestamp: u64,
    ) -> Result<Ledger, String> {
        let mut ledger = Ledger::new();
        ledger.account_index.reserve(accounts.len());
        for (account, metadata, history) in accounts {
            let index = ledger.accounts.len() as u32;
            if ledger.account_index.insert(account.id, index).is_some() {
                return Err(format!("account {} appears twice", account.id));
            }
            ledger.accounts.push(AccountEntry {
                account,
                metadata,
                transfers: Vec::new(),
                history,
            });
        }
        // The run of increasing ids is found in one pass; the other ids are hashed into the
        // shards by two threads, each filling the shards of half the hash space.
        let index = &mut ledger.transfer_index;
        let mut others: Vec<u64> = Vec::new();
        for (position, t) in transfers.iter().enumerate() {
            if index.run_last().is_none_or(|last| t.id > last) {
                index.push_run(t.id, position as u64);
            } else {
                others.push(position as u64);
            }
        }
        index.others.reserve(others.len());
        let fill = |shards: &mut [Map<u128, u64>], first: usize| -> Result<(), String> {
            for &position in &others {
                let id = transfers[position as usize].id;
                let shard = ShardedMap::<u64>::shard(id);
                if (first..first + shards.len()).contains(&shard)
                    && shards[shard - first].insert(id, position).is_some()
                {
                    return Err(format!("transfer {id} appears twice"));
                }
            }
            Ok(())
        };
        // Split where half the hash space (so about half the ids) falls on each side.
        let split = SHARD_BOUNDS.partition_point(|&bound| bound < u64::MAX / 2);
        let (low, high) = index.others.shards.split_at_mut(split);
        let account_index = &ledger.account_index;
        let entries = &mut ledger.accounts;
        std::thread::scope(|scope| {
            let low = scope.spawn(|| fill(low, 0));
            let high = scope.spawn(|| fill(high, split));
            for (position, t) in transfers.iter().enumerate() {
                for id in [t.debit_account_id, t.credit_account_id] {
                    let Some(&index) = account_index.get(&id) else {
                        return Err(format!("transfer {} names unknown account {id}", t.id));
                    };
                    entries[index as usize].transfers.push(position as u64);
                }
            }
            for (index, entry) in entries.iter_mut().enumerate() {
                let len = entry.transfers.len();
                entry
                    .transfers
                    .reserve_exact(staggered_capacity(len, index as u32) - len);
            }
            low.join()
                .map_err(|_| "index thread panicked".to_string())??;
            high.join()
                .map_err(|_| "index thread panicked".to_string())?
        })?;
        ledger.transfers = transfers;
        ledger.transfer_metadata.extend(transfer_metadata);
        for (id, status) in pending_status {
            if status == PendingStatus::Pending {
                let Some(&p) = ledger.transfer_index.get(&id) else {
                    return Err(format!("pending transfer {id} is unknown"));
                };
                let t = ledger.transfers[p as usize];
                if t.timeout != 0 {
                    ledger
                        .expiries
                        .insert((t.timestamp + u64::from(t.timeout) * NANOS_PER_SECOND, id));
                }
            }
            ledger.pending_status.insert(id, status);
        }
        ledger.last_timestamp = last_timestamp;
        Ok(ledger)
    }
}

/// A capacity for account `index`'s list of `len` transfers, between `len` and twice it.
///
/// Lists double as they grow. Were they all the same size, every account's list would
/// reallocate (and copy) in the same batch once transfers spread evenly over accounts; spreading
/// the capacities over one doubling spreads those reallocations out.
fn staggered_capacity(len: usize, index: u32) -> usize {
    let base = len.max(8);
    let fraction = (index.wrapping_mul(2_654_435_761) >> 22) as usize; // 0..1024, well mixed
    base + base * fraction / 1024
}

/// Pages through a timestamp-ordered list.
fn page<S, T>(
    items: &[S],
    q: PageQuery,
    timestamp: impl Fn(&S) -> u64,
    view: impl Fn(&S) -> T,
) -> Page<T> {
    let limit = q.limit.clamp(1, PAGE_LIMIT_MAX);
    // The window of items inside [timestamp_min, timestamp_max] and past the cursor.
    let mut lo = items.partition_point(|s| timestamp(s) < q.timestamp_min);
    let mut hi = items.partition_point(|s| timestamp(s) <= q.timestamp_max);
    if let Some(after) = q.after {
        if q.reverse {
            hi = hi.min(items.partition_point(|s| timestamp(s) < after));
        } else {
            lo = lo.max(items.partition_point(|s| timestamp(s) <= after));
        }
    }
    if lo >= hi {
        return Page {
            items: Vec::new(),
            next: None,
        };
    }
    let window = &items[lo..hi];
    let chosen: Vec<&S> = if q.reverse {
        window.iter().rev().take(limit).collect()
    } else {
        window.iter().take(limit).collect()
    };
    let next = (window.len() > limit).then(|| timestamp(chosen[chosen.len() - 1]));
    Page {
        items: chosen.into_iter().map(view).collect(),
        next,
    }
}

/// Whether a transfer closes an account.
fn closes(flags: TransferFlags) -> bool {
    flags.contains(TransferFlags::CLOSING_DEBIT) || flags.contains(TransferFlags::CLOSING_CREDIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_index_finds_every_id_across_run_segments_and_forgets_the_last_one() {
        let mut index = IdIndex::new();
        let ids: Vec<u128> = (1..=(2 * RUN_SEGMENT as u128 + 5)).map(|i| i * 3).collect();
        for (position, &id) in ids.iter().enumerate() {
            index.insert(id, position as u64);
        }
        // An id below the run's last goes to the hash map.
        index.insert(5, 999);
        assert_eq!(index.run.len(), 3);
        for (position, id) in ids.iter().enumerate() {
            assert_eq!(index.get(id), Some(&(position as u64)), "id {id}");
            assert_eq!(index.get(&(id + 1)), None);
        }
        assert_eq!(index.get(&5), Some(&999));
        // Removing ids newest first empties the last segment and drops it.
        index.remove_last(&5);
        assert_eq!(index.get(&5), None);
        for id in ids.iter().rev().take(6) {
            index.remove_last(id);
            assert_eq!(index.get(id), None);
        }
        assert_eq!(index.run.len(), 2);
        let last = ids[2 * RUN_SEGMENT - 2];
        assert_eq!(index.run_last(), Some(last));
        assert_eq!(index.get(&last), Some(&(2 * RUN_SEGMENT as u64 - 2)));
        index.insert(last + 1, 7);
        assert_eq!(index.get(&(last + 1)), Some(&7));
    }
}
