"""Who the model learned from (outside tester): a model fitted on women only scored men in silence,
and its card gave no sex mix. The bundle records persons by sex and checkups by age band; a person
of a sex or band the training data hardly hold gets a warning on every path (one Scorer)."""

from features.schema import EXAMPLE_RECORD
from features.synth import generate_cohort
from models.bundle import DEFAULT_GRID, RiskModel
from models.provenance import MIN_SEEN
from serving.scoring import Scorer
from training.card import _provenance_lines


def test_a_model_of_women_only_says_so_of_a_man_and_its_card_gives_the_mix():
    cohort = generate_cohort(people=1200, seed=41)
    women = cohort[cohort["sex"] == "F"]
    model = RiskModel(outcomes=("hypertension",), grid=DEFAULT_GRID[:1], cv_below_events=0, interval_members=2).fit(
        women
    )
    info = model.training_data_
    assert info["sexes"] == {"F": women["person_id"].nunique(), "M": 0}
    assert sum(info["age_bands"].values()) == len(women)
    man, woman = (dict(EXAMPLE_RECORD, sex=s, person_id=f"p-{s}") for s in ("M", "F"))
    said = [r["warnings"] for r in Scorer(model, "1").score_records([man, woman], explain=False)]
    expected = "the model's training data hold 0 men (persons): it learned nothing about people like this one"
    assert any(w.startswith(expected) for w in said[0]), said[0]
    assert not any("training data hold" in w for w in said[1]), said[1]
    # The report says it too, in its language, and the CDS card carries the line.
    from serving.cds_cards import card
    from serving.report import build_context

    scorer = Scorer(model, "1")
    assert build_context(scorer, man, "ko")["unseen_note"].startswith("이 모델의 학습 데이터에는 남성 0명만 있어")
    assert build_context(scorer, woman, "en")["unseen_note"] is None
    result = scorer.score_records([man], explain=True, top_k=5)[0]
    made = card(result, "1", [], None, result["missing_inputs"])
    assert made is not None and f"- {expected}" in made["detail"]
    (line, *_) = _provenance_lines(info)
    assert f"Persons by sex: {info['sexes']['F']:,} women, 0 men." in line and "Checkups by age band: 20-39 " in line


def test_a_thin_age_band_is_said_and_a_bundle_without_its_population_says_nothing():
    from models.provenance import unknown, unseen

    info = {"sexes": {"F": 500, "M": 500}, "age_bands": {"20-39": MIN_SEEN - 1, "40-49": 5000}}
    assert unseen(info, "M", "20-39").startswith(
        f"the model's training data hold {MIN_SEEN - 1} checkups of people aged 20-39"
    )
    assert unseen(info, "M", "40-49") is None
    assert unseen(unknown(), "M", "20-39") is None
