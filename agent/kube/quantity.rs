//! Kubernetes resource quantities (`spec.containers[].resources`), exact enough for
//! `MilliValue()` and `Value()`, which round **up** to an integer
//! (`k8s.io/apimachinery/pkg/api/resource/quantity.go`):
//!
//! ```text
//! <quantity> ::= <sign>? <number> <suffix>
//! <number>   ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//! <suffix>   ::= Ki | Mi | Gi | Ti | Pi | Ei | n | u | m | "" | k | M | G | T | P | E | (e|E)<sign>?<digits>
//! ```
//!
//! The number is kept as a decimal mantissa and exponent rather than an `f64`, so that
//! `0.1` CPU is exactly 100 millicores and `1.5Gi` is exactly 1610612736 bytes.

use super::error::QuantityError;

/// More significant digits than this are cut (and the value rounded up); quantities that precise
/// do not occur in pod specs.
const MAX_DIGITS: usize = 36;

/// A parsed quantity: `±mantissa × 10^exp10 × 1024^pow1024`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: i128,
    exp10: i32,
    pow1024: u32,
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        if s.is_empty() {
            return Err(QuantityError::Empty);
        }
        let (negative, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let (number, suffix) = rest.split_at(number_len);
        let (mut mantissa, mut exp10) = parse_decimal(number)?;
        let pow1024 = match suffix {
            "Ki" => 1,
            "Mi" => 2,
            "Gi" => 3,
            "Ti" => 4,
            "Pi" => 5,
            "Ei" => 6,
            _ => {
                exp10 = exp10
                    .checked_add(decimal_suffix(suffix)?)
                    .ok_or(QuantityError::Exponent)?;
                0
            }
        };
        if mantissa == 0 {
            exp10 = 0;
        }
        // Normalise trailing zeros away so that exponent arithmetic stays small.
        while mantissa != 0 && mantissa % 10 == 0 {
            mantissa /= 10;
            exp10 = exp10.checked_add(1).ok_or(QuantityError::Exponent)?;
        }
        Ok(Quantity {
            negative: negative && mantissa != 0,
            mantissa,
            exp10,
            pow1024,
        })
    }

    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The value as a float (CPU in cores, memory in bytes).
    pub fn as_f64(&self) -> f64 {
        let v = self.mantissa as f64 * 10f64.powi(self.exp10) * 1024f64.powi(self.pow1024.cast_signed());
        if self.negative { -v } else { v }
    }

    /// `MilliValue()`: thousandths, rounded up (CPU millicores).
    pub fn milli_value(&self) -> f64 {
        self.scaled_ceil(3)
    }

    /// `Value()`: units, rounded up (memory bytes).
    pub fn value(&self) -> f64 {
        self.scaled_ceil(0)
    }

    /// `ceil(self × 10^scale)`, in exact integer arithmetic where it fits in an `i128`.
    fn scaled_ceil(&self, scale: i32) -> f64 {
        let exact = || -> Option<i128> {
            let mut n = self.mantissa.checked_mul(1024i128.checked_pow(self.pow1024)?)?;
            let k = self.exp10.checked_add(scale)?;
            if k >= 0 {
                n = n.checked_mul(10i128.checked_pow(k.unsigned_abs())?)?;
            } else {
                let Some(d) = 10i128.checked_pow(k.unsigned_abs()) else {
                    // Smaller than any representable step: ceil of a tiny positive is 1.
                    return Some(i128::from(n != 0 && !self.negative));
                };
                // Ceiling division (towards +∞) of a signed value.
                let q = n / d;
                n = if n % d != 0 && !self.negative { q + 1 } else { q };
            }
            Some(if self.negative { -n } else { n })
        };
        match exact() {
            Some(n) => n as f64,
            None => (self.as_f64() * 10f64.powi(scale)).ceil(),
        }
    }
}

/// The digits and the decimal point of `number` as `mantissa × 10^exp10`.
fn parse_decimal(number: &str) -> Result<(i128, i32), QuantityError> {
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(QuantityError::NoDigits);
    }
    let mut mantissa: i128 = 0;
    let mut exp10: i32 = 0;
    let mut digits = 0usize;
    let mut round_up = false;
    for (i, b) in int.bytes().chain(frac.bytes()).enumerate() {
        let d = i128::from(b - b'0');
        let in_fraction = i >= int.len();
        if mantissa == 0 && d == 0 {
            if in_fraction {
                exp10 -= 1;
            }
            continue;
        }
        if digits < MAX_DIGITS {
            mantissa = mantissa * 10 + d;
            digits += 1;
            if in_fraction {
                exp10 -= 1;
            }
        } else {
            round_up |= d != 0;
            if !in_fraction {
                exp10 += 1;
            }
        }
    }
    if round_up {
        mantissa += 1;
    }
    Ok((mantissa, exp10))
}

fn decimal_suffix(suffix: &str) -> Result<i32, QuantityError> {
    Ok(match suffix {
        "" => 0,
        "n" => -9,
        "u" => -6,
        "m" => -3,
        "k" => 3,
        "M" => 6,
        "G" => 9,
        "T" => 12,
        "P" => 15,
        "E" => 18,
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Suffix(s.to_string()));
            }
            // Kubernetes limits exponents far below this; anything larger is garbage.
            exp.parse::<i32>()
                .ok()
                .filter(|e| e.abs() <= 1000)
                .ok_or(QuantityError::Exponent)?
        }
        other => return Err(QuantityError::Suffix(other.to_string())),
    })
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "quantities and sums are integers, exact in f64")]
mod tests {
    use super::*;

    fn milli(s: &str) -> f64 {
        Quantity::parse(s).unwrap().milli_value()
    }
    fn bytes(s: &str) -> f64 {
        Quantity::parse(s).unwrap().value()
    }

    #[test]
    fn cpu_forms_give_millicores() {
        assert_eq!(milli("100m"), 100.0);
        assert_eq!(milli("0.5"), 500.0);
        assert_eq!(milli(".5"), 500.0);
        assert_eq!(milli("2"), 2000.0);
        assert_eq!(milli("2."), 2000.0);
        assert_eq!(milli("0.1"), 100.0);
        assert_eq!(milli("250m"), 250.0);
        assert_eq!(milli("1e3"), 1_000_000.0);
        assert_eq!(milli("1E3"), 1_000_000.0);
        assert_eq!(milli("5e-3"), 5.0);
        assert_eq!(milli("+1"), 1000.0);
        assert_eq!(milli("0"), 0.0);
        // MilliValue rounds up: 0.1m is 1 millicore, 1500u is 2.
        assert_eq!(milli("0.1m"), 1.0);
        assert_eq!(milli("1500u"), 2.0);
        assert_eq!(milli("1n"), 1.0);
    }

    #[test]
    fn memory_forms_give_bytes() {
        assert_eq!(bytes("128Mi"), 134_217_728.0);
        assert_eq!(bytes("1Gi"), 1_073_741_824.0);
        assert_eq!(bytes("1.5Gi"), 1_610_612_736.0);
        assert_eq!(bytes("1G"), 1_000_000_000.0);
        assert_eq!(bytes("500k"), 500_000.0);
        assert_eq!(bytes("64Mi"), 67_108_864.0);
        assert_eq!(bytes("2Ki"), 2048.0);
        assert_eq!(bytes("1Ti"), 1_099_511_627_776.0);
        assert_eq!(bytes("1Ei"), 1_152_921_504_606_846_976.0);
        assert_eq!(bytes("1E"), 1e18);
        assert_eq!(bytes("1e9"), 1e9);
        assert_eq!(bytes("129e6"), 129_000_000.0);
        assert_eq!(bytes("123"), 123.0);
        assert_eq!(bytes("0.5"), 1.0, "Value() rounds up");
        assert_eq!(bytes("100m"), 1.0);
        assert_eq!(bytes("0012"), 12.0);
    }

    #[test]
    fn negatives_parse_and_are_flagged() {
        let q = Quantity::parse("-100m").unwrap();
        assert!(q.is_negative());
        assert_eq!(q.milli_value(), -100.0);
        assert!(!Quantity::parse("-0").unwrap().is_negative());
    }

    #[test]
    fn garbage_is_rejected() {
        for s in [
            "", "m", "abc", "1.2.3", "1KiB", "1ki", "1 Gi", " 1", "1e", "1e+", "1ee3", "1e3.5", "Gi", "--1", "1mm",
            "1e99999",
        ] {
            assert!(Quantity::parse(s).is_err(), "{s:?} should be rejected");
        }
        assert_eq!(Quantity::parse("1KiB"), Err(QuantityError::Suffix("KiB".into())));
    }

    #[test]
    fn huge_values_fall_back_to_float_without_panicking() {
        assert_eq!(bytes("1e30"), 1e30);
        assert!(milli("99999999999999999999999999999999999999999Ei") > 1e50);
        assert_eq!(milli("1e-1000"), 1.0);
    }
}
