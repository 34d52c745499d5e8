//! Code lengths: optimal among codes no longer than a limit, and the canonical codes they define.
//!
//! The lengths come from package-merge (Larmore and Hirschberg), which is optimal for the limit:
//! cutting a Huffman tree's long codes and repairing its Kraft sum afterwards costs a few hundredths
//! of a bit per symbol on alphabets of a few hundred symbols (an exponent with sign and top mantissa
//! bits), which is the whole margin over byte-oriented coders. It runs in `O(symbols * limit)`.

/// Code lengths (each `1..=limit`) of the symbols with the frequencies `freqs` (at least two, each
/// positive), in the order of `freqs`, forming a complete prefix code (Kraft sum exactly 1).
/// `limit` must allow every symbol a code: `2^limit >= freqs.len()`.
pub(super) fn limited_lengths(freqs: &[u64], limit: u32) -> Vec<u8> {
    let n = freqs.len();
    debug_assert!(n >= 2 && (n as u64) <= 1u64 << limit);
    // Ascending by frequency; ties by symbol, so the lengths do not depend on the sort.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by_key(|&s| (freqs[s], s));
    let leaves: Vec<u64> = order.iter().map(|&s| freqs[s]).collect();
    // Level `j` (0 the shallowest) is the sorted merge of the leaves with the pairs ("packages") of
    // level `j + 1`; the deepest level is the leaves alone. Only which entries are leaves is kept.
    let levels = (limit as usize).max(1);
    let mut is_leaf: Vec<Vec<bool>> = vec![Vec::new(); levels];
    is_leaf[levels - 1] = vec![true; n];
    let mut below = leaves.clone();
    for j in (0..levels - 1).rev() {
        let packages: Vec<u64> = below.chunks_exact(2).map(|p| p[0] + p[1]).collect();
        let mut merged = Vec::with_capacity(n + packages.len());
        let mut kinds = Vec::with_capacity(n + packages.len());
        let (mut a, mut b) = (0, 0);
        while a < n || b < packages.len() {
            let leaf = b >= packages.len() || (a < n && leaves[a] <= packages[b]);
            if leaf {
                merged.push(leaves[a]);
                a += 1;
            } else {
                merged.push(packages[b]);
                b += 1;
            }
            kinds.push(leaf);
        }
        is_leaf[j] = kinds;
        below = merged;
    }
    // The cheapest 2n - 2 entries of the shallowest level are chosen; a chosen package chooses its
    // pair below, so each level's chosen entries are its cheapest ones. A leaf's code length is the
    // number of levels that choose it (the chosen leaves are always the least frequent ones).
    let mut sorted_lengths = vec![0u8; n];
    let mut take = 2 * n - 2;
    for kinds in &is_leaf {
        let chosen = kinds.get(..take.min(kinds.len())).unwrap_or_default();
        let leaves_chosen = chosen.iter().filter(|&&leaf| leaf).count();
        for l in sorted_lengths.iter_mut().take(leaves_chosen) {
            *l += 1;
        }
        take = 2 * (chosen.len() - leaves_chosen);
        if take == 0 {
            break;
        }
    }
    let mut lengths = vec![0u8; n];
    for (&s, &l) in order.iter().zip(&sorted_lengths) {
        lengths[s] = l;
    }
    lengths
}

/// The canonical codes of `lengths` (0: no code), bit-reversed for LSB-first streams: codes are
/// assigned in order of (length, symbol), each the previous plus one, shifted left at each new
/// length. Lengths must satisfy the Kraft inequality.
pub(super) fn canonical_codes(lengths: &[u8]) -> Vec<u16> {
    let mut count = [0u32; 17];
    for &l in lengths {
        count[usize::from(l).min(16)] += 1;
    }
    count[0] = 0;
    let mut next = [0u32; 17];
    let mut code = 0u32;
    for l in 1..17 {
        code = (code + count[l - 1]) << 1;
        next[l] = code;
    }
    lengths
        .iter()
        .map(|&l| {
            if l == 0 {
                return 0;
            }
            let l = usize::from(l).min(16);
            let c = next[l];
            next[l] += 1;
            ((c as u16).reverse_bits()) >> (16 - l)
        })
        .collect()
}
