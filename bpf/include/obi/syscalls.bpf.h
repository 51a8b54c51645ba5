/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * Syscall hooks through the raw sys_enter and sys_exit tracepoints.
 *
 * Why not the syscalls:sys_enter_<name> trace events: each is a perf event,
 * and closing one waits for an RCU grace period (tracepoint_synchronize_
 * unregister) under the kernel's event_mutex, so the waits queue up. On
 * Linux 6.18 that is ~40 ms per event: 39 of them made Ctrl-C take 1.7 s.
 * A raw tracepoint link closes without waiting.
 *
 * One dispatcher per direction tail-calls the handler user space put at
 * the syscall's number in sys_enter_progs / sys_exit_progs. Syscall numbers
 * differ per architecture, so they live in user space only. A number with
 * no handler (most syscalls) makes the tail call fall through.
 *
 * A handler is written like a trace event program, with ctx->args[] on
 * entry and ctx->ret on exit (OBI_SYSCALL_ENTER / OBI_SYSCALL_EXIT below),
 * the arguments copied from the task's saved user registers (struct
 * pt_regs: its syscall part is ABI, so the offsets are fixed per arch and
 * no BTF is needed).
 */
#ifndef OBI_SYSCALLS_BPF_H
#define OBI_SYSCALLS_BPF_H

struct obi_sc_enter {
	__u64 args[6];
};

struct obi_sc_exit {
	long ret;
};

/* A return that needs its arguments too (a receive, handled there alone). */
struct obi_sc_exit_args {
	__u64 args[6];
	long ret;
	long nr;
};

#if defined(__TARGET_ARCH_x86)
/* struct pt_regs of x86_64 from r10 (offset 56) to cs: every register the
 * syscall ABI uses, in the kernel's order. The argument registers are
 * unchanged when the syscall returns (the result goes to ax). */
struct obi_x86_syscall_regs {
	__u64 r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs;
};
#define OBI_X86_SYSCALL_REGS_OFF 56
#define OBI_X86_ORIG_AX_OFF 120
/* A 32-bit process's syscalls come with the ia32 numbers (3 is read there,
 * close here): its code segment tells them apart. The low 16 bits are the
 * selector (FRED kernels keep flags above them). */
#define OBI_X86_USER32_CS 0x23

/* The arguments and number of the current syscall; -1 for one to ignore. */
static __always_inline int sc_read_regs(__u64 regs, __u64 *args, long *nr)
{
	struct obi_x86_syscall_regs r;
	if (bpf_probe_read_kernel(&r, sizeof(r), (void *)(regs + OBI_X86_SYSCALL_REGS_OFF)))
		return -1;
	if ((r.cs & 0xffff) == OBI_X86_USER32_CS)
		return -1;
	args[0] = r.di;
	args[1] = r.si;
	args[2] = r.dx;
	args[3] = r.r10;
	args[4] = r.r8;
	args[5] = r.r9;
	*nr = r.orig_ax;
	return 0;
}

/* The number of the syscall returning, or -1 for one to ignore. */
static __always_inline long sc_exit_nr(__u64 regs)
{
	struct {
		__u64 orig_ax, ip, cs;
	} r;
	if (bpf_probe_read_kernel(&r, sizeof(r), (void *)(regs + OBI_X86_ORIG_AX_OFF)))
		return -1;
	if ((r.cs & 0xffff) == OBI_X86_USER32_CS)
		return -1;
	return r.orig_ax;
}
#elif defined(__TARGET_ARCH_arm64)
/* struct pt_regs of arm64: regs[31], sp, pc, pstate (264), orig_x0 (272),
 * syscallno (280, s32). x0 holds the result once the syscall returns; the
 * first argument stays in orig_x0, the others in x1-x5. */
#define OBI_ARM64_PSTATE_OFF 264
/* An AArch32 (compat) task: other syscall numbers. */
#define OBI_ARM64_PSR_MODE32 0x10

struct obi_arm64_syscall_tail {
	__u64 pstate, orig_x0;
	__s32 syscallno;
	__u32 pad;
};

static __always_inline int sc_read_regs(__u64 regs, __u64 *args, long *nr)
{
	struct obi_arm64_syscall_tail tail;
	if (bpf_probe_read_kernel(args, 6 * sizeof(__u64), (void *)regs) ||
	    bpf_probe_read_kernel(&tail, sizeof(tail), (void *)(regs + OBI_ARM64_PSTATE_OFF)))
		return -1;
	if (tail.pstate & OBI_ARM64_PSR_MODE32)
		return -1;
	args[0] = tail.orig_x0;
	*nr = tail.syscallno;
	return 0;
}

static __always_inline long sc_exit_nr(__u64 regs)
{
	struct obi_arm64_syscall_tail tail;
	if (bpf_probe_read_kernel(&tail, sizeof(tail), (void *)(regs + OBI_ARM64_PSTATE_OFF)))
		return -1;
	if (tail.pstate & OBI_ARM64_PSR_MODE32)
		return -1;
	return tail.syscallno;
}
#else
#error "obi: syscall registers of this architecture are not described"
#endif

/* A handler of syscall entries: the body that follows sees `ctx->args[]`.
 * Handlers are raw tracepoint programs reached only by tail call, so their
 * section names no tracepoint. `filter` runs before the registers are
 * copied: every process's syscalls come here, most of them untraced. */
#define OBI_SYSCALL_ENTER_IF(name, filter)                                     \
	static __always_inline int name##_body(struct obi_sc_enter *ctx);      \
	SEC("raw_tracepoint")                                                  \
	int name(void *raw)                                                    \
	{                                                                      \
		struct obi_sc_enter args;                                      \
		long nr;                                                       \
		if (!(filter) || sc_read_regs(((__u64 *)raw)[0], args.args, &nr)) \
			return 0;                                              \
		return name##_body(&args);                                     \
	}                                                                      \
	static __always_inline int name##_body(struct obi_sc_enter *ctx)

/* The entry of a syscall that matters only in traced processes. */
#define OBI_SYSCALL_ENTER(name) OBI_SYSCALL_ENTER_IF(name, pid_traced(bpf_get_current_pid_tgid() >> 32))
/* The entry of a syscall that matters in every process. */
#define OBI_SYSCALL_ENTER_ANY(name) OBI_SYSCALL_ENTER_IF(name, true)

/* A handler of syscall returns: the body that follows sees `ctx->ret`. */
#define OBI_SYSCALL_EXIT(name)                                                 \
	static __always_inline int name##_body(struct obi_sc_exit *ctx);       \
	SEC("raw_tracepoint")                                                  \
	int name(void *raw)                                                    \
	{                                                                      \
		struct obi_sc_exit res = {.ret = (long)((__u64 *)raw)[1]};     \
		return name##_body(&res);                                      \
	}                                                                      \
	static __always_inline int name##_body(struct obi_sc_exit *ctx)

/* A handler of the returns of traced processes' syscalls that needs their
 * arguments: the body sees `ctx->args[]`, `ctx->ret` and `ctx->nr`. */
#define OBI_SYSCALL_EXIT_ARGS(name)                                            \
	static __always_inline int name##_body(struct obi_sc_exit_args *ctx);  \
	SEC("raw_tracepoint")                                                  \
	int name(void *raw)                                                    \
	{                                                                      \
		if (!pid_traced(bpf_get_current_pid_tgid() >> 32))             \
			return 0;                                              \
		struct obi_sc_exit_args a;                                     \
		a.ret = (long)((__u64 *)raw)[1];                               \
		if (sc_read_regs(((__u64 *)raw)[0], a.args, &a.nr))            \
			return 0;                                              \
		return name##_body(&a);                                        \
	}                                                                      \
	static __always_inline int name##_body(struct obi_sc_exit_args *ctx)

#endif
