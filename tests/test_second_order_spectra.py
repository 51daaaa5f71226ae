"""tfgrad.second_order: Hessian spectra (exact and Lanczos), traces (Hutch++, Hutchinson),
densities (stochastic Lanczos quadrature) and Newton directions (dense and CG), against
analytic Hessians, numpy.linalg and scipy.sparse.linalg.eigsh on the same HVPs."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from known_functions import rosenbrock, rosenbrock_hessian

import tfgrad as tg
from tfgrad.errors import (
    DtypeError,
    NegativeCurvatureError,
    OptionError,
    SecondOrderError,
    ShapeError,
    TfgradError,
)
from tfgrad.second_order import (
    hessian_density,
    hessian_spectrum,
    hessian_trace,
    newton_direction,
)
from tfgrad.second_order._operator import HessianOperator


def quadratic(eigenvalues: np.ndarray, seed: int = 0):
    """``f(x) = xᵀAx / 2`` with A = U diag(eigenvalues) Uᵀ, U a random rotation: H = A."""
    n = len(eigenvalues)
    u, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    a = (u * eigenvalues) @ u.T
    a = 0.5 * (a + a.T)
    at = tg.tensor(a)
    return (lambda x: 0.5 * tg.sum(x * tg.matmul(at, x))), a


def rel_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


X_ROSEN = np.random.default_rng(3).uniform(-1.5, 1.5, 80)


# ---- hessian_spectrum: exact ----
def test_exact_spectrum_of_rosenbrock_equals_eigvalsh_of_the_analytic_hessian():
    r = hessian_spectrum(rosenbrock, X_ROSEN, method="exact")
    h = rosenbrock_hessian(X_ROSEN)
    assert r.method == "exact" and r.hvps == len(X_ROSEN) and r.converged
    assert rel_err(r.eigenvalues, np.linalg.eigvalsh(h)) < 1e-12
    # the eigenvectors are eigenvectors of the analytic Hessian, orthonormal
    v = r.eigenvectors
    assert rel_err(h @ v, v * r.eigenvalues) < 1e-10
    assert np.allclose(v.T @ v, np.eye(len(X_ROSEN)), atol=1e-10)


def test_exact_spectrum_of_a_quadratic_form_is_its_known_spectrum():
    known = np.array([-3.0, -0.5, 0.25, 1.0, 1.0, 2.0, 7.5, 40.0])
    f, _ = quadratic(known)
    r = hessian_spectrum(f, np.zeros(len(known)))
    assert r.method == "exact" and "n = 8" in r.reason
    assert rel_err(r.eigenvalues, known) < 1e-12
    top = hessian_spectrum(f, np.zeros(8), k=3, which="top")
    assert rel_err(top.eigenvalues, known[-3:]) < 1e-12 and top.eigenvectors.shape == (8, 3)
    both = hessian_spectrum(f, np.zeros(8), k=3, which="both")  # one low, two high
    assert rel_err(both.eigenvalues, known[[0, 6, 7]]) < 1e-12


# ---- hessian_spectrum: Lanczos ----
@pytest.mark.parametrize("which", ["top", "bottom", "both"])
def test_lanczos_equals_eigvalsh_of_the_exact_hessian(which):
    n, k = len(X_ROSEN), 6
    exact = np.linalg.eigvalsh(tg.hessian(rosenbrock)(tg.tensor(X_ROSEN)).numpy())
    r = hessian_spectrum(rosenbrock, X_ROSEN, k=k, method="lanczos", which=which, seed=1)
    idx = {"top": np.arange(n - k, n), "bottom": np.arange(k),
           "both": np.r_[np.arange(3), np.arange(n - 3, n)]}[which]  # fmt: skip
    assert r.method == "lanczos" and r.converged
    assert rel_err(r.eigenvalues, exact[idx]) < 1e-8
    # what it cost is what it ran, and the residual norms it reports are the true ones
    assert r.hvps == r.lanczos_steps and r.basis_size == min(n, max(2 * k + 1, 20)) == 20
    h = rosenbrock_hessian(X_ROSEN)
    true_res = np.linalg.norm(h @ r.eigenvectors - r.eigenvectors * r.eigenvalues, axis=0)
    assert np.all(true_res <= 1e-10 * np.abs(exact).max() + 1e-6)
    assert np.all(r.residual_norms <= 1e-10 * np.abs(exact).max())


def test_lanczos_finds_repeated_eigenvalues_with_their_multiplicity():
    known = np.array([1.0, 1.0, 1.0, 2.0, 5.0, 5.0, 9.0, 9.0, 9.0, 9.0])
    f, _ = quadratic(known, seed=2)
    r = hessian_spectrum(f, np.zeros(10), k=5, method="lanczos", which="top", seed=0)
    assert rel_err(r.eigenvalues, known[-5:]) < 1e-10


def clustered(n: int = 400):
    """A diagonal quadratic (HVP = c * v) whose spectrum is a cluster 1 + 1e-6 i, separated
    values below (-2, -1.5, 0.2) and above (3, 4) it, and a top eigenvalue 5 of multiplicity 3:
    plain Lanczos from one vector sees one copy of 5, and resolves the cluster's ends slowly."""
    c = 1.0 + 1e-6 * np.arange(n)
    c[:3], c[-5:] = [-2.0, -1.5, 0.2], [3.0, 4.0, 5.0, 5.0, 5.0]
    c = np.random.default_rng(0).permutation(c)
    ct = tg.tensor(c)
    return (lambda x: 0.5 * tg.sum(ct * x * x)), c


WANTED = {"top": lambda n, k: np.arange(n - k, n), "bottom": lambda n, k: np.arange(k),
          "both": lambda n, k: np.r_[np.arange(k // 2), np.arange(n - k + k // 2, n)]}  # fmt: skip


def test_lanczos_agrees_with_scipy_eigsh_on_the_same_hvps():
    sla = pytest.importorskip("scipy.sparse.linalg")
    x = X_ROSEN[:60]
    op = HessianOperator(rosenbrock, x, "test")
    lin = sla.LinearOperator((60, 60), matvec=op.matvec, dtype=np.float64)
    for which, scipy_which in (("top", "LA"), ("bottom", "SA")):
        ref = np.sort(sla.eigsh(lin, k=4, which=scipy_which, tol=1e-12)[0])
        ours = hessian_spectrum(rosenbrock, x, k=4, method="lanczos", which=which)
        assert rel_err(ours.eigenvalues, ref) < 1e-8
    # a clustered spectrum, each end and both (scipy's "BE"): the same values, and about the
    # same HVPs (ours may add the k + 10 of its check for missed repeated eigenvalues)
    f, c = clustered()
    n, k = len(c), 6
    for which, scipy_which in (("top", "LA"), ("bottom", "SA"), ("both", "BE")):
        op = HessianOperator(f, np.zeros(n), "test")
        lin = sla.LinearOperator((n, n), matvec=op.matvec, dtype=np.float64)
        ref = np.sort(sla.eigsh(lin, k=k, which=scipy_which, tol=1e-10)[0])
        ours = hessian_spectrum(f, np.zeros(n), k=k, method="lanczos", which=which, seed=1)
        assert ours.converged and rel_err(ours.eigenvalues, ref) < 1e-10
        assert rel_err(ours.eigenvalues, np.sort(c)[WANTED[which](n, k)]) < 1e-10
        assert ours.hvps <= 2 * op.hvps + k + 10


@pytest.mark.parametrize("which", ["top", "bottom", "both"])
def test_thick_restart_converges_on_a_clustered_spectrum_in_a_bounded_basis(which):
    f, c = clustered()
    n, k = len(c), 6
    exact = np.linalg.eigvalsh(np.diag(c))[WANTED[which](n, k)]
    r = hessian_spectrum(f, np.zeros(n), k=k, method="lanczos", which=which, seed=0)
    assert r.converged and r.method == "lanczos"
    # the memory: a basis of ncv = max(2k + 1, 20) vectors, however many restarts ran
    assert r.basis_size == 20 and r.restarts >= 1 and r.hvps == r.lanczos_steps
    assert f"after {r.hvps} HVPs, {r.restarts} restarts, a basis of 20 vectors" in r.reason
    scale = np.abs(c).max()
    assert np.all(r.residual_norms <= 1e-10 * scale)
    # each value is within its error estimate of the true one (Weyl), to rounding
    assert np.all(np.abs(r.eigenvalues - exact) <= r.residual_norms + 1e-12 * scale)
    # the estimates bound the true residuals, and the vectors are orthonormal
    y = r.eigenvectors
    true_res = np.linalg.norm(c[:, None] * y - y * r.eigenvalues, axis=0)
    assert np.all(true_res <= r.residual_norms + 1e-12 * scale)
    assert np.allclose(y.T @ y, np.eye(k), atol=1e-10)
    # a smaller basis (6 kept + 8) still converges, within its memory bound
    small = hessian_spectrum(f, np.zeros(n), k=k, method="lanczos", which=which, ncv=14)
    assert small.converged and small.basis_size <= 14
    assert np.all(np.abs(small.eigenvalues - exact) <= small.residual_norms + 1e-12 * scale)


def test_the_old_unrestarted_budget_fails_where_the_restarted_method_converges():
    f, c = clustered()
    n, k = len(c), 6
    exact = np.sort(c)[:k]  # -2, -1.5, 0.2 and the cluster's bottom three, 1e-6 apart
    # plain Lanczos (ncv = max_steps: never restarted) with the former default budget of
    # min(n, max(3k + 50, 100)) = 100 steps, a basis of 100 vectors
    plain = hessian_spectrum(f, np.zeros(n), k=k, method="lanczos", which="bottom",
                             ncv=100, max_steps=100)  # fmt: skip
    assert not plain.converged and plain.restarts == 0 and plain.basis_size == 100
    assert plain.hvps == plain.lanczos_steps == 100
    assert "stopped at max_steps = 100 HVPs" in plain.reason
    assert np.max(np.abs(plain.eigenvalues - exact)) > 1e-10  # it has not resolved the cluster
    restarted = hessian_spectrum(f, np.zeros(n), k=k, method="lanczos", which="bottom")
    assert restarted.converged and restarted.basis_size == 20 and restarted.hvps > 100
    assert np.max(np.abs(restarted.eigenvalues - exact)) < 1e-10


def test_a_repeated_top_eigenvalue_is_found_with_its_multiplicity_at_every_basis_size():
    f, c = clustered()
    for ncv in (None, 8, 100):  # restarted, tightly restarted, plain
        r = hessian_spectrum(f, np.zeros(len(c)), k=3, method="lanczos", ncv=ncv, seed=0)
        # one Krylov space sees 5 once; the check from a fresh vector finds the other two
        assert r.converged and rel_err(r.eigenvalues, [5.0, 5.0, 5.0]) < 1e-10
        assert r.restarts >= 1 and r.hvps == r.lanczos_steps


def test_the_hvp_budget_stops_the_restarted_method_and_says_so():
    f, c = clustered()
    r = hessian_spectrum(f, np.zeros(len(c)), k=6, method="lanczos", which="bottom", max_steps=50)
    assert not r.converged and r.hvps == r.lanczos_steps == 50 and r.basis_size == 20
    assert "stopped at max_steps = 50 HVPs" in r.reason and "of 6 residuals above tol" in r.reason
    assert np.any(r.residual_norms > 1e-10 * np.abs(c).max())
    x = np.zeros(len(c))
    for bad in ({"ncv": 6}, {"ncv": 401}, {"ncv": 7.5}, {"max_steps": 5}):
        with pytest.raises(SecondOrderError, match=r"hessian_spectrum: (ncv|max_steps)"):
            hessian_spectrum(f, x, k=6, method="lanczos", **bad)


def test_auto_and_the_start_vector_seed():
    f, _ = quadratic(np.linspace(1.0, 3.0, 30))
    a = hessian_spectrum(f, np.zeros(30), k=2, method="lanczos", seed=5)
    b = hessian_spectrum(f, np.zeros(30), k=2, method="lanczos", seed=tg.random.Generator(5))
    c = hessian_spectrum(f, np.zeros(30), k=2, method="lanczos", seed=np.random.default_rng(5))
    assert a.reason.startswith("method='lanczos' was asked for; all 2 wanted residuals")
    for r in (b, c):
        assert rel_err(r.eigenvalues, a.eigenvalues) < 1e-10


def test_lanczos_at_100000_parameters():
    # cheap and separable: H = diag(2c + 1.2 z²) with a top of well-separated outliers
    n = 100_000
    c = np.linspace(1.0, 2.0, n)
    c[:4] = [30.0, 40.0, 50.0, 60.0]
    ct = tg.tensor(c)
    z = np.full(n, 0.5)
    r = hessian_spectrum(lambda x: tg.sum(ct * x**2 + 0.1 * x**4), z, k=3, which="top", seed=0)
    assert r.method == "lanczos" and "100000 > 1024" in r.reason
    expected = np.sort(2 * c + 1.2 * z**2)[-3:]
    assert r.converged and rel_err(r.eigenvalues, expected) < 1e-8
    assert r.eigenvectors.shape == (n, 3) and r.hvps <= 100


# ---- hessian_trace ----
def decaying_quadratic(n=60, seed=0):
    known = 100.0 * 0.7 ** np.arange(n) + np.random.default_rng(seed).uniform(0, 0.1, n)
    return (*quadratic(known, seed), known.sum())


def test_hutch_plus_plus_is_within_its_stated_error_of_a_known_trace():
    f, _, trace = decaying_quadratic()
    for seed in range(3):
        r = hessian_trace(f, np.zeros(60), num_matvecs=30, seed=seed)
        assert r.method == "hutch++" and r.hvps == 30 and r.std_error > 0
        assert abs(r.trace - trace) <= 4 * r.std_error
    # Hutchinson, with the same HVPs, errs much more on a decaying spectrum (the point of ++)
    errs_pp = [abs(hessian_trace(f, np.zeros(60), num_matvecs=30, seed=s).trace - trace)
               for s in range(5)]  # fmt: skip
    errs_h = [abs(hessian_trace(f, np.zeros(60), "hutchinson", 30, seed=s).trace - trace)
              for s in range(5)]  # fmt: skip
    assert np.mean(errs_pp) < np.mean(errs_h)


def test_hutchinson_is_within_its_stated_error_and_hutch_plus_plus_exact_when_q_spans():
    f, a, trace = decaying_quadratic(n=20)
    r = hessian_trace(f, np.zeros(20), method="hutchinson", num_matvecs=200, seed=0)
    assert r.hvps == 200 and abs(r.trace - trace) <= 4 * r.std_error
    full = hessian_trace(f, np.zeros(20), num_matvecs=60)  # 20 sketch vectors span R^20
    assert abs(full.trace - np.trace(a)) < 1e-9 * abs(trace) and full.std_error == 0.0


# ---- hessian_density ----
def test_slq_density_integrates_to_one_and_its_mean_is_trace_over_n():
    f, a, trace = decaying_quadratic(n=50)
    n = 50
    d = hessian_density(f, np.zeros(n), num_probes=8, lanczos_steps=20, seed=0)
    assert d.hvps == 8 * 20 and d.nodes.shape == d.weights.shape == (8, 20)
    assert np.allclose(d.weights.sum(axis=1), 1.0)
    assert abs(np.trapezoid(d.density, d.grid) - 1.0) < 1e-6
    mean = np.trapezoid(d.grid * d.density, d.grid)
    assert abs(mean * n - d.trace) < 1e-6 * abs(trace)  # the density's mean is its trace / n
    assert abs(d.trace - trace) <= 4 * d.trace_std_error
    # the nodes lie within the spectrum, and reach its ends (Lanczos finds extremes first)
    ev = np.linalg.eigvalsh(a)
    assert d.nodes.min() >= ev[0] - 1e-8 and d.nodes.max() <= ev[-1] + 1e-8
    assert abs(d.nodes.max() - ev[-1]) < 1e-8 * ev[-1]


def test_slq_of_a_diagonal_hessian_gives_the_exact_trace():
    # with Rademacher probes vᵀHv is exactly tr(H) for a diagonal H
    h = np.linspace(-1.0, 4.0, 40)
    ht = tg.tensor(h)
    d = hessian_density(lambda x: 0.5 * tg.sum(ht * x * x), np.zeros(40), 3, 10, seed=1)
    assert abs(d.trace - h.sum()) < 1e-10 and d.trace_std_error < 1e-10


# ---- newton_direction ----
def convex(n=40, seed=0):
    """Log-sum-exp of an affine map plus a small quadratic: smooth, strictly convex."""
    rng = np.random.default_rng(seed)
    m = tg.tensor(rng.standard_normal((n + 5, n)))
    b = tg.tensor(rng.standard_normal(n + 5))
    return lambda x: tg.logsumexp(tg.matmul(m, x) + b) + 0.05 * tg.sum(x * x)


@pytest.mark.parametrize("damping", [0.0, 0.7])
def test_newton_cg_equals_the_dense_solve(damping):
    f = convex()
    x = np.random.default_rng(1).standard_normal(40) * 0.3
    dense = newton_direction(f, x, damping=damping, method="dense")
    cg = newton_direction(f, x, damping=damping, method="cg", tol=1e-10)
    h = tg.hessian(f)(tg.tensor(x)).numpy()
    g = tg.grad(f)(tg.tensor(x)).numpy()
    expected = np.linalg.solve(h + damping * np.eye(40), -g)
    assert rel_err(dense.direction, expected) < 1e-10 and dense.hvps == 40
    assert rel_err(cg.direction, expected) < 1e-8
    assert cg.converged and cg.hvps == cg.iterations <= 40
    assert cg.residual_norm <= 1e-10 * np.linalg.norm(g)
    assert cg.is_descent and dense.is_descent and cg.damping == damping


def test_newton_auto_says_which_and_why():
    small = newton_direction(convex(10), np.zeros(10))
    assert small.method == "dense" and "n = 10 <= 512" in small.reason
    n = 600
    c = tg.tensor(np.linspace(1.0, 5.0, n))
    big = newton_direction(lambda x: tg.sum(c * (x - 1.0) ** 2), np.zeros(n))
    assert big.method == "cg" and "n = 600 > 512" in big.reason and "never formed" in big.reason
    assert np.allclose(big.direction, 1.0) and big.iterations < n


def test_cg_raises_on_negative_curvature_and_damping_fixes_it():
    x = np.array([0.0, 1.0, 1.0, 1.0])  # a Rosenbrock point with an indefinite Hessian
    lowest = np.linalg.eigvalsh(rosenbrock_hessian(x))[0]
    assert lowest < 0
    with pytest.raises(NegativeCurvatureError, match="newton_direction.*damping"):
        newton_direction(rosenbrock, x, method="cg")
    assert issubclass(NegativeCurvatureError, TfgradError)
    damped = newton_direction(rosenbrock, x, damping=-lowest + 1.0, method="cg", tol=1e-12)
    dense = newton_direction(rosenbrock, x, damping=-lowest + 1.0, method="dense")
    assert damped.converged and rel_err(damped.direction, dense.direction) < 1e-8
    # dense gives the undamped Newton step at a saddle, and says whether it descends
    undamped = newton_direction(rosenbrock, x, method="dense")
    h, g = rosenbrock_hessian(x), undamped.gradient
    assert rel_err(undamped.direction, np.linalg.solve(h, -g)) < 1e-10


# ---- bad input ----
def test_bad_input_gets_named_errors():
    f, _ = quadratic(np.arange(1.0, 6.0))
    x = np.zeros(5)
    with pytest.raises(ShapeError, match=r"hessian_spectrum: f must return one number.*\(5,\)"):
        hessian_spectrum(lambda z: z * z, x)
    with pytest.raises(ShapeError, match="newton_direction: f must return one number"):
        newton_direction(lambda z: z * z, x)
    with pytest.raises(SecondOrderError, match=r"k must .* 1 <= k <= n = 5"):
        hessian_spectrum(f, x, k=6)
    with pytest.raises(SecondOrderError, match=r"k must .* 1 <= k <= n = 5"):
        hessian_spectrum(f, x, k=0, method="lanczos")
    with pytest.raises(OptionError, match="method must be one of 'auto', 'exact'"):
        hessian_spectrum(f, x, method="arnoldi")
    with pytest.raises(OptionError, match="which must be one of 'top'"):
        hessian_spectrum(f, x, k=1, which="largest")
    with pytest.raises(SecondOrderError, match="lanczos' needs k"):
        hessian_spectrum(f, x, method="lanczos")
    with pytest.raises(OptionError, match="hessian_trace: method must be one of"):
        hessian_trace(f, x, method="exact")
    with pytest.raises(SecondOrderError, match="num_matvecs must be an integer >= 3"):
        hessian_trace(f, x, num_matvecs=2)
    with pytest.raises(SecondOrderError, match="hessian_density: num_probes must be a positive"):
        hessian_density(f, x, num_probes=0)
    with pytest.raises(OptionError, match="newton_direction: method must be one of"):
        newton_direction(f, x, method="lbfgs")
    with pytest.raises(ShapeError, match=r"flat parameter vector \(1-D\), got shape \(5, 1\)"):
        hessian_trace(f, np.zeros((5, 1)))
    with pytest.raises(DtypeError, match="must be floating"):
        hessian_spectrum(f, np.zeros(5, dtype=np.int64))
    op = HessianOperator(f, x, "hessian_spectrum")
    with pytest.raises(ShapeError, match=r"v of shape \(5,\) like x, got shape \(4,\)"):
        op.matvec(np.zeros(4))
    assert op.hvps == 0  # a refused product is not counted
    for err in (SecondOrderError, NegativeCurvatureError):
        assert issubclass(err, TfgradError)


def test_the_core_does_not_import_second_order():
    code = "import sys, tfgrad; print('tfgrad.second_order' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
