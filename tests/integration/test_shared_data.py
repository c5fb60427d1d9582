"""The loaders on the real benchmark files in ../shared/data (skipped when that folder is absent)."""

from __future__ import annotations

from pathlib import Path

from encoderkit.data.columns import resolve_columns
from encoderkit.data.squad import check_answers, gold_answers, read_squad_file
from encoderkit.data.tables import read_table
from encoderkit.evaluation.squad_metrics import score
from encoderkit.tasks.classification import label_names_from, read_examples


def test_mrpc_tsv_with_bom_and_unbalanced_quotes(shared_data: Path) -> None:
    table = read_table(str(shared_data / "glue_mrpc" / "train.tsv.gz"))
    assert len(table.rows) == 3668  # every row survives quoting-off TSV parsing
    columns = resolve_columns(table)
    assert (columns.text, columns.text_pair, columns.label) == ("#1 String", "#2 String", "Quality")
    examples = read_examples(table, columns, need_label=True)
    assert label_names_from(examples) == ["0", "1"]
    assert sum(e.label == "1" for e in examples) == 2474


def test_sst2_and_imdb(shared_data: Path) -> None:
    sst2 = read_table(str(shared_data / "glue_sst2" / "dev.tsv.gz"))
    assert len(sst2.rows) == 872 and resolve_columns(sst2).text == "sentence"
    imdb = read_table(str(shared_data / "imdb" / "test_5k.jsonl.gz"))
    assert len(imdb.rows) == 5000 and sum(r["label"] for r in imdb.rows) == 2500


def test_squad_dev_reads_checks_and_scores_itself_perfectly(shared_data: Path) -> None:
    examples = read_squad_file(shared_data / "squad_v1.1" / "dev-v1.1.json.gz")
    assert len(examples) == 10570
    check = check_answers(examples)
    assert (check.repaired, check.skipped) == (0, 0)  # the README: all 34,726 spans match
    gold = gold_answers(examples)
    assert score("squad", gold, {qid: answers[0] for qid, answers in gold.items()}) == {
        "exact_match": 100.0,
        "f1": 100.0,
    }


def test_korquad_dev(shared_data: Path) -> None:
    examples = read_squad_file(shared_data / "korquad_v1.0" / "KorQuAD_v1.0_dev.json.gz")
    assert len(examples) == 5774
    gold = gold_answers(examples)
    half = {qid: (answers[0] if i % 2 else "") for i, (qid, answers) in enumerate(gold.items())}
    assert abs(score("korquad", gold, half)["exact_match"] - 100 * (len(gold) // 2) / len(gold)) < 1e-9
