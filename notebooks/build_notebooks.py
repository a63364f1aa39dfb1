"""Writes the notebooks from plain cell lists, so they stay reviewable as code (run: python notebooks/build_notebooks.py)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

RETRAINING = [
    new_markdown_cell(
        "# Retraining walkthrough: the monitoring loop\n\n"
        "Load a labelled checkup file, validate it with the Great Expectations suite and train the first "
        "champion; then a year in service: the prediction log, the monitor report before the outcomes are "
        "known and after they arrive, a challenger trained on the original and the newly labelled "
        "checkups, compared with the champion in MLflow and promoted only if the gate agrees.\n\n"
        "Set `CHECKUP_RISK_HOME` to the store you work on; this notebook uses a temporary one and a small "
        "synthetic cohort (`NOTEBOOK_PEOPLE`, default 3000 people) so it runs anywhere."
    ),
    new_code_cell(
        "import os, tempfile\n"
        "from pathlib import Path\n"
        "home = Path(os.environ.get('CHECKUP_RISK_HOME') or tempfile.mkdtemp(prefix='checkup-risk-'))\n"
        "from training import registry\n"
        "registry.configure(home)  # the store train() and the registry calls below use\n"
        "home.mkdir(parents=True, exist_ok=True)\n"
        "people = int(os.environ.get('NOTEBOOK_PEOPLE', '3000'))\n"
        "print('store:', home)"
    ),
    new_markdown_cell("## 1. Load\nA synthetic cohort stands in for the real export; `read_checkups` takes canonical CSV/Parquet or the NHIS file."),
    new_code_cell(
        "from features.synth import generate_cohort\n"
        "from features.readers import read_checkups\n"
        "data = home / 'cohort.parquet'\n"
        "generate_cohort(people=people, seed=21).to_parquet(data, index=False)\n"
        "read = read_checkups(data)\n"
        "print(read.rows_in, 'rows,', read.rejected_rows, 'rejected')\n"
        "read.frame.head()"
    ),
    new_markdown_cell("## 2. Validate"),
    new_code_cell(
        "from features.validation import run_suite\n"
        "report = run_suite(read.frame)\n"
        "assert report.success, report.critical_failures\n"
        "print(report.evaluated, 'expectations passed')"
    ),
    new_markdown_cell(
        "## 3. Train the first model and make it champion\n\n"
        "With no champion yet, the gate still checks calibration on the held-out persons; a small "
        "cohort may fail it (the decision says why). This walk-through then makes it champion by hand "
        "so that the next steps have something to compare with: never do that with a model you serve."
    ),
    new_code_cell(
        "from training import registry\n"
        "from training.train import train, summary_table\n"
        "first = train(data, promote=True, seed=0, say=lambda s: None)\n"
        "print(summary_table(first.metrics))\n"
        "print(first.decision)\n"
        "if not first.promoted:\n"
        "    registry.set_alias(registry.CHAMPION, first.version)"
    ),
    new_markdown_cell(
        "## 4. A year in service: the prediction log\n\n"
        "The champion scores next year's examinees, here through `checkup-risk score` as a batch (the "
        "HTTP service, CDS and FHIR log the same way). Every scored checkup goes to the prediction log, "
        "pseudonymised (`$CHECKUP_RISK_HOME/predictions`, or PostgreSQL). This year's population is "
        "made different on purpose: blood pressure is measured 15 mmHg higher (a new device, say)."
    ),
    new_code_cell(
        "import datetime as dt, subprocess, sys\n"
        "import pandas as pd\n"
        "from features.schema import label_column, true_risk_column, OUTCOMES\n"
        "next_year = generate_cohort(people=people, seed=22)\n"
        "next_year['sbp'] = (next_year['sbp'] + 15).clip(upper=270)\n"
        "labels = [label_column(o) for o in OUTCOMES]\n"
        "hidden = labels + [true_risk_column(o) for o in OUTCOMES]\n"
        "checkups = home / 'next-year-checkups.parquet'  # what the clinics send: no outcomes yet\n"
        "next_year.drop(columns=[c for c in hidden if c in next_year]).to_parquet(checkups, index=False)\n"
        "env = {**os.environ, 'CHECKUP_RISK_HOME': str(home)}\n"
        "done = subprocess.run([sys.executable, '-m', 'checkup_risk_cli', 'score', '--input', str(checkups),\n"
        "                       '--output', str(home / 'next-year-scored.csv')], env=env, capture_output=True, text=True)\n"
        "assert done.returncode == 0, done.stderr\n"
        "print(done.stdout.strip().splitlines()[-1])"
    ),
    new_markdown_cell(
        "## 5. The monitor, before any outcome is known\n\n"
        "`checkup-risk monitor` compares the logged inputs with the training reference saved in the "
        "bundle (PSI and a two-sample test per input, missing rates, new categories), the predictions "
        "with the training predictions, and the label-free expected AUROC of the period with the one at "
        "training: a change of case-mix shows on day one. The same run, from Python:"
    ),
    new_code_cell(
        "from training.monitor import monitor, alarm_text\n"
        "today = dt.datetime.now(dt.UTC).date()\n"
        "before = monitor(today, None, 'champion', home / 'monitor', home=home, log_dir=home / 'predictions')\n"
        "print('report:', *[str(f) for f in before.files])\n"
        "for alarm in before.alarms:\n"
        "    print('ALARM', alarm_text(alarm))\n"
        "assert any(a.get('feature') == 'sbp' for a in before.alarms), 'the SBP shift should be named'\n"
        "pd.DataFrame({o: {'expected AUROC now': b['prediction'].get('expected_auroc'),\n"
        "                  'at training': b['prediction'].get('reference_expected_auroc')}\n"
        "              for o, b in before.report['outcomes'].items()}).T"
    ),
    new_markdown_cell(
        "## 6. A year later the outcomes arrive\n\n"
        "The one-year outcomes of those checkups are joined to the logged predictions by the same "
        "pseudonym (each checkup counted once), giving the realised AUROC and calibration."
    ),
    new_code_cell(
        "outcomes = home / 'next-year-outcomes.parquet'\n"
        "next_year[['person_id', 'exam_date'] + labels].to_parquet(outcomes, index=False)\n"
        "after = monitor(today, None, 'champion', home / 'monitor-outcomes', home=home,\n"
        "                log_dir=home / 'predictions', outcomes_path=outcomes)\n"
        "print(after.report['realised'])\n"
        "pd.DataFrame({o: {k: b['realised'].get(k) for k in ('n', 'events', 'auroc', 'calibration_intercept')}\n"
        "              for o, b in after.report['outcomes'].items() if 'realised' in b}).T"
    ),
    new_markdown_cell(
        "## 7. Retrain on the original data and the newly labelled checkups\n\n"
        "`checkup-risk train --data cohort.parquet --data next-year-labelled.parquet` (a checkup in the "
        "later file replaces an earlier copy). The new version is the challenger."
    ),
    new_code_cell(
        "labelled = home / 'next-year-labelled.parquet'\n"
        "next_year.to_parquet(labelled, index=False)\n"
        "second = train([data, labelled], promote=False, seed=1, say=lambda s: None)\n"
        "import mlflow\n"
        "runs = mlflow.search_runs(experiment_names=['checkup-risk'])\n"
        "cols = [c for c in runs.columns if c.endswith('.auroc') and c.startswith('metrics.')]\n"
        "runs[['run_id'] + cols]"
    ),
    new_markdown_cell("## 8. The gate decides on the same held-out people"),
    new_code_cell(
        "import numpy as np, pandas as pd\n"
        "from training import registry\n"
        "from training.train import read_files, test_mask\n"
        "from training.promotion import decide\n"
        "champion, champion_version = registry.load('champion')\n"
        "challenger, challenger_version = registry.load('challenger')\n"
        "both = read_files([data, labelled], say=lambda s: None).frame\n"
        "test = both.loc[test_mask(both, seed=1)]\n"
        "y = {o: test[f'{o}_1y'].to_numpy(dtype=float) for o in challenger.models_}\n"
        "decision = decide(y, {o: v.to_numpy() for o, v in challenger.predict(test).items()},\n"
        "                  {o: v.to_numpy() for o, v in champion.predict(test).items()})\n"
        "print(decision.summary())\n"
        "if decision.promote:\n"
        "    registry.set_alias(registry.CHAMPION, challenger_version)\n"
        "print('champion is now version', registry.version_of('champion'))"
    ),
    new_markdown_cell(
        "Open the store in the MLflow UI with `mlflow ui --backend-store-uri sqlite:///$CHECKUP_RISK_HOME/mlflow.db`: "
        "the monitoring runs are in the experiment `monitoring`, tagged with the model version."
    ),
]

EXPLANATIONS = [
    new_markdown_cell(
        "# Explanation walkthrough\n\n"
        "How the models use the checkup: global SHAP importance and beeswarm, dependence plots for a few inputs, "
        "performance by sex x age band, and a what-if for one person, as the clinician report shows it.\n\n"
        "SHAP contributions are in calibrated log-odds: per row, base + contributions = the logit of the "
        "returned probability. Feature names are the clinical words of `features.labels`. The cohort is "
        "synthetic and small (`NOTEBOOK_PEOPLE`, default 3000) so the notebook runs anywhere in about a minute; "
        "point `bundle` at a registered version to study a real one."
    ),
    new_code_cell(
        "import os\n"
        "import numpy as np, pandas as pd\n"
        "import matplotlib.pyplot as plt\n"
        "import shap\n"
        "from features.synth import generate_cohort\n"
        "from features.derive import FEATURES, build_features\n"
        "from features.eligibility import eligibility\n"
        "from features.labels import FEATURE_LABELS\n"
        "from models.bundle import DEFAULT_GRID, RiskModel\n"
        "from training.train import test_mask\n"
        "people = int(os.environ.get('NOTEBOOK_PEOPLE', '3000'))\n"
        "cohort = generate_cohort(people=people, seed=41)\n"
        "held_out = test_mask(cohort, seed=0)\n"
        "train_rows, test_rows = cohort.loc[~held_out], cohort.loc[held_out]\n"
        "# One regularisation setting and no cross-validation: quick; `checkup-risk train` does the full search.\n"
        "bundle = RiskModel(grid=DEFAULT_GRID[:1], cv_below_events=0).fit(train_rows)\n"
        "print(f'{len(train_rows):,} training and {len(test_rows):,} held-out checkups')"
    ),
    new_markdown_cell("## 1. Global importance\nMean |SHAP| per feature and the beeswarm for one outcome, on held-out "
                      "checkups where the outcome applies."),
    new_code_cell(
        "outcome = 'diabetes'\n"
        "rows = test_rows.loc[eligibility(test_rows, (outcome,))[outcome].to_numpy()]\n"
        "X = build_features(rows)\n"
        "# One call gives the probabilities and their SHAP explanation (the path the service uses).\n"
        "scores = bundle.score(X, explain=True, outcomes=(outcome,))\n"
        "contribs, base, p = scores.contributions[outcome], scores.base[outcome], scores.probability[outcome]\n"
        "names = [FEATURE_LABELS[f].en for f in FEATURES]\n"
        "explanation = shap.Explanation(values=contribs, base_values=base, data=X.to_numpy(), feature_names=names)\n"
        "# Additivity: base + contributions = the calibrated log-odds of the predicted probability.\n"
        "assert np.allclose(base + contribs.sum(axis=1), np.log(p / (1 - p)), atol=1e-4)\n"
        "shap.plots.bar(explanation, max_display=12, show=False)\n"
        "plt.title(f'{outcome}: mean |SHAP| (log-odds)'); plt.show()"
    ),
    new_code_cell(
        "shap.plots.beeswarm(explanation, max_display=12, show=False)\n"
        "plt.title(f'{outcome}: SHAP per checkup'); plt.show()"
    ),
    new_markdown_cell("## 2. Dependence\nHow the contribution of an input changes with its value: fasting glucose, "
                      "whose monotone constraint (risk never falls as it rises) shows as a non-decreasing cloud, "
                      "and the two other strongest features."),
    new_code_cell(
        "strongest = [FEATURES[j] for j in np.argsort(-np.abs(contribs).mean(axis=0)) if FEATURES[j] != 'fasting_glucose']\n"
        "fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))\n"
        "for ax, feature in zip(axes, ['fasting_glucose'] + strongest[:2]):\n"
        "    j = FEATURES.index(feature)\n"
        "    label = FEATURE_LABELS[feature]\n"
        "    ax.scatter(X[feature], contribs[:, j], s=4, alpha=0.4)\n"
        "    ax.set_xlabel(f'{label.en} ({label.unit_text(\"en\")})'); ax.set_ylabel('SHAP (log-odds)')\n"
        "    ax.axhline(0, color='grey', lw=0.5)\n"
        "fig.suptitle(f'{outcome}: dependence'); plt.tight_layout(); plt.show()"
    ),
    new_markdown_cell("## 3. Performance by sex x age band\nObserved and expected events on held-out checkups, "
                      "then AUROC and observed/expected, left empty where a cell is too small to judge (flagged, "
                      "not hidden; with this small cohort most are: raise `NOTEBOOK_PEOPLE`)."),
    new_code_cell(
        "from training.evaluate import subgroups\n"
        "probs = bundle.predict(test_rows)\n"
        "tables = []\n"
        "for o in bundle.models_:\n"
        "    y = pd.to_numeric(test_rows[f'{o}_1y'], errors='coerce').to_numpy(dtype=float)\n"
        "    tables.append(pd.DataFrame(subgroups(test_rows, y, probs[o].to_numpy())).assign(outcome=o))\n"
        "by_group = pd.concat(tables)\n"
        "by_group['expected'] = by_group['mean_predicted'] * by_group['n']\n"
        "by_group.pivot_table(index=['sex', 'age_band'], columns='outcome', values=['events', 'expected'],\n"
        "                     aggfunc='sum').round(1)"
    ),
    new_code_cell(
        "by_group[['outcome', 'sex', 'age_band', 'n', 'events', 'auroc', 'observed_to_expected', 'too_small']].round(3)"
    ),
    new_markdown_cell("## 4. What-if for one person\nThe report's estimates: each modifiable input set to its "
                      "target, derived features recomputed by the same pipeline, the model asked again. Model "
                      "estimates, not promises."),
    new_code_cell(
        "from features.schema import EXAMPLE_RECORD\n"
        "from serving.report import render_html, risk_text, what_if\n"
        "from serving.schemas import Checkup\n"
        "from serving.scoring import Scorer\n"
        "scorer = Scorer(bundle, 'notebook')\n"
        "person = Checkup.model_validate(dict(EXAMPLE_RECORD, sbp=136, fasting_glucose=118)).model_dump()\n"
        "now, changes = what_if(scorer, person)\n"
        "table = pd.DataFrame({'now': now, **{w.key: after for w, after in changes}}).T\n"
        "table.map(risk_text)"
    ),
    new_code_cell(
        "from IPython.display import HTML\n"
        "HTML(render_html(scorer, person, 'en'))"
    ),
]


def write(name: str, cells: list) -> None:
    for i, cell in enumerate(cells):
        cell.id = f"{name}-{i}"  # stable ids: rebuilding an unchanged notebook changes nothing
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(new_notebook(cells=cells, metadata=meta), HERE / f"{name}.ipynb")


def main() -> None:
    write("retraining", RETRAINING)
    write("explanations", EXPLANATIONS)


if __name__ == "__main__":
    main()
