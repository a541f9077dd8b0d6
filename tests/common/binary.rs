//! Running the real `goliath` binary as a node and as a client.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::LIVENESS;

/// A loopback TCP port nobody listens on right now (for a node's `--listen`: a port free
/// for UDP says nothing of TCP).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// The binary, with an environment free of user config.
pub fn goliath() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_goliath"));
    command
        .env_remove("GOLIATH_CONFIG")
        .env_remove("RUST_LOG")
        .env("XDG_CONFIG_HOME", "/nonexistent-goliath-test")
        // Nodes started without --data-dir keep their logs out of the user's data directory;
        // a test that starts such nodes passes a temporary directory of its own.
        .env("XDG_DATA_HOME", "/nonexistent-goliath-test-data");
    command
}

/// `goliath node --listen ADDRESS ARGS…` with `env`, its standard error piped (to read its
/// log) and no data directory of its own unless `args` names one.
pub fn spawn_node(address: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    goliath()
        .args(["node", "--listen", address])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts")
}

/// A `goliath node` child process on a free loopback port.
pub struct RunningNode {
    pub child: Child,
    pub address: String,
    log: Arc<Mutex<String>>,
    /// Set once the node's standard error ended and every line of it is in `log`.
    log_ended: Arc<std::sync::atomic::AtomicBool>,
    /// The node's own data directory, when the test did not pass one.
    _data: Option<tempfile::TempDir>,
}

impl RunningNode {
    /// Starts `goliath node` with extra arguments, in a fresh data directory of its own, and
    /// waits until it serves.
    pub fn start(args: &[&str]) -> RunningNode {
        Self::start_at("127.0.0.1:0", args)
    }

    /// [`RunningNode::start`] listening on `address`.
    pub fn start_at(address: &str, args: &[&str]) -> RunningNode {
        let data = tempfile::tempdir().expect("temp data dir");
        let mut node = Self::launch(address, data.path(), args, &[]);
        node._data = Some(data);
        node
    }

    /// Starts `goliath node` on the data directory `dir` and waits until it serves.
    pub fn start_in(dir: &std::path::Path, args: &[&str]) -> RunningNode {
        Self::start_with_env(dir, args, &[])
    }

    /// [`RunningNode::start_in`] with extra environment variables.
    pub fn start_with_env(
        dir: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> RunningNode {
        Self::launch("127.0.0.1:0", dir, args, env)
    }

    fn launch(
        address: &str,
        dir: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> RunningNode {
        let mut all = vec!["--data-dir", dir.to_str().expect("a UTF-8 temporary path")];
        all.extend_from_slice(args);
        let mut child = spawn_node(address, &all, env);
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        let sink = log.clone();
        let log_ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ended = log_ended.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("serving the goliath protocol  listen=").nth(1) {
                    let _ = address_sender.send(rest.trim().to_string());
                }
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
            ended.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let address = match address_receiver.recv_timeout(LIVENESS) {
            Ok(address) => address,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node did not announce its address; its log:\n{}",
                    log.lock().expect("log")
                );
            }
        };
        RunningNode {
            child,
            address,
            log,
            log_ended,
            _data: None,
        }
    }

    /// Runs a client command against this node (options go before the spec words).
    pub fn client(&self, args: &[&str]) -> Output {
        let (command, rest) = args.split_first().expect("a command");
        goliath()
            .arg(command)
            .args(["--node", &self.address])
            .args(rest)
            .output()
            .expect("client runs")
    }

    /// Runs a client command and parses its standard output as JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let (command, rest) = args.split_first().expect("a command");
        let mut all = vec![*command, "--json"];
        all.extend_from_slice(rest);
        let output = self.client(&all);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&output.stdout))
        })
    }

    /// What the node logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Resident memory of the node process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Waits for the node to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + LIVENESS;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // Its last lines (the reason it stopped) may still be on their way to `log`:
                // wait for the end of its standard error, a while at most (a process it
                // started could hold it open).
                let read_by = Instant::now() + Duration::from_secs(5);
                while !self.log_ended.load(std::sync::atomic::Ordering::SeqCst)
                    && Instant::now() < read_by
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return status.code();
            }
            assert!(Instant::now() < deadline, "node did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
