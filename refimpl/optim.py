"""One optimizer for every trainer: SGD with momentum or Adam (DESIGN.md sec. 6).

Used by the NM trainer (Alg. 2), the NN baseline and SAGP (S-Alg. 1 line 21).  The
state is a dict of named arrays (``m_<name>``, and ``v_<name>`` for Adam) plus the
step count ``t``, so that a checkpoint can store it and a resumed run continue bit for
bit.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["Optimizer"]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _sgd_entry(w, m, g, mu, lr):
    """One entry of the SGD step: ``(w + m', m')`` with ``m' = m mu - lr g``, the
    operations of :meth:`Optimizer.step`'s NumPy expressions in their order."""
    m = m * mu
    m = m - lr * g
    return w + m, m


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adam_entry(w, m, v, g, b1, a1, b2, a2, c1, c2, lr, eps):
    """One entry of the Adam step: ``(w', m', v')``, operation for operation the NumPy
    expressions of :meth:`Optimizer.step` (``a1 = 1 - b1``, ``a2 = 1 - b2``)."""
    m = m * b1
    m = m + a1 * g
    v = v * b2
    v = v + (a2 * g) * g
    return w - (lr * (m / c1)) / (np.sqrt(v / c2) + eps), m, v


@numba.njit(cache=True, error_model="numpy")
def _sgd_fused(w, m, g, mu, lr):
    """SGD with momentum in one pass over flat float64 arrays (in place): :func:`_sgd_entry`."""
    for i in range(w.shape[0]):
        w[i], m[i] = _sgd_entry(w[i], m[i], g[i], mu, lr)


@numba.njit(cache=True, error_model="numpy")
def _adam_fused(w, m, v, g, b1, a1, b2, a2, c1, c2, lr, eps):
    """Adam in one pass over flat float64 arrays (in place): :func:`_adam_entry`."""
    for i in range(w.shape[0]):
        w[i], m[i], v[i] = _adam_entry(w[i], m[i], v[i], g[i], b1, a1, b2, a2, c1, c2, lr, eps)


def _flat(a, shape):
    """A flat view of ``a`` for the fused kernels, or None when it cannot be one."""
    if (isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == shape
            and a.flags.c_contiguous):
        return a.reshape(-1)
    return None


class Optimizer:
    r"""SGD with momentum, or Adam, over named parameter arrays updated in place.

    Implements the optimizer of Alg. 2 (SGD with momentum 0.5, the paper's Table 3 in
    its appendix G) and of S-Alg. 1 line 21 (Adam, Kingma & Ba 2015, PyTorch's
    defaults):

    .. math::

        \text{SGD: } m \leftarrow \mu m - \eta g,\quad w \leftarrow w + m; \qquad
        \text{Adam: } m \leftarrow \beta_1 m + (1-\beta_1) g,\;
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\;
        w \leftarrow w - \eta \frac{m / (1-\beta_1^t)}{\sqrt{v / (1-\beta_2^t)} + \epsilon}

    Parameters
    ----------
    kind : {"sgd", "adam"}
    lr : float
        eta; may be changed between steps (a schedule).
    momentum : float
        mu of SGD, in [0, 1).
    betas : (float, float)
        Adam's beta1, beta2, each in [0, 1).
    eps : float
        Adam's epsilon, > 0.
    shapes : dict of str to tuple, optional
        Parameter shapes to allocate the state for now (a checkpoint then lists every
        buffer); otherwise a buffer is allocated at a parameter's first step.
    fused : bool, default True
        Update each float64 C-contiguous parameter (K above all: p x p) and its buffers
        in one compiled pass instead of NumPy's several passes and temporaries; the
        same operations in the same order, so the result is bit for bit the unfused
        one (``fused=False``; tested).  Other arrays always take the NumPy path.

    Attributes
    ----------
    t : int
        Steps taken.
    state : dict of str to ndarray
        ``m_<name>`` (momentum / first moment), ``v_<name>`` (Adam's second moment).
    """

    def __init__(self, kind="sgd", lr=0.05, *, momentum=0.5, betas=(0.9, 0.999), eps=1e-8,
                 shapes=None, fused=True):
        if kind not in ("sgd", "adam"):
            raise ValueError(f"kind: expected 'sgd' or 'adam', got {kind!r}")
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"lr: expected a finite number > 0, got {lr!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
        if not (len(betas) == 2 and all(0.0 <= float(b) < 1.0 for b in betas)):
            # beta1 = 1 makes Adam's bias correction 1 - beta1^t zero: NaN weights
            raise ValueError(f"betas: expected two numbers in [0, 1), got {betas!r}")
        if not (np.isfinite(eps) and eps > 0):
            raise ValueError(f"eps: expected a finite number > 0, got {eps!r}")
        self.kind = kind
        self.lr = lr
        self.momentum = momentum
        self.b1, self.b2 = betas
        self.eps = eps
        self.fused = bool(fused)
        self.t = 0
        self.state: dict[str, np.ndarray] = {}
        for name, shape in (shapes or {}).items():
            self._allocate(name, shape)

    @classmethod
    def from_config(cls, config, shapes=None):
        """The optimizer of a config with ``optimizer``, ``lr`` and ``momentum`` fields
        (:class:`refimpl.train.TrainConfig`, or a baseline's namespace; DESIGN.md sec. 6)."""
        return cls(config.optimizer, config.lr, momentum=config.momentum, shapes=shapes)

    def _allocate(self, name, shape):
        self.state[f"m_{name}"] = np.zeros(shape)
        if self.kind == "adam":
            self.state[f"v_{name}"] = np.zeros(shape)

    def to(self, xp, device=None):
        """Move the state to the array namespace ``xp`` on ``device`` (``xp =
        numpy``: back to host NumPy arrays), so that :meth:`step` updates
        parameters of that namespace where they live (DESIGN.md section 3)."""
        from .backend import to_numpy

        for k, v in self.state.items():
            host = to_numpy(v)
            self.state[k] = host.copy() if xp is np else xp.asarray(host, device=device)

    def step(self, params, grads, *, defer=()):
        """One step: ``params[name]`` updated in place from ``grads[name]``, for every
        name in ``grads`` (Alg. 2 line 11, S-Alg. 1 line 21).

        ``defer``: names whose fused update the caller runs itself, inside a compiled
        pass of its own (the trainer's one pass over K: update, proximal step, pruning
        candidates), entry by entry with :func:`_sgd_entry` or :func:`_adam_entry`.
        Returned: ``{name: (m, v, adam, mu, b1, 1 - b1, b2, 1 - b2, c1, c2, lr, eps)}``
        for the deferred names that can take the fused path (``v`` is ``m`` for SGD,
        unused; c1, c2: Adam's bias corrections at this step).  A deferred name that
        cannot (not float64 C-contiguous 2-D, or ``fused=False``) is updated here and
        not returned.  A deferred name's gradient may be None (the caller forms it
        inside its pass, e.g. the trainer's dL/dK in row blocks); it must then take the
        fused path, else ValueError.
        """
        self.t += 1
        c1 = c2 = 1.0
        if self.kind == "adam":
            c1 = 1.0 - self.b1**self.t
            c2 = 1.0 - self.b2**self.t
        deferred = {}
        for name, g in grads.items():
            if f"m_{name}" not in self.state:
                self._allocate(name, tuple(np.shape(params[name] if g is None else g)))
            m = self.state[f"m_{name}"]
            if name in defer and self.fused:
                args = self._deferred(name, params[name], m, g, c1, c2)
                if args is not None:
                    deferred[name] = args
                    continue
            if g is None:
                raise ValueError(f"grads[{name!r}]: None needs a deferred fused step "
                                 "(float64 C-contiguous 2-D parameter, fused=True)")
            if self.fused and self._step_fused(name, params[name], m, g, c1, c2):
                continue
            if self.kind == "sgd":
                m *= self.momentum
                m -= self.lr * g
                params[name] += m
            else:
                v = self.state[f"v_{name}"]
                m *= self.b1
                m += (1.0 - self.b1) * g
                v *= self.b2
                v += (1.0 - self.b2) * g * g
                sqrt = np.sqrt if isinstance(v, np.ndarray) else _namespace(v).sqrt
                params[name] -= self.lr * (m / c1) / (sqrt(v / c2) + self.eps)
        return deferred

    def _deferred(self, name, w, m, g, c1, c2):
        """The fused step's state and scalars for a deferred 2-D parameter, or None."""
        shape = np.shape(w)
        ok = len(shape) == 2 and all(_flat(a, shape) is not None
                                     for a in (w, m, w if g is None else g))
        v = self.state.get(f"v_{name}", m)  # SGD: unused
        if not ok or (g is not None and np.may_share_memory(g, w)) or (self.kind == "adam" and _flat(v, shape) is None):
            return None
        return (m, v, self.kind == "adam", float(self.momentum), float(self.b1),
                float(1.0 - self.b1), float(self.b2), float(1.0 - self.b2), float(c1),
                float(c2), float(self.lr), float(self.eps))

    def _step_fused(self, name, w, m, g, c1, c2):
        """The fused update of one parameter; False (nothing done) when an array is not
        float64, C-contiguous and of the parameter's shape."""
        shape = np.shape(w)
        wf, mf = _flat(w, shape), _flat(m, shape)
        gf = _flat(g, shape)
        if wf is None or mf is None or gf is None or np.may_share_memory(gf, wf):
            return False
        if self.kind == "sgd":
            _sgd_fused(wf, mf, gf, float(self.momentum), float(self.lr))
            return True
        vf = _flat(self.state[f"v_{name}"], shape)
        if vf is None:
            return False
        _adam_fused(wf, mf, vf, gf, float(self.b1), float(1.0 - self.b1), float(self.b2),
                    float(1.0 - self.b2), float(c1), float(c2), float(self.lr),
                    float(self.eps))
        return True


def _namespace(a):
    import array_api_compat

    return array_api_compat.array_namespace(a)
