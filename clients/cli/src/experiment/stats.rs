//! The statistics behind reports: means with 95% t intervals ([`mean_ci`]), and
//! paired comparisons between conditions ([`compare_paired`]): the paired t-test and
//! the Wilcoxon signed-rank test (exact without ties for n ≤ 50, else the normal
//! approximation with tie correction). Checked against scipy in the tests.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

/// Confidence level of every interval in reports.
pub const CONFIDENCE: f64 = 0.95;

/// A sample mean with its 95% t interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanCi {
    /// Sample size.
    pub n: usize,
    /// Sample mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1), when n ≥ 2.
    pub sd: Option<f64>,
    /// Lower and upper bounds of the 95% interval, when n ≥ 2.
    pub ci: Option<(f64, f64)>,
}

/// The two-sided critical value of Student's t with `df` degrees of freedom.
pub fn t_critical(level: f64, df: f64) -> f64 {
    let t = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    t.inverse_cdf(1.0 - (1.0 - level) / 2.0)
}

/// Mean and 95% t interval of `values`; `None` when empty.
pub fn mean_ci(values: &[f64]) -> Option<MeanCi> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Some(MeanCi {
            n,
            mean,
            sd: None,
            ci: None,
        });
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = var.sqrt();
    let half = t_critical(CONFIDENCE, (n - 1) as f64) * sd / (n as f64).sqrt();
    Some(MeanCi {
        n,
        mean,
        sd: Some(sd),
        ci: Some((mean - half, mean + half)),
    })
}

/// A one-sample (paired) t-test of the mean difference against zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TTest {
    /// The t statistic.
    pub t: f64,
    /// Degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Paired t-test on differences; `None` with fewer than two differences or when they
/// are all equal (the statistic is undefined).
pub fn paired_t_test(diffs: &[f64]) -> Option<TTest> {
    let m = mean_ci(diffs)?;
    let sd = m.sd?;
    // Equal differences leave only rounding noise in sd: the statistic is undefined.
    if sd <= 1e-12 * m.mean.abs().max(1.0) {
        return None;
    }
    let df = (m.n - 1) as f64;
    let t = m.mean / (sd / (m.n as f64).sqrt());
    let dist = StudentsT::new(0.0, 1.0, df).expect("df > 0");
    let p = (2.0 * dist.cdf(-t.abs())).min(1.0);
    Some(TTest { t, df, p })
}

/// A Wilcoxon signed-rank test of the differences against zero.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Wilcoxon {
    /// Non-zero differences used (zeros are dropped, as in Wilcoxon's original test).
    pub n: usize,
    /// Sum of the ranks of positive differences.
    pub w_plus: f64,
    /// Sum of the ranks of negative differences.
    pub w_minus: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// True when `p` is exact (no ties, n ≤ 50); otherwise it is the normal
    /// approximation with tie correction (no continuity correction).
    pub exact: bool,
}

impl Wilcoxon {
    /// The usual statistic, min(W+, W−).
    pub fn statistic(&self) -> f64 {
        self.w_plus.min(self.w_minus)
    }
}

/// Largest n for which the exact distribution is used.
const WILCOXON_EXACT_MAX_N: usize = 50;

/// Two values closer than this (relative) are tied; differences of metric shares are
/// ratios, and float noise must not break their ties.
fn nearly_equal(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Wilcoxon signed-rank test; `None` when every difference is zero (or none given).
pub fn wilcoxon_signed_rank(diffs: &[f64]) -> Option<Wilcoxon> {
    let mut d: Vec<f64> = diffs
        .iter()
        .copied()
        .filter(|v| !nearly_equal(*v, 0.0))
        .collect();
    let n = d.len();
    if n == 0 {
        return None;
    }
    d.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Average ranks over groups of tied absolute values.
    let mut ranks = vec![0.0; n];
    let mut tie_groups = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && nearly_equal(d[j].abs(), d[i].abs()) {
            j += 1;
        }
        let avg = (i + 1 + j) as f64 / 2.0;
        ranks[i..j].iter_mut().for_each(|r| *r = avg);
        if j - i > 1 {
            tie_groups.push(j - i);
        }
        i = j;
    }
    let w_plus: f64 = d
        .iter()
        .zip(&ranks)
        .filter(|(v, _)| **v > 0.0)
        .map(|(_, r)| r)
        .sum();
    let total = (n * (n + 1)) as f64 / 2.0;
    let w_minus = total - w_plus;
    let exact = tie_groups.is_empty() && n <= WILCOXON_EXACT_MAX_N;
    let p = if exact {
        exact_signed_rank_p(n, w_plus.round() as usize)
    } else {
        let mean = total / 2.0;
        let ties: f64 = tie_groups
            .iter()
            .map(|&t| (t * t * t - t) as f64)
            .sum::<f64>();
        let var = (n * (n + 1) * (2 * n + 1)) as f64 / 24.0 - ties / 48.0;
        if var <= 0.0 {
            1.0
        } else {
            let z = (w_plus.min(w_minus) - mean) / var.sqrt();
            (2.0 * Normal::standard().cdf(-z.abs())).min(1.0)
        }
    };
    Some(Wilcoxon {
        n,
        w_plus,
        w_minus,
        p,
        exact,
    })
}

/// Exact two-sided p-value of W+ = `w` with ranks 1..=n: the number of sign patterns
/// giving each rank sum, counted by dynamic programming.
fn exact_signed_rank_p(n: usize, w: usize) -> f64 {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0.0f64; max + 1];
    counts[0] = 1.0;
    for r in 1..=n {
        for s in (r..=max).rev() {
            counts[s] += counts[s - r];
        }
    }
    let total = 2f64.powi(n as i32);
    let lower: f64 = counts[..=w].iter().sum::<f64>() / total;
    let upper: f64 = counts[w..].iter().sum::<f64>() / total;
    (2.0 * lower.min(upper)).min(1.0)
}

/// A paired comparison of two conditions on one metric: differences `b − a`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// Mean difference and its 95% interval.
    pub diff: MeanCi,
    /// Paired t-test, when defined.
    pub t_test: Option<TTest>,
    /// Wilcoxon signed-rank test, when defined.
    pub wilcoxon: Option<Wilcoxon>,
}

/// Compares paired samples; `None` when there are no pairs. Panics if the lengths
/// differ (pairs are built by the caller).
pub fn compare_paired(a: &[f64], b: &[f64]) -> Option<PairedComparison> {
    assert_eq!(a.len(), b.len(), "paired samples must have equal length");
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    Some(PairedComparison {
        diff: mean_ci(&diffs)?,
        t_test: paired_t_test(&diffs),
        wilcoxon: wilcoxon_signed_rank(&diffs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn mean_ci_matches_scipy() {
        // scipy.stats.t.interval(0.95, 4, loc=3, scale=sem([1,2,3,4,5]))
        let m = mean_ci(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(m.mean, 3.0);
        let (lo, hi) = m.ci.unwrap();
        assert!(close(lo, 1.0367568385224428, 1e-9), "{lo}");
        assert!(close(hi, 4.963243161477557, 1e-9), "{hi}");
        assert!(close(t_critical(0.95, 1.0), 12.706204736174694, 1e-8));
        assert!(close(t_critical(0.95, 29.0), 2.045229642132703, 1e-9));
        let one = mean_ci(&[0.4]).unwrap();
        assert_eq!((one.n, one.mean, one.ci), (1, 0.4, None));
        assert!(mean_ci(&[]).is_none());
    }

    #[test]
    fn paired_t_test_matches_scipy() {
        // scipy.stats.ttest_1samp(x, 0) -> t=3.2857142857142856, p=0.01338128291872421
        let x = [0.1, 0.25, -0.07, 0.3, 0.15, 0.2, 0.05, 0.4];
        let t = paired_t_test(&x).unwrap();
        assert!(close(t.t, 3.2857142857142856, 1e-9), "{}", t.t);
        assert!(close(t.p, 0.01338128291872421, 1e-9), "{}", t.p);
        assert_eq!(t.df, 7.0);
        let (lo, hi) = mean_ci(&x).unwrap().ci.unwrap();
        assert!(close(lo, 0.04835722679137883, 1e-9));
        assert!(close(hi, 0.29664277320862115, 1e-9));
        // Constant differences: undefined.
        assert!(paired_t_test(&[0.2, 0.2, 0.2]).is_none());
        assert!(paired_t_test(&[0.2]).is_none());
    }

    #[test]
    fn wilcoxon_exact_matches_scipy() {
        // scipy.stats.wilcoxon(x, method='exact') -> statistic=2.0, p=0.0234375
        let x = [0.1, 0.25, -0.07, 0.3, 0.15, 0.2, 0.05, 0.4];
        let w = wilcoxon_signed_rank(&x).unwrap();
        assert!(w.exact);
        assert_eq!(w.statistic(), 2.0);
        assert_eq!((w.w_plus, w.w_minus), (34.0, 2.0));
        assert!(close(w.p, 0.0234375, 1e-12), "{}", w.p);
        // -> statistic=10.0, p=0.02099609375
        let x2 = [
            -0.5, 0.2, -0.3, 0.1, -0.4, -0.6, 0.7, -0.8, -0.9, -1.0, -1.1, -1.2,
        ];
        let w = wilcoxon_signed_rank(&x2).unwrap();
        assert_eq!(w.statistic(), 10.0);
        assert!(close(w.p, 0.02099609375, 1e-12), "{}", w.p);
        // Zeros are dropped: scipy.stats.wilcoxon([0, .1, .2, -.3, .4, .5, .6]) ->
        // statistic=3.0, p=0.15625
        let w = wilcoxon_signed_rank(&[0.0, 0.1, 0.2, -0.3, 0.4, 0.5, 0.6]).unwrap();
        assert_eq!((w.n, w.statistic()), (6, 3.0));
        assert!(close(w.p, 0.15625, 1e-12));
        assert!(wilcoxon_signed_rank(&[0.0, 0.0]).is_none());
    }

    #[test]
    fn wilcoxon_approximation_matches_scipy() {
        // Ties: scipy.stats.wilcoxon(z, method='approx') -> statistic=7.0,
        // p=0.03520187354135451
        let z = [0.1, 0.1, -0.2, 0.3, 0.3, 0.3, -0.1, 0.5, 0.2, 0.2];
        let w = wilcoxon_signed_rank(&z).unwrap();
        assert!(!w.exact);
        assert_eq!(w.statistic(), 7.0);
        // statrs' normal CDF agrees with scipy's to about 1e-11.
        assert!(close(w.p, 0.03520187354135451, 1e-10), "{}", w.p);
        // n = 60 without ties: statistic=822.0, p=0.49357801242517574
        let big = [
            0.445584, 0.921618, 0.430437, -1.203157, 1.005356, 0.546375, -0.436953, 0.681118,
            0.464572, 0.394132, 0.128422, 0.646713, -0.636454, -0.06291, -0.382119, 0.698846,
            0.139722, -0.192457, -0.681908, -0.157192, 0.108142, -0.175603, 1.394064, 1.106724,
            -2.611162, -1.789013, -0.074772, -0.32219, 0.313643, 0.317322, 2.217839, -1.012021,
            -0.277605, 2.142772, 0.746703, 0.763063, -0.414006, -1.548075, 0.267465, 0.209014,
            -1.127352, -0.583227, 0.027956, -0.844752, 0.00173, 0.195483, 0.135586, -0.406292,
            0.693748, 0.991167, 0.420848, -0.71823, 0.831652, -0.40144, 0.979161, -0.971787,
            1.014467, 0.079937, -1.148749, -0.213899,
        ];
        let w = wilcoxon_signed_rank(&big).unwrap();
        assert!(!w.exact);
        assert_eq!(w.statistic(), 822.0);
        assert!(close(w.p, 0.49357801242517574, 1e-10), "{}", w.p);
    }

    #[test]
    fn float_noise_does_not_break_ties() {
        // 0.3 - 0.2 and 0.2 - 0.1 differ in the last bits but are the same share.
        let d = [0.3 - 0.2, 0.2 - 0.1, 0.5];
        let w = wilcoxon_signed_rank(&d).unwrap();
        assert!(!w.exact, "the first two are tied");
        let c = compare_paired(&[0.1, 0.2], &[0.3, 0.3]).unwrap();
        assert!(close(c.diff.mean, 0.15, 1e-12));
    }
}
