"""Categories from the sparse code (§2, §3.7): the measurement and its floor."""
import json

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from fusedae import categories
from fusedae.__main__ import main


def test_purity_by_hand():
    truth = [0, 0, 0, 1, 1, 2]
    assert categories.purity(truth, [5, 5, 5, 7, 7, 9]) == 1.0      # any cluster names
    assert categories.purity(truth, [0, 0, 0, 0, 0, 0]) == 0.5      # one cluster: majority
    assert categories.purity(truth, [0, 0, 1, 1, 2, 2]) == pytest.approx(4 / 6)
    assert categories.purity(truth, list(range(6))) == 1.0          # singletons are pure


def test_most_active_unit_and_scores():
    codes = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.0, 0.1, 0.8], [0.6, 0.3, 0.1]])
    np.testing.assert_array_equal(categories.most_active_unit(codes), [0, 1, 2, 0])
    s = categories.score_assignment([1, 2, 3, 1], categories.most_active_unit(codes))
    assert s == {"purity": 1.0, "nmi": pytest.approx(1.0), "clusters": 3}


@pytest.mark.parametrize("call,match", [
    (lambda: categories.most_active_unit(np.zeros(3)), "codes: expected a non-empty 2-D"),
    (lambda: categories.most_active_unit([[np.nan, 1.0]]), "codes: contains NaN"),
    (lambda: categories.purity([0, 1], [0]), "labels_pred: expected 2 labels"),
    (lambda: categories.purity([], []), "labels_true: expected at least one label"),
    (lambda: categories.category_scores(np.eye(3), [0, 1]), "labels: expected 3 labels"),
    (lambda: categories.category_report(n_hiden=3), "n_hiden: not a parameter"),
])
def test_bad_input_is_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.fixture(scope="module")
def report():
    return categories.category_report(random_state=0)


def _row(report, prefix):
    (row,) = [r for r in report["rows"] if r["method"].startswith(prefix)]
    return row


def test_sparse_code_units_are_categories(report):
    # The chapter's claim, measured: with the sparsity term, the most active
    # code unit of a digit says which digit it is far above chance, and far
    # better than the same network's code without the term.
    sparse = _row(report, "sparse code: most active unit")
    plain = _row(report, "plain code (no sparsity term): most active unit")
    assert sparse["nmi"] >= 0.3
    assert sparse["nmi"] >= plain["nmi"] + 0.15
    assert sparse["purity"] >= 0.7
    assert 0.03 <= report["mean_activation"] <= 0.08  # the code is sparse (rho = 0.05)


def test_chance_level_is_far_below(report):
    # The same assignment scored against shuffled labels: what "chance" means
    # for this many clusters.
    X, y = categories.load_digits_scaled()
    from fusedae import SparseAutoencoder

    p = categories.DEFAULTS
    ae = SparseAutoencoder(p["n_hidden"], epochs=20, random_state=0).fit(X)
    units = categories.most_active_unit(ae.transform(X))
    shuffled = np.random.default_rng(0).permutation(y)
    chance = normalized_mutual_info_score(shuffled, units)
    assert chance < 0.1  # NMI's own bias with ~60 clusters on 1797 samples
    assert _row(report, "sparse code: most active unit")["nmi"] >= 5 * chance


def test_self_taught_features_classify(report):
    # A classifier on the sparse features alone (learned without labels)
    # recognises held-out digits; docs/categories.md compares it with raw pixels.
    assert _row(report, "classifier (64 hidden) on the sparse code")["test_accuracy"] >= 0.9
    assert _row(report, "softmax regression on the sparse code")["test_accuracy"] >= 0.85
    assert _row(report, "raw pixels: k-means")["nmi"] >= 0.6


def test_command_line_writes_the_report(tmp_path, capsys):
    path = tmp_path / "categories.json"
    assert main(["categories", "--epochs", "20", "--hidden", "16", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "sparse code: most active unit" in out and "NMI" in out
    saved = json.loads(path.read_text())
    assert saved["params"]["n_hidden"] == 16 and len(saved["rows"]) == 9
    assert [p.name for p in tmp_path.iterdir()] == ["categories.json"]  # no temporary left
    with pytest.raises(SystemExit):
        main(["categories", "--hidden", "0"])
