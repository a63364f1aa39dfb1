"""The promotion gate cannot compare two models on inputs the comparison rows lack: a challenger
trained on a file without blood pressure and glucose, judged beside the champion on that file's
held-out persons, looked as good as the champion (both were scored without them) and was promoted,
though 0.17 worse in diabetes AUROC on complete checkups (outside data scientist)."""

from training.train import inputs_not_compared


def test_inputs_the_champion_learned_from_and_the_rows_lack_are_named(model, held_out):
    assert inputs_not_compared(held_out, model) == []
    assert inputs_not_compared(held_out, None) == []  # a first model has no champion to be judged beside
    lacking = held_out.drop(columns=["sbp", "dbp"]).assign(fasting_glucose=float("nan"))
    assert inputs_not_compared(lacking, model) == ["sbp", "dbp", "fasting_glucose"]
    # A value in one row is enough: the rows are the held-out persons, and a column drawn for some
    # (the lipid panel, every fourth year) is compared on those.
    some = held_out.assign(waist_cm=float("nan"))
    some.loc[some.index[0], "waist_cm"] = 80.0
    assert inputs_not_compared(some, model) == []
