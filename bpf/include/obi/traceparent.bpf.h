/* SPDX-License-Identifier: GPL-2.0-only OR Apache-2.0 */
/*
 * W3C trace context in HTTP/1 heads: finding a `traceparent` header in
 * captured bytes, decoding it, and formatting one for injection.
 *
 * The scan walks the head 8 bytes at a time and looks closer only at words
 * holding a '\n', so a typical 300-byte head costs ~40 word loads.
 */
#ifndef OBI_TRACEPARENT_BPF_H
#define OBI_TRACEPARENT_BPF_H

#include "obi/base.bpf.h"

/* Bytes of head examined (a multiple of 8, at most OBI_MAX_CAPTURE). */
#define OBI_TP_SCAN_LEN 1024
#define OBI_TP_VALUE_LEN 55 /* 00-<32>-<16>-<2> */
/* "traceparent: " + value + "\r\n" */
#define OBI_TP_HEADER_LEN 70

struct obi_head_scan {
	__u32 line_end;  /* offset just past the request line's '\n', 0 if unseen */
	__u32 tp_value;  /* offset of the traceparent value, 0 if absent */
	__u8 head_done;  /* the empty line ending the head was seen */
};

static __always_inline __u64 load64(const __u8 *p)
{
	__u64 v;
	__builtin_memcpy(&v, p, 8);
	return v;
}

static __always_inline __u32 load32(const __u8 *p)
{
	__u32 v;
	__builtin_memcpy(&v, p, 4);
	return v;
}

/* Is the line starting at data[off] a traceparent header? (case-insensitive) */
static __always_inline bool is_tp_header(const __u8 *data, __u32 off)
{
	/* "tracepar" and "ent:" as little-endian words; OR-ing 0x20 lowercases
	 * letters and leaves ':' (0x3a) unchanged. */
	const __u64 tracepar = 0x7261706563617274ULL;
	const __u32 ent = 0x3a746e65;
	return (load64(data + off) | 0x2020202020202020ULL) == tracepar && (load32(data + off + 8) | 0x20202020) == ent;
}

/* Looks at the newlines inside one 8-byte word (number w) of data[0..len);
 * returns 1 when the scan is over. */
static __always_inline int scan_word(__u32 w, const __u8 *data, __u32 len, struct obi_head_scan *out)
{
	__u32 base = (w * 8) & (OBI_TP_SCAN_LEN - 1);
	if (w * 8 >= len || w * 8 >= OBI_TP_SCAN_LEN)
		return 1;
	__u64 v = load64(data + base) ^ 0x0a0a0a0a0a0a0a0aULL;
	/* Classic "has a zero byte" test: is there a '\n' in this word? */
	if (!((v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL))
		return 0;
#pragma unroll
	for (int k = 0; k < 8; k++) {
		__u32 nl = base + k;
		if (nl + 1 >= len)
			return 1;
		if (data[nl] != '\n')
			continue;
		__u32 next = (nl + 1) & (OBI_TP_SCAN_LEN - 1);
		/* The first '\n' ends the request line; every line after it is a header. */
		if (!out->line_end)
			out->line_end = next;
		__u8 ch = data[next];
		if (ch == '\r' || ch == '\n') {
			out->head_done = 1;
			return 1;
		}
		if (!out->tp_value && next + 12 + OBI_TP_VALUE_LEN <= len && is_tp_header(data, next)) {
			__u32 val = next + 12;
			if (data[val] == ' ')
				val++;
			out->tp_value = val;
		}
	}
	return 0;
}

/* The scan's result packed into an int, so a global function (which before
 * Linux 5.12 may take and return only scalars) can hand it back. */
#define OBI_SCAN_TP_SHIFT 16
#define OBI_SCAN_DONE (1U << 31)

static __always_inline int scan_pack(const struct obi_head_scan *out)
{
	return (int)(out->line_end | (out->tp_value << OBI_SCAN_TP_SHIFT) | (out->head_done ? OBI_SCAN_DONE : 0));
}

static __always_inline void scan_unpack(int packed, struct obi_head_scan *out)
{
	__u32 v = (__u32)packed;
	out->line_end = v & 0xffff;
	out->tp_value = (v >> OBI_SCAN_TP_SHIFT) & 0x7fff;
	out->head_done = (v & OBI_SCAN_DONE) != 0;
}

static __always_inline int hex_val(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes `n` bytes from 2n hex characters; false on a bad digit. */
static __always_inline bool hex_decode(const __u8 *src, __u8 *dst, int n)
{
	bool ok = true;
#pragma nounroll
	for (int i = 0; i < 16; i++) {
		if (i >= n)
			break;
		int hi = hex_val(src[2 * i]);
		int lo = hex_val(src[2 * i + 1]);
		if (hi < 0 || lo < 0)
			ok = false;
		dst[i] = (hi << 4) | lo;
	}
	return ok;
}

static __always_inline bool all_zero(const __u8 *b, int n)
{
	__u8 acc = 0;
#pragma nounroll
	for (int i = 0; i < 16; i++) {
		if (i < n)
			acc |= b[i];
	}
	return acc == 0;
}

/* Parses "00-<trace>-<parent>-<flags>" at v into tp (trace, parent, flags). */
static __always_inline bool parse_traceparent(const __u8 *v, struct obi_tp *tp)
{
	if (v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-')
		return false;
	__u8 trace[16], parent[8], flags[1];
	if (!hex_decode(v + 3, trace, 16) || !hex_decode(v + 36, parent, 8) || !hex_decode(v + 53, flags, 1))
		return false;
	if (all_zero(trace, 16) || all_zero(parent, 8))
		return false;
	__builtin_memcpy(tp->trace_id, trace, 16);
	__builtin_memcpy(tp->parent_id, parent, 8);
	tp->flags = flags[0];
	return true;
}

static __always_inline void hex_encode(const __u8 *src, __u8 *dst, int n)
{
	const char digits[] = "0123456789abcdef";
#pragma unroll
	for (int i = 0; i < 16; i++) {
		if (i >= n)
			break;
		dst[2 * i] = digits[src[i] >> 4];
		dst[2 * i + 1] = digits[src[i] & 0xf];
	}
}

/* Writes the full header line for `tp` (OBI_TP_HEADER_LEN bytes). */
static __always_inline void format_tp_header(const struct obi_tp *tp, __u8 out[OBI_TP_HEADER_LEN])
{
	__builtin_memcpy(out, "traceparent: 00-", 16);
	hex_encode(tp->trace_id, out + 16, 16);
	out[48] = '-';
	hex_encode(tp->span_id, out + 49, 8);
	out[65] = '-';
	hex_encode(&tp->flags, out + 66, 1);
	out[68] = '\r';
	out[69] = '\n';
}

#endif /* OBI_TRACEPARENT_BPF_H */
