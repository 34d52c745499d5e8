//! Frame headers with every field under the caller's control, for hostile-input tests: any values,
//! consistent or not, with a correct header checksum so that validation itself is what is tested.

use xxhash_rust::xxh3::xxh3_64;

use crate::frame::MAGIC;

/// Every field of a version-1 frame header, raw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawHeader {
    /// Magic bytes.
    pub magic: [u8; 4],
    /// Format version.
    pub version: u16,
    /// Element type id.
    pub dtype: u8,
    /// Stored ndim (may differ from `shape.len()` to lie).
    pub ndim: u8,
    /// Exponent bits.
    pub exp_bits: u8,
    /// Mantissa bits.
    pub man_bits: u8,
    /// Rounding id.
    pub rounding: u8,
    /// Underflow id.
    pub underflow: u8,
    /// Biased window top field.
    pub window_top: u16,
    /// Reserved field (must be 0).
    pub reserved: u16,
    /// Values per chunk.
    pub chunk_size: u32,
    /// Stored chunk count (may differ from `chunks.len()` to lie).
    pub n_chunks: u32,
    /// Stochastic seed.
    pub seed: u64,
    /// Dimensions written.
    pub shape: Vec<u64>,
    /// Chunk table entries written: (length, checksum).
    pub chunks: Vec<(u64, u64)>,
}

impl RawHeader {
    /// A consistent lossless float32 header for `shape` with one chunk table entry per chunk of
    /// `chunk_size`, all of length 0 (fill in `chunks` to describe a payload).
    pub fn float32(shape: &[u64], chunk_size: u32) -> Self {
        let n = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .unwrap_or(u64::MAX);
        let n_chunks = n.div_ceil(u64::from(chunk_size).max(1));
        Self {
            magic: MAGIC,
            version: crate::frame::VERSION,
            dtype: crate::DType::F32.id(),
            ndim: shape.len() as u8,
            exp_bits: 8,
            man_bits: 23,
            rounding: 1,
            underflow: 0,
            window_top: 0,
            reserved: 0,
            chunk_size,
            n_chunks: n_chunks as u32,
            seed: 0,
            shape: shape.to_vec(),
            chunks: vec![(0, 0); usize::try_from(n_chunks).unwrap_or(0).min(1 << 16)],
        }
    }

    /// The header bytes with a correct header checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic);
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&[
            self.dtype,
            self.ndim,
            self.exp_bits,
            self.man_bits,
            self.rounding,
            self.underflow,
        ]);
        out.extend_from_slice(&self.window_top.to_le_bytes());
        out.extend_from_slice(&self.reserved.to_le_bytes());
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&self.n_chunks.to_le_bytes());
        out.extend_from_slice(&self.seed.to_le_bytes());
        for d in &self.shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        for (len, sum) in &self.chunks {
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&sum.to_le_bytes());
        }
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The header followed by `chunks`, with the table's lengths and checksums set from them.
    pub fn frame(&mut self, chunks: &[&[u8]]) -> Vec<u8> {
        self.chunks = chunks
            .iter()
            .map(|c| (c.len() as u64, xxh3_64(c)))
            .collect();
        let mut out = self.to_bytes();
        chunks.iter().for_each(|c| out.extend_from_slice(c));
        out
    }
}
