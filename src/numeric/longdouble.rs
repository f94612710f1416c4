//! HINCRBYFLOAT arithmetic in the C `long double` of the platform (x87 80-bit
//! extended precision on x86-64), through the small C shim in
//! `csrc/longdouble.c`: `strtold` to parse, `+` to add, `"%.17Lf"` to print.
//! Using the C library's own routines is what makes the digits identical to
//! Redis's (`10.5 + 0.1` prints `10.6`, which an `f64` cannot reproduce).
//!
//! This is the only module besides none other that uses `unsafe`: the FFI
//! calls. Every pointer passed is a live Rust slice of the stated length.
#![allow(unsafe_code)]

use std::os::raw::{c_char, c_int, c_longlong, c_uchar};

const LD_BYTES: usize = 16;
/// Redis's MAX_LONG_DOUBLE_CHARS: the formatting buffer.
const MAX_CHARS: usize = 5 * 1024;

extern "C" {
    fn hk_ld_parse(s: *const c_uchar, len: usize, out: *mut c_uchar) -> c_int;
    fn hk_ld_from_i64(v: c_longlong, out: *mut c_uchar);
    fn hk_ld_is_nan_or_inf(a: *const c_uchar) -> c_int;
    fn hk_ld_add(a: *mut c_uchar, b: *const c_uchar) -> c_int;
    fn hk_ld_format(a: *const c_uchar, out: *mut c_char, cap: usize) -> usize;
}

/// A C `long double`, held as its raw bytes.
#[derive(Clone, Copy)]
pub(crate) struct LongDouble([u8; LD_BYTES]);

impl LongDouble {
    /// Parses like Redis's `string2ld`; `None` when Redis would reply
    /// "not a valid float" (or "hash value is not a float").
    pub(crate) fn parse(s: &[u8]) -> Option<LongDouble> {
        // The shim copies into a 5 KiB buffer; longer input is rejected there,
        // and rejecting it here too keeps the bound visible on this side.
        if s.is_empty() || s.len() >= MAX_CHARS {
            return None;
        }
        let mut out = [0u8; LD_BYTES];
        // SAFETY: `s` is valid for `s.len()` bytes and `out` for LD_BYTES.
        let ok = unsafe { hk_ld_parse(s.as_ptr(), s.len(), out.as_mut_ptr()) };
        (ok == 1).then_some(LongDouble(out))
    }

    /// The exact conversion Redis applies to an integer-encoded stored value.
    pub(crate) fn from_i64(v: i64) -> LongDouble {
        let mut out = [0u8; LD_BYTES];
        // SAFETY: `out` is valid for LD_BYTES bytes.
        unsafe { hk_ld_from_i64(v, out.as_mut_ptr()) };
        LongDouble(out)
    }

    /// True for NaN and both infinities.
    pub(crate) fn is_nan_or_inf(&self) -> bool {
        // SAFETY: `self.0` is valid for LD_BYTES bytes.
        unsafe { hk_ld_is_nan_or_inf(self.0.as_ptr()) == 1 }
    }

    /// `self + other`, or `None` when the sum is NaN or infinite.
    pub(crate) fn checked_add(mut self, other: LongDouble) -> Option<LongDouble> {
        // SAFETY: both arrays are valid for LD_BYTES bytes and do not overlap.
        let bad = unsafe { hk_ld_add(self.0.as_mut_ptr(), other.0.as_ptr()) };
        (bad == 0).then_some(self)
    }

    /// Redis's `ld2string(..., LD_STR_HUMAN)` into its 5 KiB buffer; a value
    /// whose text does not fit yields the empty string, as in Redis.
    pub(crate) fn format(&self) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_CHARS];
        // SAFETY: `buf` is valid for MAX_CHARS bytes and the shim writes at most
        // that many (snprintf bound); `self.0` is valid for LD_BYTES bytes.
        let n = unsafe {
            hk_ld_format(
                self.0.as_ptr(),
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len(),
            )
        };
        buf.truncate(n.min(MAX_CHARS));
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(a: &str, b: &str) -> String {
        let x = LongDouble::parse(a.as_bytes()).unwrap();
        let y = LongDouble::parse(b.as_bytes()).unwrap();
        String::from_utf8(x.checked_add(y).unwrap().format()).unwrap()
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn digits_match_redis_on_x86_64() {
        // Vectors observed on a live Redis 7.0 (HINCRBYFLOAT).
        assert_eq!(add("10.5", "0.1"), "10.6");
        assert_eq!(add("10.6", "1e3"), "1010.59999999999999998");
        assert_eq!(add("3", "1e-17"), "3.00000000000000001");
        assert_eq!(add("0.1", "0.2"), "0.3");
        assert_eq!(add("1.23", "0.77"), "2");
        assert_eq!(add("2", "-0.1"), "1.9");
        assert_eq!(
            add("0", "123456789.123456789"),
            "123456789.12345678899873747"
        );
        assert_eq!(add("9223372036854775807", "1"), "9223372036854775808");
        assert_eq!(add("0", "1e-20"), "0");
        assert_eq!(add("0", "1e20"), "100000000000000000000");
        assert_eq!(add("0", "-0.0"), "0");
    }

    #[test]
    fn grammar_matches_string2ld() {
        for ok in [
            "1", "+1.5", ".5", "5.", "0.1e1", "2.5e-3", "0x10", "1e400", "inf", "-inf", "infinity",
        ] {
            assert!(LongDouble::parse(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in ["nan", " 1", "1 ", "1e", "", "1e5000", "1\0 2", "abc"] {
            assert!(LongDouble::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert!(LongDouble::parse(b"inf").unwrap().is_nan_or_inf());
        assert!(!LongDouble::parse(b"1e400").unwrap().is_nan_or_inf());
    }

    #[test]
    fn huge_values_print_all_digits_or_nothing() {
        // The long double nearest 1e308 lies just below it, so glibc's
        // "%.17Lf" prints 308 integer digits (what Redis stores, too).
        let v = LongDouble::parse(b"1e308").unwrap().format();
        assert_eq!(v.len(), 308);
        assert!(v.starts_with(b"99999999999999999996685879655845645660560099847415567207797"));
        // Even the largest finite long double (~1.19e4932) fits Redis's
        // 5 KiB buffer: 4933 integer digits.
        assert_eq!(LongDouble::parse(b"1.1e4932").unwrap().format().len(), 4933);
    }
}
