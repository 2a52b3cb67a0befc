//! The test bed's error: what failed, with the server logs that say why.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Why the test bed could not do what was asked.
///
/// Errors that involve a server carry the tail of its log, so a failing test prints the server's
/// own explanation (port in use, bad setting, crash) rather than only "timed out".
#[derive(Debug)]
#[non_exhaustive]
pub enum TestbedError {
    /// The PostgreSQL 15 server binaries were not found.
    BinariesNotFound {
        /// The folders that were searched.
        searched: Vec<PathBuf>,
    },
    /// A file-system or process operation failed.
    Io {
        /// What the test bed was doing.
        action: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A server command (initdb, pg_ctl, pg_basebackup, psql) failed.
    Command {
        /// The command line, without the `runuser` prefix.
        command: String,
        /// Its exit code, if it exited normally.
        status: Option<i32>,
        /// What it printed (stdout and stderr).
        output: String,
        /// The tail of the server log involved, if any.
        log: String,
    },
    /// A bounded wait ran out.
    Timeout {
        /// What was awaited.
        waiting_for: String,
        /// How long it waited.
        after: Duration,
        /// The last observation, or the tail of the server log involved.
        detail: String,
    },
    /// A node index past the end of the cluster.
    NoSuchNode {
        /// The index asked for.
        index: usize,
        /// How many nodes the cluster has.
        nodes: usize,
    },
}

impl fmt::Display for TestbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestbedError::BinariesNotFound { searched } => write!(
                f,
                "PostgreSQL 15 server binaries not found (searched {searched:?} and `pg_config \
                 --bindir`); install them with `apt-get update && apt-get install -y postgresql`"
            ),
            TestbedError::Io { action, source } => write!(f, "{action}: {source}"),
            TestbedError::Command {
                command,
                status,
                output,
                log,
            } => {
                match status {
                    Some(code) => write!(f, "`{command}` failed with exit code {code}")?,
                    None => write!(f, "`{command}` was killed by a signal")?,
                }
                write_section(f, "output", output)?;
                write_section(f, "server log", log)
            }
            TestbedError::Timeout {
                waiting_for,
                after,
                detail,
            } => {
                write!(f, "timed out after {after:?} waiting for {waiting_for}")?;
                write_section(f, "detail", detail)
            }
            TestbedError::NoSuchNode { index, nodes } => {
                write!(f, "no node {index}: the cluster has {nodes} nodes")
            }
        }
    }
}

fn write_section(f: &mut fmt::Formatter<'_>, title: &str, text: &str) -> fmt::Result {
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    write!(f, "\n--- {title} ---\n{text}")
}

impl std::error::Error for TestbedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TestbedError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl TestbedError {
    pub(super) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        TestbedError::Io {
            action: action.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_cause_and_the_log() {
        let e = TestbedError::Command {
            command: "pg_ctl start -D /tmp/x/n0".into(),
            status: Some(1),
            output: "pg_ctl: could not start server".into(),
            log: "FATAL:  could not bind IPv4 address".into(),
        };
        let shown = e.to_string();
        assert!(shown.starts_with("`pg_ctl start -D /tmp/x/n0` failed with exit code 1"));
        assert!(shown.contains("--- output ---\npg_ctl: could not start server"));
        assert!(shown.contains("--- server log ---\nFATAL:  could not bind"));

        let e = TestbedError::Timeout {
            waiting_for: "2 streaming replicas".into(),
            after: Duration::from_secs(30),
            detail: "  ".into(),
        };
        assert_eq!(
            e.to_string(),
            "timed out after 30s waiting for 2 streaming replicas"
        );

        let e = TestbedError::BinariesNotFound {
            searched: vec![PathBuf::from("/usr/lib/postgresql/15/bin")],
        };
        assert!(e.to_string().contains("apt-get install -y postgresql"));
    }
}
