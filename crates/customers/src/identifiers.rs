//! Korean identifiers a customer record holds, validated and masked: resident registration
//! numbers (주민등록번호) and foreigners' registration numbers (외국인등록번호), phone numbers and
//! business registration numbers (사업자등록번호). Pure: no clock (today's date comes in).
//!
//! Error messages say what is wrong and never repeat the value: these are regulated data.

use std::fmt;
use time::{Date, Month};

/// Why an identifier was refused. Carries no part of the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    /// Not `YYMMDD-NNNNNNN` (the hyphen optional).
    #[error("a registration number is 13 digits, `YYMMDD-NNNNNNN`")]
    RrnFormat,
    /// The 7th digit is not a known century/sex/nationality digit.
    #[error("the 7th digit of a registration number is not one that is issued")]
    RrnKind,
    /// The first six digits are not a calendar date, or it is in the future.
    #[error("the first six digits of a registration number are not a birth date")]
    RrnBirthDate,
    /// The 13th digit does not match the others.
    #[error("the check digit of the registration number does not match")]
    RrnCheckDigit,
    /// Not a Korean phone number.
    #[error("a phone number is 9 to 11 digits starting with 0 (or +82), hyphens allowed")]
    Phone,
    /// Not `NNN-NN-NNNNN` with a valid check digit.
    #[error(
        "a business registration number is 10 digits, `NNN-NN-NNNNN`, with a valid check digit"
    )]
    Brn,
}

/// Registration numbers issued from this date on carry random digits after the 7th, with no
/// check digit (a 2020 reform), so only numbers of people born before it are checked.
const RANDOMIZED_FROM: Date = time::macros::date!(2020 - 10 - 01);

/// A resident (or foreigner's) registration number, validated. Its `Debug` and `Display`
/// print the masked form; [`Rrn::expose`] is the only way to the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Rrn {
    digits: [u8; 13],
}

impl Rrn {
    /// Parses `YYMMDD-NNNNNNN` or 13 digits, checking the birth date (a real date, not after
    /// `today`), the 7th digit, and — for numbers issued before the October 2020 reform — the
    /// check digit (foreigners' numbers use their own formula).
    pub fn parse(text: &str, today: Date) -> Result<Rrn, IdentifierError> {
        let text = text.trim();
        let compact: Vec<u8> = match text.len() {
            13 => text.bytes().collect(),
            14 if text.as_bytes()[6] == b'-' => text.bytes().filter(|b| *b != b'-').collect(),
            _ => return Err(IdentifierError::RrnFormat),
        };
        if compact.len() != 13 || !compact.iter().all(u8::is_ascii_digit) {
            return Err(IdentifierError::RrnFormat);
        }
        let mut digits = [0u8; 13];
        for (d, c) in digits.iter_mut().zip(&compact) {
            *d = c - b'0';
        }
        let century = match digits[6] {
            9 | 0 => 1800,
            1 | 2 | 5 | 6 => 1900,
            3 | 4 | 7 | 8 => 2000,
            _ => return Err(IdentifierError::RrnKind),
        };
        let two = |i: usize| i32::from(digits[i]) * 10 + i32::from(digits[i + 1]);
        let month = u8::try_from(two(2))
            .ok()
            .and_then(|m| Month::try_from(m).ok())
            .ok_or(IdentifierError::RrnBirthDate)?;
        let day = u8::try_from(two(4)).map_err(|_| IdentifierError::RrnBirthDate)?;
        let birth = Date::from_calendar_date(century + two(0), month, day)
            .map_err(|_| IdentifierError::RrnBirthDate)?;
        if birth > today {
            return Err(IdentifierError::RrnBirthDate);
        }
        if birth < RANDOMIZED_FROM && digits[12] != check_digit(&digits) {
            return Err(IdentifierError::RrnCheckDigit);
        }
        Ok(Rrn { digits })
    }

    /// Whether this is a foreigner's registration number (7th digit 5–8).
    pub fn is_foreigner(&self) -> bool {
        (5..=8).contains(&self.digits[6])
    }

    /// `YYMMDD-NNNNNNN`: the value itself. Call only to encrypt it or to answer an audited,
    /// permitted unmasked read.
    pub fn expose(&self) -> String {
        let mut s = String::with_capacity(14);
        for (i, d) in self.digits.iter().enumerate() {
            if i == 6 {
                s.push('-');
            }
            s.push(char::from(b'0' + d));
        }
        s
    }

    /// `YYMMDD-N******`: birth date and the 7th digit, the rest hidden.
    pub fn masked(&self) -> String {
        let mut s = self.expose();
        s.replace_range(8.., "******");
        s
    }
}

/// The 13th digit: weights 2,3,4,5,6,7,8,9,2,3,4,5 over the first twelve; `(11 − sum mod 11)
/// mod 10` for residents, `(13 − sum mod 11) mod 10` for foreigners.
fn check_digit(digits: &[u8; 13]) -> u8 {
    const WEIGHTS: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5];
    let sum: u32 = digits
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    let base = if (5..=8).contains(&digits[6]) { 13 } else { 11 };
    ((base - sum % 11) % 10) as u8
}

impl fmt::Debug for Rrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rrn({})", self.masked())
    }
}

impl fmt::Display for Rrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A Korean phone number, normalized to its digits with a leading 0 (`+82 10-…` becomes
/// `010…`). `Debug` and `Display` print the masked form.
#[derive(Clone, PartialEq, Eq)]
pub struct Phone {
    digits: String,
}

impl Phone {
    /// Parses digits with optional spaces, hyphens, dots or parentheses, and an optional
    /// `+82` country prefix.
    pub fn parse(text: &str) -> Result<Phone, IdentifierError> {
        let text = text.trim();
        let (international, rest) = match text.strip_prefix("+82") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut digits = String::with_capacity(12);
        if international {
            digits.push('0');
        }
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(IdentifierError::Phone),
            }
            if digits.len() > 12 {
                return Err(IdentifierError::Phone);
            }
        }
        if international && digits.starts_with("00") {
            // `+82 010-…`: the trunk 0 written after the country code.
            digits.remove(0);
        }
        if !(9..=11).contains(&digits.len()) || !digits.starts_with('0') || digits.starts_with("00")
        {
            return Err(IdentifierError::Phone);
        }
        Ok(Phone { digits })
    }

    /// The normalized digits. Call only to encrypt, index or answer an audited read.
    pub fn expose(&self) -> &str {
        &self.digits
    }

    /// `010-****-5678`: the area or carrier prefix and the last four digits.
    pub fn masked(&self) -> String {
        let prefix = if self.digits.starts_with("02") { 2 } else { 3 };
        format!(
            "{}-****-{}",
            &self.digits[..prefix],
            &self.digits[self.digits.len() - 4..]
        )
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// A business registration number (사업자등록번호), `NNN-NN-NNNNN`. Public information, so
/// stored in the clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Brn(String);

impl Brn {
    /// Parses 10 digits (hyphens allowed) and checks the check digit: weights
    /// 1,3,7,1,3,7,1,3,5 over the first nine, plus ⌊9th × 5 / 10⌋, then `(10 − sum mod 10) mod 10`.
    pub fn parse(text: &str) -> Result<Brn, IdentifierError> {
        let digits: Vec<u32> = text
            .trim()
            .chars()
            .filter(|c| *c != '-')
            .map(|c| c.to_digit(10).ok_or(IdentifierError::Brn))
            .collect::<Result<_, _>>()?;
        if digits.len() != 10 {
            return Err(IdentifierError::Brn);
        }
        const WEIGHTS: [u32; 9] = [1, 3, 7, 1, 3, 7, 1, 3, 5];
        let mut sum: u32 = digits.iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        sum += digits[8] * 5 / 10;
        if (10 - sum % 10) % 10 != digits[9] {
            return Err(IdentifierError::Brn);
        }
        let s: String = digits.iter().map(|d| char::from(b'0' + *d as u8)).collect();
        Ok(Brn(format!("{}-{}-{}", &s[..3], &s[3..5], &s[5..])))
    }

    /// `NNN-NN-NNNNN`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 27);

    #[test]
    fn a_resident_number_with_its_check_digit_parses_with_or_without_the_hyphen() {
        let rrn = Rrn::parse("900101-1234568", TODAY).unwrap();
        assert_eq!(rrn.expose(), "900101-1234568");
        assert_eq!(rrn.masked(), "900101-1******");
        assert_eq!(Rrn::parse("9001011234568", TODAY).unwrap(), rrn);
        assert!(!rrn.is_foreigner());
        assert_eq!(
            Rrn::parse("850315-2345678", TODAY).unwrap().masked(),
            "850315-2******"
        );
    }

    #[test]
    fn a_foreigners_number_uses_its_own_check_formula() {
        let rrn = Rrn::parse("900101-5234561", TODAY).unwrap();
        assert!(rrn.is_foreigner());
        // The resident formula would give 9 here, so a resident-style check digit is refused.
        assert_eq!(
            Rrn::parse("900101-5234569", TODAY),
            Err(IdentifierError::RrnCheckDigit)
        );
    }

    #[test]
    fn registration_numbers_are_refused_for_the_reason_that_applies() {
        assert_eq!(
            Rrn::parse("900101-1234567", TODAY),
            Err(IdentifierError::RrnCheckDigit)
        );
        assert_eq!(
            Rrn::parse("900101-123456", TODAY),
            Err(IdentifierError::RrnFormat)
        );
        assert_eq!(
            Rrn::parse("9001011-234568", TODAY),
            Err(IdentifierError::RrnFormat)
        );
        assert_eq!(
            Rrn::parse("90010a-1234568", TODAY),
            Err(IdentifierError::RrnFormat)
        );
        assert_eq!(
            Rrn::parse("900132-1234568", TODAY),
            Err(IdentifierError::RrnBirthDate)
        );
        assert_eq!(
            Rrn::parse("901301-1234568", TODAY),
            Err(IdentifierError::RrnBirthDate)
        );
        // 2002 is not a leap year.
        assert_eq!(
            Rrn::parse("020229-4123451", TODAY),
            Err(IdentifierError::RrnBirthDate)
        );
        // Born after today.
        assert_eq!(
            Rrn::parse("301231-3123456", TODAY),
            Err(IdentifierError::RrnBirthDate)
        );
        assert!(Rrn::parse("900101-1234568 ", TODAY).is_ok());
    }

    #[test]
    fn numbers_issued_after_the_2020_reform_carry_no_check_digit() {
        // Born 2021-03-04: digits after the 7th are random, any 13th digit is accepted.
        for last in 0..10 {
            let text = format!("210304-381726{last}");
            assert!(Rrn::parse(&text, TODAY).is_ok(), "{text}");
        }
    }

    #[test]
    fn errors_and_debug_output_never_show_the_number() {
        let rrn = Rrn::parse("900101-1234568", TODAY).unwrap();
        assert_eq!(format!("{rrn:?}"), "Rrn(900101-1******)");
        assert_eq!(format!("{rrn}"), "900101-1******");
        let error = Rrn::parse("900101-1234567", TODAY).unwrap_err().to_string();
        assert!(!error.contains("900101"), "{error}");
    }

    #[test]
    fn phones_normalize_and_mask() {
        let phone = Phone::parse("010-1234-5678").unwrap();
        assert_eq!(phone.expose(), "01012345678");
        assert_eq!(phone.masked(), "010-****-5678");
        assert_eq!(Phone::parse("+82 10 1234 5678").unwrap(), phone);
        assert_eq!(Phone::parse("+82 010-1234-5678").unwrap(), phone);
        assert_eq!(
            Phone::parse("(02) 345-6789").unwrap().masked(),
            "02-****-6789"
        );
        assert_eq!(format!("{phone:?}"), "Phone(010-****-5678)");
        for bad in [
            "",
            "1234-5678",
            "010-1234-56789-1",
            "010-1234-abcd",
            "0010123456",
            "0101234",
        ] {
            assert_eq!(Phone::parse(bad), Err(IdentifierError::Phone), "{bad}");
        }
    }

    #[test]
    fn business_numbers_check_their_check_digit() {
        assert_eq!(Brn::parse("1234567891").unwrap().as_str(), "123-45-67891");
        assert_eq!(Brn::parse("220-81-23455").unwrap().as_str(), "220-81-23455");
        assert_eq!(Brn::parse("220-81-23454"), Err(IdentifierError::Brn));
        assert_eq!(Brn::parse("220-81-2345"), Err(IdentifierError::Brn));
        assert_eq!(Brn::parse("220-81-2345x"), Err(IdentifierError::Brn));
    }
}
