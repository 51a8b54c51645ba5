//! Syscall numbers of this architecture, by name: where the syscall
//! dispatchers find each handler (see `bpf/include/obi/syscalls.bpf.h`).
//! The kernel objects know no numbers; the table lives here only.

use super::abi::SYSCALL_SLOTS;

/// The number of `name` on this architecture, or `None` where it has no
/// such syscall (arm64 has no `access`, `poll`, `epoll_wait`, `dup2`...:
/// its libc calls the newer forms, which have their own hooks).
pub(crate) fn number(name: &str) -> Option<u32> {
    let nr: libc::c_long = match name {
        "read" => libc::SYS_read,
        "write" => libc::SYS_write,
        "readv" => libc::SYS_readv,
        "writev" => libc::SYS_writev,
        "recvfrom" => libc::SYS_recvfrom,
        "sendto" => libc::SYS_sendto,
        "recvmsg" => libc::SYS_recvmsg,
        "sendmsg" => libc::SYS_sendmsg,
        "sendfile" => libc::SYS_sendfile,
        "accept" => libc::SYS_accept,
        "accept4" => libc::SYS_accept4,
        "connect" => libc::SYS_connect,
        "listen" => libc::SYS_listen,
        "close" => libc::SYS_close,
        "dup3" => libc::SYS_dup3,
        "mmap" => libc::SYS_mmap,
        "epoll_pwait" => libc::SYS_epoll_pwait,
        "epoll_pwait2" => libc::SYS_epoll_pwait2,
        "epoll_create1" => libc::SYS_epoll_create1,
        "epoll_ctl" => libc::SYS_epoll_ctl,
        "ppoll" => libc::SYS_ppoll,
        "faccessat" => libc::SYS_faccessat,
        "faccessat2" => libc::SYS_faccessat2,
        "execve" => libc::SYS_execve,
        "execveat" => libc::SYS_execveat,
        _ => return legacy(name),
    };
    u32::try_from(nr).ok().filter(|n| *n < SYSCALL_SLOTS)
}

/// The number as the kernel objects' constants take it: -1 for none.
pub(crate) fn number_or_none(name: &str) -> i64 {
    number(name).map_or(-1, i64::from)
}

/// The older syscalls that newer architectures dropped.
#[cfg(target_arch = "x86_64")]
fn legacy(name: &str) -> Option<u32> {
    let nr = match name {
        "access" => libc::SYS_access,
        "poll" => libc::SYS_poll,
        "epoll_wait" => libc::SYS_epoll_wait,
        "epoll_create" => libc::SYS_epoll_create,
        "dup2" => libc::SYS_dup2,
        _ => return None,
    };
    u32::try_from(nr).ok()
}

#[cfg(not(target_arch = "x86_64"))]
fn legacy(_name: &str) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebpf::programs::{ATTACHMENTS, BTF_ATTACHMENTS, Hook, NO_BTF_ATTACHMENTS};

    #[test]
    fn every_syscall_hook_has_a_number_here() {
        for att in ATTACHMENTS.iter().chain(BTF_ATTACHMENTS).chain(NO_BTF_ATTACHMENTS) {
            for hook in att.hooks {
                if let Hook::SyscallEnter(name) | Hook::SyscallExit(name) = hook {
                    assert!(number(name).is_some(), "{} ({}): no syscall number on x86_64", name, att.program);
                }
            }
        }
    }

    #[test]
    fn numbers_are_this_architectures() {
        // The values the kernel's x86_64 table gives (arch/x86/entry/syscalls/syscall_64.tbl).
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(number("read"), Some(0));
            assert_eq!(number("close"), Some(3));
            assert_eq!(number("accept4"), Some(288));
            assert_eq!(number("epoll_pwait2"), Some(441));
        }
        assert_eq!(number("no_such_syscall"), None);
    }
}
