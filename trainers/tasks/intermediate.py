"""The English intermediate tasks of Phang et al. 2020 (and SST-2, a single-sentence task)."""

from __future__ import annotations

from trainers.tasks._spec import HubSource, TaskSpec, TaskType
from trainers.tasks.xtreme import COPA_COLUMNS, NLI_LABELS, PAWSX_LANGUAGES, QA_COLUMNS, XNLI_LANGUAGES

NLI_COLUMNS = {"text_a": "premise", "text_b": "hypothesis", "label": "label"}
GLUE = "parquet: <config>/*.parquet on main (hub commit 'Convert dataset to Parquet (#16)')"
SQUAD = "hub viewer: config plain_text, parquet, train 87.6k / validation 10.6k rows (file listing not seen)"
SQUAD_V2 = "parquet: squad_v2/{train,validation}-00000-of-00001.parquet (hub commit 80596c4 'Convert dataset to Parquet (#6)')"
COMMONSENSE_QA = "parquet: data/{train,validation,test}-* (hub commit 34986e8 'Convert dataset to Parquet')"

INTERMEDIATE_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        name="mnli",
        type=TaskType.PAIR_CLASSIFICATION,
        hub=HubSource("nyu-mll/glue", "mnli", {"train": "train", "dev": "validation_matched"}, verified=GLUE),
        columns=NLI_COLUMNS,
        label_names=NLI_LABELS,
        role="intermediate",
        description="Multi-genre NLI.",
        train_size=392_702,  # nyu-mll/glue card, mnli train
    ),
    TaskSpec(
        name="anli",
        type=TaskType.PAIR_CLASSIFICATION,
        hub=HubSource(
            "facebook/anli",
            None,
            {"train": "train_r1+train_r2+train_r3", "dev": "dev_r1+dev_r2+dev_r3"},
            verified="parquet: plain_text/*.parquet on main (hub commit 'Convert dataset to Parquet (#5)')",
        ),
        columns=NLI_COLUMNS,
        label_names=NLI_LABELS,
        role="intermediate",
        description="Adversarial NLI rounds 1-3 (the paper's ANLI+ adds MNLI, SNLI and FEVER-NLI: use a mixture).",
        train_size=162_865,  # facebook/anli card: train_r1 16,946 + train_r2 45,460 + train_r3 100,459
    ),
    TaskSpec(
        name="qqp",
        type=TaskType.PAIR_CLASSIFICATION,
        hub=HubSource("nyu-mll/glue", "qqp", {"train": "train", "dev": "validation"}, verified=GLUE),
        columns={"text_a": "question1", "text_b": "question2", "label": "label"},
        label_names=("not_duplicate", "duplicate"),
        metric="f1_binary",
        role="intermediate",
        description="Quora question pairs.",
        train_size=363_846,  # nyu-mll/glue card, qqp train
    ),
    TaskSpec(
        name="sst2",
        type=TaskType.SINGLE_CLASSIFICATION,
        hub=HubSource(
            "stanfordnlp/sst2",
            None,
            {"train": "train", "dev": "validation"},
            verified="parquet: data/*.parquet on main (hub commit 'Convert dataset to Parquet (#7)')",
        ),
        columns={"text_a": "sentence", "label": "label"},
        label_names=("negative", "positive"),
        role="intermediate",
        description="Binary sentiment (not in the paper; the single-sentence task type).",
        train_size=67_349,  # nyu-mll/glue card, sst2 train
    ),
    TaskSpec(
        name="squad_v1",
        type=TaskType.SPAN_QA,
        hub=HubSource("rajpurkar/squad", None, {"train": "train", "dev": "validation"}, verified=SQUAD),
        columns=QA_COLUMNS,
        metric="squad",
        role="both",
        description="SQuAD v1.1 (also the English train set of XQuAD and MLQA).",
        train_size=87_599,  # rajpurkar/squad card (google/xtreme SQuAD config alike)
    ),
    TaskSpec(
        name="squad_v2",
        type=TaskType.SPAN_QA,
        hub=HubSource("rajpurkar/squad_v2", None, {"train": "train", "dev": "validation"}, verified=SQUAD_V2),
        columns=QA_COLUMNS,
        metric="squad_v2",
        role="intermediate",
        description="SQuAD 2.0, with unanswerable questions.",
        train_size=130_319,  # rajpurkar/squad_v2 card, train
    ),
    TaskSpec(
        name="hellaswag",
        type=TaskType.MULTIPLE_CHOICE,
        hub=HubSource(
            "Rowan/hellaswag",
            None,
            {"train": "train", "dev": "validation"},
            verified="parquet (issue 9's check)",
        ),
        columns={"context": "ctx", "choices": "endings", "label": "label"},
        label_names=("0", "1", "2", "3"),
        role="intermediate",
        description="Commonsense sentence completion.",
        train_size=39_905,  # TFDS hellaswag catalog, train
    ),
    TaskSpec(
        name="cosmosqa",
        type=TaskType.MULTIPLE_CHOICE,
        hub=HubSource(
            "allenai/cosmos_qa",
            None,
            {"train": "train", "dev": "validation"},
            # main (28d9d5e) holds only cosmos_qa.py; the hub's parquet conversion of its output:
            revision="ed50fe83db62b355759053b1cd5eef344ee371e0",
            verified="parquet: refs/convert/parquet commit ed50fe8 (main, 28d9d5e, holds only cosmos_qa.py); "
            "default/train/0000.parquet read at that commit by two public projects' code (columns id, context, "
            "question, answer0-answer3, label); default/validation/0000.parquet is the converter's layout, "
            "not seen; datasets sorts default/<split>/ into splits itself",
        ),
        columns={
            "context": "context",
            "question": "question",
            "choices": "answer0,answer1,answer2,answer3",
            "label": "label",
        },
        label_names=("0", "1", "2", "3"),
        role="intermediate",
        description="Reading comprehension requiring commonsense.",
        train_size=25_262,  # cosmos_qa card, train
    ),
    TaskSpec(
        name="commonsenseqa",
        type=TaskType.MULTIPLE_CHOICE,
        hub=HubSource(
            "tau/commonsense_qa", None, {"train": "train", "dev": "validation"}, verified=COMMONSENSE_QA
        ),
        columns={"question": "question", "choices": "choices.text", "label": "answerKey"},
        label_names=("A", "B", "C", "D", "E"),
        role="intermediate",
        description="Five-way commonsense question answering.",
        train_size=9_741,  # commonsense_qa card, train
    ),
    TaskSpec(
        name="copa",
        type=TaskType.MULTIPLE_CHOICE,
        hub=HubSource(
            "aps/super_glue",
            None,  # the converter's branch has no configs: data_files picks COPA's among every config's files
            {"train": "train", "dev": "validation"},
            # main holds only super_glue.py; the hub's parquet conversion of its output:
            revision="5ac86567c6f13c971ded1667d04e2bb857e0bc6f",
            data_files={"train": "copa/train/*.parquet", "validation": "copa/validation/*.parquet"},
            verified="parquet: refs/convert/parquet commit 5ac8656 (main holds only super_glue.py), whose hub "
            "commit page renames copa/super_glue-{train,validation,test}.parquet to "
            "copa/{train,validation,test}/0000.parquet; the branch holds every SuperGLUE config's files",
        ),
        columns=COPA_COLUMNS,
        label_names=("0", "1"),
        role="intermediate",
        description="Choice of plausible alternatives (English): XCOPA's training and English dev set.",
        train_size=400,  # super_glue card, copa train (XTREME-R: 400)
    ),
    TaskSpec(
        name="siqa",
        type=TaskType.MULTIPLE_CHOICE,
        hub=HubSource(
            "allenai/social_i_qa",
            None,
            {"train": "train", "dev": "validation"},
            # main (8835ceb) holds only social_i_qa.py; the hub's parquet conversion of its output:
            revision="537a2ec8ec565adc0b70b70752893e59e024df26",
            verified="parquet: refs/convert/parquet commit 537a2ec (main, 8835ceb, holds only social_i_qa.py); "
            "default/train/0000.parquet (3,475,355 bytes) and default/validation/0000.parquet read at that "
            "commit by public projects' code, one through load_dataset(revision=...) with datasets >= 3 "
            "(columns context, question, answerA-answerC, label '1'-'3'); its parquet pull request #3 "
            "(refs/pr/3) is not used: not seen merged",
        ),
        columns={
            "context": "context",
            "question": "question",
            "choices": "answerA,answerB,answerC",
            "label": "label",
        },
        label_names=("1", "2", "3"),
        role="intermediate",
        description="Social IQa: social commonsense, three choices (XTREME-R trains XCOPA on it before COPA).",
        train_size=33_410,  # social_i_qa card, train
    ),
    TaskSpec(
        name="xnli_tt",
        type=TaskType.PAIR_CLASSIFICATION,
        hub=HubSource(
            # facebook/xnli's train split of each language is XNLI-MT 1.0, MNLI's train set machine-translated
            # (English: MNLI itself).
            "facebook/xnli",
            "{lang}",
            {"train": "train", "dev": "validation"},
            verified="parquet: <lang>/*.parquet on main (hub commit 'Convert dataset to Parquet')",
        ),
        columns=NLI_COLUMNS,
        languages=XNLI_LANGUAGES,
        train_languages=XNLI_LANGUAGES,
        label_names=NLI_LABELS,
        role="intermediate",
        description="Translate-train XNLI: MNLI and its machine translations into XNLI's 14 other languages, mixed.",
        train_size=392_702 * len(XNLI_LANGUAGES),  # facebook/xnli card: 392,702 train rows per language
    ),
    TaskSpec(
        name="pawsx_tt",
        type=TaskType.PAIR_CLASSIFICATION,
        hub=HubSource(
            # The train split of each non-English config is PAWS-X's machine-translated train set.
            "google-research-datasets/paws-x",
            "{lang}",
            {"train": "train", "dev": "validation"},
            verified="parquet: <lang>/{train,validation,test}-00000-of-00001.parquet (hub commit d046830)",
        ),
        columns={"text_a": "sentence1", "text_b": "sentence2", "label": "label"},
        languages=PAWSX_LANGUAGES,
        train_languages=PAWSX_LANGUAGES,
        label_names=("different", "paraphrase"),
        role="intermediate",
        description="Translate-train PAWS-X: PAWS's English train set and its machine translations, mixed.",
        # 49,401 English train rows (google/xtreme card, PAWS-X.en); the translated sets are about that size.
        train_size=49_401 * len(PAWSX_LANGUAGES),
    ),
    TaskSpec(
        name="ccg",
        type=TaskType.TAGGING,
        hub=None,
        columns={"tokens": "tokens", "tags": "tags"},
        metric="accuracy_tokens",
        role="intermediate",
        description="CCGbank supertagging (licensed: local files only; tags read from the train split).",
        train_size=38_015,  # CCGbank train sections as in jiant / Phang et al. 2020; not verified here
    ),
    TaskSpec(
        name="mlm_multilingual",
        type=TaskType.MASKED_LM,
        hub=HubSource(
            # One config per language; the dump has a train split only: its first 2,000 articles are the
            # dev set, the next 50,000 the training text (an article's first max_seq_length tokens each).
            "wikimedia/wikipedia",
            "20231101.{lang}",
            {"train": "train[2000:52000]", "dev": "train[:2000]"},
            verified="parquet: 20231101.<lang>/train-*.parquet on main (hub tree of 20231101.no, .sr, .fa, "
            ".pt seen through the search tool; commits 'Add 20231101.<lang> data files')",
        ),
        columns={"text": "text"},
        languages=XNLI_LANGUAGES,
        train_languages=XNLI_LANGUAGES,
        role="intermediate",
        metric="accuracy_tokens",
        description="Continued multilingual MLM on Wikipedia in XNLI's 15 languages, mixed (the paper's "
        "baseline; masked-token accuracy).",
        train_size=50_000 * len(XNLI_LANGUAGES),  # the slice above: 50,000 articles per language
    ),
)
