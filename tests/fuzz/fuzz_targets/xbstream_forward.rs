//! `xbstream::forward` on any bytes, read in pieces whose sizes the input's first byte picks:
//! it never panics, and what it accepts is forwarded exactly (the stream's complete chunks,
//! nothing of the stale padding after them), with a summary that adds up.
#![no_main]

use std::io::Read;

use dbjobs_restore::xbstream::{forward, MAX_STALE_BYTES};
use libfuzzer_sys::fuzz_target;

/// A reader that hands out `data` in pieces of varying size, as a socket does.
struct Pieces<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = (self.step * 31 + 7) % 4099 + 1;
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let step = data.first().map_or(1, |b| usize::from(*b) + 1);
    let mut out = Vec::new();
    let mut reads = 0u64;
    let result = forward(
        &mut Pieces { data, step },
        &mut out,
        true,
        &mut |n| {
            assert!(n >= reads, "progress goes forward");
            reads = n;
            Ok(())
        },
    );
    if let Ok(summary) = result {
        assert_eq!(summary.bytes_received, data.len() as u64);
        assert_eq!(summary.stream_bytes + summary.stale_bytes, summary.bytes_received);
        assert!(summary.stale_bytes <= MAX_STALE_BYTES);
        assert_eq!(out, &data[..summary.stream_bytes as usize]);
        assert!(summary.contents.len() as u64 <= summary.files);
    }
});
