//! What a borrower left in a database session, so that the pool undoes only that.
//!
//! A pooled connection goes from one borrower to the next. If the first left a transaction
//! open, changed a setting, listened on a channel, created a temporary table or held an
//! advisory lock, the second must not see it. Resetting every session on every return is safe
//! but costs a round trip per checkout, which is most of the time of a short query. An
//! integration that sees every statement (seawall's `sqlx::Executor`) records here what each
//! one may have changed; the pool then resets only sessions that were changed, and only in
//! what was changed ([`Connector::reset_session`](crate::Connector::reset_session)).
//!
//! A borrower that no integration tracked, or that reached the driver's connection directly
//! (`&mut *conn` on a [`Pooled`](crate::Pooled) or a cluster handle), may have done anything:
//! the session is then [`SessionState::UNKNOWN`] and gets the driver's own reset policy
//! ([`Connector::needs_reset`](crate::Connector::needs_reset)), as before tracking existed.

use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of kinds of session state (a small bit set). [`SessionState::CLEAN`] is empty.
///
/// ```
/// use seawall::SessionState;
///
/// let state = SessionState::SETTINGS | SessionState::LISTEN;
/// assert!(state.contains(SessionState::LISTEN));
/// assert!(!state.contains(SessionState::TRANSACTION));
/// assert!(!state.is_clean());
/// assert_eq!(format!("{state:?}"), "SessionState(settings | listen)");
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SessionState(u16);

impl SessionState {
    /// Nothing to undo.
    pub const CLEAN: Self = Self(0);
    /// A transaction is (or may be) open: `ROLLBACK`.
    pub const TRANSACTION: Self = Self(1);
    /// A session setting changed (`SET`, `set_config`): `RESET ALL`.
    pub const SETTINGS: Self = Self(1 << 1);
    /// The role changed (`SET ROLE`, `SET SESSION AUTHORIZATION`).
    pub const ROLE: Self = Self(1 << 2);
    /// `LISTEN` on a channel: `UNLISTEN *`.
    pub const LISTEN: Self = Self(1 << 3);
    /// A temporary table, view or sequence: `DISCARD TEMP`.
    pub const TEMP_TABLES: Self = Self(1 << 4);
    /// A session-level advisory lock: `pg_advisory_unlock_all()`.
    pub const ADVISORY_LOCKS: Self = Self(1 << 5);
    /// A cursor declared `WITH HOLD`: `CLOSE ALL`.
    pub const CURSORS: Self = Self(1 << 6);
    /// State that cannot be undone in place without breaking the driver (statements prepared
    /// by hand with SQL `PREPARE`, `DEALLOCATE`, `DISCARD ALL`, a `dblink` connection): the
    /// connection is closed instead of reused.
    pub const UNRESETTABLE: Self = Self(1 << 7);
    /// Anything may have changed (direct access to the driver's connection, a procedure or
    /// function the analysis does not know): the driver's full reset.
    pub const UNKNOWN: Self = Self(1 << 8);

    const NAMES: [(Self, &'static str); 9] = [
        (Self::TRANSACTION, "transaction"),
        (Self::SETTINGS, "settings"),
        (Self::ROLE, "role"),
        (Self::LISTEN, "listen"),
        (Self::TEMP_TABLES, "temp_tables"),
        (Self::ADVISORY_LOCKS, "advisory_locks"),
        (Self::CURSORS, "cursors"),
        (Self::UNRESETTABLE, "unresettable"),
        (Self::UNKNOWN, "unknown"),
    ];

    /// Nothing to undo.
    pub const fn is_clean(self) -> bool {
        self.0 == 0
    }

    /// Every kind in `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` without the kinds in `other`.
    #[must_use]
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl BitOr for SessionState {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOrAssign for SessionState {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl fmt::Debug for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionState(")?;
        if self.is_clean() {
            f.write_str("clean")?;
        }
        let mut first = true;
        for (kind, name) in Self::NAMES {
            if self.contains(kind) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// What one statement string does to its session, as far as its text shows:
/// [`classify::session_effects`](crate::classify::session_effects) computes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// State it may leave behind.
    pub leaves: SessionState,
    /// It ends the session's transaction (`COMMIT`, `ROLLBACK`, `END`, `PREPARE TRANSACTION`)
    /// after whatever opened it; applied before `leaves`, in statement order.
    pub ends_transaction: bool,
}

impl Effects {
    /// The session's state after a statement with these effects ran on one in `state`.
    #[must_use]
    pub fn apply(self, state: SessionState) -> SessionState {
        let state = if self.ends_transaction {
            state.without(SessionState::TRANSACTION)
        } else {
            state
        };
        state | self.leaves
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_algebra() {
        let s = SessionState::TRANSACTION | SessionState::TEMP_TABLES;
        assert!(s.contains(SessionState::TRANSACTION));
        assert!(s.contains(SessionState::CLEAN));
        assert_eq!(
            s.without(SessionState::TRANSACTION),
            SessionState::TEMP_TABLES
        );
        assert!(SessionState::default().is_clean());
        assert_eq!(format!("{:?}", SessionState::CLEAN), "SessionState(clean)");
    }

    #[test]
    fn ending_a_transaction_keeps_what_it_left() {
        let open = SessionState::TRANSACTION | SessionState::SETTINGS;
        let commit = Effects {
            leaves: SessionState::CLEAN,
            ends_transaction: true,
        };
        assert_eq!(commit.apply(open), SessionState::SETTINGS);
        // `COMMIT; BEGIN` in one string: ends the old one, leaves a new one open.
        let commit_begin = Effects {
            leaves: SessionState::TRANSACTION,
            ends_transaction: true,
        };
        assert_eq!(commit_begin.apply(open), open);
    }
}
