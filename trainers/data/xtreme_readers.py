"""The readers of an XTREME download's file formats, one per format, each returning canonical rows.

``xtreme_layout.LAYOUT`` says which task's files each one reads. Labels come back as the file writes
them (the layout's ``labels`` map them to the registry's names); a file whose labels XTREME's download
script removed is an ``UnlabelledError``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from trainers.data.loading import DataError

Rows = list[dict[str, Any]]


class UnlabelledError(DataError):
    """A file whose labels XTREME's download script removed (most test sets)."""


# -- readers, one per file format -----------------------------------------------------------------


def read_tagging_tsv(path: Path) -> Rows:
    """udpos and panx: ``token<TAB>tag`` per line, sentences separated by blank (or ``-DOCSTART-``) lines.

    As XTREME's ``utils_tag.read_examples_from_file``: the token is the first field, the tag the last.
    A file of bare tokens (XTREME's test files) has no tags: ``UnlabelledError``.
    """
    rows: Rows = []
    tokens: list[str] = []
    tags: list[str] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    for number, line in enumerate(lines, start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line or line.isspace() or line.startswith("-DOCSTART-"):
            if tokens:
                rows.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        token, tab, rest = line.partition("\t")
        if not tab:
            if not rows and not tokens:  # the first token of the file: a test file of bare tokens
                raise UnlabelledError(
                    f"{path} has tokens without tags (XTREME ships test sets without labels)"
                )
            raise DataError(f"{path} line {number} is not 'token<TAB>tag' like the lines before it")
        tokens.append(token)
        tags.append(rest.rpartition("\t")[2].strip())
    if tokens:
        rows.append({"tokens": tokens, "tags": tags})
    return rows


PAWSX_HEADER = ("id", "sentence1", "sentence2", "label")
"""PAWS-X's own files (``test_2k.tsv``) start with this header; XTREME's copies drop it and the id."""


def read_pair_tsv(path: Path) -> Rows:
    """xnli and pawsx: ``text_a<TAB>text_b<TAB>label``, written by ``csv.writer`` (quoted where needed).

    Also PAWS-X's original layout, a header ``id sentence1 sentence2 label`` and an id column (a test
    file some copies keep). Two columns (XTREME's test files) are ``UnlabelledError``.
    """
    rows: Rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quotechar='"')
        columns = (0, 1, 2)
        try:
            for number, fields in enumerate(reader, start=1):
                if reader.line_num != number:
                    # One record per line in XTREME's files: a quote left open swallowed line breaks.
                    raise DataError(f"{path} line {number}: a quoted field runs over the end of the line")
                if not fields:
                    continue
                if number == 1 and tuple(f.strip().lower() for f in fields[:4]) == PAWSX_HEADER:
                    columns = (1, 2, 3)
                    continue
                if len(fields) == columns[2]:  # the label column is the one missing
                    raise UnlabelledError(
                        f"{path} has no label column (XTREME ships test sets without labels)"
                    )
                if len(fields) != columns[2] + 1:
                    raise DataError(
                        f"{path} line {number} has {len(fields)} tab-separated fields, expected {columns[2] + 1}"
                    )
                rows.append(
                    {
                        "text_a": fields[columns[0]],
                        "text_b": fields[columns[1]],
                        "label": fields[columns[2]].strip(),
                    }
                )
        except csv.Error as error:
            raise DataError(
                f"{path} line {reader.line_num} is not valid tab-separated csv ({error})"
            ) from None
    return rows


def read_squad_json(path: Path) -> Rows:
    """xquad, mlqa, tydiqa and squad: SQuAD v1.1 JSON (``data[].paragraphs[].qas[]``).

    A file whose every answer is empty is one XTREME stripped (``remove_qa_test_annotations``):
    ``UnlabelledError``. Ids repeated within a file (XTREME's per-language TyDiQA train files keep
    only the last part of each id) get ``#<n>`` appended, so that predictions map back to one question.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{path} is not SQuAD JSON (no top-level 'data' list)")
    rows: Rows = []
    seen: dict[str, int] = {}
    answered = 0
    try:
        for article in data["data"]:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    answers = [a for a in qa.get("answers", []) if a.get("text")]
                    answered += bool(answers)
                    qid = str(qa["id"])
                    seen[qid] = seen.get(qid, 0) + 1
                    rows.append(
                        {
                            "id": qid if seen[qid] == 1 else f"{qid}#{seen[qid]}",
                            "context": paragraph["context"],
                            "question": qa["question"],
                            "answers": {
                                "text": [a["text"] for a in answers],
                                "answer_start": [int(a["answer_start"]) for a in answers],
                            },
                        }
                    )
    except (KeyError, TypeError) as error:
        raise DataError(f"{path} is not SQuAD JSON (missing or malformed field {error})") from None
    if rows and not answered:
        raise UnlabelledError(
            f"{path} has no answers (XTREME's download script removes those of QA test sets: "
            "remove_qa_test_annotations)"
        )
    return rows


def _jsonl(path: Path) -> list[dict[str, Any]]:
    objects = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path} line {number} is not JSON ({error.msg})") from None
            if not isinstance(value, dict):
                raise DataError(f"{path} line {number} is not a JSON object")
            objects.append(value)
    return objects


def _field(row: dict[str, Any], name: str, path: Path, number: int) -> Any:
    if name not in row:
        raise DataError(f"{path} line {number} has no field {name!r} (fields: {', '.join(row)})")
    return row[name]


def read_copa_jsonl(path: Path) -> Rows:
    """xcopa (and COPA's English train/val): ``premise``, ``choice1``, ``choice2``, ``question``, ``label``.

    The question is ``cause`` or ``effect``; XTREME-R's ``run_xcopa.py`` asks "<premise> What was the
    <question>?", so the canonical question is "What was the <question>?". No ``label``: ``UnlabelledError``.
    """
    rows: Rows = []
    for number, row in enumerate(_jsonl(path), start=1):
        if "label" not in row:
            raise UnlabelledError(f"{path} line {number} has no 'label' (a test set without labels)")
        rows.append(
            {
                "context": _field(row, "premise", path, number),
                "question": f"What was the {_field(row, 'question', path, number)}?",
                "choices": [_field(row, "choice1", path, number), _field(row, "choice2", path, number)],
                "label": row["label"],
            }
        )
    return rows


SIQA_ANSWERS = ("answerA", "answerB", "answerC")


def read_siqa_jsonl(path: Path) -> Rows:
    """siqa (Social IQa v1.4): ``context``, ``question``, ``answerA``-``answerC``, ``correct`` (A, B or C).

    The letter is the label, as in XTREME-R's ``siqa_data.py``; without ``correct``: ``UnlabelledError``.
    """
    rows: Rows = []
    for number, row in enumerate(_jsonl(path), start=1):
        if "correct" not in row:
            raise UnlabelledError(
                f"{path} line {number} has no 'correct' answer letter (a test set without labels)"
            )
        letter = str(row["correct"]).strip()
        if letter not in ("A", "B", "C"):
            raise DataError(f"{path} line {number}: 'correct' is {letter!r}, not A, B or C")
        rows.append(
            {
                "context": _field(row, "context", path, number),
                "question": _field(row, "question", path, number),
                "choices": [_field(row, name, path, number) for name in SIQA_ANSWERS],
                "label": "ABC".index(letter),
            }
        )
    return rows


TATOEBA_ENGLISH = ".eng"


def read_tatoeba(path: Path) -> Rows:
    """tatoeba: LASER's ``tatoeba.<xxx>-eng.<xxx>`` and, beside it, ``.eng``: line i of one translates line i
    of the other."""
    english = path.with_suffix(TATOEBA_ENGLISH)
    if not english.is_file():
        raise DataError(f"{path} has no English side {english.name} beside it")
    source = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    target = [line.strip() for line in english.read_text(encoding="utf-8").splitlines()]
    if len(source) != len(target):
        raise DataError(f"{path} has {len(source)} lines but {english.name} {len(target)}: not line-aligned")
    return [{"source": s, "target": t} for s, t in zip(source, target, strict=True)]
