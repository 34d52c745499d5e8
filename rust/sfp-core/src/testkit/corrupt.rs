//! Corrupting frames: checksum repair after mutation, every single-bit flip, every truncation.

use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64;

use super::{check_decode, Failure, Outcome};

/// Where the chunk table starts, its entry count and where the header checksum sits, read leniently
/// from a possibly damaged version-1 header; `None` when the input is too short to hold them.
fn table(frame: &[u8]) -> Option<(usize, usize, usize)> {
    let ndim = usize::from(*frame.get(7)?);
    let n = u32::from_le_bytes(frame.get(20..24)?.try_into().ok()?) as usize;
    let start = 32 + 8 * ndim;
    let end = start.checked_add(n.checked_mul(16)?)?;
    (end.checked_add(8)? <= frame.len()).then_some((start, n, end))
}

/// Rewrites the chunk checksums (for every chunk whose stated length fits the input) and then the
/// header checksum, so that a mutated frame gets past both to the parser and chunk decoder.
/// Returns false when the header is too short to hold its own table.
pub fn repair_checksums(frame: &mut [u8]) -> bool {
    let Some((start, n, end)) = table(frame) else {
        return false;
    };
    let mut pos = end + 8;
    for c in 0..n {
        let entry = start + 16 * c;
        let mut len = [0u8; 8];
        len.copy_from_slice(&frame[entry..entry + 8]);
        let len = u64::from_le_bytes(len);
        let Some(stop) = usize::try_from(len)
            .ok()
            .and_then(|l| pos.checked_add(l))
            .filter(|&s| s <= frame.len())
        else {
            break;
        };
        let sum = xxh3_64(&frame[pos..stop]);
        frame[entry + 8..entry + 16].copy_from_slice(&sum.to_le_bytes());
        pos = stop;
    }
    let sum = xxh3_64(&frame[..end]);
    frame[end..end + 8].copy_from_slice(&sum.to_le_bytes());
    true
}

/// Outcome counts of a corruption run.
pub type Counts = BTreeMap<Outcome, usize>;

/// Decodes every single-bit flip of `frame` and counts the outcomes.
///
/// # Errors
/// The first failure of [`check_decode`], with the flipped bit.
pub fn every_bit_flip(frame: &[u8]) -> Result<Counts, Failure> {
    let mut counts = Counts::new();
    let mut copy = frame.to_vec();
    for bit in 0..frame.len() * 8 {
        copy[bit / 8] ^= 1 << (bit % 8);
        let outcome = check_decode(&copy).map_err(|e| format!("bit {bit} flipped: {e}"))?;
        *counts.entry(outcome).or_default() += 1;
        copy[bit / 8] ^= 1 << (bit % 8);
    }
    Ok(counts)
}

/// Decodes every proper prefix of `frame` (including the empty one) and counts the outcomes.
///
/// # Errors
/// The first failure of [`check_decode`], with the length.
pub fn every_truncation(frame: &[u8]) -> Result<Counts, Failure> {
    let mut counts = Counts::new();
    for len in 0..frame.len() {
        let outcome =
            check_decode(&frame[..len]).map_err(|e| format!("truncated to {len}: {e}"))?;
        *counts.entry(outcome).or_default() += 1;
    }
    Ok(counts)
}
