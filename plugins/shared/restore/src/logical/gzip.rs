//! The receive of a logical restore: every gzip member, decompressed and verified.
//!
//! The stream is decompressed (flate2) into the staging file while a second thread writes it
//! and, for a parallel apply, builds the dump's plan from the same bytes. A gzip file may hold
//! several members one after the other (`gzip -c a >> dump.gz`, pigz, a dump compressed in
//! pieces), which `gunzip -c` prints whole: so are they staged, each one's trailer (CRC-32
//! and length) checked ([`Members`]). After the last member, up to
//! [`MAX_PADDING`](crate::receive::MAX_PADDING) stale bytes are accepted
//! (replication-manager's sender pads its last write), more are refused. A stream cut short
//! or a damaged member fails here, before anything was applied.

use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::sync::mpsc;
use std::time::Instant;

use crate::logical::plan::{DumpPlan, PlanBuilder};
use crate::receive::{drain_padding, write_error, CountingReader};
use dbjobs_kit::copy::{fill, human_bytes, CopyError, COPY_BUFFER, PROGRESS_INTERVAL};
use dbjobs_sdk::JobError;

/// What phase 1 got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedDump {
    /// Bytes of the gzip members (first header to last trailer).
    pub compressed: u64,
    /// How many gzip members they were.
    pub members: u64,
    /// Bytes of SQL it decompressed to.
    pub sql_bytes: u64,
    /// Stale bytes after the last member, accepted as the sender's padding.
    pub padding: u64,
}

/// What [`decompress_verified`] staged.
pub struct Staged<W> {
    /// What was received.
    pub received: ReceivedDump,
    /// The writer the SQL went to, flushed.
    pub out: W,
    /// The plan of the SQL, when a [`PlanBuilder`] was given: the plan, or why the dump
    /// cannot be applied in parallel.
    pub plan: Option<Result<DumpPlan, String>>,
}

/// Decompressed buffers of [`COPY_BUFFER`] bytes in flight between the thread that
/// decompresses and the one that writes: enough to smooth out the two threads' pace, little
/// enough (4 MiB) to keep the memory of a receive bounded.
const IN_FLIGHT: usize = 4;

/// Decompress the gzip members of `input` into `out`, verifying each trailer, then accept at
/// most [`MAX_PADDING`](crate::receive::MAX_PADDING) stale bytes after it. `progress` gets
/// the SQL bytes decompressed so far.
///
/// The calling thread reads and decompresses (it alone calls `progress` and, through
/// `input`, the host's cancellation check); a second thread writes the SQL to `out` and feeds
/// it to `plan`, so the plan of a parallel apply costs no read of the staged file and neither
/// the writing nor the plan slows the decompression down. Filled buffers go to the writer and
/// come back to be filled again, four buffers of 1 MiB in all, so memory stays bounded. A
/// failing write (a full disk, `out`'s own free-space check) stops the receive; the amount it
/// reports is what was decompressed by then, up to those 4 MiB more than was written.
pub fn decompress_verified<R: Read, W: Write + Send>(
    input: CountingReader<'_, R>,
    out: W,
    plan: Option<PlanBuilder>,
    progress: impl FnMut(u64),
) -> Result<Staged<W>, JobError> {
    let (full_tx, full_rx) = mpsc::channel();
    let (free_tx, free_rx) = mpsc::channel();
    for _ in 0..IN_FLIGHT {
        // Cannot fail: `free_rx` is alive.
        let _ = free_tx.send(Ok(vec![0u8; COPY_BUFFER]));
    }
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || stage(full_rx, free_tx, out, plan));
        let received = inflate_verified(input, |gz| pump(gz, full_tx, &free_rx, progress));
        // `pump` returned: the writer has ended or, on a read error, ends once it has
        // written what it was handed.
        let (out, plan) = writer.join().map_err(|_| {
            JobError::internal("the thread writing the staging file stopped unexpectedly")
        })?;
        Ok(Staged {
            received: received?,
            out,
            plan: plan.map(PlanBuilder::finish),
        })
    })
}

/// The writing side of [`decompress_verified`]: write each filled buffer to `out`, feed it to
/// `plan`, and hand it back on `free`; at the end, flush. A write error goes back on `free`
/// instead and ends the thread, which the decompressing side then reports.
fn stage<W: Write>(
    full: mpsc::Receiver<(Vec<u8>, usize)>,
    free: mpsc::Sender<io::Result<Vec<u8>>>,
    mut out: W,
    mut plan: Option<PlanBuilder>,
) -> (W, Option<PlanBuilder>) {
    // A failed send means the decompressing side stopped (a read error): nothing to tell.
    for (buf, n) in full {
        if let Err(e) = out.write_all(&buf[..n]) {
            let _ = free.send(Err(e));
            return (out, plan);
        }
        if let Some(p) = plan.as_mut() {
            p.feed(&buf[..n]);
        }
        let _ = free.send(Ok(buf));
    }
    if let Err(e) = out.flush() {
        let _ = free.send(Err(e));
    }
    (out, plan)
}

/// The decompressing side of [`decompress_verified`]: fill the buffers that come back on
/// `free` from `gz` and send them to the writer on `full`, until the end of `gz`; then wait
/// for the writer to finish. Returns the SQL bytes, or the first read or write error.
fn pump(
    gz: &mut dyn Read,
    full: mpsc::Sender<(Vec<u8>, usize)>,
    free: &mpsc::Receiver<io::Result<Vec<u8>>>,
    mut progress: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let mut total = 0u64;
    let mut last = Instant::now();
    // Ends at the end of `gz`, or once the writer stopped: at the error it sends back, or at
    // the end of `free` if it panicked (which `decompress_verified` reports).
    while let Ok(back) = free.recv() {
        let mut buf = back.map_err(|error| CopyError::Write {
            after: total,
            error,
        })?;
        let n = fill(gz, &mut buf).map_err(|(n, error)| CopyError::Read {
            after: total + n as u64,
            error,
        })?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if full.send((buf, n)).is_err() {
            break; // the writer stopped: its error is on `free`
        }
        if last.elapsed() >= PROGRESS_INTERVAL {
            last = Instant::now();
            progress(total);
        }
    }
    drop(full); // the end: the writer flushes and ends
    match free.iter().find_map(Result::err) {
        Some(error) => Err(CopyError::Write {
            after: total,
            error,
        }),
        None => Ok(total),
    }
}

/// The first bytes of a gzip member: ID1, ID2 and the deflate method. Stale padding after
/// the last member is a copy of compressed bytes, which start like this once in 16 million.
const MEMBER_START: [u8; 3] = [0x1f, 0x8b, 0x08];

/// The gzip members of a stream read one after the other as one stream of SQL. flate2
/// checks each member's trailer; after a member, a next one starts only where
/// [`MEMBER_START`] follows, so the sender's stale padding ends the members (flate2's
/// `MultiGzDecoder` would take it for a damaged member).
struct Members<'a, R: BufRead> {
    state: Member<'a, R>,
    /// Members begun so far.
    count: u64,
}

/// The decoder of one member, reading first the bytes peeked to find it.
type MemberDecoder<'a, R> = flate2::bufread::GzDecoder<io::Chain<Cursor<Vec<u8>>, &'a mut R>>;

/// Where [`Members`] is.
enum Member<'a, R: BufRead> {
    /// Inflating a member whose first bytes were peeked into the cursor.
    Inflating(Box<MemberDecoder<'a, R>>),
    /// After the last member: `peeked` bytes that follow it were read already.
    Ended { peeked: u64 },
    /// Between the two (only while a read runs, or after it failed).
    Moved,
}

impl<'a, R: BufRead> Members<'a, R> {
    fn new(input: &'a mut R) -> Self {
        let state = Member::Inflating(Box::new(flate2::bufread::GzDecoder::new(
            Cursor::new(Vec::new()).chain(input),
        )));
        Members { state, count: 1 }
    }

    /// A member ended: start the next one if [`MEMBER_START`] follows, else end (a stream
    /// ending on the first byte or two of it is cut).
    fn next_member(&mut self) -> io::Result<()> {
        let Member::Inflating(gz) = std::mem::replace(&mut self.state, Member::Moved) else {
            unreachable!("called after a member only")
        };
        let (cursor, input) = gz.into_inner().into_inner();
        let mut head = cursor.get_ref()[cursor.position() as usize..].to_vec();
        while head.len() < MEMBER_START.len() {
            let buf = input.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let take = (MEMBER_START.len() - head.len()).min(buf.len());
            head.extend_from_slice(&buf[..take]);
            input.consume(take);
        }
        if !head.is_empty() && head.len() < MEMBER_START.len() && MEMBER_START.starts_with(&head) {
            // The input ended a byte or two into what starts like a member: a cut, as
            // [`crate::xbstream`] judges a stream cut into a chunk header.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ended in the header of a gzip member",
            ));
        }
        self.state = if head.starts_with(&MEMBER_START) {
            self.count += 1;
            Member::Inflating(Box::new(flate2::bufread::GzDecoder::new(
                Cursor::new(head).chain(input),
            )))
        } else {
            Member::Ended {
                peeked: head.len() as u64,
            }
        };
        Ok(())
    }

    /// Bytes read after the last member to see that no other one follows.
    fn peeked(&self) -> u64 {
        match self.state {
            Member::Ended { peeked } => peeked,
            _ => 0,
        }
    }
}

impl<R: BufRead> Read for Members<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.state {
                Member::Inflating(gz) => match gz.read(buf)? {
                    0 => self.next_member()?,
                    n => return Ok(n),
                },
                Member::Ended { .. } => return Ok(0),
                Member::Moved => {
                    return Err(io::Error::other("the gzip members were already read"));
                }
            }
        }
    }
}

/// Inflate every gzip member of `input` with `copy` (which reads the decompressed bytes until
/// their end), verify each trailer and accept the sender's padding after the last.
fn inflate_verified<R: Read>(
    input: CountingReader<'_, R>,
    copy: impl FnOnce(&mut dyn Read) -> Result<u64, CopyError>,
) -> Result<ReceivedDump, JobError> {
    let mut buffered = BufReader::with_capacity(COPY_BUFFER, input);
    let (copied, members, peeked) = {
        let mut gz = Members::new(&mut buffered);
        let copied = copy(&mut gz);
        (copied, gz.count, gz.peeked())
    };
    let sql_bytes = match copied {
        Ok(n) => n,
        Err(CopyError::Write { after, error }) => {
            return Err(write_error(
                Some(error.kind()),
                format!(
                    "cannot write the dump into the staging directory after {}: {error}",
                    human_bytes(after)
                ),
            ))
        }
        Err(CopyError::Read { after, error }) => {
            let received = buffered.get_ref().count();
            if received == 0 {
                return Err(buffered
                    .get_ref()
                    .error("the sender closed the connection without sending anything"));
            }
            let why = match error.kind() {
                io::ErrorKind::UnexpectedEof => {
                    "the stream ended before the end of the gzip data (cut short)".to_string()
                }
                io::ErrorKind::TimedOut => error.to_string(),
                _ => format!("the gzip data is corrupt or incomplete: {error}"),
            };
            return Err(buffered.get_ref().error(format!(
                "receiving the dump failed after {} received ({} of SQL): {why}",
                human_bytes(received),
                human_bytes(after)
            )));
        }
    };
    let read_ahead = buffered.buffer().len() as u64;
    let compressed = buffered.get_ref().count() - read_ahead - peeked;
    if compressed == 0 {
        return Err(buffered
            .get_ref()
            .error("the sender closed the connection without sending anything"));
    }
    let padding = drain_padding(&mut buffered, peeked)?;
    Ok(ReceivedDump {
        compressed,
        members,
        sql_bytes,
        padding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receive::SpaceCheckedWriter;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run(bytes: &[u8]) -> Result<(ReceivedDump, Vec<u8>), JobError> {
        let staged = decompress_verified(
            CountingReader::new(bytes, || false),
            Vec::new(),
            None,
            |_| {},
        )?;
        Ok((staged.received, staged.out))
    }

    fn sample() -> Vec<u8> {
        (0..50_000)
            .map(|i| format!("INSERT INTO t VALUES ({i},'{}');\n", i * 7919 % 1000))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_complete_stream_is_accepted_with_padding() {
        let sql = sample();
        let z = gz(&sql);
        let (r, out) = run(&z).unwrap();
        assert_eq!(out, sql);
        assert_eq!(r.compressed, z.len() as u64);
        assert_eq!(r.padding, 0);
        let mut padded = z.clone();
        padded.extend(std::iter::repeat_n(0xAB, 16383));
        let (r, out) = run(&padded).unwrap();
        assert_eq!(out, sql);
        assert_eq!((r.compressed, r.padding), (z.len() as u64, 16383));
    }

    #[test]
    fn the_plan_is_built_from_the_received_bytes() {
        let mut sql =
            b"-- Current Database: `a`\nUSE `a`;\n-- Table structure for table `t`\n".to_vec();
        sql.extend(sample());
        sql.extend(b"-- Table structure for table `u`\nINSERT INTO u VALUES (1);");
        let mut by_line = PlanBuilder::default();
        for line in sql.split_inclusive(|&b| b == b'\n') {
            by_line.line(line);
        }
        let staged = decompress_verified(
            CountingReader::new(&gz(&sql)[..], || false),
            Vec::new(),
            Some(PlanBuilder::default()),
            |_| {},
        )
        .unwrap();
        assert_eq!(staged.out, sql);
        let plan = staged.plan.unwrap().unwrap();
        assert_eq!(plan.units.len(), 2);
        assert_eq!(Ok(plan), by_line.finish());
    }

    #[test]
    fn a_failing_write_stops_the_receive() {
        /// Takes `room` bytes, then fails.
        struct Full {
            room: usize,
        }
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if buf.len() > self.room {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
                }
                self.room -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let z = gz(&sample());
        for room in [0, COPY_BUFFER] {
            let err = decompress_verified(
                CountingReader::new(&z[..], || false),
                Full { room },
                Some(PlanBuilder::default()),
                |_| {},
            )
            .err()
            .unwrap();
            assert_eq!(err.kind, dbjobs_sdk::ErrorKind::NoSpace);
            assert!(
                err.message
                    .starts_with("cannot write the dump into the staging directory after "),
                "{err}"
            );
            assert!(err.message.ends_with(": disk full"), "{err}");
        }
        let checked = SpaceCheckedWriter::new(Vec::new(), &std::env::temp_dir(), u64::MAX);
        let err = decompress_verified(CountingReader::new(&z[..], || false), checked, None, |_| {})
            .err()
            .unwrap();
        assert!(err.message.contains("min_free_mb"), "{err}");
        assert_eq!(err.kind, dbjobs_sdk::ErrorKind::NoSpace);
    }

    /// A file of `tests/bad-inputs/gzip/`.
    fn bad_input(name: &str) -> Vec<u8> {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../tests/bad-inputs/gzip/"
        );
        std::fs::read(format!("{dir}{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn every_member_is_staged() {
        // The file fuzzing found: main staged `SELECT 1;` and took the rest for padding.
        let (r, out) = run(&bad_input("two_members.sql.gz")).unwrap();
        assert_eq!(out, b"SELECT 1;\nSELECT 2;\n");
        assert_eq!((r.members, r.compressed, r.padding), (2, 60, 0));

        // Three members, the middle one empty, then stale padding (also one that starts
        // like a gzip header but not like a member: ID1 ID2 without the method). A stream
        // ending on the first bytes of a member is cut.
        let sql = sample();
        let (a, b) = sql.split_at(sql.len() / 3);
        let members = [gz(a), gz(b""), gz(b)].concat();
        for pad in [&[0xABu8; 16383][..], &[0x1f, 0x8b, 0x00, 0x01][..], b""] {
            let (r, out) = run(&[&members[..], pad].concat()).unwrap();
            assert_eq!(out, sql);
            assert_eq!(r.members, 3);
            assert_eq!(r.compressed, members.len() as u64);
            assert_eq!(r.padding, pad.len() as u64);
        }

        for cut in [&[0x1f][..], &[0x1f, 0x8b][..]] {
            let err = run(&[&members[..], cut].concat()).unwrap_err();
            assert!(err.message.contains("cut short"), "{err}");
        }

        // A damaged or cut later member is refused, not dropped.
        let mut damaged = [gz(a), gz(b)].concat();
        let at = damaged.len() - gz(b).len() / 2;
        damaged[at] ^= 0x55;
        let err = run(&damaged).unwrap_err();
        assert!(err.message.contains("the gzip data is corrupt"), "{err}");
        let two = [gz(a), gz(b)].concat();
        let err = run(&two[..two.len() - 3]).unwrap_err();
        assert!(err.message.contains("cut short"), "{err}");
    }

    #[test]
    fn too_much_after_the_stream_is_refused() {
        let mut z = gz(&sample());
        z.extend(std::iter::repeat_n(0u8, 100_000));
        let err = run(&z).unwrap_err();
        assert!(err.message.contains("stale padding"), "{err}");
        assert_eq!(err.kind, dbjobs_sdk::ErrorKind::BadInput);
    }

    #[test]
    fn cut_or_corrupt_streams_are_refused() {
        let z = gz(&sample());
        for cut in [z.len() / 2, z.len() - 1, 5] {
            let err = run(&z[..cut]).unwrap_err();
            assert!(
                err.message.contains("cut short") || err.message.contains("corrupt"),
                "{cut}: {err}"
            );
            assert_eq!(err.kind, dbjobs_sdk::ErrorKind::BadInput, "{cut}: {err}");
        }
        let mut bad = z.clone();
        let n = bad.len();
        bad[n - 6] ^= 0xFF; // the CRC-32 / length trailer
        assert!(run(&bad).is_err());
        assert!(run(b"")
            .unwrap_err()
            .message
            .contains("without sending anything"));
        assert!(run(b"not gzip at all").is_err());
        let cancelled = decompress_verified(
            CountingReader::new(&z[..], || true),
            Vec::new(),
            None,
            |_| {},
        );
        assert_eq!(
            cancelled.err().unwrap().kind,
            dbjobs_sdk::ErrorKind::Cancelled
        );
    }
}
