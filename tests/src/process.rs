//! `weft serve` as a separate process, for what only a process shows: that it
//! starts with no setup, stops cleanly on SIGTERM, and loses nothing to `kill -9`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The admin key the processes started here take from the environment.
pub const BOOTSTRAP_KEY: &str = "weft_testbootstrapkey0123456789abcdefghijk";

/// The master key given to `weft serve` on PostgreSQL (32 bytes, base64).
pub const MASTER_KEY: &str = "d2VmdCB0ZXN0IG1hc3RlciBrZXksIDMyIGJ5dGVzISE=";

pub struct WeftProcess {
    pub url: String,
    /// What it printed before it listened (a bootstrap key, say).
    pub printed: Vec<String>,
    child: Child,
}

impl WeftProcess {
    /// Starts `weft serve` on a free loopback port, in `workdir`, against
    /// `database_url` (the default `./weft.db` when `None`), and waits until it
    /// listens.
    pub fn start(database_url: Option<&str>, workdir: &std::path::Path) -> Self {
        Self::start_with(database_url, workdir, &[])
    }

    /// Like [`WeftProcess::start`], with more `weft serve` arguments. A new
    /// database gets [`BOOTSTRAP_KEY`] as its admin key.
    pub fn start_with(
        database_url: Option<&str>,
        workdir: &std::path::Path,
        args: &[&str],
    ) -> Self {
        Self::launch(database_url, workdir, args, Some(BOOTSTRAP_KEY), None)
    }

    /// Like [`WeftProcess::start_with`] on `./weft.db`, logging everything
    /// down to debug level into `log`.
    pub fn start_logging(workdir: &std::path::Path, args: &[&str], log: &std::path::Path) -> Self {
        Self::launch(None, workdir, args, Some(BOOTSTRAP_KEY), Some(log))
    }

    /// Like [`WeftProcess::start_with`] on `./weft.db`, with the process's
    /// open-file limit set to `open_files` (with `prlimit`).
    pub fn start_with_open_files(
        workdir: &std::path::Path,
        args: &[&str],
        open_files: u64,
    ) -> Self {
        Self::spawn(
            None,
            workdir,
            args,
            Some(BOOTSTRAP_KEY),
            None,
            Some(open_files),
        )
    }

    /// Starts `weft serve` in `workdir` as someone who chose no bootstrap key.
    pub fn start_without_chosen_key(workdir: &std::path::Path) -> Self {
        Self::launch(None, workdir, &[], None, None)
    }

    fn launch(
        database_url: Option<&str>,
        workdir: &std::path::Path,
        args: &[&str],
        bootstrap_key: Option<&str>,
        log: Option<&std::path::Path>,
    ) -> Self {
        Self::spawn(database_url, workdir, args, bootstrap_key, log, None)
    }

    fn spawn(
        database_url: Option<&str>,
        workdir: &std::path::Path,
        args: &[&str],
        bootstrap_key: Option<&str>,
        log: Option<&std::path::Path>,
        open_files: Option<u64>,
    ) -> Self {
        let mut command = match open_files {
            // prlimit runs the binary in its own process, with the limit set.
            Some(limit) => {
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={limit}:{limit}"))
                    .arg(crate::weft_binary());
                command
            }
            None => Command::new(crate::weft_binary()),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            // The tests' receivers are on loopback, over plain http.
            .args(["--allow-network", "127.0.0.0/8", "--allow-http"])
            .args(args);
        command
            .env_remove("WEFT_MASTER_KEY")
            .env_remove("WEFT_MASTER_KEY_FILE");
        if let Some(url) = database_url {
            command.args(["--database-url", url]);
            // A SQLite database keeps its key beside it; PostgreSQL is given one.
            if !url.starts_with("sqlite:") {
                command.env("WEFT_MASTER_KEY", MASTER_KEY);
            }
        }
        command.env_remove("WEFT_BOOTSTRAP_ADMIN_KEY");
        if let Some(key) = bootstrap_key {
            command.env("WEFT_BOOTSTRAP_ADMIN_KEY", key);
        }
        let stderr = match log {
            Some(path) => {
                command.env("WEFT_LOG", "debug");
                Stdio::from(std::fs::File::create(path).unwrap())
            }
            None => Stdio::inherit(),
        };
        let mut child = command
            .current_dir(workdir)
            .env("WEFT_ARTIFACT_DIR", workdir.join("artifacts"))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        let url = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("weft serve stopped before it listened: {printed:?}"))
                .unwrap();
            if line.starts_with("weft listening on ") {
                break line
                    .split_whitespace()
                    .find(|word| word.starts_with("http://"))
                    .unwrap_or_else(|| panic!("no address in {line:?}"))
                    .to_owned();
            }
            printed.push(line);
        };
        // Keep draining stdout so the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            url,
            printed,
            child,
        }
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many files (sockets included) the process has open now.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit; returns whether it exited with success.
    pub fn terminate(mut self, timeout: Duration) -> bool {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "weft serve did not stop within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WeftProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET url` (`http://host:port/path`) over a plain connection: the
/// answer's head and body.
pub fn scrape(url: &str) -> (String, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (address, path) = rest.split_at(rest.find('/').unwrap());
    let mut connection = std::net::TcpStream::connect(address).unwrap();
    write!(
        connection,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    connection.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}
