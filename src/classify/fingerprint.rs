//! Statement fingerprints (scaffold; replaced by the full normaliser).

use std::fmt;

/// A statement's identity with literals taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// The id as a number.
    pub const fn get(self) -> u64 {
        self.0
    }
    /// A fingerprint from its number.
    pub const fn from_u64(v: u64) -> Self {
        Fingerprint(v)
    }
}

impl From<u64> for Fingerprint {
    fn from(v: u64) -> Self {
        Fingerprint(v)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Why a string is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFingerprintError;

impl fmt::Display for ParseFingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a fingerprint")
    }
}
impl std::error::Error for ParseFingerprintError {}

impl std::str::FromStr for Fingerprint {
    type Err = ParseFingerprintError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        if s.is_empty() || s.len() > 16 {
            return Err(ParseFingerprintError);
        }
        u64::from_str_radix(s, 16)
            .map(Fingerprint)
            .map_err(|_| ParseFingerprintError)
    }
}

/// The fingerprint of `sql`.
pub fn fingerprint(sql: impl AsRef<[u8]>) -> Fingerprint {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in normalize(sql).as_bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    Fingerprint(h)
}

/// The normalised text of `sql`.
pub fn normalize(sql: impl AsRef<[u8]>) -> String {
    let s = String::from_utf8_lossy(sql.as_ref()).to_ascii_lowercase();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
