/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * HTTP/2 capture. Frames come many per syscall and may straddle syscalls;
 * copying "the first N bytes" would cut HEADERS blocks and desynchronise
 * the per-connection HPACK table for good. So for connections whose preface
 * we saw, the whole buffer is walked frame by frame: every frame header is
 * reported, and the payload of header-carrying frames is copied in full
 * (DATA payloads only count). When an event fills up, it is sent and the
 * walk continues in a fresh one.
 *
 * Maps: h2_state (per connection and direction), h2_walk (per CPU).
 */
#ifndef OBI_H2_BPF_H
#define OBI_H2_BPF_H

#include "obi/common.bpf.h"
#include "obi/capture.bpf.h"

#define OBI_H2_PIECE 1024 /* largest payload piece per record */
#define OBI_H2_MAX_STEPS 1024
#define OBI_H2_MAX_FRAME (1 << 24)
/* h2_state keys of TLS sessions (SSL* addresses), apart from socket inodes. */
#define OBI_H2_TLS_KEY (1ULL << 63)
/* Segments one read may span: a 9-byte frame header, at worst one byte per
 * segment (payload pieces never cross a segment, see src_contig). */
#define OBI_H2_MAX_SPAN 9

static __always_inline void src_plain(struct obi_src *src, __u64 buf, __u64 len)
{
	src->iov[0].iov_base = (void *)buf;
	src->iov[0].iov_len = len;
	src->n = 1;
	src->seg = 0;
	src->seg_start = 0;
}

static __always_inline int src_iov(struct obi_src *src, __u64 iov_ptr, __u32 iovcnt)
{
	src->seg = 0;
	src->seg_start = 0;
	src->n = 0;
	if (iovcnt == 0)
		return -1;
	__u32 n = iovcnt < OBI_H2_MAX_IOV ? iovcnt : OBI_H2_MAX_IOV;
	/* 1..OBI_H2_MAX_IOV in a form the verifier can bound. */
	__u64 last = n - 1;
	asm volatile("%0 &= %1" : "+r"(last) : "i"(OBI_H2_MAX_IOV - 1));
	if (bpf_probe_read_user(src->iov, (last + 1) * sizeof(struct iovec), (const void *)iov_ptr))
		return -1;
	src->n = n;
	return 0;
}

/* iov[seg] for a seg already checked against n; the mask is for the
 * verifier (the compiler would otherwise index before the check). */
static __always_inline struct iovec *src_seg(struct obi_src *src, __u32 seg)
{
	__u64 i = seg;
	asm volatile("%0 &= %1" : "+r"(i) : "i"(OBI_H2_MAX_IOV - 1));
	return &src->iov[i];
}

/* Moves the cursor to the segment holding logical offset pos. */
static __always_inline int src_seek(struct obi_src *src, __u64 pos)
{
	for (int i = 0; i < OBI_H2_MAX_IOV; i++) {
		__u32 seg = src->seg;
		if (seg >= src->n || seg >= OBI_H2_MAX_IOV)
			return -1;
		__u64 len = src_seg(src, seg)->iov_len;
		if (pos < src->seg_start + len)
			return 0;
		src->seg_start += len;
		src->seg = seg + 1;
	}
	return -1;
}

/* Bytes from pos to the end of its segment, at most OBI_H2_PIECE; 0 if pos
 * is beyond the buffer. Payload pieces are cut there, so a header block
 * scattered over many small segments (gRPC's C core writes one per string)
 * costs one read per segment. Static: before Linux 5.12 a global function
 * cannot take pointers; h2_walk_step, which is global, holds the cost. */
static __noinline int src_contig(struct obi_src *src, __u64 pos)
{
	if (!src || src_seek(src, pos))
		return 0;
	__u64 left = src->seg_start + src_seg(src, src->seg)->iov_len - pos;
	return left > OBI_H2_PIECE ? OBI_H2_PIECE : left;
}

/* Copies n (<= OBI_H2_PIECE) bytes at logical offset pos of src into
 * s->data[at..]; at < OBI_MAX_CAPTURE, so the copy stays inside data. */
static __noinline int src_read(struct obi_src *src, __u64 pos, struct obi_scratch *s, __u32 at, __u32 n)
{
	if (!src || !s || src_seek(src, pos))
		return -1;
	__u32 done = 0;
	__u32 seg = src->seg;
	__u64 seg_start = src->seg_start;
	for (int i = 0; i < OBI_H2_MAX_SPAN && done < n; i++) {
		if (seg >= src->n || seg >= OBI_H2_MAX_IOV)
			return -1;
		struct iovec *iov = src_seg(src, seg);
		__u64 len = iov->iov_len;
		__u64 off = pos + done - seg_start;
		if (off < len) {
			__u64 take = len - off;
			if (take > n - done)
				take = n - done;
			barrier_var(take);
			if (take == 0 || take > OBI_H2_PIECE)
				return -1;
			__u32 dst = at + done;
			barrier_var(dst);
			if (dst >= OBI_MAX_CAPTURE + OBI_H2_PIECE)
				return -1;
			if (bpf_probe_read_user(&s->data[dst], take, (const void *)((__u64)iov->iov_base + off)))
				return -1;
			done += take;
		}
		seg_start += len;
		seg++;
	}
	return done == n ? 0 : -1;
}

static __always_inline struct obi_h2_walk *h2_walk_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&h2_walk, &zero);
}

static __always_inline void h2_flush(struct obi_h2_walk *w, struct obi_scratch *s)
{
	__u32 out = w->out;
	if (out > OBI_MAX_CAPTURE)
		out = OBI_MAX_CAPTURE;
	s->hdr.captured = out;
	__u64 size = sizeof(struct obi_event_hdr) + out;
	barrier_var(size);
	if (size <= sizeof(struct obi_scratch)) {
		events_output(s, size);
	}
	/* Later pieces of the same syscall are not a new message. */
	s->hdr.flags &= ~(OBI_F_MSG_START | OBI_F_REQUEST);
	w->out = 0;
	w->events++;
}

/* Reserves room for a record of n (<= OBI_H2_PIECE) payload bytes and
 * returns the offset of its payload in s->data. */
static __always_inline __u32 h2_record(struct obi_h2_walk *w, struct obi_scratch *s, __u8 kind, __u32 n)
{
	if (w->out + 3 + n > OBI_MAX_CAPTURE)
		h2_flush(w, s);
	__u32 at = w->out & (OBI_MAX_CAPTURE - 1);
	s->data[at] = n & 0xff;
	s->data[(at + 1) & (OBI_MAX_CAPTURE * 2 - 1)] = n >> 8;
	s->data[(at + 2) & (OBI_MAX_CAPTURE * 2 - 1)] = kind;
	w->out += 3 + n;
	return (at + 3) & (OBI_MAX_CAPTURE - 1);
}

/*
 * One step of the walk: a frame header, or the next piece of a frame's
 * payload. Global (not static) so the verifier checks it once on its own
 * instead of once per call path, which kept program load under a second.
 */
__noinline int h2_walk_step(void)
{
	struct obi_h2_walk *w = h2_walk_get();
	struct obi_scratch *s = scratch_get();
	if (!w || !s)
		return 1;
	struct obi_h2_dir *st = &w->st;
	if (w->pos >= w->total || st->lost)
		return 1;
	__u64 left = w->total - w->pos;

	if (st->skip) {
		/* The rest of a frame: copy header-carrying payloads, skip the rest. */
		__u64 n = st->skip < left ? st->skip : left;
		if (st->skip_headers) {
			__u64 contig = src_contig(&w->src, w->pos);
			if (n > contig)
				n = contig;
			barrier_var(n);
			if (n == 0 || n > OBI_H2_PIECE)
				return 1;
			__u32 at = h2_record(w, s, OBI_H2_REC_PAYLOAD, n);
			if (src_read(&w->src, w->pos, s, at, n)) {
				st->lost = 1;
				return 1;
			}
		}
		st->skip -= n;
		w->pos += n;
		return 0;
	}

	/* A frame header may be cut by the end of a syscall (a reader taking
	 * a few bytes at a time, a writer sending it in pieces): its first
	 * bytes wait in st->part and the header is completed from the next
	 * syscall's bytes, then reported whole. */
	__u32 have = st->part_len;
	if (have > 8) {
		st->lost = 1;
		return 1;
	}
	__u32 need = 9 - have;
	if (left < need) {
		/* Staged past the event's records (out <= OBI_MAX_CAPTURE). */
		if (src_read(&w->src, w->pos, s, OBI_MAX_CAPTURE, left)) {
			st->lost = 1;
			return 1;
		}
		/* Appended as one 8-byte word, not byte by byte: a branch per
		 * byte multiplied the verifier's work in every program that
		 * walks HTTP/2 (load time 1.3 s -> 3.3 s). Little-endian: byte i
		 * of memory is bits 8i..8i+7. have + left <= 8 here. */
		__u64 got = 0, part = 0;
		__builtin_memcpy(&got, &s->data[OBI_MAX_CAPTURE], 8);
		__builtin_memcpy(&part, st->part, 8);
		__u32 bits = (left & 7) * 8;
		if (bits)
			got &= (1ULL << bits) - 1;
		/* Only the first `have` bytes of part are kept ones. */
		if (have < 8)
			part &= (1ULL << (have * 8)) - 1;
		if (left && have < 8)
			part |= got << ((have & 7) * 8);
		__builtin_memcpy(st->part, &part, 8);
		st->part_len = have + left;
		w->pos = w->total;
		return 1;
	}
	__u32 at = h2_record(w, s, OBI_H2_REC_FRAME, 9);
	if (have) {
		/* The kept bytes, as one word (those past `have` are overwritten
		 * by the read below). */
		__u32 at_m = at & (OBI_MAX_CAPTURE * 2 - 1);
		if (at_m > OBI_MAX_CAPTURE * 2 - 16) {
			st->lost = 1;
			return 1;
		}
		__builtin_memcpy(&s->data[at_m], st->part, 8);
	}
	if (src_read(&w->src, w->pos, s, at + have, need)) {
		st->lost = 1;
		return 1;
	}
	st->part_len = 0;
	__u8 *fh = &s->data[at];
	__u32 len = ((__u32)fh[0] << 16) | ((__u32)fh[1] << 8) | fh[2];
	__u8 type = fh[3];
	if (len > OBI_H2_MAX_FRAME || type > 0x20) {
		st->lost = 1;
		return 1;
	}
	w->pos += need;
	st->skip = len;
	/* HEADERS, PUSH_PROMISE, CONTINUATION carry header blocks. */
	st->skip_headers = type == 0x1 || type == 0x5 || type == 0x9;
	return 0;
}

/* Is this the client connection preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")? */
static __always_inline bool is_h2_preface(const __u8 *b)
{
	__u64 a, c;
	__builtin_memcpy(&a, b, 8);
	__builtin_memcpy(&c, b + 16, 8);
	return a == 0x5448202a20495250ULL /* "PRI * HT" */ && c == 0x0a0d0a0d4d530a0dULL /* "\r\nSM\r\n\r\n" */;
}

static __always_inline struct obi_h2_dir *h2_dir(__u64 conn_id, __u8 dir)
{
	struct obi_h2_state *hs = bpf_map_lookup_elem(&h2_state, &conn_id);
	if (!hs) {
		struct obi_h2_state fresh = {};
		bpf_map_update_elem(&h2_state, &conn_id, &fresh, BPF_NOEXIST);
		hs = bpf_map_lookup_elem(&h2_state, &conn_id);
		if (!hs)
			return NULL;
	}
	return &hs->dir[dir & 1];
}

/* h2_capture's `how`: the direction, and whether the bytes start with the
 * connection preface (the walk then starts past it). */
#define OBI_H2_HOW_PREFACE 0x100
#define OBI_H2_HOW(dir, preface) ((__u32)((dir) & 1) | ((preface) ? OBI_H2_HOW_PREFACE : 0))

/*
 * Walks the frames of one syscall's bytes (buf: a plain buffer, or an iovec
 * array when iovcnt != 0) on connection h2_key into as many events as
 * needed. The per-CPU scratch event's header must be filled in already.
 *
 * Global, so the verifier checks it once, not on every path of the programs
 * that call it; its arguments are scalars, as global functions need before
 * Linux 5.12. The walk is a bounded loop over another global function
 * rather than bpf_loop (5.17+): each step is still verified once, and this
 * loads from 5.8 on.
 */
__noinline int h2_capture(__u64 h2_key, __u32 how, __u64 buf, __u32 iovcnt, __u64 total)
{
	struct obi_h2_walk *w = h2_walk_get();
	struct obi_scratch *s = scratch_get();
	struct obi_h2_dir *st = h2_dir(h2_key, how & 1);
	if (!w || !s || !st)
		return 0;
	__u64 start = (how & OBI_H2_HOW_PREFACE) ? OBI_H2_PREFACE_LEN : 0;
	w->pos = start;
	w->total = total;
	w->out = 0;
	w->events = 0;
	w->st = *st;
	if (iovcnt)
		src_iov(&w->src, buf, iovcnt);
	else
		src_plain(&w->src, buf, total);
	/* An unreadable iovec array leaves no segments: the first read fails
	 * and the walk reports the loss. */
	s->hdr.flags |= OBI_F_H2;
	s->hdr.tail_len = 0;
	if (start)
		h2_record(w, s, OBI_H2_REC_PREFACE, 0);
	for (__u32 i = 0; i < OBI_H2_MAX_STEPS; i++) {
		if (h2_walk_step())
			break;
	}
	if (w->pos < w->total && !w->st.lost)
		w->st.lost = 1; /* more frames than steps */
	if (w->st.lost)
		h2_record(w, s, OBI_H2_REC_LOST, 0);
	if (w->out || !w->events)
		h2_flush(w, s);
	*st = w->st;
	return 0;
}

#endif /* OBI_H2_BPF_H */
