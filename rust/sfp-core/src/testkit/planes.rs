//! Harness of the `planes` fuzz target (and its corpus replay): the planes chunk coder.

use super::Failure;
use crate::chunk::planes::{self, Scratch, Word};
use crate::format::CodingLevel;
use crate::runtime::memory::Stores;
use crate::simd::Level;

/// Round-trips words taken from `data` through the planes coder at both speed-aware levels,
/// decoding at every SIMD level with cached and streaming stores (into an aligned output and one
/// 2 bytes off), and feeds the raw bytes to the decoder as a hostile chunk: an error or some
/// words, the same at every level, never a panic.
///
/// `data[0]`: word size (bit 0: 16 or 32 bits) and level (bit 1); `data[1]`: which words are
/// zeroed (every `data[1] % 8`th) and the hostile chunk's word count (`16 * data[1]`); the rest:
/// the words, little-endian, and the hostile chunk.
///
/// # Errors
/// A description of the first property that failed.
pub fn check_planes(data: &[u8]) -> Result<(), Failure> {
    let head = data.first().copied().unwrap_or(0);
    let word_bytes = if head & 1 == 0 { 2 } else { 4 };
    let level = if head & 2 == 0 {
        CodingLevel::Fast
    } else {
        CodingLevel::Default
    };
    let word = Word {
        bytes: word_bytes,
        bits: 8 * word_bytes as u32,
    };
    let every = usize::from(data.get(1).copied().unwrap_or(0) % 8);
    let body = data.get(2..).unwrap_or(&[]);
    let mut words = body[..body.len() / word_bytes * word_bytes].to_vec();
    if every > 0 {
        for w in words.chunks_exact_mut(word_bytes).step_by(every) {
            w.fill(0);
        }
    }
    let mut chunk = Vec::new();
    planes::encode(&words, word, level, &mut Scratch::default(), &mut chunk);
    for l in Level::available() {
        for (stores, offset) in [
            (Stores::Cached, 0),
            (Stores::Streaming, 0),
            (Stores::Streaming, 2),
        ] {
            // 32-byte aligned, then `offset` bytes in.
            let mut buf = vec![0u8; words.len() + 64];
            let start = buf.as_ptr().align_offset(32) + offset;
            let out = &mut buf[start..start + words.len()];
            planes::decode(l, &chunk, word, &mut Scratch::default(), out, stores).map_err(|e| {
                format!("planes coder cannot decode its own chunk at {l} ({stores:?}): {e}")
            })?;
            if out != words {
                return Err(format!(
                    "planes round trip at {l} ({stores:?}, {offset} bytes off) changed the words"
                ));
            }
        }
    }
    let hostile_words = 16 * usize::from(data.get(1).copied().unwrap_or(0));
    let mut first: Option<Result<Vec<u8>, String>> = None;
    for l in Level::available() {
        let mut out = vec![0u8; hostile_words * word_bytes];
        let got = planes::decode(
            l,
            body,
            word,
            &mut Scratch::default(),
            &mut out,
            Stores::Cached,
        )
        .map(|()| out)
        .map_err(|e| e.to_string());
        match &first {
            None => first = Some(got),
            Some(f) if f.is_ok() != got.is_ok() || (f.is_ok() && *f != got) => {
                return Err(format!("a hostile chunk decodes differently at {l}"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Appends the planes chunk of `words` at the default level (corpus seeds).
pub fn encode_for_seed(words: &[u8], word_bytes: usize, out: &mut Vec<u8>) {
    let whole = &words[..words.len() / word_bytes * word_bytes];
    let word = Word {
        bytes: word_bytes,
        bits: 8 * word_bytes as u32,
    };
    planes::encode(
        whole,
        word,
        CodingLevel::Default,
        &mut Scratch::default(),
        out,
    );
}
