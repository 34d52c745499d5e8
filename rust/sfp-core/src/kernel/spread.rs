//! The permutation that moves dense 32-bit values to the set lanes of an eight-lane mask, the
//! AVX2 stand-in for AVX-512's expand.

/// Per mask of eight lanes: for each set lane the index of the dense value it takes (the count of
/// set lanes below it); 0 for the clear lanes. Rows are 32-byte aligned for aligned loads.
#[repr(C, align(32))]
pub(crate) struct Spread(pub [[u32; 8]; 256]);

pub(crate) static SPREAD: Spread = Spread({
    let mut t = [[0u32; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut rank = 0;
        let mut k = 0;
        while k < 8 {
            if m >> k & 1 != 0 {
                t[m][k] = rank;
                rank += 1;
            }
            k += 1;
        }
        m += 1;
    }
    t
});
