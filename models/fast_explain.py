"""Compiled scores and exact TreeSHAP explanations for a RiskModel, fast enough for one request.

`booster.predict(DMatrix, pred_contribs=True)` pays for a DMatrix and a thread pool on every call
(about 1-13 ms per outcome), so a one-record, five-outcome request cannot meet a few-millisecond
budget through it. `FastExplainer` compiles every outcome's booster once into flat numpy arrays
(from `booster.save_raw("json")`, which holds thresholds, leaf values and covers exactly as
float32) and evaluates scores and path-dependent TreeSHAP for all outcomes in one numba call.

What is reproduced, and how exactly (see tests/model/test_fast_explain.py):

* Tree traversal is XGBoost's: the feature is rounded to float32 and goes left iff
  ``float32(x) < float32(threshold)``; a NaN follows the node's default (missing) direction.
* Margins are accumulated in float32, starting from the float32 base margin and adding the trees'
  float32 leaf values in tree order, as XGBoost's CPU predictor does. They equal
  ``booster.predict(output_margin=True)`` bit for bit on every tested row. The base margin is the
  objective's link applied to ``base_score`` (logit for logistic objectives). It is checked
  against the booster on probe rows built from the trees' own thresholds when the model is
  compiled, and nudged by at most a few float32 ulps if libm's rounding differs.
* Probabilities apply the linear blend and the Platt recalibration in float64 on that float32
  margin, as `RiskModel.predict_features` does. The two agree to about 1e-15.
* Contributions use Lundberg et al. (2018), Algorithm 2 (EXTEND / UNWIND / UNWOUND-SUM), the
  algorithm behind XGBoost's ``pred_contribs`` and shap's ``tree_path_dependent``. XGBoost runs it
  in float32 (float32 path weights, float32 per-tree and per-row sums; see
  src/predictor/treeshap.cc). Here it runs in float64 on the same float32 tree data, so results
  differ from XGBoost's only by XGBoost's own float32 rounding: about 1e-7 to 1e-6 on these
  models. Contributions plus base add up to the float64 sum of the same leaves to about 1e-12.
  They add up to the float32 margin that `predict` reports to within that margin's float32
  accumulation error, which is at most a few 1e-6.

The kernel releases the GIL, so threads of one worker can share an explainer.

Interval members (`models.interval`): a model's resampled member boosters are compiled into the same
flat arrays, after the outcomes' own trees, each with the outcome's blend weight and the member's
own partner and calibration. `member_margins` equals each member booster's
``predict(output_margin=True)`` bit for bit, as `margins` does for the main boosters;
`member_logits` and `intervals` evaluate them in a separate margins-only pass (no SHAP for members).

Only what RiskModel trains is supported: `gbtree` boosters with numeric splits and one output.
Anything else raises `ValueError` when the model is compiled.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numba import njit

# ------------------------------------------------------------------------------------------------
# Kernels
# ------------------------------------------------------------------------------------------------


# cache=True: compiled kernels are kept beside the module (or in numba's user cache directory), so
# each new process (service workers, CLI runs, notebooks) loads them in ~1 s instead of compiling ~8 s.
@njit(cache=True, inline="always")
def _extend(pf, pz, po, pw, lv, ud, zero, one, feat):
    pf[lv, ud] = feat
    pz[lv, ud] = zero
    po[lv, ud] = one
    pw[lv, ud] = 1.0 if ud == 0 else 0.0
    denom = ud + 1.0
    for i in range(ud - 1, -1, -1):
        pw[lv, i + 1] += one * pw[lv, i] * (i + 1) / denom
        pw[lv, i] = zero * pw[lv, i] * (ud - i) / denom


@njit(cache=True, inline="always")
def _unwind(pf, pz, po, pw, lv, ud, idx):
    one = po[lv, idx]
    zero = pz[lv, idx]
    nxt = pw[lv, ud]
    denom = ud + 1.0
    for i in range(ud - 1, -1, -1):
        if one != 0.0:
            tmp = pw[lv, i]
            pw[lv, i] = nxt * denom / ((i + 1) * one)
            nxt = tmp - pw[lv, i] * zero * (ud - i) / denom
        else:
            pw[lv, i] = pw[lv, i] * denom / (zero * (ud - i))
    for i in range(idx, ud):
        pf[lv, i] = pf[lv, i + 1]
        pz[lv, i] = pz[lv, i + 1]
        po[lv, i] = po[lv, i + 1]


@njit(cache=True, inline="always")
def _unwound_sum(pz, po, pw, lv, ud, idx):
    one = po[lv, idx]
    zero = pz[lv, idx]
    nxt = pw[lv, ud]
    denom = ud + 1.0
    total = 0.0
    for i in range(ud - 1, -1, -1):
        if one != 0.0:
            tmp = nxt * denom / ((i + 1) * one)
            total += tmp
            nxt = pw[lv, i] - tmp * zero * ((ud - i) / denom)
        elif zero != 0.0:
            total += (pw[lv, i] / zero) / ((ud - i) / denom)
    return total


@njit(cache=True, inline="always")
def _next_node(node, x32, feat, thr, left, right, dleft):
    v = x32[feat[node]]
    if math.isnan(v):
        return left[node] if dleft[node] else right[node]
    return left[node] if v < thr[node] else right[node]


@njit(cache=True)
def _tree_shap(root, x32, phi, feat, thr, left, right, dleft, value, cover,
               pf, pz, po, pw, s_node, s_lv, s_ud, s_z, s_o, s_f):
    """Path-dependent TreeSHAP of one tree for one row, added into phi (iterative Algorithm 2).

    A node at tree depth `lv` keeps its unique path in row `lv` of the path arrays; both children
    copy it from there, and the hot child's subtree only writes deeper rows, so a depth-first
    stack needs no other copies.
    """
    top = 0
    s_node[0] = root
    s_lv[0] = 0
    s_ud[0] = 0
    s_z[0] = 1.0
    s_o[0] = 1.0
    s_f[0] = -1
    while top >= 0:
        node = s_node[top]
        lv = s_lv[top]
        ud = s_ud[top]
        pz_in = s_z[top]
        po_in = s_o[top]
        pf_in = s_f[top]
        top -= 1
        if lv > 0:
            for i in range(ud):
                pf[lv, i] = pf[lv - 1, i]
                pz[lv, i] = pz[lv - 1, i]
                po[lv, i] = po[lv - 1, i]
                pw[lv, i] = pw[lv - 1, i]
        _extend(pf, pz, po, pw, lv, ud, pz_in, po_in, pf_in)
        if left[node] < 0:
            leaf = value[node]
            for i in range(1, ud + 1):
                w = _unwound_sum(pz, po, pw, lv, ud, i)
                phi[pf[lv, i]] += w * (po[lv, i] - pz[lv, i]) * leaf
            continue
        hot = _next_node(node, x32, feat, thr, left, right, dleft)
        cold = right[node] if hot == left[node] else left[node]
        w = cover[node]
        hot_zero = cover[hot] / w
        cold_zero = cover[cold] / w
        inc_zero = 1.0
        inc_one = 1.0
        split = feat[node]
        idx = 0
        while idx <= ud:
            if pf[lv, idx] == split:
                break
            idx += 1
        if idx != ud + 1:
            inc_zero = pz[lv, idx]
            inc_one = po[lv, idx]
            _unwind(pf, pz, po, pw, lv, ud, idx)
            ud -= 1
        # Cold child below hot child on the stack: the hot subtree is explored first, as in XGBoost.
        top += 1
        s_node[top] = cold
        s_lv[top] = lv + 1
        s_ud[top] = ud + 1
        s_z[top] = cold_zero * inc_zero
        s_o[top] = 0.0
        s_f[top] = split
        top += 1
        s_node[top] = hot
        s_lv[top] = lv + 1
        s_ud[top] = ud + 1
        s_z[top] = hot_zero * inc_zero
        s_o[top] = inc_one
        s_f[top] = split


@njit(cache=True, nogil=True)
def _run(X, which, want_contribs,
         feat, thr, left, right, dleft, value, cover, tree_root, out_tree_lo, out_tree_hi,
         base32, tree_bias, weight, calib_a, calib_b,
         lin_median, lin_mean, lin_scale, lin_mmean, lin_mscale, lin_coef_v, lin_coef_m, lin_intercept,
         max_depth):
    """Margins, probabilities and (optionally) calibrated contributions for outcomes `which`.

    Returns margin32 (n x k, float32 booster margin), prob (n x k), contrib (k x n x F, calibrated
    log-odds; empty unless want_contribs) and base (n x k, calibrated log-odds).
    """
    n, nf = X.shape
    k = which.shape[0]
    margin32 = np.empty((n, k), dtype=np.float32)
    prob = np.empty((n, k))
    base = np.empty((n, k))
    if want_contribs:
        contrib = np.zeros((k, n, nf))
    else:
        contrib = np.zeros((k, 0, nf))
    x32 = np.empty(nf, dtype=np.float32)
    miss = np.empty(nf, dtype=np.bool_)
    phi = np.empty(nf)
    lin = np.empty(nf)
    levels = max_depth + 2
    pf = np.full((levels, levels), -1, dtype=np.int64)
    pz = np.zeros((levels, levels))
    po = np.zeros((levels, levels))
    pw = np.zeros((levels, levels))
    ss = 2 * levels + 2
    s_node = np.empty(ss, dtype=np.int64)
    s_lv = np.empty(ss, dtype=np.int64)
    s_ud = np.empty(ss, dtype=np.int64)
    s_z = np.empty(ss)
    s_o = np.empty(ss)
    s_f = np.empty(ss, dtype=np.int64)
    for r in range(n):
        for j in range(nf):
            v = X[r, j]
            x32[j] = np.float32(v)
            miss[j] = math.isnan(v)
        for q in range(k):
            o = which[q]
            # Booster margin: float32, trees in order, as XGBoost's CPU predictor sums it.
            acc = base32[o]
            for t in range(out_tree_lo[o], out_tree_hi[o]):
                node = tree_root[t]
                while left[node] >= 0:
                    node = _next_node(node, x32, feat, thr, left, right, dleft)
                acc += value[node]
            margin32[r, q] = acc
            raw = np.float64(acc)
            w = weight[o]
            blended = w < 1.0
            lin_margin = 0.0
            if blended:
                # LogisticRisk: median imputation, missing indicators, standardisation.
                lin_margin = lin_intercept[o]
                for j in range(nf):
                    if miss[j]:
                        z = (lin_median[o, j] - lin_mean[o, j]) / lin_scale[o, j]
                        m = (1.0 - lin_mmean[o, j]) / lin_mscale[o, j]
                    else:
                        z = (X[r, j] - lin_mean[o, j]) / lin_scale[o, j]
                        m = (0.0 - lin_mmean[o, j]) / lin_mscale[o, j]
                    c = z * lin_coef_v[o, j] + m * lin_coef_m[o, j]
                    lin[j] = c
                    lin_margin += c
                raw = w * raw + (1.0 - w) * lin_margin
            a = calib_a[o]
            b = calib_b[o]
            prob[r, q] = 1.0 / (1.0 + math.exp(-(a + b * raw)))
            bias = tree_bias[o]
            if blended:
                base[r, q] = a + b * (w * bias + (1.0 - w) * lin_intercept[o])
            else:
                base[r, q] = a + b * bias
            if want_contribs:
                for j in range(nf):
                    phi[j] = 0.0
                for t in range(out_tree_lo[o], out_tree_hi[o]):
                    _tree_shap(tree_root[t], x32, phi, feat, thr, left, right, dleft, value, cover,
                               pf, pz, po, pw, s_node, s_lv, s_ud, s_z, s_o, s_f)
                if blended:
                    for j in range(nf):
                        contrib[q, r, j] = b * (w * phi[j] + (1.0 - w) * lin[j])
                else:
                    for j in range(nf):
                        contrib[q, r, j] = b * phi[j]
    return margin32, prob, contrib, base


@njit(cache=True)
def _tree_means(root, left, right, value, cover, out):
    """Cover-weighted mean leaf value of every node of one tree (XGBoost's FillNodeMeanValues)."""
    # Post-order by an explicit stack: push a node twice, expand it first, finish it second.
    stack = np.empty(2 * 4096, dtype=np.int64)
    state = np.empty(2 * 4096, dtype=np.int64)
    top = 0
    stack[0] = root
    state[0] = 0
    while top >= 0:
        node = stack[top]
        s = state[top]
        top -= 1
        if left[node] < 0:
            out[node] = value[node]
        elif s == 0:
            top += 1
            stack[top] = node
            state[top] = 1
            top += 1
            stack[top] = left[node]
            state[top] = 0
            top += 1
            stack[top] = right[node]
            state[top] = 0
        else:
            lc, rc = left[node], right[node]
            out[node] = (out[lc] * cover[lc] + out[rc] * cover[rc]) / cover[node]
    return out[root]


# ------------------------------------------------------------------------------------------------
# Compilation of boosters into flat arrays
# ------------------------------------------------------------------------------------------------


@dataclass
class _Trees:
    feat: np.ndarray
    thr: np.ndarray
    left: np.ndarray
    right: np.ndarray
    dleft: np.ndarray
    value: np.ndarray
    cover: np.ndarray
    roots: np.ndarray
    depth: int
    base32: np.float32
    n_features: int


_LOGIT = {"binary:logistic", "reg:logistic"}
_IDENTITY = {"binary:logitraw", "reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror",
             "reg:absoluteerror", "reg:quantileerror", "binary:hinge", "rank:pairwise", "rank:ndcg", "rank:map"}
_LOG = {"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox"}


def _base_margin32(base_score: float, objective: str) -> np.float32:
    """The objective's link of base_score, as XGBoost computes it in float32 (to within an ulp)."""
    p = np.float32(base_score)
    if objective in _LOGIT:
        t = np.float32(np.float32(1.0) / p) - np.float32(1.0)
        return np.float32(-np.log(np.float64(t)))
    if objective in _IDENTITY:
        return p
    if objective in _LOG:
        return np.float32(np.log(np.float64(p)))
    raise ValueError(f"FastExplainer: unsupported objective {objective!r}")


def _tree_depth(left: np.ndarray, right: np.ndarray) -> int:
    depth = np.zeros(len(left), dtype=np.int64)
    order = [0]
    best = 0
    while order:
        node = order.pop()
        if left[node] >= 0:
            for child in (left[node], right[node]):
                depth[child] = depth[node] + 1
                best = max(best, int(depth[child]))
                order.append(int(child))
    return best


def _parse_booster(booster) -> _Trees:
    raw = booster.save_raw("json")
    model = json.loads(bytes(raw).decode())
    learner = model["learner"]
    gb = learner["gradient_booster"]
    if gb.get("name") != "gbtree":
        raise ValueError(f"FastExplainer supports gbtree boosters only, not {gb.get('name')!r}")
    param = learner["learner_model_param"]
    n_features = int(param["num_feature"])
    if int(param.get("num_class", "0")) > 1 or int(param.get("num_target", "1")) > 1:
        raise ValueError("FastExplainer supports single-output boosters only")
    base = param["base_score"]
    base = json.loads(base) if base.strip().startswith("[") else float(base)
    base = float(np.ravel(base)[0])
    base32 = _base_margin32(base, learner["objective"]["name"])

    trees = gb["model"]["trees"]
    feat, thr, left, right, dleft, value, cover, roots = [], [], [], [], [], [], [], []
    depth, offset = 0, 0
    for tree in trees:
        if any(int(s) != 0 for s in tree["split_type"]):
            raise ValueError("FastExplainer supports numeric splits only (no categorical features)")
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise ValueError("FastExplainer supports scalar leaves only")
        lc = np.asarray(tree["left_children"], dtype=np.int64)
        rc = np.asarray(tree["right_children"], dtype=np.int64)
        is_leaf = lc < 0
        roots.append(offset)
        feat.append(np.where(is_leaf, 0, np.asarray(tree["split_indices"], dtype=np.int64)))
        cond = np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
        thr.append(cond)
        # A leaf's value is stored in split_conditions (already scaled by the learning rate).
        value.append(np.where(is_leaf, cond, np.float32(0)).astype(np.float32))
        left.append(np.where(is_leaf, -1, lc + offset))
        right.append(np.where(is_leaf, -1, rc + offset))
        dleft.append(np.asarray(tree["default_left"], dtype=np.bool_))
        cover.append(np.asarray(tree["sum_hessian"], dtype=np.float64).astype(np.float32).astype(np.float64))
        depth = max(depth, _tree_depth(lc, rc))
        offset += len(lc)

    def cat(parts, dtype):
        return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0), dtype=dtype)

    return _Trees(cat(feat, np.int64), cat(thr, np.float32), cat(left, np.int64), cat(right, np.int64),
                  cat(dleft, np.bool_), cat(value, np.float32), cat(cover, np.float64),
                  np.asarray(roots, dtype=np.int64), depth, base32, n_features)


def _probe_rows(feat, thr, left, n_features, rows=96, seed=0) -> np.ndarray:
    """Rows that reach many leaves: per feature, a split threshold of that feature (exactly, or
    one float32 ulp below), a random value, or NaN."""
    rng = np.random.default_rng(seed)
    internal = left >= 0
    X = rng.normal(size=(rows, n_features))
    for j in range(n_features):
        t = thr[internal & (feat == j)]
        if len(t) == 0:
            continue
        pick = t[rng.integers(len(t), size=rows)]
        below = np.nextafter(pick, np.float32(-np.inf))
        choice = rng.integers(4, size=rows)
        X[:, j] = np.where(choice == 0, pick, np.where(choice == 1, below, np.where(choice == 2, np.nan,
                                                                                    X[:, j] * 10)))
    X[0] = np.nan
    return X.astype(np.float32).astype(np.float64)


# ------------------------------------------------------------------------------------------------
# The explainer
# ------------------------------------------------------------------------------------------------


class FastExplainer:
    """All outcomes' scores and SHAP explanations of a RiskModel in one compiled pass.

    Build once per worker with `FastExplainer.from_model(model)` (compiles and warms up the
    kernels, a few seconds the first time in a process). Inputs are model matrices: rows x
    `feature_names` as a float ndarray, or a DataFrame with those columns, as `build_features`
    returns.
    """

    def __init__(self, outcomes, feature_names, trees: list[_Trees], weight, calib_a, calib_b, linears,
                 member_of=(), multipliers=None) -> None:
        """`trees`, `weight`, `calib_a`, `calib_b`, `linears`: one entry per outcome, then one per
        interval member; `member_of` names each member's outcome, `multipliers` the interval
        half-width in member SDs per outcome that has members."""
        self.outcomes: tuple[str, ...] = tuple(outcomes)
        if len(trees) != len(self.outcomes) + len(member_of):
            raise ValueError("one compiled booster per outcome and per member is needed")
        self.feature_names: tuple[str, ...] = tuple(feature_names)
        self._index = {o: i for i, o in enumerate(self.outcomes)}
        nf = len(self.feature_names)
        for t in trees:
            if t.n_features != nf:
                raise ValueError(f"booster has {t.n_features} features, the model matrix {nf}")
        # Concatenate every outcome's trees; child indices become global.
        node_off, tree_off = 0, 0
        parts = {k: [] for k in ("feat", "thr", "left", "right", "dleft", "value", "cover", "roots")}
        lo, hi = [], []
        for t in trees:
            parts["feat"].append(t.feat)
            parts["thr"].append(t.thr)
            parts["left"].append(np.where(t.left >= 0, t.left + node_off, -1))
            parts["right"].append(np.where(t.right >= 0, t.right + node_off, -1))
            parts["dleft"].append(t.dleft)
            parts["value"].append(t.value)
            parts["cover"].append(t.cover)
            parts["roots"].append(t.roots + node_off)
            lo.append(tree_off)
            tree_off += len(t.roots)
            hi.append(tree_off)
            node_off += len(t.feat)
        dtypes = {"feat": np.int64, "thr": np.float32, "left": np.int64, "right": np.int64, "dleft": np.bool_,
                  "value": np.float32, "cover": np.float64, "roots": np.int64}
        arr = {k: np.ascontiguousarray(np.concatenate(v) if v else np.zeros(0), dtype=dtypes[k])
               for k, v in parts.items()}
        self._feat, self._thr, self._left, self._right = arr["feat"], arr["thr"], arr["left"], arr["right"]
        self._dleft, self._value, self._cover, self._roots = arr["dleft"], arr["value"], arr["cover"], arr["roots"]
        self._lo = np.asarray(lo, dtype=np.int64)
        self._hi = np.asarray(hi, dtype=np.int64)
        self._depth = max([t.depth for t in trees] + [0])
        self._base32 = np.asarray([t.base32 for t in trees], dtype=np.float32)
        # Expected value of each tree (cover-weighted mean leaf) -> the SHAP bias, in float64.
        means = np.zeros(len(self._feat))
        value64 = self._value.astype(np.float64)
        per_tree = np.array([_tree_means(r, self._left, self._right, value64, self._cover, means)
                             for r in self._roots])
        self._tree_bias = np.array([float(self._base32[i]) + per_tree[lo[i]:hi[i]].sum()
                                    for i in range(len(trees))], dtype=np.float64)
        self._weight = np.asarray(weight, dtype=np.float64)
        self._calib_a = np.asarray(calib_a, dtype=np.float64)
        self._calib_b = np.asarray(calib_b, dtype=np.float64)
        k = len(trees)
        shape = (k, nf)
        self._lin_median, self._lin_mean, self._lin_scale = np.zeros(shape), np.zeros(shape), np.ones(shape)
        self._lin_mmean, self._lin_mscale = np.zeros(shape), np.ones(shape)
        self._lin_coef_v, self._lin_coef_m, self._lin_intercept = np.zeros(shape), np.zeros(shape), np.zeros(k)
        for i, lin in enumerate(linears):
            if lin is None:
                continue
            coef = np.asarray(lin.model_.coef_[0], dtype=float)
            self._lin_median[i], self._lin_mean[i], self._lin_scale[i] = lin.median_, lin.mean_, lin.scale_
            self._lin_mmean[i], self._lin_mscale[i] = lin.miss_mean_, lin.miss_scale_
            self._lin_coef_v[i], self._lin_coef_m[i] = coef[:nf], coef[nf:]
            self._lin_intercept[i] = float(lin.model_.intercept_[0])
        self._all = np.arange(len(self.outcomes), dtype=np.int64)
        first = len(self.outcomes)
        self._members = {o: np.array([first + i for i, m in enumerate(member_of) if m == o], dtype=np.int64)
                         for o in self.outcomes}
        self._members = {o: idx for o, idx in self._members.items() if len(idx)}
        self._member_all = np.concatenate([*self._members.values(), np.zeros(0, dtype=np.int64)])
        self.multipliers: dict[str, float] = dict(multipliers or {})
        missing = set(self._members) - set(self.multipliers)
        if missing:
            raise ValueError(f"no interval multiplier for {sorted(missing)}")

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_model(cls, model) -> "FastExplainer":
        """Compile every outcome of a fitted RiskModel, check the margins on probe rows, warm up."""
        if not hasattr(model, "models_"):
            raise RuntimeError("RiskModel is not fitted")
        outcomes = tuple(model.models_)
        ms = [model.models_[o] for o in outcomes]
        boosters = [m.booster for m in ms]
        weight, calib_a, calib_b, linears = ([m.weight for m in ms], [m.calib_a for m in ms],
                                             [m.calib_b for m in ms], [m.linear for m in ms])
        member_of, multipliers = [], {}
        for o, m in zip(outcomes, ms):
            members = getattr(m, "members", None) or []
            if len(members) < 2:
                continue  # bundles saved before the interval ensemble: no interval
            multipliers[o] = m.interval_multiplier
            for member in members:
                boosters.append(member.booster)
                member_of.append(o)
                weight.append(m.weight)
                calib_a.append(member.calib_a)
                calib_b.append(member.calib_b)
                linears.append(member.linear if member.linear is not None else m.linear)
        trees = [_parse_booster(b) for b in boosters]
        ex = cls(outcomes, model.feature_names_, trees, weight, calib_a, calib_b, linears,
                 member_of=member_of, multipliers=multipliers)
        ex._check_against(boosters)
        ex._warm_up()
        return ex

    @classmethod
    def from_boosters(cls, boosters: dict, feature_names=None) -> "FastExplainer":
        """Bare boosters (no blend, no recalibration): probabilities are sigmoid(margin)."""
        outcomes = tuple(boosters)
        trees = [_parse_booster(boosters[o]) for o in outcomes]
        names = feature_names or [f"f{j}" for j in range(trees[0].n_features)]
        k = len(outcomes)
        ex = cls(outcomes, names, trees, np.ones(k), np.zeros(k), np.ones(k), [None] * k)
        ex._check_against([boosters[o] for o in outcomes])
        ex._warm_up()
        return ex

    def _check_against(self, boosters) -> None:
        """Compare float32 margins with the booster's own on probe rows. If libm rounded the base
        margin differently, move it by a few float32 ulps. Raise if the trees do not match."""
        X = _probe_rows(self._feat, self._thr, self._left, len(self.feature_names))
        for i, booster in enumerate(boosters):
            want = np.asarray(booster.inplace_predict(X.astype(np.float32), predict_type="margin"),
                              dtype=np.float32).ravel()
            which = np.array([i], dtype=np.int64)
            best, best_hits = self._base32[i], -1
            start = self._base32[i]
            for step in (0, 1, -1, 2, -2, 3, -3, 4, -4):
                cand = start
                for _ in range(abs(step)):
                    cand = np.nextafter(cand, np.float32(np.inf if step > 0 else -np.inf))
                self._base32[i] = cand
                got = self._run(X, which, False)[0][:, 0]
                hits = int(np.sum(got == want))
                if hits > best_hits:
                    best, best_hits = cand, hits
                if hits == len(want):
                    break
            self._base32[i] = best
            got = self._run(X, which, False)[0][:, 0]
            err = float(np.max(np.abs(got.astype(float) - want.astype(float))))
            if err > 1e-4:
                raise ValueError(f"FastExplainer: compiled trees of {self.outcomes[i]!r} disagree with the "
                                 f"booster (max margin difference {err:.3g})")
            # The bias moves with the base margin.
            shift = float(best) - float(start)
            self._tree_bias[i] += shift

    def _warm_up(self) -> None:
        self.predict_explain(np.full((1, len(self.feature_names)), np.nan))
        if self.has_intervals:
            self.member_logits(np.full((1, len(self.feature_names)), np.nan))

    # -- evaluation ------------------------------------------------------------------------------

    def _matrix(self, X) -> np.ndarray:
        if hasattr(X, "columns"):
            X = X[list(self.feature_names)].to_numpy(dtype=np.float64)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected a matrix with {len(self.feature_names)} feature columns, got {X.shape}")
        return np.ascontiguousarray(X)

    def _run(self, X: np.ndarray, which: np.ndarray, want_contribs: bool, threads: int = 1):
        if threads > 1 and len(X) >= 64 * threads:
            # The kernel releases the GIL: row blocks run in parallel threads.
            bounds = np.linspace(0, len(X), threads + 1).astype(int)
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(lambda i: self._run(X[bounds[i]:bounds[i + 1]], which, want_contribs),
                                      range(threads)))
            return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                    np.concatenate([p[2] for p in parts], axis=1), np.concatenate([p[3] for p in parts]))
        return _run(X, which, want_contribs,
                    self._feat, self._thr, self._left, self._right, self._dleft, self._value, self._cover,
                    self._roots, self._lo, self._hi, self._base32, self._tree_bias, self._weight,
                    self._calib_a, self._calib_b, self._lin_median, self._lin_mean, self._lin_scale,
                    self._lin_mmean, self._lin_mscale, self._lin_coef_v, self._lin_coef_m,
                    self._lin_intercept, self._depth)

    def margins(self, X) -> dict[str, np.ndarray]:
        """Raw booster margins (base included), float32 as `booster.predict(output_margin=True)`."""
        m32 = self._run(self._matrix(X), self._all, False)[0]
        return {o: m32[:, i] for i, o in enumerate(self.outcomes)}

    def predict(self, X) -> dict[str, np.ndarray]:
        """Calibrated probabilities per outcome, as `RiskModel.predict_features`."""
        p = self._run(self._matrix(X), self._all, False)[1]
        return {o: p[:, i] for i, o in enumerate(self.outcomes)}

    def explain(self, X, outcome: str, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(contributions n x F, base n) in calibrated log-odds, as `RiskModel.explain_features`."""
        which = np.array([self._index[outcome]], dtype=np.int64)
        _, _, c, b = self._run(self._matrix(X), which, True, threads)
        return c[0], b[:, 0]

    def predict_explain(self, X, threads: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per outcome (probability n, contributions n x F, base n), all in one compiled pass.

        One request: keep threads=1. Large batches: threads=os.cpu_count() splits the rows.
        """
        _, p, c, b = self._run(self._matrix(X), self._all, True, threads)
        return {o: (p[:, i], c[i], b[:, i]) for i, o in enumerate(self.outcomes)}

    # -- interval members ------------------------------------------------------------------------

    @property
    def has_intervals(self) -> bool:
        """Whether any outcome has compiled interval members."""
        return bool(self._members)

    def member_margins(self, X) -> dict[str, np.ndarray]:
        """Raw booster margins of each outcome's members (n x B, float32), as each member booster's
        `predict(output_margin=True)`. Outcomes without members are left out."""
        if not self._members:
            return {}
        m32 = self._run(self._matrix(X), self._member_all, False)[0]
        out, col = {}, 0
        for o, idx in self._members.items():
            out[o] = m32[:, col:col + len(idx)]
            col += len(idx)
        return out

    def member_logits(self, X, threads: int = 1) -> dict[str, np.ndarray]:
        """Calibrated log-odds of each outcome's members (n x B): blend and each member's calibration,
        in one margins-only pass (no SHAP). Outcomes without members are left out."""
        if not self._members:
            return {}
        from models.interval import logit

        z = logit(self._run(self._matrix(X), self._member_all, False, threads)[1])
        out, col = {}, 0
        for o, idx in self._members.items():
            out[o] = z[:, col:col + len(idx)]
            col += len(idx)
        return out

    def intervals(self, X, point: dict[str, np.ndarray], threads: int = 1) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per outcome with members, (low, high) around the probabilities `point[outcome]` (rows of X),
        as `RiskModel.predict_interval_features`."""
        from models.interval import interval

        logits = self.member_logits(X, threads)
        return {o: interval(point[o], z, self.multipliers[o]) for o, z in logits.items() if o in point}
