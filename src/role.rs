//! The role a node plays: primary or replica. Its own module so that errors, the cluster and
//! failover can all name it without importing one another.

use std::fmt;

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Takes writes (and reads that must see the latest data).
    Primary,
    /// Takes reads; may lag behind the primary.
    Replica,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
        })
    }
}
