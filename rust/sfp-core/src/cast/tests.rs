use super::*;

fn f32_to(x: f32, dst: DType, overflow: Overflow) -> u64 {
    cast_bits(u64::from(x.to_bits()), DType::F32, dst, overflow)
}

#[test]
fn e4m3_rounds_ties_to_even_and_overflows_to_nan() {
    let e4m3 = DType::F8E4M3;
    assert_eq!(f32_to(448.0, e4m3, Overflow::AsType), 0x7E);
    // 464 is the tie between 448 (mantissa 110) and the NaN pattern: even wins.
    assert_eq!(f32_to(464.0, e4m3, Overflow::AsType), 0x7E);
    assert_eq!(f32_to(464.5, e4m3, Overflow::AsType), 0x7F);
    assert_eq!(f32_to(-1e9, e4m3, Overflow::AsType), 0xFF);
    assert_eq!(f32_to(-1e9, e4m3, Overflow::Saturate), 0xFE);
    assert_eq!(f32_to(f32::INFINITY, e4m3, Overflow::AsType), 0x7F);
    assert_eq!(f32_to(f32::INFINITY, e4m3, Overflow::Saturate), 0x7E);
    assert_eq!(f32_to(f32::NAN, e4m3, Overflow::Saturate), 0x7F);
    // Smallest subnormal 2^-9; half of it ties to zero, a bit more rounds up.
    assert_eq!(f32_to(2f32.powi(-9), e4m3, Overflow::AsType), 1);
    assert_eq!(f32_to(2f32.powi(-10), e4m3, Overflow::AsType), 0);
    assert_eq!(f32_to(2f32.powi(-10) * 1.01, e4m3, Overflow::AsType), 1);
    assert_eq!(f32_to(-0.0, e4m3, Overflow::AsType), 0x80);
}

#[test]
fn ieee_targets_overflow_to_infinity_unless_saturating() {
    assert_eq!(f32_to(65520.0, DType::F16, Overflow::AsType), 0x7C00);
    assert_eq!(f32_to(65519.0, DType::F16, Overflow::AsType), 0x7BFF);
    assert_eq!(f32_to(1e6, DType::F8E5M2, Overflow::AsType), 0x7C);
    assert_eq!(f32_to(1e6, DType::F8E5M2, Overflow::Saturate), 0x7B);
    assert_eq!(
        f32_to(f32::NEG_INFINITY, DType::F8E5M2, Overflow::AsType),
        0xFC
    );
}

#[test]
fn types_without_specials_saturate_and_turn_nan_into_zero() {
    assert_eq!(f32_to(100.0, DType::F4E2M1, Overflow::AsType), 0x7);
    assert_eq!(
        f32_to(f32::NEG_INFINITY, DType::F6E2M3, Overflow::AsType),
        0x3F
    );
    assert_eq!(f32_to(f32::NAN, DType::F4E2M1, Overflow::AsType), 0x8);
    assert_eq!(f32_to(-f32::NAN, DType::F4E2M1, Overflow::AsType), 0x0);
    // 5 is the tie between 4 (0b110) and 6 (0b111): even wins.
    assert_eq!(f32_to(5.0, DType::F4E2M1, Overflow::AsType), 0x6);
}

#[test]
fn widening_is_exact_and_e8m0_has_no_zero() {
    for bits in 0..=0x7Eu64 {
        let wide = cast_bits(bits, DType::F8E4M3, DType::F32, Overflow::AsType);
        assert_eq!(
            cast_bits(wide, DType::F32, DType::F8E4M3, Overflow::AsType),
            bits
        );
    }
    assert_eq!(
        cast_bits(0, DType::F8E8M0, DType::F32, Overflow::AsType),
        u64::from(2f32.powi(-127).to_bits())
    );
    assert_eq!(
        cast_bits(127, DType::F8E8M0, DType::F32, Overflow::AsType),
        u64::from(1f32.to_bits())
    );
}
