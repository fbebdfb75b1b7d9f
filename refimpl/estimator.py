"""A scikit-learn-style classifier around Alg. 2 (training) and Alg. 3 (prediction).

:class:`NMClassifier` maps arbitrary class labels to ``0..n_classes-1``,
standardizes the features, holds out a seeded stratified validation split for
early stopping, and trains a neural-module network with
:class:`refimpl.train.Trainer` (Alg. 2 of the paper); prediction prunes with
the trained gamma and solves Eq. (3) (Alg. 3, :func:`refimpl.train.predict_proba`).

scikit-learn is optional.  When it is installed the estimator derives from
``sklearn.base.ClassifierMixin`` and ``BaseEstimator`` (so ``clone``,
pipelines, grid search and ``NotFittedError`` are scikit-learn's own);
otherwise small stand-ins below provide ``get_params``, ``set_params``,
``score`` and :class:`NotFittedError`.
"""
from __future__ import annotations

import inspect
import numbers

import numpy as np

from .datasets import stratified_split
from .datasets.base import _feature_scale
from .train import Trainer, TrainConfig
from .train import predict_proba as _alg3_predict_proba
from .threads import with_threads
from .validation import check_array, encode_class_labels

try:  # scikit-learn is an optional extra (``.[data]``); see the module docstring
    from sklearn.base import BaseEstimator as _BaseEstimator
    from sklearn.base import ClassifierMixin as _ClassifierMixin
    from sklearn.exceptions import DataConversionWarning as _DataConversionWarning
    from sklearn.exceptions import NotFittedError
    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False
    _DataConversionWarning = UserWarning

    class NotFittedError(ValueError, AttributeError, RuntimeError):
        """An estimator was used before ``fit`` (scikit-learn's is a ValueError and an
        AttributeError; this stand-in is also a RuntimeError)."""

    class _BaseEstimator:
        """Stand-in for ``sklearn.base.BaseEstimator``: parameters are the
        keyword arguments of ``__init__``, stored under the same names."""

        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p.name for p in sig.parameters.values()
                          if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                             p.KEYWORD_ONLY))

        def get_params(self, deep=True):
            """The constructor parameters as a dict (``deep`` is accepted for
            compatibility; no parameter is itself an estimator)."""
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            """Set constructor parameters; unknown names raise ValueError."""
            valid = self._get_param_names()
            for name, value in params.items():
                if name not in valid:
                    raise ValueError(f"Invalid parameter {name!r} for estimator "
                                     f"{type(self).__name__}. Valid parameters are: {valid}.")
                setattr(self, name, value)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
            return f"{type(self).__name__}({args})"

    class _ClassifierMixin:
        """Stand-in for ``sklearn.base.ClassifierMixin``: accuracy as the score."""

        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            """Mean accuracy of ``self.predict(X)`` against ``y`` (optionally weighted)."""
            correct = (self.predict(X) == np.asarray(y)).astype(np.float64)
            return float(np.average(correct, weights=sample_weight))

__all__ = ["NMClassifier", "NotFittedError", "HAVE_SKLEARN"]


class NMClassifier(_ClassifierMixin, _BaseEstimator):
    """Neural-module network classifier (Alg. 2 to train, Alg. 3 to predict).

    A complete graph of ``nodes`` hidden nodes is pruned to its ``edges``
    strongest edges (or to ``|K| > gamma``) at every mini-batch; the strongly
    connected components of the pruned graph are the neural modules whose
    equilibrium Eq. (3) the forward solves.  The output is a softmax trained
    with cross-entropy.

    Parameters
    ----------
    nodes : int, default 100
        p, hidden nodes of the complete graph.
    edges : int or None, default None
        k, edges kept by top-k pruning (Alg. 2 line 5); None means ``10 * nodes``.
    gamma : float or None, default None
        A fixed pruning threshold instead of top-k (Sec. 3.2).
    epochs : int, default 50
        Most passes over the training data.  With the other defaults, iris, wine,
        breast_cancer and digits reach their best validation loss within 10-50
        epochs; later epochs grow K and slow the module solves.
    batch_size : int, default 32
    lr : float, default 0.1
        Learning rate eta (twice :class:`~refimpl.train.TrainConfig`'s: with early
        stopping it reached equal or better held-out accuracy on iris, wine,
        breast_cancer and digits, in fewer epochs).
    momentum : float, default 0.5
        SGD momentum (the paper's Table 3).
    optimizer : {"sgd", "adam"}, default "sgd"
    reg : {"none", "l2", "nm"}, default "none"
        Regularizer of K; "nm" is the NM regularization of Thm. 3.1.
    alpha : float, default 1e-3
        Regularization strength (the paper's Table 3); L2 uses the same rate as NM
        regularization with R = 1 (see :mod:`refimpl.regularization`).
    reg_step : {"proximal", "thm31"}, default "proximal"
        How the regularizer enters the step (see :mod:`refimpl.train`).
    activation : str, default "tanh"
        Node activation f.
    init_scale : float, default 0.5
        Scale of the initial K.
    patience : int or None, default 10
        Early stopping: stop after this many epochs without a lower validation
        loss.  None trains every epoch (the best validation epoch is still kept).
    validation_fraction : float, default 0.1
        Fraction of the training data held out (seeded, stratified) to choose
        the epoch; 0 disables early stopping and keeps the last epoch.
    standardize : bool, default True
        Fit per-feature mean and standard deviation on the training data and
        apply them to every input.
    random_state : int or None, default 0
        Seeds the initialization, the mini-batch order and the validation split.
    threads : int or None, default None
        numba and BLAS threads in fit and predict (:mod:`refimpl.threads`).
    backend : str or array-API namespace module, default "numpy"
        Where training and prediction run (:func:`refimpl.get_backend`):
        ``"numpy"`` is the numba CPU path, ``"cupy"`` the GPU; inputs and
        outputs stay NumPy arrays.  The fitted estimator keeps the backend's name
        where the name gives the same backend back; give the name itself for
        ``sklearn.base.clone`` and pickling (a module does not copy).

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The sorted class labels; output j of the network is ``classes_[j]``.
    n_features_in_ : int
    mean_, scale_ : ndarray, shape (n_features,) or None
        The standardization (None when ``standardize=False``).
    trainer_ : refimpl.train.Trainer
        The trainer; ``trainer_.net`` is the trained :class:`~refimpl.NMNetwork`.
    gamma_ : float
        The trained pruning threshold that Alg. 3 prunes with.
    history_ : list of dict
        One record per epoch (loss, errors, edges, modules, levels, ...).
    n_iter_ : int
        Epochs run.
    best_epoch_ : int
        The epoch whose parameters were kept (the last one without validation).

    Notes
    -----
    Early stopping monitors the validation *loss* (cross-entropy), not the
    validation error: on small data the held-out part has a handful of rows,
    its error reaches its minimum within the first epochs and would freeze an
    undertrained network (iris, one split: 0.80 test accuracy instead of 0.97).

    References
    ----------
    Alg. 2 (training with dynamic pruning) and Alg. 3 (prediction) of the
    Neural Modules paper; DESIGN.md sections 6 and 13.
    """

    def __init__(self, nodes=100, edges=None, gamma=None, epochs=50, batch_size=32, lr=0.1,
                 momentum=0.5, optimizer="sgd", reg="none", alpha=1e-3, reg_step="proximal",
                 activation="tanh", init_scale=0.5, patience=10, validation_fraction=0.1,
                 standardize=True, random_state=0, threads=None,
                 backend="numpy"):
        # scikit-learn convention: store the parameters, validate them in fit.
        self.nodes = nodes
        self.edges = edges
        self.gamma = gamma
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.momentum = momentum
        self.optimizer = optimizer
        self.reg = reg
        self.alpha = alpha
        self.reg_step = reg_step
        self.activation = activation
        self.init_scale = init_scale
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.standardize = standardize
        self.random_state = random_state
        self.threads = threads
        self.backend = backend

    # ------------------------------------------------------------ fitting
    @with_threads(get=lambda self: self.threads)
    def fit(self, X, y):
        """Train on ``(X, y)`` with Alg. 2; returns ``self``.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Finite real features.
        y : array_like, shape (n_samples,)
            Class labels of any sortable type (at least two distinct).
        """
        X = check_array(X)
        classes, codes = encode_class_labels(y, X.shape[0],
                                             conversion_warning=_DataConversionWarning)
        seed = self._seed()
        vf = self.validation_fraction
        if isinstance(vf, bool) or not isinstance(vf, numbers.Real) or not 0.0 <= vf < 1.0:
            raise ValueError(f"validation_fraction: expected a number in [0, 1), got {vf!r}")
        config = TrainConfig(
            nodes=self.nodes, edges=self.edges, gamma=self.gamma, epochs=self.epochs,
            batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
            optimizer=self.optimizer, reg=self.reg, alpha=self.alpha, reg_step=self.reg_step,
            activation=self.activation, output="softmax", init_scale=self.init_scale,
            patience=self.patience, monitor="val_loss", seed=seed,
            backend=_backend_by_name(self.backend))

        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ValueError(f"standardize: expected True or False, got {self.standardize!r}")
        if self.standardize:
            mean, scale = X.mean(axis=0), _feature_scale(X)  # (a constant feature: / 1)
            Xs = (X - mean) / scale
        else:
            mean = scale = None
            Xs = X
        train = val = None
        if vf > 0:
            train, val, _ = stratified_split(codes, seed=seed, val_size=vf, test_size=0.0)
            if val.size == 0:  # too few rows per class to hold any out
                train = val = None
            else:
                lost = np.setdiff1d(np.unique(codes), codes[train])
                if lost.size:  # the split took every row of a class: it could never learn it
                    raise ValueError(
                        f"validation_fraction: {vf} leaves no training row of the class(es) "
                        f"{classes[lost].tolist()}; lower it or give more rows per class")
        trainer = Trainer(config, X.shape[1], classes.size)
        if val is None:
            trainer.fit(Xs, codes)
            best_epoch = trainer.epoch
        else:
            trainer.fit(Xs[train], codes[train], Xs[val], codes[val])
            trainer.restore_best()  # the epoch of the lowest validation loss
            best_epoch = trainer.best_epoch or trainer.epoch

        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.mean_, self.scale_ = mean, scale
        self.trainer_ = trainer
        self.gamma_ = float(trainer.gamma)
        self.history_ = trainer.history
        self.n_iter_ = trainer.epoch
        self.best_epoch_ = int(best_epoch)
        return self

    def _seed(self):
        rs = self.random_state
        if rs is None:
            return int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(rs, bool) or not isinstance(rs, numbers.Integral) or rs < 0:
            raise ValueError(f"random_state: expected a non-negative int or None, got {rs!r}")
        return int(rs)

    # ------------------------------------------------------------ prediction
    @with_threads(get=lambda self: self.threads)
    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in the
        order of ``classes_`` (Alg. 3: prune with ``gamma_``, solve Eq. (3),
        softmax)."""
        self._check_fitted()
        X = check_array(X, self.n_features_in_)
        if self.mean_ is not None:
            X = (X - self.mean_) / self.scale_
        trainer = self.trainer_
        c = trainer.config
        return _alg3_predict_proba(trainer.net, X, self.gamma_, atol=c.atol, rtol=c.rtol,
                                   solver=c.solver, backend=c.backend)

    def predict(self, X):
        """Class labels (from ``classes_``) of the rows of ``X`` (Alg. 3: argmax)."""
        proba = self.predict_proba(X)  # first: it raises NotFittedError before fit
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_is_fitted__(self):
        return hasattr(self, "trainer_")

    def _check_fitted(self):
        if not hasattr(self, "trainer_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. "
                                 "Call 'fit' with appropriate arguments before using this "
                                 "estimator.")


def _backend_by_name(backend):
    """``backend`` as its registered name where the name gives it back (a namespace module
    or a Backend object kept in the trainer would make a fitted estimator unpicklable),
    else as given."""
    from .backend import get_backend

    given = get_backend(backend)
    try:
        same = get_backend(given.name) == given  # (same namespace, device and path)
    except Exception:  # noqa: BLE001 - a name that does not resolve: keep the object
        same = False
    return given.name if same else backend
