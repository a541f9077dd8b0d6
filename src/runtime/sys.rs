//! The few operating-system calls std does not wrap, each behind a safe function.

use std::io;

/// Sends `signal` to every process in process group `group` (a child started as the leader of
/// its own group, so its own children get the signal too).
pub fn signal_process_group(group: u32, signal: i32) -> io::Result<()> {
    let group = i32::try_from(group).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if group <= 1 {
        // Never signal "every process" (-1) or our own group (0).
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a negative pid
    // addresses a process group, and `group > 1` rules out the special values 0 and -1.
    let result = unsafe { libc::kill(-group, signal) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether process group `group` has a member that still runs: one that is not a zombie.
/// A signal 0 to the group answers yes for zombies too, and a process left behind by a
/// program is reparented to init, which in a container (or a sandbox) may never reap it:
/// waiting for that zombie to go made every exec task that left one wait out its whole kill
/// grace. Where `/proc` cannot be read, the signal's answer stands.
pub fn process_group_runs(group: u32) -> bool {
    if signal_process_group(group, 0).is_err() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    let mut read_any = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        read_any = true;
        if let Some((state, process_group)) = state_and_group(&stat)
            && process_group == group
            && state != 'Z'
            && state != 'X'
        {
            return true;
        }
    }
    !read_any
}

/// The state letter and process group of a `/proc/PID/stat` line. The command name (field
/// 2, in parentheses) may hold spaces and parentheses itself, so fields are counted from the
/// last `)`.
fn state_and_group(stat: &str) -> Option<(char, u32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let _parent = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, group))
}

/// Sends `signal` to process `pid` (never to a group, nor to pid 0 or 1).
pub fn signal_process(pid: u32, signal: i32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pid <= 1 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a positive pid
    // above 1 addresses that one process.
    let result = unsafe { libc::kill(pid, signal) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Highest soft limit on open files a node asks for: Linux's default `fs.nr_open`, above
/// which setrlimit(2) fails even for a hard limit of "unlimited".
const OPEN_FILES_WANTED: u64 = 1 << 20;

/// This process's limit on open files, before and after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit found (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
}

/// Raises this process's soft limit on open files to its hard limit (at most 1,048,576): the
/// common soft limit of 1,024 is what `net.max_connections` allows alone, so a node that
/// reached it had no descriptor left for its log's next segment or an `exec` task. Children
/// inherit the raised limit. The limit stays as it was where the system refuses.
pub fn raise_open_file_limit() -> OpenFileLimit {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let found = getrlimit(Resource::Nofile);
    let wanted = found
        .maximum
        .map_or(OPEN_FILES_WANTED, |hard| hard.min(OPEN_FILES_WANTED));
    let before = found.current;
    if before.is_some_and(|soft| soft < wanted) {
        let mut raised = found;
        raised.current = Some(wanted);
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return OpenFileLimit {
                before,
                now: Some(wanted),
            };
        }
    }
    OpenFileLimit {
        before,
        now: before,
    }
}

/// Whether `error` says this process (`EMFILE`) or the whole system (`ENFILE`) has no file
/// descriptor left: a wait for one to be closed, not a fault of the disk.
pub fn out_of_file_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// What an operator does when [`out_of_file_descriptors`]: every message that reports it
/// ends with this.
pub const OUT_OF_DESCRIPTORS_ADVICE: &str =
    "raise the open-file limit (ulimit -n) or lower net.max_connections";

/// Lowers the calling thread's CPU priority to nice value `nice` (0 to 19; higher is lower),
/// for background work such as the WAL's checkpoints, so that it yields the cores to the
/// threads others wait for. Only the calling thread changes; a thread already at `nice` or
/// lower keeps its priority (this never raises one, which an unprivileged thread could not
/// undo).
pub fn lower_thread_priority(nice: i32) -> io::Result<()> {
    let nice = nice.clamp(0, 19);
    let thread = current_thread_id()?;
    if thread_nice(thread)? >= nice {
        return Ok(());
    }
    // SAFETY: setpriority(2) takes plain integers and touches no memory of ours; on Linux a
    // thread id with PRIO_PROCESS addresses that one thread.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, thread, nice) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The calling thread's kernel thread id.
fn current_thread_id() -> io::Result<libc::id_t> {
    // SAFETY: gettid(2) takes nothing and touches no memory.
    let thread = unsafe { libc::gettid() };
    libc::id_t::try_from(thread).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// The nice value of thread (or process) `thread`.
fn thread_nice(thread: libc::id_t) -> io::Result<i32> {
    // getpriority(2) may return -1 as a value: only errno tells an error apart.
    // SAFETY: __errno_location returns this thread's errno, valid for the thread's life;
    // getpriority takes plain integers and touches no memory of ours.
    let nice = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, thread)
    };
    let error = io::Error::last_os_error();
    if nice == -1 && error.raw_os_error() != Some(0) {
        Err(error)
    } else {
        Ok(nice)
    }
}

/// For a child between fork and exec: asks the kernel to send it SIGKILL when the thread
/// that forked it ends (with the node, the I/O thread), and fails if `parent` (the node's
/// pid) is already gone, so a child forked just as the node died does not run on. Only calls
/// that are async-signal-safe, and no allocation, as a forked child of a threaded process
/// requires.
pub fn kill_me_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG takes plain integers and touches no memory of
    // ours; it is async-signal-safe.
    let result = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getppid(2) takes nothing, touches no memory and cannot fail.
    let now = unsafe { libc::getppid() };
    if u32::try_from(now).ok() != Some(parent) {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// Waits until the reading end of `output` has been closed: a pipe or socket whose reader
/// went away (`goliath watch | head -3` once head exits). Returns false at once for anything
/// else (a terminal, a file: no reader to lose), or if `output` cannot be polled. Blocks
/// the calling thread while the reader is there.
pub fn wait_until_reader_gone(output: impl std::os::fd::AsFd) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    use rustix::fs::FileType;
    let Ok(stat) = rustix::fs::fstat(&output) else {
        return false;
    };
    if !matches!(
        FileType::from_raw_mode(stat.st_mode),
        FileType::Fifo | FileType::Socket
    ) {
        return false;
    }
    loop {
        // No event asked for: poll reports only an error (a pipe without readers) or a
        // hang-up (a socket whose peer closed).
        let mut fds = [PollFd::new(&output, PollFlags::empty())];
        match poll(&mut fds, None) {
            Ok(_) => {
                let seen = fds[0].revents();
                if seen.intersects(PollFlags::ERR | PollFlags::HUP) {
                    return true;
                }
                if !seen.is_empty() {
                    return false;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

/// Whether a UDP socket of this host (any address, IPv4 or IPv6) has local port `port`, as
/// `/proc/net/udp` and `/proc/net/udp6` list them; false where they cannot be read. Only
/// reads: binding the port to find out would, for that moment, take it from a node about
/// to start there, and two callers probing at once see each other.
pub fn udp_port_in_use(port: u16) -> bool {
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| udp_table_has_port(&text, port))
    })
}

/// Whether a `/proc/net/udp{,6}` table has a socket with local port `port`: the second
/// column is `ADDRESS:PORT`, the port in hexadecimal.
fn udp_table_has_port(table: &str, port: u16) -> bool {
    table.lines().skip(1).any(|line| {
        line.split_ascii_whitespace()
            .nth(1)
            .and_then(|local| local.rsplit_once(':'))
            .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok())
            == Some(port)
    })
}

/// SIGTERM.
pub const SIGTERM: i32 = libc::SIGTERM;
/// SIGKILL.
pub const SIGKILL: i32 = libc::SIGKILL;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_closed_reader_of_a_pipe_is_noticed_and_a_file_has_none_to_lose() {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let waiter = std::thread::spawn(move || wait_until_reader_gone(&writer));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "the reader is still there");
        drop(reader);
        assert!(waiter.join().expect("joins"));
        let file = tempfile::tempfile().expect("temp file");
        assert!(!wait_until_reader_gone(&file));
    }

    #[test]
    fn a_bound_udp_port_is_found_in_the_kernel_table_without_binding_it() {
        let table = "  sl  local_address rem_address   st\n   \
            12: 0100007F:1F4D 00000000:0000 07 00000000:00000000\n";
        assert!(udp_table_has_port(table, 0x1F4D));
        assert!(!udp_table_has_port(table, 0x1F4C));
        // A real socket's port is listed (after it closes, another test may take the port).
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("binds");
        let port = socket.local_addr().expect("address").port();
        assert!(udp_port_in_use(port));
    }

    #[test]
    fn signals_reach_the_whole_group() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        signal_process_group(child.id(), SIGTERM).expect("signal sent");
        let status = child.wait().expect("child reaped");
        assert_eq!(status.signal(), Some(SIGTERM));
    }

    #[test]
    fn a_group_of_only_zombies_does_not_run() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("sleep starts");
        assert!(process_group_runs(child.id()));
        signal_process(child.id(), SIGKILL).expect("killed");
        // Not reaped yet: a zombie, which a signal 0 to the group still finds.
        let stat = format!("/proc/{}/stat", child.id());
        let zombie = || {
            std::fs::read_to_string(&stat)
                .ok()
                .and_then(|text| state_and_group(&text))
                .is_some_and(|(state, _)| state == 'Z')
        };
        while !zombie() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(signal_process_group(child.id(), 0).is_ok());
        assert!(!process_group_runs(child.id()));
        child.wait().expect("reaped");
        assert!(!process_group_runs(child.id()));
    }

    #[test]
    fn a_stat_line_is_read_past_odd_command_names() {
        let line = "4242 (a) b (c) S 1 4240 4240 0 -1 4194560 ...";
        assert_eq!(state_and_group(line), Some(('S', 4240)));
        assert_eq!(state_and_group("garbage"), None);
    }

    #[test]
    fn refuses_the_special_groups() {
        assert!(signal_process_group(0, SIGTERM).is_err());
        assert!(signal_process_group(1, SIGTERM).is_err());
        assert!(signal_process_group(u32::MAX, SIGTERM).is_err());
    }

    /// The calling thread's nice value.
    fn own_nice() -> i32 {
        thread_nice(current_thread_id().expect("gettid")).expect("getpriority")
    }

    /// The nice value of the process's main thread (whose thread id is the process id).
    fn main_thread_nice() -> i32 {
        thread_nice(std::process::id()).expect("getpriority")
    }

    #[test]
    fn a_lowered_thread_gets_the_priority_asked_and_no_other_thread_does() {
        let before = own_nice();
        let main_before = main_thread_nice();
        let (lowered, lowered_again) = std::thread::spawn(|| {
            lower_thread_priority(10).expect("setpriority");
            let lowered = own_nice();
            // Asking for a higher priority than the thread has changes nothing.
            lower_thread_priority(5).expect("no change");
            (lowered, own_nice())
        })
        .join()
        .expect("thread");
        assert_eq!(lowered, before.max(10));
        assert_eq!(lowered_again, lowered, "never raised");
        assert_eq!(own_nice(), before, "not the test's thread");
        assert_eq!(
            main_thread_nice(),
            main_before,
            "not the process's main thread"
        );
    }
}
