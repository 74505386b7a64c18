//! The gzip receive of a logical restore (`decompress_verified`, with the dump plan built
//! alongside) on any bytes: it never panics, and what it accepts is every member of the
//! stream, decompressed as `gunzip` would, followed by no more than the sender's padding.
#![no_main]

use std::io::{self, Write};

use dbjobs_restore::logical::gzip::decompress_verified;
use dbjobs_restore::logical::plan::PlanBuilder;
use dbjobs_restore::receive::{CountingReader, MAX_PADDING};
use libfuzzer_sys::fuzz_target;

/// A writer that keeps only the CRC-32 and length of what it gets (a small input can
/// decompress to hundreds of MiB).
#[derive(Default)]
struct Digest(flate2::Crc);

impl Write for Digest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let staged = decompress_verified(
        CountingReader::new(data, || false),
        Digest::default(),
        Some(PlanBuilder::default()),
        |_| {},
    );
    let Ok(staged) = staged else {
        return;
    };
    let r = staged.received;
    assert_eq!(r.compressed + r.padding, data.len() as u64);
    assert!(r.padding <= MAX_PADDING);
    assert!(r.members >= 1);
    // gunzip's reading of the members: the same bytes.
    let mut reference = Digest::default();
    let mut gz = flate2::read::MultiGzDecoder::new(&data[..r.compressed as usize]);
    io::copy(&mut gz, &mut reference).expect("the accepted members decode");
    assert_eq!(staged.out.0.sum(), reference.0.sum());
    assert_eq!(u64::from(staged.out.0.amount()), r.sql_bytes & 0xffff_ffff);
    assert_eq!(reference.0.amount(), staged.out.0.amount());
});
