//! Frozen format: the golden frames in `tests/golden/v<N>/` (one directory per format version) must
//! decode bit-exactly to the arrays stored beside them, in this and every later version.
//!
//! The frames are written by this test only when `SFP_WRITE_GOLDEN=1` is set, once per format version
//! (`sfp_core::frame::VERSION`) and when a case is added: existing files are never rewritten (unless
//! `SFP_OVERWRITE_GOLDEN=1` is also set, which is only right before a version is released).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

use sfp_core::frame::container::is_container;
use sfp_core::testkit::golden::cases;
use sfp_core::{decode_into, encode, inspect, inspect_container, quantize_shaped, Options};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn write_current_version() {
    let dir = golden_dir().join(format!("v{}", sfp_core::frame::VERSION));
    let overwrite = std::env::var_os("SFP_OVERWRITE_GOLDEN").is_some();
    fs::create_dir_all(&dir).unwrap();
    for case in cases() {
        if dir.join(format!("{}.sfp", case.name)).exists() && !overwrite {
            continue;
        }
        let options = Options {
            chunk_size: Some(case.chunk_size),
            threads: Some(1),
        };
        let frame = encode(
            &case.values,
            case.dtype,
            &case.shape,
            &case.format,
            &options,
        )
        .unwrap();
        let mut expected = vec![0u8; case.values.len()];
        quantize_shaped(
            &case.values,
            &mut expected,
            case.dtype,
            &case.shape,
            &case.format,
            Some(1),
        )
        .unwrap();
        fs::write(dir.join(format!("{}.sfp", case.name)), &frame).unwrap();
        fs::write(dir.join(format!("{}.out", case.name)), &expected).unwrap();
    }
}

/// Every golden frame of every version, as (path of the frame, frame bytes, expected array bytes).
fn golden_frames() -> Vec<(PathBuf, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut versions: Vec<PathBuf> = fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    versions.sort();
    for dir in versions {
        let mut frames: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sfp"))
            .collect();
        frames.sort();
        for path in frames {
            let frame = fs::read(&path).unwrap();
            let expected = fs::read(path.with_extension("out")).unwrap();
            out.push((path, frame, expected));
        }
    }
    out
}

#[test]
fn golden_frames_decode_bit_exactly() {
    if std::env::var_os("SFP_WRITE_GOLDEN").is_some() {
        write_current_version();
    }
    let frames = golden_frames();
    let current = golden_dir().join(format!("v{}", sfp_core::frame::VERSION));
    for case in cases() {
        assert!(
            current.join(format!("{}.sfp", case.name)).exists(),
            "golden frame {} of the current version is missing: run with SFP_WRITE_GOLDEN=1",
            case.name
        );
    }
    assert!(frames.len() >= cases().len());
    for (path, frame, expected) in &frames {
        let nbytes = if is_container(frame) {
            inspect_container(frame).map(|info| info.header.nbytes())
        } else {
            inspect(frame).map(|info| info.header.nbytes())
        };
        let nbytes = nbytes.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(nbytes, expected.len(), "{}", path.display());
        let mut out = vec![0u8; expected.len()];
        decode_into(frame, &mut out, Some(2)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(out == *expected, "{} decodes differently", path.display());
    }
}

#[test]
fn golden_cases_still_quantize_to_the_stored_arrays() {
    // The reduction itself is frozen too: today's quantize of each case's source gives the stored
    // array of the current version (a change here changes what old frames mean).
    let current = golden_dir().join(format!("v{}", sfp_core::frame::VERSION));
    for case in cases() {
        let Ok(expected) = fs::read(current.join(format!("{}.out", case.name))) else {
            continue; // reported by the test above
        };
        let mut out = vec![0u8; case.values.len()];
        quantize_shaped(
            &case.values,
            &mut out,
            case.dtype,
            &case.shape,
            &case.format,
            Some(1),
        )
        .unwrap();
        assert!(out == expected, "{}: quantize changed", case.name);
    }
}
