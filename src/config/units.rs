//! Value types of the config that are written as text: durations (`30s`, `5m`), sizes
//! (`16KiB`, `20MiB`) and HTTP methods. Each is checked while serde_yaml reads it, so a bad
//! value is reported with its own line and column.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written with a unit, such as `250ms`, `30s`, `5m` or `1h 30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)
            .map_err(|_| de::Error::custom("expected a duration with a unit, such as 30s or 5m"))?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|err| {
                de::Error::custom(format!(
                    "invalid duration {text:?} ({err}); write a number and a unit, such as 30s or 5m"
                ))
            })
    }
}

/// A size in bytes: a plain integer, or a number and a unit such as `16KiB` or `20MB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// A rate: `100/min`, `10/s`, `5000/h` (count per second, minute or hour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let invalid = || {
            de::Error::custom(format!(
                "invalid rate {text:?}: write a count per s, min or h, such as 100/min"
            ))
        };
        let (count, unit) = text.split_once('/').ok_or_else(invalid)?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(invalid()),
        };
        if count == 0 {
            return Err(de::Error::custom(format!(
                "invalid rate {text:?}: the count must be at least 1"
            )));
        }
        Ok(Rate { count, per })
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 16KiB, 20MiB or a number of bytes")
            }
            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }
            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                bytesize::ByteSize::from_str(text.trim())
                    .map(|size| ByteSize(size.as_u64()))
                    .map_err(|_| {
                        E::custom(format!(
                            "invalid size {text:?}; write a number and a unit, such as 16KiB or 20MiB"
                        ))
                    })
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// An HTTP method, upper case as on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Method(pub http::Method);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(de::Error::custom(format!(
                "invalid HTTP method {text:?}; write it in upper case, such as GET or POST"
            )));
        }
        http::Method::from_bytes(text.as_bytes())
            .map(Method)
            .map_err(|_| de::Error::custom(format!("invalid HTTP method {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_durations_sizes_and_methods() {
        let d: HumanDuration = serde_yaml::from_str("1m 30s").unwrap();
        assert_eq!(d.0, Duration::from_secs(90));
        assert!(serde_yaml::from_str::<HumanDuration>("30").is_err());
        assert!(serde_yaml::from_str::<HumanDuration>("30x").is_err());
        let s: ByteSize = serde_yaml::from_str("16KiB").unwrap();
        assert_eq!(s.0, 16 * 1024);
        let s: ByteSize = serde_yaml::from_str("2048").unwrap();
        assert_eq!(s.0, 2048);
        assert!(serde_yaml::from_str::<ByteSize>("lots").is_err());
        assert!(serde_yaml::from_str::<Method>("get").is_err());
        assert_eq!(
            serde_yaml::from_str::<Method>("PATCH").unwrap().0,
            http::Method::PATCH
        );
    }
}
