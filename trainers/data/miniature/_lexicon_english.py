"""The English-only lexicon of the commonsense tasks (HellaSwag, CosmosQA, CommonsenseQA) and SST-2."""

from __future__ import annotations

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
