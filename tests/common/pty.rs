//! The real binary on a real pseudo-terminal, its screen kept by a VT100 emulator, so tests
//! see what a user sees and type what a user types.

use std::fs::File;
use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
use rustix::termios::{LocalModes, Winsize, tcgetattr, tcsetwinsize};

use super::LIVENESS;

/// A child process whose stdin, stdout and stderr are a terminal of `rows`×`columns`.
pub struct PtyProcess {
    pub child: Child,
    master: File,
    slave: OwnedFd,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
}

impl PtyProcess {
    /// Starts `command` in a new session with the terminal as its controlling terminal
    /// (`setsid --ctty`), as a shell would.
    pub fn spawn(command: &Command, rows: u16, columns: u16) -> PtyProcess {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        tcsetwinsize(
            &master,
            Winsize {
                ws_row: rows,
                ws_col: columns,
                ws_xpixel: 0,
                ws_ypixel: 0,
            },
        )
        .expect("window size");
        let slave: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_noctty()
            .open(name.to_str().expect("utf-8 pty name"))
            .expect("open pty slave")
            .into();
        let mut wrapped = Command::new("setsid");
        wrapped
            .arg("--ctty")
            .arg("--wait")
            .arg(command.get_program());
        wrapped.args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        wrapped
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave.try_clone().expect("dup")));
        let child = wrapped.spawn().expect("spawn under setsid");
        let master = File::from(master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            NonZeroU16::new(rows).expect("rows"),
            NonZeroU16::new(columns).expect("columns"),
            0,
        )));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup master");
        let mut answers = master.try_clone().expect("dup master");
        let (sink, bytes) = (screen.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read) = reader.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                let chunk = &buffer[..read];
                let mut parser = sink.lock().expect("screen");
                parser.process(chunk);
                // Answer "where is the cursor?" (DSR 6) as a terminal does.
                if chunk.windows(4).any(|w| w == b"\x1b[6n") {
                    let (row, column) = parser.screen().cursor_position();
                    let _ = write!(answers, "\x1b[{};{}R", row + 1, column + 1);
                }
                drop(parser);
                bytes.lock().expect("raw").extend_from_slice(chunk);
            }
        });
        PtyProcess {
            child,
            master,
            slave,
            screen,
            raw,
        }
    }

    /// The pid of the program itself (`setsid --wait` runs it as its child).
    pub fn program_pid(&self) -> i32 {
        let pid = self.child.id();
        let deadline = Instant::now() + LIVENESS;
        loop {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            if let Some(child) = children.split_whitespace().next() {
                return child.parse().expect("pid");
            }
            // setsid did not need to fork: it became the program.
            let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if !command.starts_with("setsid") {
                return pid as i32;
            }
            assert!(Instant::now() < deadline, "no program under setsid");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Types text as keys.
    pub fn type_text(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).expect("type");
        self.master.flush().expect("flush");
    }

    /// The screen as text, one line per row.
    pub fn contents(&self) -> String {
        self.screen.lock().expect("screen").screen().contents()
    }

    /// Whether the program is drawing on the alternate screen.
    pub fn alternate_screen(&self) -> bool {
        self.screen
            .lock()
            .expect("screen")
            .screen()
            .alternate_screen()
    }

    /// Whether the program hid the cursor.
    pub fn cursor_hidden(&self) -> bool {
        self.screen.lock().expect("screen").screen().hide_cursor()
    }

    /// Whether mouse reporting is on.
    pub fn mouse_reporting(&self) -> bool {
        self.screen
            .lock()
            .expect("screen")
            .screen()
            .mouse_protocol_mode()
            != vt100::MouseProtocolMode::None
    }

    /// Everything the program wrote.
    pub fn output(&self) -> Vec<u8> {
        self.raw.lock().expect("raw").clone()
    }

    /// Whether the terminal is back in cooked mode (line editing and echo), as the shell
    /// needs it.
    pub fn cooked(&self) -> bool {
        let modes = tcgetattr(self.slave.as_fd())
            .expect("tcgetattr")
            .local_modes;
        modes.contains(LocalModes::ICANON) && modes.contains(LocalModes::ECHO)
    }

    /// Waits until the screen satisfies `check`; panics with the screen if it never does.
    pub fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LIVENESS;
        loop {
            let screen = self.contents();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit, then for the terminal to pass on what it wrote last;
    /// its exit code. The kernel hands a pty's output to the reader thread some time after
    /// the write, so a screen read just after the exit could miss the final lines: this
    /// waits until no new output has come for a while.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + LIVENESS;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                self.wait_output_settled(deadline);
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "process did not exit; screen:\n{}",
                self.contents()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl PtyProcess {
    /// Returns once the output has not grown for `OUTPUT_SETTLED`, or at `deadline`.
    fn wait_output_settled(&self, deadline: Instant) {
        let mut length = self.raw.lock().expect("raw").len();
        let mut unchanged_since = Instant::now();
        while unchanged_since.elapsed() < OUTPUT_SETTLED && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.raw.lock().expect("raw").len();
            if now != length {
                length = now;
                unchanged_since = Instant::now();
            }
        }
    }
}

/// How long a pty's output must stay unchanged after the program exits before its screen
/// counts as final.
const OUTPUT_SETTLED: Duration = Duration::from_millis(250);

impl Drop for PtyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `O_NOCTTY` for opening the terminal in the test process without making it ours.
trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for std::fs::OpenOptions {
    fn custom_flags_noctty(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOCTTY)
    }
}
