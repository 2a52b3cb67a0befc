//! Positions in PostgreSQL's write-ahead log, as a comparable token.
//!
//! A WAL position (an LSN) is a 64-bit byte offset into the log; PostgreSQL prints it as two
//! hexadecimal halves, `X/Y`. Positions only grow, so they order events across servers: a
//! replica whose replay position has reached the primary's position after a commit has applied
//! that commit. That makes a [`WalPosition`] the token of read-your-writes: remember the
//! primary's position after a write, and read from a replica only once it has replayed that far.

use std::fmt;
use std::str::FromStr;

/// A position in the write-ahead log (a PostgreSQL `pg_lsn`).
///
/// ```
/// use seawall::sqlx::WalPosition;
///
/// let commit: WalPosition = "0/3000148".parse()?;
/// let replayed: WalPosition = "0/3000060".parse()?;
/// assert!(replayed < commit);                     // not caught up yet
/// assert_eq!(commit.bytes_since(replayed), 0xE8);
/// assert_eq!(commit.to_string(), "0/3000148");
/// assert_eq!(u64::from(commit), 0x3000148);
/// # Ok::<(), seawall::sqlx::ParseWalPositionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WalPosition(u64);

impl WalPosition {
    /// The start of the log (`0/0`), before any position a server reports.
    pub const ZERO: WalPosition = WalPosition(0);

    /// The position at byte offset `lsn`.
    pub const fn new(lsn: u64) -> Self {
        WalPosition(lsn)
    }

    /// The byte offset.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// How many bytes of WAL lie between `earlier` and `self`; zero if `earlier` is not earlier.
    pub const fn bytes_since(self, earlier: WalPosition) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<u64> for WalPosition {
    fn from(lsn: u64) -> Self {
        WalPosition(lsn)
    }
}

impl From<WalPosition> for u64 {
    fn from(p: WalPosition) -> u64 {
        p.0
    }
}

impl fmt::Display for WalPosition {
    /// PostgreSQL's notation: `X/Y`, upper-case hex halves without leading zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for WalPosition {
    type Err = ParseWalPositionError;

    /// Parses PostgreSQL's `X/Y` notation: two hex halves of at most 8 digits each.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseWalPositionError {
            input: s.chars().take(40).collect(),
        };
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let half = |h: &str| {
            let hex = !h.is_empty() && h.len() <= 8 && h.bytes().all(|b| b.is_ascii_hexdigit());
            if hex {
                u32::from_str_radix(h, 16).ok()
            } else {
                None
            }
        };
        let (hi, lo) = (half(hi).ok_or_else(bad)?, half(lo).ok_or_else(bad)?);
        Ok(WalPosition((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// Text that is not a WAL position in `X/Y` notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseWalPositionError {
    /// The rejected text (its first 40 characters).
    pub input: String,
}

impl fmt::Display for ParseWalPositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a WAL position (expected two hex halves, `X/Y`)",
            self.input
        )
    }
}

impl std::error::Error for ParseWalPositionError {}

/// A read-your-writes token: the primary's WAL position after a write, and the timeline it was
/// taken on.
///
/// Positions compare only along one history. After a failover the new primary starts a new
/// timeline from the point it had replayed, and a replica still on the old branch can pass a
/// position without holding what was written there. So the token keeps its timeline, and
/// [`AcquireOptions::after`](crate::cluster::AcquireOptions::after) sends the read to a replica
/// only if the replica reports that timeline (or a later one), and to the primary once the
/// cluster has seen a newer timeline than the token's.
///
/// It travels between requests as a short string (an HTTP header or a cookie): the timeline in
/// decimal, a colon, then the position in PostgreSQL's `X/Y` notation. A token without a
/// timeline is a bare position, so positions saved before tokens had timelines still parse (and
/// are compared by position alone).
///
/// ```
/// use seawall::sqlx::{WalPosition, WalToken};
///
/// let token: WalToken = "2:0/16B3748".parse()?;
/// assert_eq!(token.timeline(), Some(2));
/// assert_eq!(token.position(), WalPosition::new(0x16B_3748));
/// assert_eq!(token.to_string(), "2:0/16B3748");
///
/// let old: WalToken = "0/16B3748".parse()?;     // a bare position: no timeline
/// assert_eq!(old.timeline(), None);
/// assert_eq!(old.to_string(), "0/16B3748");
/// # Ok::<(), seawall::sqlx::ParseWalPositionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WalToken {
    timeline: Option<u32>,
    position: WalPosition,
}

impl WalToken {
    /// A token for `position` on `timeline` (`None`: unknown; then positions alone decide).
    /// A timeline of 0 (PostgreSQL's start at 1) counts as unknown.
    pub fn new(timeline: Option<u32>, position: WalPosition) -> Self {
        WalToken {
            timeline: timeline.filter(|&t| t > 0),
            position,
        }
    }

    /// The timeline the position was taken on, if known.
    pub fn timeline(&self) -> Option<u32> {
        self.timeline
    }

    /// The WAL position.
    pub fn position(&self) -> WalPosition {
        self.position
    }
}

impl From<WalPosition> for WalToken {
    /// A token without a timeline.
    fn from(position: WalPosition) -> Self {
        WalToken::new(None, position)
    }
}

impl fmt::Display for WalToken {
    /// `TIMELINE:X/Y`, or `X/Y` without a timeline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.timeline {
            Some(t) => write!(f, "{t}:{}", self.position),
            None => write!(f, "{}", self.position),
        }
    }
}

impl FromStr for WalToken {
    type Err = ParseWalPositionError;

    /// Parses `TIMELINE:X/Y` (a decimal timeline from 1 to 4294967295) or a bare `X/Y`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((timeline, position)) = s.split_once(':') else {
            return Ok(WalToken::new(None, s.parse()?));
        };
        let bad = || ParseWalPositionError {
            input: s.chars().take(40).collect(),
        };
        let digits = !timeline.is_empty() && timeline.bytes().all(|b| b.is_ascii_digit());
        let timeline = digits
            .then(|| timeline.parse::<u32>().ok())
            .flatten()
            .filter(|&t| t > 0)
            .ok_or_else(bad)?;
        let position = position.parse::<WalPosition>().map_err(|_| bad())?;
        Ok(WalToken::new(Some(timeline), position))
    }
}

impl crate::cluster::AcquireOptions {
    /// Read-your-writes with a [`WalToken`]: the token's position
    /// ([`min_position`](Self::min_position)) and, if it has one, its timeline
    /// ([`timeline`](Self::timeline)).
    ///
    /// ```
    /// use seawall::cluster::AcquireOptions;
    /// use seawall::sqlx::WalToken;
    ///
    /// // From a cookie set by the request that wrote.
    /// let token: WalToken = "3:0/5D0A3F8".parse()?;
    /// let options = AcquireOptions::new().after(token);
    /// # let _ = options;
    /// # Ok::<(), seawall::sqlx::ParseWalPositionError>(())
    /// ```
    pub fn after(self, token: WalToken) -> Self {
        let options = self.min_position(token.position);
        match token.timeline {
            Some(t) => options.timeline(t),
            None => options,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_postgres_notation() {
        assert_eq!("0/0".parse(), Ok(WalPosition::ZERO));
        assert_eq!("16/B374D848".parse(), Ok(WalPosition::new(0x16_B374_D848)));
        assert_eq!("ffffffff/ffffffff".parse(), Ok(WalPosition::new(u64::MAX)));
        assert_eq!(WalPosition::new(0x16_B374_D848).to_string(), "16/B374D848");
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0",
            "0/0/0",
            "g/0",
            "0/-1",
            "+1/0",
            "123456789/0",
            " 0/0",
        ] {
            let err = bad.parse::<WalPosition>().unwrap_err();
            assert_eq!(err.input, bad, "{bad:?}");
        }
    }

    #[test]
    fn distance_saturates() {
        let (a, b) = (WalPosition::new(100), WalPosition::new(40));
        assert_eq!(a.bytes_since(b), 60);
        assert_eq!(b.bytes_since(a), 0);
    }

    #[test]
    fn tokens_parse_with_and_without_a_timeline() {
        let t: WalToken = "2:16/B374D848".parse().unwrap();
        assert_eq!(t.timeline(), Some(2));
        assert_eq!(t.position(), WalPosition::new(0x16_B374_D848));
        let bare: WalToken = "16/B374D848".parse().unwrap();
        assert_eq!(bare, WalToken::from(WalPosition::new(0x16_B374_D848)));
        assert_eq!(WalToken::new(Some(0), WalPosition::ZERO).timeline(), None);
        for bad in [
            "",
            ":0/0",
            "0:0/0",
            "-1:0/0",
            "+1:0/0",
            "1:",
            "1:0",
            "1:2:0/0",
            "x:0/0",
            "4294967296:0/0",
            " 1:0/0",
            "1 :0/0",
        ] {
            let err = bad.parse::<WalToken>().unwrap_err();
            assert_eq!(err.input, bad, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn token_round_trip(timeline in proptest::option::of(1u32..), lsn in any::<u64>()) {
            let t = WalToken::new(timeline, WalPosition::new(lsn));
            prop_assert_eq!(t.to_string().parse::<WalToken>(), Ok(t));
        }

        #[test]
        fn display_parse_round_trip(lsn in any::<u64>()) {
            let p = WalPosition::new(lsn);
            prop_assert_eq!(p.to_string().parse::<WalPosition>(), Ok(p));
        }

        #[test]
        fn order_follows_offsets(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(WalPosition::new(a).cmp(&WalPosition::new(b)), a.cmp(&b));
        }
    }
}
