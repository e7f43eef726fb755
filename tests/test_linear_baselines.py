import pytest

from toysup.persian_rug import theory


def test_reference_losses():
    assert theory.zero_output_loss(0.3) == pytest.approx(0.1)
    assert theory.feature_variance(0.4) == pytest.approx(0.4 / 3 - 0.04)
    assert theory.linear_loss(0.8, 0.5) == pytest.approx(0.5 * (0.8 / 3 - 0.16))


def test_authors_formula_differs_where_the_spec_says():
    """Spec R12: at p = 0.8, r = 0.5 the code's formula gives 0.133, the correct optimum 0.053."""
    assert theory.linear_loss_authors_code(0.8, 1000, 500) == pytest.approx(0.133, abs=5e-4)
    assert theory.linear_loss(0.8, 0.5) == pytest.approx(0.0533, abs=5e-4)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: theory.feature_variance(0.0), "feature_prob must"),
    (lambda: theory.linear_loss(0.1, 1.2), "ratio must"),
    (lambda: theory.linear_loss_authors_code(0.1, 10, 20), "d_hidden"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
