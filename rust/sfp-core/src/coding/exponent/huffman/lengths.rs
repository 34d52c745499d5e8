//! Code lengths: Huffman's, limited to a maximum length, and the canonical codes they define.
//!
//! The lengths come from the in-place minimum-redundancy algorithm of Moffat and Katajainen over the
//! frequencies in ascending order. Codes longer than the limit are cut to it, which overfills the
//! Kraft sum; it is brought back to exactly one by lengthening the least frequent codes below the
//! limit, then any slack is spent shortening the most frequent codes that fit it. Working on the
//! count of codes of each length (lengths then handed out in frequency order) keeps both repairs
//! `O(symbols * limit)`.

/// Deepest tree the unlimited algorithm can build: counts are at most `u32::MAX` each, and a
/// Huffman code of depth `d` needs a total count of at least Fibonacci(d + 2).
const MAX_DEPTH: usize = 64;

/// Code lengths (each `1..=limit`) of the symbols with the frequencies `freqs` (at least two, each
/// positive), in the order of `freqs`, forming a complete prefix code (Kraft sum exactly 1).
/// `limit` must allow every symbol a code: `2^limit >= freqs.len()`.
pub(super) fn limited_lengths(freqs: &[u64], limit: u32) -> Vec<u8> {
    let n = freqs.len();
    debug_assert!(n >= 2 && (n as u64) <= 1u64 << limit);
    // Ascending by frequency; ties by symbol, so the lengths do not depend on the sort.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by_key(|&s| (freqs[s], s));
    let mut work: Vec<u64> = order.iter().map(|&s| freqs[s]).collect();
    minimum_redundancy(&mut work);
    let mut count = [0u64; MAX_DEPTH + 1];
    for &len in &work {
        count[(len as usize).min(MAX_DEPTH)] += 1;
    }
    limit_counts(&mut count, limit as usize);
    // The most frequent symbol (last in `order`) gets the shortest code.
    let mut lengths = vec![0u8; n];
    let mut next = order.iter().rev();
    for (len, &c) in count.iter().enumerate().take(limit as usize + 1) {
        for _ in 0..c {
            if let Some(&s) = next.next() {
                lengths[s] = len as u8;
            }
        }
    }
    lengths
}

/// Replaces the ascending frequencies in `a` (at least two) by the code lengths of an optimal prefix
/// code, `a[0]` the longest (Moffat and Katajainen, "In-place calculation of minimum-redundancy
/// codes", 1995).
fn minimum_redundancy(a: &mut [u64]) {
    let n = a.len();
    // Phase 1: internal node weights, each node then pointing at its parent.
    a[0] += a[1];
    let (mut root, mut leaf) = (0usize, 2usize);
    for next in 1..n - 1 {
        if leaf >= n || a[root] < a[leaf] {
            a[next] = a[root];
            a[root] = next as u64;
            root += 1;
        } else {
            a[next] = a[leaf];
            leaf += 1;
        }
        if leaf >= n || (root < next && a[root] < a[leaf]) {
            a[next] += a[root];
            a[root] = next as u64;
            root += 1;
        } else {
            a[next] += a[leaf];
            leaf += 1;
        }
    }
    // Phase 2: internal node depths.
    a[n - 2] = 0;
    for next in (0..n - 2).rev() {
        a[next] = a[a[next] as usize] + 1;
    }
    // Phase 3: leaf depths.
    let (mut avail, mut used, mut depth) = (1i64, 0i64, 0u64);
    let mut root = n as i64 - 2;
    let mut next = n as i64 - 1;
    while avail > 0 {
        while root >= 0 && a[root as usize] == depth {
            used += 1;
            root -= 1;
        }
        while avail > used {
            a[next as usize] = depth;
            next -= 1;
            avail -= 1;
        }
        avail = 2 * used;
        depth += 1;
        used = 0;
    }
}

/// Moves codes between lengths (`count[l]` codes of length `l`) so that none is longer than `limit`
/// and the Kraft sum is exactly 1, assuming the codes are handed out shortest first to the symbols
/// in descending frequency.
fn limit_counts(count: &mut [u64; MAX_DEPTH + 1], limit: usize) {
    for len in limit + 1..=MAX_DEPTH {
        count[limit] += count[len];
        count[len] = 0;
    }
    let full = 1u64 << limit;
    let mut kraft: u64 = (1..=limit).map(|l| count[l] << (limit - l)).sum();
    // Overfull: lengthen the least frequent code below the limit. One exists: with every code at
    // the limit the sum would be at most 1.
    while kraft > full {
        let Some(l) = (1..limit).rev().find(|&l| count[l] > 0) else {
            break;
        };
        count[l] -= 1;
        count[l + 1] += 1;
        kraft -= 1 << (limit - l - 1);
    }
    // Slack: shorten the most frequent code whose gain fits. The longest code always fits: the
    // slack is a multiple of its share.
    while kraft < full {
        let slack = full - kraft;
        let Some(l) = (2..=limit).find(|&l| count[l] > 0 && 1u64 << (limit - l) <= slack) else {
            break;
        };
        count[l] -= 1;
        count[l - 1] += 1;
        kraft += 1 << (limit - l);
    }
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
