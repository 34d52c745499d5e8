//! Corruption suite: every single-bit flip and every truncation of every golden frame ends in
//! `Error::Decode` (never a panic, a wrong value or a non-decode error), and decoding a corrupted
//! frame allocates at most the array its (checksummed) header describes plus a small multiple of
//! the input. The outcome counts are printed (`cargo test --test corruption -- --nocapture`).
//!
//! One test per binary: the allocation counter is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use sfp_core::testkit::alloc::{peak_during, CountingAlloc};
use sfp_core::testkit::corrupt::{every_bit_flip, every_truncation, Counts};
use sfp_core::testkit::{check_decode, Outcome};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn add(total: &mut Counts, counts: Counts) {
    for (k, v) in counts {
        *total.entry(k).or_default() += v;
    }
}

#[test]
fn every_flip_and_truncation_of_the_golden_frames_is_a_decode_error() {
    // Warm the thread pools so their one-time allocations are not charged to a frame.
    let _ = check_decode(&[]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut flips = Counts::new();
    let mut truncations = Counts::new();
    let mut frames = 0usize;
    let mut worst: (f64, String) = (0.0, String::new());
    let mut versions: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    versions.sort();
    for version in versions {
        let mut paths: Vec<_> = fs::read_dir(&version)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sfp"))
            .collect();
        paths.sort();
        for path in paths {
            let frame = fs::read(&path).unwrap();
            let decoded_len = fs::read(path.with_extension("out")).unwrap().len();
            let name = path.display().to_string();
            assert_eq!(check_decode(&frame), Ok(Outcome::Decoded), "{name}");
            let (result, peak) = peak_during(|| every_bit_flip(&frame));
            add(&mut flips, result.unwrap_or_else(|e| panic!("{name}: {e}")));
            let (result, peak2) = peak_during(|| every_truncation(&frame));
            add(
                &mut truncations,
                result.unwrap_or_else(|e| panic!("{name}: {e}")),
            );
            // check_decode holds the input copy, the array twice and the decoder's scratch.
            let budget = 3 * decoded_len + 8 * frame.len() + 64 * 1024;
            let peak = peak.max(peak2);
            assert!(peak <= budget, "{name}: peak allocation {peak} > {budget}");
            let ratio = peak as f64 / frame.len() as f64;
            if ratio > worst.0 {
                worst = (ratio, name);
            }
            frames += 1;
        }
    }
    println!("{frames} golden frames");
    println!("bit flips: {flips:?}");
    println!("truncations: {truncations:?}");
    println!(
        "worst peak allocation: {:.1}x the frame ({})",
        worst.0, worst.1
    );
    assert!(frames > 0);
    // Every byte of a frame is covered by the header checksum or a chunk checksum, so nothing may
    // decode, and nothing may need a larger-than-life allocation.
    let only_rejections = |c: &Counts| {
        c.keys()
            .all(|k| matches!(k, Outcome::RejectedByInspect | Outcome::RejectedByDecode))
    };
    assert!(only_rejections(&flips), "{flips:?}");
    assert!(only_rejections(&truncations), "{truncations:?}");
    let _: BTreeMap<Outcome, usize> = flips;
}
