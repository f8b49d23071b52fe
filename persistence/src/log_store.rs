//! The default event journal of a single node: one append-only file of checksummed
//! records, indexed in memory.
//!
//! Why not sled (still here: cluster nodes keep their journal and consensus logs in it):
//! an event journal only appends and reads back by entity or by shard offset, and sled's
//! general B-tree made each append two tree inserts, node copies and splits, and work for
//! its own log threads; an in-memory store in sled's place nearly tripled durable checkout
//! (docs/benchmarks.md): storage was most of the node's work. Here an append is a copy
//! to the end of a buffer under a short lock, a flush is one positioned write of that
//! buffer and one `fdatasync`, and a read is a positioned read of the records the index
//! names (or a copy from the buffer).
//!
//! The file, `events.log` in the store's directory (integers big-endian, `str` is
//! `len u16 | utf-8`, `events` as [`crate::envelope::encode_events`] writes them):
//!
//! ```text
//! header  "EMJOURN1" | shards u32 | 0u32
//! record  len u32 | crc32 u32 | body          (the checksum covers the body)
//! body    1u8 | shard u32 | first_offset u64 | first_seq u64 | entity str | events
//!         2u8 | shard u32 | entity str | snapshot
//!         3u8 | shard u32 | consumer str | offset u64
//! ```
//!
//! Recovery: opening reads the file front to back and rebuilds the index. Records are
//! written in order and a flush makes everything written before it durable, so what a
//! crash can leave unfinished or lose (the buffer of a killed process) is the tail
//! written after the last flush, which was never acknowledged: the first record cut short
//! or failing its checksum ends the journal, and the file is cut there. A record that passes its checksum but does not fit the journal
//! (an offset or sequence number out of order) is corruption, and the store refuses to
//! open rather than guess.
//!
//! Reserve: a thread of the store keeps the file written with zeros some way past its
//! last record (`StoreOptions::reserve`, 8 MiB by default). An `fdatasync` of records
//! written over zeros already on disk changes no metadata (the file's size and blocks
//! stay as they are), so it is one device write instead of a write and a metadata
//! update (a commit of ext4's journal, or without one, as on the dev host, a write of the
//! inode): fdatasync is faster, and durable writes with it (the figures are in
//! docs/benchmarks.md). At open, zeros end the journal like a torn record (no record is
//! empty); what follows the last whole record must be all zeros, or it is a crash's
//! unfinished tail and is cut off, so that no stale bytes lie ahead of new records.
//!
//! A failed write or `fdatasync` stops the store: every later write fails until the node
//! restarts and recovery reads what the file really holds (after a failed `fsync` the
//! page cache cannot be trusted to be on disk).
//!
//! Costs: the index keeps 16 bytes per event, 24 per append and an entry per entity in
//! memory, and opening reads the whole file. Snapshots and offsets replaced by newer ones
//! stay in the file (there is no compaction yet; they are a small share of it). The
//! reserve takes up to its size in zeros on disk, and is read once at open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::envelope::{
    decode_events, encode_events, put_str, EventEnvelope, NewEvent, Reader, Snapshot,
};
use crate::error::StoreError;
use crate::event_store::{check_shard, EventStore, ShardEvent, ShardId, ShardPage};
use crate::StoreOptions;

/// The journal's file in the store's directory.
pub const LOG_FILE: &str = "events.log";
const MAGIC: &[u8; 8] = b"EMJOURN1";
const FILE_HEADER: u64 = 16;
const RECORD_HEADER: usize = 8;
/// Larger records are refused when written, and read as a torn tail at open.
const MAX_RECORD: usize = 64 << 20;
/// [`StoreOptions::reserve`] unless set otherwise.
pub const DEFAULT_RESERVE: u64 = 8 << 20;
/// Zeros written to the reserve at a time: a flush running meanwhile may have to write
/// them out with its records, so few at once.
const RESERVE_STEP: u64 = 256 << 10;

const APPEND: u8 = 1;
const SNAPSHOT: u8 = 2;
const OFFSET: u8 = 3;

/// Where a record is in the file: its header's position and its body's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    pos: u64,
    len: u32,
    /// For an append, [`kind_tag`] of its entity (0 until indexed): a reader of one kind
    /// skips the others' records without reading them (it fits in `Loc`'s padding).
    kind: u32,
}

/// A hash of the kind of entity key `entity` (`kind/id`): what is up to the first `/`.
fn kind_tag(entity: &str) -> u32 {
    let kind = entity.find('/').map_or(entity, |i| &entity[..=i]);
    // FNV-1a: stable, and no key is needed (equal kinds must give equal tags).
    kind.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// The tag every entity key starting with `prefix` has, if `prefix` names one kind.
fn prefix_tag(prefix: &str) -> Option<u32> {
    (prefix.find('/') == Some(prefix.len() - 1)).then(|| kind_tag(prefix))
}

/// One append of an entity: the sequence number of its first event, and its record.
struct Append {
    first_seq: u64,
    loc: Loc,
}

#[derive(Default)]
struct Entity {
    /// In sequence order.
    appends: Vec<Append>,
    last_seq: u64,
    snapshot: Option<Loc>,
}

#[derive(Default)]
struct ShardIndex {
    /// The record of every offset of the shard's log: offset `n` is `log[n - 1]`.
    log: Vec<Loc>,
    entities: HashMap<Box<str>, Entity>,
}

impl ShardIndex {
    fn entity(&mut self, id: &str) -> &mut Entity {
        // Look up before inserting: the common case must not allocate the key.
        if !self.entities.contains_key(id) {
            self.entities.insert(id.into(), Entity::default());
        }
        self.entities.get_mut(id).expect("just inserted")
    }

    fn appended(&mut self, entity: &str, first_seq: u64, count: u64, loc: Loc) {
        let loc = Loc {
            kind: kind_tag(entity),
            ..loc
        };
        self.log.extend(std::iter::repeat_n(loc, count as usize));
        let e = self.entity(entity);
        e.appends.push(Append { first_seq, loc });
        e.last_seq = first_seq + count - 1;
    }

    fn last_seq(&self, entity: &str) -> u64 {
        self.entities.get(entity).map_or(0, |e| e.last_seq)
    }

    /// The shard log from offset `from` (at least 1), at most `limit` offsets, as runs of
    /// consecutive offsets that share a record: `(record, first offset, last offset)`.
    fn runs(&self, from: u64, limit: usize) -> Vec<(Loc, u64, u64)> {
        let start = (from - 1).min(self.log.len() as u64) as usize;
        let end = start.saturating_add(limit).min(self.log.len());
        let mut runs: Vec<(Loc, u64, u64)> = Vec::new();
        for (i, loc) in self.log[start..end].iter().enumerate() {
            let offset = (start + i) as u64 + 1;
            match runs.last_mut() {
                Some(run) if run.0 == *loc => run.2 = offset,
                _ => runs.push((*loc, offset, offset)),
            }
        }
        runs
    }
}

/// The end of the file and whether writing has stopped, under one lock: writers take it
/// to claim where their record goes.
struct Tail {
    /// Where the next record goes: the end of the records in the file plus `pending`.
    end: u64,
    /// The file's length: zeros lie between the end of its records and it (the reserve).
    written: u64,
    failed: Option<String>,
    /// Records written since the last flush, not handed to the file yet: they go in one
    /// positioned write when flushed (a write per append was ~4% of a checkout's CPU).
    /// Always whole records, the first at `end - pending.len()`.
    pending: Vec<u8>,
}

/// Past this many bytes pending, a write hands them to the file without waiting for a flush.
const MAX_PENDING: usize = 1 << 20;

impl Tail {
    fn pending_from(&self) -> u64 {
        self.end - self.pending.len() as u64
    }

    /// Refuses to go on after a failed write or flush.
    fn running(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(why) => Err(StoreError::Storage(format!(
                "the journal stopped after an earlier failure: {why}"
            ))),
            None => Ok(()),
        }
    }
}

/// An append record's header fields and its events, still encoded.
struct AppendRecord<'a> {
    first_offset: u64,
    first_seq: u64,
    entity: &'a str,
    count: u64,
    events: &'a [u8],
}

fn parse_append(body: &[u8]) -> Result<AppendRecord<'_>, StoreError> {
    let mut r = Reader::new(body);
    if r.u8()? != APPEND {
        return Err(StoreError::Corrupt(
            "an offset points at a record that is not an append".into(),
        ));
    }
    r.u32()?; // the shard
    let first_offset = r.u64()?;
    let first_seq = r.u64()?;
    let entity = r.str_ref()?;
    let events = r.rest();
    let count = Reader::new(events).u32()? as u64;
    Ok(AppendRecord {
        first_offset,
        first_seq,
        entity,
        count,
        events,
    })
}

/// A record's bytes with room for its header, which [`LogStore::write`] fills in.
fn record(kind: u8, shard: ShardId, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEADER + 5 + capacity);
    out.extend_from_slice(&[0; RECORD_HEADER]);
    out.push(kind);
    out.extend_from_slice(&shard.to_be_bytes());
    out
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Storage(format!("{what} {}: {e}", path.display()))
}

/// An [`EventStore`] in one append-only file (see the module docs).
pub struct LogStore {
    file: File,
    path: PathBuf,
    shards: Vec<Mutex<ShardIndex>>,
    offsets: Mutex<HashMap<(Box<str>, ShardId), u64>>,
    tail: Arc<Mutex<Tail>>,
    /// The end of what the file holds (`tail`'s pending records excluded): a record
    /// before it is read from the file without taking `tail`'s lock.
    in_file: AtomicU64,
    reserve: u64,
    reserver: Option<Reserver>,
}

/// The thread that keeps the reserve zeroed (module docs, "Reserve"). Dropping `asks`
/// stops it.
struct Reserver {
    asks: SyncSender<()>,
    thread: JoinHandle<()>,
}

impl LogStore {
    /// Opens (or creates) the journal in `opts.path`, recovering its index from the file.
    pub fn open(opts: &StoreOptions) -> Result<Self, StoreError> {
        if opts.shards == 0 {
            return Err(StoreError::Invalid("shard count must be at least 1".into()));
        }
        std::fs::create_dir_all(&opts.path)
            .map_err(|e| io_error("cannot create", &opts.path, e))?;
        let path = opts.path.join(LOG_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("cannot open", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    path: opts.path.display().to_string(),
                })
            }
            Err(TryLockError::Error(e)) => return Err(io_error("cannot lock", &path, e)),
        }
        let len = file
            .metadata()
            .map_err(|e| io_error("cannot read", &path, e))?
            .len();
        let mut store = LogStore {
            shards: (0..opts.shards).map(|_| Mutex::default()).collect(),
            offsets: Mutex::default(),
            tail: Arc::new(Mutex::new(Tail {
                end: FILE_HEADER,
                written: FILE_HEADER,
                failed: None,
                pending: Vec::new(),
            })),
            in_file: AtomicU64::new(FILE_HEADER),
            reserve: opts.reserve,
            reserver: None,
            file,
            path,
        };
        if len < FILE_HEADER {
            // New, or its creation was cut short: it never held a record.
            store.create(opts.shards, &opts.path)?;
        } else {
            store.check_header(opts.shards)?;
            let end = store.replay(len)?;
            let mut written = len;
            if end < len && !store.zeros_between(end, len)? {
                tracing::warn!(
                    file = %store.path.display(),
                    kept = end,
                    dropped = len - end,
                    "the journal ends in a record left unfinished by a crash; cutting it off (it was never acknowledged)"
                );
                store
                    .file
                    .set_len(end)
                    .and_then(|()| store.file.sync_all())
                    .map_err(|e| io_error("cannot cut the torn tail of", &store.path, e))?;
                written = end;
            }
            let mut tail = store.tail.lock();
            (tail.end, tail.written) = (end, written);
            store.in_file.store(end, Ordering::Release);
        }
        if store.reserve > 0 {
            store.reserver = Some(store.start_reserver()?);
        }
        Ok(store)
    }

    /// True if the file holds only zeros from `from` to `to`: the unused reserve, not
    /// the torn tail of a crash.
    fn zeros_between(&self, from: u64, to: u64) -> Result<bool, StoreError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(buf.len() as u64) as usize;
            self.file
                .read_exact_at(&mut buf[..n], pos)
                .map_err(|e| io_error("cannot read", &self.path, e))?;
            if buf[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            pos += n as u64;
        }
        Ok(true)
    }

    /// Starts the thread that keeps the reserve zeroed, and asks it to fill the reserve.
    /// It writes through a file handle of its own: an `fdatasync` error is told to each
    /// handle that syncs, so one on its handle can never hide one from the flushes.
    fn start_reserver(&self) -> Result<Reserver, StoreError> {
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| io_error("cannot open", &self.path, e))?;
        let (asks, asked) = mpsc::sync_channel(1);
        let (tail, reserve, path) = (self.tail.clone(), self.reserve, self.path.clone());
        let thread = std::thread::Builder::new()
            .name("journal-reserve".into())
            .spawn(move || keep_reserve(&file, &tail, reserve, &asked, &path))
            .map_err(|e| io_error("cannot start the reserve thread of", &self.path, e))?;
        let _ = asks.try_send(());
        Ok(Reserver { asks, thread })
    }

    fn create(&self, shards: u32, dir: &Path) -> Result<(), StoreError> {
        let mut header = [0u8; FILE_HEADER as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&shards.to_be_bytes());
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(&header, 0))
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io_error("cannot create", &self.path, e))?;
        // The file's name must be durable too, or a crash could lose the whole journal.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("cannot sync the directory", dir, e))
    }

    fn check_header(&self, shards: u32) -> Result<(), StoreError> {
        let mut header = [0u8; FILE_HEADER as usize];
        self.file
            .read_exact_at(&mut header, 0)
            .map_err(|e| io_error("cannot read", &self.path, e))?;
        if &header[..8] != MAGIC {
            return Err(StoreError::Corrupt(format!(
                "{} is not an EcomMesh journal",
                self.path.display()
            )));
        }
        let stored = u32::from_be_bytes(header[8..12].try_into().expect("4 bytes"));
        if stored != shards {
            return Err(StoreError::ShardCountMismatch {
                stored,
                requested: shards,
            });
        }
        Ok(())
    }

    /// Rebuilds the index from the file; returns where the last whole record ends.
    fn replay(&self, len: u64) -> Result<u64, StoreError> {
        let mut reader = BufReader::with_capacity(1 << 20, &self.file);
        let read_err = |e| io_error("cannot read", &self.path, e);
        std::io::copy(&mut (&mut reader).take(FILE_HEADER), &mut std::io::sink())
            .map_err(read_err)?;
        let mut pos = FILE_HEADER;
        let mut body = Vec::new();
        let mut shards: Vec<ShardIndex> = (0..self.shards.len())
            .map(|_| ShardIndex::default())
            .collect();
        let mut offsets = HashMap::new();
        while len - pos >= RECORD_HEADER as u64 {
            let mut header = [0u8; RECORD_HEADER];
            reader.read_exact(&mut header).map_err(read_err)?;
            let body_len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_be_bytes(header[4..].try_into().expect("4 bytes"));
            let whole = RECORD_HEADER as u64 + body_len as u64;
            if body_len == 0 || body_len > MAX_RECORD || len - pos < whole {
                break;
            }
            body.resize(body_len, 0);
            reader.read_exact(&mut body).map_err(read_err)?;
            if crc32fast::hash(&body) != crc {
                break;
            }
            let loc = Loc {
                pos,
                len: body_len as u32,
                kind: 0,
            };
            self.index(&body, loc, &mut shards, &mut offsets)
                .map_err(|e| {
                    StoreError::Corrupt(format!("{} at byte {pos}: {e}", self.path.display()))
                })?;
            pos += whole;
        }
        for (slot, index) in self.shards.iter().zip(shards) {
            *slot.lock() = index;
        }
        *self.offsets.lock() = offsets;
        Ok(pos)
    }

    /// Adds one record read back at open to the index, checking that it fits.
    fn index(
        &self,
        body: &[u8],
        loc: Loc,
        shards: &mut [ShardIndex],
        offsets: &mut HashMap<(Box<str>, ShardId), u64>,
    ) -> Result<(), StoreError> {
        let mut r = Reader::new(body);
        let kind = r.u8()?;
        let shard = r.u32()?;
        let index = shards
            .get_mut(shard as usize)
            .ok_or_else(|| StoreError::Corrupt(format!("shard {shard} out of range")))?;
        match kind {
            APPEND => {
                let a = parse_append(body)?;
                let next_offset = index.log.len() as u64 + 1;
                let next_seq = index.last_seq(a.entity) + 1;
                if a.first_offset != next_offset || a.first_seq != next_seq || a.count == 0 {
                    return Err(StoreError::Corrupt(format!(
                        "append of {} at offset {} seq {} where offset {next_offset} seq {next_seq} was due",
                        a.entity, a.first_offset, a.first_seq
                    )));
                }
                index.appended(a.entity, a.first_seq, a.count, loc);
            }
            SNAPSHOT => {
                let entity = r.str_ref()?;
                index.entity(entity).snapshot = Some(loc);
            }
            OFFSET => {
                let consumer = r.str_ref()?;
                offsets.insert((consumer.into(), shard), r.u64()?);
            }
            other => return Err(StoreError::Corrupt(format!("unknown record kind {other}"))),
        }
        Ok(())
    }

    fn shard(&self, shard: ShardId) -> Result<&Mutex<ShardIndex>, StoreError> {
        check_shard(shard, self.shard_count())?;
        Ok(&self.shards[shard as usize])
    }

    /// Writes `record` (made by [`record`]) at the end of the log; returns where it went.
    /// It reaches the file with the next flush (or once enough is pending). The caller
    /// holds the lock of the index it will add the record to, so that the index and the
    /// file agree on the order of records.
    fn write(&self, mut record: Vec<u8>) -> Result<Loc, StoreError> {
        let len = record.len() - RECORD_HEADER;
        if len > MAX_RECORD {
            return Err(StoreError::Invalid(format!(
                "a record of {len} bytes is larger than the journal's limit of {MAX_RECORD}"
            )));
        }
        let crc = crc32fast::hash(&record[RECORD_HEADER..]);
        record[..4].copy_from_slice(&(len as u32).to_be_bytes());
        record[4..RECORD_HEADER].copy_from_slice(&crc.to_be_bytes());
        let mut tail = self.tail.lock();
        tail.running()?;
        let pos = tail.end;
        tail.pending.extend_from_slice(&record);
        tail.end += record.len() as u64;
        if tail.pending.len() > MAX_PENDING {
            self.write_out(&mut tail)?;
        }
        if tail.end + self.reserve / 2 > tail.written {
            if let Some(r) = &self.reserver {
                // Full: it has been asked already.
                let _ = r.asks.try_send(());
            }
        }
        Ok(Loc {
            pos,
            len: len as u32,
            kind: 0,
        })
    }

    /// Hands the pending records to the file, in one write. A failure stops the store:
    /// the records stay pending (readable) but never reach the file.
    fn write_out(&self, tail: &mut Tail) -> Result<(), StoreError> {
        tail.running()?;
        if tail.pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all_at(&tail.pending, tail.pending_from()) {
            let why = format!("write to {} failed: {e}", self.path.display());
            tail.failed = Some(why.clone());
            return Err(StoreError::Storage(why));
        }
        tail.pending.clear();
        tail.written = tail.written.max(tail.end);
        if tail.pending.capacity() > 4 * MAX_PENDING {
            tail.pending.shrink_to(MAX_PENDING);
        }
        self.in_file.store(tail.end, Ordering::Release);
        Ok(())
    }

    /// Copies the record at `pos` into `buf` if it is still pending; false if it is in the
    /// file (pending records are whole: a record is all in one or all in the other).
    fn copy_pending(&self, pos: u64, buf: &mut [u8]) -> Result<bool, StoreError> {
        let tail = self.tail.lock();
        let from = tail.pending_from();
        if pos < from {
            return Ok(false);
        }
        let at = (pos - from) as usize;
        let bytes = tail.pending.get(at..at + buf.len()).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "{}: no record of {} bytes at byte {pos}",
                self.path.display(),
                buf.len()
            ))
        })?;
        buf.copy_from_slice(bytes);
        Ok(true)
    }

    /// The body of the record at `loc`, checked against its header.
    fn read(&self, loc: Loc) -> Result<Vec<u8>, StoreError> {
        let mut buf = vec![0u8; RECORD_HEADER + loc.len as usize];
        let in_file = loc.pos + buf.len() as u64 <= self.in_file.load(Ordering::Acquire);
        if in_file || !self.copy_pending(loc.pos, &mut buf)? {
            self.file
                .read_exact_at(&mut buf, loc.pos)
                .map_err(|e| io_error("cannot read", &self.path, e))?;
        }
        let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes"));
        let crc = u32::from_be_bytes(buf[4..RECORD_HEADER].try_into().expect("4 bytes"));
        if len != loc.len || crc32fast::hash(&buf[RECORD_HEADER..]) != crc {
            return Err(StoreError::Corrupt(format!(
                "{}: the record at byte {} fails its checksum",
                self.path.display(),
                loc.pos
            )));
        }
        buf.drain(..RECORD_HEADER);
        Ok(buf)
    }

    /// The events of the log's offsets `first..=last`, all in the record at `loc`.
    fn events_of_run(
        &self,
        loc: Loc,
        first: u64,
        last: u64,
        entity_prefix: &str,
        out: &mut Vec<ShardEvent>,
    ) -> Result<(), StoreError> {
        let body = self.read(loc)?;
        let a = parse_append(&body)?;
        if !a.entity.starts_with(entity_prefix) {
            return Ok(());
        }
        let events = decode_events(a.events)?;
        for (i, event) in events.into_iter().enumerate() {
            let offset = a.first_offset + i as u64;
            if (first..=last).contains(&offset) {
                out.push(ShardEvent { offset, event });
            }
        }
        Ok(())
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        // Callers flush what they acknowledge; this only spares a clean stop a torn tail.
        let _ = self.write_out(&mut self.tail.lock());
        let _ = self.file.sync_data();
        if let Some(Reserver { asks, thread }) = self.reserver.take() {
            drop(asks);
            let _ = thread.join();
        }
    }
}

/// The reserve thread: whenever asked, writes zeros past the end until `reserve` bytes
/// are ahead of it, a step at a time, each made durable. A failure ends it with a
/// warning: records then extend the file themselves, as without a reserve.
fn keep_reserve(file: &File, tail: &Mutex<Tail>, reserve: u64, asked: &Receiver<()>, path: &Path) {
    let zeros = vec![0u8; RESERVE_STEP.min(reserve) as usize];
    while asked.recv().is_ok() {
        loop {
            {
                let mut t = tail.lock();
                if t.running().is_err() || t.written >= t.end + reserve {
                    break;
                }
                // Under the lock: records are written only below `end`, and none goes
                // past it before these zeros are written, so no record is overwritten.
                let at = t.written.max(t.end);
                if let Err(e) = file.write_all_at(&zeros, at) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot extend the journal's reserve; going on without it");
                    return;
                }
                t.written = at + zeros.len() as u64;
            }
            if let Err(e) = file.sync_data() {
                tracing::warn!(file = %path.display(), error = %e, "cannot sync the journal's reserve; going on without it");
                return;
            }
            if let Err(TryRecvError::Disconnected) = asked.try_recv() {
                return;
            }
        }
    }
}

impl EventStore for LogStore {
    fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    fn append(
        &self,
        shard: ShardId,
        entity: &str,
        expected_seq: u64,
        events: &[NewEvent],
    ) -> Result<u64, StoreError> {
        let index = self.shard(shard)?;
        if events.is_empty() {
            return Err(StoreError::Invalid(
                "an append needs at least one event".into(),
            ));
        }
        let mut index = index.lock();
        let actual = index.last_seq(entity);
        if actual != expected_seq {
            return Err(StoreError::Conflict {
                entity: entity.to_owned(),
                expected: expected_seq,
                actual,
            });
        }
        let first_offset = index.log.len() as u64 + 1;
        let mut rec = record(APPEND, shard, 64 + entity.len());
        rec.extend_from_slice(&first_offset.to_be_bytes());
        rec.extend_from_slice(&(expected_seq + 1).to_be_bytes());
        put_str(&mut rec, entity)?;
        let seq = encode_events(&mut rec, entity, expected_seq, events)?;
        let loc = self.write(rec)?;
        index.appended(entity, expected_seq + 1, events.len() as u64, loc);
        Ok(seq)
    }

    fn read_entity(
        &self,
        shard: ShardId,
        entity: &str,
        after_seq: u64,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let locs: Vec<Loc> = {
            let index = self.shard(shard)?.lock();
            let Some(e) = index
                .entities
                .get(entity)
                .filter(|e| e.last_seq > after_seq)
            else {
                return Ok(Vec::new());
            };
            // From the append that holds `after_seq + 1` on.
            let holding = e
                .appends
                .partition_point(|a| a.first_seq <= after_seq.saturating_add(1));
            e.appends[holding.saturating_sub(1)..]
                .iter()
                .map(|a| a.loc)
                .collect()
        };
        let mut out = Vec::new();
        for loc in locs {
            let body = self.read(loc)?;
            for env in decode_events(parse_append(&body)?.events)? {
                if env.seq > after_seq {
                    out.push(env);
                }
            }
        }
        Ok(out)
    }

    fn last_seq(&self, shard: ShardId, entity: &str) -> Result<u64, StoreError> {
        Ok(self.shard(shard)?.lock().last_seq(entity))
    }

    fn save_snapshot(
        &self,
        shard: ShardId,
        entity: &str,
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let mut index = self.shard(shard)?.lock();
        let encoded = snapshot.encode();
        let mut rec = record(SNAPSHOT, shard, 2 + entity.len() + encoded.len());
        put_str(&mut rec, entity)?;
        rec.extend_from_slice(&encoded);
        let loc = self.write(rec)?;
        index.entity(entity).snapshot = Some(loc);
        Ok(())
    }

    fn load_snapshot(&self, shard: ShardId, entity: &str) -> Result<Option<Snapshot>, StoreError> {
        let loc = self
            .shard(shard)?
            .lock()
            .entities
            .get(entity)
            .and_then(|e| e.snapshot);
        let Some(loc) = loc else { return Ok(None) };
        let body = self.read(loc)?;
        let mut r = Reader::new(&body);
        if r.u8()? != SNAPSHOT {
            return Err(StoreError::Corrupt(format!(
                "the snapshot of {entity} points at another kind of record"
            )));
        }
        r.u32()?;
        r.str_ref()?;
        Ok(Some(Snapshot::decode(r.rest())?))
    }

    fn read_shard(
        &self,
        shard: ShardId,
        from_offset: u64,
        limit: usize,
    ) -> Result<Vec<ShardEvent>, StoreError> {
        let runs = self.shard(shard)?.lock().runs(from_offset.max(1), limit);
        let mut out = Vec::new();
        for (loc, first, last) in runs {
            self.events_of_run(loc, first, last, "", &mut out)?;
        }
        Ok(out)
    }

    fn read_shard_of(
        &self,
        shard: ShardId,
        from_offset: u64,
        limit: usize,
        entity_prefix: &str,
    ) -> Result<ShardPage, StoreError> {
        let from = from_offset.max(1);
        let runs = self.shard(shard)?.lock().runs(from, limit);
        let wanted = prefix_tag(entity_prefix);
        let mut page = ShardPage::default();
        for (loc, first, last) in runs {
            if wanted.is_none_or(|kind| kind == loc.kind) {
                self.events_of_run(loc, first, last, entity_prefix, &mut page.events)?;
            }
            page.last_offset = last;
            page.looked_at = (last + 1 - from) as usize;
        }
        Ok(page)
    }

    fn save_offset(&self, consumer: &str, shard: ShardId, offset: u64) -> Result<(), StoreError> {
        check_shard(shard, self.shard_count())?;
        let mut offsets = self.offsets.lock();
        let mut rec = record(OFFSET, shard, 10 + consumer.len());
        put_str(&mut rec, consumer)?;
        rec.extend_from_slice(&offset.to_be_bytes());
        self.write(rec)?;
        offsets.insert((consumer.into(), shard), offset);
        Ok(())
    }

    fn load_offset(&self, consumer: &str, shard: ShardId) -> Result<u64, StoreError> {
        check_shard(shard, self.shard_count())?;
        Ok(self
            .offsets
            .lock()
            .get(&(Box::<str>::from(consumer), shard))
            .copied()
            .unwrap_or(0))
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Under the lock: appends wait for one write of the batch, not for the sync.
        self.write_out(&mut self.tail.lock())?;
        self.file.sync_data().map_err(|e| {
            let why = format!("fdatasync of {} failed: {e}", self.path.display());
            self.tail.lock().failed = Some(why.clone());
            StoreError::Storage(why)
        })
    }

    /// Every record goes to the one file's end under one lock, so the file's order is the
    /// order writes returned in, and open cuts the file at its first torn record.
    fn keeps_write_order(&self) -> bool {
        true
    }

    fn entities(&self, shard: ShardId) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self
            .shard(shard)?
            .lock()
            .entities
            .iter()
            .filter(|(_, e)| e.last_seq > 0)
            .map(|(id, _)| id.to_string())
            .collect();
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::event;
    use std::sync::Arc;

    /// Without a reserve: the tests below read the file's length as its records' end.
    fn open(dir: &Path, shards: u32) -> Result<LogStore, StoreError> {
        LogStore::open(&StoreOptions {
            reserve: 0,
            ..StoreOptions::new(dir, shards)
        })
    }

    #[test]
    fn passes_the_shared_suite() {
        let dirs = Mutex::new(Vec::new());
        crate::testing::suite(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = Arc::new(open(dir.path(), 4).unwrap()) as Arc<dyn EventStore>;
            dirs.lock().push(dir);
            store
        });
    }

    #[test]
    fn everything_comes_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = open(dir.path(), 2).unwrap();
            s.append(0, "a", 0, &[event("x", 1), event("y", 2)])
                .unwrap();
            s.append(1, "b", 0, &[event("x", 3)]).unwrap();
            s.append(0, "a", 2, &[event("z", 4)]).unwrap();
            let snap = Snapshot {
                seq: 2,
                schema_version: 1,
                payload: vec![7; 5],
            };
            s.save_snapshot(0, "a", &snap).unwrap();
            s.save_offset("p", 0, 2).unwrap();
            s.save_offset("p", 0, 3).unwrap();
            s.flush().unwrap();
        }
        let s = open(dir.path(), 2).unwrap();
        assert_eq!(s.last_seq(0, "a").unwrap(), 3);
        assert_eq!(
            s.read_entity(0, "a", 1)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            [2, 3]
        );
        assert_eq!(
            s.load_snapshot(0, "a").unwrap().unwrap().payload,
            vec![7; 5]
        );
        assert_eq!(s.load_offset("p", 0).unwrap(), 3);
        assert_eq!(s.read_shard(0, 1, 10).unwrap().len(), 3);
        assert_eq!(s.entities(1).unwrap(), ["b"]);
        // And it goes on where it stopped.
        assert_eq!(s.append(0, "a", 3, &[event("x", 5)]).unwrap(), 4);
        assert_eq!(s.read_shard(0, 4, 10).unwrap()[0].offset, 4);
    }

    #[test]
    fn writes_reach_the_file_in_one_go_at_a_flush_and_are_readable_before() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), 2).unwrap();
        let file_len = || std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len();
        let empty = file_len();
        s.append(0, "a", 0, &[event("x", 1)]).unwrap();
        s.append(1, "b", 0, &[event("y", 2), event("z", 3)])
            .unwrap();
        s.save_offset("p", 0, 1).unwrap();
        assert_eq!(file_len(), empty, "nothing written before the flush");
        assert_eq!(s.read_entity(1, "b", 0).unwrap().len(), 2);
        assert_eq!(s.read_shard(0, 1, 10).unwrap()[0].event.entity_id, "a");
        s.flush().unwrap();
        let flushed = file_len();
        assert!(flushed > empty);
        assert_eq!(
            s.read_entity(1, "b", 0).unwrap().len(),
            2,
            "now from the file"
        );
        // A record pending after others reached the file is found where it is.
        s.append(0, "a", 1, &[event("w", 4)]).unwrap();
        assert_eq!(s.read_entity(0, "a", 0).unwrap().len(), 2);
        // Past the limit, a write does not wait for a flush.
        let big = NewEvent {
            payload: vec![1; MAX_PENDING],
            ..event("big", 5)
        };
        s.append(1, "c", 0, &[big]).unwrap();
        assert!(file_len() > flushed + MAX_PENDING as u64);
        assert_eq!(
            s.read_entity(1, "c", 0).unwrap()[0].payload.len(),
            MAX_PENDING
        );
        drop(s);
        let s = open(dir.path(), 2).unwrap();
        assert_eq!(
            s.last_seq(0, "a").unwrap(),
            2,
            "a clean stop writes what is pending"
        );
        assert_eq!(s.load_offset("p", 0).unwrap(), 1);
    }

    #[test]
    fn a_reader_of_one_kind_never_reads_the_records_of_another() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), 1).unwrap();
        s.append(0, "product/1", 0, &[event("x", 1)]).unwrap();
        s.append(0, "order/1", 0, &[event("x", 2)]).unwrap();
        s.flush().unwrap();
        // Spoil the product's record behind the store's back: only reading it can tell.
        let product = s.shards[0].lock().log[0];
        let mut byte = [0u8];
        s.file
            .read_exact_at(&mut byte, product.pos + RECORD_HEADER as u64)
            .unwrap();
        s.file
            .write_all_at(&[byte[0] ^ 0xff], product.pos + RECORD_HEADER as u64)
            .unwrap();
        let orders = s.read_shard_of(0, 1, 10, "order/").unwrap();
        assert_eq!((orders.events.len(), orders.looked_at), (1, 2));
        assert!(matches!(
            s.read_shard_of(0, 1, 10, "product/"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(LOG_FILE);
        let whole = {
            let s = open(dir.path(), 1).unwrap();
            s.append(0, "a", 0, &[event("x", 1)]).unwrap();
            s.flush().unwrap();
            let whole = std::fs::metadata(&file).unwrap().len();
            s.append(0, "a", 1, &[event("x", 2)]).unwrap();
            whole
        };
        let full = std::fs::metadata(&file).unwrap().len();
        // Every cut inside the second record, and a flipped byte in it, read as its loss.
        for cut in whole..full {
            let copy = tempfile::tempdir().unwrap();
            let bytes = std::fs::read(&file).unwrap();
            std::fs::write(copy.path().join(LOG_FILE), &bytes[..cut as usize]).unwrap();
            let s = open(copy.path(), 1).unwrap();
            assert_eq!(s.last_seq(0, "a").unwrap(), 1, "cut at {cut}");
            drop(s);
            // Cut off, but for zeros, which read as the end (a reserve).
            let kept = std::fs::read(copy.path().join(LOG_FILE)).unwrap();
            assert_eq!(kept[..whole as usize], bytes[..whole as usize]);
            assert!(
                kept[whole as usize..].iter().all(|&b| b == 0),
                "cut at {cut}: bytes of the torn record were left"
            );
        }
        let mut bytes = std::fs::read(&file).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let s = open(dir.path(), 1).unwrap();
        assert_eq!(s.last_seq(0, "a").unwrap(), 1);
        // The next append takes the lost one's place.
        assert_eq!(s.append(0, "a", 1, &[event("y", 3)]).unwrap(), 2);
        drop(s);
        let s = open(dir.path(), 1).unwrap();
        assert_eq!(s.read_entity(0, "a", 1).unwrap()[0].event_type, "y");
    }

    fn with_reserve(dir: &Path, reserve: u64) -> LogStore {
        LogStore::open(&StoreOptions {
            reserve,
            ..StoreOptions::new(dir, 1)
        })
        .unwrap()
    }

    /// Waits for the reserve thread to make `file` at least `len` bytes long.
    fn grows_to(file: &Path, len: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(file).unwrap().len() < len {
            assert!(
                std::time::Instant::now() < deadline,
                "the reserve never reached {len} bytes"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn the_reserve_stays_zeroed_ahead_of_the_records_and_is_kept_at_open() {
        const RESERVE: u64 = 64 << 10;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(LOG_FILE);
        let s = with_reserve(dir.path(), RESERVE);
        grows_to(&file, FILE_HEADER + RESERVE);
        // Twice the reserve's worth of records: they land in it, and it moves on.
        let mut seq = 0;
        while s.tail.lock().end < FILE_HEADER + 2 * RESERVE {
            seq = s.append(0, "a", seq, &[event("x", seq as u8)]).unwrap();
        }
        s.flush().unwrap();
        let end = s.tail.lock().end;
        // It is filled again whenever less than half of it is left.
        grows_to(&file, end + RESERVE / 2);
        drop(s);
        let bytes = std::fs::read(&file).unwrap();
        assert!(bytes[end as usize..].iter().all(|&b| b == 0));
        // Reopening keeps every record and the reserve; appends go on after the last record.
        let s = with_reserve(dir.path(), RESERVE);
        assert_eq!(s.last_seq(0, "a").unwrap(), seq);
        assert!(std::fs::metadata(&file).unwrap().len() >= bytes.len() as u64);
        assert_eq!(s.append(0, "a", seq, &[event("y", 1)]).unwrap(), seq + 1);
        s.flush().unwrap();
        drop(s);
        let s = with_reserve(dir.path(), RESERVE);
        let last = s.read_entity(0, "a", seq).unwrap();
        assert_eq!((last.len(), last[0].event_type.as_str()), (1, "y"));
        assert_eq!(s.read_entity(0, "a", 0).unwrap().len() as u64, seq + 1);
    }

    #[test]
    fn bytes_a_crash_left_in_the_reserve_are_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(LOG_FILE);
        let s = with_reserve(dir.path(), 64 << 10);
        s.append(0, "a", 0, &[event("x", 1)]).unwrap();
        s.flush().unwrap();
        let end = s.tail.lock().end;
        drop(s);
        // A later page of an unflushed write reached the disk, the page before it did not.
        let f = OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&[7; 100], end + 5000).unwrap();
        drop(f);
        let s = with_reserve(dir.path(), 0);
        assert_eq!(s.last_seq(0, "a").unwrap(), 1);
        assert_eq!(std::fs::metadata(&file).unwrap().len(), end);
        assert_eq!(s.append(0, "a", 1, &[event("y", 2)]).unwrap(), 2);
        s.flush().unwrap();
        drop(s);
        let s = with_reserve(dir.path(), 64 << 10);
        assert_eq!(s.read_entity(0, "a", 0).unwrap().len(), 2);
    }

    #[test]
    fn a_record_out_of_order_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(LOG_FILE);
        {
            let s = open(dir.path(), 1).unwrap();
            s.append(0, "a", 0, &[event("x", 1)]).unwrap();
        }
        // The same (checksummed, whole) record twice: seq 1 again where 2 is due.
        let mut bytes = std::fs::read(&file).unwrap();
        let record = bytes[FILE_HEADER as usize..].to_vec();
        bytes.extend_from_slice(&record);
        std::fs::write(&file, &bytes).unwrap();
        assert!(matches!(open(dir.path(), 1), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn the_shard_count_is_fixed_and_the_directory_held_by_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), 4).unwrap();
        assert!(matches!(
            open(dir.path(), 4),
            Err(StoreError::Locked { .. })
        ));
        drop(s);
        assert_eq!(
            open(dir.path(), 8).err(),
            Some(StoreError::ShardCountMismatch {
                stored: 4,
                requested: 8
            })
        );
        std::fs::write(dir.path().join(LOG_FILE), b"something else entirely").unwrap();
        assert!(matches!(open(dir.path(), 4), Err(StoreError::Corrupt(_))));
    }
}
