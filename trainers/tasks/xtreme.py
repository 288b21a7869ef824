"""The XTREME target tasks (Hu et al. 2020), as evaluated by Phang et al. 2020."""

from __future__ import annotations

from trainers.tasks._spec import HubSource, TaskSpec, TaskType

NLI_LABELS = ("entailment", "neutral", "contradiction")
UPOS_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM",
    "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X",
)  # fmt: skip
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")
QA_COLUMNS = {"id": "id", "context": "context", "question": "question", "answers": "answers"}
RETRIEVAL_COLUMNS = {"source": "source_sentence", "target": "target_sentence"}

# google/xtreme names its UD configs by language name.
UD_NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}  # fmt: skip
XNLI_LANGUAGES = ("en", "ar", "bg", "de", "el", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGUAGES = ("en", "de", "es", "fr", "ja", "ko", "zh")
# XTREME-R's XCOPA languages (scripts/train_xcopa.sh); English is COPA, the training set.
XCOPA_LANGUAGES = ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")
COPA_COLUMNS = {"context": "premise", "question": "question", "choices": "choice1,choice2", "label": "label"}
PANX_LANGUAGES = (
    "en", "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id",
    "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru", "sw", "ta", "te", "th",
    "tl", "tr", "ur", "vi", "yo", "zh",
)  # fmt: skip
TYDIQA_NAMES = {
    "en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
    "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu",
}  # fmt: skip
# google/xtreme names its Tatoeba configs by ISO 639-3 code.
TATOEBA_CODES = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn",
}  # fmt: skip

XTREME_PARQUET = "parquet: google/xtreme's loading script was deleted and every config added as parquet files"

XTREME_TASKS: tuple[TaskSpec, ...] = (
    TaskSpec(
        name="xnli",
        type=TaskType.PAIR_CLASSIFICATION,
        hub=HubSource(
            "facebook/xnli",
            "{lang}",
            {"train": "train", "dev": "validation", "test": "test"},
            verified="parquet: <lang>/*.parquet on main (hub commit 'Convert dataset to Parquet')",
        ),
        columns={"text_a": "premise", "text_b": "hypothesis", "label": "label"},
        languages=XNLI_LANGUAGES,
        label_names=NLI_LABELS,
        metric="accuracy",
        description="Cross-lingual NLI; English train is MNLI.",
        role="both",  # its English data also serves as an intermediate task (spaces/real.yaml)
        train_size=392_702,  # facebook/xnli card, en train (MNLI)
    ),
    TaskSpec(
        name="pawsx",
        type=TaskType.PAIR_CLASSIFICATION,
        hub=HubSource(
            "google-research-datasets/paws-x",
            "{lang}",
            {"train": "train", "dev": "validation", "test": "test"},
            # google/xtreme's PAWS-X.<lang> configs are parquet but hold labels as strings; this one has
            # ClassLabel ints (names '0', '1') and columns id, sentence1, sentence2, label.
            verified="parquet: <lang>/{train,validation,test}-00000-of-00001.parquet (hub commit d046830)",
        ),
        columns={"text_a": "sentence1", "text_b": "sentence2", "label": "label"},
        languages=PAWSX_LANGUAGES,
        label_names=("different", "paraphrase"),
        metric="accuracy",
        description="Paraphrase adversaries from word scrambling.",
        role="both",  # its English data also serves as an intermediate task (spaces/real.yaml)
        train_size=49_401,  # google/xtreme card, PAWS-X.en train
    ),
    TaskSpec(
        name="xcopa",
        type=TaskType.MULTIPLE_CHOICE,
        hub=HubSource(
            "cambridgeltl/xcopa",
            "{lang}",
            {"dev": "validation", "test": "test"},
            verified="parquet: <lang>/{validation,test}-00000-of-00001.parquet (hub commit e3864f3 'Convert dataset "
            "to Parquet'); columns premise, choice1, choice2, question, label, idx, changed",
        ),
        columns=COPA_COLUMNS,
        languages=XCOPA_LANGUAGES,
        label_names=("0", "1"),
        metric="accuracy",
        # XTREME-R (scripts/train_xcopa.sh) trains on SIQA, then on COPA's English train set: here siqa is
        # the intermediate task and copa the target's training (and English dev) set.
        train_task="copa",
        english_dev_task="copa",
        description="XTREME-R's cross-lingual choice of plausible alternatives (cause/effect, two choices); "
        "trains on COPA, after SIQA as the intermediate task.",
    ),
    TaskSpec(
        name="udpos",
        type=TaskType.TAGGING,
        hub=HubSource(
            "google/xtreme",
            "udpos.{lang}",
            {"train": "train", "dev": "validation", "test": "test"},
            UD_NAMES,
            # The hub's configs of these treebanks have no dev split (Kazakh has train and test only).
            missing_splits={
                "kk": ("dev",),
                "th": ("train", "dev"),
                "tl": ("train", "dev"),
                "yo": ("train", "dev"),
            },
            verified=XTREME_PARQUET,
        ),
        columns={"tokens": "tokens", "tags": "pos_tags"},
        languages=("en", *sorted(set(UD_NAMES) - {"en"})),
        label_names=UPOS_TAGS,
        # XTREME's evaluate.py scores POS with seqeval F1 (as the paper reports), not token accuracy.
        metric="seqeval_f1",
        description="Universal Dependencies part-of-speech tagging.",
        train_size=21_253,  # google/xtreme card, udpos.English train
    ),
    TaskSpec(
        name="panx",
        type=TaskType.TAGGING,
        hub=HubSource(
            "google/xtreme",
            "PAN-X.{lang}",
            {"train": "train", "dev": "validation", "test": "test"},
            verified=XTREME_PARQUET,
        ),
        columns={"tokens": "tokens", "tags": "ner_tags"},
        languages=PANX_LANGUAGES,
        label_names=NER_TAGS,
        metric="seqeval_f1",
        description="WikiANN named-entity recognition (PER/ORG/LOC).",
        role="both",  # its English data also serves as an intermediate task (spaces/real.yaml)
        train_size=20_000,  # google/xtreme card, PAN-X.en train
    ),
    TaskSpec(
        name="xquad",
        type=TaskType.SPAN_QA,
        # google/xquad is not verified to be parquet; google/xtreme's XQuAD.<lang> configs are.
        hub=HubSource("google/xtreme", "XQuAD.{lang}", {"test": "validation"}, verified=XTREME_PARQUET),
        columns=QA_COLUMNS,
        # XTREME's 11 languages; Romanian was added later, by XTREME-R.
        languages=("en", "ar", "de", "el", "es", "hi", "ru", "th", "tr", "vi", "zh"),
        metric="squad",
        train_task="squad_v1",
        english_dev_task="squad_v1",
        description="SQuAD v1.1 dev translated into 11 languages; trains on SQuAD v1.1.",
    ),
    TaskSpec(
        name="mlqa",
        type=TaskType.SPAN_QA,
        # facebook/mlqa is a loading script (its parquet conversion is an unmerged pull request).
        hub=HubSource(
            "google/xtreme",
            "MLQA.{lang}.{lang}",
            {"dev": "validation", "test": "test"},
            verified=XTREME_PARQUET,
        ),
        columns=QA_COLUMNS,
        languages=("en", "ar", "de", "es", "hi", "vi", "zh"),
        metric="mlqa",
        train_task="squad_v1",
        description="Multilingual QA over parallel Wikipedia; trains on SQuAD v1.1.",
    ),
    TaskSpec(
        name="tydiqa",
        type=TaskType.SPAN_QA,
        hub=HubSource(
            # The gold-passage task in google/xtreme's parquet "tydiqa" config (every language, ids
            # prefixed by language name), not the script-era google-research-datasets/tydiqa.
            "google/xtreme",
            "tydiqa",
            {"train": "train", "test": "validation"},
            id_prefix=TYDIQA_NAMES,
            verified=XTREME_PARQUET,
        ),
        columns=QA_COLUMNS,
        languages=tuple(TYDIQA_NAMES),
        metric="squad",
        english_dev_task="squad_v1",
        description="TyDiQA gold passage task; trains on its English train split.",
        train_size=3_696,  # the English gold-passage train examples (Hu et al. 2020); not verified here
    ),
    TaskSpec(
        name="bucc",
        type=TaskType.RETRIEVAL,
        # Not the hub: google/xtreme's bucc18 configs hold only the gold pairs, so mining them has no
        # distractors and F1 is inflated. The official corpora are read from data.bucc_dir instead.
        hub=None,
        columns=RETRIEVAL_COLUMNS,
        languages=("de", "fr", "ru", "zh"),
        metric="bucc_f1",
        description="Parallel sentence mining against English over the full BUCC 2018 corpora "
        "(data.bucc_dir; margin score, F1 at a dev-tuned threshold).",
    ),
    TaskSpec(
        name="tatoeba",
        type=TaskType.RETRIEVAL,
        hub=HubSource(
            "google/xtreme", "tatoeba.{lang}", {"test": "validation"}, TATOEBA_CODES, verified=XTREME_PARQUET
        ),
        columns=RETRIEVAL_COLUMNS,
        languages=tuple(TATOEBA_CODES),
        metric="retrieval_accuracy",
        description="Nearest-neighbour translation retrieval against English.",
    ),
)
