"""The multilingual lexicon: people, their attributes and the templates that state and ask them.

Named entities and numbers are shared by all languages; concepts are translated. Changing anything here
changes the rows of most tasks: bump the ``version`` of every task whose files change (``_registry.py``).
"""

from __future__ import annotations

from typing import Any

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
