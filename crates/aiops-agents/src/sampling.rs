//! Thompson sampling: draws from Beta posteriors, so that a fix with a little less evidence
//! still gets tried now and then instead of never.

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang, 2000; shape < 1 by boosting).
fn gamma(shape: f64, rng: &mut fastrand::Rng) -> f64 {
    if shape < 1.0 {
        let u = rng.f64().max(f64::MIN_POSITIVE);
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.f64().max(f64::MIN_POSITIVE);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A Beta(alpha, beta) draw; both parameters must be positive.
pub(crate) fn beta(alpha: f64, beta: f64, rng: &mut fastrand::Rng) -> f64 {
    let x = gamma(alpha, rng);
    let y = gamma(beta, rng);
    if x + y == 0.0 {
        0.5
    } else {
        x / (x + y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_have_the_beta_mean_and_spread() {
        let mut rng = fastrand::Rng::with_seed(7);
        for (a, b) in [(1.0, 1.0), (10.0, 2.0), (2.0, 1.0), (0.5, 0.5), (30.0, 70.0)] {
            let draws: Vec<f64> = (0..20_000).map(|_| beta(a, b, &mut rng)).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
            let expected_var = a * b / ((a + b).powi(2) * (a + b + 1.0));
            assert!((mean - a / (a + b)).abs() < 0.01, "Beta({a}, {b}) mean {mean}");
            assert!((var - expected_var).abs() < 0.01, "Beta({a}, {b}) variance {var}");
            assert!(draws.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }
}
