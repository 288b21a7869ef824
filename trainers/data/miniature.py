"""The miniature benchmark: a small, deterministic, offline stand-in for XTREME and the intermediate tasks.

Every task of ``trainers.tasks.TASKS`` is generated from the templates and the lexicon below and written as
``<root>/<task>/<lang>/<split>.jsonl`` in the hub's own schema, so that the ``local`` loader reads it like
real data. The labels follow from the text by rules a small model learns from about a thousand examples, and
the four languages share named entities, numbers and some cognates, so that zero-shot transfer from English
works to a degree (Russian, in Cyrillic, is the non-Latin script). Related tasks share structure (MNLI/ANLI
with XNLI, QQP with PAWS-X, SQuAD with XQuAD/MLQA/TyDiQA, CCG with UD-POS) so that a search over
intermediate tasks has something to find.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from trainers.progress import stage
from trainers.tasks import TASKS, TaskSpec, TaskType
from trainers.tasks.xtreme import NER_TAGS, TYDIQA_NAMES, UPOS_TAGS

MINIATURE_VERSION = "1"
"""Bump whenever the generated files change, so that cached copies are regenerated."""
MINIATURE_LANGUAGES = ("en", "de", "es", "ru")
"""The languages of the miniature; Russian is the non-Latin script."""

N_TRAIN = 1200
N_QA_TRAIN = 800
N_DEV = 120
N_TEST = 200
N_RETRIEVAL = 150

Row = dict[str, Any]

# ---------------------------------------------------------------------------------------------------------
# Lexicon. Named entities and numbers are shared by all languages; concepts are translated.
# ---------------------------------------------------------------------------------------------------------

FEMALE_NAMES = (
    "Anna", "Maria", "Laura", "Elena", "Sofia", "Clara", "Nina", "Julia",
    "Paula", "Eva", "Olga", "Lina", "Vera", "Irene", "Alba", "Greta",
)  # fmt: skip
MALE_NAMES = (
    "Peter", "Thomas", "David", "Martin", "Daniel", "Victor", "Oscar", "Leon",
    "Marco", "Ivan", "Hugo", "Felix", "Pablo", "Boris", "Max", "Adrian",
)  # fmt: skip
LAST_NAMES = (
    "Berger", "Costa", "Novak", "Weber", "Rossi", "Silva", "Keller", "Moreno", "Petrov", "Larsen",
    "Fischer", "Romero", "Sokolov", "Brandt", "Navarro", "Meyer", "Castillo", "Volkov", "Hansen", "Lorenz",
)  # fmt: skip
CITIES = (
    "Berlin", "Madrid", "Paris", "Toronto", "Chicago", "Oslo", "Lima", "Sydney", "Dublin", "Boston",
    "Hamburg", "Valencia", "Kazan", "Porto", "Lyon", "Denver", "Quito", "Leipzig", "Sevilla", "Riga",
    "San Diego", "Buenos Aires", "Santa Cruz", "Las Palmas", "New Haven",
)  # fmt: skip
ORGS = (
    "Orion Systems", "Delta Motors", "Vega Labs", "Helix Media", "Polar Energy", "Apex Foods",
    "Nordwind Bank", "Atlas Group", "Cobalt Software", "Summit Airlines", "Blue River Pharma",
    "Green Valley Farms", "Siemtek", "Novaro", "Lumina", "Kestrel",
)  # fmt: skip
# Ages whose Russian form takes "лет" (not "год"/"года"), so that one template fits every value.
AGES = tuple(n for n in range(19, 80) if n % 10 in (0, 5, 6, 7, 8, 9) or 11 <= n % 100 <= 19)

# Professions: English; German, Spanish and Russian as masculine and feminine forms.
_JOB_TABLE = (
    ("teacher", "Lehrer", "Lehrerin", "profesor", "profesora", "учитель", "учительница"),
    ("doctor", "Arzt", "Ärztin", "médico", "médica", "врач", "врач"),
    ("engineer", "Ingenieur", "Ingenieurin", "ingeniero", "ingeniera", "инженер", "инженер"),
    ("pilot", "Pilot", "Pilotin", "piloto", "piloto", "пилот", "пилот"),
    ("musician", "Musiker", "Musikerin", "músico", "música", "музыкант", "музыкант"),
    ("lawyer", "Anwalt", "Anwältin", "abogado", "abogada", "юрист", "юрист"),
    ("farmer", "Landwirt", "Landwirtin", "agricultor", "agricultora", "фермер", "фермер"),
    ("architect", "Architekt", "Architektin", "arquitecto", "arquitecta", "архитектор", "архитектор"),
    ("cook", "Koch", "Köchin", "cocinero", "cocinera", "повар", "повар"),
    ("journalist", "Journalist", "Journalistin", "periodista", "periodista", "журналист", "журналистка"),
    ("baker", "Bäcker", "Bäckerin", "panadero", "panadera", "пекарь", "пекарь"),
    ("photographer", "Fotograf", "Fotografin", "fotógrafo", "fotógrafa", "фотограф", "фотограф"),
)
JOBS: tuple[dict[str, Any], ...] = tuple(
    {"en": en, "de": (de_m, de_f), "es": (es_m, es_f), "ru": (ru_m, ru_f)}
    for en, de_m, de_f, es_m, es_f, ru_m, ru_f in _JOB_TABLE
)
# Pets as the object of "has" (German and Russian accusative).
PETS: tuple[dict[str, str], ...] = (
    {"en": "a dog", "de": "einen Hund", "es": "un perro", "ru": "собаку"},
    {"en": "a cat", "de": "eine Katze", "es": "un gato", "ru": "кошку"},
    {"en": "a horse", "de": "ein Pferd", "es": "un caballo", "ru": "лошадь"},
    {"en": "a parrot", "de": "einen Papagei", "es": "un loro", "ru": "попугая"},
    {"en": "a rabbit", "de": "ein Kaninchen", "es": "un conejo", "ru": "кролика"},
    {"en": "a hamster", "de": "einen Hamster", "es": "un hámster", "ru": "хомяка"},
    {"en": "a turtle", "de": "eine Schildkröte", "es": "una tortuga", "ru": "черепаху"},
)
# Instruments as the object of "plays" (Russian prepositional after "на").
INSTRUMENTS: tuple[dict[str, str], ...] = (
    {"en": "the guitar", "de": "Gitarre", "es": "la guitarra", "ru": "гитаре"},
    {"en": "the piano", "de": "Klavier", "es": "el piano", "ru": "пианино"},
    {"en": "the violin", "de": "Geige", "es": "el violín", "ru": "скрипке"},
    {"en": "the drums", "de": "Schlagzeug", "es": "la batería", "ru": "барабанах"},
    {"en": "the flute", "de": "Flöte", "es": "la flauta", "ru": "флейте"},
    {"en": "the trumpet", "de": "Trompete", "es": "la trompeta", "ru": "трубе"},
    {"en": "the cello", "de": "Cello", "es": "el violonchelo", "ru": "виолончели"},
    {"en": "the saxophone", "de": "Saxophon", "es": "el saxofón", "ru": "саксофоне"},
    {"en": "the accordion", "de": "Akkordeon", "es": "el acordeón", "ru": "аккордеоне"},
)
# Foods as the object of "likes" (Russian accusative).
FOODS: tuple[dict[str, str], ...] = (
    {"en": "soup", "de": "Suppe", "es": "la sopa", "ru": "суп"},
    {"en": "pasta", "de": "Nudeln", "es": "la pasta", "ru": "макароны"},
    {"en": "fish", "de": "Fisch", "es": "el pescado", "ru": "рыбу"},
    {"en": "rice", "de": "Reis", "es": "el arroz", "ru": "рис"},
    {"en": "salad", "de": "Salat", "es": "la ensalada", "ru": "салат"},
    {"en": "chocolate", "de": "Schokolade", "es": "el chocolate", "ru": "шоколад"},
    {"en": "pizza", "de": "Pizza", "es": "la pizza", "ru": "пиццу"},
    {"en": "cheese", "de": "Käse", "es": "el queso", "ru": "сыр"},
    {"en": "tea", "de": "Tee", "es": "el té", "ru": "чай"},
)

ATTRS = ("city", "org", "job", "age", "pet", "instrument", "food")
N_VALUES = {
    "city": len(CITIES), "org": len(ORGS), "job": len(JOBS), "age": len(AGES),
    "pet": len(PETS), "instrument": len(INSTRUMENTS), "food": len(FOODS),
}  # fmt: skip
VALUE_NER = {"city": "LOC", "org": "ORG"}

PRONOUNS = {  # (masculine, feminine) for the nominative "{P}" and the dative "{P:dat}" slot
    "en": {"nom": ("he", "she"), "dat": ("he", "she")},
    "de": {"nom": ("er", "sie"), "dat": ("er", "sie")},
    "es": {"nom": ("él", "ella"), "dat": ("él", "ella")},
    "ru": {"nom": ("он", "она"), "dat": ("ему", "ей")},
}
CONJUNCTION = {"en": "and", "de": "und", "es": "y", "ru": "и"}

# One fact per attribute: (plain statement, restatement with other words, negation or None).
FACT_TEMPLATES: dict[str, dict[str, tuple[str, str, str | None]]] = {
    "en": {
        "city": ("{P} lives in {V} .", "{V} is where {P} lives .", "{P} does not live in {V} ."),
        "org": ("{P} works for {V} .", "{P} is employed by {V} .", "{P} does not work for {V} ."),
        "job": ("{P} is {V} .", "{P} works as {V} .", "{P} is not {V} ."),
        "age": ("{P} is {V} years old .", "{P} is aged {V} .", None),
        "pet": ("{P} has {V} .", "{P} owns {V} .", None),
        "instrument": ("{P} plays {V} .", "{P} can play {V} .", None),
        "food": ("{P} likes {V} .", "{P} enjoys {V} .", None),
    },
    "de": {
        "city": ("{P} wohnt in {V} .", "{P} lebt in {V} .", "{P} wohnt nicht in {V} ."),
        "org": ("{P} arbeitet bei {V} .", "{P} ist bei {V} angestellt .", "{P} arbeitet nicht bei {V} ."),
        "job": ("{P} ist {V} .", "{P} arbeitet als {V} .", "{P} ist nicht {V} ."),
        "age": ("{P} ist {V} Jahre alt .", "{P} ist im Alter von {V} Jahren .", None),
        "pet": ("{P} hat {V} .", "{P} besitzt {V} .", None),
        "instrument": ("{P} spielt {V} .", "{P} kann {V} spielen .", None),
        "food": ("{P} mag {V} .", "{P} isst gern {V} .", None),
    },
    "es": {
        "city": ("{P} vive en {V} .", "{P} reside en {V} .", "{P} no vive en {V} ."),
        "org": ("{P} trabaja para {V} .", "{P} trabaja en {V} .", "{P} no trabaja para {V} ."),
        "job": ("{P} es {V} .", "{P} trabaja como {V} .", "{P} no es {V} ."),
        "age": ("{P} tiene {V} años .", "{P} cumplió {V} años .", None),
        "pet": ("{P} tiene {V} .", "{P} posee {V} .", None),
        "instrument": ("{P} toca {V} .", "{P} sabe tocar {V} .", None),
        "food": ("a {P} le gusta {V} .", "{P} disfruta de {V} .", None),
    },
    "ru": {
        "city": ("{P} живёт в {V} .", "{P} проживает в {V} .", "{P} не живёт в {V} ."),
        "org": ("{P} работает в {V} .", "{P} трудится в {V} .", "{P} не работает в {V} ."),
        "job": ("{P} по профессии {V} .", "{P} — {V} .", "{P} не {V} ."),
        "age": ("{P:dat} {V} лет .", "{P:dat} исполнилось {V} лет .", None),
        "pet": ("{P} держит {V} .", "{P} воспитывает {V} .", None),
        "instrument": ("{P} играет на {V} .", "{P} умеет играть на {V} .", None),
        "food": ("{P} любит {V} .", "{P} обожает {V} .", None),
    },
}
# Questions asking for one attribute: (plain, reworded).
QUESTION_TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "city": ("Where does {P} live ?", "In which city does {P} live ?"),
        "org": ("Which company does {P} work for ?", "Who employs {P} ?"),
        "job": ("What is the job of {P} ?", "What does {P} do for a living ?"),
        "age": ("How old is {P} ?", "What is the age of {P} ?"),
        "pet": ("What animal does {P} have ?", "Which pet does {P} own ?"),
        "instrument": ("What instrument does {P} play ?", "Which instrument can {P} play ?"),
        "food": ("What does {P} like ?", "What food does {P} enjoy ?"),
    },
    "de": {
        "city": ("Wo wohnt {P} ?", "In welcher Stadt lebt {P} ?"),
        "org": ("Bei welcher Firma arbeitet {P} ?", "Wer beschäftigt {P} ?"),
        "job": ("Was ist {P} von Beruf ?", "Als was arbeitet {P} ?"),
        "age": ("Wie alt ist {P} ?", "Welches Alter hat {P} ?"),
        "pet": ("Welches Tier hat {P} ?", "Welches Haustier besitzt {P} ?"),
        "instrument": ("Welches Instrument spielt {P} ?", "Was kann {P} spielen ?"),
        "food": ("Was mag {P} ?", "Was isst {P} gern ?"),
    },
    "es": {
        "city": ("¿ Dónde vive {P} ?", "¿ En qué ciudad reside {P} ?"),
        "org": ("¿ Para qué empresa trabaja {P} ?", "¿ Quién emplea a {P} ?"),
        "job": ("¿ Cuál es la profesión de {P} ?", "¿ En qué trabaja {P} ?"),
        "age": ("¿ Cuántos años tiene {P} ?", "¿ Qué edad tiene {P} ?"),
        "pet": ("¿ Qué animal tiene {P} ?", "¿ Qué mascota posee {P} ?"),
        "instrument": ("¿ Qué instrumento toca {P} ?", "¿ Qué sabe tocar {P} ?"),
        "food": ("¿ Qué le gusta a {P} ?", "¿ De qué disfruta {P} ?"),
    },
    "ru": {
        "city": ("Где живёт {P} ?", "В каком городе проживает {P} ?"),
        "org": ("В какой компании работает {P} ?", "Где трудится {P} ?"),
        "job": ("Кто {P} по профессии ?", "Кем работает {P} ?"),
        "age": ("Сколько лет {P:dat} ?", "Каков возраст {P} ?"),
        "pet": ("Какое животное держит {P} ?", "Кого воспитывает {P} ?"),
        "instrument": ("На чём играет {P} ?", "На каком инструменте умеет играть {P} ?"),
        "food": ("Что любит {P} ?", "Что обожает {P} ?"),
    },
}

# Universal POS of every word the tagged templates use (slot fillers are tagged by their attribute).
WORD_POS: dict[str, dict[str, str]] = {
    "en": {
        ".": "PUNCT", ",": "PUNCT", "(": "PUNCT", ")": "PUNCT", "and": "CCONJ", "he": "PRON", "she": "PRON",
        "a": "DET", "an": "DET", "the": "DET", "lives": "VERB", "live": "VERB", "in": "ADP", "is": "AUX",
        "where": "ADV", "does": "AUX", "not": "PART", "works": "VERB", "work": "VERB", "for": "ADP",
        "employed": "VERB", "by": "ADP", "as": "ADP", "years": "NOUN", "old": "ADJ", "aged": "VERB",
        "has": "VERB", "owns": "VERB", "plays": "VERB", "can": "AUX", "play": "VERB", "likes": "VERB",
        "enjoys": "VERB",
    },
    "de": {
        ".": "PUNCT", ",": "PUNCT", "(": "PUNCT", ")": "PUNCT", "und": "CCONJ", "er": "PRON", "sie": "PRON",
        "ein": "DET", "einen": "DET", "eine": "DET", "wohnt": "VERB", "in": "ADP", "lebt": "VERB",
        "nicht": "PART", "arbeitet": "VERB", "bei": "ADP", "ist": "AUX", "angestellt": "VERB", "als": "ADP",
        "jahre": "NOUN", "alt": "ADJ", "im": "ADP", "alter": "NOUN", "von": "ADP", "jahren": "NOUN",
        "hat": "VERB", "besitzt": "VERB", "spielt": "VERB", "kann": "AUX", "spielen": "VERB", "mag": "VERB",
        "isst": "VERB", "gern": "ADV",
    },
    "es": {
        ".": "PUNCT", ",": "PUNCT", "(": "PUNCT", ")": "PUNCT", "y": "CCONJ", "él": "PRON", "ella": "PRON",
        "un": "DET", "una": "DET", "el": "DET", "la": "DET", "vive": "VERB", "en": "ADP", "reside": "VERB",
        "no": "ADV", "trabaja": "VERB", "para": "ADP", "es": "AUX", "como": "ADP", "tiene": "VERB",
        "años": "NOUN", "cumplió": "VERB", "posee": "VERB", "toca": "VERB", "sabe": "VERB", "tocar": "VERB",
        "a": "ADP", "le": "PRON", "gusta": "VERB", "disfruta": "VERB", "de": "ADP",
    },
    "ru": {
        ".": "PUNCT", ",": "PUNCT", "(": "PUNCT", ")": "PUNCT", "—": "PUNCT", "и": "CCONJ", "он": "PRON",
        "она": "PRON", "ему": "PRON", "ей": "PRON", "живёт": "VERB", "в": "ADP", "проживает": "VERB",
        "не": "PART", "работает": "VERB", "трудится": "VERB", "по": "ADP", "профессии": "NOUN", "лет": "NOUN",
        "исполнилось": "VERB", "держит": "VERB", "воспитывает": "VERB", "играет": "VERB", "на": "ADP",
        "умеет": "VERB", "играть": "VERB", "любит": "VERB", "обожает": "VERB",
    },
}  # fmt: skip
DETERMINERS = {
    "en": {"a", "an", "the"},
    "de": {"ein", "einen", "eine"},
    "es": {"un", "una", "el", "la"},
    "ru": set(),
}
# English CCG supertags: by word where the category depends on the word's frame, else by POS.
CCG_BY_WORD = {
    "lives": "S[dcl]\\NP", "live": "S[b]\\NP", "works": "S[dcl]\\NP", "work": "S[b]\\NP",
    "in": "((S\\NP)\\(S\\NP))/NP", "for": "((S\\NP)\\(S\\NP))/NP", "by": "((S\\NP)\\(S\\NP))/NP",
    "as": "((S\\NP)\\(S\\NP))/NP", "is": "(S[dcl]\\NP)/NP", "does": "(S[dcl]\\NP)/(S[b]\\NP)",
    "can": "(S[dcl]\\NP)/(S[b]\\NP)", "not": "(S\\NP)\\(S\\NP)", "where": "(NP\\NP)/S[dcl]",
    "employed": "S[pss]\\NP", "aged": "(S[adj]\\NP)/N", "old": "(S[adj]\\NP)\\NP",
    "has": "(S[dcl]\\NP)/NP", "owns": "(S[dcl]\\NP)/NP", "plays": "(S[dcl]\\NP)/NP", "play": "(S[b]\\NP)/NP",
    "likes": "(S[dcl]\\NP)/NP", "enjoys": "(S[dcl]\\NP)/NP",
    "and": "conj", ".": ".", ",": ",", "(": "LRB", ")": "RRB",
}  # fmt: skip
CCG_BY_POS = {"NOUN": "N", "DET": "NP[nb]/N", "NUM": "N/N", "PRON": "NP", "ADJ": "S[adj]\\NP"}

# English-only lexicon of the commonsense tasks (HellaSwag, CosmosQA, CommonsenseQA) and SST-2.
JOB_ACTIVITIES = {
    "teacher": "explains the lesson to the class",
    "doctor": "examines a patient in the clinic",
    "engineer": "checks the plans for a new bridge",
    "pilot": "flies the plane across the sea",
    "musician": "practises a new song for the concert",
    "lawyer": "prepares the papers for the court",
    "farmer": "feeds the cows and waters the fields",
    "architect": "draws the design of a new building",
    "cook": "stirs the sauce in the kitchen",
    "journalist": "writes an article for the newspaper",
    "baker": "takes fresh bread out of the oven",
    "photographer": "takes pictures of the old town",
}
PET_ACTIVITIES = {
    "a dog": "takes the dog for a walk in the park",
    "a cat": "gives the cat a bowl of milk",
    "a horse": "rides the horse across the meadow",
    "a parrot": "teaches the parrot a new word",
    "a rabbit": "gives the rabbit a fresh carrot",
    "a hamster": "cleans the cage of the hamster",
    "a turtle": "puts the turtle in the warm sun",
}
# Event -> (feeling, likely next action), for CosmosQA.
EVENTS = {
    "won the first prize at the music contest": ("proud and happy", "celebrated with friends that evening"),
    "lost the keys to the apartment": ("worried and annoyed", "called a locksmith to open the door"),
    "failed the driving test again": ("sad and disappointed", "booked more driving lessons"),
    "got a surprise visit from an old friend": ("surprised and glad", "made coffee for the guest"),
    "heard a strange noise downstairs at night": ("scared and nervous", "turned on the light to check"),
    "waited two hours for a late bus": ("bored and impatient", "decided to take a taxi instead"),
    "woke up with a high fever": ("weak and tired", "stayed in bed and called a doctor"),
    "was promoted at work": ("proud and excited", "told the family the good news"),
    "got caught in heavy rain without an umbrella": ("cold and wet", "changed into dry clothes at home"),
}
# Object -> the place where one finds it, for CommonsenseQA.
OBJECT_PLACES = {
    "a book": "library", "medicine": "pharmacy", "fresh bread": "bakery", "a famous painting": "museum",
    "an airplane": "airport", "a train": "station", "a cow": "farm", "a towel": "bathroom",
    "a pillow": "bedroom", "an oven": "kitchen", "a shark": "ocean", "a monkey": "zoo", "a desk": "office",
    "a chalkboard": "classroom", "a tent": "campsite", "a safe full of money": "bank",
}  # fmt: skip
SST_SUBJECTS = (
    "the film", "the story", "the acting", "the music", "the ending", "the dialogue", "the script",
    "the camera work", "the cast", "the plot",
)  # fmt: skip
SST_POSITIVE = (
    "wonderful", "brilliant", "moving", "charming", "delightful", "clever", "beautiful", "funny",
    "gripping", "superb",
)  # fmt: skip
SST_NEGATIVE = (
    "dull", "boring", "clumsy", "awful", "tedious", "predictable", "bland", "messy", "weak", "forgettable",
)  # fmt: skip

# Two-role events for the paraphrase tasks: meaning-preserving rewordings of one event. Swapping the roles
# ({A}<->{B}, or the two cities) changes the meaning while keeping the words.
EVENT_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "hire": {
        "en": ("{A} hired {B} at {O} .", "At {O} , {A} hired {B} .", "{B} was hired by {A} at {O} ."),
        "de": (
            "{A} stellte {B} bei {O} ein .",
            "Bei {O} stellte {A} {B} ein .",
            "{B} wurde von {A} bei {O} eingestellt .",
        ),
        "es": (
            "{A} contrató a {B} en {O} .",
            "En {O} , {A} contrató a {B} .",
            "Fue {A} quien contrató a {B} en {O} .",
        ),
    },
    "move": {
        "en": (
            "{A} moved from {B} to {C} .",
            "From {B} , {A} moved to {C} .",
            "{A} left {B} and moved to {C} .",
        ),
        "de": (
            "{A} zog von {B} nach {C} .",
            "Von {B} zog {A} nach {C} .",
            "{A} verließ {B} und zog nach {C} .",
        ),
        "es": (
            "{A} se mudó de {B} a {C} .",
            "De {B} , {A} se mudó a {C} .",
            "{A} dejó {B} y se mudó a {C} .",
        ),
    },
    "visit": {
        "en": ("{A} visited {B} in {C} .", "In {C} , {A} visited {B} .", "{B} was visited by {A} in {C} ."),
        "de": ("{A} besuchte {B} in {C} .", "In {C} besuchte {A} {B} .", "{B} bekam in {C} Besuch von {A} ."),
        "es": ("{A} visitó a {B} en {C} .", "En {C} , {A} visitó a {B} .", "{A} fue a ver a {B} en {C} ."),
    },
    "sell": {
        "en": ("{A} sold {X} to {B} .", "{B} bought {X} from {A} .", "{X} was sold by {A} to {B} ."),
        "de": ("{A} verkaufte {B} {X} .", "{B} kaufte {X} von {A} .", "{X} wurde von {A} an {B} verkauft ."),
        "es": ("{A} vendió {X} a {B} .", "{B} compró {X} a {A} .", "{X} fue vendido por {A} a {B} ."),
    },
}
SOLD_THINGS = (
    {"en": "a car", "de": "ein Auto", "es": "un coche"},
    {"en": "a piano", "de": "ein Klavier", "es": "un piano"},
    {"en": "a boat", "de": "ein Boot", "es": "un barco"},
)
# The same events as yes/no questions, for QQP.
EVENT_QUESTIONS = {
    "hire": ("Did {A} hire {B} at {O} ?", "At {O} , did {A} hire {B} ?", "Was {B} hired by {A} at {O} ?"),
    "move": (
        "Did {A} move from {B} to {C} ?",
        "Did {A} leave {B} for {C} ?",
        "Was it from {B} that {A} moved to {C} ?",
    ),
    "visit": (
        "Did {A} visit {B} in {C} ?",
        "In {C} , did {A} visit {B} ?",
        "Was {B} visited by {A} in {C} ?",
    ),
    "sell": ("Did {A} sell {X} to {B} ?", "Did {B} buy {X} from {A} ?", "Was {X} sold by {A} to {B} ?"),
}

# ---------------------------------------------------------------------------------------------------------
# Rendering: facts about people become tokens (with POS, NER and a mark for QA answers), then text.
# ---------------------------------------------------------------------------------------------------------


class Person(NamedTuple):
    first: str
    last: str
    female: bool


class Fact(NamedTuple):
    person: Person
    attr: str
    value: int
    kind: int = 0
    """0: plain statement, 1: restatement, 2: negation."""
    ref: str = "full"
    """How the person is named: ``full``, ``first`` or ``pron``."""


class Tok(NamedTuple):
    text: str
    pos: str | None = None
    """Universal POS of slot fillers; ``None`` for template words (looked up in ``WORD_POS``)."""
    ner: str = "O"
    mark: str | None = None
    """Marks the tokens of a QA answer."""


def _rng(seed: int, *key: str) -> random.Random:
    digest = hashlib.sha256("/".join((str(seed), *key)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _hex_id(*key: object) -> str:
    return hashlib.md5("/".join(map(str, key)).encode()).hexdigest()[:24]


def _people(rng: random.Random, k: int) -> list[Person]:
    """``k`` people with distinct first and last names."""
    females = [rng.random() < 0.5 for _ in range(k)]
    firsts = rng.sample(FEMALE_NAMES, k)
    males = rng.sample(MALE_NAMES, k)
    lasts = rng.sample(LAST_NAMES, k)
    return [
        Person(f if fem else m, last, fem)
        for f, m, last, fem in zip(firsts, males, lasts, females, strict=True)
    ]


def _entity(text: str, label: str, mark: str | None = None) -> list[Tok]:
    """A named entity's tokens: proper nouns tagged B-/I-``label``."""
    return [Tok(w, "PROPN", ("B-" if i == 0 else "I-") + label, mark) for i, w in enumerate(text.split())]


def _person_toks(person: Person, lang: str, ref: str, case: str = "nom") -> list[Tok]:
    if ref == "pron":
        return [Tok(PRONOUNS[lang][case][person.female])]
    name = person.first if ref == "first" else f"{person.first} {person.last}"
    return _entity(name, "PER")


def _value_toks(attr: str, value: int, lang: str, female: bool, mark: str | None = None) -> list[Tok]:
    if attr in ("city", "org"):
        return _entity((CITIES if attr == "city" else ORGS)[value], VALUE_NER[attr], mark=mark)
    if attr == "age":
        return [Tok(str(AGES[value]), "NUM", "O", mark)]
    if attr == "job":
        job = JOBS[value]
        article = "an" if job["en"][0] in "aeiou" else "a"
        text = f"{article} {job['en']}" if lang == "en" else job[lang][female]
    else:
        text = {"pet": PETS, "instrument": INSTRUMENTS, "food": FOODS}[attr][value][lang]
    return [Tok(w, "DET" if w in DETERMINERS[lang] else "NOUN", "O", mark) for w in text.split()]


def _fill(template: str, slots: dict[str, list[Tok]], start: bool = True) -> list[Tok]:
    """Template words become tokens, ``{X}`` the slot's tokens; the first letter is capitalised at a start."""
    toks: list[Tok] = []
    for word in template.split():
        if word.startswith("{") and word.endswith("}"):
            toks.extend(slots[word[1:-1]])
        else:
            toks.append(Tok(word))
    if start and toks:
        first = toks[0]
        toks[0] = first._replace(text=first.text[:1].upper() + first.text[1:])
    return toks


def _fact_toks(lang: str, fact: Fact, start: bool = True, mark: str | None = None) -> list[Tok]:
    template = FACT_TEMPLATES[lang][fact.attr][fact.kind]
    if template is None:
        raise ValueError(f"no negation template for {fact.attr!r} in {lang!r}")
    slots = {
        "P": _person_toks(fact.person, lang, fact.ref),
        "P:dat": _person_toks(fact.person, lang, fact.ref, "dat"),
        "V": _value_toks(fact.attr, fact.value, lang, fact.person.female, mark),
    }
    return _fill(template, slots, start)


def _question(lang: str, person: Person, attr: str, variant: int, ref: str = "full") -> str:
    slots = {"P": _person_toks(person, lang, ref), "P:dat": _person_toks(person, lang, ref, "dat")}
    return _detok(_fill(QUESTION_TEMPLATES[lang][attr][variant], slots))[0]


NO_SPACE_BEFORE = {".", ",", "?", "!", ")"}
NO_SPACE_AFTER = {"(", "¿", "¡"}


def _detok(toks: Sequence[Tok]) -> tuple[str, dict[str, tuple[int, int]]]:
    """Text of ``toks`` with natural spacing, and the character span of each mark."""
    text = ""
    spans: dict[str, tuple[int, int]] = {}
    previous = ""
    for tok in toks:
        if text and tok.text not in NO_SPACE_BEFORE and previous not in NO_SPACE_AFTER:
            text += " "
        start = len(text)
        text += tok.text
        if tok.mark is not None:
            begin = spans.get(tok.mark, (start, start))[0]
            spans[tok.mark] = (begin, len(text))
        previous = tok.text
    return text, spans


def _render(lang: str, facts: Sequence[Fact]) -> str:
    return " ".join(_detok(_fact_toks(lang, fact))[0] for fact in facts)


def _describe(
    rng: random.Random, people: Sequence[Person], attrs_per_person: Sequence[Sequence[str]]
) -> list[Fact]:
    """Facts about each person in turn (full name first, then first name or pronoun); a value is never
    shared by two people of one text."""
    used: dict[str, set[int]] = {attr: set() for attr in ATTRS}
    facts: list[Fact] = []
    for person, attrs in zip(people, attrs_per_person, strict=True):
        for i, attr in enumerate(attrs):
            value = rng.choice([v for v in range(N_VALUES[attr]) if v not in used[attr]])
            used[attr].add(value)
            ref = "full" if i == 0 else rng.choice(("first", "pron"))
            facts.append(Fact(person, attr, value, 0, ref))
    return facts


def _other_value(rng: random.Random, attr: str, *excluded: int) -> int:
    return rng.choice([v for v in range(N_VALUES[attr]) if v not in excluded])


# ---------------------------------------------------------------------------------------------------------
# Generators: one per task family. Each takes (rng, lang, split, n) and returns n rows in the hub's schema.
# Random choices are made before rendering, so a parallel task draws the same content in every language.
# ---------------------------------------------------------------------------------------------------------

NLI_ENTAILMENT, NLI_NEUTRAL, NLI_CONTRADICTION = 0, 1, 2


def _nli_pair(rng: random.Random, label: int, adversarial: float) -> tuple[list[Fact], Fact]:
    """A premise about one or two people and a hypothesis that it entails, contradicts, or leaves open.

    Entailed: a stated fact, usually reworded, or the negation of another value. Contradicted: a stated
    attribute with another value, or the stated fact negated. Neutral: an attribute the premise does not
    state. ``adversarial`` is the share of pairs whose hypothesis borrows a value the premise states for the
    other person, which defeats lexical overlap (the ANLI flavour).
    """
    two = adversarial > 0 or rng.random() < 0.2
    people = _people(rng, 2 if two else 1)
    attrs = rng.sample(ATTRS, 4 if two else rng.choice((2, 3)))
    if two:  # both people share the first two attributes; each has one of its own
        per_person = [[attrs[0], attrs[1], attrs[2]], [attrs[0], attrs[1], attrs[3]]]
        for group in per_person:
            rng.shuffle(group)
    else:
        per_person = [attrs]
    premise = _describe(rng, people, per_person)
    if two:  # no pronouns when two people are described
        premise = [f._replace(ref="full" if f.ref == "full" else "first") for f in premise]
    target = rng.choice(people)
    own = [f for f in premise if f.person == target]
    others = [f for f in premise if f.person != target]
    ref = rng.choice(("full", "first"))
    tricky = rng.random() < adversarial
    if label == NLI_ENTAILMENT:
        fact = rng.choice(own)
        if FACT_TEMPLATES["en"][fact.attr][2] is not None and rng.random() < 0.15:  # "not" another value
            value = _other_value(rng, fact.attr, *(f.value for f in premise if f.attr == fact.attr))
            return premise, Fact(target, fact.attr, value, 2, ref)
        return premise, Fact(target, fact.attr, fact.value, 1 if rng.random() < 0.7 else 0, ref)
    if label == NLI_CONTRADICTION:
        fact = rng.choice(own)
        rival = [f for f in others if f.attr == fact.attr]
        if tricky and rival:
            return premise, Fact(target, fact.attr, rival[0].value, rng.choice((0, 1)), ref)
        if FACT_TEMPLATES["en"][fact.attr][2] is not None and rng.random() < 0.3:
            return premise, Fact(target, fact.attr, fact.value, 2, ref)
        value = _other_value(rng, fact.attr, *(f.value for f in premise if f.attr == fact.attr))
        return premise, Fact(target, fact.attr, value, rng.choice((0, 1)), ref)
    stated = {f.attr for f in own}
    borrowed = [f for f in others if f.attr not in stated]
    if tricky and borrowed:
        fact = rng.choice(borrowed)
        return premise, Fact(target, fact.attr, fact.value, rng.choice((0, 1)), ref)
    if not two and rng.random() < 0.2:  # a stated fact, but about somebody else
        stranger = _people(rng, 1)[0]
        if stranger.first != target.first and stranger.last != target.last:
            fact = rng.choice(own)
            return premise, Fact(stranger, fact.attr, fact.value, rng.choice((0, 1)), "full")
    attr = rng.choice([a for a in ATTRS if a not in stated])
    return premise, Fact(target, attr, rng.randrange(N_VALUES[attr]), rng.choice((0, 1)), ref)


def _nli_rows(rng: random.Random, lang: str, n: int, adversarial: float) -> list[tuple[str, str, int]]:
    labels = [i % 3 for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for label in labels:
        premise, hypothesis = _nli_pair(rng, label, adversarial)
        rows.append((_render(lang, premise), _render(lang, [hypothesis]), label))
    return rows


def gen_xnli(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """XNLI (``facebook/xnli``): premise, hypothesis, label."""
    return [{"premise": p, "hypothesis": h, "label": y} for p, h, y in _nli_rows(rng, lang, n, 0.0)]


def gen_mnli(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """MNLI (``nyu-mll/glue``): premise, hypothesis, label, idx; the same generator as XNLI."""
    rows = _nli_rows(rng, lang, n, 0.0)
    return [{"premise": p, "hypothesis": h, "label": y, "idx": i} for i, (p, h, y) in enumerate(rows)]


def gen_anli(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """ANLI (``facebook/anli``): two people per premise, half the hypotheses built to defeat word overlap."""
    rows = _nli_rows(rng, lang, n, 0.5)
    return [
        {"uid": _hex_id("anli", split, i), "premise": p, "hypothesis": h, "label": y, "reason": ""}
        for i, (p, h, y) in enumerate(rows)
    ]


# The slot that a swap exchanges with A, and the slot that a substitution changes, per event.
SWAPPED = {"hire": ("A", "B"), "move": ("B", "C"), "visit": ("A", "B"), "sell": ("A", "B")}
SUBSTITUTED = {"hire": "O", "move": "C", "visit": "C", "sell": "X"}


def _event_slots(rng: random.Random, name: str) -> dict[str, str]:
    """Fillers of an event's slots: people ``A``/``B`` (cities ``B``/``C`` for a move), place, firm, thing."""
    a, b = _people(rng, 2)
    slots = {"A": f"{a.first} {a.last}", "B": f"{b.first} {b.last}", "O": rng.choice(ORGS)}
    slots["C"] = rng.choice(CITIES)
    if name == "move":
        slots["B"], slots["C"] = rng.sample(CITIES, 2)
    slots["X"] = str(rng.randrange(len(SOLD_THINGS)))
    return slots


def _event_text(template: str, slots: dict[str, str], lang: str) -> str:
    filled = dict(slots, X=SOLD_THINGS[int(slots["X"])][lang])
    return _detok(_fill(template, {k: [Tok(w) for w in v.split()] for k, v in filled.items()}))[0]


def _paraphrase_pair(
    rng: random.Random, name: str, templates: Sequence[str], lang: str, label: int
) -> tuple[str, str]:
    """Two rewordings of one event; a non-paraphrase swaps two roles in the second (the words stay the
    same), or else substitutes one filler."""
    slots = _event_slots(rng, name)
    i, j = rng.sample(range(len(templates)), 2)
    other = dict(slots)
    if label == 0:
        if rng.random() < 0.3:
            key = SUBSTITUTED[name]
            if key == "X":
                other["X"] = str((int(slots["X"]) + rng.randrange(1, len(SOLD_THINGS))) % len(SOLD_THINGS))
            else:
                pool = ORGS if key == "O" else CITIES
                other[key] = rng.choice([v for v in pool if v not in slots.values()])
        else:
            x, y = SWAPPED[name]
            other[x], other[y] = slots[y], slots[x]
    return _event_text(templates[i], slots, lang), _event_text(templates[j], other, lang)


def gen_pawsx(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """PAWS-X: id, sentence1, sentence2, label (1 = paraphrase); negatives swap roles, keeping the words."""
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for i, label in enumerate(labels):
        name = sorted(EVENT_TEMPLATES)[rng.randrange(len(EVENT_TEMPLATES))]
        s1, s2 = _paraphrase_pair(rng, name, EVENT_TEMPLATES[name][lang], lang, label)
        rows.append({"id": i + 1, "sentence1": s1, "sentence2": s2, "label": label})
    return rows


def gen_qqp(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """QQP: idx, question1, question2, label (1 = duplicate); like PAWS-X, plus attribute questions."""
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for i, label in enumerate(labels):
        if rng.random() < 0.5:
            name = sorted(EVENT_QUESTIONS)[rng.randrange(len(EVENT_QUESTIONS))]
            q1, q2 = _paraphrase_pair(rng, name, EVENT_QUESTIONS[name], lang, label)
        else:
            person, other = _people(rng, 2)
            attr = rng.choice(ATTRS)
            v1, v2 = rng.sample((0, 1), 2)
            q1 = _question(lang, person, attr, v1)
            if label == 1:
                q2 = _question(lang, person, attr, v2, rng.choice(("full", "full", "first")))
            elif rng.random() < 0.5:
                q2 = _question(lang, other, attr, v2)
            else:
                q2 = _question(lang, person, rng.choice([a for a in ATTRS if a != attr]), rng.choice((0, 1)))
        rows.append({"idx": i, "question1": q1, "question2": q2, "label": label})
    return rows


def gen_sst2(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """SST-2: idx, sentence, label (1 = positive); polarity from sentiment words, flipped by negation and
    decided by the clause after "but"/"although"."""
    labels = [i % 2 for i in range(n)]
    rng.shuffle(labels)
    rows = []
    for i, label in enumerate(labels):
        good, bad = (SST_POSITIVE, SST_NEGATIVE) if label == 1 else (SST_NEGATIVE, SST_POSITIVE)
        s1, s2 = rng.sample(SST_SUBJECTS, 2)
        form = rng.choices(range(5), weights=(35, 25, 15, 15, 10))[0]
        if form == 0:
            text = f"{s1} is {rng.choice(good)} ."
        elif form == 1:
            a, b = rng.sample(good, 2)
            text = f"{s1} is {a} and {b} ."
        elif form == 2:
            text = f"{s1} is not {rng.choice(bad)} ."
        elif form == 3:
            text = f"{s1} is {rng.choice(bad)} , but {s2} is {rng.choice(good)} ."
        else:
            text = f"although {s1} is {rng.choice(bad)} , {s2} is truly {rng.choice(good)} ."
        rows.append({"idx": i, "sentence": text, "label": label})
    return rows


def _tagged_sentence(rng: random.Random, lang: str) -> list[Tok]:
    """One or two facts joined by a conjunction; the second about the same person (pronoun) or another."""
    people = _people(rng, 2)
    attr1, attr2 = rng.sample(ATTRS, 2)
    kind1 = 2 if FACT_TEMPLATES["en"][attr1][2] and rng.random() < 0.1 else int(rng.random() < 0.3)
    toks = _fact_toks(
        lang, Fact(people[0], attr1, rng.randrange(N_VALUES[attr1]), kind1, rng.choice(("full", "first")))
    )
    if rng.random() < 0.5:
        same = rng.random() < 0.5
        second = Fact(
            people[0] if same else people[1],
            attr2,
            rng.randrange(N_VALUES[attr2]),
            int(rng.random() < 0.3),
            "pron" if same else rng.choice(("full", "first")),
        )
        toks = [*toks[:-1], Tok(","), Tok(CONJUNCTION[lang]), *_fact_toks(lang, second, start=False)]
    return toks


def _pos_tags(toks: Sequence[Tok], lang: str) -> list[str]:
    return [tok.pos or WORD_POS[lang][tok.text.lower()] for tok in toks]


def gen_udpos(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """UD-POS (``google/xtreme`` udpos.*): tokens, pos_tags (indices into UPOS_TAGS)."""
    rows = []
    for _ in range(n):
        toks = _tagged_sentence(rng, lang)
        rows.append(
            {
                "tokens": [t.text for t in toks],
                "pos_tags": [UPOS_TAGS.index(p) for p in _pos_tags(toks, lang)],
            }
        )
    return rows


def gen_panx(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """PAN-X (``google/xtreme`` PAN-X.*): tokens, ner_tags (indices into NER_TAGS), langs; with the
    list-like fragments of WikiANN among the sentences."""
    rows = []
    for _ in range(n):
        if rng.random() < 0.25:
            person = _people(rng, 1)[0]
            org = _entity(rng.choice(ORGS), "ORG")
            city = _entity(rng.choice(CITIES), "LOC")
            pick = rng.randrange(3)
            if pick == 0:
                toks = [*org, Tok("("), *city, Tok(")")]
            elif pick == 1:
                toks = [*_person_toks(person, lang, "full"), Tok(","), *org]
            else:
                toks = [*_person_toks(person, lang, "full"), Tok("("), *city, Tok(")")]
        else:
            toks = _tagged_sentence(rng, lang)
        rows.append(
            {
                "tokens": [t.text for t in toks],
                "ner_tags": [NER_TAGS.index(t.ner) for t in toks],
                "langs": [lang] * len(toks),
            }
        )
    return rows


def _ccg_tags(toks: Sequence[Tok], pos: Sequence[str]) -> list[str]:
    tags = []
    for i, (tok, p) in enumerate(zip(toks, pos, strict=True)):
        if p == "PROPN":
            same_name = i + 1 < len(toks) and pos[i + 1] == "PROPN" and toks[i + 1].ner.startswith("I-")
            tags.append("N/N" if same_name else "N")
        elif tok.pos is None and tok.text.lower() in CCG_BY_WORD:
            tags.append(CCG_BY_WORD[tok.text.lower()])
        else:
            tags.append(CCG_BY_POS[p])
    return tags


def gen_ccg(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """CCGbank (local files only): tokens, tags (supertag strings); the sentences of UD-POS."""
    rows = []
    for _ in range(n):
        toks = _tagged_sentence(rng, lang)
        rows.append({"tokens": [t.text for t in toks], "tags": _ccg_tags(toks, _pos_tags(toks, lang))})
    return rows


def _qa_example(
    rng: random.Random,
    n_people: tuple[int, int],
    n_facts: tuple[int, int],
    unanswerable: float,
    reworded: float,
) -> tuple[list[Fact], Person, str, int | None, int]:
    """A paragraph about a few people, and a question about one fact (index into the facts, or ``None``
    when the paragraph does not say)."""
    people = _people(rng, rng.randint(*n_people) + 1)
    stranger, people = people[-1], people[:-1]
    per_person = [rng.sample(ATTRS, rng.randint(*n_facts)) for _ in people]
    facts = _describe(rng, people, per_person)
    variant = int(rng.random() < reworded)
    if rng.random() < unanswerable:
        person = rng.choice(people)
        missing = [a for a in ATTRS if all(f.attr != a for f in facts if f.person == person)]
        if rng.random() < 0.3:
            return facts, stranger, rng.choice(ATTRS), None, variant
        stated_elsewhere = [a for a in missing if any(f.attr == a for f in facts)]
        return facts, person, rng.choice(stated_elsewhere or missing), None, variant
    index = rng.randrange(len(facts))
    return facts, facts[index].person, facts[index].attr, index, variant


def _qa_rows(
    rng: random.Random,
    lang: str,
    n: int,
    ids: Callable[[int], str],
    n_people: tuple[int, int] = (1, 3),
    n_facts: tuple[int, int] = (2, 3),
    unanswerable: float = 0.0,
    reworded: float = 0.4,
) -> list[Row]:
    rows = []
    for i in range(n):
        facts, person, attr, index, variant = _qa_example(rng, n_people, n_facts, unanswerable, reworded)
        sentences = [
            _detok(_fact_toks(lang, f, mark="answer" if j == index else None)) for j, f in enumerate(facts)
        ]
        context, offset = "", 0
        answers: dict[str, list[Any]] = {"text": [], "answer_start": []}
        for text, spans in sentences:
            offset = len(context) + (1 if context else 0)
            context = f"{context} {text}" if context else text
            if "answer" in spans:
                start, end = spans["answer"]
                answers = {"text": [text[start:end]], "answer_start": [offset + start]}
        question = _question(lang, person, attr, variant, "full" if rng.random() < 0.5 else "first")
        title = f"{facts[0].person.first} {facts[0].person.last}"
        rows.append(
            {"id": ids(i), "title": title, "context": context, "question": question, "answers": answers}
        )
    return rows


def gen_squad_v1(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """SQuAD v1.1: id, title, context, question, answers{text, answer_start}."""
    return _qa_rows(rng, lang, n, lambda i: _hex_id("squad", split, i))


def gen_squad_v2(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """SQuAD 2.0: as SQuAD v1.1, a third unanswerable (empty answer lists)."""
    return _qa_rows(rng, lang, n, lambda i: _hex_id("squad_v2", split, i), unanswerable=1 / 3)


def gen_xquad(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """XQuAD: id, context, question, answers; parallel across languages (same ids)."""
    rows = _qa_rows(rng, lang, n, lambda i: _hex_id("xquad", split, i))
    return [{k: v for k, v in row.items() if k != "title"} for row in rows]


def gen_mlqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """MLQA: id, title, context, question, answers; parallel across languages, two to three people."""
    return _qa_rows(rng, lang, n, lambda i: _hex_id("mlqa", split, i), n_people=(2, 3))


def gen_tydiqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """TyDiQA gold passage: ids prefixed by the language name, longer passages, reworded questions."""
    prefix = TYDIQA_NAMES[lang]
    return _qa_rows(
        rng,
        lang,
        n,
        lambda i: f"{prefix}-{int(_hex_id('tydiqa', split, lang, i)[:15], 16)}-{i}",
        n_people=(1, 2),
        n_facts=(3, 4),
        reworded=0.6,
    )


def gen_hellaswag(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """HellaSwag: ctx (= ctx_a + ctx_b), four endings, label as a string; the right ending is what the
    person's job or pet makes them do."""
    rows = []
    for i in range(n):
        person = _people(rng, 1)[0]
        pronoun = PRONOUNS["en"]["nom"][person.female]
        if rng.random() < 0.5:
            job = rng.randrange(len(JOBS))
            ctx_a = _render("en", [Fact(person, "job", job)])
            activities = JOB_ACTIVITIES
            key, label_text = JOBS[job]["en"], "Working"
            ctx_b = rng.choice(("Every morning, {p}", "At work, {p}", "Later that day, {p}"))
        else:
            pet = rng.randrange(len(PETS))
            ctx_a = _render("en", [Fact(person, "pet", pet)])
            activities = PET_ACTIVITIES
            key, label_text = PETS[pet]["en"], "Pets"
            ctx_b = rng.choice(("In the afternoon, {p}", "After dinner, {p}", "On Sunday, {p}"))
        if rng.random() < 0.5:
            attr = rng.choice(("city", "org", "age"))
            ctx_a += " " + _render("en", [Fact(person, attr, rng.randrange(N_VALUES[attr]), 0, "pron")])
        ctx_b = ctx_b.format(p=rng.choice((pronoun, person.first)))
        wrong = rng.sample([a for k, a in sorted(activities.items()) if k != key], 3)
        label = rng.randrange(4)
        endings = [f"{e}." for e in (*wrong[:label], activities[key], *wrong[label:])]
        rows.append(
            {
                "ind": i,
                "activity_label": label_text,
                "ctx_a": ctx_a,
                "ctx_b": ctx_b,
                "ctx": f"{ctx_a} {ctx_b}",
                "endings": endings,
                "source_id": f"miniature~{split}~{i}",
                "split": "val" if split == "dev" else split,
                "split_type": "indomain",
                "label": str(label),
            }
        )
    return rows


def gen_cosmosqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """CosmosQA: id, context, question, answer0..answer3, label; the answer follows from the person's event
    (how they felt, what they did next, or why), another person's event is a distractor."""
    events = sorted(EVENTS)
    rows = []
    for i in range(n):
        people = _people(rng, 2)
        e1, e2 = rng.sample(events, 2)
        context = f"{people[0].first} {people[0].last} {e1}."
        if rng.random() < 0.5:
            context += f" The same day, {people[1].first} {e2}."
        context += " " + _render("en", [Fact(people[0], "city", rng.randrange(len(CITIES)), 0, "first")])
        kind = rng.randrange(3)
        if kind == 0:
            question = f"How did {people[0].first} probably feel?"
            pool, right = [EVENTS[e][0] for e in events], EVENTS[e1][0]
        elif kind == 1:
            question = f"What did {people[0].first} most likely do next?"
            pool, right = [EVENTS[e][1] for e in events], EVENTS[e1][1]
        else:
            question = f"Why did {people[0].first} feel {EVENTS[e1][0]}?"
            pool, right = (
                [f"Because {people[0].first} {e}." for e in events],
                f"Because {people[0].first} {e1}.",
            )
        wrong = rng.sample(sorted(set(pool) - {right}), 3)
        if rng.random() < 0.2:
            wrong[2] = "None of the above choices ."
        label = rng.randrange(4)
        answers = [*wrong[:label], right, *wrong[label:]]
        rows.append(
            {
                "id": _hex_id("cosmosqa", split, i),
                "context": context,
                "question": question,
                **{f"answer{k}": a for k, a in enumerate(answers)},
                "label": label,
            }
        )
    return rows


def gen_commonsenseqa(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """CommonsenseQA: id, question, question_concept, choices{label, text}, answerKey; where things are."""
    objects = sorted(OBJECT_PLACES)
    places = sorted(set(OBJECT_PLACES.values()))
    forms = (
        "Where would you most likely find {o}?",
        "{O} is usually found in which place?",
        "If you wanted to see {o}, where would you go?",
    )
    rows = []
    for i in range(n):
        obj = rng.choice(objects)
        right = OBJECT_PLACES[obj]
        choices = [*rng.sample([p for p in places if p != right], 4)]
        key = rng.randrange(5)
        choices.insert(key, right)
        question = rng.choice(forms).format(o=obj, O=obj[:1].upper() + obj[1:])
        rows.append(
            {
                "id": _hex_id("commonsenseqa", split, i),
                "question": question,
                "question_concept": obj,
                "choices": {"label": list("ABCDE"), "text": choices},
                "answerKey": "ABCDE"[key],
            }
        )
    return rows


def _retrieval_rows(rng: random.Random, lang: str, n: int, n_facts: int) -> list[Row]:
    """Translation pairs: row i's source (``lang``) is the translation of row i's target (English)."""
    rows: list[Row] = []
    seen: set[str] = set()
    while len(rows) < n:
        people = _people(rng, n_facts)
        facts = [
            Fact(
                p, attr, rng.randrange(N_VALUES[attr]), int(rng.random() < 0.3), rng.choice(("full", "first"))
            )
            for p, attr in zip(people, rng.sample(ATTRS, n_facts), strict=True)
        ]
        target = _render("en", facts)
        if target in seen:
            continue
        seen.add(target)
        rows.append(
            {
                "source_sentence": _render(lang, facts),
                "target_sentence": target,
                "source_lang": lang,
                "target_lang": "en",
            }
        )
    return rows


def gen_bucc(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """BUCC: source_sentence, target_sentence (English), source_lang, target_lang; two-fact sentences."""
    return _retrieval_rows(rng, lang, n, 2)


def gen_tatoeba(rng: random.Random, lang: str, split: str, n: int) -> list[Row]:
    """Tatoeba: source_sentence, target_sentence (English), source_lang, target_lang; one-fact sentences."""
    return _retrieval_rows(rng, lang, n, 1)


Generator = Callable[[random.Random, str, str, int], list[Row]]

TASK_GENERATORS: dict[str, Generator] = {
    "xnli": gen_xnli,
    "pawsx": gen_pawsx,
    "udpos": gen_udpos,
    "panx": gen_panx,
    "xquad": gen_xquad,
    "mlqa": gen_mlqa,
    "tydiqa": gen_tydiqa,
    "bucc": gen_bucc,
    "tatoeba": gen_tatoeba,
    "mnli": gen_mnli,
    "anli": gen_anli,
    "qqp": gen_qqp,
    "sst2": gen_sst2,
    "squad_v1": gen_squad_v1,
    "squad_v2": gen_squad_v2,
    "hellaswag": gen_hellaswag,
    "cosmosqa": gen_cosmosqa,
    "commonsenseqa": gen_commonsenseqa,
    "ccg": gen_ccg,
}
# Tasks whose evaluation sets are translations of one another: every language draws the same content.
PARALLEL_TASKS = frozenset({"xnli", "pawsx", "xquad", "mlqa"})

# ---------------------------------------------------------------------------------------------------------
# Writing the tree.
# ---------------------------------------------------------------------------------------------------------


def miniature_splits(spec: TaskSpec) -> list[tuple[str, str, int]]:
    """The (language, split, size) files the miniature holds for ``spec``."""
    languages = [lang for lang in MINIATURE_LANGUAGES if lang in spec.languages]
    train_size = N_QA_TRAIN if spec.type is TaskType.SPAN_QA else N_TRAIN
    if spec.role == "intermediate":
        return [("en", "train", train_size), ("en", "dev", N_DEV)]
    if spec.is_retrieval:
        return [(lang, split, N_RETRIEVAL) for lang in languages if lang != "en" for split in ("dev", "test")]
    plan = [] if spec.train_task else [("en", "train", train_size)]
    return plan + [
        (lang, split, size) for lang in languages for split, size in (("dev", N_DEV), ("test", N_TEST))
    ]


def generate_miniature(root: Path, seed: int = 0) -> Path:
    """Write every registry task as ``<root>/<task>/<lang>/<split>.jsonl``; return ``root``."""
    root = Path(root)
    missing = sorted(set(TASKS) - set(TASK_GENERATORS))
    if missing:
        raise NotImplementedError(f"no miniature generator for task(s) {', '.join(missing)}")
    for name in sorted(TASKS):
        generator = TASK_GENERATORS[name]
        for lang, split, size in miniature_splits(TASKS[name]):
            key = "parallel" if name in PARALLEL_TASKS else lang
            rows = generator(_rng(seed, name, split, key), lang, split, size)
            path = root / name / lang / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8", newline="\n") as f:
                f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    manifest = {"version": MINIATURE_VERSION, "seed": seed, "tasks": sorted(TASKS)}
    (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return root


def ensure_miniature(root: Path) -> Path:
    """``<root>/miniature-<MINIATURE_VERSION>``, generated first if missing; safe under concurrent callers."""
    root = Path(root).expanduser()
    final = root / f"miniature-{MINIATURE_VERSION}"
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=root))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the tree is shared data
        with stage(f"generating the miniature benchmark in {final}"):
            generate_miniature(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # not a lost race: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


__all__ = [
    "MINIATURE_LANGUAGES",
    "MINIATURE_VERSION",
    "PARALLEL_TASKS",
    "TASK_GENERATORS",
    "ensure_miniature",
    "generate_miniature",
    "miniature_splits",
]
