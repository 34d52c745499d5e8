//! `schrodinger_fp._core`: the PyO3 binding of `sfp-core`. Buffers in, buffers out; no codec logic here.
//!
//! Arrays arrive as C-contiguous byte buffers (the Python layer makes `uint8` views), so the binding
//! never depends on numpy's C API. The GIL is released for inputs of `RELEASE_GIL_BYTES` or more.

use std::mem::MaybeUninit;

use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList};
use sfp_core::{
    BlockFormat, CodingLevel, Container, DType, Error, ExponentCoding, Format, FrameBuffer,
    Options, Rounding, Underflow,
};

create_exception!(
    _core,
    DecodeError,
    PyValueError,
    "Encoded data is corrupt, truncated or not a schrodinger-fp frame."
);

/// Inputs this large or larger are processed with the GIL released.
const RELEASE_GIL_BYTES: usize = 1 << 16;

/// The one place core errors become Python exceptions.
fn to_py(e: Error) -> PyErr {
    match e {
        Error::InvalidArgument(m) => PyValueError::new_err(m),
        Error::UnsupportedDtype(m) => PyTypeError::new_err(m),
        Error::Decode(m) => DecodeError::new_err(m),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// The attributes of a Python `schrodinger_fp.Format`.
#[derive(FromPyObject)]
struct PyFormat {
    #[pyo3(attribute)]
    exp_bits: Option<u32>,
    #[pyo3(attribute)]
    man_bits: Option<u32>,
    #[pyo3(attribute)]
    rounding: String,
    #[pyo3(attribute)]
    underflow: String,
    #[pyo3(attribute)]
    window_top: Option<i32>,
    #[pyo3(attribute)]
    seed: u64,
    #[pyo3(attribute)]
    exponent_coding: String,
    #[pyo3(attribute)]
    level: u32,
    #[pyo3(attribute)]
    container: Option<String>,
}

impl PyFormat {
    fn to_core(&self) -> Result<Format, Error> {
        Ok(Format {
            exp_bits: self.exp_bits,
            man_bits: self.man_bits,
            rounding: Rounding::from_name(&self.rounding)?,
            underflow: Underflow::from_name(&self.underflow)?,
            window_top: self.window_top,
            seed: self.seed,
            exponent_coding: ExponentCoding::from_name(&self.exponent_coding)?,
            level: CodingLevel::from_number(self.level)?,
            container: match &self.container {
                Some(name) => Container::from_name(name)?,
                None => Container::Window,
            },
        })
    }
}

/// A read-only view of a C-contiguous buffer.
fn bytes_of<'a>(buf: &'a PyBuffer<u8>, what: &str) -> PyResult<&'a [u8]> {
    let ptr = buf
        .as_slice_ptr()
        .ok_or_else(|| PyValueError::new_err(format!("{what} must be a C-contiguous buffer")))?;
    // SAFETY: the buffer is C-contiguous and stays exported while `buf` lives; u8 has no alignment.
    Ok(unsafe { &*ptr.as_ptr() })
}

/// A writable view of a C-contiguous buffer.
#[allow(clippy::mut_from_ref)]
fn bytes_of_mut<'a>(buf: &'a PyBuffer<u8>, what: &str) -> PyResult<&'a mut [u8]> {
    if buf.readonly() {
        return Err(PyValueError::new_err(format!("{what} is read-only")));
    }
    let ptr = buf
        .as_slice_ptr()
        .ok_or_else(|| PyValueError::new_err(format!("{what} must be a C-contiguous buffer")))?;
    // SAFETY: writable, C-contiguous, exported while `buf` lives; the Python layer never passes a
    // buffer that overlaps another argument.
    Ok(unsafe { &mut *ptr.as_ptr() })
}

/// Runs `work` with the GIL released when the input is large.
fn maybe_detach<T: Send>(py: Python<'_>, bytes: usize, work: impl FnOnce() -> T + Send) -> T {
    if bytes >= RELEASE_GIL_BYTES {
        py.detach(work)
    } else {
        work()
    }
}

/// Encodes little-endian `dtype` elements of `shape` into a frame.
#[pyfunction]
#[pyo3(signature = (src, dtype, shape, fmt, chunk_size=None, threads=None))]
fn encode<'py>(
    py: Python<'py>,
    src: PyBuffer<u8>,
    dtype: &str,
    shape: Vec<u64>,
    fmt: PyFormat,
    chunk_size: Option<usize>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let dtype = DType::from_name(dtype).map_err(to_py)?;
    let format = fmt.to_core().map_err(to_py)?;
    let data = bytes_of(&src, "the array")?;
    let options = Options {
        chunk_size,
        threads,
    };
    let frame = maybe_detach(py, data.len(), || {
        sfp_core::encode_with(data, dtype, &shape, &format, &options, |capacity| {
            FreshBytes::new(capacity)
        })
    })
    .map_err(to_py)?;
    Ok(frame.object.into_bound(py).cast_into()?)
}

/// Decodes a frame into a new `bytearray`; returns it with the frame's dtype name and shape.
#[pyfunction]
#[pyo3(signature = (frame, threads=None, max_nbytes=None))]
fn decode<'py>(
    py: Python<'py>,
    frame: PyBuffer<u8>,
    threads: Option<usize>,
    max_nbytes: Option<u64>,
) -> PyResult<(Bound<'py, PyByteArray>, &'static str, Vec<u64>)> {
    let data = bytes_of(&frame, "the frame")?;
    let (header, array) = maybe_detach(py, data.len(), || {
        sfp_core::decode_with(data, threads, max_nbytes, |h| {
            FreshBuffer::new(h.nbytes(), threads)
        })
    })
    .map_err(to_py)?;
    let array = array.object.into_bound(py).cast_into()?;
    Ok((array, header.target.dtype.name(), header.shape))
}

/// Decodes a frame into the writable buffer `out`, which holds an array of `shape` and of the
/// dtype named `dtype`; with `raw_bits` any dtype of the frame's element size is accepted.
#[pyfunction]
#[pyo3(signature = (frame, out, shape, dtype, raw_bits, threads=None, max_nbytes=None))]
#[allow(clippy::too_many_arguments)]
fn decode_into(
    py: Python<'_>,
    frame: PyBuffer<u8>,
    out: PyBuffer<u8>,
    shape: Vec<u64>,
    dtype: &str,
    raw_bits: bool,
    threads: Option<usize>,
    max_nbytes: Option<u64>,
) -> PyResult<()> {
    let data = bytes_of(&frame, "the frame")?;
    let dst = bytes_of_mut(&out, "out")?;
    maybe_detach(py, dst.len(), || {
        sfp_core::decode_with(data, threads, max_nbytes, |h| {
            let frame_dtype = h.target.dtype.name();
            if h.shape != shape || (!raw_bits && dtype != frame_dtype) {
                return Err(Error::invalid(format!(
                    "out is {dtype}{}, the result is {frame_dtype}{}",
                    tuple(&shape),
                    tuple(&h.shape)
                )));
            }
            Ok(dst)
        })
    })
    .map_err(to_py)?;
    Ok(())
}

/// A shape as Python prints a tuple.
fn tuple(shape: &[u64]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The Python object a fresh buffer lives in.
#[derive(Clone, Copy)]
enum Kind {
    Bytes,
    ByteArray,
}

/// A new, uninitialised `bytes` or `bytearray` of `len` bytes (created with the GIL taken just
/// for that, and filled by the core without it) and the address of its data.
fn fresh_object(len: usize, kind: Kind) -> Result<(Py<PyAny>, *mut u8), Error> {
    let size = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| Error::invalid(format!("a buffer of {len} bytes is too large")))?;
    let (object, addr) = Python::attach(|py| -> PyResult<(Py<PyAny>, usize)> {
        // SAFETY: a NULL source asks CPython for an uninitialised object of `size` bytes, owned
        // by the returned reference (NULL leaves a Python exception, turned into `Err`); its
        // data pointer stays valid while the object lives, and it is not reallocated.
        unsafe {
            let obj = match kind {
                Kind::Bytes => pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size),
                Kind::ByteArray => pyo3::ffi::PyByteArray_FromStringAndSize(std::ptr::null(), size),
            };
            let obj = Bound::from_owned_ptr_or_err(py, obj)?;
            let data = match kind {
                Kind::Bytes => pyo3::ffi::PyBytes_AsString(obj.as_ptr()),
                Kind::ByteArray => pyo3::ffi::PyByteArray_AsString(obj.as_ptr()),
            };
            if data.is_null() {
                return Err(PyErr::fetch(py));
            }
            Ok((obj.unbind(), data as usize))
        }
    })
    .map_err(|e| Error::invalid(format!("cannot allocate {len} bytes: {e}")))?;
    Ok((object, addr as *mut u8))
}

/// A new `bytes` a frame is written into: asked for at the size the frame can reach, of which
/// only the frame's bytes are ever touched, and then cut to the frame's length.
struct FreshBytes {
    object: Py<PyAny>,
    ptr: *mut u8,
    capacity: usize,
}

// SAFETY: `ptr` points into `object`, which this value owns; nothing else sees the object before
// the core has filled it and the binding hands it to Python.
unsafe impl Send for FreshBytes {}

impl FreshBytes {
    fn new(capacity: usize) -> Result<Self, Error> {
        let (object, ptr) = fresh_object(capacity, Kind::Bytes)?;
        Ok(Self {
            object,
            ptr,
            capacity,
        })
    }
}

impl FrameBuffer for FreshBytes {
    fn memory(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: `capacity` bytes at `ptr`, inside `object`, borrowed through `self` only.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast(), self.capacity) }
    }

    unsafe fn set_len(&mut self, len: usize) {
        // A `bytes` may end before its allocation does: setting its size (stable ABI, as
        // `Py_SET_SIZE`) on an object nobody else holds yet, with the terminating NUL that
        // every `bytes` has, leaves a valid object whose untouched tail costs no memory.
        // SAFETY: `object` is a `bytes` of `capacity >= len` bytes (the caller's contract), with
        // room for its NUL at `len`; only this value refers to it.
        unsafe {
            (*self.object.as_ptr().cast::<pyo3::ffi::PyVarObject>()).ob_size = len as isize;
            *self.ptr.add(len) = 0;
        }
    }
}

/// A new, zeroed `bytearray` an array is decoded into.
struct FreshBuffer {
    object: Py<PyAny>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: as for `FreshBytes`.
unsafe impl Send for FreshBuffer {}

impl FreshBuffer {
    fn new(len: usize, threads: Option<usize>) -> Result<Self, Error> {
        let (object, ptr) = fresh_object(len, Kind::ByteArray)?;
        // Zeroing faults the fresh pages in, on the operation's threads (see `sfp_core::memory`).
        // SAFETY: `ptr` is valid for `len` bytes and nothing else accesses them yet.
        unsafe { sfp_core::memory::zero_fresh(ptr, len, threads)? };
        Ok(Self { object, ptr, len })
    }
}

impl AsMut<[u8]> for FreshBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `len` zeroed bytes at `ptr`, inside `object`, borrowed through `self` only.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// Writes the reduction of `src` (an array of `shape`) to `fmt` into `out` (same size); `out` may
/// be `src` itself.
#[pyfunction]
#[pyo3(signature = (src, out, dtype, shape, fmt, threads=None))]
fn quantize(
    py: Python<'_>,
    src: Option<PyBuffer<u8>>,
    out: PyBuffer<u8>,
    dtype: &str,
    shape: Vec<u64>,
    fmt: PyFormat,
    threads: Option<usize>,
) -> PyResult<()> {
    let dtype = DType::from_name(dtype).map_err(to_py)?;
    let format = fmt.to_core().map_err(to_py)?;
    let dst = bytes_of_mut(&out, "out")?;
    let result = match &src {
        Some(src) => {
            let data = bytes_of(src, "the array")?;
            maybe_detach(py, data.len(), || {
                sfp_core::quantize_shaped(data, dst, dtype, &shape, &format, threads)
            })
        }
        None => maybe_detach(py, dst.len(), || {
            sfp_core::quantize_in_place_shaped(dst, dtype, &shape, &format, threads)
        }),
    };
    result.map_err(to_py)
}

/// The header and per-chunk stream sizes of a plain frame, as a dict.
fn plain_info<'py>(py: Python<'py>, info: &sfp_core::FrameInfo) -> PyResult<Bound<'py, PyDict>> {
    let h = &info.header;
    let t = &h.target;
    let d = PyDict::new(py);
    d.set_item("dtype", t.dtype.name())?;
    d.set_item("shape", h.shape.clone())?;
    d.set_item("exp_bits", t.exp_bits)?;
    d.set_item("man_bits", t.man_bits)?;
    d.set_item("rounding", t.format.rounding.name())?;
    d.set_item("underflow", t.format.underflow.name())?;
    d.set_item("seed", t.format.seed)?;
    d.set_item("window_top", info.window_top)?;
    d.set_item("chunk_size", h.chunk_size)?;
    d.set_item("header_bytes", h.header_len)?;
    let chunks = PyList::empty(py);
    for c in &info.chunks {
        let cd = PyDict::new(py);
        cd.set_item("values", c.values)?;
        cd.set_item("coder", c.coder.name())?;
        cd.set_item(
            "mantissa_coder",
            match (&c.planes, c.mantissa) {
                (Some(planes), _) => planes.describe(),
                (None, Some(p)) => p.name(),
                (None, None) => "flat".to_string(),
            },
        )?;
        cd.set_item("header", c.header_bytes)?;
        cd.set_item("signs", c.sign_bytes)?;
        cd.set_item("exponents", c.exponent_bytes)?;
        cd.set_item("mantissas", c.mantissa_bytes)?;
        cd.set_item("exceptions", c.exception_bytes)?;
        cd.set_item("exception_count", c.exceptions)?;
        chunks.append(cd)?;
    }
    d.set_item("chunks", chunks)?;
    Ok(d)
}

/// The header and stream sizes of a frame, as a dict; a container frame's has its container name
/// and its parts' dicts under "parts".
#[pyfunction]
fn frame_info<'py>(py: Python<'py>, frame: PyBuffer<u8>) -> PyResult<Bound<'py, PyDict>> {
    let data = bytes_of(&frame, "the frame")?;
    if !sfp_core::frame::container::is_container(data) {
        let info = sfp_core::inspect(data).map_err(to_py)?;
        return plain_info(py, &info);
    }
    let info = sfp_core::inspect_container(data).map_err(to_py)?;
    let h = &info.header;
    let d = PyDict::new(py);
    d.set_item("dtype", h.dtype.name())?;
    d.set_item("shape", h.shape.clone())?;
    d.set_item("container", h.container.name())?;
    d.set_item("header_bytes", h.header_len)?;
    let parts = PyList::empty(py);
    for p in &info.parts {
        parts.append(plain_info(py, p)?)?;
    }
    d.set_item("parts", parts)?;
    Ok(d)
}

/// Encodes block-scaled codes (element codes of `shape`, one byte each, and their block scales) of
/// the block format `container` into a frame that decodes to `dtype`.
#[pyfunction]
#[pyo3(signature = (elements, scales, tensor_scale, container, dtype, shape, fmt, chunk_size=None, threads=None))]
#[allow(clippy::too_many_arguments)]
fn encode_blocks<'py>(
    py: Python<'py>,
    elements: PyBuffer<u8>,
    scales: PyBuffer<u8>,
    tensor_scale: Option<f32>,
    container: &str,
    dtype: &str,
    shape: Vec<u64>,
    fmt: PyFormat,
    chunk_size: Option<usize>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let Container::Block(block) = Container::from_name(container).map_err(to_py)? else {
        return Err(PyValueError::new_err(format!(
            "container={container:?} is not a block format: use one of {}",
            BlockFormat::ALL.map(|b| b.name()).join(", ")
        )));
    };
    let dtype = DType::from_name(dtype).map_err(to_py)?;
    let format = fmt.to_core().map_err(to_py)?;
    let (codes, scale_codes) = (
        bytes_of(&elements, "elements")?,
        bytes_of(&scales, "scales")?,
    );
    let options = Options {
        chunk_size,
        threads,
    };
    let frame = maybe_detach(py, codes.len(), || {
        sfp_core::encode_blocks(
            codes,
            scale_codes,
            tensor_scale,
            block,
            dtype,
            &shape,
            &format,
            &options,
        )
    })
    .map_err(to_py)?;
    Ok(PyBytes::new(py, &frame))
}

/// The codes of a block-format frame: (element codes, block scales, tensor scale, block format,
/// dtype of the values, shape).
type BlockCodes<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    f32,
    &'static str,
    &'static str,
    Vec<u64>,
);

/// Decodes a block-format frame to its codes.
#[pyfunction]
#[pyo3(signature = (frame, threads=None))]
fn decode_blocks<'py>(
    py: Python<'py>,
    frame: PyBuffer<u8>,
    threads: Option<usize>,
) -> PyResult<BlockCodes<'py>> {
    let data = bytes_of(&frame, "the frame")?;
    let (header, blocks) =
        maybe_detach(py, data.len(), || sfp_core::decode_blocks(data, threads)).map_err(to_py)?;
    let Container::Block(block) = header.container else {
        return Err(DecodeError::new_err("not a block-format frame"));
    };
    Ok((
        PyBytes::new(py, &blocks.elements),
        PyBytes::new(py, &blocks.scales),
        blocks.tensor_scale,
        block.name(),
        header.dtype.name(),
        header.shape,
    ))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("DecodeError", m.py().get_type::<DecodeError>())?;
    m.add("MAX_CHUNK", sfp_core::frame::MAX_CHUNK)?;
    m.add(
        "ROUNDINGS",
        Rounding::ALL.iter().map(|r| r.name()).collect::<Vec<_>>(),
    )?;
    m.add(
        "UNDERFLOWS",
        Underflow::ALL.iter().map(|u| u.name()).collect::<Vec<_>>(),
    )?;
    m.add(
        "EXPONENT_CODINGS",
        ExponentCoding::ALL
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>(),
    )?;
    m.add(
        "DTYPES",
        DType::ALL.iter().map(|d| d.name()).collect::<Vec<_>>(),
    )?;
    m.add("FORMAT_VERSION", sfp_core::frame::VERSION)?;
    m.add(
        "CONTAINER_VERSION",
        sfp_core::frame::container::CONTAINER_VERSION,
    )?;
    m.add("CONTAINERS", Container::names())?;
    m.add(
        "BLOCK_FORMATS",
        BlockFormat::ALL
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>(),
    )?;
    m.add_function(wrap_pyfunction!(encode_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(decode_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(decode_into, m)?)?;
    m.add("MAX_THREADS", sfp_core::MAX_THREADS)?;
    m.add("DEFAULT_LEVEL", CodingLevel::default().number())?;
    m.add("MAX_LEVEL", CodingLevel::Max.number())?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(frame_info, m)?)?;
    Ok(())
}
