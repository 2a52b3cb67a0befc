//! The etcd + Patroni test bed of `tests/patroni.rs` and `tests/fleet.rs`
//! (`scripts/patroni-testbed.sh`): started in a folder of its own, stopped when dropped.
#![allow(dead_code)] // each test uses a different subset

use std::process::Command;

pub struct Bed {
    pub dir: String,
    script: String,
    /// `synchronous_mode` (`SEAWALL_PATRONI_SYNC=1`).
    sync: bool,
    /// Each member's REST API.
    pub apis: Vec<String>,
    /// Each member's PostgreSQL URL.
    pub urls: Vec<String>,
    /// host:port of each member's PostgreSQL.
    pub pgs: Vec<String>,
}

impl Bed {
    /// Starts the bed in `/tmp/seawall-<name>-<pid>`; panics with the script's output if it
    /// fails (a missing component included).
    pub fn start(name: &str, sync: bool) -> Bed {
        let mut bed = Bed {
            dir: format!("/tmp/seawall-{name}-{}", std::process::id()),
            script: format!("{}/scripts/patroni-testbed.sh", env!("CARGO_MANIFEST_DIR")),
            sync,
            apis: Vec::new(),
            urls: Vec::new(),
            pgs: Vec::new(),
        };
        let started = std::time::Instant::now();
        bed.run(&["start"]);
        let env = std::fs::read_to_string(format!("{}/env", bed.dir)).expect("env file");
        let var = |name: &str| -> String {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}='")))
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or_else(|| panic!("{name} missing from the env file"))
                .to_owned()
        };
        bed.apis = var("SEAWALL_PATRONI_APIS")
            .split(',')
            .map(str::to_owned)
            .collect();
        bed.urls = (0..3)
            .map(|i| var(&format!("SEAWALL_PATRONI_N{i}_URL")))
            .collect();
        bed.pgs = (0..3)
            .map(|i| var(&format!("SEAWALL_PATRONI_N{i}_PG")))
            .collect();
        eprintln!("patroni test bed up in {:?}", started.elapsed());
        bed
    }

    /// Runs the script; panics with its output if it fails.
    pub fn run(&self, args: &[&str]) -> String {
        let mut command = Command::new("bash");
        command
            .arg(&self.script)
            .args(args)
            .env("SEAWALL_PATRONI_DIR", &self.dir)
            .env("SEAWALL_PATRONI_PRIMARY_START_TIMEOUT", "0");
        if self.sync {
            command.env("SEAWALL_PATRONI_SYNC", "1");
        }
        let out = command.output().expect("run scripts/patroni-testbed.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "patroni-testbed.sh {args:?} failed:\n{text}"
        );
        text
    }

    /// The leader's name, as the script sees it.
    pub fn leader(&self) -> String {
        self.run(&["leader"])
            .split_whitespace()
            .next()
            .expect("a leader")
            .to_owned()
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .env("SEAWALL_PATRONI_DIR", &self.dir)
            .output();
    }
}

pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}
