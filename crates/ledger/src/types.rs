//! The ledger's data: accounts, transfers, their flags and every result code.
//!
//! These are plain values. Amounts and balances are `u128` minor units; the currency and its
//! scale belong to the `ledger` number an account lives on, so the ledger never mixes them.

/// Largest number of events in one batch. 8190 fixed-size events fit a 1 MiB message.
pub const BATCH_EVENTS_MAX: usize = 8190;

/// Largest metadata object, in bytes of its canonical JSON text.
pub const METADATA_BYTES_MAX: usize = 4096;

/// A timeout is in seconds; timestamps are in nanoseconds.
pub const NANOS_PER_SECOND: u64 = 1_000_000_000;

macro_rules! flag_set {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $flag:ident = $bit:expr, $text:literal;)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name(pub u16);

        impl $name {
            $($(#[$fmeta])* pub const $flag: $name = $name($bit);)*
            /// Every flag with its wire name, in bit order.
            pub const ALL: &'static [($name, &'static str)] = &[$(($name::$flag, $text)),*];
            /// The bits no flag uses.
            pub const UNKNOWN_BITS: u16 = !(0 $(| $bit)*);

            /// Whether every bit of `other` is set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// Parses one wire name.
            pub fn from_name(text: &str) -> Option<$name> {
                Self::ALL.iter().find(|(_, n)| *n == text).map(|(f, _)| *f)
            }

            /// The wire names of the set flags, in bit order.
            pub fn names(self) -> Vec<&'static str> {
                Self::ALL.iter().filter(|(f, _)| self.contains(*f)).map(|(_, n)| *n).collect()
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }
    };
}

flag_set! {
    /// Flags of an account.
    AccountFlags {
        /// Commit this event only together with the next one in the batch.
        LINKED = 1 << 0, "linked";
        /// `debits_pending + debits_posted` may never exceed `credits_posted` (an asset the
        /// customer owns: a deposit account cannot go below zero).
        DEBITS_MUST_NOT_EXCEED_CREDITS = 1 << 1, "debits_must_not_exceed_credits";
        /// `credits_pending + credits_posted` may never exceed `debits_posted`.
        CREDITS_MUST_NOT_EXCEED_DEBITS = 1 << 2, "credits_must_not_exceed_debits";
        /// Keep the balance after every transfer, for balance-history queries.
        HISTORY = 1 << 3, "history";
        /// The account refuses new transfers.
        CLOSED = 1 << 4, "closed";
    }
}

flag_set! {
    /// Flags of a transfer.
    TransferFlags {
        /// Commit this event only together with the next one in the batch.
        LINKED = 1 << 0, "linked";
        /// Reserve the amount (two-phase transfer); a later post or void settles it.
        PENDING = 1 << 1, "pending";
        /// Post (part of) the pending transfer named by `pending_id`.
        POST_PENDING_TRANSFER = 1 << 2, "post_pending_transfer";
        /// Void the pending transfer named by `pending_id`, releasing its amount.
        VOID_PENDING_TRANSFER = 1 << 3, "void_pending_transfer";
        /// Move at most `amount`, less if the debit account's credits would be exceeded.
        BALANCING_DEBIT = 1 << 4, "balancing_debit";
        /// Move at most `amount`, less if the credit account's debits would be exceeded.
        BALANCING_CREDIT = 1 << 5, "balancing_credit";
        /// Close the debit account when this (pending) transfer commits; voiding or expiring
        /// the transfer opens it again.
        CLOSING_DEBIT = 1 << 6, "closing_debit";
        /// Close the credit account when this (pending) transfer commits; voiding or expiring
        /// the transfer opens it again.
        CLOSING_CREDIT = 1 << 7, "closing_credit";
    }
}

/// An account as the ledger keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Chosen by the client; never 0 or `u128::MAX`.
    pub id: u128,
    /// Amount reserved by pending transfers debiting this account.
    pub debits_pending: u128,
    /// Amount of posted debits.
    pub debits_posted: u128,
    /// Amount reserved by pending transfers crediting this account.
    pub credits_pending: u128,
    /// Amount of posted credits.
    pub credits_posted: u128,
    /// Opaque to the ledger: typically a foreign key.
    pub user_data_128: u128,
    /// Opaque to the ledger.
    pub user_data_64: u64,
    /// Opaque to the ledger.
    pub user_data_32: u32,
    /// The ledger (currency/asset) the account lives on; transfers never cross ledgers.
    pub ledger: u32,
    /// The account's kind in the chart of accounts.
    pub code: u16,
    /// See [`AccountFlags`].
    pub flags: AccountFlags,
    /// Assigned by the ledger when the account is created: unique and strictly increasing.
    pub timestamp: u64,
}

/// The four balances of an account at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balances {
    /// See [`Account::debits_pending`].
    pub debits_pending: u128,
    /// See [`Account::debits_posted`].
    pub debits_posted: u128,
    /// See [`Account::credits_pending`].
    pub credits_pending: u128,
    /// See [`Account::credits_posted`].
    pub credits_posted: u128,
}

impl Account {
    /// The account's current balances.
    pub fn balances(&self) -> Balances {
        Balances {
            debits_pending: self.debits_pending,
            debits_posted: self.debits_posted,
            credits_pending: self.credits_pending,
            credits_posted: self.credits_posted,
        }
    }

    pub(crate) fn set_balances(&mut self, b: Balances) {
        self.debits_pending = b.debits_pending;
        self.debits_posted = b.debits_posted;
        self.credits_pending = b.credits_pending;
        self.credits_posted = b.credits_posted;
    }
}

/// A transfer as the ledger keeps it (and as it is submitted).
///
/// Exactly 128 bytes in the binary encoding; see [`crate::codec`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Chosen by the client; never 0 or `u128::MAX`.
    pub id: u128,
    /// The account debited.
    pub debit_account_id: u128,
    /// The account credited.
    pub credit_account_id: u128,
    /// The amount in minor units. For a post, 0 means the full pending amount.
    pub amount: u128,
    /// For a post or void: the pending transfer it settles.
    pub pending_id: u128,
    /// Opaque to the ledger.
    pub user_data_128: u128,
    /// Opaque to the ledger.
    pub user_data_64: u64,
    /// Opaque to the ledger.
    pub user_data_32: u32,
    /// For a pending transfer: seconds after which the ledger voids it; 0 never expires.
    pub timeout: u32,
    /// The ledger both accounts live on.
    pub ledger: u32,
    /// The transfer's kind (reason), chosen by the client.
    pub code: u16,
    /// See [`TransferFlags`].
    pub flags: TransferFlags,
    /// Assigned by the ledger when the transfer commits: unique and strictly increasing.
    pub timestamp: u64,
}

/// Where a pending transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingStatus {
    /// Still reserving its amount.
    Pending,
    /// Settled by a post.
    Posted,
    /// Released by a void.
    Voided,
    /// Released by the ledger after its timeout.
    Expired,
}

impl PendingStatus {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            PendingStatus::Pending => "pending",
            PendingStatus::Posted => "posted",
            PendingStatus::Voided => "voided",
            PendingStatus::Expired => "expired",
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            PendingStatus::Pending => 1,
            PendingStatus::Posted => 2,
            PendingStatus::Voided => 3,
            PendingStatus::Expired => 4,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<PendingStatus> {
        Some(match v {
            1 => PendingStatus::Pending,
            2 => PendingStatus::Posted,
            3 => PendingStatus::Voided,
            4 => PendingStatus::Expired,
            _ => return None,
        })
    }
}

/// An account's balances just after one change, kept for accounts flagged `history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceEntry {
    /// The timestamp of the transfer (or the expiry) that made the change.
    pub timestamp: u64,
    /// The transfer that made the change (for an expiry: the expired pending transfer).
    pub transfer_id: u128,
    /// The balances after it.
    pub balances: Balances,
}

macro_rules! result_codes {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum $name {
            $(#[doc = $text] $variant,)*
        }

        impl $name {
            /// Every result, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stable snake_case wire name.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The stable numeric code (the binary encoding).
            pub fn code(self) -> u16 {
                self as u16
            }
        }
    };
}

result_codes! {
    /// The outcome of creating one account.
    CreateAccountResult {
        Ok = "ok",
        LinkedEventFailed = "linked_event_failed",
        LinkedEventChainOpen = "linked_event_chain_open",
        IdMustNotBeZero = "id_must_not_be_zero",
        IdMustNotBeIntMax = "id_must_not_be_int_max",
        ExistsWithDifferentFlags = "exists_with_different_flags",
        ExistsWithDifferentUserData128 = "exists_with_different_user_data_128",
        ExistsWithDifferentUserData64 = "exists_with_different_user_data_64",
        ExistsWithDifferentUserData32 = "exists_with_different_user_data_32",
        ExistsWithDifferentLedger = "exists_with_different_ledger",
        ExistsWithDifferentCode = "exists_with_different_code",
        ExistsWithDifferentMetadata = "exists_with_different_metadata",
        Exists = "exists",
        TimestampMustBeZero = "timestamp_must_be_zero",
        FlagsAreMutuallyExclusive = "flags_are_mutually_exclusive",
        DebitsPendingMustBeZero = "debits_pending_must_be_zero",
        DebitsPostedMustBeZero = "debits_posted_must_be_zero",
        CreditsPendingMustBeZero = "credits_pending_must_be_zero",
        CreditsPostedMustBeZero = "credits_posted_must_be_zero",
        LedgerMustNotBeZero = "ledger_must_not_be_zero",
        CodeMustNotBeZero = "code_must_not_be_zero",
        MetadataTooLarge = "metadata_too_large",
    }
}

result_codes! {
    /// The outcome of creating one transfer.
    CreateTransferResult {
        Ok = "ok",
        LinkedEventFailed = "linked_event_failed",
        LinkedEventChainOpen = "linked_event_chain_open",
        IdMustNotBeZero = "id_must_not_be_zero",
        IdMustNotBeIntMax = "id_must_not_be_int_max",
        ExistsWithDifferentFlags = "exists_with_different_flags",
        ExistsWithDifferentDebitAccountId = "exists_with_different_debit_account_id",
        ExistsWithDifferentCreditAccountId = "exists_with_different_credit_account_id",
        ExistsWithDifferentAmount = "exists_with_different_amount",
        ExistsWithDifferentPendingId = "exists_with_different_pending_id",
        ExistsWithDifferentUserData128 = "exists_with_different_user_data_128",
        ExistsWithDifferentUserData64 = "exists_with_different_user_data_64",
        ExistsWithDifferentUserData32 = "exists_with_different_user_data_32",
        ExistsWithDifferentTimeout = "exists_with_different_timeout",
        ExistsWithDifferentCode = "exists_with_different_code",
        ExistsWithDifferentLedger = "exists_with_different_ledger",
        ExistsWithDifferentMetadata = "exists_with_different_metadata",
        Exists = "exists",
        TimestampMustBeZero = "timestamp_must_be_zero",
        FlagsAreMutuallyExclusive = "flags_are_mutually_exclusive",
        MetadataTooLarge = "metadata_too_large",
        PendingIdMustBeZero = "pending_id_must_be_zero",
        PendingIdMustNotBeZero = "pending_id_must_not_be_zero",
        PendingIdMustNotBeIntMax = "pending_id_must_not_be_int_max",
        PendingIdMustBeDifferent = "pending_id_must_be_different",
        TimeoutReservedForPendingTransfer = "timeout_reserved_for_pending_transfer",
        DebitAccountIdMustNotBeZero = "debit_account_id_must_not_be_zero",
        DebitAccountIdMustNotBeIntMax = "debit_account_id_must_not_be_int_max",
        CreditAccountIdMustNotBeZero = "credit_account_id_must_not_be_zero",
        CreditAccountIdMustNotBeIntMax = "credit_account_id_must_not_be_int_max",
        AccountsMustBeDifferent = "accounts_must_be_different",
        LedgerMustNotBeZero = "ledger_must_not_be_zero",
        CodeMustNotBeZero = "code_must_not_be_zero",
        AmountMustNotBeZero = "amount_must_not_be_zero",
        DebitAccountNotFound = "debit_account_not_found",
        CreditAccountNotFound = "credit_account_not_found",
        AccountsMustHaveTheSameLedger = "accounts_must_have_the_same_ledger",
        TransferMustHaveTheSameLedgerAsAccounts = "transfer_must_have_the_same_ledger_as_accounts",
        DebitAccountAlreadyClosed = "debit_account_already_closed",
        CreditAccountAlreadyClosed = "credit_account_already_closed",
        PendingTransferNotFound = "pending_transfer_not_found",
        PendingTransferNotPending = "pending_transfer_not_pending",
        PendingTransferHasDifferentDebitAccountId = "pending_transfer_has_different_debit_account_id",
        PendingTransferHasDifferentCreditAccountId = "pending_transfer_has_different_credit_account_id",
        PendingTransferHasDifferentLedger = "pending_transfer_has_different_ledger",
        PendingTransferHasDifferentCode = "pending_transfer_has_different_code",
        ExceedsPendingTransferAmount = "exceeds_pending_transfer_amount",
        VoidAmountMustBeZero = "void_amount_must_be_zero",
        PendingTransferAlreadyPosted = "pending_transfer_already_posted",
        PendingTransferAlreadyVoided = "pending_transfer_already_voided",
        PendingTransferExpired = "pending_transfer_expired",
        OverflowsDebitsPending = "overflows_debits_pending",
        OverflowsCreditsPending = "overflows_credits_pending",
        OverflowsDebitsPosted = "overflows_debits_posted",
        OverflowsCreditsPosted = "overflows_credits_posted",
        OverflowsDebits = "overflows_debits",
        OverflowsCredits = "overflows_credits",
        OverflowsTimeout = "overflows_timeout",
        ExceedsCredits = "exceeds_credits",
        ExceedsDebits = "exceeds_debits",
        ClosingTransferMustBePending = "closing_transfer_must_be_pending",
    }
}
