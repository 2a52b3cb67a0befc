//! Running the server binaries: as the `postgres` OS user when we are root, with bounded waits,
//! and finding a node's processes through `/proc`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::TestbedError;

/// Where the binaries searched first are.
const DEFAULT_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// How often bounded waits look again.
pub(super) const POLL: Duration = Duration::from_millis(10);

/// An OS account, by numeric ids.
#[derive(Debug, Clone, Copy)]
pub(super) struct Account {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// Runs the PostgreSQL binaries. PostgreSQL refuses to run as root, so when we are root every
/// command goes through `runuser -u postgres --` and the files it needs are handed to that user.
#[derive(Debug)]
pub(super) struct Runner {
    pub(super) bindir: PathBuf,
    pub(super) run_as: Option<Account>,
    /// Where command output is captured (files, so that a chatty child never blocks on a pipe).
    scratch: PathBuf,
    seq: AtomicU64,
}

impl Runner {
    pub(super) fn new(scratch: PathBuf) -> Result<Runner, TestbedError> {
        let bindir = find_bindir()?;
        let uid = fs::metadata("/proc/self")
            .map_err(|e| TestbedError::io("reading /proc/self to learn our uid", e))?
            .uid();
        let run_as = if uid == 0 {
            Some(postgres_account()?)
        } else {
            None
        };
        Ok(Runner {
            bindir,
            run_as,
            scratch,
            seq: AtomicU64::new(0),
        })
    }

    /// Gives `path` to the account the servers run as (no-op when not root).
    pub(super) fn hand_over(&self, path: &Path) -> Result<(), TestbedError> {
        if let Some(account) = self.run_as {
            std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))
                .map_err(|e| TestbedError::io(format!("chown {}", path.display()), e))?;
        }
        Ok(())
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let exe = self.bindir.join(program);
        let mut cmd = match self.run_as {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        // A working directory the postgres user can read avoids "could not change directory".
        cmd.args(args).current_dir("/").stdin(Stdio::null());
        // Its own process group, so that a timeout can kill it with everything it started.
        cmd.process_group(0);
        // Messages in English whatever the host's locale, so logs read the same everywhere.
        cmd.env("LC_ALL", "C").env("LANG", "C");
        cmd
    }

    /// Runs `program args` to completion within `timeout`; returns its stdout. On failure the
    /// error carries its output and the tail of `log`.
    pub(super) fn run(
        &self,
        program: &str,
        args: &[&str],
        timeout: Duration,
        log: Option<&Path>,
    ) -> Result<String, TestbedError> {
        let line = format!("{program} {}", args.join(" "));
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let out_path = self.scratch.join(format!("cmd-{n}.out"));
        let err_path = self.scratch.join(format!("cmd-{n}.err"));
        let create = |p: &Path| {
            fs::File::create(p).map_err(|e| TestbedError::io(format!("create {}", p.display()), e))
        };
        let (out, err) = (create(&out_path)?, create(&err_path)?);
        let mut child = self
            .command(program, args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| TestbedError::io(format!("start `{line}`"), e))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < timeout => std::thread::sleep(POLL),
                Ok(None) => {
                    // The whole group: with `runuser`, the hung program is a grandchild.
                    // (A server started by `pg_ctl` runs in its own session, out of reach.)
                    let _ = Command::new("kill")
                        .args(["-KILL", "--", &format!("-{}", child.id())])
                        .status();
                    let _ = child.kill();
                    let _ = child.wait();
                    let output = read_pair(&out_path, &err_path);
                    remove_pair(&out_path, &err_path);
                    return Err(TestbedError::Timeout {
                        waiting_for: format!("`{line}`"),
                        after: timeout,
                        detail: join_sections(&output, &log.map(log_tail).unwrap_or_default()),
                    });
                }
                Err(e) => return Err(TestbedError::io(format!("wait for `{line}`"), e)),
            }
        };
        let stdout = fs::read_to_string(&out_path).unwrap_or_default();
        let output = read_pair(&out_path, &err_path);
        remove_pair(&out_path, &err_path);
        if status.success() {
            Ok(stdout)
        } else {
            Err(TestbedError::Command {
                command: line,
                status: status.code(),
                output,
                log: log.map(log_tail).unwrap_or_default(),
            })
        }
    }
}

fn read_pair(out: &Path, err: &Path) -> String {
    let out = fs::read_to_string(out).unwrap_or_default();
    let err = fs::read_to_string(err).unwrap_or_default();
    join_sections(&out, &err)
}

fn join_sections(a: &str, b: &str) -> String {
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (_, true) => a.trim().to_owned(),
        (true, false) => b.trim().to_owned(),
        (false, false) => format!("{}\n{}", a.trim(), b.trim()),
    }
}

fn remove_pair(out: &Path, err: &Path) {
    let _ = fs::remove_file(out);
    let _ = fs::remove_file(err);
}

/// The last lines of a server log, for error messages.
pub(super) fn log_tail(path: &Path) -> String {
    const LINES: usize = 30;
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(LINES);
    format!("({}) …\n{}", path.display(), lines[skip..].join("\n"))
}

fn find_bindir() -> Result<PathBuf, TestbedError> {
    let mut searched = vec![PathBuf::from(DEFAULT_BINDIR)];
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !dir.is_empty() {
                searched.push(PathBuf::from(dir));
            }
        }
    }
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres", "pg_basebackup", "psql"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    // The default folder is PostgreSQL 15's; `pg_config` may point at another major version,
    // which works too (the settings used exist since PostgreSQL 13).
    match searched.iter().find(|d| has_all(d)) {
        Some(dir) => Ok(dir.clone()),
        None => Err(TestbedError::BinariesNotFound { searched }),
    }
}

fn postgres_account() -> Result<Account, TestbedError> {
    let passwd = fs::read_to_string("/etc/passwd")
        .map_err(|e| TestbedError::io("reading /etc/passwd to find the postgres user", e))?;
    let account = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["postgres", _, uid, gid, ..] => Some(Account {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            }),
            _ => None,
        }
    });
    account.ok_or_else(|| {
        TestbedError::io(
            "running as root needs the `postgres` OS user (created by `apt-get install -y \
             postgresql`)",
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    })
}

/// The postmaster's pid, from `postmaster.pid`, if the file exists.
pub(super) fn postmaster_pid(data: &Path) -> Option<u32> {
    lock_owner(&data.join("postmaster.pid"))
}

/// The pid on the first line of a PostgreSQL lock file (`postmaster.pid`, `.s.PGSQL.N.lock`).
pub(super) fn lock_owner(lock: &Path) -> Option<u32> {
    let text = fs::read_to_string(lock).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// A process's state letter and parent, from `/proc/PID/stat`; `None` if it is gone.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` runs (a zombie has exited; it only waits to be reaped).
pub(super) fn is_alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// Whether `pid` is stopped by a signal (or gone: nothing left to stop).
pub(super) fn is_stopped(pid: u32) -> bool {
    !is_alive(pid) || matches!(stat(pid), Some(('T', _)))
}

/// The postmaster and its children (every PostgreSQL backend and helper is a direct child).
pub(super) fn process_tree(postmaster: u32) -> Vec<u32> {
    let mut pids = vec![postmaster];
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if matches!(stat(pid), Some((state, ppid)) if ppid == postmaster && state != 'Z') {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Sends `signal` (a name such as `KILL`, `STOP`, `CONT`) to `pids`. Signalling needs no
/// `unsafe` this way; root may signal the postgres user's processes.
pub(super) fn signal(pids: &[u32], signal: &str) -> Result<(), TestbedError> {
    if pids.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{signal}"));
    cmd.args(pids.iter().map(u32::to_string));
    cmd.env("LC_ALL", "C").env("LANG", "C");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| TestbedError::io(format!("run kill -{signal}"), e))?;
    // A process that exited in the meantime makes `kill` fail with "No such process" (the
    // others were still signalled); any other complaint is a failure. Asking whether the rest
    // are alive would not do: a process just sent `KILL` is still there until it is reaped.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut complaints = stderr.lines().filter(|l| !l.trim().is_empty()).peekable();
    let only_gone =
        complaints.peek().is_some() && complaints.all(|l| l.contains("No such process"));
    if !out.status.success() && !only_gone {
        return Err(TestbedError::Command {
            command: format!("kill -{signal} {pids:?}"),
            status: out.status.code(),
            output: stderr.into_owned(),
            log: String::new(),
        });
    }
    Ok(())
}

/// Stops (`STOP`) or continues (`CONT`) the postmaster and all its children, and waits until
/// they are: signal delivery is asynchronous, and a child forked meanwhile needs its own signal.
pub(super) fn freeze(postmaster: u32, stop: bool, timeout: Duration) -> Result<(), TestbedError> {
    let (name, done): (&str, fn(u32) -> bool) = if stop {
        ("STOP", is_stopped)
    } else {
        ("CONT", |p| {
            !is_alive(p) || !matches!(stat(p), Some(('T', _)))
        })
    };
    let started = Instant::now();
    loop {
        let pending: Vec<u32> = process_tree(postmaster)
            .into_iter()
            .filter(|&p| !done(p))
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(TestbedError::Timeout {
                waiting_for: format!("SIG{name} to take effect"),
                after: timeout,
                detail: format!("not yet: {pending:?}"),
            });
        }
        signal(&pending, name)?;
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until none of `pids` runs.
pub(super) fn wait_gone(pids: &[u32], timeout: Duration) -> Result<(), TestbedError> {
    let started = Instant::now();
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
        if alive.is_empty() {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(TestbedError::Timeout {
                waiting_for: "server processes to exit".into(),
                after: timeout,
                detail: format!("still running: {alive:?}"),
            });
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runner(scratch: &Path) -> Runner {
        fs::create_dir_all(scratch).unwrap();
        Runner {
            bindir: PathBuf::from("/bin"),
            run_as: None,
            scratch: scratch.to_owned(),
            seq: AtomicU64::new(0),
        }
    }

    #[test]
    fn run_is_bounded_and_reports_failures() {
        let scratch = std::env::temp_dir().join(format!("seawall-run-test-{}", std::process::id()));
        let r = runner(&scratch);

        let started = Instant::now();
        let e = r
            .run("sleep", &["30"], Duration::from_millis(200), None)
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(e, TestbedError::Timeout { .. }), "{e}");

        assert_eq!(
            r.run("echo", &["hello"], Duration::from_secs(5), None)
                .unwrap(),
            "hello\n"
        );
        let e = r
            .run("ls", &["/no/such/path"], Duration::from_secs(5), None)
            .unwrap_err();
        match e {
            TestbedError::Command { status, output, .. } => {
                assert_ne!(status, Some(0));
                assert!(output.contains("/no/such/path"), "{output}");
            }
            other => panic!("{other}"),
        }
        // Output files are cleaned up as it goes.
        assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);
        fs::remove_dir(&scratch).unwrap();
    }

    #[test]
    fn finds_our_own_process() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(!is_stopped(me));
        assert!(lock_owner(Path::new("/no/such/lock")).is_none());
    }

    /// A process that exited between listing and signalling is not a failure, whether or not
    /// the others are still alive afterwards (a process just sent `KILL` is, until reaped;
    /// `CONT` leaves it running): only a complaint other than "No such process" is. The
    /// crash drill of `tests/pg_testbed.rs` failed in CI on a backend that had just exited.
    #[test]
    fn signalling_a_process_that_just_exited_is_not_a_failure() {
        let mut live = Command::new("sleep").arg("30").spawn().unwrap();
        let mut gone = Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let (live_pid, gone_pid) = (live.id(), gone.id());

        signal(&[live_pid, gone_pid], "CONT").unwrap();
        assert!(is_alive(live_pid));
        signal(&[gone_pid, live_pid], "KILL").unwrap();
        live.wait().unwrap();

        // A signal that does not exist: kill complains of something else, and that is
        // reported.
        let e = signal(&[gone_pid], "NOSUCHSIGNAL").unwrap_err();
        assert!(matches!(e, TestbedError::Command { .. }), "{e}");
    }
}
