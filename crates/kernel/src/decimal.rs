//! Integers that travel as JSON decimal strings.
//!
//! Ids and amounts are `u128`/`u64`; JSON numbers that large are silently rounded by JavaScript
//! and many other clients, so Gureum's APIs carry them as strings of ASCII digits. Parsing is
//! strict: no sign, no whitespace, no leading `+`, no exponent, no empty string, and values that
//! overflow are rejected rather than wrapped.

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use std::fmt;

/// Parses a decimal string of ASCII digits into a `u128`, refusing overflow.
///
/// ```
/// assert_eq!(kernel::decimal::parse_u128("340282366920938463463374607431768211455"), Some(u128::MAX));
/// assert_eq!(kernel::decimal::parse_u128("340282366920938463463374607431768211456"), None);
/// assert_eq!(kernel::decimal::parse_u128("-1"), None);
/// assert_eq!(kernel::decimal::parse_u128(""), None);
/// ```
pub fn parse_u128(text: &str) -> Option<u128> {
    if text.is_empty() || text.len() > 39 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: u128 = 0;
    for b in text.bytes() {
        value = value.checked_mul(10)?.checked_add(u128::from(b - b'0'))?;
    }
    Some(value)
}

/// Parses a decimal string into a `u64`, refusing overflow.
pub fn parse_u64(text: &str) -> Option<u64> {
    parse_u128(text).and_then(|v| u64::try_from(v).ok())
}

struct DecimalVisitor {
    max: u128,
}

impl Visitor<'_> for DecimalVisitor {
    type Value = u128;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a decimal string of digits no greater than {}", self.max)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u128, E> {
        match parse_u128(text) {
            Some(v) if v <= self.max => Ok(v),
            _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
        }
    }
}

/// `#[serde(with = "kernel::decimal::u128_string")]`
pub mod u128_string {
    use super::*;

    /// Serializes a `u128` as a decimal string.
    pub fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = itoa_buf::Buf::new();
        s.serialize_str(buf.format(*value))
    }

    /// Deserializes a `u128` from a decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        d.deserialize_str(DecimalVisitor { max: u128::MAX })
    }
}

/// `#[serde(with = "kernel::decimal::u64_string")]`
pub mod u64_string {
    use super::*;

    /// Serializes a `u64` as a decimal string.
    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = itoa_buf::Buf::new();
        s.serialize_str(buf.format(u128::from(*value)))
    }

    /// Deserializes a `u64` from a decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let v = d.deserialize_str(DecimalVisitor {
            max: u128::from(u64::MAX),
        })?;
        Ok(v as u64)
    }
}

/// `#[serde(with = "kernel::decimal::opt_u128_string")]` for optional fields.
pub mod opt_u128_string {
    use super::*;

    /// Serializes an optional `u128` as a decimal string or null.
    pub fn serialize<S: Serializer>(value: &Option<u128>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => u128_string::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes an optional `u128` from a decimal string or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u128>, D::Error> {
        struct OptVisitor;
        impl<'de> Visitor<'de> for OptVisitor {
            type Value = Option<u128>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a decimal string or null")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                u128_string::deserialize(d).map(Some)
            }
        }
        d.deserialize_option(OptVisitor)
    }
}

/// A stack buffer that formats a `u128` in decimal without allocating.
mod itoa_buf {
    pub struct Buf {
        bytes: [u8; 39],
        start: usize,
    }

    impl Buf {
        pub fn new() -> Self {
            Buf {
                bytes: [0; 39],
                start: 39,
            }
        }

        pub fn format(&mut self, mut value: u128) -> &str {
            self.start = 39;
            loop {
                self.start -= 1;
                self.bytes[self.start] = b'0' + (value % 10) as u8;
                value /= 10;
                if value == 0 {
                    break;
                }
            }
            // Only ASCII digits were written.
            std::str::from_utf8(&self.bytes[self.start..]).unwrap_or("0")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sample {
        #[serde(with = "u128_string")]
        big: u128,
        #[serde(with = "u64_string")]
        small: u64,
    }

    #[test]
    fn decimal_strings_round_trip_at_the_extremes() {
        let s = Sample {
            big: u128::MAX,
            small: u64::MAX,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"big":"340282366920938463463374607431768211455","small":"18446744073709551615"}"#
        );
        assert_eq!(serde_json::from_str::<Sample>(&json).unwrap(), s);
        let zero = Sample { big: 0, small: 0 };
        assert_eq!(
            serde_json::to_string(&zero).unwrap(),
            r#"{"big":"0","small":"0"}"#
        );
    }

    #[test]
    fn decimal_parsing_refuses_numbers_signs_spaces_and_overflow() {
        for bad in [
            r#"{"big":1,"small":"1"}"#,
            r#"{"big":"-1","small":"1"}"#,
            r#"{"big":" 1","small":"1"}"#,
            r#"{"big":"1e3","small":"1"}"#,
            r#"{"big":"","small":"1"}"#,
            r#"{"big":"1","small":"18446744073709551616"}"#,
            r#"{"big":"340282366920938463463374607431768211456","small":"1"}"#,
        ] {
            assert!(serde_json::from_str::<Sample>(bad).is_err(), "{bad}");
        }
    }
}
