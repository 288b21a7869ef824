"""Two-role events for the paraphrase tasks (PAWS-X, QQP), in English, German and Spanish."""

from __future__ import annotations

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
