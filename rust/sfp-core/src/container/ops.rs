//! Encode, decode and quantize through a named or block-scaled container. A container frame's
//! parts are ordinary lossless frames of the container's types, so every coder serves them.

use rayon::prelude::*;

use super::{Container, Named};
use crate::block::{self, scale_shape, BlockFormat, Blocks};
use crate::cast::{cast_bits, Overflow};
use crate::codec::{self, FrameInfo, Options};
use crate::dtype::{load, DType};
use crate::error::{Error, Result};
use crate::format::{CodingLevel, Format, Target};
use crate::frame::container::{is_container, ContainerHeader};
use crate::frame::{Header, MAX_CHUNK};
use crate::runtime::threads;

/// Elements per parallel task of a cast.
const STEP: usize = 1 << 16;

/// `src` (`from` elements) cast element by element to `to`, into `out`.
fn cast_into(src: &[u8], from: DType, to: DType, overflow: Overflow, out: &mut [u8]) {
    let (fs, ts) = (from.size(), to.size());
    out.par_chunks_mut(STEP * ts)
        .zip(src.par_chunks(STEP * fs))
        .for_each(|(d, s)| {
            for (i, dst) in d.chunks_exact_mut(ts).enumerate() {
                let bits = cast_bits(load(s, fs, i), from, to, overflow);
                dst.copy_from_slice(&bits.to_le_bytes()[..ts]);
            }
        });
}

fn cast(src: &[u8], from: DType, to: DType, overflow: Overflow) -> Vec<u8> {
    let mut out = vec![0u8; src.len() / from.size() * to.size()];
    cast_into(src, from, to, overflow, &mut out);
    out
}

/// The lossless format of a part, coded as `format` asks.
fn part_format(format: &Format) -> Format {
    Format {
        exponent_coding: format.exponent_coding,
        level: format.level,
        ..Format::LOSSLESS
    }
}

/// Quantizes `src` to a named or block-scaled container, into `out` (same size).
pub(crate) fn quantize(
    src: &[u8],
    out: &mut [u8],
    dtype: DType,
    container: Container,
    shape: &[u64],
) -> Result<()> {
    match container {
        Container::Window => Err(Error::invalid("a window format is not a container")),
        Container::Named(Named {
            dtype: to,
            overflow,
        }) => {
            let narrow = cast(src, dtype, to, overflow);
            cast_into(&narrow, to, dtype, Overflow::AsType, out);
            Ok(())
        }
        Container::Block(b) => {
            let blocks = block::quantize(src, dtype, shape, b);
            block::dequantize(&blocks, b, shape, dtype, out)
        }
    }
}

/// Encodes `src` through a named or block-scaled container into a container frame.
pub(crate) fn encode(
    src: &[u8],
    dtype: DType,
    shape: &[u64],
    format: &Format,
    options: &Options,
) -> Result<Vec<u8>> {
    let coding = part_format(format);
    let parts = match format.container {
        Container::Window => return Err(Error::invalid("a window format is not a container")),
        Container::Named(Named {
            dtype: to,
            overflow,
        }) => {
            let values = threads::run(options.threads, || cast(src, dtype, to, overflow))?;
            vec![codec::encode(&values, to, shape, &coding, options)?]
        }
        Container::Block(b) => {
            let blocks = threads::run(options.threads, || block::quantize(src, dtype, shape, b))?;
            block_parts(&blocks, b, shape, &coding, options)?
        }
    };
    Ok(ContainerHeader::write(
        format.container,
        dtype,
        shape,
        &parts,
    ))
}

fn block_parts(
    blocks: &Blocks,
    b: BlockFormat,
    shape: &[u64],
    coding: &Format,
    options: &Options,
) -> Result<Vec<Vec<u8>>> {
    // A scale stream holds one value per block, so decoding it costs little whatever its coder:
    // it is always coded for size (rANS reaches below Huffman's one bit per symbol, which matters
    // on MX scales of about one bit of entropy).
    let scale_coding = Format {
        level: CodingLevel::Max,
        ..*coding
    };
    let scale_shape = scale_shape(shape, b.block());
    let mut parts = vec![
        codec::encode(&blocks.elements, b.element(), shape, coding, options)?,
        codec::encode(
            &blocks.scales,
            b.scale(),
            &scale_shape,
            &scale_coding,
            options,
        )?,
    ];
    if b.has_tensor_scale() {
        let ts = blocks.tensor_scale.to_le_bytes();
        parts.push(codec::encode(&ts, DType::F32, &[], coding, options)?);
    }
    Ok(parts)
}

/// Encodes block-scaled data that is already quantized: element codes of `shape` and their block
/// scales (and NVFP4's tensor scale), to decode to `dtype`.
///
/// # Errors
/// [`Error::InvalidArgument`] when the element or scale counts do not match `shape`, a code has
/// bits beyond its type, the tensor scale is missing or given where the format has none, or
/// `dtype` is not float32, float64, float16 or bfloat16.
#[allow(clippy::too_many_arguments)]
pub fn encode_blocks(
    elements: &[u8],
    scales: &[u8],
    tensor_scale: Option<f32>,
    block_format: BlockFormat,
    dtype: DType,
    shape: &[u64],
    format: &Format,
    options: &Options,
) -> Result<Vec<u8>> {
    let container = Container::Block(block_format);
    Format {
        container,
        ..Format::LOSSLESS
    }
    .resolve(dtype)?;
    let tensor_scale = match (block_format.has_tensor_scale(), tensor_scale) {
        (true, Some(ts)) => ts,
        (false, None) => 1.0,
        (true, None) => {
            return Err(Error::invalid(format!(
                "{} needs its float32 tensor scale",
                block_format.name()
            )))
        }
        (false, Some(_)) => {
            return Err(Error::invalid(format!(
                "{} has no tensor scale",
                block_format.name()
            )))
        }
    };
    let n = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let blocks_expected = scale_shape(shape, block_format.block())
        .iter()
        .product::<u64>();
    if n != Some(elements.len() as u64) || scales.len() as u64 != blocks_expected {
        return Err(Error::invalid(format!(
            "shape {shape:?} in {} needs {} elements and {blocks_expected} scales, got {} and {}",
            block_format.name(),
            n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
            elements.len(),
            scales.len()
        )));
    }
    let blocks = Blocks {
        elements: elements.to_vec(),
        scales: scales.to_vec(),
        tensor_scale,
    };
    let parts = block_parts(&blocks, block_format, shape, &part_format(format), options)?;
    Ok(ContainerHeader::write(container, dtype, shape, &parts))
}

/// Decodes part `k` of a container frame, which must hold `dtype` elements of `shape`.
fn decode_part(
    frame: &[u8],
    header: &ContainerHeader,
    k: usize,
    dtype: DType,
    shape: &[u64],
    threads: Option<usize>,
) -> Result<Vec<u8>> {
    let bytes = &frame[header.part_ranges()[k].clone()];
    let part = Header::parse(bytes).map_err(|e| Error::decode(format!("part {k}: {e}")))?;
    if part.target.dtype != dtype || part.shape != shape || !part.target.is_lossless() {
        return Err(Error::decode(format!(
            "part {k} holds {}{:?} (lossless: {}), the container needs lossless {}{shape:?}",
            part.target.dtype.name(),
            part.shape,
            part.target.is_lossless(),
            dtype.name()
        )));
    }
    let (_, out) = codec::decode_with(bytes, threads, None, |h| Ok(vec![0u8; h.nbytes()]))
        .map_err(|e| Error::decode(format!("part {k}: {e}")))?;
    Ok(out)
}

/// The element codes, scales and tensor scale of a block-format frame.
fn read_blocks(
    frame: &[u8],
    header: &ContainerHeader,
    b: BlockFormat,
    threads: Option<usize>,
) -> Result<Blocks> {
    let shape = &header.shape;
    let elements = decode_part(frame, header, 0, b.element(), shape, threads)?;
    let scales = decode_part(
        frame,
        header,
        1,
        b.scale(),
        &scale_shape(shape, b.block()),
        threads,
    )?;
    let tensor_scale = if b.has_tensor_scale() {
        let ts = decode_part(frame, header, 2, DType::F32, &[], threads)?;
        f32::from_le_bytes([ts[0], ts[1], ts[2], ts[3]])
    } else {
        1.0
    };
    Ok(Blocks {
        elements,
        scales,
        tensor_scale,
    })
}

/// Decodes a container frame's values into `out` (exactly the array's bytes).
pub(crate) fn decode_into(
    frame: &[u8],
    header: &ContainerHeader,
    threads: Option<usize>,
    out: &mut [u8],
) -> Result<()> {
    match header.container {
        Container::Window => Err(Error::decode("a container frame without a container")),
        Container::Named(Named { dtype: to, .. }) => {
            let values = decode_part(frame, header, 0, to, &header.shape, threads)?;
            threads::run(threads, || {
                cast_into(&values, to, header.dtype, Overflow::AsType, out)
            })
        }
        Container::Block(b) => {
            let blocks = read_blocks(frame, header, b, threads)?;
            threads::run(threads, || {
                block::dequantize(&blocks, b, &header.shape, header.dtype, out)
            })?
        }
    }
}

/// What a container frame decodes to, as a [`Header`]: its dtype, shape and container (its parts
/// carry their own chunk tables, so this one has none).
pub(crate) fn summary(c: &ContainerHeader) -> Header {
    let dtype = c.dtype;
    Header {
        target: Target {
            dtype,
            exp_bits: dtype.exp_bits(),
            man_bits: dtype.man_bits(),
            format: Format {
                container: c.container,
                ..Format::LOSSLESS
            },
        },
        window_top: 0,
        shape: c.shape.clone(),
        chunk_size: MAX_CHUNK,
        chunks: Vec::new(),
        header_len: c.header_len,
    }
}

/// Decodes a block-format frame to its element codes, block scales and tensor scale.
///
/// # Errors
/// [`Error::Decode`] when the frame is corrupt or not a block-format frame.
pub fn decode_blocks(frame: &[u8], threads: Option<usize>) -> Result<(ContainerHeader, Blocks)> {
    threads::check(threads)?;
    if !is_container(frame) {
        return Err(Error::decode(
            "not a block-format frame: it holds a plain array",
        ));
    }
    let header = ContainerHeader::parse(frame)?;
    let Container::Block(b) = header.container else {
        return Err(Error::decode(format!(
            "not a block-format frame: it holds a {} container",
            header.container.name().unwrap_or_default()
        )));
    };
    let blocks = read_blocks(frame, &header, b, threads)?;
    Ok((header, blocks))
}

/// What a container frame holds: its header and each part's [`FrameInfo`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The validated header.
    pub header: ContainerHeader,
    /// The parts: named values, or element codes, block scales and the tensor scale.
    pub parts: Vec<FrameInfo>,
}

/// Describes a container frame and its parts. Checksums are not verified.
///
/// # Errors
/// [`Error::Decode`] when the header or a part is malformed.
pub fn inspect_container(frame: &[u8]) -> Result<ContainerInfo> {
    let header = ContainerHeader::parse(frame)?;
    let parts = header
        .part_ranges()
        .into_iter()
        .enumerate()
        .map(|(k, range)| {
            codec::inspect(&frame[range]).map_err(|e| Error::decode(format!("part {k}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ContainerInfo { header, parts })
}
