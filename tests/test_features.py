"""featurize for each task type, the disk cache, collate and QA post-processing, on a tiny tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

import trainers.data.features as features_module
from trainers.data import (
    CANONICAL_FEATURES,
    DataError,
    collate,
    featurize,
    featurize_texts,
    model_inputs,
    postprocess_qa,
    qa_references,
)
from trainers.tasks import TaskType, get_task

CORPUS = [
    "Paris is the capital of France and its largest city.",
    "The cat sat on the mat while the dog slept in the garden.",
    "Where is the capital of France? Which city is the largest?",
    "Berlin is a city in Germany. Rome is a city in Italy.",
    "A man cuts the bread, then he eats it with cheese.",
]
MAX_LENGTH = 64


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer trained in milliseconds on CORPUS; unseen words split into several pieces."""
    model = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    model.normalizer = normalizers.BertNormalizer(lowercase=False)
    model.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    model.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    model.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls, sep = model.token_to_id("[CLS]"), model.token_to_id("[SEP]")
    model.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=model,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
    )


def canonical(task: str, rows: list[dict[str, Any]]) -> datasets.Dataset:
    return datasets.Dataset.from_list(rows, features=CANONICAL_FEATURES[get_task(task).type])


def run(task: str, rows: list[dict[str, Any]], tokenizer: Any, **kwargs: Any) -> datasets.Dataset:
    options: dict[str, Any] = {"max_length": MAX_LENGTH, "doc_stride": 16, "training": True} | kwargs
    return featurize(get_task(task), canonical(task, rows), tokenizer, **options)


def qa_example(id_: str, context: str, answer: str | None, question: str = "Where is the capital?") -> dict:
    answers = (
        {"text": [answer], "answer_start": [context.index(answer)]}
        if answer
        else {"text": [], "answer_start": []}
    )
    return {"id": id_, "context": context, "question": question, "answers": answers}


# -- classification, tagging, multiple choice, retrieval -------------------------------------------


def test_pair_and_single_classification(tokenizer: Any) -> None:
    pairs = run(
        "xnli", [{"text_a": "The cat sat.", "text_b": "A dog slept.", "label": "contradiction"}], tokenizer
    )
    assert pairs.column_names == ["input_ids", "attention_mask", "labels"]
    tokens = tokenizer.convert_ids_to_tokens(pairs[0]["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2
    assert pairs[0]["labels"] == 2
    single = run("sst2", [{"text_a": "Paris is a city. " * 30, "label": "positive"}], tokenizer)
    assert len(single[0]["input_ids"]) == MAX_LENGTH  # truncated
    assert single[0]["labels"] == 1
    with pytest.raises(DataError, match="label 'maybe' is not among the label names"):
        run("xnli", [{"text_a": "a", "text_b": "b", "label": "maybe"}], tokenizer)


def test_tagging_labels_only_first_subtoken(tokenizer: Any) -> None:
    words = ["Paris", "Parisian", "cat"]
    assert len(tokenizer.tokenize("Parisian")) > 1  # an unseen word: several sub-tokens
    row = run("panx", [{"tokens": words, "tags": ["B-LOC", "I-LOC", "O"]}], tokenizer)[0]
    assert len(row["labels"]) == len(row["input_ids"]) == len(row["word_index"])
    labelled = [(i, label) for i, label in enumerate(row["labels"]) if label != -100]
    assert [label for _, label in labelled] == [5, 6, 0]  # B-LOC, I-LOC, O
    assert [row["word_index"][i] for i, _ in labelled] == [0, 1, 2]
    assert sum(w != -1 for w in row["word_index"]) == 3
    first_pieces = [tokenizer.convert_ids_to_tokens(row["input_ids"][i]) for i, _ in labelled]
    assert first_pieces[0] == "Paris" and not first_pieces[1].startswith("##")


def test_tagging_label_skips_a_bare_word_boundary_piece() -> None:
    """SentencePiece vocabularies (XLM-R, mT5) start some words with a bare ``▁``: the tag goes past it."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0), ("\u2581the", -1.0)]
    vocab += [("\u2581cat", -1.0), ("z", -3.0), ("q", -3.0)]
    model = Tokenizer(models.Unigram(vocab, unk_id=2))
    model.pre_tokenizer = pre_tokenizers.Metaspace()
    model.decoder = decoders.Metaspace()
    spm = PreTrainedTokenizerFast(tokenizer_object=model, unk_token="<unk>", pad_token="<pad>")
    words = ["zzq", "the", "cat"]
    row = run("panx", [{"tokens": words, "tags": ["B-LOC", "I-LOC", "O"]}], spm)[0]
    pieces = spm.convert_ids_to_tokens(row["input_ids"])
    assert pieces == ["\u2581", "z", "z", "q", "\u2581the", "\u2581cat"]
    labelled = [i for i, label in enumerate(row["labels"]) if label != -100]
    assert labelled == [1, 4, 5]  # "z", not the bare "▁" before it
    assert [row["labels"][i] for i in labelled] == [5, 6, 0] and [row["word_index"][i] for i in labelled] == [
        0,
        1,
        2,
    ]


def test_tagging_truncation_and_passed_label_names(tokenizer: Any) -> None:
    rows = [{"tokens": ["cat"] * 100, "tags": ["N"] * 100}]
    row = run("ccg", rows, tokenizer, max_length=16, label_names=["S", "N"])[0]
    assert len(row["input_ids"]) == 16 and row["labels"].count(1) == 14
    with pytest.raises(DataError, match="no label names"):
        run("ccg", rows, tokenizer)


def test_multiple_choice_shapes(tokenizer: Any) -> None:
    rows = [
        {"context": "", "question": "Where is Paris?", "choices": ["France", "Italy", "Germany"], "label": 0},
        {
            "context": "A man cuts the bread.",
            "question": "",
            "choices": ["he eats it", "no", "the cat"],
            "label": 2,
        },
    ]
    features = run("commonsenseqa", rows, tokenizer)
    assert [len(choices) for choices in features["input_ids"]] == [3, 3]
    first = tokenizer.decode(features[1]["input_ids"][0], skip_special_tokens=True)
    assert first == "A man cuts the bread. he eats it"
    batch = collate([features[0], features[1]], tokenizer.pad_token_id)
    longest = max(len(ids) for choices in features["input_ids"] for ids in choices)
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 3, longest)
    assert batch["labels"].tolist() == [0, 2]


def test_retrieval_one_text_column(tokenizer: Any) -> None:
    pairs = canonical("bucc", [{"source": "Berlin ist eine Stadt.", "target": "Berlin is a city."}])
    target = featurize(
        get_task("bucc"),
        pairs.select_columns(["target"]),
        tokenizer,
        max_length=32,
        doc_stride=8,
        training=False,
    )
    assert target.column_names == ["input_ids", "attention_mask"]
    assert tokenizer.decode(target[0]["input_ids"], skip_special_tokens=True) == "Berlin is a city."
    texts = featurize_texts(["Berlin is a city.", "Rome"], tokenizer, max_length=32)
    assert texts[0]["input_ids"] == target[0]["input_ids"] and len(texts) == 2
    with pytest.raises(DataError, match="one text column"):
        featurize(get_task("bucc"), pairs, tokenizer, max_length=32, doc_stride=8, training=False)


def test_masked_lm_features_mask_in_the_head_for_training_and_once_for_evaluation(tokenizer: Any) -> None:
    rows = [{"text": "The cat sat on the mat while the dog slept. " * 6}, {"text": "Paris"}]
    train = run("mlm_multilingual", rows, tokenizer)
    assert train.column_names == ["input_ids", "attention_mask", "labels"]
    assert len(train[0]["input_ids"]) == MAX_LENGTH  # truncated
    tokens = tokenizer.convert_ids_to_tokens(train[0]["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and set(tokens[1:-1]) == {"[MASK]"}
    assert train[0]["labels"][0] == train[0]["labels"][-1] == -100 and -100 not in train[0]["labels"][1:-1]
    evaluation = run("mlm_multilingual", rows, tokenizer, training=False)
    masked = [[i for i, label in enumerate(row["labels"]) if label != -100] for row in evaluation]
    assert [len(m) for m in masked] == [round(0.15 * (MAX_LENGTH - 2)), 1]
    batch = collate([evaluation[0], evaluation[1]], tokenizer.pad_token_id)
    assert batch["labels"].shape == batch["input_ids"].shape and batch["labels"][1, 3:].eq(-100).all()
    with pytest.raises(DataError, match="mlm_multilingual: dataset lacks canonical column"):
        featurize(
            get_task("mlm_multilingual"),
            canonical("sst2", [{"text_a": "a", "label": "positive"}]),
            tokenizer,
            max_length=MAX_LENGTH,
            doc_stride=16,
            training=True,
        )


def test_missing_canonical_columns(tokenizer: Any) -> None:
    raw = datasets.Dataset.from_list([{"premise": "a", "hypothesis": "b", "label": 0}])
    with pytest.raises(DataError, match="lacks canonical column"):
        featurize(get_task("xnli"), raw, tokenizer, max_length=32, doc_stride=8, training=True)


# -- extractive QA --------------------------------------------------------------------------------

SHORT = "Paris is the capital of France and its largest city."
LONG = " ".join(["The cat sat on the mat while the dog slept in the garden."] * 12 + [SHORT])


def test_qa_train_positions_decode_to_answer(tokenizer: Any) -> None:
    rows = [qa_example("a", SHORT, "the capital of France"), qa_example("u", SHORT, None)]
    features = run("squad_v2", rows, tokenizer)
    assert features.column_names == ["input_ids", "attention_mask", "start_positions", "end_positions"]
    answerable, unanswerable = features[0], features[1]
    span = answerable["input_ids"][answerable["start_positions"] : answerable["end_positions"] + 1]
    assert tokenizer.decode(span) == "the capital of France"
    assert (unanswerable["start_positions"], unanswerable["end_positions"]) == (0, 0)


def test_qa_long_context_windows_and_postprocess(tokenizer: Any) -> None:
    examples = canonical("xquad", [qa_example("long", LONG, "France"), qa_example("short", SHORT, "Paris")])
    train = featurize(
        get_task("xquad"), examples, tokenizer, max_length=MAX_LENGTH, doc_stride=16, training=True
    )
    assert len(train) > 4  # several windows for the long context
    assert all(len(ids) <= MAX_LENGTH for ids in train["input_ids"])
    inside = [row for row in train if row["start_positions"] != 0]
    # The long answer lies in the overlap of the last two windows; the short context is one window.
    assert len(inside) == 3
    for row in inside:
        span = row["input_ids"][row["start_positions"] : row["end_positions"] + 1]
        assert tokenizer.decode(span) in ("France", "Paris")
    assert all(row["end_positions"] == 0 for row in train if row["start_positions"] == 0)  # CLS elsewhere

    evaluation = featurize(
        get_task("xquad"), examples, tokenizer, max_length=MAX_LENGTH, doc_stride=16, training=False
    )
    assert evaluation.column_names == ["input_ids", "attention_mask", "example_id", "offset_mapping"]
    assert len(evaluation) == len(train) and evaluation["example_id"].count("long") == len(train) - 1
    first = evaluation[0]
    context_tokens = [offset for offset in first["offset_mapping"] if offset is not None]
    assert first["offset_mapping"][0] is None and 0 < len(context_tokens) < len(first["offset_mapping"])

    # Fake logits: peak on the gold answer's tokens in whichever windows hold it, noise elsewhere.
    rng = np.random.default_rng(0)
    length = max(len(ids) for ids in evaluation["input_ids"])  # logits padded like a batch
    start_logits = rng.normal(size=(len(evaluation), length))
    end_logits = rng.normal(size=(len(evaluation), length))
    answers = {row["id"]: row["answers"] for row in examples}
    for index, row in enumerate(evaluation):
        gold = answers[row["example_id"]]
        start_char = gold["answer_start"][0]
        end_char = start_char + len(gold["text"][0])
        for token, offset in enumerate(row["offset_mapping"]):
            if offset is not None and offset[0] == start_char:
                start_logits[index, token] = 10.0
            if offset is not None and offset[1] == end_char:
                end_logits[index, token] = 10.0
    predictions = postprocess_qa(examples, evaluation, start_logits, end_logits)
    assert predictions == {"long": "France", "short": "Paris"}
    assert qa_references(examples) == {"long": ["France"], "short": ["Paris"]}


def test_postprocess_null_answer_and_length_limit(tokenizer: Any) -> None:
    examples = canonical("squad_v2", [qa_example("q", SHORT, "Paris")])
    evaluation = featurize(
        get_task("squad_v2"), examples, tokenizer, max_length=MAX_LENGTH, doc_stride=16, training=False
    )
    size = len(evaluation[0]["input_ids"])
    start, end = np.zeros((1, size)), np.zeros((1, size))
    start[0, 0] = end[0, 0] = 5.0  # CLS: "no answer"
    assert postprocess_qa(examples, evaluation, start, end, allow_null=True) == {"q": ""}
    assert postprocess_qa(examples, evaluation, start, end)["q"] != ""
    # A span longer than max_answer_length is never chosen.
    context = [i for i, offset in enumerate(evaluation[0]["offset_mapping"]) if offset is not None]
    start, end = np.zeros((1, size)), np.zeros((1, size))
    start[0, context[0]], end[0, context[-1]] = 9.0, 9.0
    whole = postprocess_qa(examples, evaluation, start, end, max_answer_length=len(context))
    assert whole["q"] == SHORT
    assert postprocess_qa(examples, evaluation, start, end, max_answer_length=3)["q"] != SHORT


def test_qa_long_question_is_clipped(tokenizer: Any) -> None:
    question = "Which city is the largest city of France? " * 20
    examples = [qa_example("q", SHORT, "France", question=question)]
    features = run("squad_v1", examples, tokenizer, max_length=32, doc_stride=8, training=False)
    assert all(len(ids) <= 32 for ids in features["input_ids"])
    assert all(any(offset is not None for offset in offsets) for offsets in features["offset_mapping"])


# -- cache ----------------------------------------------------------------------------------------


def test_cache_hit_does_not_retokenize(
    tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"text_a": "The cat sat.", "text_b": "A dog slept.", "label": "neutral"}]
    options: dict[str, Any] = {"cache_dir": tmp_path, "cache_key": "dev/en"}
    first = run("xnli", rows, tokenizer, **options)
    (entry,) = tmp_path.iterdir()
    assert entry.name.startswith("xnli-dev_en-")  # readable name, no temporary directory left behind

    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("re-tokenized despite the cache")

    monkeypatch.setattr(features_module, "_featurize_uncached", fail)
    second = run("xnli", rows, tokenizer, **options)
    assert second.to_list() == first.to_list()
    with pytest.raises(AssertionError, match="re-tokenized"):
        run("xnli", rows, tokenizer, max_length=32, **options)  # another max_length: another entry
    with pytest.raises(AssertionError, match="re-tokenized"):
        run("xnli", [*rows, *rows], tokenizer, **options)  # other data: another fingerprint


# -- collate --------------------------------------------------------------------------------------


def test_collate_pads_and_keeps_model_inputs(tokenizer: Any) -> None:
    rows = [
        {"tokens": ["Paris"], "tags": ["B-LOC"]},
        {"tokens": ["The", "cat", "sat", "on", "the", "mat"], "tags": ["O"] * 6},
    ]
    features = run("panx", rows, tokenizer)
    batch = collate([features[0], features[1]], tokenizer.pad_token_id)
    assert set(batch) == {"input_ids", "attention_mask", "labels"}  # word_index dropped
    short, long = len(features[0]["input_ids"]), len(features[1]["input_ids"])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, long)
    assert batch["input_ids"].dtype == torch.long
    assert batch["input_ids"][0, short:].eq(tokenizer.pad_token_id).all()
    assert batch["attention_mask"][0].tolist() == [1] * short + [0] * (long - short)
    assert batch["labels"][0, short:].eq(-100).all()
    assert model_inputs(features).column_names == ["input_ids", "attention_mask", "labels"]

    qa = run("squad_v1", [qa_example("q", SHORT, "Paris")], tokenizer, training=False)
    assert model_inputs(qa).column_names == ["input_ids", "attention_mask"]
    qa_batch = collate([qa[0]], tokenizer.pad_token_id)
    assert set(qa_batch) == {"input_ids", "attention_mask"}

    classification = run("xnli", [{"text_a": "a", "text_b": "b", "label": "neutral"}] * 2, tokenizer)
    classification.set_format("torch")  # tensors in, too
    assert collate([classification[0], classification[1]], 0)["labels"].tolist() == [1, 1]


def test_every_task_type_is_covered() -> None:
    covered = {"xnli", "sst2", "panx", "commonsenseqa", "bucc", "xquad", "mlm_multilingual"}
    assert {get_task(name).type for name in covered} == set(TaskType)
