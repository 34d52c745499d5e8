//! The container frame (format version 2): an array stored through a named or block-scaled
//! container, as a short header and parts that are each a whole version-1 frame.
//!
//! Layout (little-endian):
//! ```text
//! magic "\x89SFP" | u16 version (2) | u8 container id | u8 dtype of the decoded array | u8 ndim
//! | u8 part count | u16 reserved (0) | ndim x u64 shape | parts x u64 part length
//! | u64 xxh3 of the header so far | parts...
//! ```
//! A named container has one part, the cast values in the container's type; a block format has the
//! element codes and the block scales, and NVFP4 a third, the float32 tensor scale (shape `[]`).

use crate::frame::checksum::checksum;

use super::{Reader, MAGIC, MAX_NDIM};
use crate::container::Container;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// The version of container frames.
pub const CONTAINER_VERSION: u16 = 2;
/// Bytes of the fixed part of the header.
const FIXED: usize = 12;

/// A parsed and validated container-frame header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerHeader {
    /// How the array is stored.
    pub container: Container,
    /// The type of the decoded array.
    pub dtype: DType,
    /// The array's shape.
    pub shape: Vec<u64>,
    /// Byte length of each part.
    pub parts: Vec<u64>,
    /// Bytes of the header, where the first part starts.
    pub header_len: usize,
}

/// The number of parts a container's frame has.
pub fn part_count(container: Container) -> usize {
    match container {
        Container::Window => 0,
        Container::Named(_) => 1,
        Container::Block(b) => 2 + usize::from(b.has_tensor_scale()),
    }
}

/// True when `frame` starts like a container frame (the header is not yet checked).
pub fn is_container(frame: &[u8]) -> bool {
    frame.len() >= 6
        && frame[..4] == MAGIC
        && u16::from_le_bytes([frame[4], frame[5]]) == CONTAINER_VERSION
}

impl ContainerHeader {
    /// Number of values in the array (checked at parse time to fit).
    pub fn len(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }

    /// True when the array has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the decoded array.
    pub fn nbytes(&self) -> usize {
        self.len() * self.dtype.size()
    }

    /// The header followed by `parts`, as one frame.
    pub fn write(container: Container, dtype: DType, shape: &[u64], parts: &[Vec<u8>]) -> Vec<u8> {
        let total: usize = parts.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(FIXED + 8 * (shape.len() + parts.len()) + 8 + total);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&CONTAINER_VERSION.to_le_bytes());
        out.extend_from_slice(&[
            container.id(),
            dtype.id(),
            shape.len() as u8,
            parts.len() as u8,
        ]);
        out.extend_from_slice(&0u16.to_le_bytes());
        for d in shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        for p in parts {
            out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    }

    /// Parses and validates the header at the start of `frame`; the part lengths must add up to
    /// exactly the rest of `frame`. The parts themselves are parsed when they are decoded.
    ///
    /// # Errors
    /// [`Error::Decode`] for anything that is not a well-formed container frame.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        let mut r = Reader {
            bytes: frame,
            pos: 0,
        };
        if r.take(4, "magic")? != MAGIC || r.u16("version")? != CONTAINER_VERSION {
            return Err(Error::decode("not a schrodinger-fp container frame"));
        }
        let container = Container::from_id(r.u8("container")?)?;
        let dtype = DType::from_id(r.u8("dtype")?)?;
        if !DType::WIDE.contains(&dtype) {
            return Err(Error::decode(format!(
                "a container frame cannot decode to {}",
                dtype.name()
            )));
        }
        let ndim = usize::from(r.u8("ndim")?);
        if ndim > MAX_NDIM {
            return Err(Error::decode(format!("ndim {ndim} exceeds {MAX_NDIM}")));
        }
        let n_parts = usize::from(r.u8("part count")?);
        let expected = part_count(container);
        if n_parts != expected {
            return Err(Error::decode(format!(
                "{n_parts} parts in a {} frame, which has {expected}",
                container.name().unwrap_or_default()
            )));
        }
        if r.u16("reserved")? != 0 {
            return Err(Error::decode("reserved header field is not zero"));
        }
        let mut shape = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            shape.push(r.u64("shape")?);
        }
        shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| {
                n.checked_mul(dtype.size() as u64)
                    .is_some_and(|b| isize::try_from(b).is_ok())
            })
            .ok_or_else(|| Error::decode(format!("shape {shape:?} is too large")))?;
        let mut parts = Vec::with_capacity(n_parts);
        for _ in 0..n_parts {
            parts.push(r.u64("part length")?);
        }
        let header_len = r.pos + 8;
        let stored = r.u64("header checksum")?;
        if checksum(&frame[..header_len - 8]) != stored {
            return Err(Error::decode(
                "header checksum mismatch: the frame header is corrupt",
            ));
        }
        let payload = (frame.len() - header_len) as u64;
        let total = parts.iter().try_fold(0u64, |acc, &l| acc.checked_add(l));
        if total != Some(payload) {
            return Err(Error::decode(format!(
                "part lengths add up to {}, but {payload} bytes follow the header",
                total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string())
            )));
        }
        Ok(Self {
            container,
            dtype,
            shape,
            parts,
            header_len,
        })
    }

    /// Byte ranges of the parts within the frame.
    pub fn part_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut start = self.header_len;
        self.parts
            .iter()
            .map(|&len| {
                let range = start..start + len as usize;
                start = range.end;
                range
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockFormat;

    fn frame() -> Vec<u8> {
        let parts = [vec![1u8, 2, 3], vec![4u8, 5]];
        ContainerHeader::write(
            Container::Block(BlockFormat::Mxfp4),
            DType::F32,
            &[2, 40],
            &parts,
        )
    }

    fn message(bytes: &[u8]) -> String {
        ContainerHeader::parse(bytes).unwrap_err().to_string()
    }

    #[test]
    fn parse_reads_what_write_wrote() {
        let f = frame();
        let h = ContainerHeader::parse(&f).unwrap();
        assert_eq!(h.container, Container::Block(BlockFormat::Mxfp4));
        assert_eq!(
            (h.dtype, h.shape.clone(), h.parts.clone()),
            (DType::F32, vec![2, 40], vec![3, 2])
        );
        let ranges = h.part_ranges();
        assert_eq!(
            (&f[ranges[0].clone()], &f[ranges[1].clone()]),
            (&[1u8, 2, 3][..], &[4u8, 5][..])
        );
        assert!(is_container(&f) && !is_container(&f[..5]));
    }

    #[test]
    fn malformed_headers_name_what_is_wrong() {
        let f = frame();
        assert_eq!(
            message(&f[..20]),
            "truncated: shape needs 8 bytes at offset 20, only 0 left"
        );
        let mut bad = f.clone();
        bad[6] = 0x80 | 9;
        assert_eq!(message(&bad), "unknown container id 137 in frame header");
        let mut bad = f.clone();
        bad[9] = 3;
        assert_eq!(message(&bad), "3 parts in a mxfp4 frame, which has 2");
        let mut bad = f.clone();
        bad[7] = DType::F8E4M3.id();
        assert_eq!(
            message(&bad),
            "a container frame cannot decode to float8_e4m3fn"
        );
        let mut bad = f.clone();
        bad[12] ^= 1;
        assert_eq!(
            message(&bad),
            "header checksum mismatch: the frame header is corrupt"
        );
        assert_eq!(
            message(&f[..f.len() - 1]),
            "part lengths add up to 5, but 4 bytes follow the header"
        );
    }
}
