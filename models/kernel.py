"""The compiled kernel: XGBoost boosters as flat arrays, margins and exact TreeSHAP in one numba pass.

`booster.predict(DMatrix, pred_contribs=True)` pays for a DMatrix and a thread pool on every call
(about 1-13 ms per outcome), so a one-record, five-outcome request cannot meet a few-millisecond
budget through it. `CompiledBoosters` compiles boosters once into flat numpy arrays (from
`booster.save_raw("json")`, which holds thresholds, leaf values and covers exactly as float32) and
evaluates all their margins and path-dependent TreeSHAP values in one call.

The kernel stands in for the booster and nothing else: it returns what `predict(output_margin=True)`
and `predict(pred_contribs=True)` return. The blend with the logistic partner and the calibration are
the outcome model's own (`models.outcome.OutcomeModel`), applied to either source alike.

What is reproduced, and how exactly (see tests/model/test_kernel.py):

* Tree traversal is XGBoost's: the feature is rounded to float32 and goes left iff
  ``float32(x) < float32(threshold)``; a NaN follows the node's default (missing) direction.
* Margins are accumulated in float32, starting from the float32 base margin and adding the trees'
  float32 leaf values in tree order, as XGBoost's CPU predictor does. They equal
  ``booster.predict(output_margin=True)`` bit for bit on every tested row. The base margin is the
  objective's link applied to ``base_score`` (logit for logistic objectives). It is checked
  against the booster on probe rows built from the trees' own thresholds when the boosters are
  compiled, and nudged by at most a few float32 ulps if libm's rounding differs.
* Contributions use Lundberg et al. (2018), Algorithm 2 (EXTEND / UNWIND / UNWOUND-SUM), the
  algorithm behind XGBoost's ``pred_contribs`` and shap's ``tree_path_dependent``. XGBoost runs it
  in float32 (float32 path weights, float32 per-tree and per-row sums). Here it runs in float64 on
  the same float32 tree data, so results differ from XGBoost's only by XGBoost's own float32
  rounding: about 1e-7 to 1e-6 on these models. Contributions plus bias add up to the float64 sum
  of the same leaves to about 1e-12, and to the float32 margin within that margin's float32
  accumulation error (at most a few 1e-6).

The kernel releases the GIL, so threads share one compiled set: `evaluate(..., threads=N)` splits
the rows into blocks, and per-row results do not depend on the blocks.

Only what RiskModel trains is supported: `gbtree` boosters with numeric splits and one output.
Anything else raises `ValueError` when the boosters are compiled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from numba import njit

# Below this many rows per thread, starting threads costs more than it saves.
MIN_ROWS_PER_THREAD = 64

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


@njit(cache=True, inline="always")
def _push(stack, top, node, lv, ud, zero, one, feat):
    s_node, s_lv, s_ud, s_z, s_o, s_f = stack
    top += 1
    s_node[top] = node
    s_lv[top] = lv
    s_ud[top] = ud
    s_z[top] = zero
    s_o[top] = one
    s_f[top] = feat
    return top


@njit(cache=True, inline="always")
def _add_leaf_shares(phi, pf, pz, po, pw, lv, ud, leaf):
    for i in range(1, ud + 1):
        w = _unwound_sum(pz, po, pw, lv, ud, i)
        phi[pf[lv, i]] += w * (po[lv, i] - pz[lv, i]) * leaf


@njit(cache=True)
def _tree_shap(root, x32, phi, trees, path, stack):
    """Path-dependent TreeSHAP of one tree for one row, added into phi (iterative Algorithm 2).

    A node at tree depth `lv` keeps its unique path in row `lv` of the path arrays; both children
    copy it from there, and the hot child's subtree only writes deeper rows, so a depth-first
    stack needs no other copies.
    """
    feat, thr, left, right, dleft, value, cover = trees
    pf, pz, po, pw = path
    s_node, s_lv, s_ud, s_z, s_o, s_f = stack
    top = _push(stack, -1, root, 0, 0, 1.0, 1.0, -1)
    while top >= 0:
        node, lv, ud = s_node[top], s_lv[top], s_ud[top]
        pz_in, po_in, pf_in = s_z[top], s_o[top], s_f[top]
        top -= 1
        if lv > 0:
            for i in range(ud):
                pf[lv, i] = pf[lv - 1, i]
                pz[lv, i] = pz[lv - 1, i]
                po[lv, i] = po[lv - 1, i]
                pw[lv, i] = pw[lv - 1, i]
        _extend(pf, pz, po, pw, lv, ud, pz_in, po_in, pf_in)
        if left[node] < 0:
            _add_leaf_shares(phi, pf, pz, po, pw, lv, ud, value[node])
            continue
        hot = _next_node(node, x32, feat, thr, left, right, dleft)
        cold = right[node] if hot == left[node] else left[node]
        inc_zero, inc_one = 1.0, 1.0
        split = feat[node]
        idx = 0
        while idx <= ud and pf[lv, idx] != split:
            idx += 1
        if idx != ud + 1:  # the feature splits again on this path: undo its earlier share
            inc_zero, inc_one = pz[lv, idx], po[lv, idx]
            _unwind(pf, pz, po, pw, lv, ud, idx)
            ud -= 1
        # Cold child below hot child on the stack: the hot subtree is explored first, as in XGBoost.
        top = _push(stack, top, cold, lv + 1, ud + 1, cover[cold] / cover[node] * inc_zero, 0.0, split)
        top = _push(stack, top, hot, lv + 1, ud + 1, cover[hot] / cover[node] * inc_zero, inc_one, split)


@njit(cache=True, nogil=True)
def _run(X, which, want_contribs, trees, roots, tree_lo, tree_hi, base32, max_depth):
    """Booster margins (n x k float32, as XGBoost sums them) and, with `want_contribs`, their
    per-feature TreeSHAP values (k x n x F float64) for the compiled boosters `which`."""
    feat, thr, left, right, dleft, value, cover = trees
    n, nf = X.shape
    k = which.shape[0]
    margin32 = np.empty((n, k), dtype=np.float32)
    contrib = np.zeros((k, n if want_contribs else 0, nf))
    x32 = np.empty(nf, dtype=np.float32)
    levels = max_depth + 2
    path = (
        np.full((levels, levels), -1, dtype=np.int64),
        np.zeros((levels, levels)),
        np.zeros((levels, levels)),
        np.zeros((levels, levels)),
    )
    ss = 2 * levels + 2
    stack = (
        np.empty(ss, dtype=np.int64),
        np.empty(ss, dtype=np.int64),
        np.empty(ss, dtype=np.int64),
        np.empty(ss),
        np.empty(ss),
        np.empty(ss, dtype=np.int64),
    )
    for r in range(n):
        for j in range(nf):
            x32[j] = np.float32(X[r, j])
        for q in range(k):
            b = which[q]
            acc = base32[b]  # float32, trees in order, as XGBoost's CPU predictor sums it
            for t in range(tree_lo[b], tree_hi[b]):
                # Written out here: through an inlined helper this loop runs ~40 % slower.
                node = roots[t]
                while left[node] >= 0:
                    node = _next_node(node, x32, feat, thr, left, right, dleft)
                acc += value[node]
            margin32[r, q] = acc
            if want_contribs:
                phi = contrib[q, r]
                for t in range(tree_lo[b], tree_hi[b]):
                    _tree_shap(roots[t], x32, phi, trees, path, stack)
    return margin32, contrib


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
# Boosters into flat arrays
# ------------------------------------------------------------------------------------------------


@dataclass
class _Trees:
    """One booster's trees, node arrays concatenated; child indices and roots local to it."""

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


_NODE_DTYPES = {
    "feat": np.int64,
    "thr": np.float32,
    "left": np.int64,
    "right": np.int64,
    "dleft": np.bool_,
    "value": np.float32,
    "cover": np.float64,
}
_LOGIT = {"binary:logistic", "reg:logistic"}
_IDENTITY = {
    "binary:logitraw",
    "reg:squarederror",
    "reg:squaredlogerror",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "reg:quantileerror",
    "binary:hinge",
    "rank:pairwise",
    "rank:ndcg",
    "rank:map",
}
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
    raise ValueError(f"compiled kernel: unsupported objective {objective!r}")


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


def _learner(booster: xgb.Booster) -> dict:
    """The booster's learner section, after checking that the kernel can reproduce it."""
    learner = json.loads(bytes(booster.save_raw("json")).decode())["learner"]
    name = learner["gradient_booster"].get("name")
    if name != "gbtree":
        raise ValueError(f"the compiled kernel supports gbtree boosters only, not {name!r}")
    param = learner["learner_model_param"]
    if int(param.get("num_class", "0")) > 1 or int(param.get("num_target", "1")) > 1:
        raise ValueError("the compiled kernel supports single-output boosters only")
    return learner


def _parse_booster(booster: xgb.Booster) -> _Trees:
    learner = _learner(booster)
    param = learner["learner_model_param"]
    raw_base = param["base_score"]
    base = json.loads(raw_base) if raw_base.strip().startswith("[") else float(raw_base)
    base32 = _base_margin32(float(np.ravel(base)[0]), learner["objective"]["name"])
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _NODE_DTYPES}
    roots, depth, offset = [], 0, 0
    for tree in learner["gradient_booster"]["model"]["trees"]:
        if any(int(s) != 0 for s in tree["split_type"]):
            raise ValueError("the compiled kernel supports numeric splits only (no categorical features)")
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise ValueError("the compiled kernel supports scalar leaves only")
        lc = np.asarray(tree["left_children"], dtype=np.int64)
        rc = np.asarray(tree["right_children"], dtype=np.int64)
        is_leaf = lc < 0
        cond = np.asarray(tree["split_conditions"], dtype=np.float64).astype(np.float32)
        roots.append(offset)
        parts["feat"].append(np.where(is_leaf, 0, np.asarray(tree["split_indices"], dtype=np.int64)))
        parts["thr"].append(cond)
        # A leaf's value is stored in split_conditions (already scaled by the learning rate).
        parts["value"].append(np.where(is_leaf, cond, np.float32(0)).astype(np.float32))
        parts["left"].append(np.where(is_leaf, -1, lc + offset))
        parts["right"].append(np.where(is_leaf, -1, rc + offset))
        parts["dleft"].append(np.asarray(tree["default_left"], dtype=np.bool_))
        parts["cover"].append(np.asarray(tree["sum_hessian"], dtype=np.float64).astype(np.float32).astype(np.float64))
        depth = max(depth, _tree_depth(lc, rc))
        offset += len(lc)
    arrays = {k: _concat(v, _NODE_DTYPES[k]) for k, v in parts.items()}
    return _Trees(
        **arrays,
        roots=np.asarray(roots, dtype=np.int64),
        depth=depth,
        base32=base32,
        n_features=int(param["num_feature"]),
    )


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0), dtype=dtype)


def _probe_rows(
    feat: np.ndarray, thr: np.ndarray, left: np.ndarray, n_features: int, rows: int = 96, seed: int = 0
) -> np.ndarray:
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
        X[:, j] = np.where(choice == 0, pick, np.where(choice == 1, below, np.where(choice == 2, np.nan, X[:, j] * 10)))
    X[0] = np.nan
    return X.astype(np.float32).astype(np.float64)


# ------------------------------------------------------------------------------------------------
# The compiled set
# ------------------------------------------------------------------------------------------------


class CompiledBoosters:
    """Boosters compiled into one set of flat arrays; `evaluate` gives any of them in one pass.

    Build with `CompiledBoosters.compile(boosters)` (parses, checks the margins against the boosters
    on probe rows, warms the kernel up: a few seconds the first time in a process). Boosters are
    addressed by their position in the list given.
    """

    name = "compiled"

    def __init__(self, trees: list[_Trees]) -> None:
        if not trees:
            raise ValueError("nothing to compile")
        self.n_features = trees[0].n_features
        if any(t.n_features != self.n_features for t in trees):
            raise ValueError("the boosters disagree on the number of features")
        self._concatenate(trees)
        self._depth = max(t.depth for t in trees)
        self._base32 = np.asarray([t.base32 for t in trees], dtype=np.float32)
        self.bias = self._biases()

    def _concatenate(self, trees: list[_Trees]) -> None:
        """One node array per field over all boosters; child indices and roots become global."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in (*_NODE_DTYPES, "roots")}
        lo, hi = [], []
        node_off = tree_off = 0
        for t in trees:
            shifted = {
                "left": np.where(t.left >= 0, t.left + node_off, -1),
                "right": np.where(t.right >= 0, t.right + node_off, -1),
                "roots": t.roots + node_off,
            }
            for k in parts:
                parts[k].append(shifted[k] if k in shifted else getattr(t, k))
            lo.append(tree_off)
            tree_off += len(t.roots)
            hi.append(tree_off)
            node_off += len(t.feat)
        nodes = {k: _concat(parts[k], _NODE_DTYPES[k]) for k in _NODE_DTYPES}
        # The order the kernel unpacks them in.
        self._trees = tuple(nodes[k] for k in ("feat", "thr", "left", "right", "dleft", "value", "cover"))
        self._roots = _concat(parts["roots"], np.int64)
        self._lo = np.asarray(lo, dtype=np.int64)
        self._hi = np.asarray(hi, dtype=np.int64)

    def _biases(self) -> np.ndarray:
        """Per booster, the SHAP bias (expected margin): base margin plus every tree's cover-weighted
        mean leaf, in float64 (XGBoost's last `pred_contribs` column)."""
        _, _, left, right, _, value, cover = self._trees
        means = np.zeros(len(left))
        value64 = value.astype(np.float64)
        per_tree = np.array([_tree_means(r, left, right, value64, cover, means) for r in self._roots])
        return np.array(
            [float(self._base32[i]) + per_tree[self._lo[i] : self._hi[i]].sum() for i in range(len(self._lo))],
            dtype=np.float64,
        )

    def __len__(self) -> int:
        return len(self._lo)

    @classmethod
    def compile(cls, boosters: Sequence[xgb.Booster]) -> CompiledBoosters:
        """Compile, check every booster's margins on probe rows, warm up. Raises ValueError for
        boosters the kernel cannot reproduce."""
        compiled = cls([_parse_booster(b) for b in boosters])
        compiled._match_base_margins(boosters)
        compiled.evaluate(np.full((1, compiled.n_features), np.nan), np.arange(len(boosters)), shap=True)
        return compiled

    def _match_base_margins(self, boosters: Sequence[xgb.Booster]) -> None:
        """Compare float32 margins with each booster's own on probe rows. If libm rounded the base
        margin differently, move it by a few float32 ulps. Raise if the trees do not match."""
        feat, thr, left = self._trees[:3]
        X = _probe_rows(feat, thr, left, self.n_features)
        for i, booster in enumerate(boosters):
            want = np.asarray(
                booster.inplace_predict(X.astype(np.float32), predict_type="margin"), dtype=np.float32
            ).ravel()
            which = np.array([i], dtype=np.int64)
            start = best = self._base32[i]
            best_hits = -1
            for step in (0, 1, -1, 2, -2, 3, -3, 4, -4):
                cand = start
                for _ in range(abs(step)):
                    cand = np.nextafter(cand, np.float32(np.inf if step > 0 else -np.inf))
                self._base32[i] = cand
                hits = int(np.sum(self.evaluate(X, which)[0][:, 0] == want))
                if hits > best_hits:
                    best, best_hits = cand, hits
                if hits == len(want):
                    break
            self._base32[i] = best
            err = float(np.max(np.abs(self.evaluate(X, which)[0][:, 0].astype(float) - want.astype(float))))
            if err > 1e-4:
                raise ValueError(
                    f"compiled trees of booster {i} disagree with the booster (max margin difference {err:.3g})"
                )
            self.bias[i] += float(best) - float(start)  # the bias moves with the base margin

    def evaluate(
        self, X: np.ndarray, which: np.ndarray, shap: bool = False, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Boosters `which` on the float64 matrix X (n x F, C order): (margins n x k float32,
        and with `shap` their contributions k x n x F and bias n x k, float64; else None, None),
        as `predict(output_margin=True)` and `predict(pred_contribs=True)` give them. With
        `threads` > 1, large X is split into row blocks that run in parallel."""
        which = np.asarray(which, dtype=np.int64)
        margin, contrib = self._margins_and_shap(X, which, shap, threads)
        if not shap:
            return margin, None, None
        bias = np.empty(margin.shape)
        bias[:] = self.bias[which]
        return margin, contrib, bias

    def _margins_and_shap(
        self, X: np.ndarray, which: np.ndarray, shap: bool, threads: int
    ) -> tuple[np.ndarray, np.ndarray]:
        threads = max(1, min(threads, len(X) // MIN_ROWS_PER_THREAD))
        if threads == 1:
            return _run(X, which, shap, self._trees, self._roots, self._lo, self._hi, self._base32, self._depth)
        bounds = np.linspace(0, len(X), threads + 1).astype(int)
        with ThreadPoolExecutor(threads) as pool:
            parts = list(
                pool.map(lambda i: self._margins_and_shap(X[bounds[i] : bounds[i + 1]], which, shap, 1), range(threads))
            )
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts], axis=1)
