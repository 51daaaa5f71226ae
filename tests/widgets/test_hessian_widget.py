"""The HessianWidget without a browser: its state holds the exact Hessian (against Rosenbrock's
analytic one), a drag recomputes it, training points are small patches, the snapshot is in the
MIME bundle, and n-variable functions get a heat map and a spectrum."""

from __future__ import annotations

import numpy as np
import pytest
from widget_messages import sent, size

import tfgrad as tg
import tfgrad.second_order as so
from tfgrad_widgets import HessianWidget
from tfgrad_widgets.svg import fmt

B = 100.0


def rosenbrock(v):
    return (1 - v[0]) ** 2 + B * (v[1] - v[0] ** 2) ** 2


def analytic(x, y):
    """Rosenbrock's gradient and Hessian by hand."""
    g = np.array([-2 * (1 - x) - 4 * B * x * (y - x**2), 2 * B * (y - x**2)])
    h = np.array([[2 - 4 * B * y + 12 * B * x**2, -4 * B * x], [-4 * B * x, 2 * B]])
    return g, h


def widget(**kwargs):
    return HessianWidget(rosenbrock, [-1.2, 1.0], bounds=((-2, 2), (-1, 3)), grid=21, **kwargs)


def test_the_state_holds_the_exact_hessian_and_its_eigenvalues(backend):
    w = widget()
    local = w.get_state()["data"]["local"]
    g, h = analytic(-1.2, 1.0)
    np.testing.assert_allclose(local["hessian"], h, rtol=1e-10)
    np.testing.assert_allclose(local["gradient"], g, rtol=1e-10)
    np.testing.assert_allclose(local["eigenvalues"], np.linalg.eigvalsh(h), rtol=1e-10)
    np.testing.assert_allclose(local["newton_step"], -np.linalg.solve(h, g), rtol=1e-10)
    np.testing.assert_allclose(local["gradient_step"], -0.1 * g, rtol=1e-10)
    assert local["newton_length"] == pytest.approx(np.linalg.norm(np.linalg.solve(h, g)))
    # drawn: both eigenvalues as bars, the Newton step from the point, the numbers in the title
    assert w.panel("curvature")["values"] == local["eigenvalues"]
    (newton,) = w.layer("landscape", "newton")["arrows"]
    assert (newton["x"], newton["y"]) == (-1.2, 1.0)
    assert [newton["dx"], newton["dy"]] == local["newton_step"]
    title = w.panel("curvature")["title"]
    assert title == f"|Newton| {fmt(local['newton_length'])} · |gradient| " + fmt(
        local["gradient_length"]
    )
    svg = w.snapshot()
    assert ">23.6</text>" in svg and ">1506</text>" in svg  # the eigenvalues, on their bars
    # eigenvectors scaled by eigenvalue: the lengths are in the eigenvalues' ratio
    lengths = [np.hypot(a["dx"], a["dy"]) for a in w.layer("landscape", "eigenvectors")["arrows"]]
    lam = np.linalg.eigvalsh(h)
    assert lengths[0] / lengths[2] == pytest.approx(lam[0] / lam[1], rel=1e-10)


def test_a_drag_recomputes_exactly_and_answers_with_small_patches(comm):
    w = widget()
    w.comm.messages.clear()
    model_before = w.layer("landscape", "model")["x"]
    # what the front end's drag sets (the kit's draggable handle, key "<panel>.<layer>")
    w.set_state({"view": {**w.view, "landscape.point": [0.5, 0.5]}})  # as a drag arrives
    w.flush()
    local = w.data["local"]
    g, h = analytic(0.5, 0.5)
    np.testing.assert_allclose(local["hessian"], h, rtol=1e-10)
    np.testing.assert_allclose(local["newton_step"], -np.linalg.solve(h, g), rtol=1e-10)
    assert lam_sign(local) == (-1, 1)  # a saddle of the quadratic model there
    assert w.layer("landscape", "negative")["arrows"]  # negative curvature has its own arrows
    assert w.layer("landscape", "model")["x"] != model_before
    messages = sent(w)
    patches = [p for m in messages for p in m.get("content", {}).get("patches", [])]
    assert {p["path"][-1] for p in patches} >= {"arrows", "values", "title", "local"}
    # f's contours (the bulk of the data) are not sent again: only the local picture
    assert not any(m.get("state", {}).get("data") for m in messages)
    assert sum(map(size, messages)) < size(w.get_state()["data"]) / 2


def lam_sign(local):
    return tuple(int(np.sign(v)) for v in local["eigenvalues"])


def test_track_sends_small_patches(comm):
    w = widget()
    w.comm.messages.clear()
    w.min_interval = 0  # every call its own message, to measure each
    for step in range(5):
        w.track(step, {"top_eigenvalue": 10.0 - step, "trace": 12.0 - step})
    assert w.layer("training", "top_eigenvalue")["y"] == [10.0, 9.0, 8.0, 7.0, 6.0]
    assert w.layer("training", "trace")["x"] == [0, 1, 2, 3, 4]
    messages = sent(w)
    assert size(messages[0]) < 1_000  # the first adds the (empty) panel
    assert all(size(m) < 200 for m in messages[1:])  # later ones: a few numbers
    w.track(5, {"trace": 6.5})  # one series alone
    assert w.layer("training", "trace")["y"][-1] == 6.5
    assert len(w.layer("training", "top_eigenvalue")["y"]) == 5
    with pytest.raises(ValueError, match="top_eigenvalue"):
        w.track(6, {"loss": 1.0})


def test_track_from_the_parameters_computes_both_exactly(backend):
    def f(v):
        return tg.sum((1 - v[:-1]) ** 2 + B * (v[1:] - v[:-1] ** 2) ** 2)

    x = np.linspace(-1.0, 1.5, 5)
    w = HessianWidget(f, x)
    for step in range(3):  # gradient descent, the widget as its callback
        w.track(step, x=x)
        tracked = x
        x = x - 1e-4 * tg.grad(f)(tg.tensor(x)).numpy()
    hess = tg.hessian(f)(tg.tensor(tracked)).numpy()
    last = w.exact["hessian"]
    np.testing.assert_allclose(w.layer("training", "trace")["y"][-1], np.trace(last), rtol=1e-12)
    np.testing.assert_allclose(w.layer("training", "top_eigenvalue")["y"][-1],
                               np.linalg.eigvalsh(last)[-1], rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(last, hess, rtol=1e-12)  # the picture moved with the parameters
    assert w.layer("training", "trace")["x"] == [0, 1, 2]
    # two variables: the drawn point follows the parameters
    two = widget()
    two.track(0, x=[0.5, 0.5])
    assert two.view["landscape.point"] == [0.5, 0.5]
    np.testing.assert_allclose(two.data["local"]["hessian"], analytic(0.5, 0.5)[1], rtol=1e-10)


def test_the_snapshot_is_in_the_mime_bundle():
    w = widget()
    data, _ = w._repr_mimebundle_()
    svg = data["image/svg+xml"]
    assert svg == w.snapshot() and svg.startswith("<svg")
    assert 'data-layer="newton"' in svg and 'data-panel="curvature"' in svg
    assert "application/vnd.jupyter.widget-view+json" in data


def test_n_variables_heat_map_and_spectrum(backend):
    def f(v):
        return tg.sum((1 - v[:-1]) ** 2 + B * (v[1:] - v[:-1] ** 2) ** 2)

    x = np.linspace(-1.0, 1.5, 6)
    w = HessianWidget(f, x)
    hess = np.asarray(w.panel("hessian")["values"])
    expected = tg.hessian(f)(tg.tensor(x)).numpy()
    np.testing.assert_allclose(hess, expected, rtol=1e-12)
    # analytic: the tridiagonal Hessian of the chained Rosenbrock function
    np.testing.assert_allclose(hess[0, 1], -4 * B * x[0], rtol=1e-10)
    np.testing.assert_allclose(hess[0, 0], 2 - 4 * B * x[1] + 12 * B * x[0] ** 2, rtol=1e-10)
    assert hess[0, 2] == 0
    spectrum = w.panel("spectrum")
    np.testing.assert_allclose(spectrum["values"], np.linalg.eigvalsh(expected), rtol=1e-10)
    assert spectrum["highlight"] == [5]
    w.move_to(np.zeros(6))
    np.testing.assert_allclose(w.data["local"]["hessian"], tg.hessian(f)(tg.zeros(6)).numpy())
    # many variables: the spectrum becomes a density (a histogram of all n eigenvalues)
    big = HessianWidget(f, np.linspace(-1.0, 1.5, 12), max_bars=8)
    assert sum(big.panel("spectrum")["values"]) == 12
    assert "density" in big.panel("spectrum")["title"]
    assert "all 12 × 12" in big.panel("hessian")["title"] and "formed in full" in big.data["title"]


def test_past_max_heatmap_the_density_by_slq_and_never_the_hessian(backend, monkeypatch):
    def f(v):
        return tg.sum((1 - v[:-1]) ** 2 + B * (v[1:] - v[:-1] ** 2) ** 2)

    x = np.linspace(-1.0, 1.5, 12)
    exact = np.linalg.eigvalsh(tg.hessian(f)(tg.tensor(x)).numpy())

    def forbidden(*args, **kwargs):
        raise AssertionError("the full Hessian was formed")

    monkeypatch.setattr(tg, "hessian", forbidden)
    w = HessianWidget(f, x, max_heatmap=4, probes=6)
    assert [p["id"] for p in w.data["panels"]] == ["density"]  # no heat map, no spectrum
    assert "H is never formed" in w.data["title"] and "n > 4" in w.data["title"]
    panel = w.panel("density")
    assert "SLQ, 72 HVPs" in panel["title"]
    assert "6 probes × 12 steps" in w.layer("density", "density")["label"]
    # the drawn line is tfgrad.second_order.hessian_density's, at the widget's settings
    reference = so.hessian_density(f, x, num_probes=6, lanczos_steps=80, seed=0, grid_size=256)
    line = w.layer("density", "density")
    np.testing.assert_allclose(line["x"], reference.grid, rtol=1e-12)
    np.testing.assert_allclose(line["y"], reference.density, rtol=1e-12)
    assert np.sum(line["y"]) * (line["x"][1] - line["x"][0]) == pytest.approx(1, rel=1e-3)
    # 12 Lanczos steps on 12 variables: the Ritz values are the eigenvalues
    local = w.data["local"]
    assert local["top_ritz"] == pytest.approx(exact[-1], rel=1e-8)
    assert local["bottom_ritz"] == pytest.approx(exact[0], rel=1e-6, abs=1e-8)
    assert w.layer("density", "top")["x"] == [local["top_ritz"]] * 2
    # the trace is Hutchinson's estimate: within its error bars of the exact trace
    assert abs(local["trace"] - exact.sum()) < 4 * local["trace_std_error"]
    assert local["trace"] == pytest.approx(reference.trace, rel=1e-12)
    assert "hessian" not in local and local["hvps"] == 72
    # moving and tracking use the density too
    w.track(0, x=np.zeros(12))
    assert w.layer("training", "top_eigenvalue")["y"] == [w.exact["top_ritz"]]
    assert w.layer("training", "trace")["y"] == [w.exact["trace"]]
    np.testing.assert_allclose(
        w.layer("density", "density")["y"],
        so.hessian_density(f, np.zeros(12), num_probes=6, seed=0, grid_size=256).density,
        rtol=1e-12,
    )
    assert 'data-layer="density"' in w.snapshot()


def test_bad_points_are_refused():
    with pytest.raises(ValueError, match="flat vector"):
        HessianWidget(rosenbrock, [[1.0, 2.0]])


def test_f_on_the_grid_is_right_whether_or_not_f_takes_a_batch():
    # tg.sum over a (2, N) batch would sum everything: the widget checks and goes point by point
    def not_elementwise(v):
        return tg.sum(v**2) + v[0] * v[1]

    w = HessianWidget(not_elementwise, [1.0, 1.0], bounds=((-1, 1), (-1, 1)), grid=5)
    z = w._grid_values()
    gx, gy = np.meshgrid(w.xs, w.ys)
    np.testing.assert_allclose(z, gx**2 + gy**2 + gx * gy, rtol=1e-12)
    np.testing.assert_allclose(w.data["local"]["hessian"], [[2.0, 1.0], [1.0, 2.0]])
    batched = widget()._grid_values()  # Rosenbrock is elementwise: one call on the batch
    gx, gy = np.meshgrid(np.linspace(-2, 2, 21), np.linspace(-1, 3, 21))
    np.testing.assert_allclose(batched, (1 - gx) ** 2 + B * (gy - gx**2) ** 2, rtol=1e-12)
