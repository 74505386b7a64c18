//! The dump plan of any SQL text, or of a gzip'd one decompressed and fed as it streams (up
//! to 16 MiB of SQL, as the receive does): building it never panics, fed in chunks of any size
//! it is the plan of the lines, and every range it names lies inside the dump.
#![no_main]

use std::io::Read;

use dbjobs_restore::logical::plan::{DumpPlan, PlanBuilder, Span};
use libfuzzer_sys::fuzz_target;

/// The most SQL a gzip'd input is decompressed to: the crafted seeds (48 and 64 MiB) exceed
/// the plan's budget within their first 10 MiB, and the rest would only cost time.
const MAX_SQL: u64 = 16 << 20;

/// The plan of the gzip'd `data`, fed in pieces of at most `chunk` bytes as they are
/// decompressed, and the SQL's length. A damaged gzip gives the plan of what came before.
fn plan_of_gzip(data: &[u8], chunk: usize) -> (Result<DumpPlan, String>, u64) {
    let mut gz = flate2::read::MultiGzDecoder::new(data).take(MAX_SQL);
    let mut buf = vec![0u8; chunk];
    let mut b = PlanBuilder::default();
    let mut len = 0u64;
    while let Ok(n) = gz.read(&mut buf) {
        if n == 0 {
            break;
        }
        b.feed(&buf[..n]);
        len += n as u64;
    }
    (b.finish(), len)
}

/// The plan of `sql` in chunks of `chunk` bytes, checked against its plan line by line.
fn plan_of_text(sql: &[u8], chunk: usize) -> Result<DumpPlan, String> {
    let mut fed = PlanBuilder::default();
    for piece in sql.chunks(chunk) {
        fed.feed(piece);
    }
    let mut by_line = PlanBuilder::default();
    for line in sql.split_inclusive(|b| *b == b'\n') {
        by_line.line(line);
    }
    let plan = fed.finish();
    assert_eq!(plan, by_line.finish(), "chunks of {chunk} bytes");
    plan
}

fn check_spans(spans: &[Span], len: u64) {
    for s in spans {
        assert!(s.start < s.end && s.end <= len, "{s:?} in {len} bytes");
        assert!(s.lines >= 1 && s.first_line >= 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let chunk = data.last().map_or(1, |b| usize::from(*b) * 257 + 1);
    let (plan, len) = if data.starts_with(&[0x1f, 0x8b]) {
        plan_of_gzip(data, chunk)
    } else {
        (plan_of_text(data, chunk), data.len() as u64)
    };
    if let Ok(p) = plan {
        check_spans(&p.session_header, len);
        check_spans(&p.first, len);
        check_spans(&p.rest, len);
        for u in &p.units {
            check_spans(&u.spans, len);
        }
        assert!(p.kept_bytes <= len);
    }
});
