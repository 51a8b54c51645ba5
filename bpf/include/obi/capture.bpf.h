/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/* Copying bounded slices of socket payload into an event (map: scratch). */
#ifndef OBI_CAPTURE_BPF_H
#define OBI_CAPTURE_BPF_H

#include "obi/common.bpf.h"

static __always_inline struct obi_scratch *scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

static __always_inline __u32 capture_limit(void)
{
	__u32 cap = obi_capture_size;
	return cap > OBI_MAX_CAPTURE ? OBI_MAX_CAPTURE : cap;
}

/* Copies min(len, room) bytes from user memory to dst + off.
 * Returns the number of bytes copied. */
static __always_inline __u32 copy_user_at(struct obi_scratch *s, __u32 off, const void *src, __u64 len, __u32 cap)
{
	if (off >= cap || off >= OBI_MAX_CAPTURE)
		return 0;
	__u64 n = cap - off;
	if (len < n)
		n = len;
	barrier_var(n);
	if (n == 0 || n > OBI_MAX_CAPTURE)
		return 0;
	/* The mask is written in asm so clang cannot drop it as redundant:
	 * the verifier needs to see it to bound the destination. */
	__u64 o = off;
	asm volatile("%0 &= %1" : "+r"(o) : "i"(OBI_MAX_CAPTURE - 1));
#ifdef OBI_NO_BTF
	/* In this build clang spills n before the check above and passes a
	 * second fill of it, which verifiers before ~6.5 see unbounded: bound
	 * the value passed itself, as (n - 1) masked, plus one. */
	__u64 m = n - 1;
	asm volatile("%0 &= %1" : "+r"(m) : "i"(OBI_MAX_CAPTURE - 1));
	n = m + 1;
#endif
	if (bpf_probe_read_user(&s->data[o], n, src))
		return 0;
	return n;
}

static __always_inline void copy_tail(struct obi_scratch *s, const __u8 *seg_end, __u64 seg_len)
{
	__u64 n = seg_len < OBI_TAIL_LEN ? seg_len : OBI_TAIL_LEN;
	barrier_var(n);
	if (n == 0 || n > OBI_TAIL_LEN)
		return;
	if (bpf_probe_read_user(s->hdr.tail, n, seg_end - n) == 0)
		s->hdr.tail_len = n;
}

/* A plain buffer that moved `bytes` bytes. */
static __always_inline void capture_plain(struct obi_scratch *s, __u64 buf, __u64 bytes)
{
	__u32 cap = capture_limit();
	__u32 got = copy_user_at(s, 0, (const void *)buf, bytes, cap);
	s->hdr.captured = got;
	if (got < bytes)
		copy_tail(s, (const __u8 *)buf + bytes, bytes - got);
}

/* An iovec array whose segments together moved `bytes` bytes. */
static __always_inline void capture_iov(struct obi_scratch *s, __u64 iov_ptr, __u32 iovcnt, __u64 bytes)
{
	__u32 cap = capture_limit();
	__u32 off = 0;
	__u64 left = bytes;
	const __u8 *last_end = NULL;
	__u64 last_len = 0;
	bool walked_all = false;
#pragma unroll
	for (int i = 0; i < OBI_MAX_IOV; i++) {
		if (i >= iovcnt || left == 0) {
			walked_all = true;
			break;
		}
		struct iovec iov;
		if (bpf_probe_read_user(&iov, sizeof(iov), (const void *)(iov_ptr + i * sizeof(struct iovec))))
			break;
		__u64 seg = iov.iov_len < left ? iov.iov_len : left;
		if (seg == 0)
			continue;
		off += copy_user_at(s, off, iov.iov_base, seg, cap);
		last_end = (const __u8 *)iov.iov_base + seg;
		last_len = seg;
		left -= seg;
	}
	if (left == 0)
		walked_all = true;
	s->hdr.captured = off;
	if (off < bytes && walked_all && last_end)
		copy_tail(s, last_end, last_len);
}

#endif /* OBI_CAPTURE_BPF_H */
