//! The resource figures the benchmark reads from the kernel: a child's peak
//! resident memory, and this process's CPU time.

use std::io::Read as _;
use std::process::Command;
use std::time::Duration;

/// How a measured child exited.
pub(crate) struct Exit {
    /// True when it exited with status 0.
    pub(crate) success: bool,
    /// Its peak resident set size, in KiB (`ru_maxrss`).
    pub(crate) peak_kib: u64,
}

/// Runs `command`, collects its standard output, and reaps it with `wait4`
/// to read its own resource use, apart from every other process's.
pub(crate) fn run(mut command: Command) -> std::io::Result<(Exit, String)> {
    let mut child = command.spawn()?;
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout)?;
    }
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that `wait4` fills in; zeroes are a
    // valid value of it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own child, not yet reaped (`Child::wait` was not
    // called), and both pointers are to live locals.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if reaped != pid {
        return Err(std::io::Error::last_os_error());
    }
    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let peak_kib = u64::try_from(usage.ru_maxrss).unwrap_or_default();
    Ok((Exit { success, peak_kib }, stdout))
}

/// Returns the CPU time, user and system, that every thread of this process
/// has used so far.
pub(crate) fn cpu_time() -> Duration {
    // SAFETY: as in `run`, zeroes are a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live local that `getrusage` fills in.
    let result = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(result, 0, "getrusage(RUSAGE_SELF) cannot fail with a valid pointer");
    let time = |value: libc::timeval| {
        Duration::from_secs(u64::try_from(value.tv_sec).unwrap_or_default())
            + Duration::from_micros(u64::try_from(value.tv_usec).unwrap_or_default())
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
