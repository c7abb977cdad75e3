//! Append-only disk log for publisher retention ([`DiskStore`]), so that a publisher restarted
//! on the same directory (even after SIGKILL) keeps its id, its epoch and its history.
//!
//! Layout of the directory:
//!
//! * `meta` — publisher id, epoch, boot id, clean-shutdown flag and the newest seq of every
//!   stream as of the last segment roll; written atomically (`meta.tmp` + fsync + rename);
//! * `seg-<first global index, 20 digits>.log` — segment files, rolled at `segment_bytes`.
//!   A segment starts with a 16-byte header `"FMQL" | version u32 | epoch u64` and holds
//!   records (all integers little-endian):
//!
//! ```text
//! len u32 | crc32 u32 | stream_len u8 | stream | seq u64 | timestamp_ms u64 |
//! frame_count u32 | (frame_len u32 | frame)*
//! ```
//!
//! `len` counts the bytes after the 8-byte prefix; `crc32` (IEEE) covers those bytes.
//!
//! On open the segments are scanned and an in-memory index (stream, seq) -> (segment, offset)
//! is rebuilt. A torn final record (a crash mid-write) is truncated away; a bad record followed
//! by more data (corruption, not a torn write) also ends the valid prefix of its segment, and
//! the open is reported as *damaged*: records after it may have been sent, so [`DiskStore::open`]
//! then starts a new epoch instead of risking seq reuse.
//!
//! Bounds are those of the ring ([`RetentionLimits`]): entries are evicted logically
//! oldest-first (answered "gone" at once), and a segment file is deleted when all of its
//! entries are evicted and it is no longer the active one.
//!
//! Durability ([`FsyncPolicy`]): each record is written with one `write` call (flushed to the
//! OS: a killed process loses nothing), and fsynced according to the policy. The epoch is kept
//! across a restart unless the previous run neither shut down cleanly nor ran on the same boot
//! (an OS crash may have lost unsynced records that subscribers already saw), or the log is
//! damaged: then the log is wiped and a new epoch starts (`max(last + 1, fresh)`).

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::retention::{RetainedMessage, RetentionLimits, RetentionStore, RingStore};
use super::wire::{Id128, PublisherId};

const SEG_MAGIC: &[u8; 4] = b"FMQL";
const META_MAGIC: &[u8; 4] = b"FMQM";
const VERSION: u32 = 1;
const SEG_HEADER: u64 = 16;
/// Largest record accepted on scan (guards allocations against a corrupted length).
const MAX_RECORD: u32 = 1 << 30;

// ---------------------------------------------------------------------------------------------
// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320)

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// When records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Never fsync (records still reach the OS on every append).
    Never,
    /// fsync a segment when it is rolled (and the directory when files come and go).
    #[default]
    PerSegment,
    /// fsync the active segment at most every N ms (checked on append/expire), plus on roll.
    EveryMs(u64),
}

/// Settings of the disk log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLogConfig {
    /// Directory of the log (created if missing). One publisher per directory.
    pub dir: PathBuf,
    /// Segment size at which a new segment is started (default 16 MiB).
    pub segment_bytes: u64,
    /// fsync policy (default [`FsyncPolicy::PerSegment`]).
    pub fsync: FsyncPolicy,
}

impl DiskLogConfig {
    /// Defaults for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DiskLogConfig {
            dir: dir.into(),
            segment_bytes: 16 << 20,
            fsync: FsyncPolicy::default(),
        }
    }
}

/// What [`DiskStore::open`] found and decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOpen {
    /// Publisher id (from the log, or the one given for a new log).
    pub id: PublisherId,
    /// Epoch in force.
    pub epoch: u64,
    /// True if the previous epoch is resumed (seqs continue).
    pub resumed: bool,
    /// Newest seq per stream to continue from (empty unless resumed).
    pub streams: Vec<(Bytes, u64)>,
    /// Records recovered from the segments.
    pub records: usize,
    /// Bytes truncated away (torn or corrupted tails).
    pub truncated_bytes: u64,
    /// Why a new epoch was started, if one was.
    pub new_epoch_reason: Option<&'static str>,
}

// ---------------------------------------------------------------------------------------------
// Meta file

#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    id: PublisherId,
    epoch: u64,
    clean: bool,
    boot: Vec<u8>,
    streams: BTreeMap<Bytes, u64>,
}

fn boot_id() -> Vec<u8> {
    fs::read("/proc/sys/kernel/random/boot_id")
        .map(|mut b| {
            b.truncate(64);
            b
        })
        .unwrap_or_default()
}

impl Meta {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(META_MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.id.0);
        b.extend_from_slice(&self.epoch.to_le_bytes());
        b.push(u8::from(self.clean));
        b.push(self.boot.len() as u8);
        b.extend_from_slice(&self.boot);
        b.extend_from_slice(&(self.streams.len() as u32).to_le_bytes());
        for (s, seq) in &self.streams {
            b.push(s.len() as u8);
            b.extend_from_slice(s);
            b.extend_from_slice(&seq.to_le_bytes());
        }
        let c = crc32(&b);
        b.extend_from_slice(&c.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Meta> {
        let (body, c) = b.split_at(b.len().checked_sub(4)?);
        if crc32(body) != u32::from_le_bytes(c.try_into().ok()?) {
            return None;
        }
        let mut r = Cursor(body);
        if r.take(4)? != META_MAGIC || r.u32()? != VERSION {
            return None;
        }
        let id = Id128(r.take(16)?.try_into().ok()?);
        let epoch = r.u64()?;
        let clean = r.u8()? != 0;
        let n = r.u8()? as usize;
        let boot = r.take(n)?.to_vec();
        let count = r.u32()?;
        let mut streams = BTreeMap::new();
        for _ in 0..count {
            let n = r.u8()? as usize;
            let s = Bytes::copy_from_slice(r.take(n)?);
            streams.insert(s, r.u64()?);
        }
        Some(Meta {
            id,
            epoch,
            clean,
            boot,
            streams,
        })
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn write_meta(dir: &Path, meta: &Meta) -> io::Result<()> {
    let tmp = dir.join("meta.tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&meta.encode())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join("meta"))?;
    sync_dir(dir);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Records

fn encode_record(stream: &[u8], msg: &RetainedMessage) -> Vec<u8> {
    let body_len = 1 + stream.len() + 20 + msg.payload.iter().map(|f| 4 + f.len()).sum::<usize>();
    let mut b = Vec::with_capacity(8 + body_len);
    b.extend_from_slice(&(body_len as u32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.push(stream.len() as u8);
    b.extend_from_slice(stream);
    b.extend_from_slice(&msg.seq.to_le_bytes());
    b.extend_from_slice(&msg.timestamp_ms.to_le_bytes());
    b.extend_from_slice(&(msg.payload.len() as u32).to_le_bytes());
    for f in &msg.payload {
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    let c = crc32(&b[8..]);
    b[4..8].copy_from_slice(&c.to_le_bytes());
    b
}

/// Decodes a record body (after the 8-byte prefix, CRC already checked).
fn decode_body(body: &[u8]) -> Option<(Bytes, RetainedMessage)> {
    let mut r = Cursor(body);
    let n = r.u8()? as usize;
    let stream = Bytes::copy_from_slice(r.take(n)?);
    let seq = r.u64()?;
    let timestamp_ms = r.u64()?;
    let count = r.u32()? as usize;
    if count > body.len() {
        return None;
    }
    let mut payload = Vec::with_capacity(count);
    for _ in 0..count {
        let l = r.u32()? as usize;
        payload.push(Bytes::copy_from_slice(r.take(l)?));
    }
    if !r.0.is_empty() || n == 0 {
        return None;
    }
    Some((
        stream,
        RetainedMessage {
            seq,
            timestamp_ms,
            payload,
        },
    ))
}

/// Outcome of checking the record at `off` of `buf`.
enum Rec<'a> {
    Ok(&'a [u8], u64),
    /// Incomplete record at the end of the buffer (torn write).
    Torn,
    /// Complete but invalid (corruption).
    Bad,
}

fn check_record(buf: &[u8], off: usize) -> Rec<'_> {
    let rest = &buf[off..];
    if rest.len() < 8 {
        return Rec::Torn;
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    if len > MAX_RECORD {
        return Rec::Bad;
    }
    let end = 8 + len as usize;
    if rest.len() < end {
        return Rec::Torn;
    }
    let body = &rest[8..end];
    if crc32(body) != crc {
        // A bad CRC on the very last record is a torn write too (pages written out of order).
        return if rest.len() == end {
            Rec::Torn
        } else {
            Rec::Bad
        };
    }
    Rec::Ok(body, end as u64)
}

// ---------------------------------------------------------------------------------------------
// Store

#[derive(Debug)]
struct Segment {
    /// Global index of its first entry (the file name).
    first: u64,
    path: PathBuf,
    file: File,
    len: u64,
    /// Global index one past its last entry.
    end: u64,
}

#[derive(Debug)]
struct Entry {
    stream: Bytes,
    seq: u64,
    stored_ms: u64,
    size: usize,
    offset: u64,
    rec_len: u32,
}

/// Retention on disk: append-only segment files plus an in-memory index (see the module doc).
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    config: DiskLogConfig,
    limits: RetentionLimits,
    meta: Meta,
    epoch: u64,
    /// Segments, oldest first; the last one is active.
    segments: VecDeque<Segment>,
    /// Global FIFO of live entries; `entries[0]` has global index `base`.
    entries: VecDeque<Entry>,
    base: u64,
    /// Per stream: (seq, global index), increasing.
    index: HashMap<Bytes, VecDeque<(u64, u64)>>,
    /// Newest seq ever appended per stream (never evicted).
    newest: BTreeMap<Bytes, u64>,
    bytes: usize,
    last_sync_ms: u64,
    /// Appends that failed with an I/O error (those messages are not retained).
    errors: u64,
}

fn seg_name(first: u64) -> String {
    format!("seg-{first:020}.log")
}

fn parse_seg_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".log")?
        .parse()
        .ok()
}

fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        if let Some(first) = e.file_name().to_str().and_then(parse_seg_name) {
            v.push((first, e.path()));
        }
    }
    v.sort();
    Ok(v)
}

impl DiskStore {
    /// Opens (or creates) the log in `config.dir`.
    ///
    /// `id`: the publisher id wanted (`None`: keep the log's, or `fallback_id` for a new log);
    /// a log of another id is refused (`InvalidData`). `fresh_epoch`: the epoch for a new start
    /// (e.g. Unix ms now); a resumed log keeps its epoch. `now_ms` is the clock of the ages.
    pub fn open(
        config: &DiskLogConfig,
        limits: RetentionLimits,
        id: Option<PublisherId>,
        fallback_id: PublisherId,
        fresh_epoch: u64,
        now_ms: u64,
    ) -> io::Result<(DiskStore, DiskOpen)> {
        let dir = config.dir.clone();
        fs::create_dir_all(&dir)?;
        let _ = fs::remove_file(dir.join("meta.tmp"));
        let boot = boot_id();
        let old = match fs::read(dir.join("meta")) {
            Ok(b) => match Meta::decode(&b) {
                Some(m) => Some(m),
                None => {
                    log::warn!("rpub disklog: {} has a corrupted meta file", dir.display());
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "rpub disk log: corrupted meta file",
                    ));
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let (Some(m), Some(want)) = (&old, id) {
            if m.id != want {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("rpub disk log belongs to publisher {}, not {want}", m.id),
                ));
            }
        }
        let mut store = DiskStore {
            dir: dir.clone(),
            config: config.clone(),
            limits,
            meta: Meta {
                id: id.unwrap_or(fallback_id),
                epoch: fresh_epoch,
                clean: false,
                boot: boot.clone(),
                streams: BTreeMap::new(),
            },
            epoch: fresh_epoch,
            segments: VecDeque::new(),
            entries: VecDeque::new(),
            base: 0,
            index: HashMap::new(),
            newest: BTreeMap::new(),
            bytes: 0,
            last_sync_ms: now_ms,
            errors: 0,
        };
        let mut info = DiskOpen {
            id: store.meta.id,
            epoch: fresh_epoch,
            resumed: false,
            streams: Vec::new(),
            records: 0,
            truncated_bytes: 0,
            new_epoch_reason: Some("new log"),
        };
        if let Some(m) = old {
            store.meta.id = m.id;
            store.epoch = m.epoch;
            let (damaged, truncated) = store.scan()?;
            info.truncated_bytes = truncated;
            let unsafe_crash = !m.clean && m.boot != boot;
            let reason = if damaged {
                Some("damaged log")
            } else if unsafe_crash {
                Some("unclean shutdown on another boot")
            } else {
                None
            };
            info.id = m.id;
            if let Some(r) = reason {
                log::warn!("rpub disklog: {}: {r}, starting a new epoch", dir.display());
                store.wipe()?;
                store.epoch = fresh_epoch.max(m.epoch.saturating_add(1));
                info.new_epoch_reason = Some(r);
            } else {
                for (s, &seq) in &m.streams {
                    let n = store.newest.entry(s.clone()).or_insert(0);
                    *n = (*n).max(seq);
                }
                info.resumed = true;
                info.new_epoch_reason = None;
                info.records = store.entries.len();
                info.streams = store.newest.iter().map(|(s, &q)| (s.clone(), q)).collect();
            }
        } else {
            store.wipe()?;
        }
        info.epoch = store.epoch;
        store.meta.epoch = store.epoch;
        store.meta.clean = false;
        store.meta.boot = boot;
        store.meta.streams = store.newest.clone();
        write_meta(&dir, &store.meta)?;
        if store.segments.is_empty() {
            store.new_segment(store.base)?;
        }
        store.enforce(now_ms);
        Ok((store, info))
    }

    /// Deletes every segment and forgets everything (a new epoch).
    fn wipe(&mut self) -> io::Result<()> {
        self.segments.clear();
        for (_, p) in list_segments(&self.dir)? {
            fs::remove_file(p)?;
        }
        sync_dir(&self.dir);
        self.entries.clear();
        self.index.clear();
        self.newest.clear();
        self.base = 0;
        self.bytes = 0;
        Ok(())
    }

    /// Scans the segments; returns (damaged, truncated bytes).
    fn scan(&mut self) -> io::Result<(bool, u64)> {
        let segs = list_segments(&self.dir)?;
        let mut damaged = false;
        let mut truncated = 0u64;
        let n = segs.len();
        for (i, (first, path)) in segs.into_iter().enumerate() {
            let mut buf = Vec::new();
            File::open(&path)?.read_to_end(&mut buf)?;
            let header_ok = buf.len() >= SEG_HEADER as usize
                && &buf[0..4] == SEG_MAGIC
                && buf[4..8] == VERSION.to_le_bytes()
                && buf[8..16] == self.epoch.to_le_bytes();
            if !header_ok {
                if i + 1 == n && buf.len() < SEG_HEADER as usize {
                    // Created but the header never made it: a torn roll.
                    log::warn!("rpub disklog: dropping empty segment {}", path.display());
                } else {
                    log::warn!(
                        "rpub disklog: segment {} has a bad header (dropped)",
                        path.display()
                    );
                    damaged = true;
                }
                truncated += buf.len() as u64;
                fs::remove_file(&path)?;
                continue;
            }
            if self.base + self.entries.len() as u64 != first && !self.entries.is_empty() {
                log::warn!("rpub disklog: segment {} out of sequence", path.display());
                damaged = true;
            }
            if self.entries.is_empty() {
                self.base = first;
            }
            let mut g = first;
            let mut off = SEG_HEADER as usize;
            let mut valid_end = off;
            while off < buf.len() {
                match check_record(&buf, off) {
                    Rec::Ok(body, len) => {
                        let Some((stream, msg)) = decode_body(body) else {
                            damaged = true;
                            break;
                        };
                        let last = self.newest.get(&stream).copied().unwrap_or(0);
                        if msg.seq <= last {
                            damaged = true;
                            break;
                        }
                        self.push_entry(stream, &msg, msg.timestamp_ms, off as u64, len as u32, g);
                        g += 1;
                        off += len as usize;
                        valid_end = off;
                    }
                    Rec::Torn => {
                        if i + 1 != n {
                            damaged = true; // only the active segment can be torn
                        }
                        break;
                    }
                    Rec::Bad => {
                        damaged = true;
                        break;
                    }
                }
            }
            if valid_end < buf.len() {
                let cut = (buf.len() - valid_end) as u64;
                log::warn!(
                    "rpub disklog: truncating {} bytes at offset {valid_end} of {}",
                    cut,
                    path.display()
                );
                truncated += cut;
            }
            let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
            file.set_len(valid_end as u64)?;
            file.seek(SeekFrom::Start(valid_end as u64))?;
            self.segments.push_back(Segment {
                first,
                path,
                file,
                len: valid_end as u64,
                end: g,
            });
            if damaged {
                // Nothing after a damaged point is trusted for ordering; the caller wipes.
                break;
            }
        }
        Ok((damaged, truncated))
    }

    fn push_entry(
        &mut self,
        stream: Bytes,
        msg: &RetainedMessage,
        stored_ms: u64,
        offset: u64,
        rec_len: u32,
        g: u64,
    ) {
        let size = msg.payload_len() + stream.len();
        self.bytes += size;
        self.index
            .entry(stream.clone())
            .or_default()
            .push_back((msg.seq, g));
        self.newest.insert(stream.clone(), msg.seq);
        self.entries.push_back(Entry {
            stream,
            seq: msg.seq,
            stored_ms,
            size,
            offset,
            rec_len,
        });
    }

    fn new_segment(&mut self, first: u64) -> io::Result<()> {
        let path = self.dir.join(seg_name(first));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let mut h = Vec::with_capacity(16);
        h.extend_from_slice(SEG_MAGIC);
        h.extend_from_slice(&VERSION.to_le_bytes());
        h.extend_from_slice(&self.epoch.to_le_bytes());
        file.write_all(&h)?;
        if self.config.fsync != FsyncPolicy::Never {
            sync_dir(&self.dir);
        }
        self.segments.push_back(Segment {
            first,
            path,
            file,
            len: SEG_HEADER,
            end: first,
        });
        Ok(())
    }

    /// Closes the active segment (fsync per policy, meta with the stream watermarks) and starts
    /// a new one.
    fn roll(&mut self) -> io::Result<()> {
        if let Some(s) = self.segments.back() {
            if self.config.fsync != FsyncPolicy::Never {
                s.file.sync_data()?;
            }
        }
        // Watermarks first: segments may be deleted later, the newest seqs must survive.
        self.meta.streams = self.newest.clone();
        write_meta(&self.dir, &self.meta)?;
        let g = self.base + self.entries.len() as u64;
        self.new_segment(g)
    }

    fn evict_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.base += 1;
            self.bytes -= e.size;
            if let Some(dq) = self.index.get_mut(&e.stream) {
                if dq.front().map(|&(s, _)| s) == Some(e.seq) {
                    dq.pop_front();
                } else {
                    dq.retain(|&(s, _)| s != e.seq);
                }
                if dq.is_empty() {
                    self.index.remove(&e.stream);
                }
            }
        }
    }

    fn enforce(&mut self, now_ms: u64) {
        while let Some(front) = self.entries.front() {
            let too_old = now_ms.saturating_sub(front.stored_ms) > self.limits.max_age_ms;
            if self.entries.len() > self.limits.max_messages
                || self.bytes > self.limits.max_bytes
                || too_old
            {
                self.evict_front();
            } else {
                break;
            }
        }
        // Delete closed segments whose entries are all gone.
        while self.segments.len() > 1 && self.segments[0].end <= self.base {
            if let Some(s) = self.segments.pop_front() {
                drop(s.file);
                if let Err(e) = fs::remove_file(&s.path) {
                    log::warn!("rpub disklog: removing {}: {e}", s.path.display());
                }
            }
        }
        if let FsyncPolicy::EveryMs(n) = self.config.fsync {
            if now_ms.saturating_sub(self.last_sync_ms) >= n {
                self.last_sync_ms = now_ms;
                if let Some(s) = self.segments.back() {
                    let _ = s.file.sync_data();
                }
            }
        }
    }

    fn try_append(&mut self, stream: &Bytes, msg: &RetainedMessage, now_ms: u64) -> io::Result<()> {
        let rec = encode_record(stream, msg);
        let need_roll = self.segments.back().is_none_or(|s| {
            s.len > SEG_HEADER && s.len + rec.len() as u64 > self.config.segment_bytes
        });
        if need_roll {
            self.roll()?;
        }
        let g = self.base + self.entries.len() as u64;
        let Some(seg) = self.segments.back_mut() else {
            return Err(io::Error::other("no active segment"));
        };
        let offset = seg.len;
        if let Err(e) = seg.file.write_all(&rec) {
            // Leave no partial record behind (a later record after it would look corrupted).
            let _ = seg.file.set_len(offset);
            let _ = seg.file.seek(SeekFrom::Start(offset));
            return Err(e);
        }
        seg.len += rec.len() as u64;
        seg.end = g + 1;
        self.push_entry(stream.clone(), msg, now_ms, offset, rec.len() as u32, g);
        Ok(())
    }

    /// The epoch in force (as returned by [`DiskStore::open`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Newest seq appended per stream (including evicted ones).
    pub fn newest_seqs(&self) -> Vec<(Bytes, u64)> {
        self.newest.iter().map(|(s, &q)| (s.clone(), q)).collect()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Bytes of the segment files.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    /// Appends that failed with an I/O error (those messages are not retained).
    pub fn io_errors(&self) -> u64 {
        self.errors
    }

    /// fsyncs the active segment and records a clean shutdown (also done on drop).
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(s) = self.segments.back() {
            s.file.sync_data()?;
        }
        self.meta.streams = self.newest.clone();
        self.meta.clean = true;
        write_meta(&self.dir, &self.meta)
    }

    fn read_entry(&self, g: u64) -> Option<RetainedMessage> {
        let pos = usize::try_from(g.checked_sub(self.base)?).ok()?;
        let e = self.entries.get(pos)?;
        let i = self.segments.partition_point(|s| s.end <= g);
        let seg = self.segments.get(i).filter(|s| s.first <= g)?;
        let mut buf = vec![0u8; e.rec_len as usize];
        if let Err(err) = read_at(&seg.file, &mut buf, e.offset) {
            log::warn!("rpub disklog: reading {}: {err}", seg.path.display());
            return None;
        }
        let body = match check_record(&buf, 0) {
            Rec::Ok(body, _) => body,
            _ => {
                log::warn!(
                    "rpub disklog: record at {} of {} no longer checks",
                    e.offset,
                    seg.path.display()
                );
                return None;
            }
        };
        let (stream, msg) = decode_body(body)?;
        (stream == e.stream && msg.seq == e.seq).then_some(msg)
    }
}

#[cfg(unix)]
fn read_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, off)
}

#[cfg(not(unix))]
fn read_at(f: &File, buf: &mut [u8], off: u64) -> io::Result<()> {
    let mut f = f.try_clone()?;
    f.seek(SeekFrom::Start(off))?;
    f.read_exact(buf)
}

impl Drop for DiskStore {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            log::warn!("rpub disklog: close of {}: {e}", self.dir.display());
        }
    }
}

impl RetentionStore for DiskStore {
    fn append(&mut self, stream: &Bytes, msg: RetainedMessage, now_ms: u64) {
        if let Some(&last) = self.newest.get(stream) {
            if msg.seq <= last {
                log::warn!(
                    "rpub disklog: non-increasing seq {} after {}",
                    msg.seq,
                    last
                );
                return;
            }
        }
        if stream.is_empty() || stream.len() > 255 {
            log::warn!("rpub disklog: invalid stream name length {}", stream.len());
            return;
        }
        if let Err(e) = self.try_append(stream, &msg, now_ms) {
            self.errors += 1;
            self.newest.insert(stream.clone(), msg.seq);
            log::warn!("rpub disklog: append to {}: {e}", self.dir.display());
        }
        self.enforce(now_ms);
    }

    fn get(&self, stream: &[u8], seq: u64) -> Option<RetainedMessage> {
        let dq = self.index.get(stream)?;
        let &(first, _) = dq.front()?;
        if seq < first {
            return None;
        }
        let fast = usize::try_from(seq - first)
            .ok()
            .and_then(|i| dq.get(i))
            .filter(|&&(s, _)| s == seq)
            .copied();
        let (_, g) = match fast {
            Some(p) => p,
            None => dq[dq.binary_search_by_key(&seq, |&(s, _)| s).ok()?],
        };
        self.read_entry(g)
    }

    fn oldest(&self, stream: &[u8]) -> Option<u64> {
        self.index.get(stream)?.front().map(|&(s, _)| s)
    }

    fn expire(&mut self, now_ms: u64) {
        self.enforce(now_ms);
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The store of a bus publisher: the memory ring or the disk log.
#[derive(Debug)]
pub enum AnyStore {
    /// In-memory ring.
    Ring(RingStore),
    /// Disk log.
    Disk(Box<DiskStore>),
}

impl RetentionStore for AnyStore {
    fn append(&mut self, stream: &Bytes, msg: RetainedMessage, now_ms: u64) {
        match self {
            AnyStore::Ring(s) => s.append(stream, msg, now_ms),
            AnyStore::Disk(s) => s.append(stream, msg, now_ms),
        }
    }
    fn append_one(
        &mut self,
        stream: &Bytes,
        seq: u64,
        timestamp_ms: u64,
        payload: Bytes,
        now_ms: u64,
    ) {
        match self {
            AnyStore::Ring(s) => s.append_one(stream, seq, timestamp_ms, payload, now_ms),
            AnyStore::Disk(s) => s.append_one(stream, seq, timestamp_ms, payload, now_ms),
        }
    }
    fn get(&self, stream: &[u8], seq: u64) -> Option<RetainedMessage> {
        match self {
            AnyStore::Ring(s) => s.get(stream, seq),
            AnyStore::Disk(s) => s.get(stream, seq),
        }
    }
    fn oldest(&self, stream: &[u8]) -> Option<u64> {
        match self {
            AnyStore::Ring(s) => s.oldest(stream),
            AnyStore::Disk(s) => s.oldest(stream),
        }
    }
    fn expire(&mut self, now_ms: u64) {
        match self {
            AnyStore::Ring(s) => s.expire(now_ms),
            AnyStore::Disk(s) => s.expire(now_ms),
        }
    }
    fn len(&self) -> usize {
        match self {
            AnyStore::Ring(s) => s.len(),
            AnyStore::Disk(s) => s.len(),
        }
    }
    fn bytes(&self) -> usize {
        match self {
            AnyStore::Ring(s) => s.bytes(),
            AnyStore::Disk(s) => s.bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let mut r = [0u8; 8];
            getrandom::fill(&mut r).unwrap();
            let p = std::env::temp_dir().join(format!(
                "ferromq-disklog-{tag}-{}-{:016x}",
                std::process::id(),
                u64::from_le_bytes(r)
            ));
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const ID: PublisherId = Id128([7; 16]);
    const UNBOUNDED: RetentionLimits = RetentionLimits {
        max_messages: usize::MAX,
        max_bytes: usize::MAX,
        max_age_ms: u64::MAX,
    };

    fn msg(seq: u64, len: usize) -> RetainedMessage {
        RetainedMessage {
            seq,
            timestamp_ms: seq,
            payload: vec![Bytes::from(vec![seq as u8; len]), Bytes::from_static(b"x")],
        }
    }

    fn open(cfg: &DiskLogConfig, limits: RetentionLimits, epoch: u64) -> (DiskStore, DiskOpen) {
        DiskStore::open(cfg, limits, None, ID, epoch, 0).unwrap()
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn append_get_and_bounds() {
        let t = TempDir::new("bounds");
        let cfg = DiskLogConfig::new(&t.0);
        let s = Bytes::from_static(b"s");
        let (mut d, info) = open(
            &cfg,
            RetentionLimits {
                max_messages: 3,
                max_bytes: usize::MAX,
                max_age_ms: 100,
            },
            5,
        );
        assert!(!info.resumed);
        assert_eq!(info.epoch, 5);
        for i in 1..=4 {
            d.append(&s, msg(i, 10), 0);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.oldest(b"s"), Some(2));
        assert!(d.get(b"s", 1).is_none());
        assert_eq!(d.get(b"s", 3).unwrap(), msg(3, 10));
        assert_eq!(d.bytes(), 3 * 12);
        d.append(&s, msg(5, 10), 60);
        d.expire(101);
        assert_eq!(d.oldest(b"s"), Some(5));
        d.expire(161);
        assert!(d.is_empty());
        assert!(d.get(b"s", 5).is_none());
        // Non-increasing seqs are refused; the newest seq survives eviction.
        d.append(&s, msg(5, 1), 200);
        assert!(d.is_empty());
        assert_eq!(d.newest_seqs(), vec![(s.clone(), 5)]);

        let t2 = TempDir::new("bytes");
        let (mut d, _) = open(
            &DiskLogConfig::new(&t2.0),
            RetentionLimits {
                max_messages: 1000,
                max_bytes: 40, // 12 bytes per message (11 payload + 1 name)
                max_age_ms: u64::MAX,
            },
            1,
        );
        for i in 1..=4 {
            d.append(&s, msg(i, 10), 0);
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.bytes(), 36);
    }

    #[test]
    fn reopen_restores_index_epoch_and_last_seqs() {
        let t = TempDir::new("reopen");
        let mut cfg = DiskLogConfig::new(&t.0);
        cfg.segment_bytes = 200;
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"bb");
        {
            let (mut d, _) = open(&cfg, UNBOUNDED, 42);
            for i in 1..=20 {
                d.append(&a, msg(i, 20), i);
                if i % 2 == 0 {
                    d.append(&b, msg(i / 2, 5), i);
                }
            }
            assert!(d.segment_count() > 3);
            // Simulate a crash: no clean close.
            std::mem::forget(d);
        }
        let (d, info) = DiskStore::open(&cfg, UNBOUNDED, Some(ID), Id128([9; 16]), 99, 0).unwrap();
        assert!(info.resumed, "{info:?}");
        assert_eq!(info.epoch, 42);
        assert_eq!(info.id, ID);
        assert_eq!(info.records, 30);
        assert_eq!(info.streams, vec![(a.clone(), 20), (b.clone(), 10)]);
        for i in 1..=20 {
            assert_eq!(d.get(b"a", i).unwrap(), msg(i, 20));
        }
        assert_eq!(d.get(b"bb", 7).unwrap(), msg(7, 5));
        assert_eq!(d.oldest(b"a"), Some(1));
        drop(d);
        // Another id is refused.
        let e = DiskStore::open(&cfg, UNBOUNDED, Some(Id128([1; 16])), ID, 1, 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn segments_roll_and_are_deleted_and_watermarks_survive() {
        let t = TempDir::new("roll");
        let mut cfg = DiskLogConfig::new(&t.0);
        cfg.segment_bytes = 256;
        let limits = RetentionLimits {
            max_messages: 10,
            ..UNBOUNDED
        };
        let a = Bytes::from_static(b"a");
        let z = Bytes::from_static(b"z");
        {
            let (mut d, _) = open(&cfg, limits, 3);
            d.append(&z, msg(1, 10), 0);
            for i in 1..=200 {
                d.append(&a, msg(i, 40), 0);
            }
            assert_eq!(d.len(), 10);
            assert!(d.oldest(b"z").is_none());
            // 10 live records of ~64 bytes over 256-byte segments: a handful of files.
            let files = list_segments(&t.0).unwrap().len();
            assert_eq!(files, d.segment_count());
            assert!((3..=6).contains(&files), "{files}");
            assert!(d.disk_bytes() <= 6 * 256);
            std::mem::forget(d);
        }
        let (d, info) = open(&cfg, limits, 4);
        assert!(info.resumed);
        assert_eq!(info.epoch, 3);
        // Stream z's records were all deleted; its newest seq comes from the meta watermark.
        assert_eq!(info.streams, vec![(a.clone(), 200), (z.clone(), 1)]);
        assert_eq!(d.oldest(b"a"), Some(191));
        assert_eq!(d.get(b"a", 200).unwrap(), msg(200, 40));
    }

    #[test]
    fn torn_tail_is_truncated_and_epoch_kept() {
        let t = TempDir::new("torn");
        let cfg = DiskLogConfig::new(&t.0);
        let s = Bytes::from_static(b"s");
        {
            let (mut d, _) = open(&cfg, UNBOUNDED, 8);
            for i in 1..=5 {
                d.append(&s, msg(i, 30), 0);
            }
            std::mem::forget(d);
        }
        let (_, path) = list_segments(&t.0).unwrap().pop().unwrap();
        let full = fs::metadata(&path).unwrap().len();
        // Half of a sixth record.
        let rec = encode_record(&s, &msg(6, 30));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&rec[..rec.len() / 2]).unwrap();
        drop(f);
        let (mut d, info) = open(&cfg, UNBOUNDED, 9);
        assert!(info.resumed);
        assert_eq!(info.epoch, 8);
        assert_eq!(info.truncated_bytes, (rec.len() / 2) as u64);
        assert_eq!(info.streams, vec![(s.clone(), 5)]);
        assert_eq!(fs::metadata(&path).unwrap().len(), full);
        // Appending continues cleanly after the cut.
        d.append(&s, msg(6, 30), 0);
        drop(d);
        let (d, info) = open(&cfg, UNBOUNDED, 9);
        assert_eq!(info.records, 6);
        assert_eq!(d.get(b"s", 6).unwrap(), msg(6, 30));
    }

    #[test]
    fn corrupted_record_ends_valid_prefix() {
        let t = TempDir::new("crc");
        let cfg = DiskLogConfig::new(&t.0);
        let s = Bytes::from_static(b"s");
        {
            let (mut d, _) = open(&cfg, UNBOUNDED, 8);
            for i in 1..=5 {
                d.append(&s, msg(i, 30), 0);
            }
            std::mem::forget(d);
        }
        let (_, path) = list_segments(&t.0).unwrap().pop().unwrap();
        let mut buf = fs::read(&path).unwrap();
        let rec_len = encode_record(&s, &msg(1, 30)).len();
        // Flip a payload byte of record 3.
        buf[SEG_HEADER as usize + 2 * rec_len + 20] ^= 0xff;
        fs::write(&path, &buf).unwrap();

        // The scan keeps the valid prefix (records 1, 2) and reports damage ...
        let mut d = DiskStore {
            dir: t.0.clone(),
            config: cfg.clone(),
            limits: UNBOUNDED,
            meta: Meta {
                id: ID,
                epoch: 8,
                clean: false,
                boot: Vec::new(),
                streams: BTreeMap::new(),
            },
            epoch: 8,
            segments: VecDeque::new(),
            entries: VecDeque::new(),
            base: 0,
            index: HashMap::new(),
            newest: BTreeMap::new(),
            bytes: 0,
            last_sync_ms: 0,
            errors: 0,
        };
        let (damaged, truncated) = d.scan().unwrap();
        assert!(damaged);
        assert_eq!(truncated, 3 * rec_len as u64);
        assert_eq!(d.len(), 2);
        assert_eq!(d.get(b"s", 2).unwrap(), msg(2, 30));
        assert!(d.get(b"s", 3).is_none());
        std::mem::forget(d);

        // ... so open starts a new epoch on an empty log (records 3..5 may have been sent).
        fs::write(&path, &buf).unwrap();
        let (d, info) = open(&cfg, UNBOUNDED, 5);
        assert!(!info.resumed);
        assert_eq!(info.epoch, 9); // max(last + 1, fresh)
        assert_eq!(info.new_epoch_reason, Some("damaged log"));
        assert!(d.is_empty());
        assert!(d.newest_seqs().is_empty());
    }

    #[test]
    fn garbage_files_never_panic() {
        let t = TempDir::new("garbage");
        let cfg = DiskLogConfig::new(&t.0);
        {
            let (mut d, _) = open(&cfg, UNBOUNDED, 8);
            for i in 1..=3 {
                d.append(&Bytes::from_static(b"s"), msg(i, 3), 0);
            }
            std::mem::forget(d);
        }
        let (_, path) = list_segments(&t.0).unwrap().pop().unwrap();
        let orig = fs::read(&path).unwrap();
        let mut x = 0x1234_5678u32;
        for round in 0..200 {
            let mut b = orig.clone();
            for _ in 0..1 + round % 4 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = x as usize % b.len();
                b[i] = (x >> 8) as u8;
            }
            if round % 3 == 0 {
                b.truncate(x as usize % b.len());
            }
            fs::write(&path, &b).unwrap();
            let _ = DiskStore::open(&cfg, UNBOUNDED, None, ID, 8, 0);
            // Restore the fixture (open may have wiped or truncated it).
            let meta = Meta {
                id: ID,
                epoch: 8,
                clean: false,
                boot: boot_id(),
                streams: BTreeMap::new(),
            };
            write_meta(&t.0, &meta).unwrap();
            for (_, p) in list_segments(&t.0).unwrap() {
                fs::remove_file(p).unwrap();
            }
            fs::write(&path, &orig).unwrap();
        }
        // A corrupted meta file is an error, not a panic.
        fs::write(t.0.join("meta"), b"nonsense").unwrap();
        assert!(DiskStore::open(&cfg, UNBOUNDED, None, ID, 8, 0).is_err());
    }

    #[test]
    fn unclean_shutdown_on_another_boot_starts_new_epoch() {
        let t = TempDir::new("boot");
        let cfg = DiskLogConfig::new(&t.0);
        {
            let (mut d, _) = open(&cfg, UNBOUNDED, 8);
            d.append(&Bytes::from_static(b"s"), msg(1, 3), 0);
            std::mem::forget(d);
        }
        let mut m = Meta::decode(&fs::read(t.0.join("meta")).unwrap()).unwrap();
        m.boot = b"another boot".to_vec();
        write_meta(&t.0, &m).unwrap();
        let (_, info) = open(&cfg, UNBOUNDED, 100);
        assert!(!info.resumed);
        assert_eq!(info.epoch, 100);
        // A clean shutdown (drop) on another boot resumes.
        let mut m = Meta::decode(&fs::read(t.0.join("meta")).unwrap()).unwrap();
        assert!(m.clean);
        m.boot = b"another boot".to_vec();
        write_meta(&t.0, &m).unwrap();
        let (_, info) = open(&cfg, UNBOUNDED, 200);
        assert!(info.resumed);
        assert_eq!(info.epoch, 100);
    }
}
