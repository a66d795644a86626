//! The customer domain, pure: what a customer record holds, what a valid one is, how KYC
//! status may move, what consents exist, and how regulated values are masked. No I/O, no
//! clock: today's date comes in.

use crate::identifiers::{Brn, IdentifierError, Phone, Rrn};
use serde_json::{Map, Value};
use time::Date;

/// Characters in a name at most.
pub const NAME_CHARS_MAX: usize = 100;
/// Characters in an address at most.
pub const ADDRESS_CHARS_MAX: usize = 300;
/// Characters in an employer's name at most.
pub const EMPLOYER_CHARS_MAX: usize = 100;
/// Bytes of personal credit data (a JSON object) at most.
pub const CREDIT_BYTES_MAX: usize = 4096;
/// Characters in a stated purpose, a KYC reason or a note at most.
pub const NOTE_CHARS_MAX: usize = 500;

/// Individual or business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A natural person: a registration number is required.
    Individual,
    /// A business: a business registration number is required.
    Business,
}

/// Where a customer's identity verification stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KycStatus {
    /// Not verified yet (every new customer).
    Pending,
    /// Identity verified.
    Verified,
    /// Verification failed or was revoked.
    Rejected,
    /// A verification that is too old and must be renewed.
    Expired,
}

/// A purpose a customer consents to (or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Marketing and offers (campaigns need it).
    Marketing,
    /// Inquiring the customer's credit information (lending needs it).
    CreditInquiry,
    /// Sharing personal information with third parties.
    ThirdPartySharing,
}

/// Where a consent was given or withdrawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// The mobile app.
    App,
    /// The web.
    Web,
    /// A branch, in person.
    Branch,
    /// The call centre, recorded.
    CallCenter,
    /// Post.
    Mail,
}

/// A regulated field: stored sealed, read masked unless unmasked with permission and purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// The name (sealed so that erasure removes it; shown in full to staff).
    Name,
    /// Resident or foreigner's registration number.
    Rrn,
    /// Phone number.
    Phone,
    /// Postal address.
    Address,
    /// Annual income, whole won.
    Income,
    /// Employer.
    Employer,
    /// Personal credit information (a JSON object: bureau, score, grade, …).
    Credit,
}

macro_rules! names {
    ($ty:ty { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            /// Every value with its wire name.
            pub const ALL: &'static [($ty, &'static str)] = &[$((<$ty>::$variant, $name)),*];
            /// The wire name.
            pub fn name(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),* }
            }
            /// The value a wire name stands for.
            pub fn from_name(name: &str) -> Option<$ty> {
                match name { $($name => Some(<$ty>::$variant),)* _ => None }
            }
        }
    };
}

names!(Kind { Individual = "individual", Business = "business" });
names!(KycStatus { Pending = "pending", Verified = "verified", Rejected = "rejected", Expired = "expired" });
names!(Purpose { Marketing = "marketing", CreditInquiry = "credit_inquiry", ThirdPartySharing = "third_party_sharing" });
names!(Channel { App = "app", Web = "web", Branch = "branch", CallCenter = "call_center", Mail = "mail" });
names!(Field {
    Name = "name", Rrn = "rrn", Phone = "phone", Address = "address",
    Income = "income", Employer = "employer", Credit = "credit",
});

impl KycStatus {
    /// Whether a customer in this status may move to `next`: pending → verified | rejected;
    /// verified → expired | rejected; rejected | expired → pending (a new attempt).
    pub fn may_become(self, next: KycStatus) -> bool {
        use KycStatus::*;
        matches!(
            (self, next),
            (Pending, Verified)
                | (Pending, Rejected)
                | (Verified, Expired)
                | (Verified, Rejected)
                | (Rejected, Pending)
                | (Expired, Pending)
        )
    }
}

/// Why a customer record or change was refused. Messages never contain a submitted value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A field's value breaks its rule.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field's wire name.
        field: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// A required field is missing.
    #[error("`{field}` is required {when}")]
    Required {
        /// The field's wire name.
        field: &'static str,
        /// For which kind of customer.
        when: &'static str,
    },
}

impl RuleError {
    fn invalid(field: &'static str, reason: impl Into<String>) -> RuleError {
        RuleError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    /// The stable problem code: `invalid_<field>` or `<field>_required`.
    pub fn code(&self) -> String {
        match self {
            RuleError::Invalid { field, .. } => format!("invalid_{field}"),
            RuleError::Required { field, .. } => format!("{field}_required"),
        }
    }
}

fn identifier(field: &'static str) -> impl Fn(IdentifierError) -> RuleError {
    move |e| RuleError::invalid(field, e.to_string())
}

/// The regulated fields of a customer, validated. What is sealed in storage.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    /// Name.
    pub name: String,
    /// Registration number.
    pub rrn: Option<Rrn>,
    /// Phone.
    pub phone: Option<Phone>,
    /// Address.
    pub address: Option<String>,
    /// Annual income in whole won.
    pub income: Option<u64>,
    /// Employer.
    pub employer: Option<String>,
    /// Personal credit information.
    pub credit: Option<Map<String, Value>>,
}

impl Profile {
    /// A field's value in the clear (`None` if absent).
    pub fn plain(&self, field: Field) -> Option<Value> {
        let text = |s: &str| Some(Value::String(s.to_owned()));
        match field {
            Field::Name => text(&self.name),
            Field::Rrn => self.rrn.as_ref().map(|r| Value::String(r.expose())),
            Field::Phone => self.phone.as_ref().and_then(|p| text(p.expose())),
            Field::Address => self.address.as_deref().and_then(text),
            Field::Income => self.income.map(|i| Value::String(i.to_string())),
            Field::Employer => self.employer.as_deref().and_then(text),
            Field::Credit => self.credit.clone().map(Value::Object),
        }
    }

    /// A field's value as read by default: the name in full (staff need it), the registration
    /// number to its birth date and 7th digit, the phone to its prefix and last four digits,
    /// the address to its first two words, and the rest hidden.
    pub fn masked(&self, field: Field) -> Option<Value> {
        let value = match field {
            Field::Name => return self.plain(field),
            Field::Rrn => self.rrn.as_ref().map(Rrn::masked),
            Field::Phone => self.phone.as_ref().map(Phone::masked),
            Field::Address => self.address.as_deref().map(mask_address),
            Field::Income => self.income.map(|_| HIDDEN.to_owned()),
            Field::Employer => self.employer.as_ref().map(|_| HIDDEN.to_owned()),
            Field::Credit => self.credit.as_ref().map(|_| HIDDEN.to_owned()),
        };
        value.map(Value::String)
    }
}

/// A new customer as submitted, before validation (plain strings from the wire).
#[derive(Clone, Debug, Default)]
pub struct Submitted {
    /// `individual` (default) or `business`.
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Registration number.
    pub rrn: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Address.
    pub address: Option<String>,
    /// Annual income, a decimal string of whole won.
    pub income: Option<String>,
    /// Employer.
    pub employer: Option<String>,
    /// Credit information.
    pub credit: Option<Map<String, Value>>,
    /// Business registration number.
    pub business_registration_number: Option<String>,
}

/// A new customer, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCustomer {
    /// Individual or business.
    pub kind: Kind,
    /// The regulated fields.
    pub profile: Profile,
    /// The business registration number (businesses).
    pub brn: Option<Brn>,
}

/// Validates a submitted customer: an individual needs a registration number, a business a
/// business registration number; every field within its bounds.
pub fn validate_new(submitted: Submitted, today: Date) -> Result<NewCustomer, RuleError> {
    let kind = match submitted.kind.as_deref() {
        None => Kind::Individual,
        Some(name) => Kind::from_name(name)
            .ok_or_else(|| RuleError::invalid("kind", "expected `individual` or `business`"))?,
    };
    let profile = Profile {
        name: text("name", &submitted.name, NAME_CHARS_MAX)?,
        rrn: submitted
            .rrn
            .as_deref()
            .map(|r| Rrn::parse(r, today).map_err(identifier("rrn")))
            .transpose()?,
        phone: submitted.phone.as_deref().map(parse_phone).transpose()?,
        address: submitted
            .address
            .as_deref()
            .map(|a| text("address", a, ADDRESS_CHARS_MAX))
            .transpose()?,
        income: submitted.income.as_deref().map(parse_income).transpose()?,
        employer: submitted
            .employer
            .as_deref()
            .map(|e| text("employer", e, EMPLOYER_CHARS_MAX))
            .transpose()?,
        credit: submitted.credit.map(check_credit).transpose()?,
    };
    let brn = submitted
        .business_registration_number
        .as_deref()
        .map(|b| Brn::parse(b).map_err(identifier("business_registration_number")))
        .transpose()?;
    match kind {
        Kind::Individual if profile.rrn.is_none() => {
            return Err(RuleError::Required {
                field: "rrn",
                when: "for an individual",
            });
        }
        Kind::Individual if brn.is_some() => {
            return Err(RuleError::invalid(
                "business_registration_number",
                "only a business has one",
            ));
        }
        Kind::Business if brn.is_none() => {
            return Err(RuleError::Required {
                field: "business_registration_number",
                when: "for a business",
            });
        }
        _ => {}
    }
    Ok(NewCustomer { kind, profile, brn })
}

/// A change to a customer's regulated fields: `None` leaves a field as it is, `Some(None)`
/// clears it, `Some(Some(v))` sets it. The registration number never changes this way.
#[derive(Clone, Debug, Default)]
pub struct Patch {
    /// New name.
    pub name: Option<String>,
    /// New phone, or clear.
    pub phone: Option<Option<String>>,
    /// New address, or clear.
    pub address: Option<Option<String>>,
    /// New income, or clear.
    pub income: Option<Option<String>>,
    /// New employer, or clear.
    pub employer: Option<Option<String>>,
    /// New credit information, or clear.
    pub credit: Option<Option<Map<String, Value>>>,
}

/// Applies a patch to a profile, validating the new values; returns the fields it changed.
pub fn apply_patch(profile: &mut Profile, patch: Patch) -> Result<Vec<Field>, RuleError> {
    let mut changed = Vec::new();
    if let Some(name) = patch.name {
        profile.name = text("name", &name, NAME_CHARS_MAX)?;
        changed.push(Field::Name);
    }
    if let Some(phone) = patch.phone {
        profile.phone = phone.as_deref().map(parse_phone).transpose()?;
        changed.push(Field::Phone);
    }
    if let Some(address) = patch.address {
        profile.address = address
            .as_deref()
            .map(|a| text("address", a, ADDRESS_CHARS_MAX))
            .transpose()?;
        changed.push(Field::Address);
    }
    if let Some(income) = patch.income {
        profile.income = income.as_deref().map(parse_income).transpose()?;
        changed.push(Field::Income);
    }
    if let Some(employer) = patch.employer {
        profile.employer = employer
            .as_deref()
            .map(|e| text("employer", e, EMPLOYER_CHARS_MAX))
            .transpose()?;
        changed.push(Field::Employer);
    }
    if let Some(credit) = patch.credit {
        profile.credit = credit.map(check_credit).transpose()?;
        changed.push(Field::Credit);
    }
    Ok(changed)
}

fn parse_phone(text: &str) -> Result<Phone, RuleError> {
    Phone::parse(text).map_err(identifier("phone"))
}

fn parse_income(text: &str) -> Result<u64, RuleError> {
    kernel::decimal::parse_u64(text)
        .ok_or_else(|| RuleError::invalid("income", "a decimal string of whole won"))
}

fn check_credit(credit: Map<String, Value>) -> Result<Map<String, Value>, RuleError> {
    let bytes = serde_json::to_vec(&credit)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if bytes > CREDIT_BYTES_MAX {
        return Err(RuleError::invalid(
            "credit",
            format!("at most {CREDIT_BYTES_MAX} bytes of JSON"),
        ));
    }
    Ok(credit)
}

/// Trimmed text of 1..=`max` characters without control characters.
pub fn text(field: &'static str, value: &str, max: usize) -> Result<String, RuleError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(RuleError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(RuleError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(RuleError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// The masked form of an address: its first two words (province and city or district), the
/// rest hidden.
pub fn mask_address(address: &str) -> String {
    let words: Vec<&str> = address.split_whitespace().collect();
    let shown = if words.len() > 2 { 2 } else { 1 };
    format!("{} ***", words[..shown.min(words.len())].join(" "))
}

/// The masked form of a field that shows nothing (income, employer, credit).
pub const HIDDEN: &str = "***";

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 27);

    fn person() -> Submitted {
        Submitted {
            name: "김하늘".into(),
            rrn: Some("900101-1234568".into()),
            phone: Some("010-1234-5678".into()),
            ..Submitted::default()
        }
    }

    #[test]
    fn an_individual_needs_a_registration_number_and_a_business_a_business_number() {
        let mut s = person();
        s.rrn = None;
        assert_eq!(validate_new(s, TODAY).unwrap_err().code(), "rrn_required");
        let s = Submitted {
            kind: Some("business".into()),
            name: "구름상사".into(),
            ..Submitted::default()
        };
        assert_eq!(
            validate_new(s, TODAY).unwrap_err().code(),
            "business_registration_number_required"
        );
        let s = Submitted {
            kind: Some("business".into()),
            name: "구름상사".into(),
            business_registration_number: Some("220-81-23455".into()),
            ..Submitted::default()
        };
        let new = validate_new(s, TODAY).unwrap();
        assert_eq!(new.kind, Kind::Business);
        assert_eq!(new.brn.unwrap().as_str(), "220-81-23455");
        let new = validate_new(person(), TODAY).unwrap();
        assert_eq!(new.kind, Kind::Individual);
        assert_eq!(new.profile.rrn.unwrap().masked(), "900101-1******");
    }

    #[test]
    fn field_rules_are_enforced_with_codes_that_never_carry_the_value() {
        type Change = Box<dyn Fn(&mut Submitted)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|s| s.rrn = Some("900101-1234567".into())),
                "invalid_rrn",
            ),
            (
                Box::new(|s| s.phone = Some("12-34".into())),
                "invalid_phone",
            ),
            (Box::new(|s| s.name = "  ".into()), "invalid_name"),
            (Box::new(|s| s.name = "a\u{0}b".into()), "invalid_name"),
            (Box::new(|s| s.name = "가".repeat(101)), "invalid_name"),
            (Box::new(|s| s.income = Some("-5".into())), "invalid_income"),
            (Box::new(|s| s.kind = Some("robot".into())), "invalid_kind"),
            (
                Box::new(|s| s.business_registration_number = Some("220-81-23455".into())),
                "invalid_business_registration_number",
            ),
        ];
        for (change, code) in cases {
            let mut s = person();
            change(&mut s);
            let error = validate_new(s, TODAY).unwrap_err();
            assert_eq!(error.code(), code);
            let message = error.to_string();
            for secret in ["900101", "1234-5678", "12-34"] {
                assert!(!message.contains(secret), "{message}");
            }
        }
        let mut s = person();
        s.credit =
            Some(serde_json::from_value(serde_json::json!({"x": "y".repeat(5000)})).unwrap());
        assert_eq!(validate_new(s, TODAY).unwrap_err().code(), "invalid_credit");
    }

    #[test]
    fn kyc_moves_only_along_its_transitions() {
        use KycStatus::*;
        let all = [Pending, Verified, Rejected, Expired];
        let allowed = [
            (Pending, Verified),
            (Pending, Rejected),
            (Verified, Expired),
            (Verified, Rejected),
            (Rejected, Pending),
            (Expired, Pending),
        ];
        for from in all {
            for to in all {
                assert_eq!(
                    from.may_become(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn a_patch_sets_clears_and_reports_what_changed() {
        let mut profile = validate_new(person(), TODAY).unwrap().profile;
        let changed = apply_patch(
            &mut profile,
            Patch {
                phone: Some(None),
                address: Some(Some("서울특별시 강남구 테헤란로 1".into())),
                ..Patch::default()
            },
        )
        .unwrap();
        assert_eq!(changed, vec![Field::Phone, Field::Address]);
        assert_eq!(profile.phone, None);
        assert_eq!(
            mask_address(profile.address.as_deref().unwrap()),
            "서울특별시 강남구 ***"
        );
        assert_eq!(mask_address("Seoul"), "Seoul ***");
        let error = apply_patch(
            &mut profile,
            Patch {
                income: Some(Some("1.5".into())),
                ..Patch::default()
            },
        );
        assert_eq!(error.unwrap_err().code(), "invalid_income");
    }

    #[test]
    fn wire_names_round_trip() {
        for (field, name) in Field::ALL {
            assert_eq!(Field::from_name(name), Some(*field));
            assert_eq!(field.name(), *name);
        }
        assert_eq!(
            Purpose::from_name("credit_inquiry"),
            Some(Purpose::CreditInquiry)
        );
        assert_eq!(Channel::from_name("call_center"), Some(Channel::CallCenter));
    }
}
