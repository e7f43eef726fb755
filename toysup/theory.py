"""Closed-form reference losses of the Persian Rug model (per feature).

v(p) = Var x_i = p/3 − p²/4 for x_i = B_i U_i, B_i ~ Bernoulli(p), U_i ~ U[0, 1].
Zero output: L₀ = E x_i² = p/3.  Best affine autoencoder of width m = r·n (spec R12, derived): the bias
takes the mean p/2 and the m principal directions of the covariance v·I remove m of the n equal
eigenvalues, so L_lin = v(p)(1 − r). The authors' code (``utils/opt_linear.py``) instead sums the
eigenvalue p/3 (the second moment, ignoring the mean) over n − m − 1 directions (one too few):
L_code = (p/3)(n − m − 1)/n.
"""
import numpy as np

from toysup import checks


def feature_variance(p):
    """v(p) = p/3 − p²/4, the variance of one feature; array-like p in (0, 1]."""
    p = _prob("p", p)
    return p / 3 - p * p / 4


def zero_output_loss(p):
    """L₀ = p/3: the loss of a model that outputs 0."""
    return _prob("p", p) / 3


def linear_loss(p, r):
    """L_lin = v(p)(1 − r): the optimal affine autoencoder of width r·n (with bias)."""
    return feature_variance(p) * (1 - _prob("r", r))


def linear_loss_authors_code(p, n_features: int, d_hidden: int):
    """(p/3)(n − m − 1)/n: the authors' code's 'optimal linear' loss (ignores the mean, off by one)."""
    checks.positive_int("n_features", n_features)
    checks.positive_int("d_hidden", d_hidden, maximum=n_features)
    return _prob("p", p) / 3 * (n_features - d_hidden - 1) / n_features


def _prob(name: str, value):
    """value as a float64 array, every entry in (0, 1]."""
    arr = np.asarray(value, dtype=np.float64)
    if not np.all((arr > 0) & (arr <= 1)):
        bad = arr[~((arr > 0) & (arr <= 1))].ravel()[0]
        raise ValueError(f"{name} must lie in (0, 1], got {bad!r}")
    return arr
