//! RLIMIT_MEMLOCK: before Linux 5.11 every BPF map and program is charged
//! against it, and the usual default (64 KiB, 8 MiB in most distributions)
//! is far below what the agent's maps take. From 5.11 on the kernel charges
//! BPF memory to the cgroup instead and the limit no longer matters.

use std::io;

/// The limit after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Memlock {
    Unlimited,
    /// Bytes; raised only as far as the hard limit (no CAP_SYS_RESOURCE).
    Limited(u64),
}

impl std::fmt::Display for Memlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Memlock::Unlimited => f.write_str("unlimited"),
            Memlock::Limited(b) => write!(f, "{} KiB", b / 1024),
        }
    }
}

/// Lifts the limit to unlimited, or, without the privilege to raise the
/// hard limit, the soft limit to the hard one.
pub(crate) fn raise() -> io::Result<Memlock> {
    let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } == 0 {
        return Ok(Memlock::Unlimited);
    }
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above; lowering nothing, raising the soft limit to the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if lim.rlim_max == libc::RLIM_INFINITY { Memlock::Unlimited } else { Memlock::Limited(lim.rlim_max) })
}
