/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/* From a file descriptor of the current task to its TCP socket (CO-RE).
 * Without kernel BTF the same functions look the descriptor up instead
 * (obi/fd_sockets.bpf.h). */
#ifndef OBI_SOCKETS_BPF_H
#define OBI_SOCKETS_BPF_H

#include "obi/base.bpf.h"

#ifdef OBI_NO_BTF
#include "obi/fd_sockets.bpf.h"
#else

struct obi_sock_ref {
	struct sock *sk;
	struct file *file;
	__u64 ino; /* socket inode number: our connection id */
};

/* struct file counts its references in f_ref from Linux 6.13 (references
 * minus one; negative values are the saturated and dead states), in
 * f_count before. Both layouts are named here so the program builds
 * against either vmlinux.h and CO-RE picks the running kernel's. */
struct file___f_ref {
	struct {
		atomic64_t refcnt;
	} f_ref;
} __attribute__((preserve_access_index));

struct file___f_count {
	atomic_long_t f_count;
} __attribute__((preserve_access_index));

/* Whether a descriptor other than the one being closed still holds the
 * socket: a copy made by dup2 (inetd, busybox httpd) or inherited by a
 * fork (pre-fork and fork-per-connection servers). Closing one copy does
 * not end the connection. */
static __noinline bool file_shared(struct file *file)
{
	struct file___f_ref *f = (void *)file;
	if (bpf_core_field_exists(f->f_ref)) {
		__s64 refs = BPF_CORE_READ(f, f_ref.refcnt.counter);
		return refs > 0;
	}
	struct file___f_count *old = (void *)file;
	return BPF_CORE_READ(old, f_count.counter) > 1;
}

static __always_inline bool fd_to_tcp_sock(__u32 fd, struct obi_sock_ref *ref)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return false;
	if (fd >= BPF_CORE_READ(fdt, max_fds))
		return false;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return false;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if (!inode)
		return false;
	umode_t mode = BPF_CORE_READ(inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return false;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return false;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return false;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return false;
	ref->sk = sk;
	ref->file = file;
	ref->ino = BPF_CORE_READ(inode, i_ino);
	return true;
}

static __always_inline void v4_mapped(__u8 dst[16], __be32 addr)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr, 4);
}

static __always_inline void read_tuple(struct sock *sk, struct obi_conn_tuple *t)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	t->family = family;
	t->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		v4_mapped(t->laddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		v4_mapped(t->raddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
	} else {
		BPF_CORE_READ_INTO(&t->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&t->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/* The walk reads the descriptor table itself: nothing to forget. */
static __always_inline void fd_sock_forget(__u32 fd)
{
}

#endif /* OBI_NO_BTF */
#endif /* OBI_SOCKETS_BPF_H */
