"""Writes the notebooks from plain cell lists, so they stay reviewable as code (run: python notebooks/build_notebooks.py)."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

RETRAINING = [
    new_markdown_cell(
        "# Retraining walkthrough\n\n"
        "Load a labelled checkup file, validate it with the Great Expectations suite, train a challenger, "
        "compare it with the champion in MLflow, and promote it only if the gate agrees.\n\n"
        "Set `CHECKUP_RISK_HOME` to the store you work on; this notebook uses a temporary one and a small "
        "synthetic cohort (`NOTEBOOK_PEOPLE`, default 3000 people) so it runs anywhere."
    ),
    new_code_cell(
        "import os, tempfile\n"
        "from pathlib import Path\n"
        "home = Path(os.environ.get('CHECKUP_RISK_HOME') or tempfile.mkdtemp(prefix='checkup-risk-'))\n"
        "os.environ['CHECKUP_RISK_HOME'] = str(home)\n"
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
    new_markdown_cell("## 3. Train the first model and make it champion"),
    new_code_cell(
        "from training.train import train, summary_table\n"
        "first = train(data, promote=True, seed=0, say=lambda s: None)\n"
        "print(summary_table(first.metrics))\n"
        "print(first.decision)"
    ),
    new_markdown_cell("## 4. Train a challenger and compare it with the champion in MLflow"),
    new_code_cell(
        "second = train(data, promote=False, seed=1, say=lambda s: None)\n"
        "import mlflow\n"
        "runs = mlflow.search_runs(experiment_names=['checkup-risk'])\n"
        "cols = [c for c in runs.columns if c.endswith('.auroc') and c.startswith('metrics.')]\n"
        "runs[['run_id'] + cols]"
    ),
    new_markdown_cell("## 5. The gate decides on the same held-out people"),
    new_code_cell(
        "import numpy as np, pandas as pd\n"
        "from training import registry\n"
        "from training.train import test_mask\n"
        "from training.promotion import decide\n"
        "champion, champion_version = registry.load('champion')\n"
        "challenger, challenger_version = registry.load('challenger')\n"
        "test = read.frame.loc[test_mask(read.frame, seed=1)]\n"
        "y = {o: test[f'{o}_1y'].to_numpy(dtype=float) for o in challenger.models_}\n"
        "decision = decide(y, {o: v.to_numpy() for o, v in challenger.predict(test).items()},\n"
        "                  {o: v.to_numpy() for o, v in champion.predict(test).items()})\n"
        "print(decision.summary())\n"
        "if decision.promote:\n"
        "    registry.set_alias(registry.CHAMPION, challenger_version)\n"
        "print('champion is now version', registry.version_of('champion'))"
    ),
    new_markdown_cell("Open the store in the MLflow UI with `mlflow ui --backend-store-uri sqlite:///$CHECKUP_RISK_HOME/mlflow.db`."),
]


def main() -> None:
    nb = new_notebook(cells=RETRAINING, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                   "language": "python"}})
    nbformat.write(nb, HERE / "retraining.ipynb")


if __name__ == "__main__":
    main()
