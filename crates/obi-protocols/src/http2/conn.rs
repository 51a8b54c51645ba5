//! One HTTP/2 connection seen from the side: the frames of both directions,
//! header blocks decoded in order with one HPACK table per direction, and
//! streams paired into request/response exchanges.
//!
//! HPACK state is only right if every header block of a direction is decoded
//! in order. Anything that breaks that (the kernel lost frame sync, a record
//! that does not fit the framing, a block HPACK rejects) desynchronises the
//! connection for good: it reports the reason once and emits nothing more,
//! because everything it would decode afterwards could be wrong.

use std::collections::HashMap;

use loona_hpack::Decoder;

use super::frame::{self, FrameHeader};
use super::records::{Record, Records};

/// Largest header block (all its CONTINUATION frames) we assemble.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Streams tracked at once per connection; new ones beyond are not traced.
pub const MAX_OPEN_STREAMS: usize = 1024;
/// Largest dynamic table a peer may ask for (the default is 4 KiB).
const MAX_HPACK_TABLE: usize = 1 << 20;
/// Header values kept longer than this are cut.
const MAX_FIELD: usize = 8 * 1024;

/// Which message of an exchange a direction carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// Why a connection stopped being decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desync {
    /// The kernel lost frame sync (a frame header split over two syscalls,
    /// more frames than it walks in one go, an unreadable buffer).
    KernelLost,
    /// A record that does not fit the framing.
    Malformed,
    /// A header block was interleaved with other frames (RFC 9113 §6.10).
    Interleaved,
    BlockTooLarge,
    /// HPACK refused a block: the dynamic table can no longer be trusted.
    Hpack,
}

/// The request fields spans are made of.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub scheme: String,
    pub content_type: String,
    pub traceparent: Option<String>,
}

impl RequestHead {
    /// gRPC requests are HTTP/2 with an `application/grpc[+proto...]` body.
    pub fn is_grpc(&self) -> bool {
        self.content_type.starts_with("application/grpc")
    }
}

/// A finished stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2Exchange {
    pub stream: u32,
    pub request: RequestHead,
    /// `:status` of the response; 0 if none was seen.
    pub status: u16,
    /// `grpc-status` from the response headers or trailers.
    pub grpc_status: Option<u32>,
    /// DATA payload bytes (padding included: the kernel does not copy DATA).
    pub request_body_bytes: u64,
    pub response_body_bytes: u64,
    /// When the request headers were seen, in the caller's clock.
    pub start_ts: u64,
    /// When the response ended (or the stream was reset).
    pub end_ts: u64,
    /// The stream was reset (RST_STREAM) before its response ended.
    pub reset: bool,
    /// What the caller passed with the request headers (e.g. a thread id).
    pub tag: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct H2Stats {
    pub frames: u64,
    pub header_blocks: u64,
    /// Streams not traced because too many were open.
    pub dropped_streams: u64,
    /// Response frames for streams whose request we did not see.
    pub orphan_frames: u64,
    pub goaways: u64,
}

#[derive(Debug, Default)]
struct Fields {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
    scheme: Option<String>,
    status: Option<u16>,
    content_type: Option<String>,
    grpc_status: Option<u32>,
    traceparent: Option<String>,
}

impl Fields {
    fn take(&mut self, name: &[u8], value: &[u8]) {
        let text = || String::from_utf8_lossy(&value[..value.len().min(MAX_FIELD)]).into_owned();
        let number = || std::str::from_utf8(value).ok().and_then(|v| v.trim().parse().ok());
        match name {
            b":method" => self.method = Some(text()),
            b":path" => self.path = Some(text()),
            b":authority" => self.authority = Some(text()),
            b":scheme" => self.scheme = Some(text()),
            b":status" => self.status = number().and_then(|n: u32| u16::try_from(n).ok()),
            b"content-type" => self.content_type = Some(text()),
            b"grpc-status" => self.grpc_status = number(),
            b"traceparent" => self.traceparent = Some(text()),
            _ => {}
        }
    }
}

struct Stream {
    request: RequestHead,
    status: u16,
    grpc_status: Option<u32>,
    request_body_bytes: u64,
    response_body_bytes: u64,
    start_ts: u64,
    tag: u64,
}

/// Frame and header-block assembly for one direction.
struct Direction {
    hpack: Decoder<'static>,
    /// The header-carrying frame whose payload is arriving.
    frame: Option<FrameHeader>,
    payload: Vec<u8>,
    /// The HEADERS/PUSH_PROMISE that opened the block being assembled.
    block_start: Option<FrameHeader>,
    block: Vec<u8>,
}

impl Direction {
    fn new() -> Self {
        let mut hpack = Decoder::new();
        hpack.set_max_allowed_table_size(MAX_HPACK_TABLE);
        Direction { hpack, frame: None, payload: Vec::new(), block_start: None, block: Vec::new() }
    }
}

pub struct H2Conn {
    dirs: [Direction; 2],
    streams: HashMap<u32, Stream>,
    desync: Option<Desync>,
    pub stats: H2Stats,
}

impl Default for H2Conn {
    fn default() -> Self {
        Self::new()
    }
}

impl H2Conn {
    pub fn new() -> Self {
        H2Conn {
            dirs: [Direction::new(), Direction::new()],
            streams: HashMap::new(),
            desync: None,
            stats: H2Stats::default(),
        }
    }

    pub fn desync(&self) -> Option<Desync> {
        self.desync
    }

    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Feeds the records of one kernel event. `ts` times the frames in it;
    /// `tag` is remembered with requests that start here. Finished streams
    /// are appended to `out`. Returns the reason the first time the
    /// connection desynchronises (and `Ok` afterwards: it is then inert).
    pub fn feed(
        &mut self,
        side: Side,
        records: &[u8],
        ts: u64,
        tag: u64,
        out: &mut Vec<H2Exchange>,
    ) -> Result<(), Desync> {
        if self.desync.is_some() {
            return Ok(());
        }
        for record in Records::new(records) {
            if let Err(why) = self.on_record(side, record, ts, tag, out) {
                self.desync = Some(why);
                self.streams.clear();
                self.dirs = [Direction::new(), Direction::new()];
                return Err(why);
            }
        }
        Ok(())
    }

    fn on_record(
        &mut self,
        side: Side,
        record: Record<'_>,
        ts: u64,
        tag: u64,
        out: &mut Vec<H2Exchange>,
    ) -> Result<(), Desync> {
        let dir = &mut self.dirs[side as usize];
        match record {
            Record::Preface => Ok(()),
            Record::Lost => Err(Desync::KernelLost),
            Record::Malformed => Err(Desync::Malformed),
            Record::Frame(raw) => {
                if dir.frame.is_some() {
                    return Err(Desync::Malformed);
                }
                let hdr = FrameHeader::parse(raw).ok_or(Desync::Malformed)?;
                self.stats.frames += 1;
                if dir.block_start.is_some() && hdr.kind != frame::CONTINUATION {
                    return Err(Desync::Interleaved);
                }
                if hdr.carries_header_block() {
                    if hdr.len as usize > MAX_HEADER_BLOCK {
                        return Err(Desync::BlockTooLarge);
                    }
                    dir.frame = Some(hdr);
                    dir.payload.clear();
                    if hdr.len == 0 {
                        return self.header_frame_done(side, ts, tag, out);
                    }
                    return Ok(());
                }
                self.on_other_frame(side, hdr, ts, out);
                Ok(())
            }
            Record::Payload(bytes) => {
                let Some(hdr) = dir.frame else { return Err(Desync::Malformed) };
                dir.payload.extend_from_slice(bytes);
                match dir.payload.len().cmp(&(hdr.len as usize)) {
                    std::cmp::Ordering::Less => Ok(()),
                    std::cmp::Ordering::Equal => self.header_frame_done(side, ts, tag, out),
                    std::cmp::Ordering::Greater => Err(Desync::Malformed),
                }
            }
        }
    }

    /// A HEADERS, PUSH_PROMISE or CONTINUATION payload is complete.
    fn header_frame_done(&mut self, side: Side, ts: u64, tag: u64, out: &mut Vec<H2Exchange>) -> Result<(), Desync> {
        let dir = &mut self.dirs[side as usize];
        let Some(hdr) = dir.frame.take() else { return Err(Desync::Malformed) };
        let fragment = frame::header_block_fragment(&hdr, &dir.payload).ok_or(Desync::Malformed)?;
        match (hdr.kind, dir.block_start) {
            (frame::CONTINUATION, Some(start)) if start.stream == hdr.stream => {}
            (frame::CONTINUATION, _) => return Err(Desync::Interleaved),
            (_, None) => {
                dir.block_start = Some(hdr);
                dir.block.clear();
            }
            (_, Some(_)) => return Err(Desync::Interleaved),
        }
        if dir.block.len() + fragment.len() > MAX_HEADER_BLOCK {
            return Err(Desync::BlockTooLarge);
        }
        dir.block.extend_from_slice(fragment);
        if !hdr.has(frame::FLAG_END_HEADERS) {
            return Ok(());
        }
        let start = dir.block_start.take().ok_or(Desync::Malformed)?;
        let mut fields = Fields::default();
        dir.hpack.decode_with_cb(&dir.block, |n, v| fields.take(&n, &v)).map_err(|_| Desync::Hpack)?;
        self.stats.header_blocks += 1;
        if start.kind == frame::HEADERS {
            self.on_headers(side, start, fields, ts, tag, out);
        }
        Ok(())
    }

    fn on_headers(&mut self, side: Side, hdr: FrameHeader, f: Fields, ts: u64, tag: u64, out: &mut Vec<H2Exchange>) {
        let end_stream = hdr.has(frame::FLAG_END_STREAM);
        match side {
            Side::Request => {
                if self.streams.contains_key(&hdr.stream) {
                    return; // request trailers
                }
                if self.streams.len() >= MAX_OPEN_STREAMS {
                    self.stats.dropped_streams += 1;
                    return;
                }
                let request = RequestHead {
                    method: f.method.unwrap_or_default(),
                    path: f.path.unwrap_or_default(),
                    authority: f.authority.unwrap_or_default(),
                    scheme: f.scheme.unwrap_or_default(),
                    content_type: f.content_type.unwrap_or_default(),
                    traceparent: f.traceparent,
                };
                let stream = Stream {
                    request,
                    status: 0,
                    grpc_status: None,
                    request_body_bytes: 0,
                    response_body_bytes: 0,
                    start_ts: ts,
                    tag,
                };
                self.streams.insert(hdr.stream, stream);
            }
            Side::Response => {
                let Some(stream) = self.streams.get_mut(&hdr.stream) else {
                    self.stats.orphan_frames += 1;
                    return;
                };
                if stream.status == 0 {
                    stream.status = f.status.unwrap_or(0);
                }
                if f.grpc_status.is_some() {
                    stream.grpc_status = f.grpc_status;
                }
                if end_stream {
                    self.finish(hdr.stream, ts, false, out);
                }
            }
        }
    }

    fn on_other_frame(&mut self, side: Side, hdr: FrameHeader, ts: u64, out: &mut Vec<H2Exchange>) {
        match hdr.kind {
            frame::DATA => {
                let Some(stream) = self.streams.get_mut(&hdr.stream) else {
                    if side == Side::Response {
                        self.stats.orphan_frames += 1;
                    }
                    return;
                };
                match side {
                    Side::Request => stream.request_body_bytes += hdr.len as u64,
                    Side::Response => {
                        stream.response_body_bytes += hdr.len as u64;
                        if hdr.has(frame::FLAG_END_STREAM) {
                            self.finish(hdr.stream, ts, false, out);
                        }
                    }
                }
            }
            // Unknown streams: already finished (servers often reset after trailers).
            frame::RST_STREAM => self.finish(hdr.stream, ts, true, out),
            frame::GOAWAY => self.stats.goaways += 1,
            _ => {}
        }
    }

    fn finish(&mut self, id: u32, ts: u64, reset: bool, out: &mut Vec<H2Exchange>) {
        let Some(s) = self.streams.remove(&id) else { return };
        out.push(H2Exchange {
            stream: id,
            request: s.request,
            status: s.status,
            grpc_status: s.grpc_status,
            request_body_bytes: s.request_body_bytes,
            response_body_bytes: s.response_body_bytes,
            start_ts: s.start_ts,
            end_ts: ts.max(s.start_ts),
            reset,
            tag: s.tag,
        });
    }

    /// Drops streams whose request started before `older_than` (a peer that
    /// never answers), returning how many.
    pub fn expire(&mut self, older_than: u64) -> usize {
        let before = self.streams.len();
        self.streams.retain(|_, s| s.start_ts >= older_than);
        before - self.streams.len()
    }
}
