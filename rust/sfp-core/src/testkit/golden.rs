//! The golden cases: arrays of every element type, rich in edge values, in the formats whose frames
//! freeze the format (`tests/golden/`).

use crate::coding::exponent::ExponentCoding;
use crate::container::Container;
use crate::dtype::DType;
use crate::format::{CodingLevel, Format, Rounding, Underflow};

/// One golden frame to write and check.
#[derive(Clone, Debug)]
pub struct GoldenCase {
    /// File stem, `<dtype>_<case>`.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape of the array.
    pub shape: Vec<u64>,
    /// Format it is written in.
    pub format: Format,
    /// Values per chunk.
    pub chunk_size: usize,
    /// The source array, little-endian elements.
    pub values: Vec<u8>,
}

/// Bits of the edge values of `dtype`: zeros, infinities, NaNs with payloads, subnormals, the extremes
/// of the normal range, one, and values around rounding ties.
fn specials(dtype: DType) -> Vec<u64> {
    let (e, m) = (dtype.exp_bits(), dtype.man_bits());
    let sign = 1u64 << (e + m);
    let inf = ((1u64 << e) - 1) << m;
    let one = (dtype.bias() as u64) << m;
    let base = [
        0,
        inf,
        inf | 1,                   // signalling NaN with payload 1
        inf | (1 << (m - 1)),      // quiet NaN
        inf | ((1 << m) - 1),      // NaN, all payload bits
        1,                         // smallest subnormal
        (1 << m) - 1,              // largest subnormal
        1 << m,                    // smallest normal
        inf - 1,                   // largest finite
        one,                       // 1.0
        one | 1,                   // just above 1
        one | (1 << (m - 1)),      // 1.5
        one | ((1 << m) - 1),      // just below 2
        one | (0b0110 << (m - 4)), // ties for 2-3 kept mantissa bits
        one | (0b0101 << (m - 4)),
    ];
    base.iter().flat_map(|&b| [b, b | sign]).collect()
}

/// A deterministic array of `n` values: the edge values, then values of a random walk over the whole
/// exponent range with a cluster just under a typical activation scale.
pub fn values(dtype: DType, n: usize) -> Vec<u8> {
    let (e, m) = (dtype.exp_bits(), dtype.man_bits());
    let mut bits = specials(dtype);
    let mut state = 0x2545_F491_4F6C_DD1Du64 ^ u64::from(dtype.id());
    while bits.len() < n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mant = state & ((1 << m) - 1);
        let field = if state >> 60 < 12 {
            // Clustered just under 2^0, as weights are.
            (dtype.bias() as u64).saturating_sub((state >> 56) & 7)
        } else {
            (state >> 40) % ((1 << e) - 1)
        };
        let sign = (state >> 63) << (e + m);
        bits.push(sign | (field << m) | mant);
    }
    bits.truncate(n);
    let size = dtype.size();
    bits.iter()
        .flat_map(|b| b.to_le_bytes()[..size].to_vec())
        .collect()
}

/// `n` float4_e2m1fn codes of which nine in ten are 1.0, the rest any code: a Huffman code spends
/// a whole bit on the common one, rANS about a fifth of one.
pub fn peaked_float4(n: usize) -> Vec<u8> {
    let mut state = 0xD1B5_4A32_D192_ED03u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if (state >> 56) < 230 {
                0x2
            } else {
                (state & 0xf) as u8
            }
        })
        .collect()
}

/// `n` little-endian elements of `dtype`, each the bits `element` makes of the next state of a
/// xorshift generator started at `seed` (mixed with the type's id).
fn generated(dtype: DType, n: usize, seed: u64, mut element: impl FnMut(u64) -> u64) -> Vec<u8> {
    let mut state = seed ^ u64::from(dtype.id());
    let size = dtype.size();
    (0..n)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            element(state).to_le_bytes()[..size].to_vec()
        })
        .collect()
}

/// `n` values whose mantissas the mantissa coder codes: a third exact zeros (ReLU), the rest in a
/// few binades with skewed top mantissa bits and small low bits (values of a coarse grid).
pub fn skewed_values(dtype: DType, n: usize) -> Vec<u8> {
    let (e, m) = (dtype.exp_bits(), dtype.man_bits());
    generated(dtype, n, 0x9E37_79B9_7F4A_7C15, |state| {
        if state.is_multiple_of(3) {
            return 0;
        }
        let field = (dtype.bias() as u64) - 1 - ((state >> 8) & 3);
        let top = [0u64, 0, 0, 1, 1, 2, 3, 5][((state >> 12) & 7) as usize];
        let mant = (top << (m - 3)) | ((state >> 20) & 3);
        let sign = ((state >> 30) & 1) << (e + m);
        sign | (field << m) | mant
    })
}

/// `n` values in a few binades whose top four mantissa bits are skewed, differently in each binade,
/// and whose lower bits are uniform: the maximum level joins four top bits to the exponent.
pub fn skewed_top4_values(dtype: DType, n: usize) -> Vec<u8> {
    let (e, m) = (dtype.exp_bits(), dtype.man_bits());
    let skew = [0u64, 0, 0, 0, 0, 0, 1, 1, 1, 2, 3, 4, 6, 9, 12, 15];
    generated(dtype, n, 0x2545_F491_4F6C_DD1D, |state| {
        let binade = (state >> 8) & 3;
        let field = (dtype.bias() as u64) - 1 - binade;
        let top = (skew[((state >> 12) & 15) as usize] + 5 * binade) & 15;
        let mant = (top << (m - 4)) | ((state >> 20) & ((1 << (m - 4)) - 1));
        let sign = ((state >> 30) & 1) << (e + m);
        sign | (field << m) | mant
    })
}

/// `auto` at the maximum level: the coding the first golden frames were written with.
const SMALLEST: Format = Format {
    level: CodingLevel::Max,
    ..Format::LOSSLESS
};

fn format(exp_bits: Option<u32>, man_bits: Option<u32>) -> Format {
    Format {
        exp_bits,
        man_bits,
        ..SMALLEST
    }
}

/// The named formats of the golden set, as (case, format, chunk size).
fn formats(dtype: DType) -> Vec<(String, Format, usize)> {
    let src_e = dtype.exp_bits();
    let mut out = vec![
        ("lossless".to_string(), SMALLEST, 64),
        ("e4m2_nearest".into(), format(Some(4), Some(2)), 1 << 20),
        (
            "e3m1_stochastic".into(),
            Format {
                rounding: Rounding::Stochastic,
                underflow: Underflow::Stochastic,
                seed: 1234,
                ..format(Some(3), Some(1))
            },
            50,
        ),
        (
            "e3m4_window".into(),
            Format {
                window_top: Some(2),
                rounding: Rounding::Truncate,
                ..format(Some(3), Some(4))
            },
            1 << 20,
        ),
        (
            "m3_truncate".into(),
            Format {
                rounding: Rounding::Truncate,
                ..format(None, Some(3))
            },
            100,
        ),
        ("e2m0".into(), format(Some(2), Some(0)), 1 << 20),
        (
            format!("e{}m0_full_window", src_e - 1),
            format(Some(src_e - 1), Some(0)),
            1 << 20,
        ),
    ];
    for &coding in ExponentCoding::ALL {
        if coding != ExponentCoding::Auto {
            out.push((
                format!("e4m2_{}", coding.name()),
                Format {
                    exponent_coding: coding,
                    ..format(Some(4), Some(2))
                },
                128,
            ));
        }
    }
    out
}

/// Every golden case: each element type in each format, plus empty and 0-d arrays.
pub fn cases() -> Vec<GoldenCase> {
    let mut out = Vec::new();
    for dtype in DType::WIDE {
        for (case, format, chunk_size) in formats(dtype) {
            out.push(GoldenCase {
                name: format!("{}_{case}", dtype.name()),
                dtype,
                shape: vec![5, 60],
                format,
                chunk_size,
                values: values(dtype, 300),
            });
        }
    }
    for dtype in DType::WIDE {
        type Values = fn(DType, usize) -> Vec<u8>;
        let skewed: [(&str, Values); 2] = [
            ("lossless_mantissa_coded", skewed_values),
            ("lossless_top4", skewed_top4_values),
        ];
        for (case, values) in skewed {
            out.push(GoldenCase {
                name: format!("{}_{case}", dtype.name()),
                dtype,
                shape: vec![3000],
                format: SMALLEST,
                chunk_size: 1500,
                values: values(dtype, 3000),
            });
        }
        // The speed-aware levels: joint Huffman symbols, flat or Huffman-coded lanes.
        for level in [CodingLevel::Fast, CodingLevel::Default] {
            for (case, format) in [
                ("lossless", Format::LOSSLESS),
                ("e4m2", format(Some(4), Some(2))),
            ] {
                out.push(GoldenCase {
                    name: format!("{}_{case}_level{}", dtype.name(), level.number()),
                    dtype,
                    shape: vec![3000],
                    format: Format { level, ..format },
                    chunk_size: 1500,
                    values: skewed_values(dtype, 3000),
                });
            }
        }
    }
    // Lossless 16- and 32-bit words at the speed-aware levels are cut into planes.
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        for level in [CodingLevel::Fast, CodingLevel::Default] {
            out.push(GoldenCase {
                name: format!("{}_lossless_planes_level{}", dtype.name(), level.number()),
                dtype,
                shape: vec![3000],
                format: Format {
                    level,
                    ..Format::LOSSLESS
                },
                chunk_size: 1500,
                values: skewed_values(dtype, 3000),
            });
        }
    }
    // Zero-masked planes: half the values zero, as after a ReLU.
    for dtype in [DType::BF16, DType::F32] {
        let size = dtype.size();
        let mut values = skewed_values(dtype, 3000);
        for (i, v) in values.chunks_exact_mut(size).enumerate() {
            if (i * 7919) % 13 < 7 {
                v.fill(0);
            }
        }
        out.push(GoldenCase {
            name: format!("{}_relu_planes_level2", dtype.name()),
            dtype,
            shape: vec![3000],
            format: Format::LOSSLESS,
            chunk_size: 3000,
            values,
        });
    }
    // A wide joint alphabet with few codes present: the rANS table lists those alone.
    for dtype in [DType::BF16, DType::F32] {
        out.push(GoldenCase {
            name: format!("{}_lossless_sparse_table", dtype.name()),
            dtype,
            shape: vec![3000],
            format: SMALLEST,
            chunk_size: 3000,
            values: skewed_values(dtype, 3000),
        });
    }
    // Chunks of 1024 codes or more get the wide (8-state) rANS variant.
    out.push(GoldenCase {
        name: "float32_e4m2_entropy_wide".into(),
        dtype: DType::F32,
        shape: vec![2100],
        format: Format {
            exponent_coding: ExponentCoding::Entropy,
            ..format(Some(4), Some(2))
        },
        chunk_size: 1100,
        values: values(DType::F32, 2100),
    });
    // Streams of 2^17 codes or more get the vector (32-state) rANS variant.
    out.push(GoldenCase {
        name: "bfloat16_e4m2_entropy_vector".into(),
        dtype: DType::BF16,
        shape: vec![132_000],
        format: Format {
            exponent_coding: ExponentCoding::Entropy,
            ..format(Some(4), Some(2))
        },
        chunk_size: 132_000,
        values: values(DType::BF16, 132_000),
    });
    // Streams of 2^18 codes or more get the many-state (128-state) rANS variant. Positive values
    // and no mantissa keep the chunk under 64 KiB, so that corrupted copies fail their checksum
    // before they are decoded.
    let many: usize = (1 << 18) + 100;
    out.push(GoldenCase {
        name: "bfloat16_m0_entropy_many".into(),
        dtype: DType::BF16,
        shape: vec![many as u64],
        format: Format {
            exponent_coding: ExponentCoding::Entropy,
            ..format(None, Some(0))
        },
        chunk_size: many,
        values: generated(DType::BF16, many, 0x3C6E_F372_FE94_F82B, |state| {
            // Nine in ten values in one binade, the rest in the three below it.
            let below = if state % 10 == 0 {
                1 + (state >> 8) % 3
            } else {
                0
            };
            (DType::BF16.bias() as u64 - below) << DType::BF16.man_bits()
        }),
    });
    // Planes whose symbols the default level codes with rANS (the byte variant).
    out.push(GoldenCase {
        name: "float4_e2m1fn_lossless_planes_rans".into(),
        dtype: DType::F4E2M1,
        shape: vec![8000],
        format: Format::LOSSLESS,
        chunk_size: 8000,
        values: peaked_float4(8000),
    });
    out.extend(narrow_cases());
    out.extend(container_cases());
    for (case, shape) in [("empty", vec![3, 0]), ("scalar", vec![])] {
        let n = if shape.is_empty() { 1 } else { 0 };
        out.push(GoldenCase {
            name: format!("float32_{case}"),
            dtype: DType::F32,
            shape,
            format: format(Some(4), Some(2)),
            chunk_size: 1 << 20,
            values: values(DType::F32, n),
        });
    }
    out
}

/// Every bit pattern of a narrow type, then values clustered as FP8 weights are (a few exponents
/// just under the largest, skewed mantissas): `n` bytes.
pub fn narrow_values(dtype: DType, n: usize) -> Vec<u8> {
    let patterns = 1u64 << dtype.bits();
    let (e, m) = (dtype.exp_bits(), dtype.man_bits());
    let mut state = 0x6A09_E667_F3BC_C908u64 ^ u64::from(dtype.id());
    (0..n as u64)
        .map(|i| {
            if i < patterns {
                return i as u8;
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let field = ((1u64 << e) - 2).saturating_sub((state >> 8) % 3);
            let mant = (state >> 16) & ((1u64 << m) - 1);
            let sign = if dtype.has_sign() {
                (state >> 40) & 1
            } else {
                0
            };
            ((sign << (e + m)) | (field << m) | mant) as u8
        })
        .collect()
}

/// The narrow types, lossless, at every level and with every exponent coder.
fn narrow_cases() -> Vec<GoldenCase> {
    let mut out = Vec::new();
    for dtype in DType::ALL.into_iter().filter(|d| d.is_narrow()) {
        let mut formats = vec![("lossless".to_string(), SMALLEST)];
        for level in [CodingLevel::Fast, CodingLevel::Default] {
            let name = format!("lossless_level{}", level.number());
            formats.push((
                name,
                Format {
                    level,
                    ..Format::LOSSLESS
                },
            ));
        }
        for &coding in ExponentCoding::ALL {
            if coding != ExponentCoding::Auto {
                let format = Format {
                    exponent_coding: coding,
                    ..SMALLEST
                };
                formats.push((format!("lossless_{}", coding.name()), format));
            }
        }
        for (case, format) in formats {
            out.push(GoldenCase {
                name: format!("{}_{case}", dtype.name()),
                dtype,
                shape: vec![3, 200],
                format,
                chunk_size: 256,
                values: narrow_values(dtype, 600),
            });
        }
    }
    out
}

/// float32 values through each named and block-scaled container.
fn container_cases() -> Vec<GoldenCase> {
    let names = [
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fn_satfinite",
        "float4_e2m1fn",
        "bfloat16",
        "mxfp8_e4m3",
        "mxfp8_e5m2",
        "mxfp6_e2m3",
        "mxfp6_e3m2",
        "mxfp4",
        "nvfp4",
    ];
    names
        .iter()
        .filter_map(|name| Container::from_name(name).ok())
        .map(|container| GoldenCase {
            name: format!("float32_{}", container.name().unwrap_or_default()),
            dtype: DType::F32,
            shape: vec![4, 75],
            format: Format {
                container,
                ..SMALLEST
            },
            chunk_size: 128,
            values: values(DType::F32, 300),
        })
        .collect()
}
