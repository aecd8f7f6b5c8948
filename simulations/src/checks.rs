//! Closed-form results the model is checked against (research notes §2).

/// The fluid lower bound on the time for `n` peers to download `f` bytes from a server of upload
/// `u_s` when peers also upload (Kurose & Ross): `max(F/u_s, F/d_min, N·F/(u_s + Σu_i))`.
/// Rates in bytes per second.
pub fn fluid_p2p_bound(f: f64, u_s: f64, d_min: f64, n: usize, sum_u: f64) -> f64 {
    (f / u_s).max(f / d_min).max(n as f64 * f / (u_s + sum_u))
}

/// The client–server time: `max(N·F/u_s, F/d_min)`.
pub fn fluid_client_server(f: f64, u_s: f64, d_min: f64, n: usize) -> f64 {
    (n as f64 * f / u_s).max(f / d_min)
}

/// Expected rounds of push rumour spreading (fanout 1, complete graph): `log2 N + ln N`
/// (Frieze–Grimmett, Pittel; the O(1) term dropped).
pub fn push_rounds(n: usize) -> f64 {
    let n = n as f64;
    n.log2() + n.ln()
}

/// Expected Kademlia lookup rounds with k-buckets (each hop gains about log2(2k) bits):
/// `log_{2k} N + 1` (derived in the research notes).
pub fn kad_rounds(n: usize, k: usize) -> f64 {
    (n as f64).ln() / ((2 * k) as f64).ln() + 1.0
}

/// Quantile of sorted values (nearest rank), `None` when empty.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

/// Mean, `None` when empty.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        None
    } else {
        Some(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}

/// Two-sample Kolmogorov–Smirnov statistic (largest CDF gap).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}
