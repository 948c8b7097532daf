//! Kubernetes resource quantities (`500m`, `64Mi`, `1G`, `1e3`, `0.5`),
//! parsed by the rules of apimachinery's `resource.ParseQuantity`:
//!
//! ```text
//! quantity ::= signedNumber suffix
//! suffix   ::= binarySI | decimalExponent | decimalSI
//! binarySI ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI::= n | u | m | "" | k | M | G | T | P | E
//! decimalExponent ::= ("e" | "E") signedInteger
//! number   ::= digits | digits "." digits | digits "." | "." digits
//! ```
//!
//! Non-zero values are rounded *up*, never to zero ("if you want some
//! resources, you should get some"): `Value()` is the ceiling in units,
//! `MilliValue()` the ceiling in thousandths. The arithmetic here is exact
//! (decimal digits, no floats), so `0.1` CPU is 100m and `1.5Gi` is
//! 1610612736 bytes. Results beyond `i64::MAX` are refused rather than
//! capped: podrun has no use for an 8 EiB limit.

use std::fmt;

/// A parsed quantity: `±digits × 10^exp10 × 2^exp2`, exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    /// Significant decimal digits (no leading zeros; empty means zero).
    digits: Vec<u8>,
    exp10: i128,
    exp2: u32,
    text: String,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The largest |exponent| worth computing with: beyond it a non-zero value
/// is either far above `i64::MAX` or rounds up to the smallest unit.
const EXP_BOUND: i128 = 64;

impl Quantity {
    /// Parses `s` or says why it is not a quantity.
    pub fn parse(s: &str) -> Result<Quantity, String> {
        let bad = || format!("{s:?} is not a quantity (e.g. 500m, 64Mi, 1G, 1e3, 0.5)");
        let b = s.as_bytes();
        let mut pos = 0;
        let mut negative = false;
        if let Some(&c) = b.first() {
            if c == b'+' || c == b'-' {
                negative = c == b'-';
                pos = 1;
            }
        }
        let int_start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let int = &s[int_start..pos];
        let mut frac = "";
        if pos < b.len() && b[pos] == b'.' {
            pos += 1;
            let f_start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            frac = &s[f_start..pos];
        }
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let (exp10, exp2) = suffix(&s[pos..]).ok_or_else(bad)?;
        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|d| d - b'0').collect();
        let lead = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..lead);
        Ok(Quantity {
            negative: negative && !digits.is_empty(),
            digits,
            exp10: exp10 - frac.len() as i128,
            exp2,
            text: s.to_string(),
        })
    }

    /// True for a value below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The value in units, rounded up (Kubernetes' `Value()`); bytes for
    /// memory, bits per second for bandwidth.
    pub fn value(&self) -> Result<i64, String> {
        self.scaled(0)
    }

    /// The value in thousandths, rounded up (Kubernetes' `MilliValue()`);
    /// millicores for CPU.
    pub fn milli_value(&self) -> Result<i64, String> {
        self.scaled(3)
    }

    /// `ceil(|self| × 10^scale)`, with the sign put back.
    fn scaled(&self, scale: i128) -> Result<i64, String> {
        let too_large = || format!("{:?} is too large", self.text);
        if self.digits.is_empty() {
            return Ok(0);
        }
        let e = self.exp10 + scale;
        if e > EXP_BOUND {
            return Err(too_large());
        }
        if e < -EXP_BOUND - self.digits.len() as i128 - 20 {
            // Far below one unit: rounds up to the smallest one.
            return Ok(if self.negative { -1 } else { 1 });
        }
        let mut d = self.digits.clone();
        for _ in 0..self.exp2 {
            double(&mut d);
        }
        let (int, rest): (Vec<u8>, bool) = if e >= 0 {
            let mut v = d;
            v.extend(std::iter::repeat_n(0, e as usize));
            (v, false)
        } else {
            let cut = d.len().saturating_sub((-e) as usize);
            let rest = d[cut..].iter().any(|&x| x != 0);
            (d[..cut].to_vec(), rest)
        };
        let mut n: i64 = 0;
        for x in int {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(i64::from(x)))
                .ok_or_else(too_large)?;
        }
        if rest {
            // Kubernetes rounds away from zero (inf.RoundUp), both signs.
            n = n.checked_add(1).ok_or_else(too_large)?;
        }
        Ok(if self.negative { -n } else { n })
    }
}

/// Multiplies a big-endian decimal digit vector by two in place.
fn double(d: &mut Vec<u8>) {
    let mut carry = 0;
    for x in d.iter_mut().rev() {
        let v = *x * 2 + carry;
        *x = v % 10;
        carry = v / 10;
    }
    if carry > 0 {
        d.insert(0, carry);
    }
}

/// `(exp10, exp2)` for a suffix, or None if it is not one.
fn suffix(s: &str) -> Option<(i128, u32)> {
    let dec = |e: i128| Some((e, 0));
    match s {
        "" => dec(0),
        "n" => dec(-9),
        "u" => dec(-6),
        "m" => dec(-3),
        "k" => dec(3),
        "M" => dec(6),
        "G" => dec(9),
        "T" => dec(12),
        "P" => dec(15),
        "E" => dec(18),
        "Ki" => Some((0, 10)),
        "Mi" => Some((0, 20)),
        "Gi" => Some((0, 30)),
        "Ti" => Some((0, 40)),
        "Pi" => Some((0, 50)),
        "Ei" => Some((0, 60)),
        _ => {
            // An exponent: e/E then a signed integer that fits in an int64
            // (Go's strconv.ParseInt, which takes a leading '+' or '-').
            let rest = s.strip_prefix(['e', 'E'])?;
            let body = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            rest.parse::<i64>().ok().map(|e| (i128::from(e), 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn milli(s: &str) -> i64 {
        Quantity::parse(s).unwrap().milli_value().unwrap()
    }
    fn value(s: &str) -> i64 {
        Quantity::parse(s).unwrap().value().unwrap()
    }

    #[test]
    fn cpu_examples_from_the_kubernetes_docs() {
        // "Manage resources for containers": 0.1 CPU is 100m; 0.5 is 500m.
        assert_eq!(milli("0.1"), 100);
        assert_eq!(milli("100m"), 100);
        assert_eq!(milli("0.5"), 500);
        assert_eq!(milli("500m"), 500);
        assert_eq!(milli("1"), 1000);
        assert_eq!(milli("250m"), 250);
        assert_eq!(milli("2"), 2000);
        // Precision finer than 1m is rounded up, never to zero.
        assert_eq!(milli("0.0001"), 1);
        assert_eq!(milli("1.0005"), 1001);
        assert_eq!(milli("1n"), 1);
        assert_eq!(milli("1500u"), 2);
    }

    #[test]
    fn memory_examples_from_the_kubernetes_docs() {
        // "128974848, 129e6, 129M, 128974848000m, 123Mi: roughly the same".
        assert_eq!(value("128974848"), 128_974_848);
        assert_eq!(value("129e6"), 129_000_000);
        assert_eq!(value("129M"), 129_000_000);
        assert_eq!(value("128974848000m"), 128_974_848);
        assert_eq!(value("123Mi"), 123 << 20);
        // 400m of memory is 0.4 bytes, which rounds up to one byte.
        assert_eq!(value("400m"), 1);
        assert_eq!(value("64Mi"), 64 << 20);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("1Gi"), 1 << 30);
        assert_eq!(value("1.5Gi"), 1_610_612_736);
        assert_eq!(value("1e3"), 1000);
        assert_eq!(value("1E3"), 1000);
        assert_eq!(value("1E"), 1_000_000_000_000_000_000);
        assert_eq!(value("1Ei"), 1 << 60);
        assert_eq!(value("1k"), 1000);
        assert_eq!(value("1Ki"), 1024);
    }

    #[test]
    fn number_forms() {
        assert_eq!(value("5."), 5);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("+.5"), 500);
        assert_eq!(milli("-.5"), -500);
        assert_eq!(value("0"), 0);
        assert_eq!(value("000"), 0);
        assert_eq!(value("0.0Gi"), 0);
        assert_eq!(value("12e-1"), 2);
        assert_eq!(value("1e+3"), 1000);
        assert_eq!(value("-1.5"), -2, "rounded away from zero");
        assert!(Quantity::parse("-1").unwrap().is_negative());
        assert!(!Quantity::parse("-0").unwrap().is_negative());
        assert_eq!(value("1e-1000000"), 1);
        assert_eq!(milli("0.000000000000000000000000000000000000000000001"), 1);
    }

    #[test]
    fn refused() {
        for s in [
            "",
            ".",
            "+",
            "-",
            "1 Mi",
            " 1",
            "1mi",
            "1KI",
            "1K",
            "1b",
            "1MB",
            "1e",
            "1e+",
            "1e1.5",
            "1.2.3",
            "Mi",
            "1Mi1",
            "0x10",
            "1e99999999999999999999",
            "∞",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s:?} parsed");
        }
    }

    #[test]
    fn too_large_is_refused_not_wrapped() {
        assert_eq!(value("9223372036854775807"), i64::MAX);
        assert!(Quantity::parse("9223372036854775808")
            .unwrap()
            .value()
            .is_err());
        assert!(Quantity::parse("8Ei").unwrap().value().is_err());
        assert!(Quantity::parse("1e100").unwrap().value().is_err());
        assert!(Quantity::parse("10E").unwrap().milli_value().is_err());
    }
}
